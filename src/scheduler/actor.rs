//! The single owner of scheduling state: drives the [`Core`] from commands and timers and
//! carries out its effects (store writes, job pushes to workers, RunJob results).
//!
//! Handlers talk to it through a [`SchedulerHandle`]; no lock is shared with them.

use std::collections::BTreeMap;

/// Keyed per job and per worker on every dispatch: foldhash, not SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::backend::{Backend, SubmittedEach};
use super::clock::Clock;
use super::core::{
    Core, Effect, LocalWorkers, Observation, Observer, PayloadMemory, SubmitReply, TaskStatus,
};
use super::durable::{Admitted, Backlog, Commit, Demand, Durable, ReadArgs, StoreError};
use super::error::{Error, Stale};
use super::job::*;
use super::kept::KeptResults;
use super::limits::TaskLimits;
use super::list::{JobPage, ListQuery};
use super::local::LocalJobs;
use super::schedule::{PlanCache, Schedule, ScheduleSpec};
use super::settings::{Settings, TimeoutSetting};
use super::spilled::Spilled;
use super::submit::check_name;
use super::timer::WakeTimer;
use super::write::JobWrite;
use super::write::Write;

/// What the actor tells one worker.
// Nearly every message is a Job: boxing it would add an allocation per dispatch to spare the
// rare Cancel some bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ToWorker {
    /// A job leased to it.
    Job(JobView),
    /// Stop the work of a lease: it no longer counts (job removed, or given up by this node).
    Cancel {
        /// The lease.
        lease: LeaseId,
        /// Its job.
        job: JobId,
        /// Why.
        reason: String,
    },
}

pub use super::worker_channel::{worker_channel, WorkerRx, WorkerTx};

mod handle;
mod locks;
mod node;
mod node_handle;
mod schedules;
pub use handle::SchedulerHandle;
pub(super) use locks::LockCmd;
use node::NodeCmd;
pub use node_handle::NodeHandle;
pub(super) use schedules::ScheduleCmd;

/// Resolves with the worker's result of a RunJob.
pub type ResultRx = oneshot::Receiver<Result<Bytes, String>>;

/// What a watcher of a job (RunJob with data, RecvData) hears, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A chunk the worker streamed while the job runs.
    Data(Bytes),
    /// The attempt ended: the result, or why there is none. Nothing follows.
    Finished(Result<Bytes, String>),
}

/// Receives a watched job's events.
pub type EventRx = mpsc::UnboundedReceiver<JobEvent>;

type Reply<T> = oneshot::Sender<T>;

/// What a RunJob's submit hands back: the core's answer, the commit to wait for, and the
/// receiver of the job's result.
type Submitted = (SubmitReply, Commit, ResultRx);

