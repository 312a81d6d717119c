//! Property tests of the pure scheduler core: random sequences of submit, dispatch, done,
//! fail, sched-later, lease expiry, worker loss, removal, dead-set operations and restarts
//! (a new core rebuilt from the `MemoryStore` mirror of its ops), named locks taken and let
//! go. After every step: no job is lost, none is held by two live leases, the core's indexes
//! agree, the counts in Status match the store, and no lock has more holders than its count.
//! The same steps run with *external* locks (a cluster node's), where a model of the
//! database's lock functions grants the slots. Jobs carry flow-control keys (by name), and
//! task "a" may have `max_running` and `max_running_per_key` limits: no step lets more out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;
use taskhive::scheduler::core::{Core, CoreConfig, Effect, SPILL_MIN};
use taskhive::scheduler::job::*;
use taskhive::scheduler::limits::TaskLimits;
use taskhive::store::memory::MemoryStore;
use taskhive::store::Store;

const T0: Millis = 1_700_000_000_000;
const TASKS: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Step {
    Submit {
        task: usize,
        name: u8,
        delay: i64,
    },
    Register {
        cap: u32,
    },
    WorkerGone(usize),
    Done(usize),
    Fail {
        lease: usize,
        retry: bool,
    },
    Later {
        lease: usize,
        delay: i64,
    },
    Heartbeat(usize),
    Remove {
        task: usize,
        name: u8,
    },
    RetryDead,
    PurgeDead,
    Advance(i64),
    Restart,
    Acquire {
        lease: usize,
        lock: usize,
        count: u32,
    },
    ReleaseLock {
        lease: usize,
        lock: usize,
    },
}

const LOCKS: [&str; 2] = ["x", "y"];

/// Task "a"'s limits: none, a count, a count per key, or both.
fn limits() -> impl Strategy<Value = TaskLimits> {
    (prop::option::of(1..4u32), prop::option::of(1..3u32)).prop_map(|(m, k)| TaskLimits {
        max_running: m,
        max_running_per_key: k,
        ..TaskLimits::default()
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..2usize, 0..12u8, -200..600i64)
            .prop_map(|(task, name, delay)| Step::Submit { task, name, delay }),
        1 => (1..4u32).prop_map(|cap| Step::Register { cap }),
        1 => any::<prop::sample::Index>().prop_map(|i| Step::WorkerGone(i.index(1 << 16))),
        3 => any::<prop::sample::Index>().prop_map(|i| Step::Done(i.index(1 << 16))),
        2 => (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(i, retry)| Step::Fail { lease: i.index(1 << 16), retry }),
        1 => (any::<prop::sample::Index>(), 0..500i64)
            .prop_map(|(i, delay)| Step::Later { lease: i.index(1 << 16), delay }),
        1 => any::<prop::sample::Index>().prop_map(|i| Step::Heartbeat(i.index(1 << 16))),
        1 => (0..2usize, 0..12u8).prop_map(|(task, name)| Step::Remove { task, name }),
        1 => Just(Step::RetryDead),
        1 => Just(Step::PurgeDead),
        3 => (0..1_500i64).prop_map(Step::Advance),
        1 => Just(Step::Restart),
        2 => (any::<prop::sample::Index>(), 0..2usize, 1..3u32)
            .prop_map(|(i, lock, count)| Step::Acquire { lease: i.index(1 << 16), lock, count }),
        1 => (any::<prop::sample::Index>(), 0..2usize)
            .prop_map(|(i, lock)| Step::ReleaseLock { lease: i.index(1 << 16), lock }),
    ]
}

fn spec(task: &str, name: &str, at: Millis) -> JobSpec {
    JobSpec {
        task: task.into(),
        name: name.into(),
        args: args_of(task, name),
        sched_at: at,
        timeout_ms: 1_000,
        priority: 0,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 400,
        },
        trace: None,
        key: key_of(name).into(),
    }
}

