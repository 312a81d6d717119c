//! Flow control in the pure core, with time under the test's control: `max_running`, the
//! start rate, per-key limits and fairness between keys (issue 20's acceptance figures).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use taskhive::scheduler::core::{Core, CoreConfig, Effect};
use taskhive::scheduler::job::*;
use taskhive::scheduler::limits::{LimitsRequest, TaskLimits};

const T0: Millis = 1_700_000_000_000;

fn spec(name: String, key: &str, at: Millis) -> JobSpec {
    JobSpec {
        task: "t".into(),
        name,
        args: Bytes::from_static(b"a"),
        sched_at: at,
        timeout_ms: 60_000,
        priority: 0,
        retry: RetryPolicy::default(),
        trace: None,
        key: key.into(),
    }
}

fn limits(r: LimitsRequest) -> TaskLimits {
    r.validate().unwrap()
}

/// A core (seeded `seed`) whose task "t" has the limits `r` asks for.
fn limited(seed: u64, r: LimitsRequest) -> Core {
    let mut c = Core::new(CoreConfig::default(), seed, 1);
    c.set_task_limits("t", limits(r));
    c
}

/// One dispatch as the simulation saw it.
#[derive(Debug, Clone)]
struct Start {
    at: Millis,
    /// Leases open right after this dispatch (across all workers).
    open: usize,
}

/// Runs the core until every job is done: each assigned job runs `run_ms` and reports Done.
/// Returns every start in order, checking the core's invariants on the way.
fn simulate(c: &mut Core, run_ms: Millis, until: Millis) -> Vec<Start> {
    let mut now = T0;
    let mut finishing: BTreeMap<(Millis, LeaseId), ()> = BTreeMap::new();
    let mut starts = Vec::new();
    loop {
        c.tick(now);
        for e in c.take_effects() {
            if let Effect::Assign { job, .. } = e {
                let lease = job.lease.expect("assigned with a lease");
                finishing.insert((now + run_ms, lease), ());
                starts.push(Start {
                    at: now,
                    open: c.open_leases(),
                });
            }
        }
        c.check_invariants().unwrap();
        let next_finish = finishing.keys().next().map(|&(t, _)| t);
        let next = [next_finish, c.next_wakeup()].into_iter().flatten().min();
        let Some(next) = next else { break };
        if next > until {
            break;
        }
        now = next.max(now);
        while let Some(&(t, lease)) = finishing.keys().next() {
            if t > now {
                break;
            }
            finishing.remove(&(t, lease));
            c.report(
                lease,
                Outcome::Done {
                    result: Bytes::new(),
                },
                now,
            )
            .unwrap();
        }
    }
    starts
}

fn workers(c: &mut Core, n: usize, capacity: u32) {
    for _ in 0..n {
        c.register_worker(None, &["t".into()], capacity, true, T0)
            .unwrap();
    }
}

#[test]
fn max_running_3_across_20_workers_of_10_holds_and_runs_at_3_per_job_time() {
    let mut c = limited(
        1,
        LimitsRequest {
            max_running: Some(3),
            ..Default::default()
        },
    );
    workers(&mut c, 20, 10);
    for i in 0..300 {
        c.submit(spec(format!("j{i}"), "", T0), T0).unwrap();
    }
    // Each job runs 100 ms: 3 at a time is 30 jobs per second.
    let starts = simulate(&mut c, 100, T0 + 5_000);
    let max_open = starts.iter().map(|s| s.open).max().unwrap();
    assert_eq!(max_open, 3, "at most 3 leased at any dispatch");
    let in_5s = starts.iter().filter(|s| s.at < T0 + 5_000).count() as f64;
    // 3 ÷ 0.1 s × 5 s = 150, within 10%.
    assert!((135.0..=165.0).contains(&in_5s), "{in_5s} starts in 5 s");
    let (tasks, _) = c.status(Some("t"));
    assert_eq!(tasks[0].limits.max_running, Some(3));
}

#[test]
fn rate_50_per_second_burst_1_spaces_500_starts_over_10_seconds() {
    let mut c = limited(
        2,
        LimitsRequest {
            rate: Some("50/s".into()),
            burst: Some(1),
            ..Default::default()
        },
    );
    workers(&mut c, 10, 100);
    for i in 0..500 {
        c.submit(spec(format!("j{i}"), "", T0), T0).unwrap();
    }
    let starts = simulate(&mut c, 5, T0 + 60_000);
    assert_eq!(starts.len(), 500);
    let span = starts.last().unwrap().at - starts[0].at;
    // 499 gaps of 20 ms: 9.98 s; 10 s ± 5%.
    assert!(
        (9_500..=10_500).contains(&span),
        "500 starts took {span} ms"
    );
    for w in starts.windows(2) {
        assert!(
            w[1].at - w[0].at >= 19,
            "starts {} ms apart",
            w[1].at - w[0].at
        );
    }
    // While the bucket is empty, Status says the ready jobs wait on the limit.
    let mut c2 = Core::new(CoreConfig::default(), 2, 1);
    c2.set_task_limits(
        "t",
        limits(LimitsRequest {
            rate: Some("1/h".into()),
            ..Default::default()
        }),
    );
    workers(&mut c2, 1, 10);
    for i in 0..5 {
        c2.submit(spec(format!("j{i}"), "", T0), T0).unwrap();
    }
    c2.tick(T0);
    let (tasks, totals) = c2.status(Some("t"));
    assert_eq!((tasks[0].running, tasks[0].waiting_on_limit), (1, 4));
    assert_eq!(totals.waiting_on_limit, 4);
}

