//! The pure scheduler core, driven directly with time under the test's control.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use taskhive::scheduler::core::{Core, CoreConfig, Effect};
use taskhive::scheduler::job::*;
use taskhive::scheduler::write::JobWrite;
use taskhive::store::memory::MemoryStore;
use taskhive::store::Store;

const T0: Millis = 1_700_000_000_000;

fn spec(task: &str, name: &str, at: Millis) -> JobSpec {
    JobSpec {
        task: task.into(),
        name: name.into(),
        args: Bytes::from_static(b"a"),
        sched_at: at,
        timeout_ms: 1_000,
        priority: 0,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
        },
        trace: None,
        key: String::new(),
    }
}

fn core() -> Core {
    Core::new(CoreConfig::default(), 7, 1)
}

fn assigned(effects: &[Effect]) -> Vec<(WorkerId, JobView)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Assign { worker, job } => Some((*worker, job.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn due_job_goes_to_a_worker_with_credit_and_done_removes_it() {
    let mut c = core();
    let w = c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    let r = c.submit(spec("t", "a", T0), T0).unwrap();
    c.take_effects();
    c.tick(T0);
    let a = assigned(&c.take_effects());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, w);
    assert_eq!(a[0].1.record.id, r.id);
    let lease = a[0].1.lease.unwrap();
    c.report(
        lease,
        Outcome::Done {
            result: Bytes::from_static(b"r"),
        },
        T0 + 5,
    )
    .unwrap();
    let e = c.take_effects();
    assert!(e.contains(&Effect::Persist(JobWrite::Delete(r.id))));
    assert!(e.contains(&Effect::Finished {
        job: r.id,
        task: "t".into(),
        name: "a".into(),
        attempts: 0,
        result: Ok(Bytes::from_static(b"r"))
    }));
    assert!(c.is_empty());
    c.check_invariants().unwrap();
}

#[test]
fn timers_fire_at_their_time_not_before() {
    let mut c = core();
    c.register_worker(None, &["t".into()], 100, true, T0)
        .unwrap();
    for i in 0..50 {
        c.submit(spec("t", &format!("j{i}"), T0 + 1000 - i * 10), T0)
            .unwrap();
    }
    c.take_effects();
    assert_eq!(c.next_wakeup(), Some(T0 + 1000 - 49 * 10));
    c.tick(T0 + 509);
    assert!(assigned(&c.take_effects()).is_empty());
    c.tick(T0 + 510);
    let a = assigned(&c.take_effects());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1.record.name, "j49");
    c.tick(T0 + 1000);
    assert_eq!(assigned(&c.take_effects()).len(), 49);
    assert_eq!(
        c.next_wakeup(),
        Some(T0 + 1000 + 1000 - 490),
        "lease expiry is next"
    );
    c.check_invariants().unwrap();
}

#[test]
fn lease_expiry_counts_an_attempt_and_stale_reports_fail() {
    let mut c = core();
    c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    c.submit(spec("t", "a", T0), T0).unwrap();
    c.tick(T0);
    let first = assigned(&c.take_effects())[0].1.lease.unwrap();
    c.tick(T0 + 999);
    assert!(assigned(&c.take_effects()).is_empty());
    c.tick(T0 + 1000);
    let again = assigned(&c.take_effects());
    assert_eq!(again.len(), 1, "expired lease requeues and redispatches");
    assert_eq!(again[0].1.record.attempts, 1);
    assert!(c
        .report(
            first,
            Outcome::Done {
                result: Bytes::new()
            },
            T0 + 1001
        )
        .is_err());
    assert_eq!(c.len(), 1);
    c.check_invariants().unwrap();
}

#[test]
fn failures_back_off_then_go_dead() {
    let mut c = core();
    c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    c.submit(spec("t", "a", T0), T0).unwrap();
    let mut now = T0;
    for attempt in 1..=3u32 {
        c.tick(now);
        let a = assigned(&c.take_effects());
        assert_eq!(a.len(), 1, "attempt {attempt}");
        let lease = a[0].1.lease.unwrap();
        c.report(
            lease,
            Outcome::Fail {
                error: "x".into(),
                retry: true,
            },
            now,
        )
        .unwrap();
        c.take_effects();
        c.check_invariants().unwrap();
        if attempt < 3 {
            let due = c.next_wakeup().unwrap();
            let full = 100i64 << (attempt - 1);
            assert!(
                due - now >= full / 2 && due - now <= full,
                "backoff {}",
                due - now
            );
            c.tick(due - 1);
            assert!(
                assigned(&c.take_effects()).is_empty(),
                "not before its backoff"
            );
            now = due;
        }
    }
    let (tasks, _) = c.status(Some("t"));
    assert_eq!(tasks[0].dead, 1);
    assert_eq!(c.list_dead(None, 10)[0].record.attempts, 3);
    assert_eq!(c.retry_dead(Some("t"), None, now), 1);
    c.tick(now);
    assert_eq!(assigned(&c.take_effects()).len(), 1);
    c.check_invariants().unwrap();
}

