//! Every acknowledged submit survives `kill -9` of the server, round after round, while
//! workers complete jobs: afterwards each acknowledged job is either still there or was
//! reported done, and no job whose done was acknowledged comes back.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::child::spawn_server;
use common::*;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

type Names = Arc<Mutex<HashSet<String>>>;

/// A Work-stream worker that reports done for every other job (the rest it holds, so they
/// stay stored and are handed out again after each restart) until the server dies. A name
/// goes into `reported` before its done is sent, into `done` once the done is acknowledged.
async fn work(addr: std::net::SocketAddr, reported: Names, done: Names) {
    let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
    else {
        return;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let hello = pb::worker_message::Msg::Hello(pb::WorkerHello {
        tasks: vec!["crash".into()],
        capacity: 100_000,
        name: "crash".into(),
        broadcast_tasks: vec![],
    });
    tx.send(pb::WorkerMessage { msg: Some(hello) })
        .await
        .unwrap();
    let Ok(resp) = SchedulerClient::new(ch).work(ReceiverStream::new(rx)).await else {
        return;
    };
    let mut inbound = resp.into_inner();
    let mut leases: HashMap<u64, String> = HashMap::new();
    while let Ok(Some(m)) = inbound.message().await {
        match m.msg {
            Some(pb::server_message::Msg::Job(j)) if j.id % 2 == 0 => {
                reported.lock().unwrap().insert(j.name.clone());
                leases.insert(j.lease_id, j.name);
                let result = pb::worker_message::Msg::Result(pb::WorkerResult {
                    lease_id: j.lease_id,
                    outcome: Some(pb::Outcome {
                        outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
                    }),
                });
                if tx
                    .send(pb::WorkerMessage { msg: Some(result) })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(pb::server_message::Msg::Ack(a)) => {
                if let Some(name) = leases.remove(&a.lease_id) {
                    if a.error.is_empty() {
                        done.lock().unwrap().insert(name);
                    }
                }
            }
            _ => {}
        }
    }
}

async fn client(addr: std::net::SocketAddr) -> SchedulerClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SchedulerClient::new(ch)
}

/// Every acknowledged job is stored unless a worker reported it done; none acknowledged
/// done is stored. Returns how many are still stored.
async fn assert_none_lost(
    addr: std::net::SocketAddr,
    acked: &[String],
    reported: &HashSet<String>,
    done: &HashSet<String>,
) -> usize {
    let mut c = client(addr).await;
    let mut stored = 0;
    for name in acked {
        let r = c
            .get_job(pb::JobRef {
                job_id: 0,
                task: "crash".into(),
                name: name.clone(),
            })
            .await;
        match r {
            Ok(_) => {
                assert!(
                    !done.contains(name),
                    "job {name} was acknowledged done but is back"
                );
                stored += 1;
            }
            Err(e) => assert!(
                reported.contains(name),
                "acknowledged job {name} lost (never reported done): {e:?}"
            ),
        }
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_jobs_survive_sigkill() {
    let rounds: usize = std::env::var("TASKHIVE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let reported: Names = Default::default();
    let done: Names = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..rounds {
        let (mut child, addr) = spawn_server(&dir, &[]).await;
        let before = acked.lock().unwrap().clone();
        let (r, d) = (
            reported.lock().unwrap().clone(),
            done.lock().unwrap().clone(),
        );
        assert_none_lost(addr, &before, &r, &d).await;
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        let workers: Vec<_> = (0..2)
            .map(|_| tokio::spawn(work(addr, reported.clone(), done.clone())))
            .collect();
        for k in 0..4 {
            let (stop, count, enough, acked) =
                (stop.clone(), count.clone(), enough.clone(), acked.clone());
            let mut c = client(addr).await;
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("r{round}-k{k}-{i}");
                    i += 1;
                    let mut req = job("crash", &name);
                    req.args = vec![b'x'; 100].into();
                    match c.submit_job(req).await {
                        Ok(_) => {
                            acked.lock().unwrap().push(name);
                            if count.fetch_add(1, Ordering::Relaxed) + 1 == 300 {
                                enough.notify_one();
                            }
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        within(60, enough.notified()).await;
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks.into_iter().chain(workers) {
            within(30, t).await.unwrap();
        }
    }
    let (_child, addr) = spawn_server(&dir, &[]).await;
    let all = acked.lock().unwrap().clone();
    assert!(all.len() >= 300 * rounds);
    let (r, d) = (
        reported.lock().unwrap().clone(),
        done.lock().unwrap().clone(),
    );
    let stored = assert_none_lost(addr, &all, &r, &d).await;
    eprintln!(
        "{rounds} kills: {} acknowledged, {} acknowledged done, {stored} still stored",
        all.len(),
        d.len()
    );
    // The workers really worked: some jobs finished, the ones they held are still there.
    assert!(
        !d.is_empty() && stored > 0,
        "no job was completed or none held"
    );
}
