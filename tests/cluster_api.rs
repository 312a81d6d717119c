//! The client API in cluster mode answers for the whole cluster, from any node: every submit
//! path takes its ids from the database, and reads, removes, dead-set operations, dump/load
//! and settings see every node's jobs.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::child::spawn_server;
use common::cluster::{channel, client, query_i64};
use common::pg::{fresh_db, PgDb};
use common::{h2_answer_date, is_http_date, job, now_ms, setting, within, Worker};
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::process::Child;
use tonic::transport::Channel;

async fn start_node(dir: &Path, db: &PgDb, node: &str) -> (Child, SocketAddr) {
    start_node_ttl(dir, db, node, "2s").await
}

/// A node whose claims last `ttl` (a node that cannot renew for two thirds of it gives its
/// claims up: tests whose workers must keep their jobs on a loaded machine want it longer).
async fn start_node_ttl(dir: &Path, db: &PgDb, node: &str, ttl: &str) -> (Child, SocketAddr) {
    let args = [
        "--store",
        db.url.as_str(),
        "--node-id",
        node,
        "--claim-ttl",
        ttl,
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
            let Ok(j) = tokio::time::timeout(Duration::from_millis(50), w.next_job()).await else {
                continue;
            };
            *ran.entry(j.name.clone()).or_default() += 1;
            w.done(j.lease_id, b"ok").await;
        }
    })
    .await;
    ran
}

/// The issue's repro: unary JSON submits on one node, then one SubmitJobs on another. The
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
    let acks = client(a)
        .await
        .submit_jobs(batch)
        .await
        .unwrap()
        .into_inner();
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

// ---------------------------------------------------------------------------------------
// Conformance: the same scenarios against one node (SQLite) and a 3-node cluster, every
// call sent to a random node.

/// Where a scenario runs: one node, or several on one database.
struct Env {
    addrs: Vec<SocketAddr>,
    _children: Vec<Child>,
    _db: Option<PgDb>,
    _tmp: tempfile::TempDir,
}

