//! A cluster node cut off from PostgreSQL (through a TCP proxy the test controls) gives its
//! claims up before they expire: its workers are told to stop, its late reports change
//! nothing and are refused, another node runs the jobs, and no job is held by two live
//! leases at once.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::child::spawn_server;
use common::cluster::{channel, query_i64};
use common::pg::fresh_db;
use common::{job, within, Worker};
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tokio::net::{TcpListener, TcpStream};

/// Forwards connections to `target` until cut: then every open connection is closed and
/// new ones are dropped at once, until healed.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    epoch: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (epoch, _) = tokio::sync::watch::channel(0u64);
        let (c, e) = (cut.clone(), epoch.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = l.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let mut cut_rx = e.subscribe();
                tokio::spawn(async move {
                    let Ok(mut out) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, cut, epoch }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// (job id, start, end) of one attempt as its worker saw it.
type Attempts = Arc<Mutex<Vec<(u64, Instant, Instant, &'static str)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_gives_its_jobs_up_before_another_runs_them() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let pg: url_parts::Parts = url_parts::parse(&db.url);
    let proxy = Proxy::start(pg.addr).await;
    let via_proxy = db
        .url
        .replace(&pg.addr.to_string(), &proxy.addr.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let flags = |node: &'static str, url: &str| {
        vec![
            "--store".to_string(),
            url.to_string(),
            "--node-id".into(),
            node.into(),
            "--claim-ttl".into(),
            "1500ms".into(),
            "--poll-interval".into(),
            "200ms".into(),
        ]
    };
    let fa = flags("a", &via_proxy);
    let fb = flags("b", &db.url);
    let (_a, addr_a) = spawn_server(
        &tmp.path().join("a"),
        &fa.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    )
    .await;
    let (_b, addr_b) = spawn_server(
        &tmp.path().join("b"),
        &fb.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    )
    .await;

    // Node a's worker holds every job it gets until told to stop.
    let mut wa = Worker::connect(channel(addr_a).await, &["part"], 3).await;
    let mut c = SchedulerClient::new(channel(addr_b).await);
    for i in 0..3 {
        c.submit_job(job("part", &format!("p{i}"))).await.unwrap();
    }
    let attempts: Attempts = Arc::new(Mutex::new(Vec::new()));
    let mut held = Vec::new();
    for _ in 0..3 {
        let j = wa.next_job().await;
        held.push((j, Instant::now()));
    }

    // Cut a off. Within two thirds of the claim TTL it gives its claims up: its worker is
    // told to stop each job (the attempt ends there).
    let cut_at = Instant::now();
    proxy.cut();
    for _ in 0..3 {
        let cancel = wa.next_cancel().await;
        let end = Instant::now();
        let (j, start) = held
            .iter()
            .find(|(j, _)| j.lease_id == cancel.lease_id)
            .expect("cancel of a held lease");
        attempts.lock().unwrap().push((j.id, *start, end, "a"));
    }
    let gave_up = cut_at.elapsed();
    assert!(
        gave_up < Duration::from_millis(1500),
        "claims given up after {gave_up:?}, not before they expire"
    );
    // Late reports from the cut-off node change nothing and are not acknowledged.
    for (j, _) in &held {
        wa.send(
            j.lease_id,
            pb::outcome::Outcome::Done(pb::Done {
                result: Vec::new().into(),
            }),
        )
        .await;
        let ack = wa.next_ack().await;
        assert_ne!(ack.error, "", "a report after giving the job up is refused");
    }

    // Node b runs the jobs once a's claims expired.
    let mut wb = Worker::connect(channel(addr_b).await, &["part"], 3).await;
    for _ in 0..3 {
        let j = wb.next_job().await;
        let start = Instant::now();
        wb.done(j.lease_id, b"by b").await;
        attempts
            .lock()
            .unwrap()
            .push((j.id, start, Instant::now(), "b"));
    }
    proxy.heal();
    within(30, async {
        while query_i64(&db.url, "SELECT count(*) FROM jobs").await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // No job was held by two live leases at once.
    let mut log = attempts.lock().unwrap().clone();
    log.sort_by_key(|a| (a.0, a.1));
    for w in log.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[1].1 >= w[0].2,
                "job {}: attempts on {} and {} overlap",
                w[0].0,
                w[0].3,
                w[1].3
            );
        }
    }
    assert_eq!(log.iter().filter(|a| a.3 == "b").count(), 3);

    // Node a is back with its database: it serves again.
    let mut ca = SchedulerClient::new(channel(addr_a).await);
    within(30, async {
        loop {
            if ca.submit_job(job("part", "after")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let j = within(30, async {
        tokio::select! {
            j = wa.next_job() => j,
            j = wb.next_job() => j,
        }
    })
    .await;
    assert_eq!(j.name, "after");
}

/// The host and port of a `postgres://user@host:port/db` URL.
mod url_parts {
    use std::net::SocketAddr;

    pub struct Parts {
        pub addr: SocketAddr,
    }

    pub fn parse(url: &str) -> Parts {
        let rest = url.split("@").nth(1).expect("user@host in the url");
        let hostport = rest.split('/').next().unwrap();
        Parts {
            addr: hostport.parse().expect("host:port"),
        }
    }
}
