//! Three cluster nodes under every submit API at once (unary gRPC, SubmitJobs, SubmitStream,
//! the JSON face, the Periodic face), each call to a random node, workers on random nodes,
//! and one node SIGKILLed and restarted twice: every acknowledged job runs, and no job is
//! held by two live leases at once.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::child::spawn_server;
use common::cluster::{assert_no_overlap, pick, query_i64, query_one, worker_loop};
use common::pg::{fresh_db, PgDb};
use common::{assert_no_job, free_port, job, within};
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use taskhive::periodic::command::{code, encode_request, PJob, Request};
use taskhive::periodic::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;
use tonic::transport::Channel;

type Nodes = Arc<Mutex<Vec<Option<SocketAddr>>>>;
type Acked = Arc<Mutex<HashSet<String>>>;

/// A node with a Periodic TCP listener on `periodic_port`.
async fn start_node(dir: &Path, db: &PgDb, node: &str, periodic_port: u16) -> (Child, SocketAddr) {
    let periodic = format!("tcp://127.0.0.1:{periodic_port}");
    let args = [
        "--store",
        db.url.as_str(),
        "--node-id",
        node,
        "--claim-ttl",
        "2s",
        "--poll-interval",
        "1s",
        "--periodic-listen",
        periodic.as_str(),
    ];
    spawn_server(&dir.join(node), &args).await
}

async fn grpc(addr: SocketAddr) -> Option<SchedulerClient<Channel>> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .ok()?;
    Some(SchedulerClient::new(ch))
}

/// Submits `names` through one API, each call to a random live node, recording what was
/// acknowledged; a call refused or cut by a killed node is sent again elsewhere.
async fn submitter(
    kind: &'static str,
    names: Vec<String>,
    nodes: Nodes,
    periodic: Arc<Mutex<Vec<u16>>>,
    acked: Acked,
) {
    let mut rest = names;
    while !rest.is_empty() {
        let addr = pick(&nodes);
        let n = rest.len().min(20);
        let batch: Vec<String> = rest[..n].to_vec();
        let ok: Vec<String> = match kind {
            "unary" => {
                let Some(mut c) = grpc(addr).await else {
                    continue;
                };
                let mut ok = Vec::new();
                for name in &batch {
                    if c.submit_job(job("flt", name)).await.is_err() {
                        break;
                    }
                    ok.push(name.clone());
                }
                ok
            }
            "many" => {
                let Some(mut c) = grpc(addr).await else {
                    continue;
                };
                let req = pb::SubmitJobsRequest {
                    jobs: batch.iter().map(|n| job("flt", n)).collect(),
                };
                match c.submit_jobs(req).await {
                    Ok(_) => batch.clone(),
                    Err(_) => Vec::new(),
                }
            }
            "stream" => {
                let Some(mut c) = grpc(addr).await else {
                    continue;
                };
                let reqs: Vec<_> = batch.iter().map(|n| job("flt", n)).collect();
                let mut ok = Vec::new();
                if let Ok(r) = c.submit_stream(tokio_stream::iter(reqs)).await {
                    let mut acks = r.into_inner();
                    while let Ok(Some(m)) = acks.message().await {
                        for a in m.acks {
                            if a.error_code.is_empty() {
                                ok.push(batch[a.seq as usize].clone());
                            }
                        }
                    }
                }
                ok
            }
            "json" => {
                let http = reqwest::Client::new();
                let mut ok = Vec::new();
                for name in &batch {
                    let r = http
                        .post(format!("http://{addr}/taskhive.v1.Scheduler/SubmitJob"))
                        .json(&serde_json::json!({"task": "flt", "name": name}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => ok.push(name.clone()),
                        _ => break,
                    }
                }
                ok
            }
            "periodic" => {
                // The Periodic listener of the node picked.
                let port = {
                    let nodes = nodes.lock().unwrap();
                    let i = nodes.iter().position(|a| *a == Some(addr));
                    match i {
                        Some(i) => periodic.lock().unwrap()[i],
                        None => continue,
                    }
                };
                periodic_submit(port, &batch).await
            }
            _ => unreachable!(),
        };
        let done: HashSet<&String> = ok.iter().collect();
        acked.lock().unwrap().extend(ok.iter().cloned());
        rest.retain(|n| !done.contains(n));
    }
}

/// SUBMIT_JOB over the Periodic binary protocol; returns the names acknowledged SUCCESS.
async fn periodic_submit(port: u16, names: &[String]) -> Vec<String> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Vec::new();
    };
    let mut buf = BytesMut::new();
    let mut ok = Vec::new();
    if s.write_all(&frame::encode_request(&[1])).await.is_err() {
        return ok;
    }
    let mut frames = 0;
    for (i, name) in names.iter().enumerate() {
        let req = Request::SubmitJob(PJob {
            func: "flt".into(),
            name: name.clone(),
            workload: Default::default(),
            sched_at: 0,
            count: 0,
            timeout: 0,
        });
        let f = frame::encode_request(&encode_request(i as u32 + 1, &req));
        if s.write_all(&f).await.is_err() {
            return ok;
        }
        // The first response is the connection id; then one per request.
        loop {
            if buf.len() >= 12 {
                let len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
                if buf.len() >= 12 + len {
                    let payload = buf.split_to(12 + len).split_off(12);
                    frames += 1;
                    if frames == 1 {
                        continue;
                    }
                    if payload.len() >= 5 && payload[4] == code::SUCCESS {
                        ok.push(name.clone());
                    }
                    break;
                }
            }
            match tokio::time::timeout(Duration::from_secs(10), s.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return ok,
            }
        }
    }
    ok
}

