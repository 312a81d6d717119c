//! Cluster test helpers: workers that record every attempt and move to another node when
//! theirs goes away.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// One attempt as a worker saw it.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub job: u64,
    pub name: String,
    pub start: Instant,
    pub end: Instant,
}

/// A worker that runs jobs for a while, records every attempt, and reconnects to a random
/// live node when its node goes away.
pub async fn worker_loop(
    task: &'static str,
    nodes: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    log: Arc<Mutex<Vec<Attempt>>>,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<tokio::sync::Notify>,
) {
    loop {
        let addr = {
            let live: Vec<SocketAddr> = nodes.lock().unwrap().iter().flatten().copied().collect();
            live[rand::rng().random_range(0..live.len())]
        };
        let Ok(ch) = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (tx, rx) = mpsc::channel(1024);
        tx.send(pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Hello(pb::WorkerHello {
                tasks: vec![task.into()],
                capacity: 8,
                name: "cluster-test".into(),
                broadcast_tasks: vec![],
            })),
        })
        .await
        .unwrap();
        let Ok(resp) = SchedulerClient::new(ch).work(ReceiverStream::new(rx)).await else {
            continue;
        };
        let mut inbound = resp.into_inner();
        let mut leases: HashMap<u64, String> = HashMap::new();
        loop {
            let m = tokio::select! {
                m = inbound.message() => m,
                _ = stop.notified() => return,
            };
            let Ok(Some(m)) = m else { break };
            match m.msg {
                Some(pb::server_message::Msg::Job(j)) => {
                    let start = Instant::now();
                    let ms = rand::rng().random_range(0..3);
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    let end = Instant::now();
                    log.lock().unwrap().push(Attempt {
                        job: j.id,
                        name: j.name.clone(),
                        start,
                        end,
                    });
                    leases.insert(j.lease_id, j.name);
                    let _ = tx
                        .send(pb::WorkerMessage {
                            msg: Some(pb::worker_message::Msg::Result(pb::WorkerResult {
                                lease_id: j.lease_id,
                                outcome: Some(pb::Outcome {
                                    outcome: Some(pb::outcome::Outcome::Done(pb::Done {
                                        result: b"ok".to_vec().into(),
                                    })),
                                }),
                            })),
                        })
                        .await;
                }
                Some(pb::server_message::Msg::Ack(a)) => {
                    if let Some(name) = leases.remove(&a.lease_id) {
                        if a.error.is_empty() {
                            acked.lock().unwrap().insert(name);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Asserts that no job's attempts overlap in time (no job held by two live leases at
/// once); returns how many jobs ran more than once.
pub fn assert_no_overlap(log: &[Attempt]) -> usize {
    let mut by_job: HashMap<u64, Vec<&Attempt>> = HashMap::new();
    for a in log {
        by_job.entry(a.job).or_default().push(a);
    }
    let mut repeated = 0;
    for (id, attempts) in by_job.iter_mut() {
        attempts.sort_by_key(|a| a.start);
        if attempts.len() > 1 {
            repeated += 1;
        }
        for w in attempts.windows(2) {
            assert!(
                w[1].start >= w[0].end,
                "job {id} ({}): attempts overlap ({:?} .. {:?} and {:?} .. {:?})",
                w[0].name,
                w[0].start,
                w[0].end,
                w[1].start,
                w[1].end
            );
        }
    }
    repeated
}

/// A random live node.
pub fn pick(nodes: &Mutex<Vec<Option<SocketAddr>>>) -> SocketAddr {
    let live: Vec<SocketAddr> = nodes.lock().unwrap().iter().flatten().copied().collect();
    live[rand::rng().random_range(0..live.len())]
}

/// A connected channel to a node.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A scheduler client of a node.
pub async fn client(addr: SocketAddr) -> SchedulerClient<Channel> {
    SchedulerClient::new(channel(addr).await)
}

/// Runs a blocking query against the test database (off the async threads); the first
/// column of its one row.
pub async fn query_one<T>(url: &str, sql: &str) -> T
where
    T: for<'a> ::postgres::types::FromSql<'a> + Send + 'static,
{
    let (url, sql) = (url.to_string(), sql.to_string());
    tokio::task::spawn_blocking(move || {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_one(sql.as_str(), &[]).unwrap().get::<_, T>(0)
    })
    .await
    .unwrap()
}

/// [`query_one`] of a count or a number.
pub async fn query_i64(url: &str, sql: &str) -> i64 {
    query_one(url, sql).await
}
