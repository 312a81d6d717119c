//! The scheduler's state machine: queues, timers, leases, workers and retries.
//!
//! Plain Rust with no I/O and no clock: every operation takes `now` and pushes
//! [`Effect`]s (store writes, job assignments, results for RunJob waiters) that
//! the actor carries out. That keeps it testable with time under the test's
//! control and keeps one owner for all scheduling state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Maps and sets keyed by small integers, hashed per dispatch and report: foldhash, not
/// SipHash (which showed in profiles of the e2e benchmark).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::error::{Error, Stale};
use super::job::*;
use super::locks::Locks;
use super::stored::StoredJobs;
use super::table::{JobTable, NameIndex, Named};
use super::write::JobWrite;

mod broadcast;
use broadcast::BroadcastRun;
mod dead;
mod fair;
mod invariants;
mod keys;
mod leases;
mod named_locks;
mod restore;
mod status;
mod workers;
use keys::{KeyId, Keys};
mod limits;
use limits::LimitState;
mod list;
mod log;
mod parts;
mod payloads;
mod transient;
use payloads::Payloads;

pub(crate) use parts::is_part;
pub use parts::{PART_BIT, PART_GRACE_MS};
pub use payloads::{PayloadMemory, SPILL_MIN};
pub(crate) use transient::in_memory_only;
pub use transient::{is_transient, TRANSIENT_BIT};

/// Tunables of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Dead jobs kept at most; the oldest are purged past it.
    pub max_dead: usize,
    /// How long a worker registered with RegisterTask may wait before opening GrabJob.
    pub unattached_worker_ttl_ms: i64,
    /// Lock entries older than this are dropped (Periodic's lock-timeout).
    pub lock_timeout_ms: i64,
    /// Jobs held at most, dead ones included; a submit of a new job past it is refused.
    pub max_jobs: usize,
    /// Jobs one task may hold at most, dead ones included.
    pub max_jobs_per_task: usize,
    /// Workers one task may have registered at most.
    pub max_workers_per_task: usize,
    /// Bytes of payloads held in memory at most (the rest are read from the store when
    /// needed, `core/payloads.rs`); None = all held. Only for a core whose jobs are all in
    /// the store.
    pub payload_budget: Option<usize>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            max_dead: 100_000,
            unattached_worker_ttl_ms: 30_000,
            lock_timeout_ms: 300_000,
            max_jobs: usize::MAX,
            max_jobs_per_task: usize::MAX,
            max_workers_per_task: usize::MAX,
            payload_budget: None,
        }
    }
}

/// What the actor must do after a core operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write to the store, in order.
    Persist(JobWrite),
    /// Send a leased job to a worker.
    Assign {
        /// The worker that holds the lease.
        worker: WorkerId,
        /// The job with its lease.
        job: JobView,
    },
    /// Tell a worker to stop a job it holds: the job was removed or given up while running,
    /// so its lease no longer counts (its report will be refused).
    Revoke {
        /// The worker that holds the lease.
        worker: WorkerId,
        /// The lease that no longer counts.
        lease: LeaseId,
        /// Its job.
        job: JobId,
        /// Why.
        reason: String,
    },
    /// Count something.
    Observe(Observation),
    /// External locks (cluster): the job let go of every lock entry it had; the database
    /// must free its slots too.
    LocksReleased {
        /// The job.
        job: JobId,
        /// The lock timeout: waiters given a slot now keep it this long.
        timeout_ms: Millis,
    },
    /// A job finished (Ok) or an attempt failed or the job went away (Err): wake RunJob waiters.
    Finished {
        /// The job.
        job: JobId,
        /// Its task.
        task: Arc<str>,
        /// Its name.
        name: Arc<str>,
        /// Its failed attempts so far.
        attempts: u32,
        /// The worker's result, or why there is none.
        result: Result<Bytes, String>,
    },
    /// Cluster: run this broadcast job on the broadcast workers of these other nodes too;
    /// each answers with a part outcome ([`Core::part_reported`]) for run `run`.
    BroadcastParts {
        /// The job (owned here).
        job: JobId,
        /// Which run of it (its first lease), so late answers of an older run are ignored.
        run: u64,
        /// The nodes asked.
        nodes: Vec<Arc<str>>,
    },
    /// Cluster: a part run here for a broadcast job of `origin` is over.
    PartDone {
        /// The node that owns the job.
        origin: Arc<str>,
        /// The job's id.
        job: JobId,
        /// The run the part belongs to.
        run: u64,
        /// The combined outcome of this node's workers.
        outcome: Outcome,
    },
}

