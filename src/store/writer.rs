//! Group commit: one thread owns the store and commits queued writes in batches.
//!
//! Requests queue their ops; the thread takes everything queued (up to a cap), applies it
//! in one transaction with one fsync, then acknowledges every request in the batch. Under
//! load batches grow by themselves, so durability does not cost throughput.
//!
//! When a commit fails (disk full, read-only, I/O error) memory is already ahead of the
//! store by that batch. The thread then refuses every later write, noting which jobs those
//! writes touched, and wakes the owner of the memory state ([`Durable::failures`]). The owner
//! asks for a [`Resync`]: the stored rows of every touched job, read after the last refused
//! write, so it can make memory agree with the store before writing again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, Notify};

use super::syncing::{Synced, Syncing};
use super::{JobWrite, Write};
use super::{Op, Store, StoreError};
use crate::scheduler::durable::{Backlog, Commit, Durable, Fenced, ReadDone, Resync, Then};
use crate::scheduler::job::JobId;

/// Ops in one batch at most; more waits for the next commit.
const MAX_BATCH_OPS: usize = 20_000;

/// Jobs submitted and not yet committed above which new submits wait ([`Backlog::admit`]):
/// five full batches.
pub const DEFAULT_BACKLOG_JOBS: usize = 5 * MAX_BATCH_OPS;

/// Payload bytes submitted and not yet committed above which new submits wait: about a
/// second of writes for a disk that takes 256 MB/s, so large payloads still commit in big
/// batches while memory stays bounded.
pub const DEFAULT_BACKLOG_BYTES: usize = 256 << 20;

/// Who hears of a commit: a [`Commit`]'s receiver, or a [`Then`].
pub(super) enum Ack {
    Commit(oneshot::Sender<Result<Fenced, StoreError>>),
    Then(Then),
}

impl Ack {
    pub(super) fn tell(self, result: Result<Fenced, StoreError>) {
        match self {
            Ack::Commit(tx) => {
                let _ = tx.send(result);
            }
            Ack::Then(then) => then(result),
        }
    }
}

/// Ops as queued: the scheduler's own, or any op (the load runner's).
enum Ops {
    Scheduler(Vec<Write>),
    Any(Vec<Op>),
}

impl Ops {
    fn len(&self) -> usize {
        match self {
            Ops::Scheduler(w) => w.len(),
            Ops::Any(o) => o.len(),
        }
    }
}

enum Unit {
    Write {
        ops: Ops,
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
        ops.iter().any(
            |o| matches!(o, Op::Scheduler(Write::Job(JobWrite::Upsert(r))) if ids.contains(&r.id)),
        )
    }
}

/// The writes refused since the first failed commit.
struct Refused {
    error: StoreError,
    ids: BTreeSet<JobId>,
    tasks: BTreeSet<String>,
}

impl Refused {
    fn new(error: StoreError) -> Refused {
        Refused {
            error,
            ids: BTreeSet::new(),
            tasks: BTreeSet::new(),
        }
    }

