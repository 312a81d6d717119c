//! Scheduler semantics end to end: real server, real tonic clients and workers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use taskhive::pb;
use tonic::Code;

#[tokio::test]
async fn submit_grab_done_over_grabjob_and_report() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let w = c
        .register_task(pb::RegisterTaskRequest {
            worker_id: String::new(),
            tasks: vec!["echo".into()],
            capacity: 1,
            broadcast_tasks: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = c
        .grab_job(pb::GrabJobRequest {
            worker_id: w.worker_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut req = job("echo", "hello");
    req.args = b"payload".to_vec().into();
    let id = c.submit_job(req).await.unwrap().into_inner().job_id;
    let got = within(10, stream.message()).await.unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(&got.args[..], b"payload");
    assert_eq!(got.state, pb::JobState::Running as i32);
    assert_ne!(got.lease_id, 0);
    c.report_result(pb::ReportResultRequest {
        lease_id: got.lease_id,
        outcome: Some(pb::Outcome {
            outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
        }),
    })
    .await
    .unwrap();
    let err = c
        .get_job(pb::JobRef {
            job_id: id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The same lease twice: rejected.
    let again = c
        .report_result(pb::ReportResultRequest {
            lease_id: got.lease_id,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn submit_then_work_stream_done() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["t"], 1).await;
    let id = c
        .submit_job(job("t", "a"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let j = w.next_job().await;
    assert_eq!(j.id, id);
    w.done(j.lease_id, b"ok").await;
    let st = task_status(&mut c, "t").await;
    assert_eq!((st.pending, st.running, st.scheduled), (0, 0, 0));
}

#[tokio::test]
async fn future_job_fires_within_50ms_of_its_time() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["later"], 4).await;
    for (i, delay) in [300i64, 600, 900].iter().enumerate() {
        let at = now_ms() + delay;
        let mut r = job("later", &format!("j{i}"));
        r.sched_at_ms = at;
        c.submit_job(r).await.unwrap();
        let j = w.next_job().await;
        let lateness = now_ms() - at;
        assert!(lateness >= -5, "fired {}ms early", -lateness);
        assert!(lateness <= 50, "fired {lateness}ms late");
        assert_eq!(j.sched_at_ms, at);
        w.done(j.lease_id, b"").await;
    }
}

#[tokio::test]
async fn higher_priority_runs_first() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let base = now_ms() - 1000;
    for (name, prio, at) in [
        ("low", 1, base),
        ("high", 9, base + 10),
        ("mid", 5, base + 5),
        ("mid-early", 5, base),
    ] {
        let mut r = job("p", name);
        r.priority = prio;
        r.sched_at_ms = at;
        c.submit_job(r).await.unwrap();
    }
    let mut w = s.worker(&["p"], 1).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let j = w.next_job().await;
        order.push(j.name.clone());
        w.done(j.lease_id, b"").await;
    }
    assert_eq!(order, ["high", "mid-early", "mid", "low"]);
}

#[tokio::test]
async fn same_task_and_name_replaces() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut a = job("r", "same");
    a.args = b"first".to_vec().into();
    a.sched_at_ms = now_ms() + 60_000;
    let first = c.submit_job(a).await.unwrap().into_inner();
    assert!(!first.replaced);
    let mut b = job("r", "same");
    b.args = b"second".to_vec().into();
    let second = c.submit_job(b).await.unwrap().into_inner();
    assert!(second.replaced);
    assert_eq!(first.job_id, second.job_id);
    let st = task_status(&mut c, "r").await;
    assert_eq!(st.pending + st.scheduled, 1);
    let mut w = s.worker(&["r"], 1).await;
    let j = w.next_job().await;
    assert_eq!(&j.args[..], b"second");
    // Resubmitting while it runs changes nothing (Periodic semantics).
    let third = c.submit_job(job("r", "same")).await.unwrap().into_inner();
    assert!(third.running && !third.replaced);
    w.done(j.lease_id, b"").await;
    assert_eq!(task_status(&mut c, "r").await.pending, 0);
}

#[tokio::test]
async fn fail_retries_with_backoff_then_dead_then_retry_dead() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut r = job("f", "flaky");
    r.retry = Some(pb::RetryPolicy {
        max_attempts: 3,
        backoff_base_ms: 200,
        backoff_max_ms: 10_000,
    });
    c.submit_job(r).await.unwrap();
    let mut w = s.worker(&["f"], 1).await;
    let mut last_fail: Option<Instant> = None;
    for attempt in 0..3u32 {
        let j = w.next_job().await;
        assert_eq!(j.attempts, attempt);
        if let Some(t) = last_fail {
            // Backoff after attempt n is base*2^(n-1) with equal jitter: at least half of it.
            let min = Duration::from_millis(200 * (1 << (attempt - 1)) / 2);
            assert!(
                t.elapsed() >= min,
                "retried after {:?} < {min:?}",
                t.elapsed()
            );
        }
        // Measured from before the report: the server starts the backoff when it applies it.
        let sent = Instant::now();
        w.fail(j.lease_id, "boom").await;
        last_fail = Some(sent);
    }
    let st = task_status(&mut c, "f").await;
    assert_eq!((st.dead, st.pending, st.scheduled), (1, 0, 0));
    let dead = c
        .list_dead(pb::ListDeadRequest {
            task: "f".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error, "boom");
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].state, pb::JobState::Dead as i32);
    let n = c
        .retry_dead(pb::DeadRef {
            task: "f".into(),
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 1);
    let j = w.next_job().await;
    assert_eq!((j.name.as_str(), j.attempts), ("flaky", 0));
    // fail without retry: dead at once; then purge.
    w.send(
        j.lease_id,
        pb::outcome::Outcome::Fail(pb::Fail {
            error: "fatal".into(),
            retry: Some(false),
        }),
    )
    .await;
    assert_eq!(w.next_ack().await.error, "");
    assert_eq!(task_status(&mut c, "f").await.dead, 1);
    let purged = c
        .purge_dead(pb::DeadRef {
            task: "f".into(),
            name: "flaky".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(purged, 1);
    assert_eq!(task_status(&mut c, "f").await.dead, 0);
}

#[tokio::test]
async fn sched_later_grows_run_count_and_reruns() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.submit_job(job("random_print", "Hello world!"))
        .await
        .unwrap();
    let mut w = s.worker(&["random_print"], 1).await;
    let mut count = 0;
    loop {
        let j = w.next_job().await;
        assert_eq!(j.run_count, count * 2);
        count += 1;
        if count > 3 {
            w.done(j.lease_id, b"").await;
            break;
        }
        let t = Instant::now();
        w.sched_later(j.lease_id, 100, 2).await;
        let st = task_status(&mut c, "random_print").await;
        assert_eq!(
            st.scheduled + st.pending,
            1,
            "job must stay while scheduled later"
        );
        let next = w.next_job().await;
        assert!(t.elapsed() >= Duration::from_millis(95));
        assert_eq!(next.run_count, count * 2);
        w.jobs_push_front(next);
    }
    assert_eq!(task_status(&mut c, "random_print").await.scheduled, 0);
}

#[tokio::test]
async fn lease_timeout_requeues_and_stale_report_is_rejected() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut r = job("slow", "x");
    r.timeout_ms = Some(300);
    c.submit_job(r).await.unwrap();
    let mut a = s.worker(&["slow"], 1).await;
    let first = a.next_job().await;
    let t = Instant::now();
    let mut b = s.worker(&["slow"], 1).await;
    // a holds it silently; after the lease expires the job returns to pending (a's credit is
    // freed too, so either worker may get it).
    let second = tokio::select! {
        j = a.next_job() => j,
        j = b.next_job() => j,
    };
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 1);
    assert_ne!(second.lease_id, first.lease_id);
    // The stale lease's report is rejected and changes nothing.
    let err = c
        .report_result(pb::ReportResultRequest {
            lease_id: first.lease_id,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(task_status(&mut c, "slow").await.running, 1);
}

#[tokio::test]
async fn dropped_worker_stream_requeues_at_once() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.submit_job(job("d", "x")).await.unwrap();
    let mut a = s.worker(&["d"], 1).await;
    let first = a.next_job().await;
    let mut b = s.worker(&["d"], 1).await;
    let t = Instant::now();
    drop(a);
    let j = b.next_job().await;
    assert_eq!(j.id, first.id);
    assert_eq!(j.attempts, 1);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "requeue waited for the lease"
    );
    b.done(j.lease_id, b"").await;
}

#[tokio::test]
async fn run_job_returns_result_and_needs_a_worker() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let err = c.run_job(job("rj", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("no worker for task rj"),
        "{}",
        err.message()
    );

    let mut w = s.worker(&["rj"], 1).await;
    let mut c2 = c.clone();
    let call = tokio::spawn(async move {
        let mut r = job("rj", "x");
        r.args = b"21".to_vec().into();
        c2.run_job(r).await
    });
    let j = w.next_job().await;
    let n: i32 = std::str::from_utf8(&j.args).unwrap().parse().unwrap();
    w.done(j.lease_id, (n * 2).to_string().as_bytes()).await;
    let res = within(10, call).await.unwrap().unwrap().into_inner();
    assert_eq!(&res.result[..], b"42");

    // A failure reaches the caller.
    let mut c3 = c.clone();
    let call = tokio::spawn(async move { c3.run_job(job("rj", "y")).await });
    let j = w.next_job().await;
    w.fail(j.lease_id, "nope").await;
    let err = within(10, call).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(err.message().contains("nope"));

    // The call's deadline is honoured.
    let mut req = tonic::Request::new(job("rj", "z"));
    req.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let err = c.run_job(req).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn drop_task_is_refused_while_workers_are_registered() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut r = job("dt", "x");
    r.sched_at_ms = now_ms() + 60_000;
    c.submit_job(r).await.unwrap();
    let w = s.worker(&["dt"], 1).await;
    let err = c
        .drop_task(pb::DropTaskRequest { task: "dt".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(task_status(&mut c, "dt").await.scheduled, 1);
    drop(w);
    // Once the worker is gone the drop goes through.
    let removed = within(10, async {
        loop {
            match c.drop_task(pb::DropTaskRequest { task: "dt".into() }).await {
                Ok(r) => return r.into_inner().removed,
                Err(e) if e.code() == Code::FailedPrecondition => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(removed, 1);
    let st = c
        .status(pb::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(st.tasks.iter().all(|t| t.task != "dt"));
}

#[tokio::test]
async fn status_counts_every_state() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let later = now_ms() + 60_000;
    for i in 0..3 {
        let mut r = job("st", &format!("later{i}"));
        r.sched_at_ms = later + i;
        c.submit_job(r).await.unwrap();
    }
    for i in 0..4 {
        c.submit_job(job("st", &format!("now{i}"))).await.unwrap();
    }
    let mut r = job("st", "doomed");
    r.retry = Some(pb::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    r.priority = 100;
    c.submit_job(r).await.unwrap();
    let mut w = s.worker(&["st"], 2).await;
    let doomed = w.next_job().await;
    assert_eq!(doomed.name, "doomed");
    w.fail(doomed.lease_id, "x").await;
    // One more job is leased after the failure freed the credit: 2 running.
    let _a = w.next_job().await;
    let _b = w.next_job().await;
    let st = task_status(&mut c, "st").await;
    assert_eq!(st.workers, 1);
    assert_eq!(st.running, 2);
    assert_eq!(st.pending, 2);
    assert_eq!(st.scheduled, 3);
    assert_eq!(st.dead, 1);
    assert!(st.next_sched_at_ms > 0 && st.next_sched_at_ms < later);
    let all = c
        .status(pb::StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let totals = all.totals.unwrap();
    assert_eq!(
        (
            totals.running,
            totals.pending,
            totals.scheduled,
            totals.dead
        ),
        (2, 2, 3, 1)
    );
}

#[tokio::test]
async fn work_stream_never_exceeds_capacity() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for i in 0..10 {
        c.submit_job(job("cap", &format!("{i}"))).await.unwrap();
    }
    let mut w = s.worker(&["cap"], 3).await;
    let mut held = vec![w.next_job().await, w.next_job().await, w.next_job().await];
    // Dispatch happens in one pass: had a fourth been granted it would be running now.
    let st = task_status(&mut c, "cap").await;
    assert_eq!((st.running, st.pending), (3, 7));
    assert_eq!(w.buffered(), 0);
    let mut done = 0;
    while let Some(j) = held.pop() {
        w.done(j.lease_id, b"").await;
        done += 1;
        if done + held.len() < 10 {
            held.push(w.next_job().await);
        }
        let st = task_status(&mut c, "cap").await;
        assert!(st.running <= 3, "{} running with capacity 3", st.running);
        assert_eq!(st.running as usize, held.len());
    }
    assert_eq!(done, 10);
}

#[tokio::test]
async fn ten_thousand_jobs_due_in_the_same_second_run_exactly_once() {
    let s = TestServer::start().await;
    let at = now_ms() + 1500;
    let mut submits = Vec::new();
    for k in 0..8 {
        let mut c = s.client().await;
        submits.push(tokio::spawn(async move {
            for i in 0..1250 {
                let mut r = job("burst", &format!("{k}-{i}"));
                r.sched_at_ms = at + (i % 1000) as i64;
                c.submit_job(r).await.unwrap();
            }
        }));
    }
    for t in submits {
        within(60, t).await.unwrap();
    }
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut w = s.worker(&["burst"], 64).await;
        let seen_tx = seen_tx.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let j = w.next_job().await;
                seen_tx.send(j.name.clone()).unwrap();
                w.send(j.lease_id, pb::outcome::Outcome::Done(pb::Done::default()))
                    .await;
            }
        }));
    }
    let mut all = Vec::new();
    within(60, async {
        while all.len() < 10_000 {
            all.push(seen_rx.recv().await.unwrap());
        }
    })
    .await;
    let mut c = s.client().await;
    within(30, async {
        loop {
            let st = task_status(&mut c, "burst").await;
            if st.pending + st.scheduled + st.running == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for w in workers {
        w.abort();
    }
    // Nothing was delivered twice, before or after the last job.
    while let Ok(n) = seen_rx.try_recv() {
        all.push(n);
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 10_000, "each job delivered once");
    assert_eq!(distinct.len(), 10_000);
}

#[tokio::test]
async fn bad_input_is_rejected_naming_the_field() {
    let s = TestServer::start_with(|c| c.limits.max_args_bytes = 1024).await;
    let mut c = s.client().await;
    let cases: Vec<(pb::SubmitJobRequest, &str)> = vec![
        (job("", "n"), "task"),
        (job("t", ""), "name"),
        (job(&"x".repeat(256), "n"), "task"),
        (job("t", &"y".repeat(256)), "name"),
        (
            pb::SubmitJobRequest {
                args: vec![0u8; 1025].into(),
                ..job("t", "n")
            },
            "args",
        ),
        (
            pb::SubmitJobRequest {
                sched_at_ms: now_ms() + 100 * 365 * 86_400_000,
                ..job("t", "n")
            },
            "sched_at_ms",
        ),
        (
            pb::SubmitJobRequest {
                timeout_ms: Some(0),
                ..job("t", "n")
            },
            "timeout_ms",
        ),
        (
            pb::SubmitJobRequest {
                timeout_ms: Some(-5),
                ..job("t", "n")
            },
            "timeout_ms",
        ),
    ];
    for (req, field) in cases {
        let err = c.submit_job(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "{field}: {}",
            err.message()
        );
    }
    // A past sched_at runs now; 255-byte and unicode names are fine.
    let mut past = job("ünïcødé-タスク", &"名".repeat(85));
    past.sched_at_ms = 1;
    let id = c.submit_job(past).await.unwrap().into_inner().job_id;
    let got = c
        .get_job(pb::JobRef {
            job_id: 0,
            task: "ünïcødé-タスク".into(),
            name: "名".repeat(85),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, id);
    assert_eq!(got.state, pb::JobState::Pending as i32);
    // Unknown lease / job.
    let err = c
        .report_result(pb::ReportResultRequest {
            lease_id: 12345,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = c
        .report_result(pb::ReportResultRequest {
            lease_id: 1,
            outcome: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("outcome"));
    let err = c
        .remove_job(pb::JobRef {
            job_id: 999_999,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .grab_job(pb::GrabJobRequest {
            worker_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .grab_job(pb::GrabJobRequest {
            worker_id: "424242".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn restart_restores_jobs_with_their_times() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let later = now_ms() + 3_600_000;
    let mut r = job("keep", "later");
    r.sched_at_ms = later;
    r.args = b"L".to_vec().into();
    c.submit_job(r).await.unwrap();
    c.submit_job(job("keep", "now")).await.unwrap();
    let mut r = job("keep", "leased");
    r.priority = 10;
    c.submit_job(r).await.unwrap();
    let mut w = s.worker(&["keep"], 1).await;
    let leased = w.next_job().await;
    assert_eq!(leased.name, "leased");
    drop(c);
    let dir = s.stop().await;
    drop(w);
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    let st = task_status(&mut c, "keep").await;
    assert_eq!((st.pending, st.scheduled, st.running), (2, 1, 0));
    let got = c
        .get_job(pb::JobRef {
            job_id: 0,
            task: "keep".into(),
            name: "later".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.sched_at_ms, later);
    assert_eq!(&got.args[..], b"L");
    // New jobs never reuse old ids.
    let fresh = c
        .submit_job(job("keep", "fresh"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    assert!(fresh > leased.id);
}

#[tokio::test]
async fn dump_and_load_round_trip() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for i in 0..50 {
        let mut r = job("dump", &format!("j{i}"));
        r.args = format!("a{i}").into_bytes().into();
        r.sched_at_ms = now_ms() + 60_000 + i;
        r.priority = i as i32;
        c.submit_job(r).await.unwrap();
    }
    let mut stream = c.dump(pb::DumpRequest {}).await.unwrap().into_inner();
    let mut dumped = Vec::new();
    while let Some(d) = stream.message().await.unwrap() {
        dumped.push(d);
    }
    assert_eq!(dumped.len(), 50);
    let other = TestServer::start().await;
    let mut c2 = other.client().await;
    let loaded = c2
        .load(tokio_stream::iter(dumped.clone()))
        .await
        .unwrap()
        .into_inner()
        .loaded;
    assert_eq!(loaded, 50);
    let mut again = c2.dump(pb::DumpRequest {}).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(d) = again.message().await.unwrap() {
        let j = d.job.unwrap();
        let orig = dumped
            .iter()
            .map(|d| d.job.as_ref().unwrap())
            .find(|o| o.name == j.name)
            .unwrap();
        assert_eq!(
            (&j.args, j.sched_at_ms, j.priority),
            (&orig.args, orig.sched_at_ms, orig.priority)
        );
        n += 1;
    }
    assert_eq!(n, 50);
}

/// A loaded job without a lease length (0) gets the `timeout` setting, as a submitted one
/// does, not the server's start-up default; a lease length out of range is refused by name.
#[tokio::test]
async fn a_loaded_job_without_a_lease_length_takes_the_timeout_setting() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.set_config(pb::SetConfigRequest {
        key: "timeout".into(),
        value: 7,
    })
    .await
    .unwrap();
    let dumped = |name: &str, timeout_ms: i64| pb::DumpedJob {
        job: Some(pb::Job {
            task: "ld".into(),
            name: name.into(),
            sched_at_ms: now_ms() + 60_000,
            timeout_ms,
            ..Default::default()
        }),
    };
    let loaded = c
        .load(tokio_stream::iter(vec![
            dumped("none", 0),
            dumped("own", 5_000),
        ]))
        .await
        .unwrap()
        .into_inner()
        .loaded;
    assert_eq!(loaded, 2);
    for (name, want) in [("none", 7_000), ("own", 5_000)] {
        let j = c.get_job(job_ref("ld", name)).await.unwrap().into_inner();
        assert_eq!(j.timeout_ms, want, "job {name}");
    }
    for bad in [-1, u32::MAX as i64 + 1] {
        let e = c
            .load(tokio_stream::iter(vec![dumped("bad", bad)]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().contains("job.timeout_ms"), "{bad}: {e:?}");
    }
}

#[tokio::test]
async fn reflection_and_health_list_every_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let s = TestServer::start().await;
    let mut r = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = r
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected {msg:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["taskhive.v1.Scheduler", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel().await);
    let st = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "taskhive.v1.Scheduler".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn a_later_hello_with_capacity_zero_pauses_the_worker() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.submit_job(job("pause", "a")).await.unwrap();
    c.submit_job(job("pause", "b")).await.unwrap();
    let mut w = s.worker(&["pause"], 1).await;
    let a = w.next_job().await;
    w.send_msg(pb::worker_message::Msg::Hello(pb::WorkerHello {
        tasks: vec![],
        capacity: 0,
        name: String::new(),
        broadcast_tasks: vec![],
    }))
    .await;
    w.done(a.lease_id, b"").await;
    // The freed slot is not refilled: b stays pending, and closing loses nothing.
    let st = task_status(&mut c, "pause").await;
    assert_eq!((st.running, st.pending), (0, 1));
    drop(w);
    let b = c
        .get_job(pb::JobRef {
            job_id: 0,
            task: "pause".into(),
            name: "b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.attempts, 0);
}

#[tokio::test]
async fn run_job_with_a_retry_policy_waits_through_retries() {
    let s = TestServer::start().await;
    let mut w = s.worker(&["rr"], 1).await;
    let mut c = s.client().await;
    let call = tokio::spawn(async move {
        let mut r = job("rr", "x");
        r.retry = Some(pb::RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 10,
            backoff_max_ms: 20,
        });
        c.run_job(r).await
    });
    let j = w.next_job().await;
    w.fail(j.lease_id, "first try").await;
    let j = w.next_job().await;
    assert_eq!(j.attempts, 1);
    w.done(j.lease_id, b"second try").await;
    let r = within(10, call).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"second try");
}

#[tokio::test]
async fn submit_jobs_commits_a_batch_in_order_and_survives_restart() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut later = job("batch", "later");
    later.sched_at_ms = now_ms() + 3_600_000;
    let mut again = job("batch", "a");
    again.args = b"second".to_vec().into();
    let answers = c
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: vec![job("batch", "a"), later, again],
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(answers.len(), 3);
    assert!(!answers[0].replaced && !answers[1].replaced);
    // The third replaces the first, in request order.
    assert!(answers[2].replaced);
    assert_eq!(answers[2].job_id, answers[0].job_id);
    assert_ne!(answers[0].job_id, answers[1].job_id);

    // One invalid job: the call fails naming it, and nothing of the batch is submitted.
    let err = c
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: vec![job("batch", "b"), job("batch", "")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("jobs: [1].name"),
        "{}",
        err.message()
    );
    let err = c
        .submit_jobs(pb::SubmitJobsRequest { jobs: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("jobs:"), "{}", err.message());

    // Acknowledged means committed: the batch is there after a restart.
    drop(c);
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    let st = task_status(&mut c, "batch").await;
    assert_eq!((st.pending, st.scheduled), (1, 1));
    let a = c
        .get_job(pb::JobRef {
            job_id: 0,
            task: "batch".into(),
            name: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&a.args[..], b"second");
}

#[tokio::test]
async fn submit_jobs_past_a_job_limit_submits_none() {
    let s = TestServer::start_with(|c| {
        c.max_jobs_per_task = 2;
        c.max_jobs = 3;
    })
    .await;
    let mut c = s.client().await;
    let batch = |jobs: Vec<pb::SubmitJobRequest>| pb::SubmitJobsRequest { jobs };
    let e = c
        .submit_jobs(batch(vec![job("a", "1"), job("a", "2"), job("a", "3")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max-jobs-per-task 2"), "{e}");
    let st = task_status(&mut c, "a").await;
    assert_eq!(st.pending, 0);
    // The same name twice is one new job.
    c.submit_jobs(batch(vec![job("a", "1"), job("a", "2"), job("a", "1")]))
        .await
        .unwrap();
    let e = c
        .submit_jobs(batch(vec![job("a", "2"), job("b", "1"), job("b", "2")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("max-jobs 3"), "{e}");
    assert_eq!(task_status(&mut c, "b").await.pending, 0);
}

/// The `google.rpc.ErrorInfo` a refusal carries: (reason, metadata), domain checked.
fn error_info(s: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt;
    let info = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in the details of {s:?}"));
    assert_eq!(info.domain, "taskhive");
    (info.reason, info.metadata)
}

#[tokio::test]
async fn refusals_carry_their_reason_as_error_info() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    // No worker.
    let err = c.run_job(job("why", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let (reason, meta) = error_info(&err);
    assert_eq!(reason, "NO_WORKER");
    assert_eq!(meta["task"], "why");

    // Stale lease: the same lease reported twice, over the stream and as a call.
    c.submit_job(job("why", "y")).await.unwrap();
    let mut w = s.worker(&["why"], 1).await;
    let j = w.next_job().await;
    w.done(j.lease_id, b"").await;
    w.send(j.lease_id, pb::outcome::Outcome::Done(pb::Done::default()))
        .await;
    let ack = w.next_ack().await;
    assert_eq!(
        (ack.lease_id, ack.reason.as_str()),
        (j.lease_id, "STALE_LEASE")
    );
    let err = c
        .report_result(pb::ReportResultRequest {
            lease_id: j.lease_id,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let (reason, meta) = error_info(&err);
    assert_eq!(reason, "STALE_LEASE");
    assert_eq!(meta["lease"], j.lease_id.to_string());
    assert_eq!(meta["cause"], "ended");

    // Workers present.
    let err = c
        .drop_task(pb::DropTaskRequest { task: "why".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let (reason, meta) = error_info(&err);
    assert_eq!(reason, "WORKERS_PRESENT");
    assert_eq!(
        (meta["task"].as_str(), meta["workers"].as_str()),
        ("why", "1")
    );

    // Every refusal has one: an invalid field names it.
    let err = c.submit_job(job("", "x")).await.unwrap_err();
    let (reason, meta) = error_info(&err);
    assert_eq!(
        (reason.as_str(), meta["field"].as_str()),
        ("INVALID_ARGUMENT", "task")
    );
    let err = c
        .get_job(pb::JobRef {
            job_id: 424242,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error_info(&err).0, "NOT_FOUND");
}
