//! The writer's sync thread, for a store whose commits are made durable apart from `apply`
//! ([`Store::take_syncer`](super::Store::take_syncer): SQLite with `--sync full`).
//!
//! The writer applies a batch and hands its acknowledgements here; this thread syncs once
//! for every batch handed over meanwhile and only then tells their callers. The writer
//! applies the next batch while the last one is synced, so the disk's flush no longer stops
//! the writer, and one flush covers every batch applied while the one before was under way.
//! Acknowledged still means durable: no caller hears of success before a sync that started
//! after its batch was written.
//!
//! A failed sync leaves unknown what reached the disk, and the page cache may have dropped
//! the pages it could not write, so a retry proves nothing (PostgreSQL stops on it for the
//! same reason). The store then refuses every write until the server restarts and reads
//! back what is on disk; the batches not yet synced fail with the error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
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

/// Handle to the sync thread.
pub(super) struct Syncing {
    tx: mpsc::Sender<Synced>,
    join: JoinHandle<()>,
    poisoned: Arc<Mutex<Option<StoreError>>>,
}

impl Syncing {
    /// Starts the thread; a failed sync sets `refusing` and wakes `failed`, as a failed commit does.
    pub fn spawn(
        mut syncer: Box<dyn Syncer>,
        refusing: Arc<AtomicBool>,
        failed: Arc<Notify>,
    ) -> Syncing {
        let (tx, rx) = mpsc::channel::<Synced>();
        let poisoned = Arc::new(Mutex::new(None));
        let shared = poisoned.clone();
        let join = std::thread::Builder::new()
            .name("taskhive-sync".into())
            .spawn(move || {
                let mut poison: Option<StoreError> = None;
                let mut group = Vec::new();
                while let Ok(first) = rx.recv() {
                    group.push(first);
                    group.extend(rx.try_iter());
                    if poison.is_none() && group.iter().any(|s| s.applied) {
                        if let Err(e) = syncer.sync() {
                            tracing::error!(error = %e, "store sync failed: writes refused until restart");
                            *shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                            refusing.store(true, Ordering::Release);
                            failed.notify_one();
                            poison = Some(e);
                        }
                    }
                    for s in group.drain(..) {
                        let result = match (&poison, s.result) {
                            (Some(e), Ok(_)) => Err(e.clone()),
                            (_, r) => r,
                        };
                        for ack in s.acks {
                            ack.tell(result.clone());
                        }
                    }
                }
            })
            .expect("spawn store sync thread");
        Syncing { tx, join, poisoned }
    }

    /// Hands a batch over; its acks are told after the next sync.
    pub fn send(&self, batch: Synced) {
        if let Err(mpsc::SendError(batch)) = self.tx.send(batch) {
            // The thread is gone (it panicked): nothing can be made durable any more.
            for ack in batch.acks {
                ack.tell(Err(StoreError::Closed));
            }
        }
    }

    /// The error of a failed sync, once there was one.
    pub fn poisoned(&self) -> Option<StoreError> {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Tells every batch handed over, then stops the thread.
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.join.join();
    }
}
