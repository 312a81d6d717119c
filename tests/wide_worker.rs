//! One worker holding more jobs at once than the core's job table keeps without compacting
//! (4,096 slots), on one node and on a cluster node (whose core holds the jobs its workers
//! claimed).
//!
//! The table compacts while it is sparse after a removal (`JobTable::shrink_some`): it moves
//! the job in its last slot into a free one and points the job's id and name entries at the
//! new slot. A worker of capacity 6,000 is handed 6,000 jobs; it finishes every other one
//! first, which leaves the table sparse and moves jobs from its end, and then the rest. Each
//! finish must reach its own job once: a lease whose job's id entry did not follow it is
//! refused, and a job finished twice or not at all shows in the acks and counts. Between the
//! two halves GetJob looks jobs up by name: on one node that reads the core's name index
//! (the entries must have followed their jobs); a cluster node reads the database.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::child::spawn_server;
use common::cluster::{channel, client, query_i64};
use common::pg::fresh_db;
use common::{assert_no_job, job, job_ref, task_status, within, Worker};
use taskhive::pb;

const JOBS: usize = 6_000;
const TASK: &str = "wide";

/// Submits [`JOBS`] jobs at `addr`, has one worker of that capacity take them all and finish
/// them out of order; returns once every finish is acknowledged and the task is empty.
async fn take_all_then_finish_out_of_order(addr: SocketAddr) {
    let mut c = client(addr).await;
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(1_000) {
        let batch = pb::SubmitJobsRequest {
            jobs: chunk.iter().map(|i| job(TASK, &format!("j{i}"))).collect(),
        };
        let acks = c.submit_jobs(batch).await.unwrap().into_inner();
        assert_eq!(acks.jobs.len(), chunk.len());
    }
    let mut w = Worker::connect(channel(addr).await, &[TASK], JOBS as u32).await;
    let mut held = Vec::with_capacity(JOBS);
    while held.len() < JOBS {
        held.push(w.next_job().await);
    }
    let names: HashSet<&str> = held.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names.len(), JOBS, "each job handed out once");
    // By the number in the name, which is the order of submission (and of slots).
    held.sort_by_key(|j| j.name[1..].parse::<usize>().unwrap());
    let (evens, odds): (Vec<_>, Vec<_>) = held.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    // Every other job first, which leaves the table half empty and moves jobs from its end.
    finish(&mut w, evens.iter().map(|(_, j)| *j)).await;
    // The jobs still held are found by name as the jobs they are (their name entries
    // followed them), then finished from the last down.
    let sample: Vec<&pb::Job> = odds.iter().step_by(10).map(|(_, j)| *j).collect();
    for j in &sample {
        let got = c
            .get_job(job_ref(TASK, &j.name))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (got.id, got.state()),
            (j.id, pb::JobState::Running),
            "{}",
            j.name
        );
    }
    finish(&mut w, odds.iter().rev().map(|(_, j)| *j)).await;
    for j in &sample {
        assert_no_job(&mut c, TASK, &j.name).await;
    }
    within(30, async {
        loop {
            let s = task_status(&mut c, TASK).await;
            if (s.pending, s.scheduled, s.running, s.dead) == (0, 0, 0, 0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Reports each of `jobs` done, then waits for every ack: each accepted, each lease once.
async fn finish(w: &mut Worker, jobs: impl Iterator<Item = &pb::Job>) {
    let mut leases = HashSet::new();
    for j in jobs {
        let result = j.name.clone().into_bytes().into();
        w.send(j.lease_id, pb::outcome::Outcome::Done(pb::Done { result }))
            .await;
        leases.insert(j.lease_id);
    }
    while !leases.is_empty() {
        let a = w.next_ack().await;
        assert_eq!(a.error, "", "finish of lease {} refused", a.lease_id);
        assert!(
            leases.remove(&a.lease_id),
            "lease {} acked twice",
            a.lease_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_finishes_each_of_thousands_of_held_jobs_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = spawn_server(&tmp.path().join("one"), &[]).await;
    take_all_then_finish_out_of_order(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_finishes_each_of_thousands_of_claimed_jobs_once() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_a, addr) = spawn_server(
        &tmp.path().join("a"),
        &["--store", &db.url, "--node-id", "a"],
    )
    .await;
    take_all_then_finish_out_of_order(addr).await;
    assert_eq!(
        query_i64(
            &db.url,
            &format!("SELECT count(*) FROM jobs WHERE task = '{TASK}'")
        )
        .await,
        0,
        "every finished job's row is gone"
    );
}
