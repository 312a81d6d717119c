//! Load jobs (Beetle's Job and JobTask): the canonical model, its JSON shape and validation.
//!
//! Field order in these structs is the JSON key order Beetle's `/jobs` shows; do not reorder.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::Error;
use super::fields::{self, Fields};
use super::stages::Stage;

/// Longest job or task class name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest run: one year.
pub const MAX_RUN_FOR_SEC: u64 = 365 * 24 * 3600;
/// Longest sleep between tasks: one hour.
pub const MAX_SLEEP_MSEC: u64 = 3_600_000;
/// Largest weight, so weights of many tasks add up without overflow.
pub const MAX_WEIGHT: u64 = 1_000_000;
/// Highest arrival rate.
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// One task of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobTask {
    /// Task class: a built-in HTTP class or a remote task.
    pub task_class: String,
    /// Relative likelihood of being picked (> 0).
    pub weight: u64,
    /// Least sleep after the task, ms.
    pub sleep_min_msec: u64,
    /// Most sleep after the task, ms.
    pub sleep_max_msec: u64,
    /// Average latency limit (0 = off).
    pub threshold_avg_usec: u64,
    /// Maximum latency limit (0 = off).
    pub threshold_max_usec: u64,
    /// Base URL, inherited from the job when the request left it out.
    pub host: String,
}

/// A saved load job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadJob {
    /// Unique name.
    pub name: String,
    /// Default host of its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its tasks, in the order given.
    pub tasks: Vec<JobTask>,
    /// Time limit in seconds (0 = none).
    pub run_for_sec: u64,
    /// Tasks per swarm (0 = no limit).
    pub run_n: u64,
    /// Concurrent swarms.
    pub n_swarm: u64,
    /// Arrival-rate mode: tasks started per second across all swarms (with stages, the
    /// starting rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Ramps in place of a fixed run_for_sec: of active swarms (closed model) or of the
    /// arrival rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<Stage>>,
}

impl LoadJob {
    /// The job as Beetle's `/jobs` shows it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job serializes")
    }

    /// Tasks a run does at most (run_n × n_swarm; 0 = unbounded).
    pub(crate) fn planned_n(&self) -> u64 {
        self.run_n.saturating_mul(self.n_swarm)
    }

    /// How long a run lasts at most: the stages' total, else run_for_sec (0 = no limit).
    pub fn duration_sec(&self) -> u64 {
        match &self.stages {
            Some(st) => st.iter().map(|s| s.duration_sec).sum(),
            None => self.run_for_sec,
        }
    }
}

/// What a job is checked against when saved.
pub struct Rules<'a> {
    /// Task classes that exist now (built-in and remote with a worker).
    pub known: &'a [String],
    /// Whether a class is a built-in HTTP class (these need an `http://` or `https://` host).
    pub is_http: &'a dyn Fn(&str) -> bool,
    /// Most swarms a job may ask for.
    pub max_swarms: u64,
}

const JOB_FIELDS: &[&str] = &[
    "name",
    "host",
    "tasks",
    "run_for_sec",
    "run_n",
    "n_swarm",
    "rate_per_sec",
    "stages",
];
const STAGE_FIELDS: &[&str] = &["duration_sec", "target"];
const TASK_FIELDS: &[&str] = &[
    "task_class",
    "weight",
    "sleep_min_msec",
    "sleep_max_msec",
    "threshold_avg_usec",
    "threshold_max_usec",
    "host",
];

/// Checks a name: non-empty, at most 255 bytes.
pub(crate) fn check_name(field: &str, v: &str) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("is {} bytes; at most {MAX_NAME_BYTES} allowed", v.len()),
        ));
    }
    Ok(())
}

/// Checks an absolute URL (scheme and host); `web_only` also refuses every scheme but http
/// and https.
pub(crate) fn check_url(field: &str, v: &str, web_only: bool) -> Result<http::Uri, Error> {
    let uri: http::Uri = v
        .parse()
        .map_err(|e| Error::invalid(field, format!("{v:?} is not a URL: {e}")))?;
    let (Some(scheme), Some(_)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Error::invalid(
            field,
            format!("{v:?} is not an absolute URL (scheme://host[:port][/path])"),
        ));
    };
    if web_only && scheme != "http" && scheme != "https" {
        return Err(Error::invalid(
            field,
            format!("{v:?}: only http:// and https:// are supported here"),
        ));
    }
    Ok(uri)
}

