//! The pure core's side of broadcast jobs across cluster nodes (`scheduler/core/parts.rs`):
//! the owner asks other nodes for parts and waits for their answers or their deadline; a part
//! runs on the asked node's broadcast workers without a store write and answers once.

use bytes::Bytes;
use taskhive::scheduler::core::{Core, CoreConfig, Effect, PART_GRACE_MS};
use taskhive::scheduler::job::*;
use taskhive::scheduler::write::JobWrite;

const T0: Millis = 1_700_000_000_000;

fn spec(name: &str) -> JobSpec {
    JobSpec {
        task: "b".into(),
        name: name.into(),
        args: Bytes::from_static(b"payload"),
        sched_at: T0,
        timeout_ms: 1_000,
        priority: 0,
        retry: RetryPolicy::default(),
        trace: None,
        key: String::new(),
    }
}

/// A core with one connected broadcast worker of task `b`.
fn node() -> Core {
    let mut c = Core::new(CoreConfig::default(), 7, 1);
    c.mark_broadcast("b");
    c.register_worker(None, &["b".into()], 1, true, T0).unwrap();
    c
}

fn leases(e: &[Effect]) -> Vec<LeaseId> {
    e.iter()
        .filter_map(|e| match e {
            Effect::Assign { job, .. } => job.lease,
            _ => None,
        })
        .collect()
}

fn done(result: &'static [u8]) -> Outcome {
    Outcome::Done {
        result: Bytes::from_static(result),
    }
}

fn fail(error: &str) -> Outcome {
    Outcome::Fail {
        error: error.into(),
        retry: true,
    }
}

fn finished(e: &[Effect]) -> Option<Result<Bytes, String>> {
    e.iter().find_map(|e| match e {
        Effect::Finished { result, .. } => Some(result.clone()),
        _ => None,
    })
}

/// An owner with one local worker that asks `n2` and `n3` for parts: submits job `j` and
/// leases it; answers its id, the local lease, the run, and the nodes asked.
fn owner_leases_a_job(c: &mut Core) -> (JobId, LeaseId, u64, Vec<String>) {
    c.set_remote_broadcast("b", vec!["n2".into(), "n3".into()]);
    let id = c.submit(spec("j"), T0).unwrap().id;
    c.take_effects();
    c.tick(T0);
    let e = c.take_effects();
    let lease = leases(&e)[0];
    let (run, nodes) = e
        .iter()
        .find_map(|e| match e {
            Effect::BroadcastParts { job, run, nodes } if *job == id => {
                Some((*run, nodes.iter().map(|n| n.to_string()).collect()))
            }
            _ => None,
        })
        .expect("parts asked");
    (id, lease, run, nodes)
}

/// The owner leases the job here and asks the other nodes; it is over only when they have
/// answered: a done part makes the job done even though the local worker failed.
#[test]
fn the_owner_waits_for_every_part_and_combines_the_outcomes() {
    let mut c = node();
    let (id, lease, run, nodes) = owner_leases_a_job(&mut c);
    assert_eq!(nodes, ["n2", "n3"]);
    c.report(lease, fail("local failure"), T0 + 1).unwrap();
    let e = c.take_effects();
    assert!(finished(&e).is_none(), "over before the parts answered");
    c.check_invariants().unwrap();
    // A stale run and an unknown node change nothing.
    c.part_reported(id, run + 99, "n2", Ok(done(b"x")), T0 + 2);
    c.part_reported(id, run, "n9", Ok(done(b"x")), T0 + 2);
    assert!(finished(&c.take_effects()).is_none());
    c.part_reported(id, run, "n2", Ok(done(b"from n2")), T0 + 3);
    assert!(finished(&c.take_effects()).is_none());
    c.check_invariants().unwrap();
    c.part_reported(id, run, "n3", Ok(fail("n3 failed")), T0 + 4);
    let e = c.take_effects();
    assert_eq!(finished(&e), Some(Ok(Bytes::from_static(b"from n2"))));
    assert!(e.contains(&Effect::Persist(JobWrite::Delete(id))));
    assert!(c.is_empty());
    c.check_invariants().unwrap();
}