/// Hears the core's observations (the server's metrics implement it), so the scheduler names
/// no metrics library.
pub trait Observer: Send + Sync + 'static {
    /// Records one observation.
    fn observe(&self, o: &Observation);
}

/// Something worth counting, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A job was submitted (or replaced).
    Submitted(Arc<str>),
    /// A job was handed to a worker this long after it became due.
    Dispatched {
        /// Task.
        task: Arc<str>,
        /// Milliseconds since its due time.
        wait_ms: i64,
    },
    /// A worker reported after running a job this long.
    Ran {
        /// Task.
        task: Arc<str>,
        /// Milliseconds since dispatch.
        ms: i64,
    },
    /// A job finished with done.
    Done(Arc<str>),
    /// An attempt failed; `dead` when the job went to the dead set.
    Failed {
        /// Task.
        task: Arc<str>,
        /// Moved to the dead set.
        dead: bool,
    },
    /// A lease expired.
    Expired(Arc<str>),
    /// What the payload budget holds now (the actor says so when it changed).
    Payloads(PayloadMemory),
    /// Kept results let go before their time: the results kept held more than the payload
    /// budget.
    KeptDropped(usize),
    /// A job event worth a log line (metrics count it through the other variants).
    Log(super::job_log::JobLog),
}

/// Reply to a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitReply {
    /// The job's id (kept when replacing).
    pub id: JobId,
    /// An existing job with the same task and name was replaced.
    pub replaced: bool,
    /// An existing job with the same task and name is running; nothing changed.
    pub running: bool,
}

impl TaskStatus {
    /// Adds one task's counts to these totals (the earliest next due time wins).
    pub fn add(&mut self, s: &TaskStatus) {
        self.workers += s.workers;
        self.pending += s.pending;
        self.scheduled += s.scheduled;
        self.running += s.running;
        self.dead += s.dead;
        self.locked += s.locked;
        self.waiting_on_limit += s.waiting_on_limit;
        self.next_sched_at = match (self.next_sched_at, s.next_sched_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Cluster: ready jobs held back by a limit, from the database's counts (`self`) and
    /// this node's core (`mine`: the same limits, and the keys it parked).
    pub(crate) fn limits_waiting(&self, mine: &TaskStatus) -> u64 {
        if mine
            .limits
            .max_running
            .is_some_and(|m| self.running >= m as u64)
        {
            self.pending
        } else {
            mine.waiting_on_limit
        }
    }
}

/// Per task served here: (task, workers, broadcast); and the workers in all.
pub type LocalWorkers = (Vec<(String, u32, bool)>, u32);

/// Counts for one task (or the totals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStatus {
    /// Task name (empty for totals).
    pub task: String,
    /// Registered workers.
    pub workers: u32,
    /// Due, waiting for a worker.
    pub pending: u64,
    /// Due later.
    pub scheduled: u64,
    /// Leased.
    pub running: u64,
    /// In the dead set.
    pub dead: u64,
    /// Waiting for a named lock.
    pub locked: u64,
    /// Jobs go to every worker.
    pub broadcast: bool,
    /// Paused (PauseTask): none of its jobs is handed out.
    pub paused: bool,
    /// Earliest sched_at among pending and scheduled jobs.
    pub next_sched_at: Option<Millis>,
    /// Flow-control limits (none set: all `None`).
    pub limits: crate::scheduler::limits::TaskLimits,
    /// Ready jobs held back by a limit.
    pub waiting_on_limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Scheduled,
    Pending,
    Running(LeaseId),
    /// Waiting for a named lock; made pending when it gets a slot.
    Locked,
    Dead,
}

#[derive(Debug)]
struct Job {
    task: TaskId,
    /// Boxed, not shared: a restart keeps the name string the store read, and the rare
    /// effects that carry a name copy it.
    name: Box<str>,
    args: Bytes,
    sched_at: Millis,
    timeout_ms: u32,
    priority: i32,
    retry: RetryPolicy,
    attempts: u32,
    run_count: u32,
    phase: Phase,
    last_error: Option<Box<str>>,
    /// The trace context and the key, boxed together: most jobs carry neither, and one null
    /// pointer keeps the job at 128 bytes.
    extras: Option<Box<Extras>>,
}

/// What few jobs carry.
#[derive(Debug)]
struct Extras {
    trace: Option<TraceParent>,
    /// Interned (`KeyId::NONE` for none): limits per key and fairness.
    key: KeyId,
    /// The payload's length when it is held in the store only (0: held here; an empty
    /// payload is never spilled), see `core/payloads.rs`.
    spilled: u32,
}

fn extras(trace: Option<TraceParent>, key: KeyId, spilled: Option<u32>) -> Option<Box<Extras>> {
    let spilled = spilled.unwrap_or(0);
    (trace.is_some() || key != KeyId::NONE || spilled > 0).then(|| {
        Box::new(Extras {
            trace,
            key,
            spilled,
        })
    })
}

type ReadyKey = (Reverse<i32>, Millis, JobId);

impl Job {
    /// A stored record as held in memory; the name and error strings are moved, not copied
    /// (at start-up that leaves no freed string behind per row).
    fn from_record(task: TaskId, key: KeyId, r: JobRecord, phase: Phase) -> Job {
        Job {
            task,
            name: r.name.into_boxed_str(),
            args: r.args,
            sched_at: r.sched_at,
            timeout_ms: r.timeout_ms,
            priority: r.priority,
            retry: r.retry,
            attempts: r.attempts,
            run_count: r.run_count,
            phase,
            last_error: (!r.last_error.is_empty()).then(|| r.last_error.into_boxed_str()),
            extras: extras(r.trace, key, r.spilled),
        }
    }

