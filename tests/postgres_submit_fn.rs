//! `taskhive_submit(...)`: an application enqueues a job inside its own PostgreSQL
//! transaction, and a real cluster node (child process) with a real Work-stream worker runs
//! it only if that transaction commits.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::child::{client_at, spawn_server};
use common::pg::{fresh_db, PgDb};
use common::{job, Worker};
use tokio::process::Child;
use tonic::transport::Channel;

/// A cluster node whose slow poll never fires during a test: only `NOTIFY` brings news.
async fn start_node(dir: &Path, db: &PgDb) -> (Child, SocketAddr) {
    spawn_server(
        dir,
        &[
            "--store",
            &db.url,
            "--node-id",
            "a",
            "--poll-interval",
            "600s",
        ],
    )
    .await
}

async fn worker(addr: SocketAddr, task: &str) -> Worker {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Worker::connect(ch, &[task], 1).await
}

/// Runs `f` on a sync client of the test database, off the async threads.
async fn with_db<T: Send + 'static>(
    db: &PgDb,
    f: impl FnOnce(&mut ::postgres::Client) -> T + Send + 'static,
) -> T {
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        f(&mut c)
    })
    .await
    .unwrap()
}

async fn count(db: &PgDb, sql: &'static str) -> i64 {
    with_db(db, move |c| c.query_one(sql, &[]).unwrap().get::<_, i64>(0)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_in_a_transaction_runs_only_if_it_commits() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_node, addr) = start_node(&tmp.path().join("a"), &db).await;
    let mut w = worker(addr, "mail").await;

    // Rolled back: the function ran (and returned an id), but nothing is left of it.
    let id = with_db(&db, |c| {
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(
            "CREATE TABLE orders (id INT PRIMARY KEY); INSERT INTO orders VALUES (41)",
        )
        .unwrap();
        let id: i64 = tx
            .query_one(
                "SELECT taskhive_submit('mail', 'order-41', '\\x01'::bytea)",
                &[],
            )
            .unwrap()
            .get(0);
        tx.rollback().unwrap();
        id
    })
    .await;
    assert!(id > 0);
    assert_eq!(count(&db, "SELECT count(*) FROM jobs").await, 0);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), w.next_job())
            .await
            .is_err(),
        "a rolled-back submit reached a worker"
    );

    // Committed: the worker gets the job through the node (NOTIFY at commit), runs it, and
    // the row is gone once the result is acknowledged.
    let args: Vec<u8> = b"order 42 paid".to_vec();
    let sent = args.clone();
    let id = with_db(&db, move |c| {
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(
            "CREATE TABLE orders (id INT PRIMARY KEY); INSERT INTO orders VALUES (42)",
        )
        .unwrap();
        let id: i64 = tx
            .query_one("SELECT taskhive_submit('mail', 'order-42', $1)", &[&sent])
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        id
    })
    .await;
    let j = w.next_job().await;
    assert_eq!(
        (j.id, j.task.as_str(), j.name.as_str(), &j.args[..]),
        (id as u64, "mail", "order-42", &args[..])
    );
    assert_eq!(
        j.timeout_ms, 600_000,
        "timeout 0 is the default lease length"
    );
    w.done(j.lease_id, b"sent").await;
    // The ack follows the commit of the delete.
    assert_eq!(count(&db, "SELECT count(*) FROM jobs").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1);
}

/// Reads the stored columns the two submit paths must agree on. Both store a job that sets
/// no timeout with the `timeout` setting: the node its own, the function the stored one
/// (else 600 s), which are the same here.
async fn stored(db: &PgDb, name: &'static str) -> Vec<i64> {
    with_db(db, move |c| {
        let r = c
            .query_one(
                "SELECT priority::bigint, max_attempts, backoff_base_ms,
                    backoff_max_ms, timeout_ms, attempts, run_count, dead::int::bigint,
                    wait::int::bigint, (owner IS NULL)::int::bigint, length(last_error)::bigint
                 FROM jobs WHERE task = 'idle' AND name = $1",
                &[&name],
            )
            .unwrap();
        (0..r.len()).map(|i| r.get::<_, i64>(i)).collect()
    })
    .await
}

async fn timeout_of(db: &PgDb, id: i64) -> i64 {
    with_db(db, move |c| {
        c.query_one("SELECT timeout_ms FROM jobs WHERE id = $1", &[&id])
            .unwrap()
            .get(0)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_stores_what_a_cluster_submit_stores() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_node, addr) = start_node(&tmp.path().join("a"), &db).await;
    let mut c = client_at(addr).await;
    c.submit_job(job("idle", "by-grpc")).await.unwrap();
    let by_fn: i64 = with_db(&db, |c| {
        c.query_one("SELECT taskhive_submit('idle', 'by-sql')", &[])
            .unwrap()
            .get(0)
    })
    .await;
    assert_eq!(stored(&db, "by-grpc").await, stored(&db, "by-sql").await);
    assert_eq!(
        stored(&db, "by-sql").await[..5],
        [0, 25, 1_000, 3_600_000, 600_000]
    );
    assert_eq!(timeout_of(&db, by_fn).await, 600_000);

    // Submitting the same name again replaces the unclaimed job in place, as SubmitJob does.
    let again: (i64, Vec<u8>) = with_db(&db, |c| {
        let id: i64 = c
            .query_one(
                "SELECT taskhive_submit('idle', 'by-sql', '\\x02'::bytea, priority => 5)",
                &[],
            )
            .unwrap()
            .get(0);
        let args = c
            .query_one("SELECT args FROM jobs WHERE id = $1", &[&id])
            .unwrap()
            .get(0);
        (id, args)
    })
    .await;
    assert_eq!(again, (by_fn, vec![2u8]));

    // The stored `timeout` setting is the default lease length when set.
    let id: i64 = with_db(&db, |c| {
        c.batch_execute("INSERT INTO config (key, value) VALUES ('timeout', 42)")
            .unwrap();
        c.query_one("SELECT taskhive_submit('idle', 'short')", &[])
            .unwrap()
            .get(0)
    })
    .await;
    assert_eq!(timeout_of(&db, id).await, 42_000);

    // A caller whose search path finds another `jobs` first still reaches the store's.
    let other: i64 = with_db(&db, |c| {
        c.batch_execute(
            "CREATE SCHEMA other; CREATE TABLE other.jobs (x INT);
             SET search_path = other, public",
        )
        .unwrap();
        c.query_one("SELECT taskhive_submit('idle', 'via-other')", &[])
            .unwrap()
            .get(0)
    })
    .await;
    assert_eq!(timeout_of(&db, other).await, 42_000);

    // The gRPC face's checks apply.
    let refused: Vec<String> = with_db(&db, |c| {
        [
            "SELECT taskhive_submit('idle', '')",
            "SELECT taskhive_submit('idle', 'x', timeout_ms => -1)",
            "SELECT taskhive_submit('idle', 'x', max_attempts => 10001)",
            "SELECT taskhive_submit('idle', 'x', backoff_base_ms => 10, backoff_max_ms => 5)",
        ]
        .iter()
        .map(|q| {
            let e = c.query_one(*q, &[]).unwrap_err();
            e.as_db_error()
                .expect("a database error")
                .message()
                .to_string()
        })
        .collect()
    })
    .await;
    for m in &refused {
        assert!(m.starts_with("taskhive_submit: "), "{m}");
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM jobs WHERE name = 'x'").await,
        0
    );
}
