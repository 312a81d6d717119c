//! A payload held in the store only (past the payload budget) whose read back fails: the
//! worker is not handed a job without its payload, the job is not lost, and it goes out
//! again, whole, once its lease has run out and the read succeeds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::stores::HookedStore;
use taskhive::scheduler::actor::{self, ToWorker};
use taskhive::scheduler::clock::Clock;
use taskhive::scheduler::core::{Core, CoreConfig};
use taskhive::scheduler::job::*;
use taskhive::scheduler::settings::Settings;
use taskhive::scheduler::worker_channel::worker_channel;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;
use taskhive::store::StoreError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payload_read_hands_the_job_out_again_whole_after_its_lease() {
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = reads.clone();
    // The first read back fails (an I/O error), the later ones succeed.
    let store = HookedStore::new(MemoryStore::default(), |_| Ok(())).reads(move |_| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(StoreError::Backend("injected: read failed".into()))
        } else {
            Ok(())
        }
    });
    let (writer, _join) = Writer::spawn(store);
    // No room for payloads in memory: every payload above the threshold stays in the store.
    let core = Core::new(
        CoreConfig {
            payload_budget: Some(0),
            ..CoreConfig::default()
        },
        1,
        1,
    );
    let (h, _actor) = actor::spawn(
        core,
        Settings::new(600, Vec::new()),
        writer,
        Clock::system(),
        Arc::new(taskhive::metrics::Metrics::new()),
    );
    let payload = Bytes::from(vec![b'p'; 8192]);
    let now = h.clock().now_ms();
    let reply = h
        .submit(JobSpec {
            task: "t".into(),
            name: "big".into(),
            args: payload.clone(),
            sched_at: now,
            timeout_ms: 300,
            priority: 0,
            retry: RetryPolicy {
                max_attempts: 5,
                backoff_base_ms: 10,
                backoff_max_ms: 10,
            },
            trace: None,
            key: String::new(),
        })
        .await
        .unwrap();
    let (tx, mut rx) = worker_channel();
    h.register(None, vec!["t".into()], Vec::new(), 1, Some(tx))
        .await
        .unwrap();

    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rx.recv().await.expect("the actor keeps the worker") {
                ToWorker::Job(job) => return job,
                _ => continue,
            }
        }
    })
    .await
    .expect("the job goes out again after the failed read");
    assert_eq!(got.record.id, reply.id);
    assert_eq!(
        got.record.args, payload,
        "handed out with its whole payload"
    );
    assert!(
        reads.load(Ordering::SeqCst) >= 2,
        "the first read failed, so it was read again"
    );
    // Not a timing check (the lease runs on the scheduler's millisecond clock): the first
    // lease ran out unanswered, which counts as one attempt, before it went out again.
    assert_eq!(
        got.record.attempts, 1,
        "its first lease ran out before it went out again"
    );
}