#[test]
fn worker_gone_requeues_at_once_and_capacity_holds() {
    let mut c = core();
    let w1 = c.register_worker(None, &["t".into()], 2, true, T0).unwrap();
    for i in 0..5 {
        c.submit(spec("t", &format!("{i}"), T0), T0).unwrap();
    }
    c.tick(T0);
    assert_eq!(assigned(&c.take_effects()).len(), 2);
    let w2 = c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    c.tick(T0);
    let a = assigned(&c.take_effects());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, w2);
    c.worker_gone(w1, T0 + 1);
    c.tick(T0 + 1);
    assert!(assigned(&c.take_effects()).is_empty(), "w2 is full");
    let (tasks, _) = c.status(Some("t"));
    assert_eq!((tasks[0].running, tasks[0].pending), (1, 4));
    c.check_invariants().unwrap();
}

#[test]
fn unattached_registrations_expire() {
    let mut c = core();
    let w = c
        .register_worker(None, &["t".into()], 1, false, T0)
        .unwrap();
    assert!(c.has_worker("t"));
    c.submit(spec("t", "a", T0), T0).unwrap();
    c.tick(T0);
    assert!(assigned(&c.take_effects()).is_empty(), "no stream yet");
    c.tick(T0 + CoreConfig::default().unattached_worker_ttl_ms);
    assert!(!c.has_worker("t"));
    assert!(c.connect_worker(w).is_err());
}

#[test]
fn removing_a_running_job_rejects_its_report_but_frees_the_credit() {
    let mut c = core();
    c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    let a = c.submit(spec("t", "a", T0), T0).unwrap();
    c.submit(spec("t", "b", T0 + 1), T0).unwrap();
    c.tick(T0 + 1);
    let lease = assigned(&c.take_effects())[0].1.lease.unwrap();
    c.remove(&JobKey::Id(a.id)).unwrap();
    assert!(c
        .report(
            lease,
            Outcome::Done {
                result: Bytes::new()
            },
            T0 + 2
        )
        .is_err());
    c.tick(T0 + 2);
    let next = assigned(&c.take_effects());
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.record.name, "b");
    c.check_invariants().unwrap();
}

