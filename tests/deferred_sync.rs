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

/// A gate a store hook stops at: it tells the test it got there (with its thread's name) and
/// waits for the test to open it.
struct Gate {
    reached: Mutex<mpsc::Sender<String>>,
    open: Mutex<mpsc::Receiver<()>>,
    /// Once set, the hook no longer stops.
    lifted: AtomicBool,
}

impl Gate {
    fn new() -> (Arc<Gate>, mpsc::Receiver<String>, mpsc::Sender<()>) {
        let (reached, at) = mpsc::channel();
        let (open, opened) = mpsc::channel();
        let gate = Gate {
            reached: Mutex::new(reached),
            open: Mutex::new(opened),
            lifted: AtomicBool::new(false),
        };
        (Arc::new(gate), at, open)
    }

    fn stop(&self) {
        if self.lifted.load(Ordering::SeqCst) {
            return;
        }
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.reached.lock().unwrap().send(name).unwrap();
        self.open.lock().unwrap().recv().unwrap();
    }
}

fn reached(at: &mpsc::Receiver<String>) -> String {
    at.recv_timeout(Duration::from_secs(10))
        .expect("the hook was reached")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_acknowledged_only_after_its_sync() {
    let (sync_gate, sync_at, open_sync) = Gate::new();
    let lift = sync_gate.clone();
    let (apply_gate, apply_at, open_apply) = Gate::new();
    let syncs = Arc::new(AtomicUsize::new(0));
    let counted = syncs.clone();
    let store = MemoryStore::default();
    let hooked = HookedStore::new(store.clone(), move |ops| {
        if ops.iter().any(|o| format!("{o:?}").contains("value: 2")) {
            apply_gate.stop();
        }
        Ok(())
    });
    let (writer, _join) = Writer::spawn(hooked.syncs(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        sync_gate.stop();
        Ok(())
    }));

    // Alone, the writer syncs on its own thread; its caller hears nothing before that returns.
    let mut first = Box::pin(Durable::write(&writer, setting(1)).wait());
    assert_eq!(
        reached(&sync_at),
        "taskhive-store",
        "a lone batch syncs in place"
    );
    assert_eq!(stored(&store), Some(1), "applied before the sync");
    assert!(
        (&mut first).now_or_never().is_none(),
        "acknowledged before its sync returned"
    );
    open_sync.send(()).unwrap();
    within(10, first).await.expect("the first commit");

    // With more queued behind it, a batch's sync goes to the sync thread and the writer
    // applies the next batch meanwhile.
    let second = Durable::write(&writer, setting(2));
    assert_eq!(reached(&apply_at), "taskhive-store");
    let third = Durable::write(&writer, setting(3));
    let barrier = writer.barrier();
    open_apply.send(()).unwrap();
    assert_eq!(reached(&sync_at), "taskhive-sync", "handed over");
    within(10, async {
        while stored(&store) != Some(3) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut second = Box::pin(second.wait());
    assert!(
        (&mut second).now_or_never().is_none(),
        "acknowledged before its sync returned"
    );
    // From here syncs go through: the third batch is synced with the second (when the
    // thread took both at once) or after it.
    lift.lifted.store(true, Ordering::SeqCst);
    open_sync.send(()).unwrap();
    within(10, second).await.expect("second");
    within(10, third.wait()).await.expect("third");
    within(10, barrier.wait()).await.expect("barrier");
    let n = syncs.load(Ordering::SeqCst);
    assert!((2..=3).contains(&n), "{n} syncs");

    // A barrier with nothing new to make durable needs no sync.
    within(10, writer.barrier().wait()).await.expect("barrier");
    assert_eq!(syncs.load(Ordering::SeqCst), n);
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
