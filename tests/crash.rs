//! Every acknowledged submit survives `kill -9` of the server, round after round.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::child::spawn_server;
use common::*;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tonic::transport::Channel;

async fn client(addr: std::net::SocketAddr) -> SchedulerClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    SchedulerClient::new(ch)
}

async fn assert_all_present(addr: std::net::SocketAddr, acked: &[String]) {
    let mut c = client(addr).await;
    for name in acked {
        let r = c
            .get_job(pb::JobRef {
                job_id: 0,
                task: "crash".into(),
                name: name.clone(),
            })
            .await;
        assert!(r.is_ok(), "acknowledged job {name} lost: {:?}", r.err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_jobs_survive_sigkill() {
    let rounds: usize = std::env::var("TASKHIVE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..rounds {
        let (mut child, addr) = spawn_server(&dir, &[]).await;
        let before = acked.lock().unwrap().clone();
        assert_all_present(addr, &before).await;
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
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
        for t in tasks {
            within(30, t).await.unwrap();
        }
    }
    let (_child, addr) = spawn_server(&dir, &[]).await;
    let all = acked.lock().unwrap().clone();
    assert!(all.len() >= 300 * rounds);
    assert_all_present(addr, &all).await;
}
