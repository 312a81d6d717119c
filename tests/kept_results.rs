//! `serve --keep-results`: a done job's state, result, attempts and finish time stay
//! readable (GetJob, WatchJob) for the kept time, then go; a later submit starts a new job.

mod common;

use std::time::Duration;

use common::{job, within, TestServer};
use taskhive::pb;

fn key(name: &str) -> pb::JobRef {
    pb::JobRef {
        job_id: 0,
        task: "kr".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn a_done_job_shows_done_and_its_result_while_kept() {
    let s = TestServer::start_with(|c| c.keep_results = Duration::from_secs(3600)).await;
    let mut c = s.client().await;
    let mut w = s.worker(&["kr"], 1).await;
    let id = c
        .submit_job(job("kr", "a"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let j = w.next_job().await;
    w.done(j.lease_id, b"the answer").await;
    let got = c.get_job(key("a")).await.unwrap().into_inner();
    assert_eq!(got.state, pb::JobState::Done as i32);
    assert_eq!((got.id, &got.result[..]), (id, &b"the answer"[..]));
    assert!(got.finished_at_ms > 0);
    let by_id = c
        .get_job(pb::JobRef {
            job_id: id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.state, pb::JobState::Done as i32);
    // WatchJob on a finished job answers at once.
    let mut events = c.watch_job(key("a")).await.unwrap().into_inner();
    let ev = within(5, events.message()).await.unwrap().unwrap();
    assert!(format!("{ev:?}").contains("the answer"), "{ev:?}");
    // A later submit of the same name starts a new job.
    let again = c.submit_job(job("kr", "a")).await.unwrap().into_inner();
    assert_ne!(again.job_id, id);
    let got = c.get_job(key("a")).await.unwrap().into_inner();
    assert_ne!(got.state, pb::JobState::Done as i32);
    assert_eq!(got.id, again.job_id);
}

#[tokio::test]
async fn a_kept_result_is_gone_after_its_time() {
    let s = TestServer::start_with(|c| c.keep_results = Duration::from_millis(500)).await;
    let mut c = s.client().await;
    let mut w = s.worker(&["kr"], 1).await;
    c.submit_job(job("kr", "b")).await.unwrap();
    let j = w.next_job().await;
    w.done(j.lease_id, b"r").await;
    assert_eq!(
        c.get_job(key("b")).await.unwrap().into_inner().state,
        pb::JobState::Done as i32
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let e = c.get_job(key("b")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn without_keep_results_a_done_job_is_gone() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["kr"], 1).await;
    c.submit_job(job("kr", "c")).await.unwrap();
    let j = w.next_job().await;
    w.done(j.lease_id, b"r").await;
    let e = c.get_job(key("c")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// Kept results hold at most `--payload-memory` bytes: past it the oldest go before their
/// time, and `/metrics` counts them.
#[tokio::test]
async fn kept_results_past_the_payload_budget_let_the_oldest_go() {
    let s = TestServer::start_with(|c| {
        c.keep_results = Duration::from_secs(3600);
        c.payload_memory = 4096;
    })
    .await;
    let mut c = s.client().await;
    let mut w = s.worker(&["kr"], 1).await;
    for i in 0..10 {
        c.submit_job(job("kr", &format!("r{i}"))).await.unwrap();
        let j = w.next_job().await;
        w.done(j.lease_id, &[b'0' + i as u8; 1000]).await;
    }
    // 10 results of 1,000 bytes against 4,096: the newest 4 are kept.
    for i in 0..10 {
        let got = c.get_job(key(&format!("r{i}"))).await;
        if i < 6 {
            assert_eq!(got.unwrap_err().code(), tonic::Code::NotFound, "r{i}");
        } else {
            let got = got.unwrap().into_inner();
            assert_eq!(got.result, vec![b'0' + i as u8; 1000], "r{i}");
        }
    }
    let m = common::metrics_from(s.addr, None).await;
    assert_eq!(
        common::metric(&m, "taskhive_kept_results_dropped_total"),
        6.0,
        "{m}"
    );
}