    fn key(&self) -> KeyId {
        self.extras.as_ref().map_or(KeyId::NONE, |e| e.key)
    }

    fn trace(&self) -> Option<TraceParent> {
        self.extras.as_ref().and_then(|e| e.trace)
    }
}

impl Named for Job {
    fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug)]
struct Task {
    name: Arc<str>,
    /// Job names (slots in the job table), hashed with foldhash: SipHash of every name was
    /// 7% of a 1M-job restart.
    by_name: NameIndex,
    ready: BTreeSet<ReadyKey>,
    scheduled: BTreeSet<(Millis, JobId)>,
    dead: BTreeSet<JobId>,
    workers: Vec<WorkerId>,
    rr: usize,
    running: u64,
    locked: u64,
    /// Every job goes to every worker of the task (Periodic's BROADCAST).
    broadcast: bool,
    /// Round-robin between keys; only while keyed jobs are ready (`core/fair.rs`).
    fair: Option<Box<fair::Fair>>,
    /// Flow-control limits and their buckets (`core/limits.rs`).
    limits: Option<Box<LimitState>>,
    /// Running jobs per key (keyed jobs only).
    key_running: HashMap<KeyId, u32>,
}

#[derive(Debug)]
struct Worker {
    tasks: Vec<TaskId>,
    capacity: u32,
    leases: HashSet<LeaseId>,
    connected: bool,
    unattached_until: Millis,
}

#[derive(Debug)]
struct Lease {
    /// None once the job was removed while running: the lease still holds the worker's credit.
    job: Option<JobId>,
    worker: WorkerId,
    expires_at: Millis,
    started_at: Millis,
}

/// The scheduler state machine.
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    jobs: JobTable<Job>,
    tasks: Vec<Task>,
    task_ids: HashMap<Arc<str>, TaskId>,
    /// Earliest scheduled job of each task that has one.
    timers: BTreeSet<(Millis, TaskId)>,
    leases: HashMap<LeaseId, Lease>,
    lease_expiry: BTreeSet<(Millis, LeaseId)>,
    workers: HashMap<WorkerId, Worker>,
    unattached: BTreeSet<(Millis, WorkerId)>,
    dirty: VecDeque<TaskId>,
    dirty_flag: Vec<bool>,
    /// Tasks paused by PauseTask: their jobs are kept and none is handed out.
    paused_tasks: HashSet<String>,
    dead_total: usize,
    locks: Locks,
    /// Broadcast jobs running on several workers, and what their leases said so far.
    broadcasts: HashMap<JobId, BroadcastRun>,
    /// Cluster broadcast (see `core/parts.rs`): per task, the other nodes with broadcast
    /// workers for it; the parts run here for jobs owned elsewhere; and when the owner
    /// stops waiting for other nodes' parts.
    remote_broadcast: HashMap<TaskId, Vec<Arc<str>>>,
    parts: HashMap<JobId, parts::PartOf>,
    part_deadlines: BTreeSet<(Millis, JobId)>,
    /// Transient jobs submitted so far (their ids count up under `TRANSIENT_BIT`).
    next_transient: JobId,
    /// Job keys, interned.
    keys: Keys,
    /// The payload budget (`core/payloads.rs`).
    payloads: Payloads,
    /// When a task held back by a rate may start again (`core/limits.rs`).
    limit_timers: BTreeSet<(Millis, TaskId)>,
    /// Latest time an operation was given: for internal steps that take none.
    last_now: Millis,
    next_job: JobId,
    next_lease: LeaseId,
    next_worker: WorkerId,
    rng: SmallRng,
    effects: Vec<Effect>,
    /// Shutting down: no new leases, so the open ones can be reported within the grace period.
    paused: bool,
}