/// A job's payload, by its task and name: half the names carry one past the payload budget's
/// threshold (`SPILL_MIN`), so with a budget some are let go and read back.
fn args_of(task: &str, name: &str) -> Bytes {
    let short = format!("{task}/{name}");
    if name.bytes().map(u32::from).sum::<u32>() % 2 == 0 {
        Bytes::from(short)
    } else {
        Bytes::from(short.repeat(SPILL_MIN / short.len() + 1))
    }
}

/// A job's flow-control key, by its name: none, "k1" or "k2".
fn key_of(name: &str) -> &'static str {
    ["", "k1", "k2"][name.bytes().last().unwrap_or(0) as usize % 3]
}

type Key = (String, String);

/// A model of the database's lock functions (`taskhive_lock_*`): per lock its limit, its
/// holders and its queue; a release gives free slots to the first waiters.
#[derive(Default)]
struct LockDb {
    locks: HashMap<String, (u32, BTreeSet<JobId>, VecDeque<JobId>)>,
}

impl LockDb {
    fn acquire(&mut self, name: &str, count: u32, job: JobId) -> bool {
        let (max, holders, waiting) = self.locks.entry(name.to_string()).or_default();
        *max = (*max).max(count.max(1));
        if holders.contains(&job) {
            return true;
        }
        if waiting.contains(&job) {
            return false;
        }
        if (holders.len() as u32) < *max && waiting.is_empty() {
            holders.insert(job);
            true
        } else {
            waiting.push_back(job);
            false
        }
    }

    /// Lets `job` go of `name` (or every lock); returns the (lock, job) slots granted.
    fn release(&mut self, name: Option<&str>, job: JobId) -> Vec<(String, JobId)> {
        let mut granted = Vec::new();
        for (n, (max, holders, waiting)) in self.locks.iter_mut() {
            if name.is_some_and(|want| want != n) {
                continue;
            }
            holders.remove(&job);
            waiting.retain(|&j| j != job);
            while (holders.len() as u32) < *max {
                let Some(next) = waiting.pop_front() else {
                    break;
                };
                holders.insert(next);
                granted.push((n.clone(), next));
            }
        }
        granted
    }
}

/// The core under test, its store mirror, and what the test knows from outside.
struct World {
    core: Core,
    store: MemoryStore,
    now: Millis,
    /// Lease ids handed out since the last restart, with the job each was for.
    leases: Vec<(LeaseId, Key)>,
    /// Leases from before a restart: reports with them must be refused.
    old_leases: Vec<LeaseId>,
    workers: Vec<WorkerId>,
    /// Jobs that must exist: submitted and not yet done, removed or purged.
    alive: BTreeSet<Key>,
    boots: u64,
    /// External locks: the database model that grants slots.
    lock_db: Option<LockDb>,
    /// Largest count asked of each lock (its limit).
    lock_max: HashMap<&'static str, u32>,
    /// Task "a"'s flow-control limits (applied again after every restart, as the server does).
    limits: TaskLimits,
    /// The payload budget, if any.
    budget: Option<usize>,
}

fn config(budget: Option<usize>) -> CoreConfig {
    CoreConfig {
        payload_budget: budget,
        ..CoreConfig::default()
    }
}

impl World {
    fn new(external_locks: bool, limits: TaskLimits, budget: Option<usize>) -> Self {
        let mut core = Core::new(config(budget), 1, 1);
        if external_locks {
            core.set_locks_external();
        }
        core.set_task_limits(TASKS[0], limits);
        World {
            core,
            store: MemoryStore::default(),
            now: T0,
            leases: Vec::new(),
            old_leases: Vec::new(),
            workers: Vec::new(),
            alive: BTreeSet::new(),
            boots: 0,
            lock_db: external_locks.then(LockDb::default),
            lock_max: HashMap::new(),
            limits,
            budget,
        }
    }

