//! `serve --log-format json`: lease expiries, retries, deaths and refusals each come out as
//! one JSON line naming the task, the job and its id.

mod common;

use std::time::Duration;

use common::child::{channel_at, client_at, spawn_server};
use common::{job, within, Worker};
use taskhive::pb;

fn events(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .filter(|v: &serde_json::Value| v.get("event").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_has_one_line_per_expiry_retry_death_and_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (_child, addr) = spawn_server(&dir, &["--log-format", "json"]).await;
    let mut c = client_at(addr).await;
    let mut j = job("logged", "j1");
    j.timeout_ms = Some(200);
    j.retry = Some(pb::RetryPolicy {
        max_attempts: 2,
        ..Default::default()
    });
    let id = c.submit_job(j).await.unwrap().into_inner().job_id;
    let ch = channel_at(addr).await;
    let mut w = Worker::connect(ch, &["logged"], 1).await;
    let first = within(10, w.next_job()).await;
    // Not reported: the lease expires and the job comes back.
    let second = within(10, w.next_job()).await;
    assert_ne!(first.lease_id, second.lease_id);
    w.fail(second.lease_id, "boom").await;
    let stale = c
        .report_result(pb::ReportResultRequest {
            lease_id: first.lease_id,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);

    let log = dir.with_extension("log");
    let want = ["lease_expired", "retry", "dead", "refused"];
    let got = within(10, async {
        loop {
            let ev = events(&log);
            if want.iter().all(|w| ev.iter().any(|e| e["event"] == *w)) {
                return ev;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for kind in ["lease_expired", "retry", "dead"] {
        let lines: Vec<_> = got.iter().filter(|e| e["event"] == kind).collect();
        assert_eq!(lines.len(), 1, "{kind} logged once: {got:?}");
        let e = lines[0];
        assert_eq!(e["task"], "logged", "{e}");
        assert_eq!(e["job"], "j1", "{e}");
        assert_eq!(e["job_id"], id, "{e}");
        assert!(e["timestamp"].is_string() && e["level"].is_string(), "{e}");
    }
    let dead = got.iter().find(|e| e["event"] == "dead").unwrap();
    assert_eq!(dead["error"], "boom");
    let refused = got.iter().find(|e| e["event"] == "refused").unwrap();
    assert_eq!(refused["lease_id"], first.lease_id, "{refused}");
}