impl Core {
    /// A new, empty core. `first_lease` must exceed every lease id handed out before a restart.
    pub fn new(cfg: CoreConfig, seed: u64, first_lease: LeaseId) -> Self {
        let payloads = Payloads::new(cfg.payload_budget);
        Core {
            cfg,
            jobs: JobTable::default(),
            tasks: Vec::new(),
            task_ids: HashMap::default(),
            timers: BTreeSet::new(),
            leases: HashMap::default(),
            lease_expiry: BTreeSet::new(),
            workers: HashMap::default(),
            unattached: BTreeSet::new(),
            dirty: VecDeque::new(),
            dirty_flag: Vec::new(),
            paused_tasks: HashSet::default(),
            dead_total: 0,
            locks: Locks::default(),
            last_now: 0,
            broadcasts: HashMap::default(),
            remote_broadcast: HashMap::default(),
            parts: HashMap::default(),
            part_deadlines: BTreeSet::new(),
            next_transient: 0,
            keys: Keys::default(),
            payloads,
            limit_timers: BTreeSet::new(),
            next_job: 1,
            next_lease: first_lease.max(1),
            next_worker: 1,
            rng: SmallRng::seed_from_u64(seed),
            effects: Vec::new(),
            paused: false,
        }
    }

    /// Takes the effects produced since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Number of live and dead jobs held.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Submits or replaces a job (by task and name). A running job is left alone. A new job
    /// past `max_jobs` or `max_jobs_per_task` is refused before anything changes.
    pub fn submit(&mut self, spec: JobSpec, now: Millis) -> Result<SubmitReply, Error> {
        if let Err(e) = self.check_room(&spec.task, &spec.name) {
            self.log_refused(&spec.task, &spec.name, None, &e);
            return Err(e);
        }
        let tid = self.task_id(&spec.task);
        let task = self.tasks[tid as usize].name.clone();
        self.effects
            .push(Effect::Observe(Observation::Submitted(task)));
        if let Some(id) = self.tasks[tid as usize]
            .by_name
            .get(&self.jobs, spec.name.as_str())
        {
            let phase = self.jobs[&id].phase;
            if let Phase::Running(_) = phase {
                return Ok(SubmitReply {
                    id,
                    replaced: false,
                    running: true,
                });
            }
            self.unqueue(id);
            self.payload_untrack(id);
            let key = self.keys.hold(&spec.key);
            let job = self.jobs.get_mut(&id).expect("indexed job exists");
            let old_key = job.key();
            job.set_args(spec.args);
            job.sched_at = spec.sched_at;
            job.timeout_ms = spec.timeout_ms;
            job.priority = spec.priority;
            job.retry = spec.retry;
            job.attempts = 0;
            job.run_count = 0;
            job.last_error = None;
            job.extras = extras(spec.trace, key, None);
            self.keys.release(old_key);
            self.enqueue(id, now);
            self.payload_track(id);
            self.persist_upsert(id);
            self.payload_enforce();
            return Ok(SubmitReply {
                id,
                replaced: true,
                running: false,
            });
        }
        let id = self.next_job;
        self.next_job += 1;
        self.insert_record(id, spec.into_record(id), now);
        self.persist_upsert(id);
        self.payload_enforce();
        Ok(SubmitReply {
            id,
            replaced: false,
            running: false,
        })
    }

    /// Refuses a new job when the store-wide or the task's job limit is reached; replacing
    /// an existing job is always allowed (it adds nothing).
    /// Submits jobs in order, all or none: when the batch's new jobs would pass `max_jobs` or
    /// `max_jobs_per_task`, it is refused before anything changes.
    pub fn submit_many(
        &mut self,
        specs: Vec<JobSpec>,
        now: Millis,
    ) -> Result<Vec<SubmitReply>, Error> {
        if let Err(e) = self.check_room_for(&specs) {
            for s in &specs {
                self.log_refused(&s.task, &s.name, None, &e);
            }
            return Err(e);
        }
        specs.into_iter().map(|s| self.submit(s, now)).collect()
    }