impl Env {
    async fn one_node() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        // A small payload budget, so that scenarios with large payloads read them back.
        let args = ["--payload-memory", "16KiB"];
        let (child, addr) = spawn_server(&tmp.path().join("solo"), &args).await;
        Env {
            addrs: vec![addr],
            _children: vec![child],
            _db: None,
            _tmp: tmp,
        }
    }

    async fn cluster() -> Env {
        let (db, tmp, nodes) = cluster(3).await;
        let (children, addrs) = nodes.into_iter().unzip();
        Env {
            addrs,
            _children: children,
            _db: Some(db),
            _tmp: tmp,
        }
    }

    fn addr(&self) -> SocketAddr {
        use rand::Rng;
        self.addrs[rand::rng().random_range(0..self.addrs.len())]
    }

    /// A client of a random node.
    async fn c(&self) -> SchedulerClient<Channel> {
        client(self.addr()).await
    }

    /// A worker on a random node; returns once every node sees it (cluster nodes publish
    /// their workers within milliseconds).
    async fn worker(&self, task: &str, capacity: u32) -> Worker {
        let w = Worker::connect(channel(self.addr()).await, &[task], capacity).await;
        for &a in &self.addrs {
            let mut c = client(a).await;
            within(10, async {
                while common::task_status(&mut c, task).await.workers == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        }
        w
    }

    /// Waits until Status (asked of random nodes) satisfies `ok`.
    async fn status_until(&self, task: &str, ok: impl Fn(&pb::TaskStatus) -> bool) {
        within(20, async {
            loop {
                let s = common::task_status(&mut self.c().await, task).await;
                if ok(&s) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// Writes setting `key` = `value` straight into the cluster's database, as a SetConfig
/// commits it but with no NOTIFY, and checks that the node `c` talks to still holds `was`:
/// what a node does next shows whether it reads the setting as committed or its own copy.
async fn set_unannounced(
    db: &PgDb,
    c: &mut SchedulerClient<Channel>,
    key: &str,
    value: i64,
    was: i64,
) {
    let set = format!(
        "INSERT INTO config (key, value) VALUES ('{key}', {value})
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING value"
    );
    assert_eq!(query_i64(&db.url, &set).await, value);
    assert_eq!(
        setting(c, key).await,
        Some(was),
        "the node's own copy of {key} has not heard of the change"
    );
}

/// A job stored without a lease length (submitted unary or in a batch, or loaded from a
/// dump) gets the `timeout` setting the database holds when its statement runs, not the
/// copy a node keeps: a SetConfig acknowledged on one node holds for the next submit on
/// any node, before its NOTIFY reaches that node. Three nodes, two of them used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_takes_the_timeout_setting_as_committed_not_as_notified() {
    let (db, _tmp, nodes) = cluster(3).await;
    let mut c = client(nodes[1].1).await;
    let mut other = client(nodes[2].1).await;
    c.submit_job(job("ts", "before")).await.unwrap();
    set_unannounced(&db, &mut c, "timeout", 7, 600).await;
    assert_eq!(setting(&mut other, "timeout").await, Some(600));
    c.submit_job(job("ts", "unary")).await.unwrap();
    c.submit_jobs(pb::SubmitJobsRequest {
        jobs: vec![
            job("ts", "batch"),
            pb::SubmitJobRequest {
                timeout_ms: Some(5_000),
                ..job("ts", "own")
            },
        ],
    })
    .await
    .unwrap();
    let loaded = other
        .load(tokio_stream::iter(vec![pb::DumpedJob {
            job: Some(pb::Job {
                task: "ts".into(),
                name: "loaded".into(),
                sched_at_ms: common::now_ms() + 60_000,
                ..Default::default()
            }),
        }]))
        .await
        .unwrap()
        .into_inner()
        .loaded;
    assert_eq!(loaded, 1);
    for (name, want) in [
        ("before", 600_000),
        ("unary", 7_000),
        ("batch", 7_000),
        ("own", 5_000),
        ("loaded", 7_000),
    ] {
        let j = c.get_job(key("ts", name)).await.unwrap().into_inner();
        assert_eq!(j.timeout_ms, want, "job {name}");
    }
}

/// A named lock taken on a cluster node goes stale after the `lock-timeout` setting the
/// database holds when the node asks, not the node's copy (as for `timeout` above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_takes_the_lock_timeout_setting_as_committed_not_as_notified() {
    let (db, _tmp, nodes) = cluster(3).await;
    let mut c = client(nodes[1].1).await;
    c.submit_job(job("lt", "a")).await.unwrap();
    set_unannounced(&db, &mut c, "lock-timeout", 3, 300).await;
    let mut w = Worker::connect_with(channel(nodes[1].1).await, &["lt"], &[], 1).await;
    let j = within(20, w.next_job()).await;
    assert!(w.acquire(j.lease_id, "L", 1).await, "a free lock is taken");
    let left = query_i64(
        &db.url,
        "SELECT stale_at - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
         FROM cluster_locks WHERE name = 'L'",
    )
    .await;
    assert!(
        left <= 3_000,
        "the lock goes stale {left} ms from now: 3 s at most, not the node's 300 s"
    );
}

/// PostgreSQL ends a deadlock by failing one of the two transactions. When that is a node's
/// submit statement, the node runs it again once the other has gone on, and the caller gets
/// its acknowledgement, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_that_loses_a_deadlock_is_tried_again() {
    // PostgreSQL looks for a deadlock once per wait, `deadlock_timeout` after it began, and
    // fails the session that finds one. The node's submit waits first, so it must be the one
    // to look after both wait: its sessions look 5 s in (not 1 s: a loaded machine may take
    // longer than that to start the other wait, and then the other transaction found the
    // deadlock and failed), and the other session never looks.
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    db.set_session_default("deadlock_timeout", "5s");
    let tmp = tempfile::tempdir().unwrap();
    let node = start_node(tmp.path(), &db, "n0").await;
    let mut c = client(node.1).await;
    for name in ["a", "b"] {
        c.submit_job(job("dl", name)).await.unwrap();
    }
    // Another transaction holds row b, and takes row a when told to.
    let url = db.url.clone();
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let (close_tx, close) = std::sync::mpsc::channel::<()>();
    let other = tokio::task::spawn_blocking(move || {
        let mut pg = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        pg.batch_execute("SET deadlock_timeout = '10min'").unwrap();
        let mut tx = pg.transaction().unwrap();
        let set = "UPDATE jobs SET args = 'other' WHERE task = 'dl' AND name = $1";
        tx.execute(set, &[&"b"]).unwrap();
        locked_tx.send(()).unwrap();
        close.recv().unwrap();
        // The submit's deadlock check finds this wait and fails the submit; this update
        // then goes through.
        tx.execute(set, &[&"a"]).unwrap();
        tx.commit().unwrap();
    });
    locked.await.unwrap();
    // One statement: it takes row a, then waits on row b.
    let batch = pb::SubmitJobsRequest {
        jobs: ["a", "b"]
            .iter()
            .map(|n| pb::SubmitJobRequest {
                args: b"mine".to_vec().into(),
                ..job("dl", n)
            })
            .collect(),
    };
    let submit = tokio::spawn(async move { c.submit_jobs(batch).await });
    within(20, async {
        let waiting = "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'";
        while query_i64(&db.url, waiting).await == 0 {
            assert!(!submit.is_finished(), "the submit never waited on row b");
            tokio::task::yield_now().await;
        }
    })
    .await;
    close_tx.send(()).unwrap();
    other.await.unwrap();
    let acks = within(20, submit)
        .await
        .unwrap()
        .expect("the submit is tried again after losing the deadlock")
        .into_inner();
    assert_eq!(acks.jobs.len(), 2);
    assert_eq!(
        query_i64(
            &db.url,
            "SELECT count(*) FROM jobs WHERE task = 'dl' AND args = 'mine'"
        )
        .await,
        2,
        "both rows hold the submit's args, stored after the other transaction's"
    );
}

fn key(task: &str, name: &str) -> pb::JobRef {
    pb::JobRef {
        job_id: 0,
        task: task.into(),
        name: name.into(),
    }
}

async fn scenario_submit_replace_schedule_status(env: Env) {
    let later = common::now_ms() + 3_600_000;
    let first = env
        .c()
        .await
        .submit_job(job("cf", "a"))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replaced);
    let mut again = job("cf", "a");
    again.args = b"second".to_vec().into();
    again.sched_at_ms = later;
    let second = env.c().await.submit_job(again).await.unwrap().into_inner();
    assert!(second.replaced, "same name replaces");
    assert_eq!(second.job_id, first.job_id, "a replaced job keeps its id");
    let j = env
        .c()
        .await
        .get_job(key("cf", "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&j.args[..], b"second");
    assert_eq!(j.state, pb::JobState::Scheduled as i32);
    assert_eq!(
        j.timeout_ms, 600_000,
        "submitted without one: the default timeout"
    );
    env.c().await.submit_job(job("cf", "b")).await.unwrap();
    let listed = list_all(
        &env,
        pb::ListJobsRequest {
            task: "cf".into(),
            ..Default::default()
        },
    )
    .await;
    let timeouts: Vec<(String, i64)> = listed.into_iter().map(|j| (j.name, j.timeout_ms)).collect();
    assert_eq!(
        timeouts,
        [("b".to_string(), 600_000), ("a".to_string(), 600_000)],
        "ListJobs shows the default timeout too"
    );
    env.status_until("cf", |s| {
        s.pending == 1 && s.scheduled == 1 && s.next_sched_at_ms > 0
    })
    .await;
    // Remove from any node.
    env.c().await.remove_job(key("cf", "a")).await.unwrap();
    let gone = env.c().await.get_job(key("cf", "a")).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    env.status_until("cf", |s| s.pending == 1 && s.scheduled == 0)
        .await;
}

async fn scenario_priorities_done_fail_dead_retry(env: Env) {
    let mut low = job("pr", "low");
    low.priority = 1;
    let mut high = job("pr", "high");
    high.priority = 9;
    let mut doomed = job("pr", "doomed");
    doomed.priority = 5;
    doomed.retry = Some(pb::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: vec![low, high, doomed],
        })
        .await
        .unwrap();
    let mut w = env.worker("pr", 1).await;
    let j = w.next_job().await;
    assert_eq!(j.name, "high", "higher priority first");
    w.done(j.lease_id, b"ok").await;
    let j = w.next_job().await;
    assert_eq!(j.name, "doomed");
    w.fail(j.lease_id, "boom").await;
    let j = w.next_job().await;
    assert_eq!(j.name, "low");
    // SchedLater: runs again after the delay with its run count grown.
    w.sched_later(j.lease_id, 100, 1).await;
    let j = w.next_job().await;
    assert_eq!((j.name.as_str(), j.run_count), ("low", 1));
    w.done(j.lease_id, b"ok").await;
    // The dead set, from any node.
    env.status_until("pr", |s| s.dead == 1 && s.pending == 0 && s.running == 0)
        .await;
    let dead = env
        .c()
        .await
        .list_dead(pb::ListDeadRequest {
            task: "pr".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dead.jobs.len(), 1);
    assert_eq!(dead.jobs[0].name, "doomed");
    assert_eq!(dead.jobs[0].last_error, "boom");
    assert_eq!(dead.jobs[0].timeout_ms, 600_000, "the default timeout");
    let n = env
        .c()
        .await
        .retry_dead(pb::DeadRef {
            task: "pr".into(),
            name: "doomed".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 1);
    let j = w.next_job().await;
    assert_eq!(j.name, "doomed", "re-queued dead job runs again");
    w.fail(j.lease_id, "boom again").await;
    env.status_until("pr", |s| s.dead == 1).await;
    let n = env
        .c()
        .await
        .purge_dead(pb::DeadRef {
            task: "pr".into(),
            name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 1);
    env.status_until("pr", |s| s.dead == 0).await;
}

async fn scenario_run_job_and_drop(env: Env) {
    let refused = env.c().await.run_job(job("rj", "x")).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "no worker anywhere"
    );
    assert_eq!(reason(&refused), "NO_WORKER");
    let mut w = env.worker("rj", 2).await;
    let mut c = env.c().await;
    let call = tokio::spawn(async move { c.run_job(job("rj", "x")).await });
    let j = w.next_job().await;
    w.done(j.lease_id, b"answer").await;
    let r = within(20, call).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"answer");
    // DropTask is refused while any node has a worker of the task.
    let mut later = job("rj", "y");
    later.sched_at_ms = common::now_ms() + 3_600_000;
    env.c().await.submit_job(later).await.unwrap();
    let refused = env
        .c()
        .await
        .drop_task(pb::DropTaskRequest { task: "rj".into() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&refused), "WORKERS_PRESENT");
    drop(w);
    within(20, async {
        loop {
            match env
                .c()
                .await
                .drop_task(pb::DropTaskRequest { task: "rj".into() })
                .await
            {
                Ok(r) => {
                    assert_eq!(r.into_inner().removed, 1);
                    return;
                }
                Err(e) => assert_eq!(e.code(), tonic::Code::FailedPrecondition),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn scenario_dump_load_settings(env: Env) {
    let later = common::now_ms() + 3_600_000;
    for n in ["d1", "d2", "d3"] {
        let mut j = job("dl", n);
        j.sched_at_ms = later;
        j.args = n.as_bytes().to_vec().into();
        env.c().await.submit_job(j).await.unwrap();
    }
    let mut dumped = Vec::new();
    let mut s = env
        .c()
        .await
        .dump(pb::DumpRequest {})
        .await
        .unwrap()
        .into_inner();
    while let Some(d) = s.message().await.unwrap() {
        dumped.push(d);
    }
    let names: HashSet<String> = dumped
        .iter()
        .map(|d| d.job.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names, ["d1", "d2", "d3"].map(String::from).into());
    for n in ["d1", "d2", "d3"] {
        env.c().await.remove_job(key("dl", n)).await.unwrap();
    }
    env.status_until("dl", |s| s.scheduled == 0).await;
    let loaded = env
        .c()
        .await
        .load(tokio_stream::iter(dumped))
        .await
        .unwrap()
        .into_inner()
        .loaded;
    assert_eq!(loaded, 3);
    let j = env
        .c()
        .await
        .get_job(key("dl", "d2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&j.args[..], b"d2");
    assert_eq!(j.sched_at_ms, later);

    // A job submitted without a timeout takes the setting current at submit, on a node
    // that is not the one whose setting changes below.
    let mut other = client(env.addrs[env.addrs.len() - 1]).await;
    other.submit_job(job("st", "early")).await.unwrap();
    // A setting changed on one node holds on every node.
    env.c()
        .await
        .set_config(pb::SetConfigRequest {
            key: "timeout".into(),
            value: 42,
        })
        .await
        .unwrap();
    for &a in &env.addrs {
        let mut c = client(a).await;
        within(10, async {
            loop {
                if setting(&mut c, "timeout").await == Some(42) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    // ... and applies to jobs submitted without a timeout of their own from then on. The
    // one submitted before keeps the 600 s it was given: a change of the setting does not
    // reach jobs already stored, on one node or on any node of a cluster.
    env.c().await.submit_job(job("st", "t")).await.unwrap();
    let shown = other
        .get_job(key("st", "early"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.timeout_ms, 600_000, "GetJob after the change");
    let mut w = env.worker("st", 1).await;
    let mut leased = BTreeMap::new();
    for _ in 0..2 {
        let j = w.next_job().await;
        leased.insert(j.name.clone(), j.timeout_ms);
        w.done(j.lease_id, b"").await;
    }
    assert_eq!(
        leased,
        BTreeMap::from([("early".to_string(), 600_000), ("t".to_string(), 42_000)]),
        "the lease length each job was dispatched with"
    );
}

async fn scenario_every_submit_path_runs_each_job_once(env: Env) {
    let mut c = env.c().await;
    c.submit_jobs(pb::SubmitJobsRequest {
        jobs: (0..40).map(|i| job("sp", &format!("m{i}"))).collect(),
    })
    .await
    .unwrap();
    for i in 0..20 {
        env.c()
            .await
            .submit_job(job("sp", &format!("u{i}")))
            .await
            .unwrap();
    }
    let stream = tokio_stream::iter((0..40).map(|i| job("sp", &format!("s{i}"))));
    let mut acks = env
        .c()
        .await
        .submit_stream(stream)
        .await
        .unwrap()
        .into_inner();
    let mut ids = HashSet::new();
    while let Some(r) = acks.message().await.unwrap() {
        for a in r.acks {
            assert_eq!(a.error_code, "", "{a:?}");
            ids.insert(a.job_id);
        }
    }
    assert_eq!(ids.len(), 40, "distinct ids for every streamed job");
    let mut workers = vec![env.worker("sp", 4).await, env.worker("sp", 4).await];
    let ran = run_all(&mut workers, 100).await;
    let twice: Vec<_> = ran.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    env.status_until("sp", |s| {
        s.pending == 0 && s.running == 0 && s.scheduled == 0
    })
    .await;
}

/// Every page of a ListJobs, each asked of a random node.
async fn list_all(env: &Env, req: pb::ListJobsRequest) -> Vec<pb::Job> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = env
            .c()
            .await
            .list_jobs(pb::ListJobsRequest {
                page_token: token,
                ..req.clone()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(r.jobs);
        if r.next_page_token.is_empty() {
            return out;
        }
        token = r.next_page_token;
    }
}

async fn scenario_list_jobs_pages_every_state_in_order(env: Env) {
    let later = common::now_ms() + 3_600_000;
    let mut doomed = job("lj", "doomed");
    doomed.retry = Some(pb::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    });
    env.c().await.submit_job(doomed).await.unwrap();
    let mut w = env.worker("lj", 1).await;
    let j = w.next_job().await;
    w.fail(j.lease_id, "boom").await;
    env.status_until("lj", |s| s.dead == 1).await;
    env.c().await.submit_job(job("lj", "held")).await.unwrap();
    let held = w.next_job().await;
    assert_eq!(held.name, "held");
    let jobs = (0..40)
        .map(|i| {
            let mut j = job("lj", &format!("p{i:02}"));
            j.priority = (i * 7) % 5;
            j.sched_at_ms = common::now_ms() - 10_000 + (i as i64 * 37) % 1_000;
            j
        })
        .chain((0..4).map(|i| {
            let mut j = job("lj", &format!("s{i}"));
            j.sched_at_ms = later - i as i64;
            j
        }))
        .collect();
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest { jobs })
        .await
        .unwrap();
    env.status_until("lj", |s| {
        s.pending == 40 && s.scheduled == 4 && s.running == 1 && s.dead == 1
    })
    .await;
    let all = list_all(
        &env,
        pb::ListJobsRequest {
            task: "lj".into(),
            page_size: 6,
            ..Default::default()
        },
    )
    .await;
    let names: Vec<&str> = all.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(all.len(), 46, "each job once: {names:?}");
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 46);
    assert_eq!(names[0], "held");
    assert_eq!(all[0].state, pb::JobState::Running as i32);
    let pending = &all[1..41];
    assert!(pending
        .iter()
        .all(|j| j.state == pb::JobState::Pending as i32));
    let key = |j: &pb::Job| (-j.priority, j.sched_at_ms, j.id);
    assert!(
        pending.windows(2).all(|w| key(&w[0]) < key(&w[1])),
        "pending in run order"
    );
    assert_eq!(
        &names[41..45],
        ["s3", "s2", "s1", "s0"],
        "scheduled by due time"
    );
    assert_eq!((names[45], all[45].last_error.as_str()), ("doomed", "boom"));
    // One state and a name prefix.
    let p1 = list_all(
        &env,
        pb::ListJobsRequest {
            task: "lj".into(),
            state: pb::JobState::Pending as i32,
            name_prefix: "p1".into(),
            page_size: 3,
            ..Default::default()
        },
    )
    .await;
    let p1: Vec<&str> = p1.iter().map(|j| j.name.as_str()).collect();
    let want: Vec<&str> = names[1..41]
        .iter()
        .copied()
        .filter(|n| n.starts_with("p1"))
        .collect();
    assert_eq!(p1, want);
    let dead = list_all(
        &env,
        pb::ListJobsRequest {
            task: "lj".into(),
            state: pb::JobState::Dead as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    // Refusals name the field.
    for (req, field) in [
        (
            pb::ListJobsRequest {
                task: "lj".into(),
                page_size: 1_001,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListJobsRequest {
                task: "lj".into(),
                page_token: "zzz".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let e = env.c().await.list_jobs(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{e}");
    }
    w.done(held.lease_id, b"ok").await;
}

async fn scenario_removing_a_running_job_cancels_it_on_its_worker(env: Env) {
    let mut w = env.worker("rm", 1).await;
    env.c().await.submit_job(job("rm", "r")).await.unwrap();
    let j = w.next_job().await;
    env.c().await.remove_job(key("rm", "r")).await.unwrap();
    let c = w.next_cancel().await;
    assert_eq!((c.lease_id, c.job_id), (j.lease_id, j.id));
    // Its report is refused: the lease no longer counts.
    w.send(
        j.lease_id,
        pb::outcome::Outcome::Done(pb::Done {
            result: Vec::new().into(),
        }),
    )
    .await;
    let ack = w.next_ack().await;
    assert_ne!(ack.error, "", "a removed job's report is refused");
}

async fn scenario_a_paused_task_holds_its_jobs_until_resumed(env: Env) {
    let t = pb::TaskRef { task: "pz".into() };
    let r = env
        .c()
        .await
        .pause_task(t.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(r.status.unwrap().paused);
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..1000).map(|i| job("pz", &format!("j{i}"))).collect(),
        })
        .await
        .unwrap();
    let mut w = env.worker("pz", 16).await;
    let got = tokio::time::timeout(Duration::from_secs(3), w.next_job()).await;
    assert!(
        got.is_err(),
        "a paused task handed out {:?}",
        got.map(|j| j.name)
    );
    env.status_until("pz", |s| s.paused && s.pending == 1000 && s.running == 0)
        .await;
    let r = env.c().await.resume_task(t).await.unwrap().into_inner();
    assert!(!r.status.unwrap().paused);
    let ran = run_all(std::slice::from_mut(&mut w), 1000).await;
    assert!(ran.values().all(|&n| n == 1), "ran twice");
    env.status_until("pz", |s| !s.paused && s.pending == 0 && s.running == 0)
        .await;
}

/// Flow control holds across the cluster: `max_running 5` with a worker of capacity 10 on
/// every node never has more than 5 jobs out at once (counted by the workers, from a job's
/// arrival to its report), and the limits, keys and bad-value refusals read the same from
/// every node.
async fn scenario_max_running_holds_across_nodes(env: Env) {
    let e = env
        .c()
        .await
        .set_task_limits(pb::SetTaskLimitsRequest {
            task: "lim".into(),
            limits: Some(pb::TaskLimits {
                rate: "0/s".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("rate: "), "{e:?}");
    env.c()
        .await
        .set_task_limits(pb::SetTaskLimitsRequest {
            task: "lim".into(),
            limits: Some(pb::TaskLimits {
                max_running: Some(5),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    // Every node has heard of them before any job exists (a deadline for a loaded machine).
    for &a in &env.addrs {
        within(30, async {
            loop {
                let l = client(a)
                    .await
                    .get_task_limits(pb::TaskRef { task: "lim".into() })
                    .await
                    .unwrap()
                    .into_inner()
                    .limits;
                if l.and_then(|l| l.max_running) == Some(5) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    let n = 60;
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..n)
                .map(|i| pb::SubmitJobRequest {
                    key: format!("acct-{}", i % 3),
                    ..job("lim", &format!("j{i}"))
                })
                .collect(),
        })
        .await
        .unwrap();
    let mut workers = Vec::new();
    for &a in &env.addrs {
        workers.push(Worker::connect(channel(a).await, &["lim"], 10).await);
    }
    // Hold each job 100 ms; count what is out at once.
    let mut out: Vec<(usize, u64, std::time::Instant)> = Vec::new();
    let (mut done, mut max_out) = (0, 0);
    let mut keys = HashSet::new();
    within(120, async {
        while done < n {
            for (i, w) in workers.iter_mut().enumerate() {
                if let Ok(j) = tokio::time::timeout(Duration::from_millis(2), w.next_job()).await {
                    keys.insert(j.key.clone());
                    out.push((i, j.lease_id, std::time::Instant::now()));
                    max_out = max_out.max(out.len());
                }
            }
            let now = std::time::Instant::now();
            let (over, held): (Vec<_>, Vec<_>) = out
                .drain(..)
                .partition(|(_, _, at)| now.duration_since(*at) >= Duration::from_millis(100));
            out = held;
            for (i, lease, _) in over {
                workers[i].done(lease, b"ok").await;
                done += 1;
            }
        }
    })
    .await;
    assert!(max_out <= 5, "{max_out} jobs out at once");
    assert!(max_out >= 2, "the limit let too little run: {max_out}");
    assert_eq!(keys.len(), 3, "keys travel with the jobs: {keys:?}");
    env.status_until("lim", |s| {
        s.pending == 0 && s.running == 0 && s.limits.as_ref().and_then(|l| l.max_running) == Some(5)
    })
    .await;
}

/// Sets `limits` on `task` through a random node and waits until every node has them.
async fn set_limits_everywhere(env: &Env, task: &str, limits: pb::TaskLimits) {
    env.c()
        .await
        .set_task_limits(pb::SetTaskLimitsRequest {
            task: task.into(),
            limits: Some(limits.clone()),
        })
        .await
        .unwrap();
    // A deadline for a loaded machine (the whole suite at once), not a wait.
    for &a in &env.addrs {
        within(30, async {
            loop {
                let l = client(a)
                    .await
                    .get_task_limits(pb::TaskRef { task: task.into() })
                    .await
                    .unwrap()
                    .into_inner()
                    .limits;
                if l.as_ref() == Some(&limits) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// A worker of capacity 10 on every node; each job handed out is held `hold` and reported
/// done. Returns, for each job, its key and when it arrived, in arrival order, and checks
/// at every arrival that no more than `per_key` jobs of one key are out at once.
async fn hold_each(
    env: &Env,
    task: &str,
    n: usize,
    hold: Duration,
    per_key: usize,
) -> Vec<(String, std::time::Instant)> {
    let mut workers = Vec::new();
    for &a in &env.addrs {
        workers.push(Worker::connect(channel(a).await, &[task], 10).await);
    }
    let mut out: Vec<(usize, u64, String, std::time::Instant)> = Vec::new();
    let mut arrivals = Vec::new();
    within(120, async {
        while arrivals.len() < n || !out.is_empty() {
            for (i, w) in workers.iter_mut().enumerate() {
                if let Ok(j) = tokio::time::timeout(Duration::from_millis(2), w.next_job()).await {
                    let at = std::time::Instant::now();
                    let same = out.iter().filter(|o| o.2 == j.key).count() + 1;
                    assert!(same <= per_key, "{same} jobs of key {} out at once", j.key);
                    arrivals.push((j.key.clone(), at));
                    out.push((i, j.lease_id, j.key, at));
                }
            }
            let now = std::time::Instant::now();
            let (over, held): (Vec<_>, Vec<_>) =
                out.drain(..).partition(|o| now.duration_since(o.3) >= hold);
            out = held;
            for (i, lease, _, _) in over {
                workers[i].done(lease, b"ok").await;
            }
        }
    })
    .await;
    arrivals
}

/// Per-key limits and the start rate hold across nodes as on one node.
async fn scenario_per_key_and_rate_limits_hold_across_nodes(env: Env) {
    // One job per key at once: 4 keys of 5 jobs, workers with room for 30.
    set_limits_everywhere(
        &env,
        "pk",
        pb::TaskLimits {
            max_running_per_key: Some(1),
            ..Default::default()
        },
    )
    .await;
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..20)
                .map(|i| pb::SubmitJobRequest {
                    key: format!("k{}", i / 5),
                    ..job("pk", &format!("j{i}"))
                })
                .collect(),
        })
        .await
        .unwrap();
    let arrivals = hold_each(&env, "pk", 20, Duration::from_millis(50), 1).await;
    let keys: HashSet<&str> = arrivals.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 4);

    // 20 starts a second, burst 1: 40 jobs take about 2 s, and no second holds more than 21.
    set_limits_everywhere(
        &env,
        "rl",
        pb::TaskLimits {
            rate: "20/s".into(),
            burst: Some(1),
            ..Default::default()
        },
    )
    .await;
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..40).map(|i| job("rl", &format!("j{i}"))).collect(),
        })
        .await
        .unwrap();
    let arrivals = hold_each(&env, "rl", 40, Duration::ZERO, 40).await;
    let times: Vec<std::time::Instant> = arrivals.iter().map(|(_, t)| *t).collect();
    let span = *times.last().unwrap() - times[0];
    // 39 intervals of 50 ms = 1.95 s; arrival jitter allowed for.
    assert!(
        span >= Duration::from_millis(1_700),
        "40 starts in {span:?}"
    );
    assert!(span <= Duration::from_secs(6), "40 starts took {span:?}");
    for (i, &t) in times.iter().enumerate() {
        let in_a_second = times[i..]
            .iter()
            .take_while(|&&u| u - t < Duration::from_secs(1))
            .count();
        assert!(in_a_second <= 21, "{in_a_second} starts within a second");
    }

    // 10 starts a second per key: two keys of 8 jobs go side by side, each spaced.
    set_limits_everywhere(
        &env,
        "rk",
        pb::TaskLimits {
            rate_per_key: "10/s".into(),
            ..Default::default()
        },
    )
    .await;
    env.c()
        .await
        .submit_jobs(pb::SubmitJobsRequest {
            jobs: (0..16)
                .map(|i| pb::SubmitJobRequest {
                    key: format!("k{}", i % 2),
                    ..job("rk", &format!("j{i}"))
                })
                .collect(),
        })
        .await
        .unwrap();
    let arrivals = hold_each(&env, "rk", 16, Duration::ZERO, 16).await;
    for k in ["k0", "k1"] {
        let t: Vec<std::time::Instant> = arrivals
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, t)| *t)
            .collect();
        // 7 intervals of 100 ms = 0.7 s.
        let span = *t.last().unwrap() - t[0];
        assert!(
            span >= Duration::from_millis(600),
            "key {k}: 8 starts in {span:?}"
        );
    }
    // Side by side, not one key after the other.
    let first: HashSet<&str> = arrivals[..4].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        first.len(),
        2,
        "the first four starts: {:?}",
        &arrivals[..4]
    );
}

/// Runs every job `w` is handed for `secs`; how many times each name ran.
async fn run_for(w: &mut Worker, secs: u64) -> HashMap<String, usize> {
    let mut ran: HashMap<String, usize> = HashMap::new();
    for name in w.run_for(secs).await {
        *ran.entry(name).or_default() += 1;
    }
    ran
}

fn every_second(name: &str, task: &str) -> pb::CreateScheduleRequest {
    pb::CreateScheduleRequest {
        name: name.into(),
        cron: "* * * * * *".into(),
        task: task.into(),
        ..Default::default()
    }
}

/// The tick times (unix ms) of jobs named `NAME@<RFC 3339>`, sorted.
fn ticks(ran: &HashMap<String, usize>) -> Vec<i64> {
    let mut t: Vec<i64> = ran
        .keys()
        .map(|n| {
            let (_, at) = n.split_once('@').unwrap();
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    t.sort();
    t
}

async fn scenario_a_schedule_fires_each_tick_once_pauses_and_resumes(env: Env) {
    let mut w = env.worker("cr", 4).await;
    env.c()
        .await
        .create_schedule(every_second("s", "cr"))
        .await
        .unwrap();
    let ran = run_for(&mut w, 5).await;
    assert!(ran.values().all(|&n| n == 1), "ran twice: {ran:?}");
    let t = ticks(&ran);
    assert!((4..=6).contains(&t.len()), "{t:?}");
    assert!(
        t.windows(2).all(|p| p[1] - p[0] == 1000),
        "a tick missing: {t:?}"
    );
    env.c()
        .await
        .pause_schedule(pb::ScheduleRef { name: "s".into() })
        .await
        .unwrap();
    // Other nodes learn of the pause within their poll (1 s); their CAS already fails.
    let _ = run_for(&mut w, 1).await;
    assert!(run_for(&mut w, 2).await.is_empty(), "fired while paused");
    let r = env
        .c()
        .await
        .resume_schedule(pb::ScheduleRef { name: "s".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.paused);
    assert!(!run_for(&mut w, 3).await.is_empty(), "silent after resume");
    let shown = env
        .c()
        .await
        .get_schedule(pb::ScheduleRef { name: "s".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(shown.last_job.starts_with("s@"), "{shown:?}");
    assert_eq!(shown.next_fire_ms.len(), 5);
    env.c()
        .await
        .delete_schedule(pb::ScheduleRef { name: "s".into() })
        .await
        .unwrap();
}

/// Three nodes race for every tick of a schedule every second; one of them is SIGKILLed
/// half-way. Each tick is enqueued once: ten seconds give ten consecutive ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_enqueue_each_tick_once_across_a_sigkill() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let _tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        // The killed node holds no claims (no worker there), so the TTL only guards the
        // surviving worker's node against giving its claims up under load.
        nodes.push(start_node_ttl(_tmp.path(), &db, &format!("n{i}"), "10s").await);
    }
    let mut w = Worker::connect(channel(nodes[1].1).await, &["ck"], 8).await;
    client(nodes[2].1)
        .await
        .create_schedule(every_second("k", "ck"))
        .await
        .unwrap();
    let mut ran = run_for(&mut w, 5).await;
    nodes[0].0.start_kill().unwrap(); // SIGKILL
    for (name, n) in run_for(&mut w, 6).await {
        *ran.entry(name).or_default() += n;
    }
    assert!(ran.values().all(|&n| n == 1), "ran twice: {ran:?}");
    let t = ticks(&ran);
    assert!(
        t.windows(2).all(|p| p[1] - p[0] == 1000),
        "a tick missing: {t:?}"
    );
    assert!((10..=12).contains(&t.len()), "{t:?}");
    assert!(
        query_i64(&db.url, "SELECT count(*) FROM jobs WHERE task = 'ck'").await <= 1,
        "every tick's job ran but perhaps the newest"
    );
}

/// `--keep-results` in a cluster: a job done on one node shows `done` and its result on
/// every node, and WatchJob there answers at once with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_result_is_readable_from_every_node() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let node = format!("k{i}");
        let args = [
            "--store",
            db.url.as_str(),
            "--node-id",
            node.as_str(),
            "--claim-ttl",
            "2s",
            "--poll-interval",
            "1s",
            "--keep-results",
            "1h",
        ];
        nodes.push(spawn_server(&tmp.path().join(&node), &args).await);
    }
    let mut w = Worker::connect(channel(nodes[0].1).await, &["kp"], 1).await;
    client(nodes[1].1)
        .await
        .submit_job(job("kp", "a"))
        .await
        .unwrap();
    let j = w.next_job().await;
    w.done(j.lease_id, b"kept").await;
    for (_, addr) in &nodes {
        let mut c = client(*addr).await;
        let got = within(10, async {
            loop {
                if let Ok(g) = c.get_job(key("kp", "a")).await {
                    let g = g.into_inner();
                    if g.state == pb::JobState::Done as i32 {
                        return g;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!((&got.result[..], got.id), (&b"kept"[..], j.id));
        assert!(got.finished_at_ms > 0);
        // WatchJob of the finished job answers at once with its result, on every node.
        let mut events = c.watch_job(key("kp", "a")).await.unwrap().into_inner();
        let ev = within(10, events.message()).await.unwrap().unwrap();
        match ev.event.unwrap() {
            pb::job_event::Event::Result(r) => assert_eq!(&r.result[..], b"kept"),
            other => panic!("watching a kept job gave {other:?}"),
        }
    }
}

/// A broadcast task's job, submitted on one node, is claimed by the node whose broadcast
/// workers are free and reaches every one of them (its own lease each); it is over once all
/// have reported. (A run across several nodes' workers at once is not built: per node.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_job_reaches_every_broadcast_worker_of_the_claiming_node() {
    let (_db, _tmp, nodes) = cluster(2).await;
    let (a, b) = (nodes[0].1, nodes[1].1);
    let mut ws = Vec::new();
    for _ in 0..2 {
        ws.push(Worker::connect_with(channel(a).await, &[], &["bcast"], 1).await);
    }
    let mut cb = client(b).await;
    within(10, async {
        while common::task_status(&mut cb, "bcast").await.workers < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let id = cb
        .submit_job(job("bcast", "to all"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let mut leases = HashSet::new();
    let mut got = Vec::new();
    for w in ws.iter_mut() {
        let j = within(20, w.next_job()).await;
        assert_eq!(j.id, id);
        assert!(leases.insert(j.lease_id), "each worker has its own lease");
        got.push(j);
    }
    for (w, j) in ws.iter_mut().zip(&got) {
        w.done(j.lease_id, b"").await;
    }
    within(20, async {
        loop {
            let s = common::task_status(&mut cb, "bcast").await;
            if (s.pending, s.running, s.scheduled) == (0, 0, 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A broadcast job reaches the broadcast workers of every node, not only the claiming one's:
/// the claiming node asks the others to run their parts and combines their outcomes with its
/// own (done if any worker said done). RunJob on a third node hears the combined result,
/// whichever node claimed the job. A node whose worker never answers holds the job only
/// until the job's lease length plus the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_job_reaches_the_broadcast_workers_of_every_node() {
    let (_db, _tmp, nodes) = cluster(3).await;
    let mut wa = Worker::connect_with(channel(nodes[0].1).await, &[], &["bcast"], 1).await;
    let mut wb = Worker::connect_with(channel(nodes[1].1).await, &[], &["bcast"], 1).await;
    let mut cc = client(nodes[2].1).await;
    within(10, async {
        while common::task_status(&mut cc, "bcast").await.workers < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Node a's worker says done, node b's fails: done, with a's result.
    let mut runner = cc.clone();
    let run = tokio::spawn(async move { runner.run_job(job("bcast", "to every node")).await });
    let ja = within(20, wa.next_job()).await;
    let jb = within(20, wb.next_job()).await;
    assert_eq!((ja.id, &ja.name[..]), (jb.id, "to every node"));
    assert_eq!(&ja.args[..], &jb.args[..]);
    wa.done(ja.lease_id, b"from a").await;
    wb.fail(jb.lease_id, "b failed").await;
    let r = within(20, run).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"from a");
    assert_eq!(r.job_id, ja.id);

    // Node b's worker never answers (its lease is 1 s): the job still ends, done by a.
    let mut quick = job("bcast", "one silent");
    quick.timeout_ms = Some(1_000);
    let mut runner = cc.clone();
    let run = tokio::spawn(async move { runner.run_job(quick).await });
    let ja = within(20, wa.next_job()).await;
    let _jb = within(20, wb.next_job()).await;
    wa.done(ja.lease_id, b"a again").await;
    let r = within(30, run).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"a again");
    common::assert_no_job(&mut cc, "bcast", "one silent").await;

    // Node b dies while its worker holds the job. If a owns it, a stops waiting for b's part
    // at the deadline; if b owned it, its claim expires and a claims and runs it again.
    let mut runner = cc.clone();
    let mut run = tokio::spawn(async move { runner.run_job(job("bcast", "b dies")).await });
    let ja = within(20, wa.next_job()).await;
    let _jb = within(20, wb.next_job()).await;
    let mut nodes = nodes;
    nodes[1].0.kill().await.unwrap();
    wa.done(ja.lease_id, b"a survives").await;
    let r = within(40, async {
        loop {
            tokio::select! {
                r = &mut run => break r,
                j = wa.next_job() => wa.done(j.lease_id, b"a survives").await,
            }
        }
    })
    .await;
    assert_eq!(&r.unwrap().unwrap().into_inner().result[..], b"a survives");
}

/// A broadcast job reaches every broadcast worker, one per node in a cluster (all on the one
/// node otherwise): each gets a lease of the same job, and the job is done (with the
/// done worker's result, heard by RunJob on a random node) once all have reported, though
/// the others failed or asked for later.
async fn scenario_a_broadcast_job_reaches_every_broadcast_worker(env: Env) {
    let mut ws = Vec::new();
    for i in 0..3 {
        let addr = env.addrs[i % env.addrs.len()];
        ws.push(Worker::connect_with(channel(addr).await, &[], &["everywhere"], 1).await);
    }
    for &a in &env.addrs {
        let mut c = client(a).await;
        within(10, async {
            while common::task_status(&mut c, "everywhere").await.workers < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
    let mut c = env.c().await;
    let run = tokio::spawn(async move { c.run_job(job("everywhere", "all of you")).await });
    let mut got = Vec::new();
    for w in ws.iter_mut() {
        got.push(within(20, w.next_job()).await);
    }
    assert!(got
        .iter()
        .all(|j| j.id == got[0].id && j.name == "all of you"));
    // Each has a lease of its own (lease ids are per node, so they may repeat across nodes).
    assert!(got.iter().all(|j| j.lease_id != 0));
    ws[0].fail(got[0].lease_id, "not me").await;
    ws[1].done(got[1].lease_id, b"did it").await;
    ws[2].sched_later(got[2].lease_id, 60_000, 1).await;
    let r = within(30, run).await.unwrap().unwrap().into_inner();
    assert_eq!((r.job_id, &r.result[..]), (got[0].id, &b"did it"[..]));
    common::assert_no_job(&mut env.c().await, "everywhere", "all of you").await;
}

/// Payloads larger than the payload budget's threshold: on one node most of them stay in the
/// store only (`Env` starts it with `--payload-memory 16KiB`) and are read back; a cluster node
/// holds only what it claimed. Either way GetJob, Dump and the worker get every payload whole,
/// and a worker of capacity 1 gets the jobs in due order.
async fn scenario_large_payloads_arrive_whole_in_due_order(env: Env) {
    let payload =
        |i: usize| -> Vec<u8> { (0..6_000).map(|k| ((i * 31 + k * 7) % 251) as u8).collect() };
    let base = common::now_ms() - 3_600_000;
    for k in 0..40usize {
        let i = (k * 17) % 40;
        env.c()
            .await
            .submit_job(pb::SubmitJobRequest {
                args: payload(i).into(),
                sched_at_ms: base + i as i64,
                ..job("big", &format!("b{i:02}"))
            })
            .await
            .unwrap();
    }
    let last = env
        .c()
        .await
        .get_job(key("big", "b39"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.args, payload(39), "GetJob");
    let mut dump = env
        .c()
        .await
        .dump(pb::DumpRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut dumped = 0;
    while let Some(d) = within(10, dump.message()).await.unwrap() {
        let j = d.job.unwrap();
        if j.task == "big" {
            let i: usize = j.name[1..].parse().unwrap();
            assert_eq!(j.args, payload(i), "dumped {}", j.name);
            dumped += 1;
        }
    }
    assert_eq!(dumped, 40);
    let mut w = env.worker("big", 1).await;
    for i in 0..40 {
        let j = w.next_job().await;
        assert_eq!(j.name, format!("b{i:02}"), "due order");
        assert!(j.args == payload(i), "{}'s payload", j.name);
        w.done(j.lease_id, b"").await;
    }
}

/// The JSON face takes a 64-bit number as a JSON number or a string, on every node, and
/// refuses a bad one with a 400 naming the field by its path; a refused body stores nothing
/// on any node.
async fn scenario_json_numbers_come_as_numbers_or_strings(env: Env) {
    use serde_json::{json, Value};
    let http = reqwest::Client::new();
    let call = |addr: SocketAddr, m: &str, body: Value| {
        let req = http
            .post(format!("http://{addr}/taskhive.v1.Scheduler/{m}"))
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap())
        }
    };
    // A day from now: pending, not due.
    let at = now_ms() + 86_400_000;
    for (name, sched, timeout, priority) in [
        ("numbers", json!(at), json!(7000), json!(-3)),
        ("strings", json!(at.to_string()), json!("7000"), json!("-3")),
    ] {
        let body = json!({"task": "jn", "name": name, "schedAtMs": sched, "timeoutMs": timeout,
                          "priority": priority, "retry": {"maxAttempts": 4}});
        let (st, v) = call(env.addr(), "SubmitJob", body).await;
        assert_eq!(st, reqwest::StatusCode::OK, "{name}: {v}");
        for &addr in &env.addrs {
            let (st, v) = call(addr, "GetJob", json!({"task": "jn", "name": name})).await;
            assert_eq!(st, reqwest::StatusCode::OK, "{name} on {addr}: {v}");
            assert_eq!(
                (&v["schedAtMs"], &v["timeoutMs"], &v["priority"]),
                (&json!(at.to_string()), &json!("7000"), &json!(-3)),
                "{name} on {addr}: {v}"
            );
        }
    }
    for (field, bad, why) in [
        ("schedAtMs", json!({"schedAtMs": "soon"}), "invalid digit"),
        (
            "priority",
            json!({"priority": 2_147_483_648_i64}),
            "2147483648",
        ),
        (
            "retry.maxAttempts",
            json!({"retry": {"maxAttempts": -1}}),
            "-1",
        ),
    ] {
        let mut job = json!({"task": "jn", "name": "bad"});
        job.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        for &addr in &env.addrs {
            let (st, v) = call(addr, "SubmitJob", job.clone()).await;
            assert_eq!(st, reqwest::StatusCode::BAD_REQUEST, "{job} on {addr}: {v}");
            let msg = v["message"].as_str().unwrap_or_default();
            assert!(
                msg.starts_with(&format!("body: {field}: ")) && msg.contains(why),
                "{job} on {addr}: {msg:?} should name {field} and say {why:?}"
            );
        }
    }
    for &addr in &env.addrs {
        let (st, v) = call(addr, "GetJob", json!({"task": "jn", "name": "bad"})).await;
        assert_eq!(st, reqwest::StatusCode::NOT_FOUND, "on {addr}: {v}");
    }
}

/// The JSON face's paths on every node: a percent-encoded method name (which goes through the
/// HTTP router, not the direct path) submits on a random node and reads back from every node,
/// and a body over the size limit is refused with the same 413, saying the connection closes,
/// on both paths of every node, storing nothing.
async fn scenario_json_percent_paths_and_oversized_bodies(env: Env) {
    use serde_json::{json, Value};
    let http = reqwest::Client::new();
    let post = |addr: SocketAddr, m: &str, body: reqwest::Body| {
        let req = http
            .post(format!("http://{addr}/taskhive.v1.Scheduler/{m}"))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let (st, close) = (r.status(), r.headers().get("connection").cloned());
            (st, close, r.json::<Value>().await.unwrap())
        }
    };
    let job = |name: &str| json!({"task": "jp", "name": name}).to_string();
    let (st, _, v) = post(env.addr(), "Submit%4Aob", job("pct").into()).await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    for &addr in &env.addrs {
        for m in ["GetJob", "Get%4Aob"] {
            let (st, _, v) = post(addr, m, job("pct").into()).await;
            assert_eq!(st, reqwest::StatusCode::OK, "{m} on {addr}: {v}");
            assert_eq!(v["name"], json!("pct"), "{m} on {addr}: {v}");
        }
    }
    for &addr in &env.addrs {
        for m in ["SubmitJob", "Submit%4Aob"] {
            // Refused from its declared length, before it is read: the connection closes,
            // and says so.
            let (st, close, v) = post(addr, m, vec![b'x'; 2 << 20].into()).await;
            assert_eq!(
                (st, close, &v["code"], &v["message"]),
                (
                    reqwest::StatusCode::PAYLOAD_TOO_LARGE,
                    Some(reqwest::header::HeaderValue::from_static("close")),
                    &json!("PAYLOAD_TOO_LARGE"),
                    &json!("body: over the size limit")
                ),
                "{m} on {addr}"
            );
        }
    }
    for &addr in &env.addrs {
        let (st, _, v) = post(addr, "Status", json!({"task": "jp"}).to_string().into()).await;
        assert_eq!(st, reqwest::StatusCode::OK, "on {addr}: {v}");
        let held: u64 = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                ["pending", "scheduled", "running", "dead"]
                    .iter()
                    .map(|k| t[k].as_str().unwrap_or("0").parse::<u64>().unwrap())
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(held, 1, "on {addr}: only the one job is held: {v}");
    }
    // Every node's port dates its HTTP/2 JSON answers and leaves gRPC answers undated.
    for &addr in &env.addrs {
        let date = h2_answer_date(addr, "POST", "/taskhive.v1.Scheduler/Status", "{}").await;
        assert!(
            date.as_ref().is_some_and(is_http_date),
            "on {addr}: {date:?}"
        );
        let mut c = SchedulerClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let r = c.submit_job(common::job("jp", "undated")).await.unwrap();
        assert!(r.metadata().get("date").is_none(), "on {addr}: {r:?}");
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod one_node {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::one_node().await).await;
                }
            )*
        }
        mod three_nodes {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::cluster().await).await;
                }
            )*
        }
    };
}

/// WatchJob on every node and RunJobStream on a random node hear every chunk, in order, and
/// the result of a job whose worker is on a random node; chunks and results larger than a PostgreSQL
/// notification (8,000 bytes) arrive whole.
async fn scenario_watchers_hear_data_and_result_from_any_node(env: Env) {
    use pb::job_event::Event;
    let mut w = env.worker("wt", 2).await;
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Vec<u8>> = vec![b"one".to_vec(), big.clone(), b"three".to_vec()];
    let result: Vec<u8> = big.iter().rev().copied().collect();

    async fn stream_and_finish(w: &mut Worker, j: &pb::Job, chunks: &[Vec<u8>], result: &[u8]) {
        for c in chunks {
            w.send_msg(pb::worker_message::Msg::Data(pb::WorkData {
                lease_id: j.lease_id,
                data: c.clone().into(),
            }))
            .await;
        }
        w.done(j.lease_id, result).await;
    }
    async fn events(s: &mut tonic::Streaming<pb::JobEvent>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = within(20, s.message()).await.unwrap() {
            out.push(e.event.unwrap());
        }
        out
    }
    fn expected(chunks: &[Vec<u8>], result: &[u8], got: &[Event]) {
        let data: Vec<&[u8]> = got
            .iter()
            .filter_map(|e| match e {
                Event::Data(d) => Some(&d[..]),
                _ => None,
            })
            .collect();
        let want: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        assert_eq!(data, want, "every chunk, whole and in order");
        match got.last().unwrap() {
            Event::Result(r) => assert_eq!(&r.result[..], result, "the worker's result"),
            other => panic!("ended with {other:?}"),
        }
    }

    // WatchJob first, on every node (so in a cluster some watchers are on other nodes than
    // the worker's), then the submit on a random node.
    let mut watches = Vec::new();
    for &a in &env.addrs {
        let s = client(a).await.watch_job(key("wt", "w1")).await.unwrap();
        watches.push(s.into_inner());
    }
    env.c().await.submit_job(job("wt", "w1")).await.unwrap();
    let j = within(20, w.next_job()).await;
    stream_and_finish(&mut w, &j, &chunks, &result).await;
    for watch in &mut watches {
        expected(&chunks, &result, &events(watch).await);
    }

    // RunJobStream: submit and watch in one call.
    let mut run = env
        .c()
        .await
        .run_job_stream(job("wt", "w2"))
        .await
        .unwrap()
        .into_inner();
    let j = within(20, w.next_job()).await;
    stream_and_finish(&mut w, &j, &chunks, &result).await;
    expected(&chunks, &result, &events(&mut run).await);
}

/// A named lock of count 1 is held by at most one job at a time across every worker and
/// node; a job queued for it (acquire answered false, so its lease ended) comes back once
/// the holder lets go, and then holds it; every job runs to done.
async fn scenario_a_named_lock_holds_across_nodes(env: Env) {
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(env.worker("lk", 2).await);
    }
    let n = 6;
    for i in 0..n {
        env.c()
            .await
            .submit_job(job("lk", &format!("l{i}")))
            .await
            .unwrap();
    }
    let mut held: Option<(usize, pb::Job)> = None;
    let mut done: HashSet<String> = HashSet::new();
    let mut queued = 0;
    within(60, async {
        while done.len() < n {
            let mut got_any = false;
            for (i, w) in workers.iter_mut().enumerate() {
                let Ok(j) = tokio::time::timeout(Duration::from_millis(50), w.next_job()).await
                else {
                    continue;
                };
                got_any = true;
                if w.acquire(j.lease_id, "L", 1).await {
                    if let Some((_, h)) = &held {
                        panic!("{} got lock L while {} holds it", j.name, h.name);
                    }
                    held = Some((i, j));
                } else {
                    queued += 1;
                }
            }
            if !got_any {
                // Nothing new comes: the holder finishes, which lets the lock go.
                if let Some((i, j)) = held.take() {
                    workers[i].done(j.lease_id, b"ok").await;
                    done.insert(j.name);
                }
            }
        }
    })
    .await;
    assert!(queued > 0, "some job had to wait for the lock");
}

/// Without `--worker-threads` each node, SQLite or PostgreSQL, runs one runtime worker per
/// CPU it may run on (the runtime is built before the store is chosen).
async fn scenario_every_node_runs_a_runtime_worker_per_cpu(env: Env) {
    let cpus = std::thread::available_parallelism().unwrap().get();
    for &a in &env.addrs {
        let metrics = common::metrics_from(a, None).await;
        assert_eq!(
            common::metric(&metrics, "taskhive_runtime_workers"),
            cpus as f64,
            "node {a}"
        );
    }
}

conformance!(
    scenario_every_node_runs_a_runtime_worker_per_cpu,
    scenario_a_named_lock_holds_across_nodes,
    scenario_watchers_hear_data_and_result_from_any_node,
    scenario_submit_replace_schedule_status,
    scenario_priorities_done_fail_dead_retry,
    scenario_run_job_and_drop,
    scenario_dump_load_settings,
    scenario_every_submit_path_runs_each_job_once,
    scenario_list_jobs_pages_every_state_in_order,
    scenario_removing_a_running_job_cancels_it_on_its_worker,
    scenario_a_schedule_fires_each_tick_once_pauses_and_resumes,
    scenario_a_paused_task_holds_its_jobs_until_resumed,
    scenario_max_running_holds_across_nodes,
    scenario_per_key_and_rate_limits_hold_across_nodes,
    scenario_a_broadcast_job_reaches_every_broadcast_worker,
    scenario_large_payloads_arrive_whole_in_due_order,
    scenario_json_numbers_come_as_numbers_or_strings,
    scenario_json_percent_paths_and_oversized_bodies,
);

/// The machine reason of a refusal (`google.rpc.ErrorInfo` in the status details).
fn reason(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// A load job saved on one node is listed (and can be run) by every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_job_saved_on_one_node_is_seen_by_every_node() {
    let (_db, _tmp, nodes) = cluster(3).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/job", nodes[0].1))
        .body(r#"{"name":"everywhere","host":"http://127.0.0.1:9","run_for_sec":1,"tasks":[{"task_class":"http.get","weight":1}]}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    for (_, addr) in &nodes {
        // Generous: the other scenarios' clusters share this machine's two cores.
        within(30, async {
            loop {
                let jobs: serde_json::Value = http
                    .get(format!("http://{addr}/jobs"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if jobs.to_string().contains("everywhere") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}