pub(super) enum Cmd {
    /// A submit answered once it is stored, by the writer (one wake-up for the caller).
    SubmitStored {
        spec: JobSpec,
        reply: Reply<Result<SubmitReply, Error>>,
    },
    /// A RunJob's submit: answered at once, its caller then waits for the commit and the result.
    SubmitRun {
        spec: JobSpec,
        reply: Reply<Result<Submitted, Error>>,
    },
    SubmitMany {
        specs: Vec<JobSpec>,
        reply: Reply<Result<(Vec<SubmitReply>, Commit), Error>>,
    },
    SubmitTransient {
        spec: JobSpec,
        reply: Reply<Result<(JobId, ResultRx), Error>>,
    },
    SubmitEach {
        specs: Vec<JobSpec>,
        reply: Reply<(Vec<Result<SubmitReply, Error>>, Commit)>,
    },
    Remove {
        key: JobKey,
        reply: Reply<Result<(JobId, Commit), Error>>,
    },
    Get {
        key: JobKey,
        reply: Reply<Result<JobView, Error>>,
    },
    DropTask {
        task: String,
        reply: Reply<Result<(u64, Commit), Error>>,
    },
    Status {
        task: Option<String>,
        reply: Reply<(Vec<TaskStatus>, TaskStatus)>,
    },
    ListJobs {
        query: ListQuery,
        reply: Reply<JobPage>,
    },
    ListDead {
        task: Option<String>,
        limit: usize,
        reply: Reply<Result<Vec<JobView>, Error>>,
    },
    RetryDead {
        task: Option<String>,
        name: Option<String>,
        reply: Reply<(u64, Commit)>,
    },
    PurgeDead {
        task: Option<String>,
        name: Option<String>,
        reply: Reply<(u64, Commit)>,
    },
    Register {
        worker: Option<WorkerId>,
        tasks: Vec<String>,
        broadcast: Vec<String>,
        capacity: u32,
        tx: Option<WorkerTx>,
        reply: Reply<Result<WorkerId, Error>>,
    },
    Connect {
        worker: WorkerId,
        tx: WorkerTx,
        reply: Reply<Result<(), Error>>,
    },
    WorkerGone {
        worker: WorkerId,
    },
    Report {
        lease: LeaseId,
        outcome: Outcome,
        reply: Reply<Result<Commit, Error>>,
    },
    Heartbeat {
        leases: Vec<LeaseId>,
        reply: Reply<Vec<LeaseId>>,
    },
    DumpPage {
        after: JobId,
        limit: usize,
        reply: Reply<Result<Vec<JobRecord>, Error>>,
    },
    Load {
        record: JobRecord,
        reply: Reply<Commit>,
    },
    Barrier {
        reply: Reply<Commit>,
    },
    CloseWorkers,
    Drain {
        reply: Reply<()>,
    },
    Watch {
        task: String,
        name: String,
        tx: mpsc::UnboundedSender<JobEvent>,
    },
    /// Cluster: an event of a job running on another node, for this node's watchers.
    WatchEvent {
        task: String,
        name: String,
        event: JobEvent,
    },
    WorkData {
        lease: LeaseId,
        data: Bytes,
        reply: Reply<Result<(), Error>>,
    },
    Unregister {
        worker: WorkerId,
        task: String,
    },
    HasWorker {
        task: String,
        reply: Reply<bool>,
    },
    GetConfig {
        key: String,
        reply: Reply<Result<BTreeMap<String, i64>, Error>>,
    },
    SetConfig {
        key: String,
        value: i64,
        /// False when another node already persisted it (cluster).
        persist: bool,
        reply: Reply<Result<Commit, Error>>,
    },
    LocalWorkers {
        reply: Reply<LocalWorkers>,
    },
    KeepResults {
        keep_ms: Millis,
    },
    PauseTask {
        task: String,
        paused: bool,
        /// False when another node already stored it (cluster).
        persist: bool,
        reply: Reply<Commit>,
    },
    SetTaskLimits {
        task: String,
        limits: TaskLimits,
        /// False when another node already stored it (cluster).
        persist: bool,
        reply: Reply<Commit>,
    },
    GetTaskLimits {
        task: String,
        reply: Reply<TaskLimits>,
    },
    /// Cron schedules (`actor/schedules.rs`).
    Schedule(ScheduleCmd),
    /// What the cluster layer tells a node's actor (`actor/node.rs`).
    Node(NodeCmd),
    /// Named locks of running jobs (`actor/locks.rs`).
    Lock(LockCmd),
}

/// What a cluster node's actor tells the cluster layer (one node has none).
pub trait NodeEvents: Send + Sync {
    /// A job finished (or failed for good) here, after `attempts` failed attempts: the
    /// cluster publishes results for RunJob callers and watchers on other nodes and keeps
    /// results (`--keep-results`).
    fn finished(
        &self,
        job: JobId,
        task: &str,
        name: &str,
        attempts: u32,
        result: &Result<Bytes, String>,
    );
    /// A worker here streamed a chunk of a running job's output: the cluster forwards it to
    /// the job's watchers on other nodes.
    fn data(&self, task: &str, name: &str, data: &Bytes);
    /// A job here let go of every lock it held or waited for: the cluster frees its slots
    /// in the database (which may grant them to waiters on any node).
    fn locks_released(&self, job: JobId, timeout_ms: Millis);
    /// A broadcast job owned here is leased here: the cluster asks `nodes` to run their
    /// parts of run `run` (see `scheduler/core/parts.rs`).
    fn broadcast_parts(&self, job: JobId, run: u64, nodes: &[Arc<str>]);
    /// A part run here for `origin`'s job is over: the cluster tells `origin`.
    fn part_done(&self, origin: &str, job: JobId, run: u64, outcome: &Outcome);
}

