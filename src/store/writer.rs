//! Group commit: one thread owns the store and commits queued writes in batches.
//!
//! Requests queue their ops; the thread takes everything queued (up to a cap), applies it
//! in one transaction with one fsync, then acknowledges every request in the batch. Under
//! load batches grow by themselves, so durability does not cost throughput.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Op, Store, StoreError};

/// Ops in one batch at most; more waits for the next commit.
const MAX_BATCH_OPS: usize = 20_000;

type Ack = oneshot::Sender<Result<(), StoreError>>;

struct Unit {
    ops: Vec<Op>,
    ack: Option<Ack>,
}

/// Handle to the writer thread. Dropping every handle lets the thread drain and stop.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Unit>,
}

/// Resolves once the ops it stands for are committed.
pub struct Commit(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Commit {
    /// Nothing to wait for.
    pub fn done() -> Self {
        Commit(None)
    }

    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn spawn<S: Store>(mut store: S) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Unit>();
        let join = std::thread::Builder::new()
            .name("taskhive-store".into())
            .spawn(move || {
                let mut ops: Vec<Op> = Vec::new();
                let mut acks: Vec<Ack> = Vec::new();
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(u) = next.take() {
                        ops.extend(u.ops);
                        acks.extend(u.ack);
                        if ops.len() >= MAX_BATCH_OPS {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    let result = if ops.is_empty() {
                        Ok(())
                    } else {
                        store.apply(&ops)
                    };
                    if let Err(e) = &result {
                        tracing::error!(error = %e, ops = ops.len(), "store commit failed");
                    }
                    for ack in acks.drain(..) {
                        let _ = ack.send(result.clone());
                    }
                    ops.clear();
                }
            })
            .expect("spawn store writer thread");
        (Writer { tx }, join)
    }

    /// Queues `ops`; the returned [`Commit`] resolves once they are committed.
    pub fn write(&self, ops: Vec<Op>) -> Commit {
        if ops.is_empty() {
            return Commit::done();
        }
        let (ack, rx) = oneshot::channel();
        if self
            .tx
            .send(Unit {
                ops,
                ack: Some(ack),
            })
            .is_err()
        {
            let (ack, rx) = oneshot::channel();
            let _ = ack.send(Err(StoreError::Closed));
            return Commit(Some(rx));
        }
        Commit(Some(rx))
    }

    /// Queues `ops` with no one waiting for them (internal changes such as lease expiry).
    pub fn write_detached(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            let _ = self.tx.send(Unit { ops, ack: None });
        }
    }

    /// A commit that resolves once everything queued before it is committed.
    pub fn barrier(&self) -> Commit {
        let (ack, rx) = oneshot::channel();
        if self
            .tx
            .send(Unit {
                ops: Vec::new(),
                ack: Some(ack),
            })
            .is_err()
        {
            return Commit::done();
        }
        Commit(Some(rx))
    }
}
