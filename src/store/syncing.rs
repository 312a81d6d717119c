//! The writer's sync thread, for a store whose commits are made durable apart from `apply`
//! ([`Store::take_syncer`](super::Store::take_syncer): SQLite with `--sync full`).
//!
//! Under load the writer applies a batch and hands its acknowledgements here; this thread
//! syncs once for every batch handed over meanwhile and only then tells their callers. The
//! writer applies the next batch while the last one is synced, so the disk's flush no longer
//! stops the writer, and one flush covers every batch applied while the one before was under
//! way. Lightly loaded (nothing else queued for the writer, nothing waiting here) the writer
//! syncs on its own thread instead: a hand-off would cost the caller a thread's wake-up and
//! save nothing. Acknowledged still means durable: no caller hears of success before a sync
//! that started after its batch was written, and batches are told in the order applied.
//!
//! A failed sync leaves unknown what reached the disk, and the page cache may have dropped
//! the pages it could not write, so a retry proves nothing (PostgreSQL stops on it for the
//! same reason). The store then refuses every write until the server restarts and reads
//! back what is on disk; the batches not yet synced fail with the error.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::Notify;

use super::writer::Ack;
use super::{StoreError, Syncer};
use crate::scheduler::durable::Fenced;

/// One batch's outcome, waiting for the sync that makes it durable.
pub(super) struct Synced {
    pub result: Result<Fenced, StoreError>,
    /// Something was written: the batch needs a sync before its acks.
    pub applied: bool,
    pub acks: Vec<Ack>,
}

/// What the writer's thread and the sync thread share.
struct Shared {
    syncer: Mutex<Box<dyn Syncer>>,
    poisoned: Mutex<Option<StoreError>>,
    /// Batches handed to the thread and not yet told.
    pending: AtomicUsize,
    refusing: Arc<AtomicBool>,
    failed: Arc<Notify>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Syncs when one of `group` wrote something (and no sync failed before), then tells
    /// every batch of it in order. `group` is a drain of the sync thread's batches, or one
    /// batch in an array (no allocation on the writer's own path).
    fn sync_and_tell<G>(&self, group: G)
    where
        G: AsRef<[Synced]> + IntoIterator<Item = Synced>,
    {
        let mut poison = lock(&self.poisoned).clone();
        if poison.is_none() && group.as_ref().iter().any(|s| s.applied) {
            if let Err(e) = lock(&self.syncer).sync() {
                tracing::error!(error = %e, "store sync failed: writes refused until restart");
                *lock(&self.poisoned) = Some(e.clone());
                self.refusing.store(true, Ordering::Release);
                self.failed.notify_one();
                poison = Some(e);
            }
        }
        for s in group {
            let result = match (&poison, s.result) {
                (Some(e), Ok(_)) => Err(e.clone()),
                (_, r) => r,
            };
            for ack in s.acks {
                ack.tell(result.clone());
            }
        }
    }
}

/// Handle to the sync thread.
pub(super) struct Syncing {
    tx: mpsc::Sender<Synced>,
    join: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Syncing {
    /// Starts the thread; a failed sync sets `refusing` and wakes `failed`, as a failed commit does.
    pub fn spawn(
        syncer: Box<dyn Syncer>,
        refusing: Arc<AtomicBool>,
        failed: Arc<Notify>,
    ) -> Syncing {
        let (tx, rx) = mpsc::channel::<Synced>();
        let shared = Arc::new(Shared {
            syncer: Mutex::new(syncer),
            poisoned: Mutex::new(None),
            pending: AtomicUsize::new(0),
            refusing,
            failed,
        });
        let ours = shared.clone();
        let join = std::thread::Builder::new()
            .name("taskhive-sync".into())
            .spawn(move || {
                let mut group = Vec::new();
                while let Ok(first) = rx.recv() {
                    group.push(first);
                    group.extend(rx.try_iter());
                    let n = group.len();
                    ours.sync_and_tell(group.drain(..));
                    ours.pending.fetch_sub(n, Ordering::AcqRel);
                }
            })
            .expect("spawn store sync thread");
        Syncing { tx, join, shared }
    }

    /// Makes `batch` durable and tells its acks: on the calling thread when `alone` (nothing
    /// else is queued for the writer) and the sync thread has nothing of its own, else on the
    /// sync thread after the batches handed to it before.
    pub fn hand(&self, batch: Synced, alone: bool) {
        if alone && self.shared.pending.load(Ordering::Acquire) == 0 {
            self.shared.sync_and_tell([batch]);
            return;
        }
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(batch)) = self.tx.send(batch) {
            // The thread is gone (it panicked): nothing can be made durable any more.
            for ack in batch.acks {
                ack.tell(Err(StoreError::Closed));
            }
        }
    }

    /// The error of a failed sync, once there was one.
    pub fn poisoned(&self) -> Option<StoreError> {
        lock(&self.shared.poisoned).clone()
    }

    /// Tells every batch handed over, then stops the thread.
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.join.join();
    }
}