/// The cluster layer's ear on a node's actor.
pub type NodeHook = Arc<dyn NodeEvents>;

/// How this node's core relates to the jobs it holds, chosen at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// The core holds every job (one node).
    Everything,
    /// The core holds only jobs this node claimed (cluster): a job that leaves the running
    /// phase for a later time or the dead set gives its claim back and leaves the core, so
    /// any node's workers may take it when it is due, and the database answers for it.
    Claims,
}

/// Starts the actor over `core` (already restored from the store), every job local. It stops when every handle is gone.
pub fn spawn(
    core: Core,
    settings: Settings,
    writer: impl Durable,
    clock: Clock,
    metrics: Arc<dyn Observer>,
) -> (SchedulerHandle, tokio::task::JoinHandle<()>) {
    let (node, join) = spawn_node(
        core,
        settings,
        writer,
        clock,
        metrics,
        Holding::Everything,
        None,
    );
    let jobs = Arc::new(node.local());
    (node.with_jobs(jobs), join)
}

/// Starts the actor of a node whose client API is served by a backend built from the
/// returned handle ([`NodeHandle::with_jobs`]); `on_finished` hears every finished job.
pub(crate) fn spawn_node(
    mut core: Core,
    settings: Settings,
    writer: impl Durable,
    clock: Clock,
    metrics: Arc<dyn Observer>,
    holding: Holding,
    on_finished: Option<NodeHook>,
) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let writer: Arc<dyn Durable> = Arc::new(writer);
    let backlog = writer.backlog();
    let (tx, rx) = mpsc::unbounded_channel();
    core.set_lock_timeout(settings.lock_timeout_ms());
    let timeout = settings.timeout_setting();
    let actor = Actor {
        core,
        settings,
        metrics,
        failures: writer.failures(),
        writer,
        clock,
        timer: WakeTimer::new(clock.is_real()),
        rx,
        workers: HashMap::default(),
        waiters: HashMap::default(),
        watchers: HashMap::default(),
        drained: Vec::new(),
        on_finished,
        holding,
        schedules: BTreeMap::new(),
        kept: KeptResults::default(),
        keep_ms: 0,
        reads: Vec::new(),
        payloads_seen: PayloadMemory::default(),
        finished: Vec::new(),
    };
    let join = tokio::spawn(actor.run());
    (
        NodeHandle {
            tx,
            clock,
            backlog,
            timeout,
        },
        join,
    )
}

/// Sends a command and awaits its reply.
pub(super) async fn call<T>(
    tx: &mpsc::UnboundedSender<Cmd>,
    make: impl FnOnce(Reply<T>) -> Cmd,
) -> Result<T, Error> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply)).map_err(|_| Error::ShuttingDown)?;
    rx.await.map_err(|_| Error::ShuttingDown)
}

pub(super) fn store_err(e: StoreError) -> Error {
    Error::from(e)
}