    fn check_room_for(&self, specs: &[JobSpec]) -> Result<(), Error> {
        let mut seen: HashSet<(&str, &str)> = HashSet::default();
        let mut new_per_task: BTreeMap<&str, usize> = BTreeMap::new();
        for s in specs {
            let exists = self.task_ids.get(s.task.as_str()).is_some_and(|&t| {
                self.tasks[t as usize]
                    .by_name
                    .contains(&self.jobs, s.name.as_str())
            });
            if !exists && seen.insert((&s.task, &s.name)) {
                *new_per_task.entry(&s.task).or_default() += 1;
            }
        }
        let new: usize = new_per_task.values().sum();
        if new > self.cfg.max_jobs.saturating_sub(self.jobs.len()) {
            return Err(Error::ResourceExhausted(format!(
                "job limit reached: the server holds {} jobs and the batch adds {new} (max-jobs {})",
                self.jobs.len(),
                self.cfg.max_jobs
            )));
        }
        for (task, n) in new_per_task {
            let held = self
                .task_ids
                .get(task)
                .map_or(0, |&t| self.tasks[t as usize].by_name.len());
            if n > self.cfg.max_jobs_per_task.saturating_sub(held) {
                return Err(Error::ResourceExhausted(format!(
                    "job limit reached: task {task} holds {held} jobs and the batch adds {n} \
                     (max-jobs-per-task {})",
                    self.cfg.max_jobs_per_task
                )));
            }
        }
        Ok(())
    }

    fn check_room(&self, task: &str, name: &str) -> Result<(), Error> {
        let existing = self.task_ids.get(task).map(|&t| &self.tasks[t as usize]);
        if existing.is_some_and(|t| t.by_name.contains(&self.jobs, name)) {
            return Ok(());
        }
        if self.jobs.len() >= self.cfg.max_jobs {
            return Err(Error::ResourceExhausted(format!(
                "job limit reached: the server holds {} jobs (max-jobs {})",
                self.jobs.len(),
                self.cfg.max_jobs
            )));
        }
        let held = existing.map_or(0, |t| t.by_name.len());
        if held >= self.cfg.max_jobs_per_task {
            return Err(Error::ResourceExhausted(format!(
                "job limit reached: task {task} holds {held} jobs (max-jobs-per-task {})",
                self.cfg.max_jobs_per_task
            )));
        }
        Ok(())
    }

    /// Restores a dumped job: replaces by task and name, keeps its counters and dead flag.
    pub fn load(&mut self, mut record: JobRecord, now: Millis) {
        let tid = self.task_id(&record.task);
        let existing = self.tasks[tid as usize]
            .by_name
            .get(&self.jobs, record.name.as_str());
        let id = match existing {
            Some(id) => {
                self.remove_job(id, "replaced by load");
                id
            }
            None => {
                let id = self.next_job;
                self.next_job += 1;
                id
            }
        };
        record.id = id;
        self.insert_record(id, record, now);
        self.persist_upsert(id);
        self.payload_enforce();
    }

    /// Removes a job in any state. A running job's lease stops counting: its report will be rejected.
    pub fn remove(&mut self, key: &JobKey) -> Result<JobId, Error> {
        let id = self.find(key)?;
        self.remove_job(id, "job removed");
        self.persist(JobWrite::Delete(id));
        Ok(id)
    }

    /// A job as clients see it.
    pub fn get(&self, key: &JobKey) -> Result<JobView, Error> {
        let id = self.find(key)?;
        Ok(self.view(id))
    }

    /// Removes a task's jobs (live and dead); refused while workers serve it.
    pub fn drop_task(&mut self, task: &str) -> Result<u64, Error> {
        let Some(&tid) = self.task_ids.get(task) else {
            return Err(Error::NotFound(format!("task {task:?} not found")));
        };
        let t = &self.tasks[tid as usize];
        if !t.workers.is_empty() {
            return Err(Error::WorkersPresent {
                task: task.to_string(),
                workers: Some(t.workers.len()),
            });
        }
        let ids: Vec<JobId> = t.by_name.ids(&self.jobs);
        for &id in &ids {
            self.remove_job(id, "task dropped");
        }
        self.effects
            .push(Effect::Persist(JobWrite::DeleteTask(task.to_string())));
        Ok(ids.len() as u64)
    }

