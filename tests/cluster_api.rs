//! The client API in cluster mode answers for the whole cluster, from any node: every submit
//! path takes its ids from the database, and reads, removes, dead-set operations, dump/load
//! and settings see every node's jobs.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::child::spawn_server;
use common::pg::{fresh_db, PgDb};
use common::{job, within, Worker};
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::process::Child;
use tonic::transport::Channel;

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn client(addr: SocketAddr) -> SchedulerClient<Channel> {
    SchedulerClient::new(channel(addr).await)
}

async fn query_i64(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_string(), sql.to_string());
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_one(sql.as_str(), &[]).unwrap().get::<_, i64>(0)
    })
    .await
    .unwrap()
}

async fn start_node(dir: &Path, db: &PgDb, node: &str) -> (Child, SocketAddr) {
    let args = [
        "--store",
        db.url.as_str(),
        "--node-id",
        node,
        "--claim-ttl",
        "2s",
        "--poll-interval",
        "1s",
    ];
    spawn_server(&dir.join(node), &args).await
}

async fn cluster(n: usize) -> (PgDb, tempfile::TempDir, Vec<(Child, SocketAddr)>) {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start_node(tmp.path(), &db, &format!("n{i}")).await);
    }
    (db, tmp, nodes)
}

/// Runs every job a worker is handed (done at once) until `want` distinct names ran, and
/// returns how many times each name ran.
async fn run_all(workers: &mut [Worker], want: usize) -> HashMap<String, usize> {
    let mut ran: HashMap<String, usize> = HashMap::new();
    within(60, async {
        let mut i = 0;
        while ran.len() < want {
            let w = &mut workers[i % workers.len()];
            i += 1;
            let Ok(j) = tokio::time::timeout(Duration::from_millis(50), w.next_job()).await
            else {
                continue;
            };
            *ran.entry(j.name.clone()).or_default() += 1;
            w.done(j.lease_id, b"ok").await;
        }
    })
    .await;
    ran
}

/// The repro: unary JSON submits on one node, then one SubmitJobs on another. The
/// batch once took ids from the local core's counter and overwrote the other node's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_jobs_on_one_node_never_overwrites_jobs_submitted_on_another() {
    let (db, _tmp, nodes) = cluster(2).await;
    let (a, b) = (nodes[0].1, nodes[1].1);
    let http = reqwest::Client::new();
    for i in 1..=50 {
        let r = http
            .post(format!("http://{b}/taskhive.v1.Scheduler/SubmitJob"))
            .json(&serde_json::json!({"task": "rp", "name": format!("u{i}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }
    let batch = pb::SubmitJobsRequest {
        jobs: (1..=30).map(|i| job("rp", &format!("m{i}"))).collect(),
    };
    let acks = client(a).await.submit_jobs(batch).await.unwrap().into_inner();
    let ids: HashSet<u64> = acks.jobs.iter().map(|r| r.job_id).collect();
    assert_eq!(ids.len(), 30, "distinct ids: {acks:?}");
    assert_eq!(
        query_i64(&db.url, "SELECT count(*) FROM jobs WHERE task = 'rp'").await,
        80,
        "every acknowledged job has its row"
    );

    let mut workers = vec![
        Worker::connect(channel(a).await, &["rp"], 8).await,
        Worker::connect(channel(b).await, &["rp"], 8).await,
    ];
    let ran = run_all(&mut workers, 80).await;
    assert_eq!(ran.len(), 80);
    let twice: Vec<_> = ran.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    within(30, async {
        while query_i64(&db.url, "SELECT count(*) FROM jobs").await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