/// Random operations: the indexes stay consistent, no job is held by two leases, and the
/// store mirror (the effects applied to a MemoryStore) always equals the core's own view.
#[test]
fn random_operations_keep_core_and_store_in_agreement() {
    for seed in 0..20u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut c = core();
        let mut store = MemoryStore::default();
        let mut now = T0;
        let mut workers: Vec<WorkerId> = Vec::new();
        let mut leases: Vec<LeaseId> = Vec::new();
        for _ in 0..2_000 {
            now += rng.random_range(0..50);
            match rng.random_range(0..11) {
                0..=2 => {
                    let name = format!("j{}", rng.random_range(0..40));
                    let at = now + rng.random_range(-100..300);
                    c.submit(spec(["a", "b"][rng.random_range(0..2)], &name, at), now)
                        .unwrap();
                }
                3 if workers.len() < 4 => {
                    let cap = rng.random_range(1..4);
                    workers.push(
                        c.register_worker(None, &["a".into(), "b".into()], cap, true, now)
                            .unwrap(),
                    );
                }
                4 if !workers.is_empty() => {
                    let w = workers.swap_remove(rng.random_range(0..workers.len()));
                    c.worker_gone(w, now);
                }
                5..=7 if !leases.is_empty() => {
                    let l = leases.swap_remove(rng.random_range(0..leases.len()));
                    let o = match rng.random_range(0..3) {
                        0 => Outcome::Done {
                            result: Bytes::new(),
                        },
                        1 => Outcome::Fail {
                            error: "e".into(),
                            retry: rng.random_bool(0.8),
                        },
                        _ => Outcome::SchedLater {
                            delay_ms: rng.random_range(0..200),
                            count_step: 1,
                        },
                    };
                    let _ = c.report(l, o, now);
                }
                9 if !leases.is_empty() => {
                    let l = leases[rng.random_range(0..leases.len())];
                    let lock = format!("L{}", rng.random_range(0..2));
                    if let Ok(false) = c.acquire_lock(l, &lock, rng.random_range(1..3), now) {
                        leases.retain(|&x| x != l);
                    }
                }
                8 => {
                    let name = format!("j{}", rng.random_range(0..40));
                    let _ = c.remove(&JobKey::Name {
                        task: "a".into(),
                        name,
                    });
                }
                _ => {
                    let _ = c.retry_dead(None, None, now);
                }
            }
            c.tick(now);
            let mut ops = Vec::new();
            for e in c.take_effects() {
                match e {
                    Effect::Persist(op) => ops.push(op.into()),
                    Effect::Assign { job, .. } => leases.push(job.lease.unwrap()),
                    Effect::Finished { .. } | Effect::Observe(_) | Effect::Revoke { .. } => {}
                    // Only a core with external locks (a cluster node's) says this.
                    Effect::LocksReleased { .. } => unreachable!("locks are local here"),
                    Effect::BroadcastParts { .. } | Effect::PartDone { .. } => {
                        unreachable!("one node: no broadcast parts")
                    }
                }
            }
            store.apply(&ops).unwrap();
            c.check_invariants()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        let mut from_core = c.dump_page(0, usize::MAX);
        let mut from_store = store.snapshot();
        from_core.sort_by_key(|r| r.id);
        from_store.sort_by_key(|r| r.id);
        assert_eq!(from_core, from_store, "seed {seed}: store mirror diverged");
        // A restart from the store gives the same jobs, none leased.
        let mut restarted = core();
        restarted.restore(from_store, now);
        restarted.check_invariants().unwrap();
        let (_, totals) = restarted.status(None);
        assert_eq!(totals.running, 0);
        assert_eq!(restarted.len(), c.len());
    }
}

#[test]
fn locks_hold_at_most_count_jobs_and_waiters_run_when_released() {
    let mut c = core();
    c.register_worker(None, &["t".into()], 10, true, T0)
        .unwrap();
    for i in 0..4 {
        c.submit(spec("t", &format!("{i}"), T0), T0).unwrap();
    }
    c.tick(T0);
    let leases: Vec<LeaseId> = assigned(&c.take_effects())
        .iter()
        .map(|(_, j)| j.lease.unwrap())
        .collect();
    assert_eq!(leases.len(), 4);
    let got: Vec<bool> = leases
        .iter()
        .map(|&l| c.acquire_lock(l, "L", 2, T0).unwrap())
        .collect();
    assert_eq!(got, [true, true, false, false]);
    let (tasks, _) = c.status(Some("t"));
    assert_eq!((tasks[0].running, tasks[0].locked), (2, 2));
    assert_eq!(c.lock_holders("L"), 2);
    c.check_invariants().unwrap();
    // Done releases the lock: the first waiter gets the slot and is dispatched again.
    c.report(
        leases[0],
        Outcome::Done {
            result: Bytes::new(),
        },
        T0 + 1,
    )
    .unwrap();
    c.tick(T0 + 1);
    let again = assigned(&c.take_effects());
    assert_eq!(again.len(), 1);
    let l = again[0].1.lease.unwrap();
    assert!(
        c.acquire_lock(l, "L", 2, T0 + 1).unwrap(),
        "slot was kept for it"
    );
    assert_eq!(c.lock_holders("L"), 2);
    // Lease expiry releases too.
    c.tick(T0 + 1 + 1_000);
    c.take_effects();
    c.check_invariants().unwrap();
    // Stale locks go after the lock timeout.
    c.tick(T0 + CoreConfig::default().lock_timeout_ms + 10_000);
    c.take_effects();
    assert_eq!(c.lock_holders("L"), 0);
    c.check_invariants().unwrap();
}

