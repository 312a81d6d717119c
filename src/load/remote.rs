//! Remote task classes: each run is a one-shot job for a worker that registered the class,
//! dispatched through the scheduler (RegisterTask / GrabJob / Work), so any client library
//! can implement a load task. Runs are transient jobs (`scheduler/core/transient.rs`): kept
//! in memory only, with no store commit per run.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use super::engine::{Attempt, Invocation};
use crate::scheduler::job::{JobSpec, RetryPolicy};
use crate::scheduler::{Error, SchedulerHandle};

/// What a worker receives as the job's args.
pub(crate) fn job_args(
    params: &BTreeMap<String, String>,
    host: &str,
    exec_id: &str,
    swarm_id: u64,
) -> Bytes {
    let v = serde_json::json!({
        "params": params,
        "host": host,
        "exec_id": exec_id,
        "swarm_id": swarm_id,
    });
    Bytes::from(v.to_string())
}

/// Reads a worker's Done result: `{"request_context": "...", "elapsed_usec": N}` (both
/// optional), or any other bytes, which become the request_context as text.
pub(crate) fn parse_result(result: &[u8]) -> Attempt {
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(result) {
        let ctx = m.get("request_context");
        let elapsed = m.get("elapsed_usec");
        if ctx.is_some() || elapsed.is_some() {
            return Attempt {
                is_success: true,
                request_context: match ctx {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                elapsed_usec: elapsed.and_then(Value::as_u64),
            };
        }
    }
    Attempt {
        is_success: true,
        request_context: String::from_utf8_lossy(result).into_owned(),
        elapsed_usec: None,
    }
}

/// One run of a remote class.
pub struct RemoteRun<'a> {
    /// The scheduler.
    pub sched: &'a SchedulerHandle,
    /// Task class = scheduler task.
    pub class: &'a str,
    /// The task's host.
    pub host: &'a str,
    /// Exec params.
    pub params: &'a BTreeMap<String, String>,
    /// Execution id.
    pub exec_id: &'a str,
    /// Lease length: how long a worker may take before the run counts as failed.
    pub timeout_ms: u32,
}

impl RemoteRun<'_> {
    /// Dispatches the run and waits for the worker's outcome.
    pub async fn run(&self, inv: Invocation) -> Attempt {
        // Unique per execution, so runs never replace each other in the scheduler.
        let name = format!("{}/{}/{}", self.exec_id, inv.swarm_id, inv.seq);
        let spec = JobSpec {
            task: self.class.to_string(),
            name: name.clone(),
            args: job_args(self.params, self.host, self.exec_id, inv.swarm_id),
            sched_at: self.sched.clock().now_ms(),
            timeout_ms: self.timeout_ms,
            priority: 0,
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            trace: None,
            key: String::new(),
        };
        // In memory only (no store commit): losing a load run in a crash is correct. With no
        // worker of the class on this node it is a durable job any node's worker may take.
        match self.sched.run_transient(spec).await {
            Ok((_, result)) => parse_result(&result),
            Err(e) => {
                if let Error::JobFailed(_) = e {
                    // A failed durable one-shot run lands in the dead set; it is reported
                    // here instead (a transient one is not kept: this finds nothing).
                    let _ = self
                        .sched
                        .purge_dead(Some(self.class.to_string()), Some(name))
                        .await;
                }
                Attempt {
                    is_success: false,
                    request_context: match e {
                        Error::JobFailed(why) => why,
                        other => other.to_string(),
                    },
                    elapsed_usec: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_results() {
        let a = parse_result(br#"{"request_context": "buyer_id: 5", "elapsed_usec": 1980}"#);
        assert_eq!(
            (a.request_context.as_str(), a.elapsed_usec),
            ("buyer_id: 5", Some(1980))
        );
        let a = parse_result(br#"{"elapsed_usec": 7}"#);
        assert_eq!((a.request_context.as_str(), a.elapsed_usec), ("", Some(7)));
        let a = parse_result(b"plain text");
        assert_eq!(
            (a.request_context.as_str(), a.elapsed_usec),
            ("plain text", None)
        );
        let a = parse_result(br#"{"other": 1}"#);
        assert_eq!(a.request_context, r#"{"other": 1}"#);
        assert!(a.is_success);
    }
}
