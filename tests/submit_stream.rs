//! SubmitStream: one job per message, each acked once, in order, after its commit; bad
//! requests get an error ack naming the field and the stream goes on.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::child::{client_at, spawn_server};
use common::*;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::transport::Channel;

/// Opens a SubmitStream with every one of `reqs` already queued and the sending side closed,
/// so the server sees them arrive in bulk.
async fn open_with(
    c: &mut SchedulerClient<Channel>,
    reqs: Vec<pb::SubmitJobRequest>,
) -> tonic::Streaming<pb::SubmitStreamResponse> {
    let (tx, rx) = mpsc::channel(reqs.len().max(1));
    for r in reqs {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    c.submit_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner()
}

/// Sends `reqs` on one SubmitStream, half-closes, and returns every response until the end.
async fn submit_all(
    c: &mut SchedulerClient<Channel>,
    reqs: Vec<pb::SubmitJobRequest>,
) -> Vec<pb::SubmitStreamResponse> {
    let mut inbound = open_with(c, reqs).await;
    let mut out = Vec::new();
    while let Some(m) = within(60, inbound.message()).await.unwrap() {
        out.push(m);
    }
    out
}

fn acks_of(resps: &[pb::SubmitStreamResponse]) -> Vec<pb::SubmitAck> {
    resps.iter().flat_map(|r| r.acks.iter().cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_every_job_once_in_order_after_commit() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let n = 5_000;
    let later = now_ms() + 3_600_000;
    let reqs = (0..n)
        .map(|i| pb::SubmitJobRequest {
            sched_at_ms: later,
            args: format!("{i}").into_bytes().into(),
            ..job("stream", &format!("j{i}"))
        })
        .collect();
    let resps = submit_all(&mut c, reqs).await;
    let acks = acks_of(&resps);
    assert_eq!(acks.len(), n);
    let mut ids = HashSet::new();
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.seq, i as u64, "acks out of order");
        assert!(a.error_code.is_empty(), "job {i}: {a:?}");
        assert!(!a.replaced && !a.running);
        assert!(ids.insert(a.job_id), "job id {} acked twice", a.job_id);
    }
    // Requests that arrived together were answered together.
    assert!(
        resps.len() < n / 4,
        "{} responses for {n} jobs: nothing was coalesced",
        resps.len()
    );
    assert_eq!(task_status(&mut c, "stream").await.scheduled, n as u64);
    let j = c
        .get_job(pb::JobRef {
            job_id: acks[1234].job_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((j.name.as_str(), &j.args[..]), ("j1234", &b"1234"[..]));

    // Acked means committed: a restart over the same store finds every job.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut c = s.client().await;
    assert_eq!(task_status(&mut c, "stream").await.scheduled, n as u64);
}

#[tokio::test]
async fn a_bad_request_gets_an_error_ack_naming_the_field_and_the_stream_goes_on() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut reqs: Vec<_> = (0..10).map(|i| job("bad", &format!("b{i}"))).collect();
    reqs[4].task = String::new();
    reqs[6].timeout_ms = Some(-5);
    reqs[7].args = vec![0; (1 << 20) + 1].into();
    let acks = acks_of(&submit_all(&mut c, reqs).await);
    assert_eq!(acks.len(), 10);
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.seq, i as u64);
        match i {
            4 | 6 | 7 => {
                assert_eq!(a.error_code, "INVALID_ARGUMENT", "{a:?}");
                assert_eq!(a.code(), pb::ErrorCode::InvalidArgument, "{a:?}");
                assert_eq!(a.reason, "INVALID_ARGUMENT", "{a:?}");
                let field = ["task: ", "timeout_ms: ", "args: "]
                    [[4, 6, 7].iter().position(|&k| k == i).unwrap()];
                assert!(a.error.starts_with(field), "{a:?}");
                assert_eq!(a.job_id, 0);
            }
            _ => assert!(
                a.error_code.is_empty()
                    && a.code() == pb::ErrorCode::Ok
                    && a.reason.is_empty()
                    && a.job_id > 0,
                "{a:?}"
            ),
        }
    }
    assert_eq!(task_status(&mut c, "bad").await.pending, 7);
    for name in ["b5", "b8", "b9"] {
        c.get_job(pb::JobRef {
            task: "bad".into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_duplicate_name_behaves_like_submit_job() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let first = c.submit_job(job("dup", "a")).await.unwrap().into_inner();
    // Replaced twice (by SubmitJob's rules), keeping the id.
    let acks = acks_of(&submit_all(&mut c, vec![job("dup", "a"), job("dup", "a")]).await);
    for a in &acks {
        assert_eq!(
            (a.job_id, a.replaced, a.running),
            (first.job_id, true, false)
        );
    }
    // A running job is left alone and answers running, as SubmitJob does.
    let mut w = s.worker(&["dup"], 1).await;
    let leased = w.next_job().await;
    assert_eq!(leased.id, first.job_id);
    let unary = c.submit_job(job("dup", "a")).await.unwrap().into_inner();
    let acks = acks_of(&submit_all(&mut c, vec![job("dup", "a")]).await);
    assert_eq!(
        (acks[0].job_id, acks[0].replaced, acks[0].running),
        (unary.job_id, unary.replaced, unary.running)
    );
    assert!(acks[0].running);
}

#[tokio::test]
async fn jobs_past_the_limit_are_refused_one_by_one() {
    let s = TestServer::start_with(|c| c.max_jobs = 3).await;
    let mut c = s.client().await;
    let reqs = vec![
        job("lim", "a"),
        job("lim", "b"),
        job("lim", "c"),
        job("lim", "d"),
        job("lim", "a"), // a replacement adds nothing: allowed
    ];
    let acks = acks_of(&submit_all(&mut c, reqs).await);
    let codes: Vec<&str> = acks.iter().map(|a| a.error_code.as_str()).collect();
    assert_eq!(codes, ["", "", "", "RESOURCE_EXHAUSTED", ""]);
    assert!(acks[3].error.contains("max-jobs"), "{:?}", acks[3]);
    assert!(acks[4].replaced);
    assert_eq!(task_status(&mut c, "lim").await.pending, 3);
}

#[tokio::test]
async fn the_json_face_refuses_the_stream_clearly() {
    let s = TestServer::start().await;
    let r = reqwest::Client::new()
        .post(format!("{}/taskhive.v1.Scheduler/SubmitStream", s.url()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_IMPLEMENTED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("SubmitStream"),
        "{body}"
    );
}

/// Jobs acked on a stream survive `kill -9` of the server that acked them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_jobs_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut child, addr) = spawn_server(&dir, &[]).await;
    let mut c = client_at(addr).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut inbound = c
        .submit_stream(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // Keep up to 64 jobs in flight until the server dies.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut sent = 0u64;
    let mut seen = 0u64;
    let enough = 2_000;
    while (acked.lock().unwrap().len() as u64) < enough {
        while sent < seen + 64 {
            tx.send(pb::SubmitJobRequest {
                args: vec![b'x'; 100].into(),
                ..job("kill", &format!("k{sent}"))
            })
            .unwrap();
            sent += 1;
        }
        let m = within(30, inbound.message()).await.unwrap().unwrap();
        for a in m.acks {
            assert_eq!(a.seq, seen);
            assert!(a.error_code.is_empty(), "{a:?}");
            acked.lock().unwrap().push(format!("k{seen}"));
            seen += 1;
        }
    }
    // Jobs still in flight when the server dies may or may not be stored; acked ones must be.
    for _ in 0..64 {
        let _ = tx.send(job("kill", &format!("k{sent}")));
        sent += 1;
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let (_child, addr) = spawn_server(&dir, &[]).await;
    let mut c = client_at(addr).await;
    let acked = acked.lock().unwrap().clone();
    let stored = task_status(&mut c, "kill").await.pending;
    assert!(
        stored >= acked.len() as u64,
        "{stored} stored, {} acked",
        acked.len()
    );
    for name in &acked {
        c.get_job(pb::JobRef {
            task: "kill".into(),
            name: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("acked job {name} lost: {e:?}"));
    }
}

#[tokio::test]
async fn an_oversized_message_ends_the_stream_after_the_acks_before_it() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let (tx, rx) = mpsc::channel(8);
    for i in 0..3 {
        tx.send(job("big", &format!("b{i}"))).await.unwrap();
    }
    let mut inbound = c
        .submit_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut acked = 0;
    while acked < 3 {
        acked += within(10, inbound.message())
            .await
            .unwrap()
            .unwrap()
            .acks
            .len();
    }
    let mut big = job("big", "huge");
    big.args = vec![0; 2 << 20].into();
    tx.send(big).await.unwrap();
    let err = within(10, inbound.message()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert_eq!(task_status(&mut c, "big").await.pending, 3);

    // Sent at once, before any ack: the acks of the jobs ahead of it still arrive first.
    let mut reqs: Vec<_> = (0..5).map(|i| job("big2", &format!("b{i}"))).collect();
    let mut big = job("big2", "huge");
    big.args = vec![0; 2 << 20].into();
    reqs.push(big);
    reqs.push(job("big2", "after"));
    let mut inbound = open_with(&mut c, reqs).await;
    let mut acked = 0;
    let err = loop {
        match within(10, inbound.message()).await {
            Ok(Some(m)) => acked += m.acks.len(),
            Ok(None) => panic!("the stream ended without an error"),
            Err(e) => break e,
        }
    };
    assert_eq!((acked, err.code()), (5, tonic::Code::OutOfRange), "{err:?}");
}
