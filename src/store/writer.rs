//! Group commit: one thread owns the store and commits queued writes in batches.
//!
//! Requests queue their ops; the thread takes everything queued (up to a cap), applies it
//! in one transaction with one fsync, then acknowledges every request in the batch. Under
//! load batches grow by themselves, so durability does not cost throughput.
//!
//! When a commit fails (disk full, read-only, I/O error) memory is already ahead of the
//! store by that batch. The thread then refuses every later write, noting which jobs those
//! writes touched, and wakes the owner of the memory state ([`Writer::failed`]). The owner
//! asks for a [`Resync`]: the stored rows of every touched job, read after the last refused
//! write, so it can make memory agree with the store before writing again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::JobWrite;
use super::{Op, Store, StoreError};
use crate::scheduler::job::{JobId, JobRecord};

/// Ops in one batch at most; more waits for the next commit.
const MAX_BATCH_OPS: usize = 20_000;

/// Jobs submitted and not yet committed above which new submits wait ([`Backlog::admit`]):
/// five full batches.
pub const DEFAULT_BACKLOG_JOBS: usize = 5 * MAX_BATCH_OPS;

/// The writer's queue. Submits take a permit per job ([`Backlog::admit`]) and hold it until
/// their commit resolves, so at most the bound's worth of submitted jobs wait for the store:
/// when it falls behind (a slow disk) submitters wait instead of memory growing with a queue
/// of writes. Reports, removes and reads take none, so workers drain while submitters wait.
/// It also counts the ops queued and not yet committed, and their peak.
#[derive(Debug)]
pub struct Backlog {
    queued: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
    permits: Arc<Semaphore>,
}

/// Jobs admitted and not yet committed; dropping it lets others in.
#[must_use = "hold it until the submit's commit resolves"]
pub struct Admitted(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Backlog {
    fn new(limit: usize) -> Backlog {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Backlog {
            queued: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    fn add(&self, n: usize) {
        let now = self.queued.fetch_add(n, Ordering::AcqRel) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn committed(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Waits until `jobs` more may be submitted (at once, nearly always). A batch larger
    /// than the bound waits for the whole bound.
    pub async fn admit(&self, jobs: usize) -> Admitted {
        let n = jobs.clamp(1, self.limit) as u32;
        Admitted(self.permits.clone().acquire_many_owned(n).await.ok())
    }

    /// Ops queued and not yet committed.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most ops ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Jobs admitted and not yet committed at most.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Jobs whose writes in a commit were fenced out (cluster: the claim had passed to another
/// node), so the commit changed nothing for them.
type Fenced = Arc<BTreeSet<JobId>>;

type Ack = oneshot::Sender<Result<Fenced, StoreError>>;

/// Payloads read back from the store, by job: what [`Writer::read_args`] hands its callback.
pub type ReadArgs = Result<std::collections::HashMap<JobId, bytes::Bytes>, StoreError>;

/// Called on the writer thread with what a read found.
pub type ReadDone = Box<dyn FnOnce(ReadArgs) + Send>;

enum Unit {
    Write {
        ops: Vec<Op>,
        ack: Option<Ack>,
    },
    Resync {
        reply: oneshot::Sender<Result<Resync, StoreError>>,
    },
    /// Payloads of jobs whose memory let go of them; read after every write queued before.
    Read {
        ids: Vec<JobId>,
        done: ReadDone,
    },
}

impl Unit {
    /// A read of a payload that `ops` (gathered, not yet applied) writes.
    fn waits_for(&self, ops: &[Op]) -> bool {
        let Unit::Read { ids, .. } = self else {
            return false;
        };
        ops.iter()
            .any(|o| matches!(o, Op::Job(JobWrite::Upsert(r)) if ids.contains(&r.id)))
    }
}

/// What memory must be made to agree with after failed commits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resync {
    /// Jobs a refused op named by id.
    pub ids: Vec<JobId>,
    /// Tasks a refused op deleted whole.
    pub tasks: Vec<String>,
    /// The stored rows of those jobs and of every job of those tasks.
    pub jobs: Vec<JobRecord>,
    /// Every stored run-time setting (a refused `SetConfig` changed memory too).
    pub config: Vec<(String, i64)>,
}

/// The writes refused since the first failed commit.
struct Refused {
    error: StoreError,
    ids: BTreeSet<JobId>,
    tasks: BTreeSet<String>,
}

impl Refused {
    fn note(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Job(JobWrite::Upsert(r)) => {
                    self.ids.insert(r.id);
                }
                Op::Job(JobWrite::Reschedule { id, .. }) | Op::Job(JobWrite::Delete(id)) => {
                    self.ids.insert(*id);
                }
                Op::Release(ids) => self.ids.extend(ids.iter().copied()),
                Op::Job(JobWrite::DeleteTask(t)) => {
                    self.tasks.insert(t.clone());
                }
                // Load jobs and executions change memory only after their commit; settings
                // are reloaded whole.
                Op::SetConfig { .. }
                | Op::SaveLoadJob { .. }
                | Op::ArchiveExec(_)
                | Op::TrimExecs(_)
                | Op::PutSchedule(_)
                | Op::DeleteSchedule(_)
                | Op::SetTaskPaused { .. }
                | Op::SetTaskLimits { .. } => {}
            }
        }
    }
}

/// Handle to the writer thread. Dropping every handle lets the thread drain and stop.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Unit>,
    failed: Arc<Notify>,
    /// Set before the failed commit's callers hear of it, cleared by a successful resync:
    /// anything they do next sees it.
    refusing: Arc<AtomicBool>,
    backlog: Arc<Backlog>,
}

/// Resolves once the ops it stands for are committed.
pub struct Commit {
    rx: Option<oneshot::Receiver<Result<Fenced, StoreError>>>,
    /// The job whose write this commit acknowledges: a fenced-out write fails the wait.
    job: Option<JobId>,
    /// Backlog permits of the jobs it commits, let go once it resolves.
    held: Option<Admitted>,
}

impl Commit {
    /// Nothing to wait for.
    pub fn done() -> Self {
        Commit {
            rx: None,
            job: None,
            held: None,
        }
    }

    fn pending(rx: oneshot::Receiver<Result<Fenced, StoreError>>) -> Self {
        Commit {
            rx: Some(rx),
            job: None,
            held: None,
        }
    }

    /// The same commit, holding the backlog permits of its jobs until it resolves.
    pub fn holding(mut self, admitted: Option<Admitted>) -> Self {
        self.held = admitted;
        self
    }

    /// The same commit, failing its wait if `job`'s write was fenced out: an acknowledgement
    /// follows what was written, not what was asked.
    pub fn for_job(mut self, job: JobId) -> Self {
        self.job = Some(job);
        self
    }

    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), StoreError> {
        let fenced = match self.rx {
            None => return Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed))?,
        };
        match self.job {
            Some(id) if fenced.contains(&id) => Err(StoreError::Fenced(id)),
            _ => Ok(()),
        }
    }
}

