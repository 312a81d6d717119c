//! A store whose commits are made durable apart from `apply` (SQLite with `--sync full`: the
//! WAL's fdatasync on the writer's sync thread). No caller hears of a commit before the sync
//! that covers it has returned; a failed sync fails the commits it covered and every write
//! after it, and the writer refuses writes (and resyncs) until a restart.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::stores::HookedStore;
use common::within;
use futures_util::FutureExt;
use taskhive::scheduler::durable::Durable;
use taskhive::scheduler::write::Write;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;
use taskhive::store::{Store, StoreError};

/// The stored `timeout` setting.
fn stored(store: &MemoryStore) -> Option<i64> {
    let config = store.clone().load_config().expect("config");
    config
        .into_iter()
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| v)
}

fn setting(value: i64) -> Vec<Write> {
    vec![Write::SetConfig {
        key: "timeout".into(),
        value,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_acknowledged_only_after_its_sync() {
    // Each sync tells the test it started, then waits for the test to let it return.
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, release_rx) = (Mutex::new(started_tx), Mutex::new(release_rx));
    let syncs = Arc::new(AtomicUsize::new(0));
    let counted = syncs.clone();
    let store = MemoryStore::default();
    let (writer, _join) =
        Writer::spawn(HookedStore::new(store.clone(), |_| Ok(())).syncs(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            started_tx.lock().unwrap().send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
            Ok(())
        }));

    let mut first = Box::pin(Durable::write(&writer, setting(1)).wait());
    let wait_started = || {
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("a sync starts")
    };
    wait_started();
    // Applied (the store has it) but not yet synced: its caller has heard nothing.
    assert_eq!(stored(&store), Some(1), "applied before the sync");
    assert!(
        (&mut first).now_or_never().is_none(),
        "acknowledged before its sync returned"
    );

    // Batches applied while a sync is under way wait for the next one, together.
    let second = Durable::write(&writer, setting(2));
    let third = Durable::write(&writer, setting(3));
    let barrier = writer.barrier();
    within(10, async {
        while stored(&store) != Some(3) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    release.send(()).unwrap();
    within(10, first).await.expect("the first commit");
    wait_started();
    release.send(()).unwrap();
    within(10, second.wait()).await.expect("second");
    within(10, third.wait()).await.expect("third");
    within(10, barrier.wait()).await.expect("barrier");
    assert_eq!(
        syncs.load(Ordering::SeqCst),
        2,
        "one sync for the batches applied during the first"
    );

    // A barrier with nothing new to make durable needs no sync.
    within(10, writer.barrier().wait()).await.expect("barrier");
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_its_commits_and_refuses_writes_until_a_restart() {
    let fail = Arc::new(AtomicBool::new(false));
    let failing = fail.clone();
    let (writer, _join) = Writer::spawn(
        HookedStore::new(MemoryStore::default(), |_| Ok(())).syncs(move || {
            if failing.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("fdatasync: input/output error".into()));
            }
            Ok(())
        }),
    );
    within(10, Durable::write(&writer, setting(1)).wait())
        .await
        .expect("synced");
    assert!(!writer.refusing());

    let failures = writer.failures();
    let notified = failures.notified();
    fail.store(true, Ordering::SeqCst);
    let e = within(10, Durable::write(&writer, setting(2)).wait())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("input/output error"), "{e}");
    assert!(writer.refusing(), "refusing once the sync failed");
    within(10, notified).await;

    // Even with the disk back, nothing is accepted: what reached it is unknown.
    fail.store(false, Ordering::SeqCst);
    let e = within(10, Durable::write(&writer, setting(3)).wait())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("input/output error"), "{e}");
    let e = within(10, writer.resync()).await.unwrap_err();
    assert!(e.to_string().contains("input/output error"), "{e}");
    assert!(writer.refusing(), "a resync does not lift it");
}
