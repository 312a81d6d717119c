//! The submit backlog through a real server, the same on one node and on a cluster node:
//! while the store cannot take writes (another session holds its write lock), at most
//! `--submit-backlog` submitted jobs are admitted, the other submit calls wait unanswered
//! (`taskhive_submits_waiting`), and once the store takes writes again every one of them
//! is stored. Reads (GetJob, ListJobs, Status) answer meanwhile. (`tests/backpressure.rs`
//! measures the bound against a slow store in-process.)

mod common;

use std::time::Duration;

use common::pg::fresh_db;
use common::{job, metric, metrics_from, within, TestServer};
use taskhive::cluster::ClusterConfig;
use taskhive::pb;

const BOUND: usize = 4;
const CALLS: usize = 20;

/// Waits until `s` has opened its store and answers (a submit is stored): the listener
/// is bound before that, and the store must not be locked while the node opens it.
async fn started(s: &TestServer) {
    let mut c = s.client().await;
    within(30, c.submit_job(job("warm", "up"))).await.unwrap();
}

/// Fires `CALLS` concurrent unary submits at `s` while `stall` holds the store's write lock,
/// checks that `BOUND` are admitted and the rest wait, then lets the store go (`release`)
/// and checks every call is answered with a job of its own.
async fn submits_wait_then_all_land(s: &TestServer, release: tokio::sync::oneshot::Sender<()>) {
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut c = s.client().await;
        calls.push(tokio::spawn(async move {
            c.submit_job(job("bp", &format!("j{i}"))).await
        }));
    }
    // Admitted and waiting, as the node's metrics tell (read at scrape time; a cluster
    // node's scrape leaves out the per-task counts it cannot read in time, not these).
    within(30, async {
        loop {
            let m = metrics_from(s.addr, None).await;
            let admitted = metric(&m, "taskhive_submit_backlog_jobs");
            let waiting = metric(&m, "taskhive_submits_waiting");
            assert!(
                admitted <= BOUND as f64,
                "admitted {admitted} past the bound"
            );
            if admitted == BOUND as f64 && waiting == (CALLS - BOUND) as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "a submit was answered while the store could not take it"
    );
    reads_answer_while_writes_wait(s).await;
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "a submit was answered while the store could not take it"
    );
    release.send(()).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    within(60, async {
        for c in calls {
            let r = c
                .await
                .unwrap()
                .expect("submit answered once the store took it");
            ids.insert(r.into_inner().job_id);
        }
    })
    .await;
    assert_eq!(ids.len(), CALLS, "every submit got a job of its own");
    let mut c = s.client().await;
    let st = common::task_status(&mut c, "bp").await;
    assert_eq!(st.pending as usize, CALLS, "{st:?}");
    let m = metrics_from(s.addr, None).await;
    assert_eq!(metric(&m, "taskhive_submit_backlog_jobs"), 0.0);
    assert_eq!(metric(&m, "taskhive_submits_waiting"), 0.0);
    assert_eq!(metric(&m, "taskhive_job_counts_missing"), 0.0);
}

/// GetJob, ListJobs and Status answer while the admitted submits wait on the store: a read
/// does not queue behind them. Asked several times over, so that on a cluster node every
/// pooled session a read may use is tried.
async fn reads_answer_while_writes_wait(s: &TestServer) {
    let mut c = s.client().await;
    within(10, async {
        for _ in 0..8 {
            let job = c
                .get_job(common::job_ref("warm", "up"))
                .await
                .expect("GetJob answers while submits wait")
                .into_inner();
            assert_eq!(job.name, "up");
            let page = c
                .list_jobs(pb::ListJobsRequest {
                    task: "warm".into(),
                    ..Default::default()
                })
                .await
                .expect("ListJobs answers while submits wait")
                .into_inner();
            assert_eq!(page.jobs.len(), 1, "{page:?}");
            let st = common::task_status(&mut c, "warm").await;
            assert_eq!(st.pending, 1, "{st:?}");
        }
    })
    .await;
}

/// One node: a second SQLite connection holds the write lock (the writer's commit waits in
/// SQLite's busy handler, as on a stalled disk) until released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_admits_the_bound_and_holds_the_rest_until_the_store_takes_them() {
    let s = TestServer::start_with(|c| c.backlog_jobs = BOUND).await;
    started(&s).await;
    let path = s.dir.path().join("taskhive.db");
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = std::thread::spawn(move || {
        let db = rusqlite::Connection::open(path).unwrap();
        db.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked.send(()).unwrap();
        released.blocking_recv().unwrap();
        db.execute_batch("ROLLBACK").unwrap();
    });
    is_locked.recv().unwrap();
    submits_wait_then_all_land(&s, release).await;
    holder.join().unwrap();
}

/// A cluster node: another PostgreSQL session locks the jobs table against writes until
/// released (reads, such as the metrics' task counts, go on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_admits_the_bound_and_holds_the_rest_until_the_database_takes_them() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let url = db.url.clone();
    let s = TestServer::start_with(|c| {
        c.postgres_url = Some(url);
        c.cluster = Some(ClusterConfig::new("n0"));
        c.backlog_jobs = BOUND;
    })
    .await;
    started(&s).await;
    let (locker, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE jobs IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let unlock = tokio::spawn(async move {
        released.await.unwrap();
        locker.batch_execute("ROLLBACK").await.unwrap();
    });
    submits_wait_then_all_land(&s, release).await;
    unlock.await.unwrap();
}
