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
use super::table::{JobTable, NameIndex, Named};
use crate::store::{Op, StoredJobs};

mod broadcast;
use broadcast::BroadcastRun;
mod fair;
mod keys;
use keys::{KeyId, Keys};
mod limits;
use limits::LimitState;
mod list;
mod log;
mod parts;
mod transient;

pub use limits::Held;

pub use parts::{is_part, PART_BIT, PART_GRACE_MS};
pub use transient::{in_memory_only, is_transient, TRANSIENT_BIT};

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
        }
    }
}

/// What the actor must do after a core operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write to the store, in order.
    Persist(Op),
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
    /// Cluster: ready jobs held back by a limit, from the database's counts (`self`) and
    /// this node's core (`mine`: the same limits, and the keys it parked).
    pub fn limits_waiting(&self, mine: &TaskStatus) -> u64 {
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
}

fn extras(trace: Option<TraceParent>, key: KeyId) -> Option<Box<Extras>> {
    (trace.is_some() || key != KeyId::NONE).then(|| Box::new(Extras { trace, key }))
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
            extras: extras(r.trace, key),
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

    /// Loads jobs read from the store at start-up: leased jobs come back as pending (at-least-once).
    pub fn restore(&mut self, records: Vec<JobRecord>, now: Millis) {
        self.restore_stored(StoredJobs::from_records(records), now);
    }

    /// [`Core::restore`] from what [`crate::store::Store::load_stored_jobs`] read.
    pub fn restore_stored(&mut self, stored: StoredJobs, now: Millis) {
        if self.jobs.is_empty() && stored.jobs.windows(2).all(|w| w[0].1.id < w[1].1.id) {
            self.restore_bulk(stored, now);
        } else {
            for r in stored.into_records() {
                self.next_job = self.next_job.max(r.id + 1);
                self.insert_record(r.id, r, now);
            }
        }
        self.effects.clear();
    }

    /// [`Core::restore`] into an empty core from rows in id order (what a store reads): the
    /// job table and every queue are bulk-built from sorted runs instead of one insert at a
    /// time, which halves their memory and most of the start-up time at 1M jobs.
    fn restore_bulk(&mut self, stored: StoredJobs, now: Millis) {
        let tids: Vec<TaskId> = stored.tasks.iter().map(|t| self.task_id(t)).collect();
        let mut jobs = Vec::with_capacity(stored.jobs.len());
        let mut ready: Vec<Vec<ReadyKey>> = Vec::new();
        let mut scheduled: Vec<Vec<(Millis, JobId)>> = Vec::new();
        let mut dead: Vec<Vec<JobId>> = Vec::new();
        let mut keyed: BTreeSet<TaskId> = BTreeSet::new();
        for (t, r) in stored.jobs {
            let tid = tids[t as usize];
            let t = tid as usize;
            if ready.len() <= t {
                ready.resize_with(t + 1, Vec::new);
                scheduled.resize_with(t + 1, Vec::new);
                dead.resize_with(t + 1, Vec::new);
            }
            let phase = if r.dead {
                dead[t].push(r.id);
                Phase::Dead
            } else if r.sched_at <= now {
                ready[t].push((Reverse(r.priority), r.sched_at, r.id));
                if !r.key.is_empty() {
                    keyed.insert(tid);
                }
                Phase::Pending
            } else {
                scheduled[t].push((r.sched_at, r.id));
                Phase::Scheduled
            };
            self.next_job = self.next_job.max(r.id + 1);
            let key = self.keys.hold(&r.key);
            jobs.push((r.id, Job::from_record(tid, key, r, phase)));
        }
        self.jobs = JobTable::from_sorted(jobs);
        for (t, task) in self.tasks.iter_mut().enumerate() {
            let held = ready.get(t).map_or(0, Vec::len)
                + scheduled.get(t).map_or(0, Vec::len)
                + dead.get(t).map_or(0, Vec::len);
            task.by_name.reserve(&self.jobs, held);
        }
        for slot in 0..self.jobs.len() as super::table::Slot {
            let tid = self.jobs.at(slot).1.task;
            self.tasks[tid as usize].by_name.insert(&self.jobs, slot);
        }
        let queues = ready.into_iter().zip(scheduled).zip(dead);
        for (t, ((ready, scheduled), dead)) in queues.enumerate() {
            let tid = t as TaskId;
            let task = &mut self.tasks[t];
            task.ready = ready.into_iter().collect();
            task.scheduled = scheduled.into_iter().collect();
            self.dead_total += dead.len();
            task.dead = dead.into_iter().collect();
            if let Some(&(s, _)) = task.scheduled.first() {
                self.timers.insert((s, tid));
            }
            if !task.ready.is_empty() {
                self.mark_dirty(tid);
            }
        }
        for tid in keyed {
            self.build_fair(tid);
        }
        self.trim_dead();
    }

    /// Makes memory agree with the store after failed commits: every job a refused op named
    /// (by id, or every job of a task whose drop was refused) is replaced by its stored row,
    /// or dropped when the store has none. A running one loses its lease (the worker's report
    /// is then refused) and is pending again: memory went ahead of the store, so the work
    /// since the last good commit may run again (at-least-once).
    pub fn resync(&mut self, ids: &[JobId], tasks: &[String], stored: Vec<JobRecord>, now: Millis) {
        self.last_now = self.last_now.max(now);
        let mut affected: BTreeSet<JobId> = ids.iter().copied().collect();
        for t in tasks {
            if let Some(&tid) = self.task_ids.get(t.as_str()) {
                affected.extend(self.tasks[tid as usize].by_name.ids(&self.jobs));
            }
        }
        affected.extend(stored.iter().map(|r| r.id));
        for id in affected {
            if self.jobs.contains_key(&id) {
                self.remove_job(id, "store write failed; job reloaded from the store");
            }
        }
        for r in stored {
            let clash = self.task_ids.get(r.task.as_str()).and_then(|&t| {
                self.tasks[t as usize]
                    .by_name
                    .get(&self.jobs, r.name.as_str())
            });
            if let Some(other) = clash {
                self.remove_job(other, "store write failed; job reloaded from the store");
            }
            self.next_job = self.next_job.max(r.id + 1);
            self.insert_record(r.id, r, now);
        }
    }

    /// Takes in jobs another party already stored (cluster claims): like [`Core::restore`],
    /// but keeps the effects of other operations and writes nothing.
    pub fn adopt(&mut self, records: Vec<JobRecord>, now: Millis) {
        for r in records {
            if self.jobs.contains_key(&r.id) {
                continue;
            }
            let tid = self.task_id(&r.task);
            if let Some(old) = self.tasks[tid as usize]
                .by_name
                .get(&self.jobs, r.name.as_str())
            {
                // A part run here for another node gives way to the job itself, now ours.
                if is_part(old) {
                    self.remove_job(old, "claimed by this node");
                } else if matches!(self.jobs[&old].phase, Phase::Running(_)) {
                    // The stored row replaced ours (same task and name): ours is stale.
                    continue;
                } else {
                    self.remove_job(old, "replaced in the store");
                }
            }
            self.next_job = self.next_job.max(r.id + 1);
            self.insert_record(r.id, r, now);
        }
    }

    /// Drops jobs this node no longer holds (a cluster claim lost to another node), writing
    /// nothing: a late report on their leases is refused as unknown.
    pub fn forget(&mut self, ids: &[JobId]) {
        for &id in ids {
            if self.jobs.contains_key(&id) {
                self.remove_job(id, "claim lost to another node");
            }
        }
    }

    /// Gives back jobs this node holds but will not run now (cluster claims): of `ids`, the
    /// ones not running leave the core without a trace (no result, no write); returns them.
    /// The caller writes the release of their claims.
    pub fn release(&mut self, ids: &[JobId]) -> Vec<JobId> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            // Nothing of a part or a transient job is claimed; their waits end on their own.
            if matches!(job.phase, Phase::Running(_) | Phase::Locked) || in_memory_only(id) {
                continue;
            }
            self.remove_job_silently(id);
            out.push(id);
        }
        out
    }

    /// Ready or scheduled jobs of tasks no worker here serves (their workers left): a node
    /// holding claims gives these back so other nodes' workers can run them.
    pub fn unserved(&self) -> Vec<JobId> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if !t.workers.is_empty() {
                continue;
            }
            out.extend(t.ready.iter().map(|&(_, _, id)| id));
            out.extend(t.scheduled.iter().map(|&(_, id)| id));
        }
        out
    }

    /// Per task with workers here: how many, and whether the task is broadcast; and how
    /// many workers there are in all (one serving several tasks counts once).
    pub fn local_workers(&self) -> LocalWorkers {
        let tasks = self
            .tasks
            .iter()
            .filter(|t| !t.workers.is_empty())
            .map(|t| (t.name.to_string(), t.workers.len() as u32, t.broadcast))
            .collect();
        (tasks, self.workers.len() as u32)
    }

    /// Free worker slots per task, less the jobs already waiting for them: how many more
    /// jobs the connected workers could take now (cluster claims ask for this many). A
    /// broadcast job takes a slot of every worker it reaches, so a broadcast task wants as
    /// many as its least busy worker could take.
    pub fn idle_slots(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if t.workers.is_empty() || self.paused_tasks.contains(&*t.name) {
                continue;
            }
            let slots = t
                .workers
                .iter()
                .filter_map(|w| self.workers.get(w))
                .filter(|w| w.connected)
                .map(|w| w.capacity.saturating_sub(w.leases.len() as u32) as u64);
            let free: u64 = if t.broadcast {
                slots.max().unwrap_or(0)
            } else {
                slots.sum()
            };
            let mut want = free.saturating_sub(t.ready.len() as u64);
            if let Some(m) = t.limits.as_ref().and_then(|l| l.limits.max_running) {
                // Claimed jobs count against the limit cluster-wide: ask for no more than
                // could run here now.
                want = want.min((m as u64).saturating_sub(t.running + t.ready.len() as u64));
            }
            if want > 0 {
                out.push((t.name.to_string(), want));
            }
        }
        out
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
            let key = self.keys.hold(&spec.key);
            let job = self.jobs.get_mut(&id).expect("indexed job exists");
            let old_key = job.key();
            job.args = spec.args;
            job.sched_at = spec.sched_at;
            job.timeout_ms = spec.timeout_ms;
            job.priority = spec.priority;
            job.retry = spec.retry;
            job.attempts = 0;
            job.run_count = 0;
            job.last_error = None;
            job.extras = extras(spec.trace, key);
            self.keys.release(old_key);
            self.enqueue(id, now);
            self.persist_upsert(id);
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
    }

    /// Removes a job in any state. A running job's lease stops counting: its report will be rejected.
    pub fn remove(&mut self, key: &JobKey) -> Result<JobId, Error> {
        let id = self.find(key)?;
        self.remove_job(id, "job removed");
        self.persist(Op::Delete(id));
        Ok(id)
    }

    /// A job as clients see it.
    pub fn get(&self, key: &JobKey) -> Result<JobView, Error> {
        let id = self.find(key)?;
        Ok(self.view(id))
    }

    /// Whether any worker (connected or just registered) serves `task`.
    pub fn has_worker(&self, task: &str) -> bool {
        self.task_ids
            .get(task)
            .is_some_and(|&t| !self.tasks[t as usize].workers.is_empty())
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
            .push(Effect::Persist(Op::DeleteTask(task.to_string())));
        Ok(ids.len() as u64)
    }

    /// Per-task counts (one task when `only` is set) and totals.
    pub fn status(&self, only: Option<&str>) -> (Vec<TaskStatus>, TaskStatus) {
        let mut out = Vec::new();
        let mut totals = TaskStatus::default();
        for t in &self.tasks {
            if only.is_some_and(|o| o != &*t.name) {
                continue;
            }
            let s = self.task_status(t);
            if only.is_none()
                && s.workers == 0
                && s.pending == 0
                && s.scheduled == 0
                && s.running == 0
                && s.dead == 0
                && s.locked == 0
                && s.limits.is_none()
            {
                continue;
            }
            totals.workers += s.workers;
            totals.pending += s.pending;
            totals.scheduled += s.scheduled;
            totals.running += s.running;
            totals.dead += s.dead;
            totals.locked += s.locked;
            totals.waiting_on_limit += s.waiting_on_limit;
            totals.next_sched_at = match (totals.next_sched_at, s.next_sched_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            out.push(s);
        }
        out.sort_by(|a, b| a.task.cmp(&b.task));
        if only.is_none() {
            // A worker serving several tasks is one worker.
            totals.workers = self.workers.len() as u32;
        }
        (out, totals)
    }

    fn task_status(&self, t: &Task) -> TaskStatus {
        // The ready set is ordered by priority first: its earliest sched_at is the
        // minimum over the first entry of each priority level.
        let mut next: Option<Millis> = t.scheduled.first().map(|&(s, _)| s);
        let mut cursor = t.ready.first().copied();
        while let Some((Reverse(p), s, _)) = cursor {
            next = Some(next.map_or(s, |n| n.min(s)));
            cursor = match p.checked_sub(1) {
                Some(lower) => t
                    .ready
                    .range((Reverse(lower), Millis::MIN, 0)..)
                    .next()
                    .copied(),
                None => None,
            };
        }
        TaskStatus {
            task: t.name.to_string(),
            workers: t.workers.len() as u32,
            pending: t.ready.len() as u64,
            scheduled: t.scheduled.len() as u64,
            running: t.running,
            dead: t.dead.len() as u64,
            locked: t.locked,
            broadcast: t.broadcast,
            paused: self.paused_tasks.contains(&*t.name),
            next_sched_at: next,
            limits: t.limits.as_ref().map(|l| l.limits).unwrap_or_default(),
            waiting_on_limit: self
                .task_ids
                .get(&*t.name)
                .map_or(0, |&tid| self.held_by_limits(tid, self.last_now).waiting),
        }
    }

    /// Dead jobs, of one task or all, oldest first.
    pub fn list_dead(&self, task: Option<&str>, limit: usize) -> Vec<JobView> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if task.is_some_and(|o| o != &*t.name) {
                continue;
            }
            for &id in &t.dead {
                if out.len() >= limit {
                    return out;
                }
                out.push(self.view(id));
            }
        }
        out
    }

    /// Puts dead jobs back to pending with their attempts reset.
    pub fn retry_dead(&mut self, task: Option<&str>, name: Option<&str>, now: Millis) -> u64 {
        let ids = self.dead_matching(task, name);
        for &id in &ids {
            let job = self.jobs.get_mut(&id).expect("dead job exists");
            self.tasks[job.task as usize].dead.remove(&id);
            self.dead_total -= 1;
            job.attempts = 0;
            job.sched_at = now;
            self.enqueue(id, now);
            self.persist_reschedule(id);
        }
        ids.len() as u64
    }

    /// Deletes dead jobs for good.
    pub fn purge_dead(&mut self, task: Option<&str>, name: Option<&str>) -> u64 {
        let ids = self.dead_matching(task, name);
        for &id in &ids {
            self.remove_job(id, "purged");
            self.persist(Op::Delete(id));
        }
        ids.len() as u64
    }

    fn dead_matching(&self, task: Option<&str>, name: Option<&str>) -> Vec<JobId> {
        let mut ids = Vec::new();
        for t in &self.tasks {
            if task.is_some_and(|o| o != &*t.name) {
                continue;
            }
            match name {
                Some(n) => {
                    if let Some(id) = t.by_name.get(&self.jobs, n) {
                        if t.dead.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                None => ids.extend(t.dead.iter().copied()),
            }
        }
        ids
    }

    /// Registers a worker (or adds tasks to an existing one). Unconnected workers expire after a TTL.
    pub fn register_worker(
        &mut self,
        existing: Option<WorkerId>,
        tasks: &[String],
        capacity: u32,
        connected: bool,
        now: Millis,
    ) -> Result<WorkerId, Error> {
        // Checked before anything changes, so a refused registration leaves no trace.
        for name in tasks {
            let Some(&tid) = self.task_ids.get(name.as_str()) else {
                continue;
            };
            let workers = &self.tasks[tid as usize].workers;
            let already = existing.is_some_and(|w| workers.contains(&w));
            if !already && workers.len() >= self.cfg.max_workers_per_task {
                return Err(Error::ResourceExhausted(format!(
                    "worker limit reached: task {name} has {} workers (max-workers-per-task {})",
                    workers.len(),
                    self.cfg.max_workers_per_task
                )));
            }
        }
        let wid = match existing {
            Some(w) => {
                let worker = self
                    .workers
                    .get_mut(&w)
                    .ok_or_else(|| Error::NotFound(format!("worker {w} not found")))?;
                worker.capacity = capacity;
                w
            }
            None => {
                let w = self.next_worker;
                self.next_worker += 1;
                let until = if connected {
                    Millis::MAX
                } else {
                    let until = now + self.cfg.unattached_worker_ttl_ms;
                    self.unattached.insert((until, w));
                    until
                };
                self.workers.insert(
                    w,
                    Worker {
                        tasks: Vec::new(),
                        capacity,
                        leases: HashSet::default(),
                        connected,
                        unattached_until: until,
                    },
                );
                w
            }
        };
        for name in tasks {
            let tid = self.task_id(name);
            let worker = self.workers.get_mut(&wid).expect("worker exists");
            if !worker.tasks.contains(&tid) {
                worker.tasks.push(tid);
                self.tasks[tid as usize].workers.push(wid);
            }
        }
        self.mark_worker_dirty(wid);
        Ok(wid)
    }

    /// Attaches a registered worker's job stream (GrabJob).
    pub fn connect_worker(&mut self, wid: WorkerId) -> Result<(), Error> {
        let worker = self
            .workers
            .get_mut(&wid)
            .ok_or_else(|| Error::NotFound(format!("worker {wid} not found; register first")))?;
        if worker.connected {
            return Err(Error::WorkerAttached { worker: wid });
        }
        worker.connected = true;
        self.unattached.remove(&(worker.unattached_until, wid));
        worker.unattached_until = Millis::MAX;
        self.mark_worker_dirty(wid);
        Ok(())
    }

    /// A worker's stream closed: its leased jobs go back to pending at once (a failed attempt each).
    pub fn worker_gone(&mut self, wid: WorkerId, now: Millis) {
        self.drop_worker(wid, now, true);
    }

    /// The server is stopping: the worker's jobs go back to pending without counting an
    /// attempt against them (their workers did nothing wrong).
    pub fn worker_released(&mut self, wid: WorkerId, now: Millis) {
        self.drop_worker(wid, now, false);
    }

    fn drop_worker(&mut self, wid: WorkerId, now: Millis, count_attempt: bool) {
        let Some(worker) = self.workers.remove(&wid) else {
            return;
        };
        self.unattached.remove(&(worker.unattached_until, wid));
        for &tid in &worker.tasks {
            let t = &mut self.tasks[tid as usize];
            t.workers.retain(|&w| w != wid);
            if t.rr >= t.workers.len() {
                t.rr = 0;
            }
        }
        let mut leases: Vec<LeaseId> = worker.leases.into_iter().collect();
        leases.sort_unstable();
        for lid in leases {
            if let Some(lease) = self.leases.remove(&lid) {
                self.lease_expiry.remove(&(lease.expires_at, lid));
                match lease.job {
                    Some(id) if count_attempt || self.broadcasts.contains_key(&id) => {
                        self.lease_lost(id, lid, "worker lost", now)
                    }
                    Some(id) => self.requeue(id, now),
                    None => {}
                }
            }
        }
    }

    /// Puts a running job back to pending as it was: no attempt counted, nothing to persist.
    fn requeue(&mut self, id: JobId, now: Millis) {
        self.release_locks(id, now);
        self.run_ended(id);
        self.enqueue(id, now);
    }

    /// Applies a worker's outcome for a lease; stale or unknown leases are rejected untouched.
    pub fn report(&mut self, lid: LeaseId, outcome: Outcome, now: Millis) -> Result<JobId, Error> {
        let Some(lease) = self.leases.remove(&lid) else {
            let e = Error::StaleLease(Stale::Ended { lease: lid });
            self.log_refused("", "", Some(lid), &e);
            return Err(e);
        };
        self.lease_expiry.remove(&(lease.expires_at, lid));
        if let Some(w) = self.workers.get_mut(&lease.worker) {
            w.leases.remove(&lid);
            self.mark_worker_dirty(lease.worker);
        }
        let Some(id) = lease.job else {
            let e = Error::StaleLease(Stale::JobRemoved { lease: lid });
            self.log_refused("", "", Some(lid), &e);
            return Err(e);
        };
        let task = self.tasks[self.jobs[&id].task as usize].name.clone();
        self.effects.push(Effect::Observe(Observation::Ran {
            task,
            ms: now - lease.started_at,
        }));
        if self.broadcasts.contains_key(&id) {
            self.broadcast_settle(id, lid, Some(outcome), None, now);
            return Ok(id);
        }
        self.apply_outcome(id, outcome, now);
        Ok(id)
    }

    /// Applies a running job's outcome (its leases are already settled).
    fn apply_outcome(&mut self, id: JobId, outcome: Outcome, now: Millis) {
        if is_part(id) {
            return self.part_over(id, outcome);
        }
        self.release_locks(id, now);
        match outcome {
            Outcome::Done { result } => {
                let tid = self.jobs[&id].task;
                self.run_ended(id);
                let task = self.tasks[tid as usize].name.clone();
                self.effects.push(Effect::Observe(Observation::Done(task)));
                let finished = self.finished(id, Ok(result));
                self.remove_job_silently(id);
                self.persist(Op::Delete(id));
                self.effects.push(finished);
            }
            Outcome::Fail { error, retry } => self.fail_attempt(id, error, retry, true, now),
            Outcome::SchedLater {
                delay_ms,
                count_step,
            } => {
                self.run_ended(id);
                let job = self.jobs.get_mut(&id).expect("leased job exists");
                job.run_count = job.run_count.saturating_add(count_step.max(1));
                job.attempts = 0;
                job.sched_at = now.saturating_add(delay_ms.max(0));
                self.enqueue(id, now);
                self.persist_reschedule(id);
            }
        }
    }

    /// Extends leases by their job's timeout; returns the ones no longer held.
    pub fn heartbeat(&mut self, leases: &[LeaseId], now: Millis) -> Vec<LeaseId> {
        let mut lost = Vec::new();
        for &lid in leases {
            let Some(lease) = self.leases.get_mut(&lid) else {
                lost.push(lid);
                continue;
            };
            let Some(job) = lease.job.and_then(|id| self.jobs.get(&id)) else {
                lost.push(lid);
                continue;
            };
            self.lease_expiry.remove(&(lease.expires_at, lid));
            lease.expires_at = now + job.timeout_ms as Millis;
            self.lease_expiry.insert((lease.expires_at, lid));
        }
        lost
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
    pub fn pause_dispatch(&mut self) {
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

    fn pick_worker(&mut self, tid: TaskId) -> Option<WorkerId> {
        let t = &mut self.tasks[tid as usize];
        let n = t.workers.len();
        for i in 0..n {
            let idx = (t.rr + i) % n;
            let wid = t.workers[idx];
            let w = &self.workers[&wid];
            if w.connected && (w.leases.len() as u32) < w.capacity {
                t.rr = (idx + 1) % n;
                return Some(wid);
            }
        }
        None
    }

    /// Pauses (nothing of the task is handed out; its jobs stay queued, running ones finish)
    /// or resumes a task. Whether anything changed.
    pub fn set_task_paused(&mut self, task: &str, paused: bool) -> bool {
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

    /// Whether `task` is paused.
    pub fn task_paused(&self, task: &str) -> bool {
        self.paused_tasks.contains(task)
    }

    /// Marks a task as broadcast: each of its jobs goes to every worker registered for it.
    pub fn mark_broadcast(&mut self, task: &str) {
        let tid = self.task_id(task);
        self.tasks[tid as usize].broadcast = true;
        self.mark_dirty(tid);
    }

    /// Creates a lease of job `id` for worker `wid`; the caller sets the job's phase.
    fn lease_to(&mut self, id: JobId, wid: WorkerId, now: Millis) -> LeaseId {
        let lid = self.next_lease;
        self.next_lease += 1;
        let job = &self.jobs[&id];
        let expires_at = now + job.timeout_ms as Millis;
        self.effects.push(Effect::Observe(Observation::Dispatched {
            task: self.tasks[job.task as usize].name.clone(),
            wait_ms: (now - job.sched_at).max(0),
        }));
        self.leases.insert(
            lid,
            Lease {
                job: Some(id),
                worker: wid,
                expires_at,
                started_at: now,
            },
        );
        self.lease_expiry.insert((expires_at, lid));
        self.workers
            .get_mut(&wid)
            .expect("picked worker exists")
            .leases
            .insert(lid);
        lid
    }

    /// A lease ended without a report (expiry, lost worker): a failed attempt, or for a
    /// broadcast job one settled lease.
    fn lease_lost(&mut self, id: JobId, lid: LeaseId, why: &str, now: Millis) {
        if self.broadcasts.contains_key(&id) {
            self.broadcast_settle(id, lid, None, Some(why.to_string()), now);
        } else if is_part(id) {
            let outcome = Outcome::Fail {
                error: why.to_string(),
                retry: true,
            };
            self.apply_outcome(id, outcome, now);
        } else {
            self.fail_attempt(id, why.to_string(), true, false, now);
        }
    }

    /// One failed attempt: retry (with backoff, or at once for lost leases) or move to the dead set.
    fn fail_attempt(&mut self, id: JobId, error: String, retry: bool, backoff: bool, now: Millis) {
        if !self.jobs.contains_key(&id) {
            return;
        }
        self.release_locks(id, now);
        if let Phase::Running(_) = self.jobs[&id].phase {
            self.run_ended(id);
        }
        let job = self.jobs.get_mut(&id).expect("checked above");
        job.attempts = job.attempts.saturating_add(1);
        job.last_error = Some(error.clone().into_boxed_str());
        let dead = !retry || job.attempts >= job.retry.max_attempts;
        let task = self.tasks[job.task as usize].name.clone();
        self.effects
            .push(Effect::Observe(Observation::Failed { task, dead }));
        if dead && is_transient(id) {
            // Its waiter hears the error; nothing keeps it.
            self.log_attempt(id, &error);
            let finished = self.finished(id, Err(error));
            self.remove_job_silently(id);
            self.effects.push(finished);
            return;
        }
        if dead {
            job.phase = Phase::Dead;
            let tid = job.task;
            self.tasks[tid as usize].dead.insert(id);
            self.dead_total += 1;
            self.persist_reschedule(id);
            self.trim_dead();
        } else {
            if backoff {
                let delay = self.backoff_ms(id);
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.sched_at = now + delay;
            }
            self.enqueue(id, now);
            self.persist_reschedule(id);
        }
        self.log_attempt(id, &error);
        // RunJob callers and watchers hear of a failure only once no retry follows.
        if dead {
            let finished = self.finished(id, Err(error));
            self.effects.push(finished);
        }
    }

    fn finished(&self, id: JobId, result: Result<Bytes, String>) -> Effect {
        let job = &self.jobs[&id];
        Effect::Finished {
            job: id,
            task: self.tasks[job.task as usize].name.clone(),
            name: Arc::from(&*job.name),
            attempts: job.attempts,
            result,
        }
    }

    /// Frees every lock slot the job holds or waits for; waiters that get a slot become pending.
    fn release_locks(&mut self, id: JobId, now: Millis) {
        let promoted = self.drop_locks(id, now);
        self.wake_locked(promoted);
    }

    /// Lets go of the job's lock entries; returns the waiters promoted here. With external
    /// locks the database holds the slots too: it is told ([`Effect::LocksReleased`]).
    fn drop_locks(&mut self, id: JobId, now: Millis) -> Vec<JobId> {
        if self.locks.is_external() && self.locks.has_entries(id) {
            self.effects.push(Effect::LocksReleased {
                job: id,
                timeout_ms: self.cfg.lock_timeout_ms,
            });
        }
        self.locks.release_all(id, now, self.cfg.lock_timeout_ms)
    }

    /// Cluster nodes: lock slots are granted by the database, not counted here.
    pub fn set_locks_external(&mut self) {
        self.locks = Locks::external();
    }

    /// The job a lock request's lease is for, and how long a lock entry lasts.
    pub fn lock_request(&self, lid: LeaseId) -> Result<(JobId, Millis), Error> {
        let (id, _) = self.lease_holder(lid)?;
        Ok((id, self.cfg.lock_timeout_ms))
    }

    /// External locks: applies the database's answer to an acquire (see
    /// [`Core::acquire_lock`] for what a queued job does).
    pub fn acquire_lock_decided(
        &mut self,
        lid: LeaseId,
        name: &str,
        held: bool,
        now: Millis,
    ) -> Result<bool, Error> {
        let (id, wid) = self.lease_holder(lid)?;
        if self.broadcasts.contains_key(&id) {
            return Ok(true);
        }
        self.locks
            .record(name, held, id, now, self.cfg.lock_timeout_ms);
        if !held {
            self.park_locked(lid, id, wid);
        }
        Ok(held)
    }

    /// External locks: the database gave waiting job `id` a slot of `name`: it is pending
    /// again, and its next acquire succeeds.
    pub fn grant_lock(&mut self, id: JobId, name: &str, now: Millis) {
        if self.locks.grant(name, id, now, self.cfg.lock_timeout_ms) {
            self.wake_locked(vec![id]);
        }
    }

    fn wake_locked(&mut self, jobs: Vec<JobId>) {
        for id in jobs {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            if job.phase == Phase::Locked {
                let tid = job.task;
                job.phase = Phase::Pending;
                self.tasks[tid as usize].locked -= 1;
                self.ready_insert(id);
                self.mark_dirty(tid);
            }
        }
    }

    /// Takes (or queues for) a slot of lock `name` for the job of a lease. When queued, the
    /// lease ends (the worker's credit comes back) and the job waits as locked.
    pub fn acquire_lock(
        &mut self,
        lid: LeaseId,
        name: &str,
        count: u32,
        now: Millis,
    ) -> Result<bool, Error> {
        let (id, wid) = self.lease_holder(lid)?;
        // A broadcast job runs on every worker at once: a lock cannot queue it.
        if self.broadcasts.contains_key(&id)
            || self
                .locks
                .acquire(name, count, id, now, self.cfg.lock_timeout_ms)
        {
            return Ok(true);
        }
        self.park_locked(lid, id, wid);
        Ok(false)
    }

    /// A job queued for a lock: its lease ends (the worker's credit comes back) and it waits
    /// as locked.
    fn park_locked(&mut self, lid: LeaseId, id: JobId, wid: WorkerId) {
        let lease = self.leases.remove(&lid).expect("checked by lease_holder");
        self.lease_expiry.remove(&(lease.expires_at, lid));
        if let Some(w) = self.workers.get_mut(&wid) {
            w.leases.remove(&lid);
        }
        self.mark_worker_dirty(wid);
        self.run_ended(id);
        let job = self.jobs.get_mut(&id).expect("leased job exists");
        job.phase = Phase::Locked;
        self.tasks[job.task as usize].locked += 1;
    }

    /// Releases one lock held by the job of a lease.
    pub fn release_lock(&mut self, lid: LeaseId, name: &str, now: Millis) -> Result<(), Error> {
        let (id, _) = self.lease_holder(lid)?;
        let promoted = self.locks.release(name, id, now, self.cfg.lock_timeout_ms);
        self.wake_locked(promoted.into_iter().collect());
        Ok(())
    }

    /// Holders of lock `name` now.
    pub fn lock_holders(&self, name: &str) -> usize {
        self.locks.holders(name)
    }

    /// Changes the lock timeout (run-time config).
    pub fn set_lock_timeout(&mut self, ms: i64) {
        self.cfg.lock_timeout_ms = ms.max(1);
    }

    fn lease_holder(&self, lid: LeaseId) -> Result<(JobId, WorkerId), Error> {
        match self.leases.get(&lid) {
            Some(Lease {
                job: Some(id),
                worker,
                ..
            }) => Ok((*id, *worker)),
            _ => Err(Error::StaleLease(Stale::NotHeld { lease: lid })),
        }
    }

    /// The job (id, task, name) a current lease is for.
    pub fn lease_job(&self, lid: LeaseId) -> Option<(JobId, Arc<str>, Arc<str>)> {
        let id = self.leases.get(&lid)?.job?;
        let job = self.jobs.get(&id)?;
        Some((
            id,
            self.tasks[job.task as usize].name.clone(),
            Arc::from(&*job.name),
        ))
    }

    /// A worker stops serving one task (Periodic's CANT_DO).
    pub fn unregister_task(&mut self, wid: WorkerId, task: &str) {
        let Some(&tid) = self.task_ids.get(task) else {
            return;
        };
        if let Some(w) = self.workers.get_mut(&wid) {
            w.tasks.retain(|&t| t != tid);
            let t = &mut self.tasks[tid as usize];
            t.workers.retain(|&w| w != wid);
            if t.rr >= t.workers.len() {
                t.rr = 0;
            }
        }
    }

    fn backoff_ms(&mut self, id: JobId) -> Millis {
        let job = &self.jobs[&id];
        let p = job.retry;
        let exp = job.attempts.saturating_sub(1).min(40);
        let full = (p.backoff_base_ms as u64)
            .saturating_mul(1u64 << exp)
            .min(p.backoff_max_ms as u64);
        // Equal jitter: half fixed, half random, so retries of many jobs spread out.
        let half = full / 2;
        (half + self.rng.random_range(0..=half)) as Millis
    }

    fn trim_dead(&mut self) {
        while self.dead_total > self.cfg.max_dead {
            // Oldest by id across tasks.
            let oldest = self
                .tasks
                .iter()
                .filter_map(|t| t.dead.first().copied())
                .min();
            let Some(id) = oldest else { break };
            self.remove_job(id, "dead set full");
            self.persist(Op::Delete(id));
        }
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
        let tid = self.jobs.at(slot).1.task;
        self.tasks[tid as usize].by_name.remove(&self.jobs, slot);
        self.keys.release(self.jobs.at(slot).1.key());
        self.jobs.remove(&id);
        if self.jobs.sparse() {
            self.compact();
        }
    }

    /// Gives a drained burst's slab memory back; slots move, so every name index is rebuilt.
    fn compact(&mut self) {
        self.jobs.compact();
        for t in &mut self.tasks {
            t.by_name.clear();
        }
        let slots: Vec<(TaskId, super::table::Slot)> = self
            .jobs
            .iter()
            .map(|(id, j)| (j.task, self.jobs.slot(&id).expect("listed job")))
            .collect();
        for (tid, slot) in slots {
            self.tasks[tid as usize].by_name.insert(&self.jobs, slot);
        }
    }

    fn mark_dirty(&mut self, tid: TaskId) {
        if !self.dirty_flag[tid as usize] {
            self.dirty_flag[tid as usize] = true;
            self.dirty.push_back(tid);
        }
    }

    fn mark_worker_dirty(&mut self, wid: WorkerId) {
        let tasks = match self.workers.get(&wid) {
            Some(w) if w.connected => w.tasks.clone(),
            _ => return,
        };
        for tid in tasks {
            self.mark_dirty(tid);
        }
    }

    fn record(&self, id: JobId) -> JobRecord {
        let job = &self.jobs[&id];
        JobRecord {
            // A part shows its job's own id.
            id: id & !PART_BIT,
            task: self.tasks[job.task as usize].name.to_string(),
            name: job.name.to_string(),
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
    fn persist(&mut self, op: Op) {
        let id = match &op {
            Op::Upsert(r) => Some(r.id),
            Op::Reschedule { id, .. } | Op::Delete(id) => Some(*id),
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
        self.persist(Op::Upsert(r));
    }

    fn persist_reschedule(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        self.persist(Op::Reschedule {
            id,
            sched_at: job.sched_at,
            attempts: job.attempts,
            run_count: job.run_count,
            dead: job.phase == Phase::Dead,
            last_error: job.last_error.as_deref().unwrap_or("").to_string(),
        });
    }

    /// One page of every job in id order, for Dump.
    pub fn dump_page(&self, after: JobId, limit: usize) -> Vec<JobRecord> {
        self.jobs
            .after(after)
            .filter(|&(id, _)| !in_memory_only(id))
            .take(limit)
            .map(|(id, _)| self.record(id))
            .collect()
    }

    /// Checks the internal indexes agree with each other (used by tests).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut running = vec![0u64; self.tasks.len()];
        let mut locked = vec![0u64; self.tasks.len()];
        for (id, job) in self.jobs.iter() {
            let t = &self.tasks[job.task as usize];
            if t.by_name.get(&self.jobs, &job.name) != Some(id) {
                return Err(format!("job {id} missing from by_name"));
            }
            let ok = match job.phase {
                Phase::Pending => t.ready.contains(&(Reverse(job.priority), job.sched_at, id)),
                Phase::Scheduled => t.scheduled.contains(&(job.sched_at, id)),
                Phase::Dead => t.dead.contains(&id),
                Phase::Locked => {
                    locked[job.task as usize] += 1;
                    self.locks.is_waiting(id)
                }
                Phase::Running(l) => {
                    running[job.task as usize] += 1;
                    // A broadcast job whose leases are settled may wait for other nodes' parts.
                    self.leases.get(&l).is_some_and(|x| x.job == Some(id))
                        || self
                            .broadcasts
                            .get(&id)
                            .is_some_and(|r| r.leases.is_empty() && !r.remote.is_empty())
                }
            };
            if !ok {
                return Err(format!("job {id} in phase {:?} is not indexed", job.phase));
            }
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let n = t.ready.len()
                + t.scheduled.len()
                + t.dead.len()
                + running[i] as usize
                + locked[i] as usize;
            if n != t.by_name.len() {
                return Err(format!(
                    "task {} counts {} != {}",
                    t.name,
                    n,
                    t.by_name.len()
                ));
            }
            let keyed: u32 = t.key_running.values().sum();
            if t.running != running[i] || t.locked != locked[i] || keyed as u64 > t.running {
                return Err(format!("task {} running or locked counter off", t.name));
            }
            if let Some(&(s, _)) = t.scheduled.first() {
                if !self.timers.contains(&(s, i as TaskId)) {
                    return Err(format!("task {} timer missing", t.name));
                }
            }
        }
        for (lid, l) in &self.leases {
            if !self.lease_expiry.contains(&(l.expires_at, *lid)) {
                return Err(format!("lease {lid} has no expiry"));
            }
            match self.workers.get(&l.worker) {
                Some(w) if w.leases.contains(lid) => {}
                _ => return Err(format!("lease {lid} not held by its worker")),
            }
        }
        for (wid, w) in &self.workers {
            if w.leases.len() as u32 > w.capacity {
                return Err(format!("worker {wid} over capacity"));
            }
        }
        for (_, job) in self.jobs.iter() {
            if job.key() != KeyId::NONE && self.keys.holders(job.key()) == 0 {
                return Err(format!("job {} holds a forgotten key", job.name));
            }
        }
        self.check_limits()
    }
}
