//! Beetle's Exec request: which job to run and how, validated the same way for every face.

use std::collections::BTreeMap;

use super::error::Error;
use super::fields::{self, Fields};
use super::job::{check_name, check_url};

/// A validated Exec request.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecOptions {
    /// The saved job to run.
    pub name: String,
    /// Handed to every task.
    pub params: BTreeMap<String, String>,
    /// Abort after this many failed tasks (0 = no limit).
    pub max_failure_count: u64,
    /// Log a progress line every 10 s.
    pub report_progress: bool,
    /// Log each failure with its request_context.
    pub report_failures: bool,
    /// Echoed in the JobExec; the HTTP face answers 400 on an exceeded threshold.
    pub error_400_on_threshold_exceeded: bool,
    /// Run in the background and POST the JobExec here.
    pub webhook_url: Option<http::Uri>,
    /// Run on load agents instead of in the server (`None` = in the server).
    pub agents: Option<Agents>,
}

/// Which load agents an Exec asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agents {
    /// This many (at least one).
    Count(u32),
    /// Every agent connected.
    All,
}

impl std::fmt::Display for Agents {
    /// As the `/exec` body writes it: a count, or `all`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Agents::Count(n) => write!(f, "{n}"),
            Agents::All => f.write_str("all"),
        }
    }
}

/// The `agents` field as received: a count not yet checked, or `"all"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawAgents {
    /// A count (must be >= 1).
    Count(i64),
    /// `"all"`.
    All,
}

/// An Exec request as received, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawExec {
    /// Job name.
    pub name: String,
    /// Params in the order given.
    pub params: Vec<(String, String)>,
    /// May be negative on input; rejected then.
    pub max_failure_count: i64,
    /// Unset = true.
    pub report_progress: Option<bool>,
    /// Unset = true.
    pub report_failures: Option<bool>,
    /// Unset = false.
    pub error_400_on_threshold_exceeded: bool,
    /// Empty = none.
    pub webhook_url: String,
    /// Unset = in the server.
    pub agents: Option<RawAgents>,
}

const EXEC_FIELDS: &[&str] = &[
    "name",
    "params",
    "max_failure_count",
    "report_progress",
    "report_failures",
    "error_400_on_threshold_exceeded",
    "webhook_url",
    "agents",
];