fn resync_from<S: Store>(store: &mut S, refused: &Refused) -> Result<Resync, StoreError> {
    let ids: Vec<JobId> = refused.ids.iter().copied().collect();
    let tasks: Vec<String> = refused.tasks.iter().cloned().collect();
    let jobs = store.load_some(&ids, &tasks)?;
    let config = store.load_config()?;
    Ok(Resync {
        ids,
        tasks,
        jobs,
        config,
    })
}

impl Writer {
    /// Starts the writer thread over `store`, its backlog bounded by [`DEFAULT_BACKLOG_JOBS`].
    pub fn spawn<S: Store>(store: S) -> (Writer, JoinHandle<()>) {
        Self::spawn_bounded(store, DEFAULT_BACKLOG_JOBS)
    }

    /// Starts the writer thread over `store`; submits wait while `backlog` submitted jobs
    /// are not yet committed.
    pub fn spawn_bounded<S: Store>(mut store: S, backlog: usize) -> (Writer, JoinHandle<()>) {
        let backlog = Arc::new(Backlog::new(backlog));
        let queue = backlog.clone();
        let (tx, rx) = mpsc::channel::<Unit>();
        let failed = Arc::new(Notify::new());
        let notify = failed.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let flag = refusing.clone();
        let join = std::thread::Builder::new()
            .name("taskhive-store".into())
            .spawn(move || {
                let mut ops: Vec<Op> = Vec::new();
                let mut acks: Vec<Ack> = Vec::new();
                let mut refused: Option<Refused> = None;
                let mut held: Option<Unit> = None;
                loop {
                    let first = match held.take() {
                        Some(u) => u,
                        None => match rx.recv() {
                            Ok(u) => u,
                            Err(_) => break,
                        },
                    };
                    let mut next = Some(first);
                    while let Some(u) = next.take() {
                        match u {
                            Unit::Write { ops: o, ack } => {
                                ops.extend(o);
                                acks.extend(ack);
                            }
                            Unit::Resync { reply } => {
                                // Only reached first in a batch: a resync later in the
                                // queue is held back below until the writes before it are done.
                                let r = match &refused {
                                    None => Ok(Resync::default()),
                                    Some(f) => resync_from(&mut store, f),
                                };
                                if r.is_ok() {
                                    refused = None;
                                    flag.store(false, Ordering::Release);
                                }
                                let _ = reply.send(r);
                                break;
                            }
                            Unit::Read { ids, done } => {
                                // Reached only when no write gathered but not yet applied
                                // names these jobs' payloads (below): what is committed is
                                // what they asked for.
                                done(store.read_args(&ids).map(|v| v.into_iter().collect()));
                            }
                        }
                        if ops.len() >= MAX_BATCH_OPS {
                            break;
                        }
                        match rx.try_recv() {
                            // A read waits for the batch only when the batch writes one of
                            // its payloads (a job submitted and handed out at once); else it
                            // is answered now, not an fsync later.
                            Ok(u @ Unit::Read { .. }) if u.waits_for(&ops) => held = Some(u),
                            Ok(u @ Unit::Resync { .. }) => held = Some(u),
                            Ok(u) => next = Some(u),
                            Err(_) => {}
                        }
                    }
                    let result = match &mut refused {
                        Some(f) => {
                            f.note(&ops);
                            Err(f.error.clone())
                        }
                        None if ops.is_empty() => Ok(Fenced::default()),
                        // Never written: a record without its payload (a bug upstream).
                        None if ops.iter().any(
                            |o| matches!(o, Op::Job(JobWrite::Upsert(r)) if r.spilled.is_some()),
                        ) =>
                        {
                            Err(StoreError::Backend(
                                "internal error: a job's write lacks its payload".into(),
                            ))
                        }
                        None => store.apply(&ops).map(|()| {
                            let fenced = store.take_fenced();
                            Arc::new(fenced.into_iter().collect())
                        }),
                    };
                    if let Err(e) = &result {
                        if refused.is_none() {
                            tracing::error!(error = %e, ops = ops.len(), "store commit failed");
                            let mut f = Refused {
                                error: e.clone(),
                                ids: BTreeSet::new(),
                                tasks: BTreeSet::new(),
                            };
                            f.note(&ops);
                            refused = Some(f);
                            flag.store(true, Ordering::Release);
                            notify.notify_one();
                        }
                    }
                    queue.committed(ops.len());
                    for ack in acks.drain(..) {
                        let _ = ack.send(result.clone());
                    }
                    ops.clear();
                }
            })
            .expect("spawn store writer thread");
        (
            Writer {
                tx,
                failed,
                refusing,
                backlog,
            },
            join,
        )
    }

