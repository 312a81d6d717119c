//! The JobExec report and the other documents the load runner shows (ServerStatus, summaries).
//!
//! Field order is JSON key order and is the contract: Beetle's keys first, exactly as
//! Beetle writes them, then taskhive's additions. Never reorder or rename a Beetle field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::store::ExecRow;

/// Beetle's timestamp format: UTC with milliseconds, `2019-02-19 21:36:47.430+00:00`.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f+00:00").to_string()
}

/// One run of one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// UUID.
    pub id: String,
    /// The swarm that ran it, from 1.
    pub swarm_id: u64,
    /// When it started (arrival-rate mode: when it was meant to start).
    pub t_start: String,
    /// Latency in microseconds.
    pub elapsed_usec: u64,
    /// What the task says about this run (HTTP: status, method and path; remote: the worker's text).
    pub request_context: String,
    /// Whether it succeeded.
    pub is_success: bool,
}

/// Tasks finished in one second of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the start (the second the tasks finished in).
    pub second: u64,
    /// Tasks finished.
    pub n_task: u64,
    /// Of which failed.
    pub n_fail: u64,
    /// 99th percentile latency of those tasks.
    pub p99_usec: u64,
}

/// One task class's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskExec {
    /// Base URL.
    pub host: String,
    /// Weight.
    pub weight: u64,
    /// Least sleep.
    pub sleep_min_msec: u64,
    /// Most sleep.
    pub sleep_max_msec: u64,
    /// Average latency limit (0 = off).
    pub threshold_avg_usec: u64,
    /// Maximum latency limit (0 = off).
    pub threshold_max_usec: u64,
    /// Tasks run.
    pub n_task: u64,
    /// Succeeded.
    pub n_success: u64,
    /// Failed.
    pub n_fail: u64,
    /// Fastest, µs (0 when none ran).
    pub min_usec: u64,
    /// Slowest, µs.
    pub max_usec: u64,
    /// tot_usec / n_task, integer division (0 when none ran).
    pub avg_usec: u64,
    /// Sum of latencies, µs.
    pub tot_usec: u64,
    /// The runs (capped; see `n_executions_dropped`), by start time.
    pub executions: Vec<Execution>,
    /// avg_usec > threshold_avg_usec > 0.
    pub threshold_avg_exceeded: bool,
    /// max_usec > threshold_max_usec > 0.
    pub threshold_max_exceeded: bool,
    /// Median latency (HDR histogram, 3 significant digits).
    pub p50_usec: u64,
    /// 90th percentile.
    pub p90_usec: u64,
    /// 99th percentile.
    pub p99_usec: u64,
    /// 99.9th percentile.
    pub p999_usec: u64,
    /// Tasks per second over the whole run.
    pub rps: f64,
    /// Runs left out of `executions` by the cap; the statistics cover them.
    pub n_executions_dropped: u64,
}

/// A finished execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobExec {
    /// UUID.
    pub id: String,
    /// Job name.
    pub name: String,
    /// The job's host (absent when the job has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Start time.
    pub t_start: String,
    /// Run time, µs.
    pub elapsed_usec: u64,
    /// The Exec request's params.
    pub params: BTreeMap<String, String>,
    /// Echo of the Exec request's flag.
    pub error_400_on_threshold_exceeded: bool,
    /// Per task class, in the job's order.
    pub tasks: IndexMap<String, TaskExec>,
    /// The job's time limit.
    pub run_for_sec: u64,
    /// The job's per-swarm count.
    pub run_n: u64,
    /// The job's swarms.
    pub n_swarm: u64,
    /// Any task's threshold flag.
    pub threshold_exceeded: bool,
    /// The job's arrival rate, in arrival-rate mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// The run was cut short.
    pub aborted: bool,
    /// Why, when aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// Tasks run, all classes.
    pub n_task: u64,
    /// Succeeded, all classes.
    pub n_success: u64,
    /// Failed, all classes.
    pub n_fail: u64,
    /// Median latency, all classes.
    pub p50_usec: u64,
    /// 90th percentile, all classes.
    pub p90_usec: u64,
    /// 99th percentile, all classes.
    pub p99_usec: u64,
    /// 99.9th percentile, all classes.
    pub p999_usec: u64,
    /// Tasks per second, all classes.
    pub rps: f64,
    /// Per second of the run.
    pub timeline: Vec<TimelinePoint>,
    /// The job's stages, when it ramps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<crate::load::stages::Stage>>,
    /// The load agents that ran it, when the Exec asked for agents (absent otherwise, so
    /// an in-process JobExec is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<ExecAgent>>,
}

/// One load agent's part in an execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecAgent {
    /// Its id on the server.
    pub id: String,
    /// Where it connected from.
    pub addr: String,
    /// Swarms it was given.
    pub swarms: u64,
    /// Tasks it finished and reported.
    pub n_task: u64,
    /// It went away before finishing its share; what it reported is counted.
    pub lost: bool,
}

impl JobExec {
    /// The JSON document (compact; keys in contract order).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a JobExec serializes")
    }

    /// The summary the archive lists.
    pub fn summary(&self) -> ExecSummary {
        ExecSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            t_start: self.t_start.clone(),
            elapsed_usec: self.elapsed_usec,
            n_task: self.n_task,
            n_fail: self.n_fail,
            threshold_exceeded: self.threshold_exceeded,
            aborted: self.aborted,
        }
    }

    /// The store row archiving this execution.
    pub fn row(&self) -> ExecRow {
        let s = self.summary();
        ExecRow {
            id: s.id,
            name: s.name,
            t_start: s.t_start,
            elapsed_usec: s.elapsed_usec,
            n_task: s.n_task,
            n_fail: s.n_fail,
            threshold_exceeded: s.threshold_exceeded,
            aborted: s.aborted,
            json: self.to_json(),
        }
    }
}

/// An archived execution in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecSummary {
    /// Execution id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// Start time.
    pub t_start: String,
    /// Run time, µs.
    pub elapsed_usec: u64,
    /// Tasks run.
    pub n_task: u64,
    /// Tasks failed.
    pub n_fail: u64,
    /// Some threshold exceeded.
    pub threshold_exceeded: bool,
    /// Cut short.
    pub aborted: bool,
}

impl From<ExecRow> for ExecSummary {
    fn from(r: ExecRow) -> Self {
        ExecSummary {
            id: r.id,
            name: r.name,
            t_start: r.t_start,
            elapsed_usec: r.elapsed_usec,
            n_task: r.n_task,
            n_fail: r.n_fail,
            threshold_exceeded: r.threshold_exceeded,
            aborted: r.aborted,
        }
    }
}

/// The running execution, as the server status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningExec {
    /// Execution id.
    pub exec_id: String,
    /// Job name.
    pub name: String,
    /// Start time.
    pub t_start: String,
    /// Time since the start, µs.
    pub elapsed_usec: u64,
    /// Tasks finished so far.
    pub n_task: u64,
    /// Of which succeeded.
    pub n_success: u64,
    /// Of which failed.
    pub n_fail: u64,
}

/// Beetle's ServerStatus (its fields are not documented; these are taskhive's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// `"idle"` or `"running"`.
    pub state: String,
    /// The running execution, when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningExec>,
    /// The last execution that finished since the server started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exec: Option<ExecSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_format_matches_beetle() {
        let t = Utc.with_ymd_and_hms(2019, 2, 19, 21, 36, 47).unwrap()
            + chrono::Duration::milliseconds(430);
        assert_eq!(format_time(t), "2019-02-19 21:36:47.430+00:00");
    }
}
