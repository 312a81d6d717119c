//! Transient jobs (`scheduler/core/transient.rs`): the load runner's remote task runs live
//! in memory only. They are leased, reported and waited for like any job, but nothing about
//! them is written, a Dump skips them, and a final failure goes to the waiter, not the dead set.

use bytes::Bytes;
use taskhive::scheduler::core::{is_transient, Core, CoreConfig, Effect};
use taskhive::scheduler::error::Error;
use taskhive::scheduler::job::*;

const T0: Millis = 1_700_000_000_000;

fn spec(name: &str) -> JobSpec {
    JobSpec {
        task: "remote".into(),
        name: name.into(),
        args: Bytes::from_static(b"{}"),
        sched_at: T0,
        timeout_ms: 1_000,
        priority: 0,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        trace: None,
        key: String::new(),
    }
}

fn node() -> Core {
    let mut c = Core::new(CoreConfig::default(), 7, 1);
    c.register_worker(None, &["remote".into()], 4, true, T0)
        .unwrap();
    c
}

fn lease_of(e: &[Effect]) -> LeaseId {
    e.iter()
        .find_map(|e| match e {
            Effect::Assign { job, .. } => job.lease,
            _ => None,
        })
        .expect("assigned")
}

fn no_writes(e: &[Effect]) {
    assert!(
        e.iter().all(|e| !matches!(e, Effect::Persist(_))),
        "a transient job writes nothing: {e:?}"
    );
}

#[test]
fn a_transient_run_is_leased_and_answered_without_a_write() {
    let mut c = node();
    let id = c.submit_transient(spec("exec/1/1"), T0).unwrap();
    assert!(is_transient(id));
    c.tick(T0);
    let e = c.take_effects();
    no_writes(&e);
    let lease = lease_of(&e);
    // A durable job of the same core is written as usual, and a Dump lists only it.
    c.submit(
        JobSpec {
            retry: RetryPolicy::default(),
            ..spec("durable")
        },
        T0,
    )
    .unwrap();
    assert!(c
        .take_effects()
        .iter()
        .any(|e| matches!(e, Effect::Persist(_))));
    let dumped: Vec<String> = c.dump_page(0, 100).into_iter().map(|r| r.name).collect();
    assert_eq!(dumped, ["durable"]);
    c.report(
        lease,
        Outcome::Done {
            result: Bytes::from_static(b"ok"),
        },
        T0 + 1,
    )
    .unwrap();
    let e = c.take_effects();
    no_writes(&e);
    assert!(e.iter().any(|e| matches!(e,
        Effect::Finished { job, result: Ok(r), .. } if *job == id && &r[..] == b"ok")));
    c.check_invariants().unwrap();
}

#[test]
fn a_failed_transient_run_goes_to_its_waiter_not_the_dead_set() {
    let mut c = node();
    let id = c.submit_transient(spec("exec/1/2"), T0).unwrap();
    c.tick(T0);
    let lease = lease_of(&c.take_effects());
    c.report(
        lease,
        Outcome::Fail {
            error: "boom".into(),
            retry: true,
        },
        T0 + 1,
    )
    .unwrap();
    let e = c.take_effects();
    no_writes(&e);
    assert!(e.iter().any(|e| matches!(e,
        Effect::Finished { job, result: Err(why), .. } if *job == id && why == "boom")));
    assert!(c.is_empty());
    let (_, totals) = c.status(None);
    assert_eq!(totals.dead, 0);
    // A lost lease ends it the same way.
    let id = c.submit_transient(spec("exec/1/3"), T0).unwrap();
    c.tick(T0);
    c.take_effects();
    c.tick(T0 + 1_000);
    let e = c.take_effects();
    no_writes(&e);
    assert!(e
        .iter()
        .any(|e| matches!(e, Effect::Finished { job, result: Err(_), .. } if *job == id)));
    assert!(c.is_empty());
    c.check_invariants().unwrap();
}

#[test]
fn without_a_worker_here_a_transient_run_is_refused() {
    let mut c = Core::new(CoreConfig::default(), 7, 1);
    match c.submit_transient(spec("exec/1/1"), T0) {
        Err(Error::NoWorker { task }) => assert_eq!(task, "remote"),
        other => panic!("{other:?}"),
    }
    assert!(c.is_empty());
}
