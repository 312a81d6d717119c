//! What the actor tells one connected worker, in order: jobs leased to it and cancels.
//!
//! A job whose payload the memory budget let go (`core/payloads.rs`) travels with a pending
//! read instead of its payload; [`WorkerRx::recv`] waits for that read before it yields the
//! job, so the worker's connection task (never the actor) waits for the store, and what a
//! worker receives keeps the order the actor sent it in.

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::actor::ToWorker;
use super::job::JobView;

/// A payload being read back from the store: None when it could not be.
pub type PayloadRx = oneshot::Receiver<Option<Bytes>>;

enum Sent {
    Now(ToWorker),
    /// A job whose payload is being read.
    Reading(JobView, PayloadRx),
}

/// Where the actor pushes what it tells one worker.
#[derive(Clone, Debug)]
pub struct WorkerTx(mpsc::UnboundedSender<Sent>);

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sent::Now(m) => f.debug_tuple("Now").field(m).finish(),
            Sent::Reading(v, _) => f.debug_tuple("Reading").field(&v.record.id).finish(),
        }
    }
}

/// The worker has gone (its receiver was dropped).
#[derive(Debug)]
pub struct Gone;

impl WorkerTx {
    /// Sends a message as it is.
    pub fn send(&self, m: ToWorker) -> Result<(), Gone> {
        self.0.send(Sent::Now(m)).map_err(|_| Gone)
    }

    /// Sends a job whose payload arrives on `payload`.
    pub(crate) fn send_reading(&self, job: JobView, payload: PayloadRx) -> Result<(), Gone> {
        self.0.send(Sent::Reading(job, payload)).map_err(|_| Gone)
    }
}

/// Receives what the actor tells one worker; see the module docs.
pub struct WorkerRx {
    rx: mpsc::UnboundedReceiver<Sent>,
    /// A job waiting for its payload: kept here so a cancelled `recv` loses nothing.
    reading: Option<(JobView, PayloadRx)>,
}

/// A channel from the actor to one worker's connection.
pub fn worker_channel() -> (WorkerTx, WorkerRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    (WorkerTx(tx), WorkerRx { rx, reading: None })
}

impl WorkerRx {
    /// The next message; None once the actor let go of the worker. Cancel-safe (for
    /// `select!`): a job whose payload is still being read stays here for the next call.
    pub async fn recv(&mut self) -> Option<ToWorker> {
        loop {
            if self.reading.is_none() {
                match self.rx.recv().await? {
                    Sent::Now(m) => return Some(m),
                    Sent::Reading(job, payload) => self.reading = Some((job, payload)),
                }
            }
            let (_, payload) = self.reading.as_mut().expect("set above");
            let read = payload.await;
            let (mut job, _) = self.reading.take().expect("set above");
            match read {
                Ok(Some(args)) => {
                    job.record.args = args;
                    job.record.spilled = None;
                    return Some(ToWorker::Job(job));
                }
                // Its lease runs out and the job is handed out again.
                _ => tracing::error!(
                    job = job.record.id,
                    "payload could not be read from the store; the job goes out again when its lease expires"
                ),
            }
        }
    }

    /// The messages as a stream.
    pub(crate) fn into_stream(self) -> impl Stream<Item = ToWorker> + Send + 'static {
        futures_util::stream::unfold(self, |mut rx| async move {
            let m = rx.recv().await?;
            Some((m, rx))
        })
    }
}