/// Validates a job document (the JSON Beetle's `/job` takes) and fills in defaults.
pub fn parse_job_json(text: &str, rules: &Rules<'_>) -> Result<LoadJob, Error> {
    parse_job(&fields::parse("job", text)?, rules)
}

/// Validates a job given as a JSON value and fills in defaults.
pub fn parse_job(v: &Value, rules: &Rules<'_>) -> Result<LoadJob, Error> {
    if !v.is_object() {
        return Err(Error::invalid(
            "job",
            format!("must be a JSON object, got {}", fields::kind(v)),
        ));
    }
    // Top-level fields are named bare (`run_n`), as the API documents them.
    let f = Fields::new("", v)?;
    f.only(JOB_FIELDS)?;
    let name = f
        .str("name")?
        .ok_or_else(|| Error::invalid("name", "is required"))?;
    check_name("name", name)?;
    let host = f.str("host")?.map(str::to_string);
    if let Some(h) = &host {
        check_url("host", h, false)?;
    }
    let run_for_sec = f.uint("run_for_sec", 0, MAX_RUN_FOR_SEC)?;
    let run_n = f.uint("run_n", 0, i64::MAX as u64)?;
    let rate_per_sec = f.number("rate_per_sec")?;
    let stages = parse_stages(&f, rate_per_sec.is_some())?;
    if stages.is_some() && run_for_sec > 0 {
        return Err(Error::invalid(
            "run_for_sec",
            "a job with stages lasts the stages' total; leave run_for_sec out",
        ));
    }
    if run_for_sec == 0 && run_n == 0 && stages.is_none() {
        return Err(Error::invalid(
            "run_for_sec",
            "a job needs run_for_sec or run_n (or both) > 0, else it would never stop",
        ));
    }
    // Closed model with stages: n_swarm is the most swarms a stage may ask for, and defaults
    // to the highest target.
    let ramps_swarms = stages.as_deref().filter(|_| rate_per_sec.is_none());
    let default_swarms = ramps_swarms.map_or(1, |st| {
        st.iter().map(|s| s.target).max().unwrap_or(1).max(1)
    });
    let n_swarm = f.uint("n_swarm", default_swarms, u64::MAX)?;
    if n_swarm == 0 || n_swarm > rules.max_swarms {
        return Err(Error::invalid(
            "n_swarm",
            format!("{n_swarm} must be between 1 and {}", rules.max_swarms),
        ));
    }
    if let Some((i, s)) = ramps_swarms
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, s)| s.target > n_swarm)
    {
        return Err(Error::invalid(
            format!("stages[{i}].target"),
            format!("{} swarms is more than n_swarm {n_swarm}", s.target),
        ));
    }
    if let Some(r) = rate_per_sec {
        // A staged rate may start from 0 and ramp up.
        let least_ok = if stages.is_some() { r >= 0.0 } else { r > 0.0 };
        if !(least_ok && r <= MAX_RATE_PER_SEC) {
            let floor = if stages.is_some() { ">= 0" } else { "> 0" };
            return Err(Error::invalid(
                "rate_per_sec",
                format!("{r} must be {floor} and at most {MAX_RATE_PER_SEC}"),
            ));
        }
    }
    let items = f
        .array("tasks")?
        .ok_or_else(|| Error::invalid("tasks", "is required"))?;
    if items.is_empty() {
        return Err(Error::invalid("tasks", "must list at least one task"));
    }
    let mut tasks: Vec<JobTask> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let t = parse_task(&format!("tasks[{i}]"), item, host.as_deref(), rules)?;
        if rate_per_sec.is_some() && (t.sleep_min_msec > 0 || t.sleep_max_msec > 0) {
            return Err(Error::invalid(
                format!("tasks[{i}].sleep_max_msec"),
                "sleeps do not apply in arrival-rate mode (rate_per_sec); set them to 0",
            ));
        }
        if let Some(j) = tasks.iter().position(|o| o.task_class == t.task_class) {
            return Err(Error::invalid(
                format!("tasks[{i}].task_class"),
                format!(
                    "{:?} is already tasks[{j}]; a JobExec reports tasks by class, so each class may appear once",
                    t.task_class
                ),
            ));
        }
        tasks.push(t);
    }
    Ok(LoadJob {
        name: name.to_string(),
        host,
        tasks,
        run_for_sec,
        run_n,
        n_swarm,
        rate_per_sec,
        stages,
    })
}