/// Rows as a store returns them: a mix of tasks, priorities, due, future and dead jobs.
fn stored_rows(n: u64) -> Vec<JobRecord> {
    (1..=n)
        .map(|id| JobRecord {
            id: id * 3,
            task: format!("t{}", id % 3),
            name: format!("n{id}"),
            args: Bytes::from(vec![b'x'; 10]),
            spilled: None,
            sched_at: T0 + ((id * 7919) % 200) as Millis - 100,
            timeout_ms: 1_000,
            priority: (id % 4) as i32,
            retry: RetryPolicy::default(),
            attempts: 0,
            run_count: 0,
            dead: id % 10 == 0,
            last_error: if id % 10 == 0 {
                "boom".into()
            } else {
                String::new()
            },
            trace: (id % 5 == 0).then_some(TraceParent {
                trace_id: [id as u8 | 1; 16],
                span_id: [7; 8],
                flags: 1,
            }),
            // Some keyed, so a restart rebuilds the fairness index too.
            key: if id.is_multiple_of(3) {
                format!("k{}", id % 4)
            } else {
                String::new()
            },
        })
        .collect()
}

/// Every job a worker with room for all of them gets, in order, as time runs on.
fn dispatch_order(c: &mut Core, upto: Millis) -> Vec<JobId> {
    let mut order = Vec::new();
    for t in 0..3 {
        c.register_worker(None, &[format!("t{t}")], 1_000_000, true, T0)
            .unwrap();
    }
    let mut now = T0;
    while now <= upto {
        c.tick(now);
        order.extend(assigned(&c.take_effects()).iter().map(|(_, j)| j.record.id));
        now += 10;
    }
    order
}

#[test]
fn bulk_restore_of_sorted_rows_matches_one_by_one_restore() {
    let rows = stored_rows(3_000);
    let mut bulk = core();
    bulk.restore(rows.clone(), T0);
    let mut one_by_one = core();
    // Not in id order: takes the insert-one-at-a-time path.
    one_by_one.restore(rows.iter().rev().cloned().collect(), T0);
    bulk.check_invariants().unwrap();
    one_by_one.check_invariants().unwrap();
    assert_eq!(bulk.status(None), one_by_one.status(None));
    let (_, totals) = bulk.status(None);
    assert_eq!(totals.dead, 300);
    assert!(totals.pending > 0 && totals.scheduled > 0, "{totals:?}");
    assert_eq!(
        bulk.dump_page(0, usize::MAX),
        one_by_one.dump_page(0, usize::MAX)
    );
    let key = JobKey::Name {
        task: "t1".into(),
        name: "n1000".into(),
    };
    assert_eq!(bulk.get(&key).unwrap().record.id, 3_000);
    // Same order within each task (tasks interleave by when they were first seen).
    let per_task = |order: Vec<JobId>| {
        let mut by_task = vec![Vec::new(); 3];
        for id in order {
            by_task[((id / 3) % 3) as usize].push(id);
        }
        by_task
    };
    let a = per_task(dispatch_order(&mut bulk, T0 + 200));
    let b = per_task(dispatch_order(&mut one_by_one, T0 + 200));
    assert_eq!(
        a.iter().map(Vec::len).sum::<usize>(),
        2_700,
        "every live job is dispatched"
    );
    assert_eq!(a, b, "same dispatch order");
    // New ids continue after the restored ones.
    let r = bulk.submit(spec("t0", "fresh", T0), T0 + 300).unwrap();
    assert_eq!(r.id, 9_001);
}

#[test]
fn a_drained_burst_is_compacted_and_names_still_resolve() {
    let mut c = core();
    for i in 0..10_000 {
        c.submit(spec("t", &format!("j{i}"), T0), T0).unwrap();
    }
    c.register_worker(None, &["t".into()], 9_000, true, T0)
        .unwrap();
    c.tick(T0);
    let leases: Vec<LeaseId> = assigned(&c.take_effects())
        .iter()
        .map(|(_, j)| j.lease.unwrap())
        .collect();
    assert_eq!(leases.len(), 9_000);
    for (i, l) in leases.into_iter().enumerate() {
        c.report(
            l,
            Outcome::Done {
                result: Bytes::new(),
            },
            T0 + 1,
        )
        .unwrap();
        if i % 1_000 == 0 {
            c.check_invariants().unwrap();
        }
    }
    c.check_invariants().unwrap();
    assert_eq!(c.len(), 1_000);
    for i in (9_000..10_000).step_by(97) {
        let key = JobKey::Name {
            task: "t".into(),
            name: format!("j{i}"),
        };
        assert_eq!(c.get(&key).unwrap().record.name, format!("j{i}"));
    }
    // The survivors still run, and a same-name submit still replaces.
    let r = c.submit(spec("t", "j9999", T0), T0 + 2).unwrap();
    assert!(r.replaced);
    c.tick(T0 + 2);
    assert_eq!(assigned(&c.take_effects()).len(), 1_000);
    c.check_invariants().unwrap();
}
