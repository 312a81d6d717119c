//! The tasks file given to `serve --tasks`: named HTTP task classes in TOML.
//!
//! ```toml
//! [[task]]
//! name = "shop.charge"            # the task_class jobs use
//! method = "POST"                 # default GET
//! path = "/charges/{{sc_mc}}"     # appended to the task's host; default ""
//! body = '{"mc": "{{sc_mc}}"}'    # default empty
//! expect_status = [200, 201]      # or one code; default any 2xx
//! timeout_ms = 30000              # default 30000
//! insecure_skip_verify = false    # https: accept any certificate; needs
//!                                 # serve --load-insecure-tls
//! [task.headers]
//! content-type = "application/json"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;

use super::error::Error;
use super::http::{HttpTaskDef, DEFAULT_TIMEOUT, HTTP_GET};
use super::job::check_name;
use super::template::Template;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    task: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    expect_status: Option<Statuses>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Statuses {
    One(u16),
    Many(Vec<u16>),
}

/// Reads and validates a tasks file.
pub fn load(path: &Path) -> Result<Vec<HttpTaskDef>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("tasks file", format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| match e {
        Error::InvalidArgument { field, reason } => {
            Error::invalid(format!("{} {field}", path.display()), reason)
        }
        other => other,
    })
}

/// Validates tasks file text.
pub fn parse(text: &str) -> Result<Vec<HttpTaskDef>, Error> {
    let file: File =
        toml::from_str(text).map_err(|e| Error::invalid("tasks file", e.to_string()))?;
    let mut defs: Vec<HttpTaskDef> = Vec::new();
    for (i, e) in file.task.into_iter().enumerate() {
        let field = |f: &str| format!("task[{i}].{f}");
        check_name(&field("name"), &e.name)?;
        if e.name == HTTP_GET || defs.iter().any(|d| d.name == e.name) {
            return Err(Error::invalid(
                field("name"),
                format!("{:?} is defined twice (or is the built-in)", e.name),
            ));
        }
        let method = match e.method.as_deref() {
            None => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| Error::invalid(field("method"), format!("{m:?} is not a method")))?,
        };
        let path = e.path.unwrap_or_default();
        if !(path.is_empty() || path.starts_with('/') || path.starts_with('?')) {
            return Err(Error::invalid(
                field("path"),
                format!("{path:?} must start with / or ?"),
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in e.headers {
            let h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::invalid(field("headers"), format!("{name:?} is not a header name"))
            })?;
            headers.push((h, Template::parse(&value)));
        }
        let expect_status = match e.expect_status {
            None => Vec::new(),
            Some(Statuses::One(s)) => vec![s],
            Some(Statuses::Many(v)) => v,
        };
        if let Some(s) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(Error::invalid(
                field("expect_status"),
                format!("{s} is not an HTTP status"),
            ));
        }
        let timeout = match e.timeout_ms {
            None => DEFAULT_TIMEOUT,
            Some(0) => return Err(Error::invalid(field("timeout_ms"), "0 must be > 0")),
            Some(ms) => Duration::from_millis(ms),
        };
        defs.push(HttpTaskDef {
            name: e.name,
            method,
            path: Template::parse(&path),
            headers,
            body: Template::parse(&e.body.unwrap_or_default()),
            expect_status,
            timeout,
            insecure_skip_verify: e.insecure_skip_verify,
        });
    }
    Ok(defs)
}

/// Refuses classes with `insecure_skip_verify` unless the server permits unverified TLS, so
/// skipping verification always takes two deliberate settings.
pub(crate) fn check_insecure(
    defs: &[HttpTaskDef],
    permitted: bool,
    file: &Path,
) -> Result<(), Error> {
    match defs.iter().position(|d| d.insecure_skip_verify) {
        Some(i) if !permitted => Err(Error::invalid(
            format!("{} task[{i}].insecure_skip_verify", file.display()),
            format!(
                "class {:?} asks to skip certificate verification; start the server with --load-insecure-tls to permit it",
                defs[i].name
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let defs = parse(
            r#"
[[task]]
name = "shop.charge"
method = "post"
path = "/charges/{{sc_mc}}"
body = '{"mc": "{{sc_mc}}"}'
expect_status = [200, 201]
[task.headers]
content-type = "application/json"
x-mc = "{{sc_mc}}"

[[task]]
name = "shop.home"
expect_status = 200
"#,
        )
        .unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].method, Method::POST);
        assert_eq!(defs[0].expect_status, [200, 201]);
        assert_eq!(
            defs[0].params().collect::<Vec<_>>(),
            ["sc_mc", "sc_mc", "sc_mc"]
        );
        assert_eq!(defs[1].method, Method::GET);
        assert!(!defs[0].insecure_skip_verify);
    }

    #[test]
    fn skipping_verification_needs_the_server_flag() {
        let defs =
            parse("[[task]]\nname = \"a\"\n[[task]]\nname = \"b\"\ninsecure_skip_verify = true")
                .unwrap();
        assert!(defs[1].insecure_skip_verify);
        let e = check_insecure(&defs, false, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml task[1].insecure_skip_verify: class \"b\""),
            "{e}"
        );
        assert!(e.contains("--load-insecure-tls"), "{e}");
        assert!(check_insecure(&defs, true, Path::new("t.toml")).is_ok());
    }

    #[test]
    fn errors_name_the_entry() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert!(e("[[task]]\nname = \"http.get\"").starts_with("task[0].name"));
        assert!(e("[[task]]\nname = \"a\"\nmethod = \"GE T\"").starts_with("task[0].method"));
        assert!(e("[[task]]\nname = \"a\"\npath = \"x\"").starts_with("task[0].path"));
        assert!(
            e("[[task]]\nname = \"a\"\nexpect_status = 999").starts_with("task[0].expect_status")
        );
        assert!(e("[[task]]\nname = \"a\"\nbogus = 1").starts_with("tasks file"));
    }
}