    /// Ticks, carries the effects out (ops into the store mirror), records new leases.
    fn settle(&mut self) {
        self.core.tick(self.now);
        let mut ops = Vec::new();
        let mut revoked = Vec::new();
        let mut spilled = Vec::new();
        let mut effects: VecDeque<Effect> = self.core.take_effects().into();
        while let Some(e) = effects.pop_front() {
            match e {
                Effect::LocksReleased { job, .. } => {
                    // As the database does: free the job's slots, grant them to waiters,
                    // and the waiters' node (this core) hears of each grant.
                    let db = self.lock_db.as_mut().expect("external locks only");
                    for (name, waiter) in db.release(None, job) {
                        self.core.grant_lock(waiter, &name, self.now);
                    }
                    effects.extend(self.core.take_effects());
                }
                Effect::Persist(op) => ops.push(op.into()),
                Effect::Assign { job, .. } => {
                    if job.record.spilled.is_some() {
                        spilled.push(job.record.clone());
                    }
                    let key = (job.record.task.clone(), job.record.name.clone());
                    self.leases
                        .push((job.lease.expect("assigned job has a lease"), key));
                }
                Effect::Revoke { lease, .. } => revoked.push(lease),
                Effect::Finished { .. } | Effect::Observe(_) => {}
                Effect::BroadcastParts { .. } | Effect::PartDone { .. } => {
                    unreachable!("one node: no broadcast parts")
                }
            }
        }
        // A revoked lease no longer counts: its report will be refused.
        for lid in revoked {
            assert!(
                self.core.lease_job(lid).is_none(),
                "revoked lease {lid} still held"
            );
        }
        self.store.apply(&ops).expect("memory store applies");
        // As the actor does: a spilled job's payload is read after the writes before it.
        for r in spilled {
            assert!(self.budget.is_some(), "spilled without a budget");
            let read = self.store.read_args(&[r.id]).expect("memory store reads");
            assert_eq!(read.len(), 1, "job {}'s payload is stored", r.id);
            assert_eq!(
                read[0].1,
                args_of(&r.task, &r.name),
                "job {}'s payload",
                r.id
            );
            assert_eq!(Some(read[0].1.len() as u32), r.spilled);
        }
    }

    fn lease(&self, i: usize) -> Option<(LeaseId, Key)> {
        if self.leases.is_empty() {
            return None;
        }
        Some(self.leases[i % self.leases.len()].clone())
    }

    fn report(&mut self, i: usize, outcome: Outcome) -> Result<(), TestCaseError> {
        let Some((lid, key)) = self.lease(i) else {
            return Ok(());
        };
        let live = self.core.lease_job(lid).is_some();
        let done = matches!(outcome, Outcome::Done { .. });
        let r = self.core.report(lid, outcome, self.now);
        prop_assert_eq!(
            r.is_ok(),
            live,
            "a report succeeds exactly when its lease is live"
        );
        if r.is_ok() && done {
            self.alive.remove(&key);
        }
        Ok(())
    }

