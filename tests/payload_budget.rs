//! `serve --payload-memory`: past the budget, payloads stay in the store only (those of the
//! jobs due last first) and are read back when their job is handed out, shown or dumped; a
//! restart reads back only what fits. Real server, real SQLite store, real gRPC worker.

mod common;

use std::time::Duration;

use common::{metric, metrics_from, within, TestServer};
use taskhive::pb;
use tokio_stream::StreamExt;

const JOBS: usize = 60;
const PAYLOAD: usize = 8 * 1024;
const BUDGET: u64 = 64 * 1024;

/// Job `i`'s payload: every byte depends on `i` and its place, so a swapped, cut or
/// zeroed payload shows.
fn payload(i: usize) -> bytes::Bytes {
    (0..PAYLOAD)
        .map(|k| ((i * 31 + k * 7) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Job `i` is due `i` ms after a base an hour ago: all due, handed out in `i` order.
fn submit(i: usize, base: i64) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        task: "pb".into(),
        name: format!("j{i:03}"),
        args: payload(i),
        sched_at_ms: base + i as i64,
        ..Default::default()
    }
}

/// Polls `/metrics` until `series` satisfies `ok` (deadline 10 s); returns the text.
async fn wait_metric(s: &TestServer, series: &str, ok: impl Fn(f64) -> bool) -> String {
    within(10, async {
        loop {
            let m = metrics_from(s.addr, None).await;
            if ok(metric(&m, series)) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn budgeted(c: &mut taskhive::config::Config) {
    c.payload_memory = BUDGET;
}

#[tokio::test]
async fn payloads_past_the_budget_are_read_back_intact_in_due_order_across_a_restart() {
    let s = TestServer::start_with(budgeted).await;
    let mut c = s.client().await;
    let base = common::now_ms() - 3_600_000;
    // Submitted out of due order: what is kept is chosen by due time, not arrival.
    let order: Vec<usize> = (0..JOBS).map(|k| (k * 37) % JOBS).collect();
    for &i in &order {
        c.submit_job(submit(i, base)).await.unwrap();
    }
    // 60 × 8 KiB against 64 KiB: at most 8 are held, the rest are in the store only.
    let fits = BUDGET as usize / PAYLOAD;
    let spilled = (JOBS - fits) as f64;
    let m = wait_metric(&s, "taskhive_payloads_in_store_only", |n| n >= spilled).await;
    assert!(
        metric(&m, "taskhive_payload_memory_bytes") <= BUDGET as f64,
        "{m}"
    );

    // Shown and dumped whole, whether held or not.
    let last = c
        .get_job(pb::JobRef {
            task: "pb".into(),
            name: format!("j{:03}", JOBS - 1),
            job_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.args, payload(JOBS - 1), "GetJob of a job due last");
    let mut dump = c.dump(pb::DumpRequest {}).await.unwrap().into_inner();
    let mut dumped = 0;
    while let Some(d) = dump.next().await {
        let j = d.unwrap().job.unwrap();
        let i: usize = j.name[1..].parse().unwrap();
        assert_eq!(j.args, payload(i), "dumped {}", j.name);
        dumped += 1;
    }
    assert_eq!(dumped, JOBS);

    // A restart reads back only what fits: the jobs due first.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, budgeted).await;
    let mut c = s.client().await;
    let m = wait_metric(&s, "taskhive_payloads_in_store_only", |n| n >= spilled).await;
    let held = metric(&m, "taskhive_payload_memory_bytes");
    assert!(held <= BUDGET as f64 && held >= PAYLOAD as f64, "{m}");

    // One worker, one job at a time: every payload arrives intact, in due order.
    let mut w = s.worker(&["pb"], 1).await;
    for i in 0..JOBS {
        let j = w.next_job().await;
        assert_eq!(j.name, format!("j{i:03}"), "due order");
        assert_eq!(j.args.len(), PAYLOAD, "{}", j.name);
        assert!(j.args == payload(i), "{}'s payload differs", j.name);
        w.done(j.lease_id, b"").await;
    }
    wait_metric(&s, "taskhive_payloads_in_store_only", |n| n == 0.0).await;
    let status = common::task_status(&mut c, "pb").await;
    assert_eq!(status.pending + status.scheduled + status.running, 0);
}

/// A capacity-8 worker takes jobs whose payloads are partly held and partly read back: what
/// it receives keeps the order they were handed out in.
#[tokio::test]
async fn a_worker_with_room_for_many_gets_them_in_hand_out_order() {
    let s = TestServer::start_with(budgeted).await;
    let mut c = s.client().await;
    let base = common::now_ms() - 3_600_000;
    for i in (0..JOBS).rev() {
        c.submit_job(submit(i, base)).await.unwrap();
    }
    let mut w = s.worker(&["pb"], 8).await;
    let mut seen = Vec::new();
    while seen.len() < JOBS {
        let j = w.next_job().await;
        let i: usize = j.name[1..].parse().unwrap();
        assert!(j.args == payload(i), "{}'s payload differs", j.name);
        seen.push(i);
        w.done(j.lease_id, b"").await;
    }
    assert_eq!(seen, (0..JOBS).collect::<Vec<_>>());
}

/// `--payload-memory 0`: every payload is held, none is read back.
#[tokio::test]
async fn no_budget_holds_every_payload() {
    let s = TestServer::start_with(|c| c.payload_memory = 0).await;
    let mut c = s.client().await;
    let base = common::now_ms() - 3_600_000;
    for i in 0..20 {
        c.submit_job(submit(i, base)).await.unwrap();
    }
    let m = metrics_from(s.addr, None).await;
    assert_eq!(metric(&m, "taskhive_payloads_in_store_only"), 0.0, "{m}");
    let mut w = s.worker(&["pb"], 1).await;
    for i in 0..20 {
        let j = w.next_job().await;
        assert!(j.args == payload(i));
        w.done(j.lease_id, b"").await;
    }
}
