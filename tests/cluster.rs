//! Several real `taskhive serve` processes on one PostgreSQL database (cluster mode).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::child::spawn_server;
use common::cluster::worker_loop;
use common::cluster::{channel, client, query_i64};
use common::pg::{fresh_db, PgDb};
use common::{job, within};
use rand::Rng;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::process::Child;
use tonic::transport::Channel;

async fn start_node(dir: &Path, db: &PgDb, node: &str, extra: &[&str]) -> (Child, SocketAddr) {
    let mut args = vec!["--store", db.url.as_str(), "--node-id", node];
    args.extend_from_slice(extra);
    spawn_server(&dir.join(node), &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_every_job_done_and_never_twice_at_once() {
    let n_jobs: usize = std::env::var("TASKHIVE_CLUSTER_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let flags = ["--claim-ttl", "2s", "--poll-interval", "1s"];
    let mut children = Vec::new();
    let nodes = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let (child, addr) = start_node(tmp.path(), &db, &format!("n{i}"), &flags).await;
        children.push(Some(child));
        nodes.lock().unwrap().push(Some(addr));
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for _ in 0..6 {
        workers.push(tokio::spawn(worker_loop(
            "cl",
            nodes.clone(),
            log.clone(),
            acked.clone(),
            stop.clone(),
        )));
    }

    // Submit through random nodes, 8 submitters; a submit to the killed node is retried elsewhere.
    let submitted = Arc::new(Mutex::new(HashSet::new()));
    let mut submitters = Vec::new();
    for k in 0..8 {
        let (nodes, submitted) = (nodes.clone(), submitted.clone());
        submitters.push(tokio::spawn(async move {
            let mut i = k;
            while i < n_jobs {
                let name = format!("j{i}");
                let addr = {
                    let live: Vec<SocketAddr> =
                        nodes.lock().unwrap().iter().flatten().copied().collect();
                    live[rand::rng().random_range(0..live.len())]
                };
                let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect()
                    .await
                else {
                    continue;
                };
                let mut c = SchedulerClient::new(ch);
                // A few submits per connection, then another random node.
                for _ in 0..20 {
                    if i >= n_jobs {
                        break;
                    }
                    let name_i = format!("j{i}");
                    if c.submit_job(job("cl", &name_i)).await.is_err() {
                        break;
                    }
                    submitted.lock().unwrap().insert(name_i);
                    i += 8;
                }
                let _ = name;
            }
        }));
    }

    // Kill node 1 once a third of the jobs ran, restart it a moment later.
    let progress = |what: &str| {
        eprintln!(
            "cluster: {what}: {} submitted, {} done",
            submitted.lock().unwrap().len(),
            acked.lock().unwrap().len()
        )
    };
    within(300, async {
        let mut last = Instant::now();
        while acked.lock().unwrap().len() < n_jobs / 3 {
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                progress("waiting for a third done");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut victim = children[1].take().unwrap();
    victim.start_kill().unwrap(); // SIGKILL
    victim.wait().await.unwrap();
    nodes.lock().unwrap()[1] = None;
    let killed_at = acked.lock().unwrap().len();
    let orphaned = query_i64(&db.url, "SELECT count(*) FROM jobs WHERE owner = 'n1'").await;
    // The other nodes take the dead node's claims over once they expire (2 s).
    within(60, async {
        while query_i64(&db.url, "SELECT count(*) FROM jobs WHERE owner = 'n1'").await > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    progress(&format!("{orphaned} claims of the killed node taken over"));
    let (child, addr) = start_node(tmp.path(), &db, "n1", &flags).await;
    children[1] = Some(child);
    nodes.lock().unwrap()[1] = Some(addr);

    for s in submitters {
        within(300, s).await.unwrap();
    }
    assert_eq!(submitted.lock().unwrap().len(), n_jobs);
    // Done: the database holds no job and every job was acknowledged done by a worker.
    within(300, async {
        let mut last = Instant::now();
        loop {
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                progress("waiting for all done");
            }
            // Done means gone from the database (only a done report deletes a job) after a
            // worker ran it; an ack lost with the killed node does not make a job undone.
            let left = query_i64(&db.url, "SELECT count(*) FROM jobs").await;
            let ran: HashSet<String> = log.lock().unwrap().iter().map(|a| a.name.clone()).collect();
            if left == 0 && ran.len() == n_jobs {
                break;
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
    let names: HashSet<&str> = log.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), n_jobs, "every job ran");
    // A submit whose reply was lost with the killed node is sent again elsewhere: when the
    // first copy already ran, that is a new job (new id). Overlap is checked per job id.
    let repeated = common::cluster::assert_no_overlap(&log);
    eprintln!(
        "cluster: {n_jobs} jobs, {} attempts, {repeated} jobs ran more than once \
         (node killed after {killed_at} done)",
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_cluster_query_rate_is_bounded() {
    let secs: u64 = std::env::var("TASKHIVE_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut keep = Vec::new();
    for i in 0..3 {
        let (child, addr) = start_node(tmp.path(), &db, &format!("n{i}"), &[]).await;
        // An idle worker on every node: the claimers have demand, the database has no work.
        let w = common::Worker::connect(channel(addr).await, &["idle"], 4).await;
        keep.push((child, w));
    }
    // Let start-up traffic settle, then count the statements the nodes run on this
    // database (pg_stat_statements; without it, committed transactions).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let has_pss = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .is_ok()
                && c.query_one("SELECT pg_stat_statements_reset()", &[])
                    .is_ok()
        }
    })
    .await
    .unwrap();
    let sql = if has_pss {
        "SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements s
         JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_statements%'"
    } else {
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    };
    let before = query_i64(&db.url, sql).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = query_i64(&db.url, sql).await;
    let rate = (after - before) as f64 / secs as f64;
    let what = if has_pss {
        "statements"
    } else {
        "transactions"
    };
    eprintln!("idle cluster (3 nodes with idle workers, 5s poll): {rate:.2} {what}/s");
    // 3 nodes × (claim + next-due query) per 5 s poll = 1.2/s.
    let bound = if has_pss { 2.0 } else { 6.0 };
    assert!(rate < bound, "idle cluster runs {rate:.2} {what}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_job_on_one_node_gets_the_result_from_a_worker_on_another() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_a, addr_a) = start_node(tmp.path(), &db, "a", &[]).await;
    let (_b, addr_b) = start_node(tmp.path(), &db, "b", &[]).await;
    let mut w = common::Worker::connect(channel(addr_b).await, &["rj"], 1).await;
    let mut ca = client(addr_a).await;
    // Nodes publish their workers within a few milliseconds; RunJob needs one somewhere.
    within(10, async {
        while common::task_status(&mut ca, "rj").await.workers == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let call = tokio::spawn(async move { ca.run_job(job("rj", "x")).await });
    let j = w.next_job().await;
    assert_eq!(j.name, "x");
    w.done(j.lease_id, b"from b").await;
    let r = within(20, call).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"from b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_execution_at_a_time_across_nodes() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let node = |id: &'static str| {
        let url = db.url.clone();
        move |c: &mut taskhive::config::Config| {
            c.postgres_url = Some(url);
            c.cluster = Some(taskhive::cluster::ClusterConfig::new(id));
        }
    };
    let a = common::TestServer::start_with(node("a")).await;
    let b = common::TestServer::start_with(node("b")).await;
    let target = common::target::Target::start().await;
    let c = reqwest::Client::new();
    let job = format!(
        r#"{{"name":"slow","host":"{}","run_for_sec":2,
            "tasks":[{{"task_class":"http.get","sleep_min_msec":50,"sleep_max_msec":50}}]}}"#,
        target.url("/")
    );
    for s in [&a, &b] {
        let r = c.post(format!("{}/job", s.url())).body(job.clone()).send();
        assert_eq!(r.await.unwrap().status(), reqwest::StatusCode::OK);
    }
    let running = tokio::spawn({
        let (c, url) = (c.clone(), format!("{}/exec", a.url()));
        async move { c.post(url).body(r#"{"name":"slow"}"#).send().await.unwrap() }
    });
    within(10, async {
        loop {
            let st: serde_json::Value = c
                .get(format!("{}/status", a.url()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if st["state"] == "running" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let r = c
        .post(format!("{}/exec", b.url()))
        .body(r#"{"name":"slow"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::CONFLICT,
        "node b refuses while node a runs"
    );
    let busy: serde_json::Value = r.json().await.unwrap();
    assert_eq!(busy["reason"], "EXEC_BUSY", "{busy}");
    assert!(
        busy["message"]
            .as_str()
            .unwrap()
            .contains("running on another node"),
        "{busy}"
    );
    assert_eq!(
        within(20, running).await.unwrap().status(),
        reqwest::StatusCode::OK
    );
    // Released with a's execution: b may run now.
    let r = c
        .post(format!("{}/exec", b.url()))
        .body(r#"{"name":"slow"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
}

/// Reads (owner, lease_version, sched_at) of job `name`.
async fn claim_of(url: &str, name: &str) -> Option<(Option<String>, i64, i64)> {
    let (url, name) = (url.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_opt(
            "SELECT owner, lease_version, sched_at FROM jobs WHERE name = $1",
            &[&name],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_loses_its_claim_and_its_late_report_changes_nothing() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let flags = ["--claim-ttl", "1s", "--poll-interval", "200ms"];
    let (a, addr_a) = start_node(tmp.path(), &db, "a", &flags).await;
    let (_b, addr_b) = start_node(tmp.path(), &db, "b", &flags).await;
    let mut wa = common::Worker::connect(channel(addr_a).await, &["fence"], 1).await;
    client(addr_a)
        .await
        .submit_job(job("fence", "f"))
        .await
        .unwrap();
    let first = wa.next_job().await;
    let (owner, v1, sched_at) = claim_of(&db.url, "f").await.unwrap();
    assert_eq!(owner.as_deref(), Some("a"));

    // Node a stops answering (a long pause, a partition): its claim expires and b takes over.
    let pid = a.id().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut wb = common::Worker::connect(channel(addr_b).await, &["fence"], 1).await;
    let second = wb.next_job().await;
    assert_eq!(second.id, first.id);
    let (owner, v2, _) = claim_of(&db.url, "f").await.unwrap();
    assert_eq!(owner.as_deref(), Some("b"));
    assert!(v2 > v1, "a new claim carries a new lease version");

    // a wakes up and its worker reports on the old lease: refused by a's core (claim seen
    // lost) or written with the old version and matching no row. Either way nothing changes.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wa.send(
        first.lease_id,
        pb::outcome::Outcome::SchedLater(pb::SchedLater {
            delay_ms: 3_600_000,
            count_step: 1,
        }),
    )
    .await;
    // The ack comes after a's commit (or a's refusal), so the row shows the outcome now.
    // Either way the acknowledgement follows what was written: the report is refused.
    let ack = wa.next_ack().await;
    assert_ne!(
        ack.error, "",
        "a late report that changed nothing is not acknowledged"
    );
    assert_eq!(ack.reason, "STALE_LEASE", "{ack:?}");
    assert_eq!(
        claim_of(&db.url, "f").await,
        Some((Some("b".to_string()), v2, sched_at)),
        "the stale report (ack error {:?}) changed the row",
        ack.error
    );
    wb.done(second.lease_id, b"by b").await;
    within(10, async {
        while claim_of(&db.url, "f").await.is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_gracefully_gives_its_claims_back() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut a, addr) = start_node(tmp.path(), &db, "a", &[]).await;
    let mut c = client(addr).await;
    for i in 0..5 {
        c.submit_job(job("give", &format!("g{i}"))).await.unwrap();
    }
    let mut w = common::Worker::connect(channel(addr).await, &["give"], 1).await;
    w.next_job().await;
    let owned = "SELECT count(*) FROM jobs WHERE owner = 'a'";
    assert!(query_i64(&db.url, owned).await >= 1);
    unsafe { libc::kill(a.id().unwrap() as i32, libc::SIGTERM) };
    drop(w);
    within(20, a.wait()).await.unwrap();
    assert_eq!(
        query_i64(&db.url, owned).await,
        0,
        "no claim waits for expiry"
    );
    assert_eq!(query_i64(&db.url, "SELECT count(*) FROM jobs").await, 5);
}
