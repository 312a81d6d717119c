//! Traces: a client's W3C `traceparent` on submit is kept with the job and handed to the
//! worker; with `serve --otlp-endpoint` the server's spans (submit, commit, dispatch, run)
//! reach a real OTLP/gRPC receiver in the client's trace, on one node, after a restart, and
//! across cluster nodes.

mod common;

use common::beetle::{SEED_EXEC, SEED_JOB};
use common::otlp::{Receiver, Span};
use common::pg::fresh_db;
use common::{job, TestServer, Worker};
use taskhive::pb;
use tonic::metadata::MetadataValue;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{TRACE}-{CLIENT_SPAN}-01")
}

fn with_trace<T>(m: T, traceparent: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut()
        .insert("traceparent", MetadataValue::try_from(traceparent).unwrap());
    r
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `(trace id, span id)` of a `traceparent`.
fn parts(tp: &str) -> (String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "traceparent {tp:?}");
    (p[1].to_string(), p[2].to_string())
}

fn named<'a>(spans: &'a [Span], name: &str, job_name: Option<&str>) -> Option<&'a Span> {
    spans.iter().find(|s| {
        s.name == name
            && hex(&s.trace_id) == TRACE
            && job_name.is_none_or(|n| s.attr("taskhive.job.name") == Some(n))
    })
}

/// Checks one job's trace: submit under the client's span, commit under submit, and
/// dispatch and run under submit; the worker was handed the dispatch span.
fn check_chain(spans: &[Span], handed: &str) {
    let submit = named(spans, "taskhive.submit", None).expect("submit span");
    assert_eq!(hex(&submit.parent_span_id), CLIENT_SPAN, "submit's parent");
    let commit = named(spans, "taskhive.commit", None).expect("commit span");
    assert_eq!(commit.parent_span_id, submit.span_id, "commit's parent");
    let dispatch = named(spans, "taskhive.dispatch", None).expect("dispatch span");
    assert_eq!(dispatch.parent_span_id, submit.span_id, "dispatch's parent");
    let run = named(spans, "taskhive.run", None).expect("run span");
    assert_eq!(run.parent_span_id, submit.span_id, "run's parent");
    assert_eq!(run.attr("taskhive.outcome"), Some("done"));
    assert_eq!(parts(handed), (TRACE.to_string(), hex(&dispatch.span_id)));
}

fn has_chain(spans: &[Span]) -> bool {
    [
        "taskhive.submit",
        "taskhive.commit",
        "taskhive.dispatch",
        "taskhive.run",
    ]
    .iter()
    .all(|n| named(spans, n, None).is_some())
}

