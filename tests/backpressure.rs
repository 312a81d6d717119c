//! Back-pressure: when the store falls behind, submits wait for the writer's backlog instead
//! of queueing writes (and jobs in memory) without end. A store whose commits are slowed takes
//! 100,000 pipelined submits: with the bound the queued writes never pass it, without one
//! they pile up; every job is there in the end either way. The same for payload bytes: large
//! payloads wait on the byte bound long before the job bound.

use std::time::Duration;

mod common;

use bytes::Bytes;
use common::stores::HookedStore;
use futures_util::future::join_all;
use taskhive::scheduler::actor;
use taskhive::scheduler::clock::Clock;
use taskhive::scheduler::core::{Core, CoreConfig};
use taskhive::scheduler::durable::{Demand, Durable};
use taskhive::scheduler::job::*;
use taskhive::scheduler::settings::Settings;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;

/// A memory store whose commits take 20 µs per op: a slow disk, slower than the submits
/// even of a debug build, so that without a bound the writes pile up.
fn slow_store() -> HookedStore {
    HookedStore::new(MemoryStore::default(), |ops| {
        std::thread::sleep(Duration::from_micros(20 * ops.len() as u64));
        Ok(())
    })
}

const JOBS: usize = 100_000;
const BATCH: usize = 100;

/// Submits `jobs` jobs of `payload` bytes as SubmitStream does (batches of `batch` queued in
/// order without waiting for their commits, each admitted first) to a writer bounded by
/// `bound` jobs and `bound_bytes`; answers the peaks of queued writes and admitted payload
/// KiB, and the jobs stored.
async fn pipelined(
    bound: usize,
    bound_bytes: usize,
    jobs: usize,
    batch: usize,
    payload: usize,
) -> (usize, usize, u64) {
    let (writer, _join) = Writer::spawn_bounded(slow_store(), bound, bound_bytes);
    let backlog = writer.backlog();
    let (h, _actor) = actor::spawn(
        Core::new(CoreConfig::default(), 1, 1),
        Settings::new(600, Vec::new()),
        writer,
        Clock::system(),
        std::sync::Arc::new(taskhive::metrics::Metrics::new()),
    );
    let now = h.clock().now_ms();
    let mut pending = Vec::new();
    let args = Bytes::from(vec![b'x'; payload]);
    for b in 0..jobs / batch {
        let specs: Vec<JobSpec> = (0..batch)
            .map(|i| JobSpec {
                task: "t".into(),
                name: format!("{b}-{i}"),
                args: args.clone(),
                sched_at: now + 3_600_000,
                timeout_ms: 60_000,
                priority: 0,
                retry: RetryPolicy::default(),
                trace: None,
                key: String::new(),
            })
            .collect();
        let admitted = h.admit(Demand::of(&specs)).await;
        let submitted = h.submit_each(specs);
        pending.push(tokio::spawn(async move {
            let (replies, commit) = submitted.await.unwrap();
            assert!(replies.iter().all(|r| r.is_ok()));
            commit.holding(admitted).wait().await.unwrap();
        }));
    }
    for r in join_all(pending).await {
        r.unwrap();
    }
    let (_, totals) = h.status(None).await.unwrap();
    (backlog.peak(), backlog.peak_kib(), totals.scheduled)
}

/// [`pipelined`] with JOBS one-byte jobs in batches of BATCH, no byte bound to speak of.
async fn pipelined_submits(bound: usize) -> (usize, u64) {
    let (peak, _, stored) = pipelined(bound, usize::MAX, JOBS, BATCH, 1).await;
    (peak, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_wait_for_a_slow_store_instead_of_queueing_without_end() {
    let (peak, stored) = pipelined_submits(2_000).await;
    assert_eq!(stored, JOBS as u64);
    assert!(peak <= 2_000, "{peak} writes queued with a bound of 2,000");
    // The same submits with no bound to speak of: the writes pile up behind the slow store.
    let (peak, stored) = pipelined_submits(usize::MAX).await;
    assert_eq!(stored, JOBS as u64);
    assert!(peak > 20_000, "only {peak} writes queued without a bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_wait_on_the_byte_bound() {
    // 2,000 jobs of 64 KiB (125 MiB), one per batch, a bound of 100,000 jobs and 2 MiB.
    const KIB: usize = 1024;
    let (_, peak_kib, stored) = pipelined(100_000, 2 * 1024 * KIB, 2_000, 1, 64 * KIB).await;
    assert_eq!(stored, 2_000);
    assert!(
        peak_kib <= 2 * 1024,
        "{peak_kib} KiB admitted with a bound of 2 MiB"
    );
    assert!(peak_kib >= 64, "nothing admitted: {peak_kib} KiB");
    // Without a byte bound the same submits pile up far past it.
    let (_, peak_kib, stored) = pipelined(100_000, usize::MAX, 2_000, 1, 64 * KIB).await;
    assert_eq!(stored, 2_000);
    assert!(
        peak_kib > 8 * 1024,
        "only {peak_kib} KiB admitted without a byte bound"
    );
}