    /// Earliest time at which `tick` has work: a job due, a lease or a registration expiring.
    pub fn next_wakeup(&self) -> Option<Millis> {
        [
            self.timers.first().map(|&(t, _)| t),
            self.lease_expiry.first().map(|&(t, _)| t),
            self.unattached.first().map(|&(t, _)| t),
            self.locks.next_expiry(),
            self.part_deadlines.first().map(|&(t, _)| t),
            self.limit_timers.first().map(|&(t, _)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Promotes due jobs, expires leases and registrations, then hands due jobs to workers with credit.
    pub fn tick(&mut self, now: Millis) {
        self.last_now = self.last_now.max(now);
        while let Some(&(t, wid)) = self.unattached.first() {
            if t > now {
                break;
            }
            self.unattached.pop_first();
            self.worker_gone(wid, now);
        }
        while let Some(&(t, lid)) = self.lease_expiry.first() {
            if t > now {
                break;
            }
            self.lease_expiry.pop_first();
            if let Some(lease) = self.leases.remove(&lid) {
                if let Some(w) = self.workers.get_mut(&lease.worker) {
                    w.leases.remove(&lid);
                    self.mark_worker_dirty(lease.worker);
                }
                if let Some(id) = lease.job {
                    if let Some(job) = self.jobs.get(&id) {
                        let task = self.tasks[job.task as usize].name.clone();
                        self.effects
                            .push(Effect::Observe(Observation::Expired(task)));
                        self.log_expired(id, lid, lease.worker);
                    }
                    self.lease_lost(id, lid, "lease expired", now);
                }
            }
        }
        self.expire_parts(now);
        if self.locks.next_expiry().is_some_and(|t| t <= now) {
            let (_, promoted) = self.locks.expire(now, self.cfg.lock_timeout_ms);
            self.wake_locked(promoted);
        }
        while let Some(&(t, tid)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            while let Some(&(s, id)) = self.tasks[tid as usize].scheduled.first() {
                if s > now {
                    break;
                }
                self.tasks[tid as usize].scheduled.pop_first();
                self.jobs.get_mut(&id).expect("scheduled job exists").phase = Phase::Pending;
                self.ready_insert(id);
            }
            if let Some(&(s, _)) = self.tasks[tid as usize].scheduled.first() {
                self.timers.insert((s, tid));
            }
            self.mark_dirty(tid);
        }
        self.limit_timers_due(now);
        self.dispatch(now);
    }

    /// Stops handing out jobs for good (shutdown); reports of open leases are still applied.
    pub(crate) fn pause_dispatch(&mut self) {
        self.paused = true;
    }

    /// Leases not yet reported, expired or lost.
    pub fn open_leases(&self) -> usize {
        self.leases.len()
    }

    fn dispatch(&mut self, now: Millis) {
        if self.paused {
            return;
        }
        while let Some(tid) = self.dirty.pop_front() {
            self.dirty_flag[tid as usize] = false;
            if !self.paused_tasks.is_empty()
                && self.paused_tasks.contains(&*self.tasks[tid as usize].name)
            {
                continue;
            }
            if self.tasks[tid as usize].broadcast {
                self.dispatch_broadcast(tid, now);
                continue;
            }
            while !self.tasks[tid as usize].ready.is_empty() {
                if self.task_room(tid, now) == 0 {
                    break;
                }
                let Some(wid) = self.pick_worker(tid) else {
                    break;
                };
                // None: every ready key is held back by its own limit.
                let Some(id) = self.take_ready(tid, now) else {
                    break;
                };
                let lid = self.lease_to(id, wid, now);
                self.jobs.get_mut(&id).expect("ready job exists").phase = Phase::Running(lid);
                self.run_started(tid, id, now);
                let job = self.view(id);
                self.effects.push(Effect::Assign { worker: wid, job });
            }
        }
    }

    /// Pauses (nothing of the task is handed out; its jobs stay queued, running ones finish)
    /// or resumes a task. Whether anything changed.
    pub(crate) fn set_task_paused(&mut self, task: &str, paused: bool) -> bool {
        if !paused {
            if !self.paused_tasks.remove(task) {
                return false;
            }
            let tid = self.task_id(task);
            self.mark_dirty(tid);
            return true;
        }
        // Status lists the task even before it has jobs.
        self.task_id(task);
        self.paused_tasks.insert(task.to_string())
    }

    /// Marks a task as broadcast: each of its jobs goes to every worker registered for it.
    pub fn mark_broadcast(&mut self, task: &str) {
        let tid = self.task_id(task);
        self.tasks[tid as usize].broadcast = true;
        self.mark_dirty(tid);
    }

    fn find(&self, key: &JobKey) -> Result<JobId, Error> {
        match key {
            JobKey::Id(id) => {
                if self.jobs.contains_key(id) {
                    Ok(*id)
                } else {
                    Err(Error::NotFound(format!("job {id} not found")))
                }
            }
            JobKey::Name { task, name } => self
                .task_ids
                .get(task.as_str())
                .and_then(|&t| {
                    self.tasks[t as usize]
                        .by_name
                        .get(&self.jobs, name.as_str())
                })
                .ok_or_else(|| Error::NotFound(format!("job {task}:{name} not found"))),
        }
    }

    fn task_id(&mut self, name: &str) -> TaskId {
        if let Some(&t) = self.task_ids.get(name) {
            return t;
        }
        let t = self.tasks.len() as TaskId;
        let name: Arc<str> = Arc::from(name);
        self.tasks.push(Task {
            name: name.clone(),
            by_name: NameIndex::default(),
            ready: BTreeSet::new(),
            scheduled: BTreeSet::new(),
            dead: BTreeSet::new(),
            workers: Vec::new(),
            rr: 0,
            running: 0,
            locked: 0,
            broadcast: false,
            fair: None,
            limits: None,
            key_running: HashMap::default(),
        });
        self.dirty_flag.push(false);
        self.task_ids.insert(name, t);
        t
    }

    fn insert_record(&mut self, id: JobId, r: JobRecord, now: Millis) {
        let tid = self.task_id(&r.task);
        let dead = r.dead;
        // Not dead: enqueue below sets pending or scheduled.
        let phase = if dead { Phase::Dead } else { Phase::Pending };
        let key = self.keys.hold(&r.key);
        let slot = self.jobs.insert(id, Job::from_record(tid, key, r, phase));
        self.tasks[tid as usize].by_name.insert(&self.jobs, slot);
        self.payload_count(slot, true);
        if dead {
            self.tasks[tid as usize].dead.insert(id);
            self.dead_total += 1;
            self.trim_dead();
        } else {
            self.enqueue(id, now);
        }
    }

    /// Puts a job in the ready set (due) or the scheduled set (later).
    fn enqueue(&mut self, id: JobId, now: Millis) {
        let job = self.jobs.get_mut(&id).expect("job exists");
        let tid = job.task;
        let task = &mut self.tasks[tid as usize];
        if job.sched_at <= now {
            job.phase = Phase::Pending;
            self.ready_insert(id);
            self.mark_dirty(tid);
        } else {
            job.phase = Phase::Scheduled;
            let old_first = task.scheduled.first().copied();
            task.scheduled.insert((job.sched_at, id));
            let new_first = task.scheduled.first().copied();
            if old_first != new_first {
                if let Some((s, _)) = old_first {
                    self.timers.remove(&(s, tid));
                }
                self.timers.insert((job.sched_at, tid));
            }
        }
    }

    /// Takes a pending or scheduled job out of its queue (no-op for other phases).
    fn unqueue(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        let tid = job.task;
        let task = &mut self.tasks[tid as usize];
        match job.phase {
            Phase::Pending => self.ready_remove(id),
            Phase::Scheduled => {
                let old_first = task.scheduled.first().copied();
                task.scheduled.remove(&(job.sched_at, id));
                let new_first = task.scheduled.first().copied();
                if old_first != new_first {
                    if let Some((s, _)) = old_first {
                        self.timers.remove(&(s, tid));
                    }
                    if let Some((s, _)) = new_first {
                        self.timers.insert((s, tid));
                    }
                }
            }
            Phase::Dead => {
                task.dead.remove(&id);
                self.dead_total -= 1;
            }
            Phase::Locked => task.locked -= 1,
            Phase::Running(_) => {}
        }
    }

    /// Removes a job from every index; running jobs release their lease's hold on the job.
    fn remove_job(&mut self, id: JobId, why: &str) {
        if let Some(job) = self.jobs.get(&id) {
            if let Phase::Running(lid) = job.phase {
                let mut leases = vec![lid];
                if let Some(run) = self.broadcasts.remove(&id) {
                    leases.extend(run.leases);
                }
                for lid in leases {
                    if let Some(lease) = self.leases.get_mut(&lid) {
                        lease.job = None;
                        self.effects.push(Effect::Revoke {
                            worker: lease.worker,
                            lease: lid,
                            job: id,
                            reason: why.to_string(),
                        });
                    }
                }
                self.run_ended(id);
            }
        }
        // Locks go by id: a removed job must not keep a slot (or its place in a queue).
        let promoted = self.drop_locks(id, self.last_now);
        // A part's end is not its job's (the owner reports that): no waiter hears of it.
        let finished = (!is_part(id)).then(|| self.finished(id, Err(why.to_string())));
        self.remove_job_silently(id);
        self.wake_locked(promoted);
        self.effects.extend(finished);
    }

    /// Drops a job from the maps and queues; the caller settles its lease and running count.
    fn remove_job_silently(&mut self, id: JobId) {
        if is_part(id) {
            self.parts.remove(&id);
        }
        self.unqueue(id);
        let slot = self.jobs.slot(&id).expect("job exists");
        self.payload_count(slot, false);
        let tid = self.jobs.at(slot).1.task;
        self.tasks[tid as usize].by_name.remove(&self.jobs, slot);
        self.keys.release(self.jobs.at(slot).1.key());
        self.jobs.remove(&id);
        let tasks = &mut self.tasks;
        self.jobs.shrink_some(|jobs, m| {
            let tid = jobs.at(m.to).1.task;
            tasks[tid as usize].by_name.relocate(jobs, m.from, m.to);
        });
    }

    fn mark_dirty(&mut self, tid: TaskId) {
        if !self.dirty_flag[tid as usize] {
            self.dirty_flag[tid as usize] = true;
            self.dirty.push_back(tid);
        }
    }

    fn record(&self, id: JobId) -> JobRecord {
        let job = &self.jobs[&id];
        JobRecord {
            // A part shows its job's own id.
            id: id & !PART_BIT,
            // `String::from(&str)`, not `to_string()`: on `Arc<str>` and `Box<str>` that goes
            // through `Display` and the formatter (about 700 instructions per job, once
            // for every job written).
            task: String::from(&*self.tasks[job.task as usize].name),
            name: String::from(&*job.name),
            args: job.args.clone(),
            sched_at: job.sched_at,
            timeout_ms: job.timeout_ms,
            priority: job.priority,
            retry: job.retry,
            attempts: job.attempts,
            run_count: job.run_count,
            dead: job.phase == Phase::Dead,
            last_error: job.last_error.as_deref().unwrap_or("").to_string(),
            trace: job.trace(),
            key: self.keys.name(job.key()).to_string(),
            spilled: job.spilled(),
        }
    }

    fn view(&self, id: JobId) -> JobView {
        let job = &self.jobs[&id];
        let (state, lease) = match job.phase {
            Phase::Pending | Phase::Locked => (JobState::Pending, None),
            Phase::Scheduled => (JobState::Scheduled, None),
            Phase::Running(l) => (JobState::Running, Some(l)),
            Phase::Dead => (JobState::Dead, None),
        };
        JobView {
            record: self.record(id),
            state,
            lease,
            result: None,
            finished_at: None,
        }
    }

    /// Writes `op`, unless it is about a part or a transient job (they live in memory only).
    fn persist(&mut self, op: JobWrite) {
        let id = match &op {
            JobWrite::Upsert(r) => Some(r.id),
            JobWrite::Reschedule { id, .. } | JobWrite::Delete(id) => Some(*id),
            _ => None,
        };
        if id.is_some_and(in_memory_only) {
            return;
        }
        self.effects.push(Effect::Persist(op));
    }

    fn persist_upsert(&mut self, id: JobId) {
        // Parts and transient jobs are never written (a part's record shows its job's id).
        if in_memory_only(id) {
            return;
        }
        let r = self.record(id);
        // A written record always carries its payload: spills come after the write.
        debug_assert!(r.spilled.is_none(), "upsert of spilled job {id}");
        self.persist(JobWrite::Upsert(r));
    }

    fn persist_reschedule(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        self.persist(JobWrite::Reschedule {
            id,
            sched_at: job.sched_at,
            attempts: job.attempts,
            run_count: job.run_count,
            dead: job.phase == Phase::Dead,
            last_error: job.last_error.as_deref().unwrap_or("").to_string(),
        });
    }
}