/// A node that never answers counts as a lost lease once the job's lease length plus the
/// grace has passed (no sooner).
#[test]
fn a_silent_node_counts_as_failed_after_the_deadline() {
    let mut c = node();
    c.set_remote_broadcast("b", vec!["n2".into()]);
    let id = c.submit(spec("j"), T0).unwrap().id;
    c.take_effects();
    c.tick(T0);
    let lease = leases(&c.take_effects())[0];
    c.report(lease, fail("local failure"), T0 + 1).unwrap();
    c.take_effects();
    let deadline = T0 + 1_000 + PART_GRACE_MS;
    assert_eq!(c.next_wakeup(), Some(deadline));
    c.tick(deadline - 1);
    assert!(finished(&c.take_effects()).is_none());
    c.tick(deadline);
    let e = c.take_effects();
    // Every part failed: a failed attempt, retried (the job stays).
    match finished(&e) {
        Some(Err(why)) => assert!(why.contains("no answer from node n2"), "{why}"),
        None => {
            let rescheduled = e.iter().any(|e| {
                matches!(e, Effect::Persist(JobWrite::Reschedule { id: i, attempts: 1, last_error, .. })
                    if *i == id && last_error.contains("no answer from node n2"))
            });
            assert!(rescheduled, "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    c.check_invariants().unwrap();
}

/// The asked node runs its part on its broadcast workers under the job's own id, writes
/// nothing, tells no waiter, and answers the owner once.
#[test]
fn a_part_runs_here_without_a_write_and_answers_its_owner() {
    let mut c = node();
    let record = JobRecord {
        id: 42,
        task: "b".into(),
        name: "j".into(),
        args: Bytes::from_static(b"payload"),
        sched_at: T0 - 500,
        timeout_ms: 1_000,
        retry: RetryPolicy::default(),
        ..Default::default()
    };
    c.run_part(record.clone(), "n1", 7, T0);
    c.tick(T0);
    let e = c.take_effects();
    let job = e
        .iter()
        .find_map(|e| match e {
            Effect::Assign { job, .. } => Some(job.clone()),
            _ => None,
        })
        .expect("the part is leased");
    assert_eq!((job.record.id, &job.record.args[..]), (42, &b"payload"[..]));
    // The same request again (a repeated notification) adds nothing.
    c.run_part(record, "n1", 7, T0);
    c.tick(T0);
    assert!(leases(&c.take_effects()).is_empty());
    c.check_invariants().unwrap();
    c.report(job.lease.unwrap(), done(b"here"), T0 + 5).unwrap();
    let e = c.take_effects();
    assert!(
        e.iter().all(|e| !matches!(e, Effect::Persist(_))),
        "a part writes nothing: {e:?}"
    );
    assert_eq!(
        e.iter()
            .filter(|e| matches!(e, Effect::Finished { .. }))
            .count(),
        0
    );
    let answered: Vec<_> = e
        .iter()
        .filter_map(|e| match e {
            Effect::PartDone {
                origin,
                job,
                run,
                outcome,
            } => Some((origin.to_string(), *job, *run, outcome.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(answered, vec![("n1".to_string(), 42, 7, done(b"here"))]);
    assert!(c.is_empty());
    c.check_invariants().unwrap();
}

/// A part whose owner stopped waiting is dropped; its worker is told to stop.
#[test]
fn a_dropped_part_revokes_its_lease() {
    let mut c = node();
    let record = JobRecord {
        id: 42,
        task: "b".into(),
        name: "j".into(),
        timeout_ms: 1_000,
        ..Default::default()
    };
    c.run_part(record, "n1", 7, T0);
    c.tick(T0);
    let lease = leases(&c.take_effects())[0];
    c.drop_part(42);
    let e = c.take_effects();
    assert!(e
        .iter()
        .any(|e| matches!(e, Effect::Revoke { lease: l, .. } if *l == lease)));
    assert!(e.iter().all(|e| !matches!(e, Effect::Persist(_))));
    assert!(
        finished(&e).is_none(),
        "a part's end is not its job's: {e:?}"
    );
    assert!(c.is_empty());
    c.check_invariants().unwrap();
    assert!(c.report(lease, done(b""), T0 + 1).is_err());
}

/// A node that left the cluster (the cluster layer's liveness list) answers for nothing: its
/// parts count as failed at once, not at the deadline.
#[test]
fn a_part_of_a_node_that_left_fails_at_once() {
    let mut c = node();
    let (id, lease, run, _) = owner_leases_a_job(&mut c);
    c.report(lease, done(b"local"), T0 + 1).unwrap();
    c.take_effects();
    // Both still live: nothing changes.
    c.nodes_live(&["n1".into(), "n2".into(), "n3".into()], T0 + 2);
    assert!(finished(&c.take_effects()).is_none());
    c.part_reported(id, run, "n2", Ok(fail("n2 failed")), T0 + 3);
    assert!(finished(&c.take_effects()).is_none());
    c.nodes_live(&["n1".into(), "n2".into()], T0 + 4);
    assert_eq!(
        finished(&c.take_effects()),
        Some(Ok(Bytes::from_static(b"local")))
    );
    c.check_invariants().unwrap();
}