    fn apply(&mut self, s: Step) -> Result<(), TestCaseError> {
        match s {
            Step::Submit { task, name, delay } => {
                let (t, n) = (TASKS[task], format!("j{name}"));
                self.core
                    .submit(spec(t, &n, self.now + delay), self.now)
                    .map_err(|e| TestCaseError::fail(format!("submit refused: {e}")))?;
                self.alive.insert((t.to_string(), n));
            }
            Step::Register { cap } => {
                if self.workers.len() < 4 {
                    let tasks: Vec<String> = TASKS.iter().map(|t| t.to_string()).collect();
                    let w = self
                        .core
                        .register_worker(None, &tasks, cap, true, self.now)
                        .unwrap();
                    self.workers.push(w);
                }
            }
            Step::WorkerGone(i) => {
                if !self.workers.is_empty() {
                    let w = self.workers.swap_remove(i % self.workers.len());
                    self.core.worker_gone(w, self.now);
                }
            }
            Step::Done(i) => self.report(
                i,
                Outcome::Done {
                    result: Bytes::new(),
                },
            )?,
            Step::Fail { lease, retry } => self.report(
                lease,
                Outcome::Fail {
                    error: "boom".into(),
                    retry,
                },
            )?,
            Step::Later { lease, delay } => self.report(
                lease,
                Outcome::SchedLater {
                    delay_ms: delay,
                    count_step: 1,
                },
            )?,
            Step::Heartbeat(i) => {
                if let Some((lid, _)) = self.lease(i) {
                    let lost = self.core.heartbeat(&[lid], self.now);
                    prop_assert_eq!(lost.is_empty(), self.core.lease_job(lid).is_some());
                }
            }
            Step::Remove { task, name } => {
                let key = (TASKS[task].to_string(), format!("j{name}"));
                let r = self.core.remove(&JobKey::Name {
                    task: key.0.clone(),
                    name: key.1.clone(),
                });
                prop_assert_eq!(r.is_ok(), self.alive.remove(&key));
            }
            Step::RetryDead => {
                self.core.retry_dead(None, None, self.now);
            }
            Step::PurgeDead => {
                let dead: Vec<Key> = self
                    .core
                    .list_dead(None, usize::MAX)
                    .into_iter()
                    .map(|v| (v.record.task, v.record.name))
                    .collect();
                let n = self.core.purge_dead(None, None);
                prop_assert_eq!(n as usize, dead.len());
                for k in dead {
                    self.alive.remove(&k);
                }
            }
            Step::Advance(ms) => self.now += ms,
            Step::Acquire { lease, lock, count } => {
                let Some((lid, _)) = self.lease(lease) else {
                    return Ok(());
                };
                let name = LOCKS[lock];
                let max = self.lock_max.entry(name).or_default();
                *max = (*max).max(count);
                let live = self.core.lease_job(lid).is_some();
                let r = match (&mut self.lock_db, self.core.lock_request(lid)) {
                    (Some(db), Ok((job, _))) => {
                        let held = db.acquire(name, count, job);
                        self.core.acquire_lock_decided(lid, name, held, self.now)
                    }
                    _ => self.core.acquire_lock(lid, name, count, self.now),
                };
                prop_assert_eq!(r.is_ok(), live, "acquire answers exactly for live leases");
                if r == Ok(false) {
                    prop_assert!(
                        self.core.lease_job(lid).is_none(),
                        "a queued job's lease ends"
                    );
                }
            }
            Step::ReleaseLock { lease, lock } => {
                let Some((lid, _)) = self.lease(lease) else {
                    return Ok(());
                };
                let name = LOCKS[lock];
                if let (Some(db), Ok((job, _))) = (&mut self.lock_db, self.core.lock_request(lid)) {
                    let granted = db.release(Some(name), job);
                    let _ = self.core.release_lock(lid, name, self.now);
                    for (n, waiter) in granted {
                        self.core.grant_lock(waiter, &n, self.now);
                    }
                } else {
                    let _ = self.core.release_lock(lid, name, self.now);
                }
            }
            Step::Restart => {
                self.boots += 1;
                // Lease ids after a restart start above every earlier one (as the server
                // does with the boot time).
                let mut core = Core::new(config(self.budget), self.boots, self.boots << 32);
                if let Some(db) = &mut self.lock_db {
                    // A restarted node's entries go stale in the database.
                    *db = LockDb::default();
                    core.set_locks_external();
                }
                // As the server starts: large payloads stay in the store, then those of the
                // jobs due first are read back as far as the budget goes.
                let spill_from = self.budget.map(|_| SPILL_MIN);
                let stored = self.store.load_stored_jobs(spill_from).expect("reads");
                core.restore_stored(stored, self.now);
                let ids = core.payloads_to_read();
                core.fill_payloads(self.store.read_args(&ids).expect("reads"));
                core.set_task_limits(TASKS[0], self.limits);
                self.core = core;
                self.old_leases
                    .extend(self.leases.drain(..).map(|(lid, _)| lid));
                self.workers.clear();
            }
        }
        self.settle();
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        self.core.check_invariants().map_err(TestCaseError::fail)?;
        // Memory and the store mirror hold the same jobs, and exactly the ones alive.
        let mut from_core = self.core.dump_page(0, usize::MAX);
        from_core.sort_by_key(|r| r.id);
        for r in &mut from_core {
            if let Some(n) = r.spilled.take() {
                prop_assert!(r.args.is_empty());
                let read = self.store.clone().read_args(&[r.id]).expect("reads");
                prop_assert_eq!(read[0].1.len(), n as usize);
                r.args = read[0].1.clone();
            }
        }
        let stored = self.store.snapshot();
        prop_assert_eq!(&from_core, &stored, "store mirror diverged");
        let names: BTreeSet<Key> = stored
            .iter()
            .map(|r| (r.task.clone(), r.name.clone()))
            .collect();
        prop_assert_eq!(&names, &self.alive, "a job was lost or came back");
        // No lock has more holders than the largest count asked of it.
        for (name, max) in &self.lock_max {
            let holders = match &self.lock_db {
                Some(db) => db.locks.get(*name).map_or(0, |l| l.1.len()),
                None => self.core.lock_holders(name),
            };
            prop_assert!(
                holders as u32 <= *max,
                "lock {} has {} holders",
                name,
                holders
            );
        }
        // No job is held by two live leases.
        let mut holder: HashMap<JobId, LeaseId> = HashMap::new();
        for (lid, _) in &self.leases {
            if let Some((id, _, _)) = self.core.lease_job(*lid) {
                if let Some(other) = holder.insert(id, *lid) {
                    prop_assert!(false, "job {} held by leases {} and {}", id, other, lid);
                }
            }
        }
        // Flow control: no more of task "a" out than its limits let go.
        let mut out_by_key: HashMap<&str, u32> = HashMap::new();
        let mut out = 0;
        for (_, task, name) in holder.values().filter_map(|&lid| self.core.lease_job(lid)) {
            if &*task == TASKS[0] {
                out += 1;
                let k = key_of(&name);
                if !k.is_empty() {
                    *out_by_key.entry(k).or_default() += 1;
                }
            }
        }
        if let Some(m) = self.limits.max_running {
            prop_assert!(out <= m, "{} of task a out, max_running {}", out, m);
        }
        if let Some(m) = self.limits.max_running_per_key {
            for (k, n) in &out_by_key {
                prop_assert!(*n <= m, "{} of key {} out, max {}", n, k, m);
            }
        }
        for lid in &self.old_leases {
            prop_assert!(
                self.core.lease_job(*lid).is_none(),
                "lease {} survived a restart",
                lid
            );
        }
        // Status counts match the store.
        let (per_task, totals) = self.core.status(None);
        prop_assert_eq!(
            (totals.pending + totals.scheduled + totals.running + totals.dead + totals.locked)
                as usize,
            stored.len()
        );
        let mut stored_by_task: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in &stored {
            let e = stored_by_task.entry(&r.task).or_default();
            if r.dead {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
        for s in &per_task {
            let (live, dead) = stored_by_task
                .get(s.task.as_str())
                .copied()
                .unwrap_or_default();
            prop_assert_eq!(
                s.pending + s.scheduled + s.running + s.locked,
                live,
                "task {}",
                &s.task
            );
            prop_assert_eq!(s.dead, dead, "task {}", &s.task);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_job_lost_none_double_leased_status_matches_store(
        steps in prop::collection::vec(step(), 1..150),
        limits in limits(),
    ) {
        run(World::new(false, limits, None), steps)?;
    }

    #[test]
    fn the_same_with_a_payload_budget(
        steps in prop::collection::vec(step(), 1..150),
        limits in limits(),
        budget in 0..6_000usize,
    ) {
        run(World::new(false, limits, Some(budget)), steps)?;
    }

    #[test]
    fn the_same_with_external_locks(
        steps in prop::collection::vec(step(), 1..150),
        limits in limits(),
    ) {
        run(World::new(true, limits, None), steps)?;
    }
}

fn run(mut w: World, steps: Vec<Step>) -> Result<(), TestCaseError> {
    {
        for s in steps {
            w.apply(s)?;
        }
        // A report with any lease from before a restart is refused without effect.
        for lid in w.old_leases.clone() {
            let done = Outcome::Done {
                result: Bytes::new(),
            };
            let r = w.core.report(lid, done, w.now);
            prop_assert!(r.is_err(), "a lease from before a restart was accepted");
        }
        w.settle();
        w.check()?;
    }
    Ok(())
}
