//! `serve --worker-threads`: the server runs on exactly that many runtime workers (as its
//! `taskhive_runtime_workers` metric says), serves jobs on them, refuses a count it cannot
//! use, and without the flag runs one per CPU it may run on.

mod common;

use std::path::Path;

use common::child::{bin, channel_at, client_at, spawn_server};
use common::*;

async fn serves_a_job_on(threads: u16, dir: &Path) {
    let n = threads.to_string();
    let (_child, addr) = spawn_server(dir, &["--worker-threads", &n, "--min-free-disk", "0"]).await;
    let metrics = metrics_from(addr, None).await;
    assert_eq!(
        metric(&metrics, "taskhive_runtime_workers"),
        f64::from(threads)
    );

    let ch = channel_at(addr).await;
    let mut w = Worker::connect(ch, &["threads"], 1).await;
    let mut c = client_at(addr).await;
    let run = tokio::spawn(async move { c.run_job(job("threads", "one")).await });
    let j = within(30, w.next_job()).await;
    assert_eq!(j.name, "one");
    w.done(j.lease_id, b"ran").await;
    let r = within(30, run).await.unwrap().unwrap().into_inner();
    assert_eq!(&r.result[..], b"ran");
}

#[tokio::test]
async fn the_server_runs_on_as_many_workers_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    serves_a_job_on(1, &dir.path().join("one")).await;
    serves_a_job_on(3, &dir.path().join("three")).await;
}

#[tokio::test]
async fn by_default_the_server_runs_a_worker_per_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = spawn_server(dir.path(), &["--min-free-disk", "0"]).await;
    let metrics = metrics_from(addr, None).await;
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(metric(&metrics, "taskhive_runtime_workers"), cpus as f64);
}

#[tokio::test]
async fn zero_workers_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--worker-threads",
            "0",
            "--data",
        ])
        .arg(dir.path())
        .output();
    let out = within(30, out).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--worker-threads"), "{err}");
}
