//! Periodic's features in the core, over gRPC: broadcast tasks, job data streaming, named
//! locks and run-time settings.

mod common;

use std::collections::HashSet;

use common::*;
use taskhive::pb;
use tonic::Code;

#[tokio::test]
async fn a_broadcast_job_reaches_every_worker() {
    let s = TestServer::start().await;
    let mut ws = Vec::new();
    for _ in 0..3 {
        ws.push(Worker::connect_with(s.channel().await, &[], &["bc"], 1).await);
    }
    let mut c = s.client().await;
    let st = task_status(&mut c, "bc").await;
    assert!(st.broadcast);
    assert_eq!(st.workers, 3);
    let id = c
        .submit_job(job("bc", "hello all"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut leases = HashSet::new();
    let mut got = Vec::new();
    for w in ws.iter_mut() {
        let j = w.next_job().await;
        assert_eq!(j.id, id);
        assert!(leases.insert(j.lease_id), "each worker has its own lease");
        got.push(j);
    }
    // Running until every worker has reported.
    for (i, (w, j)) in ws.iter_mut().zip(&got).enumerate() {
        assert_eq!(
            task_status(&mut c, "bc").await.running,
            1,
            "after {i} reports"
        );
        w.done(j.lease_id, b"").await;
    }
    let st = task_status(&mut c, "bc").await;
    assert_eq!((st.running, st.pending, st.scheduled), (0, 0, 0));
}

#[tokio::test]
async fn run_job_stream_and_watch_get_data_in_order_then_the_result() {
    let s = TestServer::start().await;
    let mut w = s.worker(&["stream"], 1).await;
    let mut c = s.client().await;
    let mut watch = c
        .watch_job(pb::JobRef {
            job_id: 0,
            task: "stream".into(),
            name: "s1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut run = c
        .run_job_stream(job("stream", "s1"))
        .await
        .unwrap()
        .into_inner();
    let j = w.next_job().await;
    for i in 0..5 {
        w.send_msg(pb::worker_message::Msg::Data(pb::WorkData {
            lease_id: j.lease_id,
            data: format!("chunk{i}").into_bytes().into(),
        }))
        .await;
    }
    w.done(j.lease_id, b"result").await;
    for stream in [&mut run, &mut watch] {
        let mut events = Vec::new();
        while let Some(e) = within(10, stream.message()).await.unwrap() {
            events.push(e.event.unwrap());
        }
        use pb::job_event::Event;
        let data: Vec<Vec<u8>> = events
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(d.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(
            data,
            (0..5)
                .map(|i| format!("chunk{i}").into_bytes())
                .collect::<Vec<_>>()
        );
        match events.last().unwrap() {
            Event::Result(r) => assert_eq!(&r.result[..], b"result"),
            other => panic!("ended with {other:?}"),
        }
    }
    let err = c.run_job_stream(job("nobody", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_lock_of_two_holds_two_jobs_and_hands_slots_on() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for i in 0..4 {
        c.submit_job(job("lk", &format!("{i}"))).await.unwrap();
    }
    let mut w = s.worker(&["lk"], 4).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        let j = w.next_job().await;
        if w.acquire(j.lease_id, "L", 2).await {
            held.push(j);
        } else {
            refused += 1;
        }
    }
    assert_eq!((held.len(), refused), (2, 2));
    let st = task_status(&mut c, "lk").await;
    assert_eq!((st.running, st.locked), (2, 2));
    // Done frees a slot: a waiting job comes back and already holds the slot.
    let first = held.remove(0);
    w.done(first.lease_id, b"").await;
    let again = w.next_job().await;
    assert!(w.acquire(again.lease_id, "L", 2).await);
    held.push(again);
    assert_eq!(task_status(&mut c, "lk").await.locked, 1);
    for j in held {
        w.done(j.lease_id, b"").await;
    }
    let last = w.next_job().await;
    assert!(w.acquire(last.lease_id, "L", 2).await);
    w.done(last.lease_id, b"").await;
    let st = task_status(&mut c, "lk").await;
    assert_eq!((st.running, st.locked, st.pending), (0, 0, 0));
}

#[tokio::test]
async fn settings_apply_and_survive_a_restart() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let all = c
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .values;
    assert_eq!(all.get("timeout"), Some(&600));
    assert_eq!(all.get("lock-timeout"), Some(&300));
    c.set_config(pb::SetConfigRequest {
        key: "timeout".into(),
        value: 7,
    })
    .await
    .unwrap();
    let id = c
        .submit_job(job("cfg", "j"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let j = c
        .get_job(pb::JobRef {
            job_id: id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.timeout_ms, 7_000);
    for (key, value) in [("nope", 1), ("timeout", 0), ("timeout", -3)] {
        let err = c
            .set_config(pb::SetConfigRequest {
                key: key.into(),
                value,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{key}={value}");
    }
    drop(c);
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    assert_eq!(common::setting(&mut c, "timeout").await, Some(7));
}