#[test]
fn max_running_per_key_1_runs_one_of_each_key_and_every_key_progresses() {
    let mut c = limited(
        3,
        LimitsRequest {
            max_running_per_key: Some(1),
            ..Default::default()
        },
    );
    workers(&mut c, 10, 1);
    // Key k0's 20 jobs first, then k1's, ...: order of arrival must not decide who runs.
    for k in 0..10 {
        for i in 0..20 {
            c.submit(spec(format!("k{k}-{i}"), &format!("k{k}"), T0), T0)
                .unwrap();
        }
    }
    let mut running: HashMap<String, usize> = HashMap::new();
    let mut now = T0;
    let mut open: BTreeMap<(Millis, LeaseId), String> = BTreeMap::new();
    let mut done: HashMap<String, usize> = HashMap::new();
    while done.values().sum::<usize>() < 200 {
        c.tick(now);
        for e in c.take_effects() {
            if let Effect::Assign { job, .. } = e {
                let k = job.record.key.clone();
                *running.entry(k.clone()).or_default() += 1;
                assert_eq!(running[&k], 1, "two jobs of key {k} at once");
                open.insert((now + 100, job.lease.unwrap()), k);
            }
        }
        c.check_invariants().unwrap();
        let (&(t, lease), _) = open.iter().next().expect("something runs");
        now = t;
        let k = open.remove(&(t, lease)).unwrap();
        *running.get_mut(&k).unwrap() -= 1;
        *done.entry(k).or_default() += 1;
        c.report(
            lease,
            Outcome::Done {
                result: Bytes::new(),
            },
            now,
        )
        .unwrap();
        // Together: no key more than one job ahead of another while all have work left.
        if done.len() == 10 && done.values().all(|&n| n < 20) {
            let (lo, hi) = (*done.values().min().unwrap(), *done.values().max().unwrap());
            assert!(hi - lo <= 1, "keys drifted apart: {done:?}");
        }
    }
    assert_eq!(done.len(), 10);
}

#[test]
fn a_key_with_10_jobs_is_not_stuck_behind_a_key_with_100000() {
    let mut c = Core::new(CoreConfig::default(), 4, 1);
    let mut specs: Vec<JobSpec> = (0..100_000)
        .map(|i| spec(format!("a{i}"), "A", T0))
        .collect();
    c.submit_many(std::mem::take(&mut specs), T0).unwrap();
    for i in 0..10 {
        c.submit(spec(format!("b{i}"), "B", T0 + 1), T0 + 1)
            .unwrap();
    }
    c.take_effects();
    let w = c.register_worker(None, &["t".into()], 1, true, T0).unwrap();
    let mut b_started = Vec::new();
    let mut now = T0 + 2;
    for n in 1..=40 {
        c.tick(now);
        let job = c
            .take_effects()
            .into_iter()
            .find_map(|e| match e {
                Effect::Assign { worker, job } if worker == w => Some(job),
                _ => None,
            })
            .expect("one dispatch per report");
        if job.record.key == "B" {
            b_started.push(n);
        }
        now += 1;
        c.report(
            job.lease.unwrap(),
            Outcome::Done {
                result: Bytes::new(),
            },
            now,
        )
        .unwrap();
    }
    assert_eq!(
        b_started.len(),
        10,
        "B's jobs started at dispatches {b_started:?}"
    );
    assert!(b_started.iter().all(|&n| n <= 40));
    c.check_invariants().unwrap();
}

#[test]
fn jobs_without_a_key_keep_priority_then_due_order() {
    let mut c = Core::new(CoreConfig::default(), 5, 1);
    for (i, p) in [(0, 0), (1, 5), (2, 0), (3, 9)] {
        let mut s = spec(format!("j{i}"), "", T0 + i);
        s.priority = p;
        c.submit(s, T0 + 10).unwrap();
    }
    workers(&mut c, 1, 4);
    c.tick(T0 + 10);
    let names: Vec<String> = c
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Assign { job, .. } => Some(job.record.name),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["j3", "j1", "j0", "j2"]);
}

#[test]
fn clearing_limits_releases_held_jobs_at_once() {
    let mut c = limited(
        6,
        LimitsRequest {
            max_running: Some(1),
            ..Default::default()
        },
    );
    workers(&mut c, 1, 10);
    for i in 0..5 {
        c.submit(spec(format!("j{i}"), "", T0), T0).unwrap();
    }
    c.tick(T0);
    assert_eq!(c.open_leases(), 1);
    c.set_task_limits("t", TaskLimits::default());
    c.tick(T0 + 1);
    assert_eq!(c.open_leases(), 5);
    assert!(c.task_limits("t").is_none());
    c.check_invariants().unwrap();
}

#[test]
fn a_resubmit_with_another_key_moves_the_job_to_that_key() {
    let mut c = limited(
        7,
        LimitsRequest {
            max_running_per_key: Some(1),
            ..Default::default()
        },
    );
    c.submit(spec("a".into(), "k1", T0), T0).unwrap();
    c.submit(spec("b".into(), "k1", T0), T0).unwrap();
    // b moves to k2: both may run at once now.
    c.submit(spec("b".into(), "k2", T0), T0).unwrap();
    c.check_invariants().unwrap();
    workers(&mut c, 1, 10);
    c.tick(T0);
    let keys: Vec<String> = c
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Assign { job, .. } => Some(job.record.key),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"k2".to_string()));
    c.check_invariants().unwrap();
}
