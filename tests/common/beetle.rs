//! The Beetle::Server seed's `/job` and `/exec` payloads (verbatim) and a remote worker for
//! its task class, shared by the Beetle tests.

use serde_json::{json, Value};
use taskhive::pb;

use super::TestServer;

/// Seed `000_1fbb18f491710101.txt`, the `/job` payload.
pub const SEED_JOB: &str = r#"{
"name": "charges_local",
"host": "http://localhost:3001",
"run_for_sec": 10,
"tasks": [
{
"task_class": "BCaaS::ChargeTask",
"weight": 1,
"sleep_min_msec": 500,
"sleep_max_msec": 1000
}
]
}"#;

/// The seed's `/exec` payload.
pub const SEED_EXEC: &str = r#"{
"name": "charges_local",
"params": {
"sc_mc": "mc"
}
}"#;

/// An object's keys, in document order.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// A worker for the seed's task class: answers with a request_context naming the params.
pub async fn charge_worker(s: &TestServer) -> tokio::task::JoinHandle<()> {
    let mut w = s.worker(&["BCaaS::ChargeTask"], 8).await;
    tokio::spawn(async move {
        loop {
            let j = w.next_job().await;
            let args: Value = serde_json::from_slice(&j.args).unwrap();
            let ctx = format!("sc_mc: {}", args["params"]["sc_mc"].as_str().unwrap_or("-"));
            let result = json!({ "request_context": ctx }).to_string();
            w.send(
                j.lease_id,
                pb::outcome::Outcome::Done(pb::Done {
                    result: result.into_bytes().into(),
                }),
            )
            .await;
        }
    })
}
