//! The server's key scenarios once more with the PostgreSQL store: submit, work, restart,
//! and acknowledged submits surviving `kill -9`.

mod common;

use common::child::{client_at, spawn_server};
use common::*;
use taskhive::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_work_restart_on_postgres() {
    let db = tokio::task::spawn_blocking(common::pg::fresh_db)
        .await
        .unwrap();
    let url = db.url.clone();
    let s = TestServer::start_with(|c| c.postgres_url = Some(url.clone())).await;
    let mut c = s.client().await;
    let later = now_ms() + 3_600_000;
    let mut r = job("pg", "later");
    r.sched_at_ms = later;
    r.args = b"L".to_vec().into();
    c.submit_job(r).await.unwrap();
    c.submit_job(job("pg", "now")).await.unwrap();
    c.submit_job(job("pg", "gone")).await.unwrap();
    let mut w = s.worker(&["pg"], 1).await;
    let first = w.next_job().await;
    w.done(first.lease_id, b"ok").await;
    let leased = w.next_job().await;
    let st = task_status(&mut c, "pg").await;
    assert_eq!((st.pending, st.scheduled, st.running), (0, 1, 1));
    drop(c);
    let dir = s.stop().await;
    drop(w);

    // Same database, new data dir: everything comes from PostgreSQL.
    drop(dir);
    let s = TestServer::start_with(|c| c.postgres_url = Some(url.clone())).await;
    let mut c = s.client().await;
    let st = task_status(&mut c, "pg").await;
    assert_eq!(
        (st.pending, st.scheduled, st.running),
        (1, 1, 0),
        "the done job is gone, the leased one is pending again"
    );
    let got = c
        .get_job(pb::JobRef {
            job_id: 0,
            task: "pg".into(),
            name: "later".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.sched_at_ms, later);
    assert_eq!(&got.args[..], b"L");
    let mut w = s.worker(&["pg"], 1).await;
    let again = w.next_job().await;
    assert_eq!(again.name, leased.name);
    assert!(again.lease_id != leased.lease_id);
    w.done(again.lease_id, b"ok").await;
    let fresh = c
        .submit_job(job("pg", "fresh"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    assert!(fresh > again.id, "new jobs never reuse old ids");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submits_survive_sigkill_on_postgres() {
    let db = tokio::task::spawn_blocking(common::pg::fresh_db)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = db.url.clone();
    let (mut child, addr) = spawn_server(&dir, &["--store", &store]).await;
    let mut c = client_at(addr).await;
    let mut acked = Vec::new();
    for i in 0..300 {
        let name = format!("k{i}");
        c.submit_job(job("crash", &name)).await.unwrap();
        acked.push(name);
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let (_child, addr) = spawn_server(&dir, &["--store", &store]).await;
    let mut c = client_at(addr).await;
    for name in &acked {
        c.get_job(pb::JobRef {
            job_id: 0,
            task: "crash".into(),
            name: name.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("acknowledged job {name} lost: {e}"));
    }
}

/// A cluster's submits store the `timeout` setting, as a single server's do; an earlier
/// version stored none (each node applied its own setting when it claimed the job). A single
/// server opening a database with such a row reads it back at start-up with its own
/// `timeout` setting; leased with none, a job expired at once, was retried at once and went
/// dead within milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_a_cluster_stored_take_the_servers_timeout_at_start_up() {
    let db = tokio::task::spawn_blocking(common::pg::fresh_db)
        .await
        .unwrap();
    let url = db.url.clone();
    let node = TestServer::start_with(|c| {
        c.postgres_url = Some(url.clone());
        c.cluster = Some(taskhive::cluster::ClusterConfig::new("a"));
    })
    .await;
    let mut c = node.client().await;
    c.submit_job(job("pg", "from-cluster")).await.unwrap();
    drop(c);
    node.stop().await;
    let stored = common::cluster::query_i64(&url, "SELECT timeout_ms FROM jobs").await;
    assert_eq!(stored, 600_000, "a cluster stores the node's setting");
    // The row as an earlier version stored it.
    common::cluster::query_i64(&url, "UPDATE jobs SET timeout_ms = 0 RETURNING id").await;

    let s = TestServer::start_with(|c| c.postgres_url = Some(url.clone())).await;
    let mut w = s.worker(&["pg"], 1).await;
    let got = w.next_job().await;
    assert_eq!(got.name, "from-cluster");
    assert_eq!(got.timeout_ms, 600_000, "the server's default timeout");
    assert_eq!(got.attempts, 0, "not failed by an instant expiry");
    w.done(got.lease_id, b"ok").await;
    let mut c = s.client().await;
    let st = task_status(&mut c, "pg").await;
    assert_eq!((st.pending, st.running, st.dead), (0, 0, 0));
    s.stop().await;
}