impl RawExec {
    /// Reads the JSON document Beetle's `/exec` takes.
    pub fn from_json(text: &str) -> Result<RawExec, Error> {
        let v = fields::parse("exec", text)?;
        if !v.is_object() {
            return Err(Error::invalid(
                "exec",
                format!("must be a JSON object, got {}", fields::kind(&v)),
            ));
        }
        let f = Fields::new("", &v)?;
        f.only(EXEC_FIELDS)?;
        let max = f.get("max_failure_count");
        let max_failure_count = match max.and_then(|m| m.as_i64()) {
            Some(n) => n,
            None if max.is_none() => 0,
            None => {
                return Err(Error::invalid(
                    "max_failure_count",
                    format!(
                        "expected an integer, got {}",
                        max.map_or("null", fields::kind)
                    ),
                ))
            }
        };
        Ok(RawExec {
            name: f.str("name")?.unwrap_or_default().to_string(),
            params: f.string_map("params")?.unwrap_or_default(),
            max_failure_count,
            report_progress: f.bool("report_progress")?,
            report_failures: f.bool("report_failures")?,
            error_400_on_threshold_exceeded: f
                .bool("error_400_on_threshold_exceeded")?
                .unwrap_or(false),
            webhook_url: f.str("webhook_url")?.unwrap_or_default().to_string(),
            agents: match f.get("agents") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) if s == "all" => Some(RawAgents::All),
                Some(v) => match v.as_i64() {
                    Some(n) => Some(RawAgents::Count(n)),
                    None => {
                        return Err(Error::invalid(
                            "agents",
                            format!("expected a count or \"all\", got {v}"),
                        ))
                    }
                },
            },
        })
    }

    /// Validates and fills in defaults.
    pub fn check(self) -> Result<ExecOptions, Error> {
        check_name("name", &self.name)?;
        if self.max_failure_count < 0 {
            return Err(Error::invalid(
                "max_failure_count",
                format!("{} must be >= 0", self.max_failure_count),
            ));
        }
        let mut params = BTreeMap::new();
        for (k, v) in self.params {
            if k.is_empty() {
                return Err(Error::invalid("params", "keys must not be empty"));
            }
            params.insert(k, v);
        }
        let webhook_url = if self.webhook_url.is_empty() {
            None
        } else {
            Some(check_url("webhook_url", &self.webhook_url, true)?)
        };
        let agents = match self.agents {
            None => None,
            Some(RawAgents::All) => Some(Agents::All),
            Some(RawAgents::Count(n)) if (1..=i64::from(u32::MAX)).contains(&n) => {
                Some(Agents::Count(n as u32))
            }
            Some(RawAgents::Count(n)) => {
                return Err(Error::invalid(
                    "agents",
                    format!("{n} must be >= 1 (or \"all\"; leave it out to run in the server)"),
                ))
            }
        };
        Ok(ExecOptions {
            name: self.name,
            params,
            max_failure_count: self.max_failure_count as u64,
            report_progress: self.report_progress.unwrap_or(true),
            report_failures: self.report_failures.unwrap_or(true),
            error_400_on_threshold_exceeded: self.error_400_on_threshold_exceeded,
            webhook_url,
            agents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        RawExec::from_json(text)
            .and_then(RawExec::check)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_and_beetle_example() {
        let o = RawExec::from_json(r#"{"name": "charges_local", "params": {"sc_mc": "mc"}}"#)
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(o.name, "charges_local");
        assert_eq!(o.params["sc_mc"], "mc");
        assert_eq!(o.max_failure_count, 0);
        assert!(o.report_progress && o.report_failures);
        assert!(!o.error_400_on_threshold_exceeded);
        assert!(o.webhook_url.is_none());
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert!(err("{").starts_with("exec: malformed JSON"));
        assert!(err("[]").starts_with("exec: must be a JSON object"));
        assert!(err(r#"{"params": {}}"#).starts_with("name: must not be empty"));
        assert!(
            err(r#"{"name": "a", "params": {"k": 1}}"#).starts_with("params.k: expected a string")
        );
        assert!(err(r#"{"name": "a", "params": ["x"]}"#)
            .starts_with("params: expected an object of strings"));
        assert!(err(r#"{"name": "a", "max_failure_count": -1}"#)
            .starts_with("max_failure_count: -1 must be >= 0"));
        assert!(err(r#"{"name": "a", "max_failure_count": "3"}"#)
            .starts_with("max_failure_count: expected an integer"));
        assert!(err(r#"{"name": "a", "webhook_url": "not a url"}"#).starts_with("webhook_url: "));
        assert!(err(r#"{"name": "a", "webhook_url": "/relative"}"#).starts_with("webhook_url: "));
        assert!(err(r#"{"name": "a", "report_progress": "yes"}"#)
            .starts_with("report_progress: expected true or false"));
        assert!(err(r#"{"name": "a", "nmae": "b"}"#).starts_with("nmae: unknown field"));
        assert!(err(r#"{"name": "a", "agents": 0}"#).starts_with("agents: 0 must be >= 1"));
        assert!(err(r#"{"name": "a", "agents": -2}"#).starts_with("agents: -2 must be >= 1"));
        assert!(err(r#"{"name": "a", "agents": "some"}"#).starts_with("agents: expected a count"));
        assert!(err(r#"{"name": "a", "agents": 1.5}"#).starts_with("agents: expected a count"));
    }

    #[test]
    fn agents_count_or_all() {
        let agents = |text: &str| RawExec::from_json(text).unwrap().check().unwrap().agents;
        assert_eq!(agents(r#"{"name": "a"}"#), None);
        assert_eq!(agents(r#"{"name": "a", "agents": null}"#), None);
        assert_eq!(
            agents(r#"{"name": "a", "agents": 3}"#),
            Some(Agents::Count(3))
        );
        assert_eq!(
            agents(r#"{"name": "a", "agents": "all"}"#),
            Some(Agents::All)
        );
    }
}
