//! Broadcast jobs across nodes: the messages between a broadcast job's owner and the other
//! nodes with broadcast workers for its task (the core's side is `scheduler/core/parts.rs`).
//!
//! - Claiming jobs of a task this node serves as broadcast, the claimer first reads which
//!   other live nodes have broadcast workers for it ([`sql::BROADCAST_NODES`]) and tells the
//!   core.
//! - The owner asks them with `NOTIFY taskhive_broadcast` (JSON: origin, job, run, nodes);
//!   a node named reads the job's row (the owner holds its claim, so the row is there) and
//!   runs its part, dropped again if still there after the job's lease length plus the
//!   grace (the owner has stopped waiting by then).
//! - A part's end goes back with `NOTIFY taskhive_part_done` (JSON: origin, job, run, node,
//!   the outcome). A done result over [`MAX_RESULT`] bytes is not carried (a notification
//!   holds 8,000 bytes): the owner then keeps a result of its own workers, or an empty one.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{db_err, sql, Shared};
use crate::scheduler::actor::NodeHandle;
use crate::scheduler::core::PART_GRACE_MS;
use crate::scheduler::job::{JobId, Outcome};

/// A part's request.
pub(super) const ASK_CHANNEL: &str = "taskhive_broadcast";
/// A part's answer.
pub(super) const ANSWER_CHANNEL: &str = "taskhive_part_done";

/// The largest done result an answer carries.
const MAX_RESULT: usize = 4_000;

#[derive(Serialize, Deserialize)]
struct Ask {
    origin: String,
    job: JobId,
    run: u64,
    nodes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    origin: String,
    job: JobId,
    run: u64,
    node: String,
    /// done, fail or later.
    kind: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    delay_ms: i64,
    #[serde(default)]
    count_step: u32,
}

fn notify(shared: Arc<Shared>, channel: &'static str, payload: String) {
    tokio::spawn(async move {
        let r = match shared.conn().await {
            Ok(c) => c
                .client
                .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .map_err(db_err)
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(channel, error = %e, "broadcast message not sent");
        }
    });
}

/// Owner: asks `nodes` to run their parts of run `run` of job `job`.
pub(super) fn ask(shared: Arc<Shared>, job: JobId, run: u64, nodes: &[Arc<str>]) {
    let ask = Ask {
        origin: shared.node.clone(),
        job,
        run,
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
    };
    let payload = serde_json::to_string(&ask).expect("serializable");
    notify(shared, ASK_CHANNEL, payload);
}

/// Part side: tells `origin` how this node's part ended.
pub(super) fn answer(shared: Arc<Shared>, origin: &str, job: JobId, run: u64, o: &Outcome) {
    let mut a = Answer {
        origin: origin.to_string(),
        job,
        run,
        node: shared.node.clone(),
        kind: String::new(),
        result: String::new(),
        error: String::new(),
        delay_ms: 0,
        count_step: 0,
    };
    match o {
        Outcome::Done { result } => {
            a.kind = "done".into();
            if result.len() <= MAX_RESULT {
                a.result = base64::engine::general_purpose::STANDARD.encode(result);
            }
        }
        Outcome::Fail { error, .. } => {
            a.kind = "fail".into();
            a.error = error.chars().take(MAX_RESULT).collect();
        }
        Outcome::SchedLater {
            delay_ms,
            count_step,
        } => {
            a.kind = "later".into();
            a.delay_ms = *delay_ms;
            a.count_step = *count_step;
        }
    }
    let payload = serde_json::to_string(&a).expect("serializable");
    notify(shared, ANSWER_CHANNEL, payload);
}

/// Part side, on a request: runs this node's part when it is named.
pub(super) async fn asked(shared: &Arc<Shared>, node: &NodeHandle, payload: &str) {
    let Ok(ask) = serde_json::from_str::<Ask>(payload) else {
        return;
    };
    if !ask.nodes.iter().any(|n| *n == shared.node) {
        return;
    }
    let id = ask.job as i64;
    let none: Option<&str> = None;
    let row = match shared.conn().await {
        Ok(c) => c
            .client
            .query_opt(sql::GET, &[&Some(id), &none, &none])
            .await
            .map_err(db_err),
        Err(e) => Err(e),
    };
    let record = match row {
        Ok(Some(row)) => crate::store::postgres::job_record(&row),
        // Gone already (removed, or done elsewhere): nothing to run.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = ask.job, error = %e, "broadcast part not started");
            return;
        }
    };
    let wait = Duration::from_millis(record.timeout_ms as u64 + PART_GRACE_MS as u64);
    node.run_part(record, ask.origin, ask.run);
    let node = node.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        node.drop_part(ask.job);
    });
}

/// Owner, on an answer: hands it to the core when this node asked.
pub(super) fn answered(shared: &Shared, node: &NodeHandle, payload: &str) {
    let Ok(a) = serde_json::from_str::<Answer>(payload) else {
        return;
    };
    if a.origin != shared.node {
        return;
    }
    let outcome = match a.kind.as_str() {
        "done" => Ok(Outcome::Done {
            result: base64::engine::general_purpose::STANDARD
                .decode(&a.result)
                .unwrap_or_default()
                .into(),
        }),
        "later" => Ok(Outcome::SchedLater {
            delay_ms: a.delay_ms,
            count_step: a.count_step,
        }),
        "fail" => Ok(Outcome::Fail {
            error: a.error,
            retry: true,
        }),
        other => Err(format!("unknown part outcome {other:?}")),
    };
    node.part_reported(a.job, a.run, a.node, outcome);
}