    /// Queues `ops`; the returned [`Commit`] resolves once they are committed.
    pub fn write(&self, ops: Vec<Op>) -> Commit {
        if ops.is_empty() {
            return Commit::done();
        }
        let (ack, rx) = oneshot::channel();
        let n = ops.len();
        self.backlog.add(n);
        if self
            .tx
            .send(Unit::Write {
                ops,
                ack: Some(ack),
            })
            .is_err()
        {
            self.backlog.committed(n);
            let (ack, rx) = oneshot::channel();
            let _ = ack.send(Err(StoreError::Closed));
            return Commit::pending(rx);
        }
        Commit::pending(rx)
    }

    /// Queues `ops` with no one waiting for them (internal changes such as lease expiry).
    pub fn write_detached(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            let n = ops.len();
            self.backlog.add(n);
            if self.tx.send(Unit::Write { ops, ack: None }).is_err() {
                self.backlog.committed(n);
            }
        }
    }

    /// The queue of writes not yet committed, which submits wait on.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// A commit that resolves once everything queued before it is committed.
    pub fn barrier(&self) -> Commit {
        let (ack, rx) = oneshot::channel();
        if self
            .tx
            .send(Unit::Write {
                ops: Vec::new(),
                ack: Some(ack),
            })
            .is_err()
        {
            return Commit::done();
        }
        Commit::pending(rx)
    }

    /// Reads the stored payloads of `ids` as left by every write queued before, and hands
    /// them to `done` on the writer thread (keep it short: it holds up the writes). It waits
    /// for a commit only when a write not yet applied stores one of those payloads.
    pub fn read_args(&self, ids: Vec<JobId>, done: ReadDone) {
        if let Err(mpsc::SendError(Unit::Read { done, .. })) =
            self.tx.send(Unit::Read { ids, done })
        {
            done(Err(StoreError::Closed));
        }
    }

    /// True from a failed commit until the next successful [`Writer::resync`].
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    /// Resolves when a commit has failed and writes are being refused until a [`Writer::resync`].
    pub async fn failed(&self) {
        self.failed.notified().await
    }

    /// Wakes [`Writer::failed`] again after `delay` (a resync that could not read the store).
    pub fn retry_failed_after(&self, delay: std::time::Duration) {
        let notify = self.failed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            notify.notify_one();
        });
    }

    /// Once every write queued before it is done: the stored state of everything refused
    /// since the first failed commit, and writes are accepted again. Empty when none failed.
    pub async fn resync(&self) -> Result<Resync, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Unit::Resync { reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }
}