/// Without an endpoint the server exports nothing but still hands the caller's context on,
/// unchanged, from every submit face; a malformed one is ignored, not refused.
#[tokio::test]
async fn the_callers_traceparent_reaches_the_worker_untouched() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let mut w = s.worker(&["t"], 10).await;
    c.submit_job(with_trace(job("t", "grpc"), &client_traceparent()))
        .await
        .unwrap();
    let j = w.next_job().await;
    assert_eq!(j.traceparent, client_traceparent());
    w.done(j.lease_id, b"").await;

    // The JSON face takes it as an HTTP header.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/taskhive.v1.Scheduler/SubmitJob", s.url()))
        .header("traceparent", other)
        .json(&serde_json::json!({"task": "t", "name": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let j = w.next_job().await;
    assert_eq!(j.traceparent, other);
    w.done(j.lease_id, b"").await;

    // Periodic's curl API too.
    let r = http
        .post(format!("{}/periodic/submit/t/curl/", s.url()))
        .header("traceparent", other)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let j = w.next_job().await;
    assert_eq!((j.name.as_str(), j.traceparent.as_str()), ("curl", other));
    w.done(j.lease_id, b"").await;

    // Malformed (upper-case hex): the submit succeeds, the job carries none.
    c.submit_job(with_trace(
        job("t", "bad"),
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    ))
    .await
    .unwrap();
    let j = w.next_job().await;
    assert_eq!((j.name.as_str(), j.traceparent.as_str()), ("bad", ""));
    w.done(j.lease_id, b"").await;
}

/// One node: the whole chain arrives at the receiver, and a job kept across a SIGKILL and a
/// restart is dispatched in the same trace.
#[tokio::test]
async fn spans_from_submit_to_run_join_the_callers_trace() {
    let recv = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let endpoint = recv.endpoint();
    let args = ["--otlp-endpoint", endpoint.as_str()];
    let spawn = |dir: std::path::PathBuf| async move {
        common::child::spawn_server_with(&dir, &args, |c| {
            c.env("OTEL_BSP_SCHEDULE_DELAY", "100");
        })
        .await
    };
    let (mut child, addr) = spawn(dir.clone()).await;
    let ch = common::cluster::channel(addr).await;
    let mut c = pb::scheduler_client::SchedulerClient::new(ch.clone());
    let mut w = Worker::connect(ch, &["t"], 4).await;
    c.submit_job(with_trace(job("t", "a"), &client_traceparent()))
        .await
        .unwrap();
    let j = w.next_job().await;
    w.done(j.lease_id, b"ok").await;
    let spans = recv.wait_for("the chain", has_chain).await;
    check_chain(&spans, &j.traceparent);

    // A load execution (the Beetle seed's job, run once, served by a Work-stream worker).
    let mut charge = Worker::connect(
        common::cluster::channel(addr).await,
        &["BCaaS::ChargeTask"],
        4,
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let seed = SEED_JOB.replace("\"run_for_sec\": 10", "\"run_for_sec\": 0,\n\"run_n\": 1");
    let r = http
        .post(format!("{base}/job"))
        .body(seed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exec = tokio::spawn(http.post(format!("{base}/exec")).body(SEED_EXEC).send());
    let run = charge.next_job().await;
    charge.done(run.lease_id, b"{}").await;
    let report: serde_json::Value = exec.await.unwrap().unwrap().json().await.unwrap();
    let spans = recv
        .wait_for("the load execution", |s| {
            s.iter().any(|s| s.name == "taskhive.load.exec")
        })
        .await;
    let e = spans
        .iter()
        .find(|s| s.name == "taskhive.load.exec")
        .unwrap();
    assert_eq!(e.attr("job"), Some("charges_local"));
    assert_eq!(e.attr("exec"), report["id"].as_str(), "{report}");

    // A job with no worker yet, then kill -9 and a restart: the trace is in the store.
    c.submit_job(with_trace(job("later", "b"), &client_traceparent()))
        .await
        .unwrap();
    drop(w);
    child.kill().await.unwrap();
    let (_child, addr) = spawn(dir).await;
    let ch = common::cluster::channel(addr).await;
    let mut w = Worker::connect(ch, &["later"], 4).await;
    let j = w.next_job().await;
    let (trace, span) = parts(&j.traceparent);
    assert_eq!(trace, TRACE, "the restarted server kept the trace");
    w.done(j.lease_id, b"").await;
    let spans = recv
        .wait_for("the restarted dispatch", |s| {
            s.iter()
                .any(|s| s.name == "taskhive.dispatch" && s.attr("taskhive.task") == Some("later"))
        })
        .await;
    let d = spans
        .iter()
        .find(|s| s.name == "taskhive.dispatch" && s.attr("taskhive.task") == Some("later"))
        .unwrap();
    assert_eq!((hex(&d.trace_id), hex(&d.span_id)), (trace, span));
}

/// A cluster: submitted on node a, run by a worker of node b; both nodes' spans are in the
/// one trace, each named by its node.
#[tokio::test]
async fn a_trace_crosses_cluster_nodes() {
    let recv = Receiver::start().await;
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = recv.endpoint();
    let mut nodes = Vec::new();
    for node in ["a", "b"] {
        let args = [
            "--store",
            db.url.as_str(),
            "--node-id",
            node,
            "--otlp-endpoint",
            endpoint.as_str(),
        ];
        nodes.push(
            common::child::spawn_server_with(&tmp.path().join(node), &args, |c| {
                c.env("OTEL_BSP_SCHEDULE_DELAY", "100");
            })
            .await,
        );
    }
    // Submitted before any worker exists, so only node b's worker can claim it.
    let mut a = common::cluster::client(nodes[0].1).await;
    a.submit_job(with_trace(job("t", "x"), &client_traceparent()))
        .await
        .unwrap();
    let mut w = Worker::connect(common::cluster::channel(nodes[1].1).await, &["t"], 4).await;
    let j = w.next_job().await;
    w.done(j.lease_id, b"").await;
    let spans = recv.wait_for("the chain", has_chain).await;
    check_chain(&spans, &j.traceparent);
    assert_eq!(
        named(&spans, "taskhive.submit", Some("x"))
            .unwrap()
            .instance,
        "a"
    );
    assert_eq!(
        named(&spans, "taskhive.dispatch", None).unwrap().instance,
        "b"
    );
}