struct Actor {
    core: Core,
    settings: Settings,
    metrics: Arc<dyn Observer>,
    writer: Arc<dyn Durable>,
    /// Notified when a commit failed ([`Durable::failures`]).
    failures: Arc<tokio::sync::Notify>,
    clock: Clock,
    timer: WakeTimer,
    rx: mpsc::UnboundedReceiver<Cmd>,
    workers: HashMap<WorkerId, WorkerTx>,
    waiters: HashMap<JobId, Vec<oneshot::Sender<Result<Bytes, String>>>>,
    /// Watchers by (task, name): they may subscribe before the job exists (Periodic's RecvData).
    watchers: HashMap<(String, String), Vec<mpsc::UnboundedSender<JobEvent>>>,
    /// Shutdown waits here until no lease is open.
    drained: Vec<Reply<()>>,
    on_finished: Option<NodeHook>,
    holding: Holding,
    /// Schedules by name (the local backend's; a cluster's live in the database).
    schedules: BTreeMap<String, Schedule>,
    /// Finished jobs' outcomes (`--keep-results`; a cluster keeps them in the database).
    kept: KeptResults,
    /// How long to keep them (0 = not kept).
    keep_ms: Millis,
    /// Payload reads asked for in this step (`core/payloads.rs`); queued behind its writes.
    reads: Vec<PayloadRead>,
    /// The payload budget's figures last told to the metrics.
    payloads_seen: PayloadMemory,
    /// Jobs finished in this step, told to `on_finished` once the step's writes (their
    /// ends) are committed: a RunJob caller on another node, or a watcher, must not hear
    /// of the end before a read of the shared database would.
    finished: Vec<FinishedJob>,
}

/// A finished job as `on_finished` hears of it.
struct FinishedJob {
    job: JobId,
    task: Arc<str>,
    name: Arc<str>,
    attempts: u32,
    result: Result<Bytes, String>,
}

/// A read of spilled payloads and what to do with them.
struct PayloadRead {
    ids: Vec<JobId>,
    done: Box<dyn FnOnce(&ReadArgs) + Send>,
}

/// Commands handled per wake-up before timers and dispatch run again.
const BATCH: usize = 4096;
/// Within a batch, how often to look whether a timer fell due.
const TIMER_CHECK: usize = 32;