/// `stages`: each `{duration_sec > 0, target}`; a target is swarms in the closed model and
/// tasks per second in arrival-rate mode (`rate`).
fn parse_stages(f: &Fields<'_>, rate: bool) -> Result<Option<Vec<Stage>>, Error> {
    let Some(items) = f.array("stages")? else {
        return Ok(None);
    };
    if items.is_empty() {
        return Err(Error::invalid("stages", "must list at least one stage"));
    }
    let max_target = if rate {
        MAX_RATE_PER_SEC as u64
    } else {
        u64::MAX
    };
    let mut total = 0u64;
    let mut stages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = Fields::new(format!("stages[{i}]"), item)?;
        s.only(STAGE_FIELDS)?;
        for key in STAGE_FIELDS {
            if s.get(key).is_none() {
                return Err(Error::invalid(s.path(key), "is required"));
            }
        }
        let duration_sec = s.uint("duration_sec", 0, MAX_RUN_FOR_SEC)?;
        if duration_sec == 0 {
            return Err(Error::invalid(s.path("duration_sec"), "0 must be > 0"));
        }
        total += duration_sec;
        if total > MAX_RUN_FOR_SEC {
            return Err(Error::invalid(
                "stages",
                format!("last {total} s in all; at most {MAX_RUN_FOR_SEC} allowed"),
            ));
        }
        stages.push(Stage {
            duration_sec,
            target: s.uint("target", 0, max_target)?,
        });
    }
    Ok(Some(stages))
}

fn parse_task(
    path: &str,
    v: &Value,
    job_host: Option<&str>,
    rules: &Rules<'_>,
) -> Result<JobTask, Error> {
    let f = Fields::new(path, v)?;
    f.only(TASK_FIELDS)?;
    let class = f
        .str("task_class")?
        .ok_or_else(|| Error::invalid(f.path("task_class"), "is required"))?;
    check_name(&f.path("task_class"), class)?;
    if !rules.known.iter().any(|k| k == class) {
        return Err(Error::invalid(
            f.path("task_class"),
            format!(
                "unknown task class {class:?} (known: {})",
                rules.known.join(", ")
            ),
        ));
    }
    let weight = f.uint("weight", 1, MAX_WEIGHT)?;
    if weight == 0 {
        return Err(Error::invalid(f.path("weight"), "0 must be > 0"));
    }
    let sleep_min_msec = f.uint("sleep_min_msec", 0, MAX_SLEEP_MSEC)?;
    let sleep_max_msec = f.uint("sleep_max_msec", 0, MAX_SLEEP_MSEC)?;
    if sleep_min_msec > sleep_max_msec {
        return Err(Error::invalid(
            f.path("sleep_min_msec"),
            format!("{sleep_min_msec} is greater than sleep_max_msec {sleep_max_msec}"),
        ));
    }
    let threshold_avg_usec = f.uint("threshold_avg_usec", 0, i64::MAX as u64)?;
    let threshold_max_usec = f.uint("threshold_max_usec", 0, i64::MAX as u64)?;
    let host = match (f.str("host")?, job_host) {
        (Some(h), _) => {
            check_url(&f.path("host"), h, (rules.is_http)(class))?;
            h.to_string()
        }
        (None, Some(h)) => {
            check_url("host", h, (rules.is_http)(class))?;
            h.to_string()
        }
        (None, None) => {
            return Err(Error::invalid(
                f.path("host"),
                "is required when the job has no host",
            ))
        }
    };
    Ok(JobTask {
        task_class: class.to_string(),
        weight,
        sleep_min_msec,
        sleep_max_msec,
        threshold_avg_usec,
        threshold_max_usec,
        host,
    })
}