/// What the rows still in `jobs` are, for a run that waits on them.
const ROWS_LEFT: &str = "SELECT concat_ws(' ',
        'dead', count(*) FILTER (WHERE dead),
        'claimed', count(*) FILTER (WHERE owner IS NOT NULL AND claim_until >= now()),
        'claim-expired', count(*) FILTER (WHERE owner IS NOT NULL AND claim_until < now()),
        'unclaimed', count(*) FILTER (WHERE owner IS NULL),
        'later', count(*) FILTER (WHERE sched_at > (extract(epoch from now()) * 1000)::bigint),
        'wait', count(*) FILTER (WHERE wait),
        'owners', string_agg(DISTINCT owner, ','),
        'attempts', min(attempts), max(attempts),
        'errors', string_agg(DISTINCT last_error, '|'),
        'names', (SELECT string_agg(name, ',') FROM (SELECT name FROM jobs ORDER BY id LIMIT 5) f))
     FROM jobs";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_submit_api_on_three_nodes_two_kills_no_acknowledged_job_lost() {
    let per_kind: usize = std::env::var("TASKHIVE_CLUSTER_FAULT_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let kinds = ["unary", "many", "stream", "json", "periodic"];
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let nodes: Nodes = Arc::new(Mutex::new(Vec::new()));
    let ports = Arc::new(Mutex::new(Vec::new()));
    let mut children = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let (child, addr) = start_node(tmp.path(), &db, &format!("n{i}"), port).await;
        children.push(Some(child));
        nodes.lock().unwrap().push(Some(addr));
        ports.lock().unwrap().push(port);
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let done_acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for _ in 0..6 {
        workers.push(tokio::spawn(worker_loop(
            "flt",
            nodes.clone(),
            log.clone(),
            done_acked.clone(),
            stop.clone(),
        )));
    }
    let acked: Acked = Arc::new(Mutex::new(HashSet::new()));
    let mut submitters = Vec::new();
    for kind in kinds {
        for part in 0..2 {
            let names = (0..per_kind / 2)
                .map(|i| format!("{kind}-{part}-{i}"))
                .collect();
            submitters.push(tokio::spawn(submitter(
                kind,
                names,
                nodes.clone(),
                ports.clone(),
                acked.clone(),
            )));
        }
    }
    let total = per_kind / 2 * 2 * kinds.len();
    let ran = |log: &Mutex<Vec<common::cluster::Attempt>>| -> usize {
        log.lock()
            .unwrap()
            .iter()
            .map(|a| a.name.as_str())
            .collect::<HashSet<_>>()
            .len()
    };

    // Kill node 1 once a third of the jobs ran and again at two thirds; it comes back with
    // the same id each time (its old claims are released at start).
    for (round, victim) in [(1usize, 1usize), (2, 1)] {
        within(300, async {
            while ran(&log) < total * round / 3 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let mut child = children[victim].take().unwrap();
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        nodes.lock().unwrap()[victim] = None;
        eprintln!(
            "faults: killed n{victim}: {} acknowledged, {} ran",
            acked.lock().unwrap().len(),
            ran(&log)
        );
        let port = ports.lock().unwrap()[victim];
        let (child, addr) = start_node(tmp.path(), &db, &format!("n{victim}"), port).await;
        children[victim] = Some(child);
        nodes.lock().unwrap()[victim] = Some(addr);
    }
    for s in submitters {
        within(300, s).await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        total,
        "every submit was acknowledged in the end"
    );

    // Every acknowledged job ran, and the database holds none.
    within(300, async {
        let mut last = Instant::now();
        loop {
            let names: HashSet<String> =
                log.lock().unwrap().iter().map(|a| a.name.clone()).collect();
            let missing = acked.iter().filter(|n| !names.contains(*n)).count();
            let left = query_i64(&db.url, "SELECT count(*) FROM jobs").await;
            if missing == 0 && left == 0 {
                return;
            }
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                eprintln!("faults: {missing} acknowledged jobs not run yet, {left} rows left");
                if left > 0 {
                    eprintln!(
                        "faults: rows left: {}",
                        query_one::<String>(&db.url, ROWS_LEFT).await
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    stop.notify_waiters();
    for w in workers {
        w.abort();
    }
    let log = log.lock().unwrap().clone();
    let repeated = assert_no_overlap(&log);
    eprintln!(
        "faults: {total} jobs acknowledged over {} APIs, {} attempts, {repeated} jobs ran more than once, none lost",
        kinds.len(),
        log.len()
    );
}

/// Pipelined Periodic SUBMIT_JOBs on a cluster node: all stored, and a REMOVE_JOB written
/// right behind them (whose delete goes straight to the database while the submits are
/// published in order) still comes after its submit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_periodic_submits_on_a_cluster_node_keep_their_order() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_a, addr) = start_node(tmp.path(), &db, "a", port).await;
    let (_b, addr_b) = start_node(tmp.path(), &db, "b", free_port()).await;
    let replies =
        common::periodic::pipelined_submits_then_remove(&format!("127.0.0.1:{port}"), "pipe", 300)
            .await;
    assert!(replies.values().all(|c| *c == code::SUCCESS), "{replies:?}");
    assert_eq!(
        query_i64(&db.url, "SELECT count(*) FROM jobs WHERE task = 'pipe'").await,
        299
    );
    for node in [addr, addr_b] {
        assert_no_job(&mut grpc(node).await.unwrap(), "pipe", "p299").await;
    }
}