impl Actor {
    async fn run(mut self) {
        loop {
            let wake = self.core.next_wakeup().map(|t| self.clock.instant_at(t));
            tokio::select! {
                biased;
                _ = self.failures.notified() => self.resync().await,
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.handle_after_resync(cmd).await;
                    for i in 1..BATCH {
                        // A timer that fell due meanwhile goes first: a deep queue of reports
                        // must not make scheduled jobs late.
                        if i % TIMER_CHECK == 0 && wake.is_some_and(|w| w <= tokio::time::Instant::now()) {
                            break;
                        }
                        match self.rx.try_recv() {
                            Ok(cmd) => self.handle_after_resync(cmd).await,
                            Err(_) => break,
                        }
                    }
                }
                _ = self.timer.sleep_until(wake) => {}
            }
            let now = self.clock.now_ms();
            self.core.tick(now);
            if !self.kept.is_empty() {
                self.kept.purge(now);
            }
            let ops = self.effects();
            self.writer.write_detached(ops);
            self.flush_reads();
            self.flush_finished();
            let payloads = self.core.payload_memory();
            if payloads != self.payloads_seen {
                self.payloads_seen = payloads;
                self.metrics.observe(&Observation::Payloads(payloads));
            }
            if !self.drained.is_empty() && self.core.open_leases() == 0 {
                for r in self.drained.drain(..) {
                    let _ = r.send(());
                }
            }
        }
    }

    /// After a failed commit: makes memory agree with the store again. Commands wait
    /// meanwhile, so nothing builds on state the store refused; reads resume right after.
    async fn resync(&mut self) {
        // Effects not yet written are refused too (the writer is refusing), so they are
        // covered by the resync.
        let ops = self.effects();
        self.writer.write_detached(ops);
        match self.writer.resync().await {
            Ok(mut r) => {
                let jobs = r.jobs.len();
                let now = self.clock.now_ms();
                self.settings.fill_stored_timeouts(&mut r.jobs);
                self.core.resync(&r.ids, &r.tasks, r.jobs, now);
                self.settings.resync(r.config);
                self.core.set_lock_timeout(self.settings.lock_timeout_ms());
                let ops = self.effects();
                self.writer.write_detached(ops);
                tracing::warn!(
                    touched = r.ids.len(),
                    tasks = r.tasks.len(),
                    stored = jobs,
                    "memory resynced from the store after a failed commit"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the store to resync; retrying in 1 s");
                let failures = self.failures.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    failures.notify_one();
                });
            }
        }
    }

    /// Runs one command, resyncing first when the store is refusing writes: a caller told
    /// that its write failed must not find (or build on) that write in memory.
    async fn handle_after_resync(&mut self, cmd: Cmd) {
        if self.writer.refusing() {
            self.resync().await;
        }
        self.handle(cmd);
        self.flush_reads();
        self.flush_finished();
    }

    /// Runs one command; its store writes become the commit handed back to the caller.
    fn handle(&mut self, cmd: Cmd) {
        let now = self.clock.now_ms();
        match cmd {
            Cmd::Lock(c) => self.handle_lock(c, now),
            Cmd::Node(c) => self.handle_node(c, now),
            Cmd::SubmitStored { mut spec, reply } => {
                self.fill_timeout(&mut spec);
                match self.core.submit(spec, now) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(r) => {
                        let ops = self.effects();
                        self.writer.write_then(
                            ops,
                            Box::new(move |stored| {
                                let _ = reply.send(stored.map(|_| r).map_err(store_err));
                            }),
                        );
                    }
                }
            }
            Cmd::SubmitRun { mut spec, reply } => {
                self.fill_timeout(&mut spec);
                if !self.core.has_worker(&spec.task) {
                    let _ = reply.send(Err(Error::NoWorker { task: spec.task }));
                    return;
                }
                let r = match self.core.submit(spec, now) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let (tx, rx) = oneshot::channel();
                self.waiters.entry(r.id).or_default().push(tx);
                let commit = self.commit();
                let _ = reply.send(Ok((r, commit, rx)));
            }
            Cmd::SubmitTransient { mut spec, reply } => {
                self.fill_timeout(&mut spec);
                let r = self.core.submit_transient(spec, now).map(|id| {
                    let (tx, rx) = oneshot::channel();
                    self.waiters.entry(id).or_default().push(tx);
                    (id, rx)
                });
                let _ = reply.send(r);
            }
            Cmd::SubmitMany { specs, reply } => {
                let specs = specs
                    .into_iter()
                    .map(|mut spec| {
                        self.fill_timeout(&mut spec);
                        spec
                    })
                    .collect();
                let r = self.core.submit_many(specs, now);
                let commit = self.commit();
                let _ = reply.send(r.map(|replies| (replies, commit)));
            }
            Cmd::SubmitEach { specs, reply } => {
                let results = specs
                    .into_iter()
                    .map(|mut spec| {
                        self.fill_timeout(&mut spec);
                        self.core.submit(spec, now)
                    })
                    .collect();
                let commit = self.commit();
                let _ = reply.send((results, commit));
            }
            Cmd::Remove { key, reply } => {
                let r = self.core.remove(&key);
                let commit = self.commit();
                let _ = reply.send(r.map(|id| (id, commit)));
            }
            Cmd::Get { key, reply } => {
                let r = match self.core.get(&key) {
                    Err(Error::NotFound(m)) => self.kept.get(&key, now).ok_or(Error::NotFound(m)),
                    r => r,
                };
                self.reply_filled(r, reply);
            }
            Cmd::DropTask { task, reply } => {
                let r = self.core.drop_task(&task);
                let commit = self.commit();
                let _ = reply.send(r.map(|n| (n, commit)));
            }
            Cmd::Status { task, reply } => {
                self.core.tick(now);
                let _ = reply.send(self.core.status(task.as_deref()));
            }
            Cmd::ListJobs { query, reply } => {
                // Due jobs are pending, not scheduled, as in Status.
                self.core.tick(now);
                let _ = reply.send(self.core.list_jobs(&query));
            }
            Cmd::ListDead { task, limit, reply } => {
                let dead = Ok(self.core.list_dead(task.as_deref(), limit));
                self.reply_filled(dead, reply);
            }
            Cmd::RetryDead { task, name, reply } => {
                let n = self.core.retry_dead(task.as_deref(), name.as_deref(), now);
                let commit = self.commit();
                let _ = reply.send((n, commit));
            }
            Cmd::PurgeDead { task, name, reply } => {
                let n = self.core.purge_dead(task.as_deref(), name.as_deref());
                let commit = self.commit();
                let _ = reply.send((n, commit));
            }
            Cmd::Register {
                worker,
                mut tasks,
                broadcast,
                capacity,
                tx,
                reply,
            } => {
                for b in &broadcast {
                    self.core.mark_broadcast(b);
                }
                tasks.extend(broadcast);
                let r = self
                    .core
                    .register_worker(worker, &tasks, capacity, tx.is_some(), now);
                if let (Ok(w), Some(tx)) = (&r, tx) {
                    self.workers.insert(*w, tx);
                }
                let _ = reply.send(r);
            }
            Cmd::Connect { worker, tx, reply } => {
                let r = self.core.connect_worker(worker);
                if r.is_ok() {
                    self.workers.insert(worker, tx);
                }
                let _ = reply.send(r);
            }
            Cmd::WorkerGone { worker } => {
                self.workers.remove(&worker);
                self.core.worker_gone(worker, now);
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            Cmd::Report {
                lease,
                outcome,
                reply,
            } => {
                let r = self.core.report(lease, outcome, now);
                let commit = self.commit();
                let _ = reply.send(r.map(|job| commit.for_job(job)));
            }
            Cmd::Heartbeat { leases, reply } => {
                let _ = reply.send(self.core.heartbeat(&leases, now));
            }
            Cmd::DumpPage {
                after,
                limit,
                reply,
            } => {
                let page = Ok(self.core.dump_page(after, limit));
                self.reply_filled(page, reply);
            }
            Cmd::Load { mut record, reply } => {
                // A dump an earlier cluster version made carries no timeouts of its own.
                self.settings.fill_stored_timeouts([&mut record]);
                self.core.load(record, now);
                let commit = self.commit();
                let _ = reply.send(commit);
            }
            Cmd::CloseWorkers => {
                for (w, _) in std::mem::take(&mut self.workers) {
                    self.core.worker_released(w, now);
                }
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            Cmd::Drain { reply } => {
                self.core.pause_dispatch();
                self.drained.push(reply);
            }
            Cmd::Watch { task, name, tx } => {
                let key = JobKey::Name { task, name };
                if self.core.get(&key).is_err() {
                    // Finished and kept: the outcome at once.
                    if let Some(v) = self.kept.get(&key, now) {
                        let _ = tx.send(JobEvent::Finished(Ok(v.result.unwrap_or_default())));
                        return;
                    }
                }
                let JobKey::Name { task, name } = key else {
                    unreachable!("built above")
                };
                self.watchers.entry((task, name)).or_default().push(tx);
            }
            Cmd::WatchEvent { task, name, event } => {
                let key = (task, name);
                if matches!(event, JobEvent::Finished(_)) {
                    for w in self.watchers.remove(&key).unwrap_or_default() {
                        let _ = w.send(event.clone());
                    }
                } else if let Some(ws) = self.watchers.get_mut(&key) {
                    ws.retain(|w| w.send(event.clone()).is_ok());
                }
            }
            Cmd::WorkData { lease, data, reply } => {
                let r = match self.core.lease_job(lease) {
                    None => Err(Error::StaleLease(Stale::NotHeld { lease })),
                    Some((_, task, name)) => {
                        if let Some(hook) = &self.on_finished {
                            hook.data(&task, &name, &data);
                        }
                        let key = (task.to_string(), name.to_string());
                        if let Some(ws) = self.watchers.get_mut(&key) {
                            ws.retain(|w| w.send(JobEvent::Data(data.clone())).is_ok());
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Cmd::Unregister { worker, task } => self.core.unregister_task(worker, &task),
            Cmd::LocalWorkers { reply } => {
                let _ = reply.send(self.core.local_workers());
            }
            Cmd::HasWorker { task, reply } => {
                let _ = reply.send(self.core.has_worker(&task));
            }
            Cmd::GetConfig { key, reply } => {
                let _ = reply.send(self.settings.get(&key));
            }
            Cmd::SetConfig {
                key,
                value,
                persist,
                reply,
            } => {
                let r = self.settings.set(&key, value).map(|_| {
                    self.core.set_lock_timeout(self.settings.lock_timeout_ms());
                    if persist {
                        self.writer.write(vec![Write::SetConfig { key, value }])
                    } else {
                        Commit::done()
                    }
                });
                let _ = reply.send(r);
            }
            Cmd::Barrier { reply } => {
                let ops = self.effects();
                self.writer.write_detached(ops);
                let _ = reply.send(self.writer.barrier());
            }
            Cmd::PauseTask {
                task,
                paused,
                persist,
                reply,
            } => {
                self.core.set_task_paused(&task, paused);
                let commit = if persist {
                    self.writer
                        .write(vec![Write::SetTaskPaused { task, paused }])
                } else {
                    Commit::done()
                };
                let _ = reply.send(commit);
            }
            Cmd::SetTaskLimits {
                task,
                limits,
                persist,
                reply,
            } => {
                self.core.set_task_limits(&task, limits);
                let commit = if persist {
                    let limits = (!limits.is_none()).then(|| limits.to_stored());
                    self.writer
                        .write(vec![Write::SetTaskLimits { task, limits }])
                } else {
                    Commit::done()
                };
                let _ = reply.send(commit);
            }
            Cmd::GetTaskLimits { task, reply } => {
                let _ = reply.send(self.core.task_limits(&task));
            }
            Cmd::KeepResults { keep_ms } => self.keep_ms = keep_ms,
            Cmd::Schedule(c) => self.handle_schedule(c, now),
        }
    }

    /// Answers `reply` with `value` once the spilled payloads it names are read back, or with
    /// the read's error.
    fn reply_filled<T: Spilled>(
        &mut self,
        value: Result<T, Error>,
        reply: Reply<Result<T, Error>>,
    ) {
        let mut ids = Vec::new();
        if let Ok(v) = &value {
            v.spilled_ids(&mut ids);
        }
        if ids.is_empty() {
            let _ = reply.send(value);
            return;
        }
        self.reads.push(PayloadRead {
            ids,
            done: Box::new(move |read| {
                let filled = value.and_then(|mut v| {
                    let read = read.as_ref().map_err(|e| Error::StoreRead(e.to_string()))?;
                    v.fill(read)?;
                    Ok(v)
                });
                let _ = reply.send(filled);
            }),
        });
    }

    /// Queues this step's payload reads behind its writes, as one read.
    fn flush_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.reads);
        let ids = reads.iter().flat_map(|r| r.ids.iter().copied()).collect();
        self.writer.read_args(
            ids,
            Box::new(move |read| {
                for r in reads {
                    (r.done)(&read);
                }
            }),
        );
    }

    /// Tells `on_finished` of this step's finished jobs once everything queued so far is
    /// committed (a barrier behind the step's writes), off the actor.
    fn flush_finished(&mut self) {
        // Runs after every command: nothing shared is touched unless a job finished.
        if self.finished.is_empty() {
            return;
        }
        let Some(hook) = self.on_finished.clone() else {
            return;
        };
        let finished = std::mem::take(&mut self.finished);
        let stored = self.writer.barrier();
        tokio::spawn(async move {
            // Told even if the commit failed, as before: the resync that follows makes
            // memory agree with the store, and a caller waiting on the job must not hang.
            let _ = stored.wait().await;
            for f in finished {
                hook.finished(f.job, &f.task, &f.name, f.attempts, &f.result);
            }
        });
    }

    /// A submit that leaves its lease length at 0 gets the run-time `timeout` setting.
    fn fill_timeout(&self, spec: &mut JobSpec) {
        spec.timeout_ms = self.settings.lease_ms(spec.timeout_ms);
    }

    /// Carries out pending effects and queues their store writes as one commit.
    fn commit(&mut self) -> Commit {
        let ops = self.effects();
        self.writer.write(ops)
    }

    /// Carries out pending non-store effects; returns the store writes in order.
    fn effects(&mut self) -> Vec<Write> {
        let mut ops = Vec::new();
        let mut released = Vec::new();
        loop {
            let effects = self.core.take_effects();
            if effects.is_empty() {
                if !released.is_empty() {
                    // Holding claims only: a job rescheduled or dead gives its claim back in
                    // the same commit and leaves the core, unless it runs again already.
                    let ids = self.core.release(&released);
                    released.clear();
                    if !ids.is_empty() {
                        ops.push(Write::Release(ids));
                    }
                }
                return ops;
            }
            for e in effects {
                match e {
                    Effect::Persist(op) => {
                        if let (Holding::Claims, JobWrite::Reschedule { id, .. }) =
                            (self.holding, &op)
                        {
                            released.push(*id);
                        }
                        ops.push(Write::from(op))
                    }
                    Effect::Observe(Observation::Log(l)) => l.emit(),
                    Effect::Observe(o) => self.metrics.observe(&o),
                    Effect::Assign { worker, job } => {
                        let sent = match self.workers.get(&worker) {
                            None => false,
                            Some(tx) if job.record.spilled.is_some() => {
                                // Its payload is in the store only: the worker's connection
                                // waits for the read, not the actor.
                                let (payload, rx) = oneshot::channel();
                                let id = job.record.id;
                                let sent = tx.send_reading(job, rx).is_ok();
                                self.reads.push(PayloadRead {
                                    ids: vec![id],
                                    done: Box::new(move |read| {
                                        let args = read.as_ref().ok().and_then(|m| m.get(&id));
                                        let _ = payload.send(args.cloned());
                                    }),
                                });
                                sent
                            }
                            Some(tx) => tx.send(ToWorker::Job(job)).is_ok(),
                        };
                        if !sent {
                            // The stream is gone but its WorkerGone has not arrived yet.
                            self.workers.remove(&worker);
                            let now = self.clock.now_ms();
                            self.core.worker_gone(worker, now);
                        }
                    }
                    Effect::Revoke {
                        worker,
                        lease,
                        job,
                        reason,
                    } => {
                        // A worker already gone has nothing to stop.
                        if let Some(tx) = self.workers.get(&worker) {
                            let _ = tx.send(ToWorker::Cancel { lease, job, reason });
                        }
                    }
                    Effect::LocksReleased { job, timeout_ms } => {
                        if let Some(hook) = &self.on_finished {
                            hook.locks_released(job, timeout_ms);
                        }
                    }
                    Effect::BroadcastParts { job, run, nodes } => {
                        if let Some(hook) = &self.on_finished {
                            hook.broadcast_parts(job, run, &nodes);
                        }
                    }
                    Effect::PartDone {
                        origin,
                        job,
                        run,
                        outcome,
                    } => {
                        if let Some(hook) = &self.on_finished {
                            hook.part_done(&origin, job, run, &outcome);
                        }
                    }
                    Effect::Finished {
                        job,
                        task,
                        name,
                        attempts,
                        result,
                    } => {
                        if !self.watchers.is_empty() {
                            let key = (task.to_string(), name.to_string());
                            if let Some(ws) = self.watchers.remove(&key) {
                                for w in ws {
                                    let _ = w.send(JobEvent::Finished(result.clone()));
                                }
                            }
                        }
                        if self.on_finished.is_some() {
                            self.finished.push(FinishedJob {
                                job,
                                task: task.clone(),
                                name: name.clone(),
                                attempts,
                                result: result.clone(),
                            });
                        }
                        if let (Ok(r), true, Holding::Everything) =
                            (&result, self.keep_ms > 0, self.holding)
                        {
                            let now = self.clock.now_ms();
                            self.kept.insert(
                                job,
                                (task.clone(), name.clone()),
                                r.clone(),
                                attempts,
                                now,
                                self.keep_ms,
                            );
                            if let Some(max) = self.core.payload_budget() {
                                let dropped = self.kept.trim(max);
                                if dropped > 0 {
                                    self.metrics.observe(&Observation::KeptDropped(dropped));
                                }
                            }
                        }
                        if let Some(ws) = self.waiters.remove(&job) {
                            for w in ws {
                                let _ = w.send(result.clone());
                            }
                        }
                    }
                }
            }
        }
    }
}
