//! `taskhive bench`: throughput and latency scenarios against a server started in-process
//! (or `--addr` for a running one). Prints a table and writes JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::commands::CliResult;
use crate::pb::server_message::Msg as Out;
use crate::pb::worker_message::Msg as In;
use crate::pb::{self, scheduler_client::SchedulerClient};

/// `taskhive bench` flags.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenarios to run: submit, e2e, dispatch (comma-separated).
    #[arg(long, default_value = "submit,e2e,dispatch")]
    pub scenarios: String,
    /// Jobs per scenario.
    #[arg(long, default_value_t = 50_000)]
    pub jobs: u64,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Payload bytes per job.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Tiny sizes, for CI: proves the scenarios run, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Bench a running server instead of starting one in-process.
    #[arg(long)]
    pub addr: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One scenario's figures.
#[derive(Debug, serde::Serialize)]
pub struct BenchResult {
    /// Scenario name.
    pub scenario: String,
    /// Operations completed.
    pub ops: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Operations per second.
    pub per_sec: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
}

fn result(scenario: &str, ops: u64, took: Duration, h: &Histogram<u64>) -> BenchResult {
    BenchResult {
        scenario: scenario.into(),
        ops,
        seconds: took.as_secs_f64(),
        per_sec: ops as f64 / took.as_secs_f64().max(1e-9),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

async fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
}

/// Runs the chosen scenarios.
pub async fn run(mut a: BenchArgs) -> CliResult {
    if a.smoke {
        a.jobs = a.jobs.min(500);
        a.clients = a.clients.min(4);
    }
    let (addr, _server) = match &a.addr {
        Some(addr) => (addr.clone(), None),
        None => {
            let dir = tempfile_dir()?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?.to_string();
            let config = crate::config::Config::new(&dir);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let join = tokio::spawn(crate::server::run(listener, config, async move {
                let _ = stopped.await;
            }));
            (addr, Some((stop, join, dir)))
        }
    };
    let mut results = Vec::new();
    for s in a.scenarios.split(',').map(str::trim) {
        let r = match s {
            "submit" => submit(&a, &addr).await?,
            "e2e" => e2e(&a, &addr).await?,
            "dispatch" => dispatch(&a, &addr).await?,
            other => return Err(format!("unknown scenario {other:?}").into()),
        };
        results.push(r);
    }
    println!(
        "{:<10} {:>9} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "scenario", "ops", "secs", "ops/s", "p50 µs", "p99 µs", "max µs"
    );
    for r in &results {
        println!(
            "{:<10} {:>9} {:>8.2} {:>12.0} {:>9} {:>9} {:>9}",
            r.scenario, r.ops, r.seconds, r.per_sec, r.p50_us, r.p99_us, r.max_us
        );
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    if let Some((stop, join, dir)) = _server {
        let _ = stop.send(());
        let _ = join.await;
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("taskhive-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// N clients submit durable jobs as fast as acks come back.
async fn submit(
    a: &BenchArgs,
    addr: &str,
) -> Result<BenchResult, Box<dyn std::error::Error + Send + Sync>> {
    let per = a.jobs / a.clients as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..a.clients {
        let mut c = SchedulerClient::new(channel(addr).await?);
        let payload = vec![b'x'; a.payload];
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            for i in 0..per {
                let t = Instant::now();
                c.submit_job(pb::SubmitJobRequest {
                    task: "bench-submit".into(),
                    name: format!("{k}-{i}"),
                    args: payload.clone().into(),
                    // Far ahead: this scenario measures the durable submit path only.
                    sched_at_ms: unix_ms() + 3_600_000,
                    ..Default::default()
                })
                .await?;
                h.record(t.elapsed().as_micros() as u64).ok();
            }
            Ok::<_, tonic::Status>(h)
        }));
    }
    let mut h = hist();
    for t in tasks {
        h.add(t.await??).ok();
    }
    let took = start.elapsed();
    let mut c = SchedulerClient::new(channel(addr).await?);
    c.drop_task(pb::DropTaskRequest {
        task: "bench-submit".into(),
    })
    .await?;
    Ok(result("submit", per * a.clients as u64, took, &h))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Submit while 4 Work-stream workers finish jobs at once; latency is submit → worker.
async fn e2e(
    a: &BenchArgs,
    addr: &str,
) -> Result<BenchResult, Box<dyn std::error::Error + Send + Sync>> {
    let base = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let total = (a.jobs / a.clients as u64) * a.clients as u64;
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<u64>();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = mpsc::channel(1024);
        tx.send(pb::WorkerMessage {
            msg: Some(In::Hello(pb::WorkerHello {
                tasks: vec!["bench-e2e".into()],
                capacity: 256,
                name: "bench".into(),
                broadcast_tasks: vec![],
            })),
        })
        .await?;
        let mut inbound = SchedulerClient::new(channel(addr).await?)
            .work(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let (done, lat_tx) = (done.clone(), lat_tx.clone());
        workers.push(tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(Out::Job(j)) = m.msg {
                    let sent = u64::from_le_bytes(j.args[..8].try_into().unwrap_or([0; 8]));
                    let _ = lat_tx.send((base.elapsed().as_micros() as u64).saturating_sub(sent));
                    let _ = tx
                        .send(pb::WorkerMessage {
                            msg: Some(In::Result(pb::WorkerResult {
                                lease_id: j.lease_id,
                                outcome: Some(pb::Outcome {
                                    outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
                                }),
                            })),
                        })
                        .await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    let per = total / a.clients as u64;
    let mut tasks = Vec::new();
    for k in 0..a.clients {
        let mut c = SchedulerClient::new(channel(addr).await?);
        let pad = a.payload.saturating_sub(8);
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let mut args = (base.elapsed().as_micros() as u64).to_le_bytes().to_vec();
                args.resize(8 + pad, b'x');
                c.submit_job(pb::SubmitJobRequest {
                    task: "bench-e2e".into(),
                    name: format!("{k}-{i}"),
                    args: args.into(),
                    ..Default::default()
                })
                .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut h = hist();
    let mut seen = 0;
    while seen < total {
        match tokio::time::timeout(Duration::from_secs(60), lat_rx.recv()).await {
            Ok(Some(us)) => {
                h.record(us.max(1)).ok();
                seen += 1;
            }
            _ => return Err("e2e: workers stopped receiving jobs".into()),
        }
    }
    let took = start.elapsed();
    for w in workers {
        w.abort();
    }
    Ok(result("e2e", seen, took, &h))
}

/// One RunJob at a time through a remote worker that answers at once.
async fn dispatch(
    a: &BenchArgs,
    addr: &str,
) -> Result<BenchResult, Box<dyn std::error::Error + Send + Sync>> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::WorkerHello {
            tasks: vec!["bench-rt".into()],
            capacity: 1,
            name: "bench".into(),
            broadcast_tasks: vec![],
        })),
    })
    .await?;
    let mut inbound = SchedulerClient::new(channel(addr).await?)
        .work(ReceiverStream::new(rx))
        .await?
        .into_inner();
    // Wait for the welcome so the first RunJob finds the worker.
    inbound.message().await?;
    let worker = tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            if let Some(Out::Job(j)) = m.msg {
                let _ = tx
                    .send(pb::WorkerMessage {
                        msg: Some(In::Result(pb::WorkerResult {
                            lease_id: j.lease_id,
                            outcome: Some(pb::Outcome {
                                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
                            }),
                        })),
                    })
                    .await;
            }
        }
    });
    let n = (a.jobs / 10).max(10);
    let mut c = SchedulerClient::new(channel(addr).await?);
    let mut h = hist();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        c.run_job(pb::SubmitJobRequest {
            task: "bench-rt".into(),
            name: format!("{i}"),
            ..Default::default()
        })
        .await?;
        h.record(t.elapsed().as_micros() as u64).ok();
    }
    let took = start.elapsed();
    worker.abort();
    Ok(result("dispatch", n, took, &h))
}