    fn note(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Scheduler(Write::Job(JobWrite::Upsert(r))) => {
                    self.ids.insert(r.id);
                }
                Op::Scheduler(Write::Job(JobWrite::Reschedule { id, .. }))
                | Op::Scheduler(Write::Job(JobWrite::Delete(id))) => {
                    self.ids.insert(*id);
                }
                Op::Scheduler(Write::Release(ids)) => self.ids.extend(ids.iter().copied()),
                Op::Scheduler(Write::Job(JobWrite::DeleteTask(t))) => {
                    self.tasks.insert(t.clone());
                }
                // Load jobs and executions change memory only after their commit; settings
                // are reloaded whole.
                Op::Scheduler(Write::SetConfig { .. })
                | Op::SaveLoadJob { .. }
                | Op::ArchiveExec(_)
                | Op::TrimExecs(_)
                | Op::Scheduler(Write::PutSchedule(_))
                | Op::Scheduler(Write::DeleteSchedule(_))
                | Op::Scheduler(Write::SetTaskPaused { .. })
                | Op::Scheduler(Write::SetTaskLimits { .. }) => {}
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
    /// Starts the writer thread over `store`, its backlog bounded by [`DEFAULT_BACKLOG_JOBS`]
    /// and [`DEFAULT_BACKLOG_BYTES`].
    pub fn spawn<S: Store>(store: S) -> (Writer, JoinHandle<()>) {
        Self::spawn_bounded(store, DEFAULT_BACKLOG_JOBS, DEFAULT_BACKLOG_BYTES)
    }

    /// Starts the writer thread over `store`; submits wait while `jobs` submitted jobs, or
    /// `bytes` of their payloads, are not yet committed.
    pub fn spawn_bounded<S: Store>(
        mut store: S,
        jobs: usize,
        bytes: usize,
    ) -> (Writer, JoinHandle<()>) {
        let backlog = Arc::new(Backlog::new(jobs, bytes));
        let queue = backlog.clone();
        let (tx, rx) = mpsc::channel::<Unit>();
        let failed = Arc::new(Notify::new());
        let notify = failed.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let flag = refusing.clone();
        let join = std::thread::Builder::new()
            .name("taskhive-store".into())
            .spawn(move || {
                let syncing = match store.take_syncer() {
                    Ok(s) => s.map(|s| Syncing::spawn(s, flag.clone(), notify.clone())),
                    Err(e) => {
                        tracing::warn!(error = %e, "commits sync in the writer thread");
                        None
                    }
                };
                let poisoned = || syncing.as_ref().and_then(Syncing::poisoned);
                let mut policy = WakePolicy::default();
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
                                match o {
                                    Ops::Scheduler(w) => ops.extend(w.into_iter().map(Op::Scheduler)),
                                    Ops::Any(o) => ops.extend(o),
                                }
                                acks.extend(ack);
                            }
                            Unit::Resync { reply } => {
                                // Only reached first in a batch: a resync later in the
                                // queue is held back below until the writes before it are done.
                                // After a failed sync nothing is accepted until a restart.
                                let r = match (&refused, poisoned()) {
                                    (_, Some(e)) => Err(e),
                                    (None, None) => Ok(Resync::default()),
                                    (Some(f), None) => resync_from(&mut store, f),
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
                    if refused.is_none() {
                        if let Some(error) = poisoned() {
                            refused = Some(Refused::new(error));
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
                            |o| matches!(o, Op::Scheduler(Write::Job(JobWrite::Upsert(r))) if r.spilled.is_some()),
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
                            let mut f = Refused::new(e.clone());
                            f.note(&ops);
                            refused = Some(f);
                            flag.store(true, Ordering::Release);
                            notify.notify_one();
                        }
                    }
                    queue.committed(ops.len());
                    policy.after_commit(ops.len());
                    let applied = result.is_ok() && !ops.is_empty();
                    match &syncing {
                        Some(s) => {
                            // Anything queued meanwhile makes this a time to hand the sync
                            // over and go on; it is then the next batch's first unit.
                            if held.is_none() {
                                held = rx.try_recv().ok();
                            }
                            let batch = Synced {
                                result,
                                applied,
                                acks: std::mem::take(&mut acks),
                            };
                            s.hand(batch, held.is_none());
                        }
                        None => {
                            for ack in acks.drain(..) {
                                ack.tell(result.clone());
                            }
                        }
                    }
                    if applied {
                        store.after_acks();
                    }
                    ops.clear();
                }
                if let Some(s) = syncing {
                    s.stop();
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
        self.queue(Ops::Any(ops))
    }

    fn queue(&self, ops: Ops) -> Commit {
        if ops.len() == 0 {
            return Commit::done();
        }
        let (ack, rx) = oneshot::channel();
        self.queue_then(ops, Ack::Commit(ack));
        Commit::pending(rx)
    }

    /// Queues non-empty `ops` for `ack`; tells it the writer has stopped when it has.
    fn queue_then(&self, ops: Ops, ack: Ack) {
        let n = ops.len();
        self.backlog.add(n);
        if let Err(mpsc::SendError(Unit::Write { ack: Some(ack), .. })) =
            self.tx.send(Unit::Write {
                ops,
                ack: Some(ack),
            })
        {
            self.backlog.committed(n);
            ack.tell(Err(StoreError::Closed));
        }
    }

    fn queue_detached(&self, ops: Ops) {
        let n = ops.len();
        if n > 0 {
            self.backlog.add(n);
            if self.tx.send(Unit::Write { ops, ack: None }).is_err() {
                self.backlog.committed(n);
            }
        }
    }
}

impl Durable for Writer {
    fn write(&self, writes: Vec<Write>) -> Commit {
        self.queue(Ops::Scheduler(writes))
    }

    fn write_then(&self, writes: Vec<Write>, then: Then) {
        if writes.is_empty() {
            return then(Ok(Fenced::default()));
        }
        self.queue_then(Ops::Scheduler(writes), Ack::Then(then))
    }

    fn write_detached(&self, writes: Vec<Write>) {
        self.queue_detached(Ops::Scheduler(writes))
    }

    fn barrier(&self) -> Commit {
        let (ack, rx) = oneshot::channel();
        if self
            .tx
            .send(Unit::Write {
                ops: Ops::Any(Vec::new()),
                ack: Some(Ack::Commit(ack)),
            })
            .is_err()
        {
            return Commit::done();
        }
        Commit::pending(rx)
    }

    fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// Answered on the writer thread; it waits for a commit only when a write not yet
    /// applied stores one of those payloads.
    fn read_args(&self, ids: Vec<JobId>, done: ReadDone) {
        if let Err(mpsc::SendError(Unit::Read { done, .. })) =
            self.tx.send(Unit::Read { ids, done })
        {
            done(Err(StoreError::Closed));
        }
    }

    fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    fn failures(&self) -> Arc<Notify> {
        self.failed.clone()
    }

    fn resync(&self) -> BoxFuture<'static, Result<Resync, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Unit::Resync { reply }).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }
}

/// Below this many ops in a commit the writer is lightly loaded.
const LIGHT_COMMIT_OPS: usize = 8;

/// How the writer thread's wake-ups compete with the thread that woke it.
///
/// The writer wakes for every queued write, often on the CPU of the tokio worker that
/// queued it, and Linux lets a waking thread preempt the running one. Lightly loaded, that
/// puts the commit ahead of the worker's next steps (handing the job to a worker, answering
/// a RunJob), which do not need it: measured on a 2-vCPU VM, the RunJob round trip was
/// 15–20 µs shorter with the writer not preempting. Under load the opposite holds: the
/// writer is the bottleneck, and SubmitStream lost 20–30 % of its rate when its commits
/// waited for the workers' time slices. So the writer asks not to preempt (`SCHED_BATCH`,
/// its share of the CPU unchanged) after a small commit and to preempt again after a large
/// one: two system calls at each change of load, none in between.
#[derive(Default)]
struct WakePolicy {
    batch: bool,
}

impl WakePolicy {
    fn after_commit(&mut self, ops: usize) {
        let batch = ops < LIGHT_COMMIT_OPS;
        if batch != self.batch {
            self.batch = batch;
            set_batch_scheduling(batch);
        }
    }
}

fn set_batch_scheduling(batch: bool) {
    #[cfg(target_os = "linux")]
    {
        let policy = if batch {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets the calling thread's (pid 0) policy from a valid param.
        let r = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), batch, "scheduling policy refused");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = batch;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy_now() -> i32 {
        // SAFETY: reads the calling thread's (pid 0) policy; no pointers.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn small_commits_stop_preempting_and_a_large_one_preempts_again() {
        // A fresh thread: it starts with the default policy, and nothing else runs on it.
        std::thread::spawn(|| {
            let mut p = WakePolicy::default();
            assert_eq!(policy_now(), libc::SCHED_OTHER);
            p.after_commit(1);
            assert_eq!(policy_now(), libc::SCHED_BATCH, "after a small commit");
            p.after_commit(LIGHT_COMMIT_OPS - 1);
            assert_eq!(policy_now(), libc::SCHED_BATCH);
            p.after_commit(LIGHT_COMMIT_OPS);
            assert_eq!(policy_now(), libc::SCHED_OTHER, "after a large commit");
            p.after_commit(0);
            assert_eq!(
                policy_now(),
                libc::SCHED_BATCH,
                "an empty barrier is light too"
            );
        })
        .join()
        .expect("policy checks");
    }
}
