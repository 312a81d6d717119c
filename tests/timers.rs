//! The actor's timers under `tokio::time::pause`: jobs are handed out exactly when due.
//!
//! Submissions wait for the store writer's thread, and a paused runtime that waits on a
//! thread jumps to its next timer; so each test submits first, with every job due at least
//! 10 s ahead, and only then pauses time. tokio's timer wheel rounds a deadline up to its
//! next millisecond tick, so "on time" means at most 1 ms after the due time.

use bytes::Bytes;
use taskhive::scheduler::actor::{self, ToWorker};
use taskhive::scheduler::clock::Clock;
use taskhive::scheduler::core::{Core, CoreConfig};
use taskhive::scheduler::job::*;
use taskhive::scheduler::settings::Settings;
use taskhive::scheduler::SchedulerHandle;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;

fn on_time(now: Millis, due: Millis) {
    assert!(
        (due..=due + 1).contains(&now),
        "dispatched at {now}, due at {due} ({} ms late)",
        now - due
    );
}

fn spec(name: &str, at: Millis) -> JobSpec {
    JobSpec {
        task: "t".into(),
        name: name.into(),
        args: Bytes::new(),
        sched_at: at,
        timeout_ms: 3_600_000,
        priority: 0,
        retry: RetryPolicy::default(),
        trace: None,
        key: String::new(),
    }
}

/// The job in a message to the worker.
fn job(m: ToWorker) -> JobView {
    match m {
        ToWorker::Job(j) => j,
        other => panic!("expected a job, got {other:?}"),
    }
}

/// An actor over a memory store with one worker of task "t" (capacity `cap`); returns the
async fn start(cap: u32) -> (SchedulerHandle, Clock, actor::WorkerRx, MemoryStore) {
    let store = MemoryStore::default();
    let (writer, _join) = Writer::spawn(store.clone());
    let clock = Clock::anchored(1_700_000_000_000);
    let (h, _actor) = actor::spawn(
        Core::new(CoreConfig::default(), 1, 1),
        Settings::new(600, Vec::new()),
        writer,
        clock,
        std::sync::Arc::new(taskhive::metrics::Metrics::new()),
    );
    let (tx, rx) = actor::worker_channel();
    h.register(None, vec!["t".into()], vec![], cap, Some(tx))
        .await
        .unwrap();
    (h, clock, rx, store)
}

#[tokio::test]
async fn scheduled_jobs_fire_exactly_when_due_in_order() {
    let (h, clock, mut rx, store) = start(10_000).await;
    let t0 = clock.now_ms();
    // Submitted out of order, spread over an hour of virtual time.
    let mut due: Vec<Millis> = (0..500)
        .map(|i| t0 + 10_000 + (i * 7_919) % 3_600_000)
        .collect();
    for (i, at) in due.iter().enumerate() {
        h.submit(spec(&format!("j{i}"), *at)).await.unwrap();
    }
    tokio::time::pause();
    due.sort();
    for want in due {
        let job = job(rx.recv().await.unwrap());
        assert_eq!(job.record.sched_at, want, "out of order");
        on_time(clock.now_ms(), want);
    }
    assert_eq!(store.snapshot().len(), 500, "all committed, none done");
}

#[tokio::test]
async fn a_new_earlier_job_rearms_the_timer() {
    let (h, clock, mut rx, _store) = start(10).await;
    let t0 = clock.now_ms();
    h.submit(spec("late", t0 + 60_000)).await.unwrap();
    h.submit(spec("early", t0 + 10_000)).await.unwrap();
    tokio::time::pause();
    let first = job(rx.recv().await.unwrap());
    assert_eq!(first.record.name, "early");
    on_time(clock.now_ms(), t0 + 10_000);
    let second = job(rx.recv().await.unwrap());
    assert_eq!(second.record.name, "late");
    on_time(clock.now_ms(), t0 + 60_000);
}

#[tokio::test]
async fn lease_expiry_requeues_on_time() {
    let (h, clock, mut rx, _store) = start(1).await;
    let t0 = clock.now_ms();
    let mut s = spec("x", t0 + 10_000);
    s.timeout_ms = 30_000;
    h.submit(s).await.unwrap();
    tokio::time::pause();
    let first = job(rx.recv().await.unwrap());
    let leased_at = clock.now_ms();
    on_time(leased_at, t0 + 10_000);
    let again = job(rx.recv().await.unwrap());
    on_time(clock.now_ms(), leased_at + 30_000);
    assert_eq!(again.record.attempts, 1);
    assert_ne!(again.lease, first.lease);
    // A heartbeat pushes the next expiry out.
    tokio::time::advance(std::time::Duration::from_secs(20)).await;
    let lost = h.heartbeat(vec![again.lease.unwrap()]).await.unwrap();
    assert!(lost.is_empty());
    let beat_at = clock.now_ms();
    let third = job(rx.recv().await.unwrap());
    on_time(clock.now_ms(), beat_at + 30_000);
    assert_eq!(third.record.attempts, 2);
}
