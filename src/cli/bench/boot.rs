//! Scenarios over a big store, each against a `taskhive serve` child process (so its RSS and
//! start-up are the server's alone): `restart` (process start → serving → first dispatch),
//! `memory` (server RSS per pending job) and `timers` (dispatch lateness against sched_at).
//!
//! The store is filled directly through [`SqliteStore`] before the server starts: loading a
//! million jobs through the API would measure the submit path again, not these.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{channel, hist, result, unix_ms, BenchArgs, BenchResult, BoxError};
use crate::pb::server_message::Msg as Out;
use crate::pb::worker_message::Msg as In;
use crate::pb::{self, scheduler_client::SchedulerClient};
use crate::scheduler::job::{JobRecord, RetryPolicy};
use crate::store::sqlite::{SqliteStore, Sync};
use crate::store::{JobWrite, Write};
use crate::store::{Op, Store};

/// Rows per prefill transaction.
const PREFILL_CHUNK: u64 = 50_000;

/// Writes `n` due jobs of `task` with `payload`-byte args into the store in `dir`.
fn prefill(dir: &Path, task: &str, n: u64, payload: usize) -> Result<(), BoxError> {
    let mut store = SqliteStore::open(dir, Sync::Normal)?;
    let args = Bytes::from(vec![b'x'; payload]);
    let now = unix_ms();
    let mut ops = Vec::with_capacity(PREFILL_CHUNK as usize);
    for i in 0..n {
        ops.push(Op::Scheduler(Write::Job(JobWrite::Upsert(JobRecord {
            id: i + 1,
            task: task.into(),
            name: format!("{i}"),
            args: args.clone(),
            sched_at: now,
            timeout_ms: 600_000,
            trace: None,
            priority: 0,
            retry: RetryPolicy::default(),
            attempts: 0,
            run_count: 0,
            dead: false,
            last_error: String::new(),
            key: String::new(),
            spilled: None,
        }))));
        if ops.len() as u64 == PREFILL_CHUNK {
            store.apply(&ops)?;
            ops.clear();
        }
    }
    if !ops.is_empty() {
        store.apply(&ops)?;
    }
    Ok(())
}

/// A `taskhive serve` child on a data directory; killed on drop.
struct Server {
    child: tokio::process::Child,
    addr: String,
    started: Instant,
}

impl Server {
    async fn spawn(dir: &Path) -> Result<Server, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let child = tokio::process::Command::new(super::server_exe()?)
            .args(["serve", "--listen", &addr, "--data"])
            .arg(dir)
            .env(
                "RUST_LOG",
                std::env::var("TASKHIVE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Server {
            child,
            addr,
            started,
        })
    }

    /// Waits until a Status call succeeds; returns the time since the process started.
    async fn serving(&mut self) -> Result<Duration, BoxError> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("taskhive serve exited: {status}").into());
            }
            if let Ok(ch) = channel(&self.addr).await {
                if SchedulerClient::new(ch)
                    .status(pb::StatusRequest::default())
                    .await
                    .is_ok()
                {
                    return Ok(self.started.elapsed());
                }
            }
            if Instant::now() > deadline {
                return Err("taskhive serve did not start serving within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The process's resident set in bytes.
    fn rss(&self) -> Result<u64, BoxError> {
        let pid = self.child.id().ok_or("server exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmRSS in /proc/PID/status")?;
        Ok(kb * 1024)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn data_dir(tag: &str) -> Result<PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("taskhive-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A job a worker received: when, against when it was due.
struct Received {
    at_unix_us: u64,
    sched_at_ms: i64,
}

/// Opens a Work stream for `task` that completes every job at once and reports each one.
async fn worker(
    addr: &str,
    task: &str,
    capacity: u32,
    seen: mpsc::UnboundedSender<Received>,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let (tx, rx) = mpsc::channel(4096);
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::WorkerHello {
            tasks: vec![task.into()],
            capacity,
            name: "bench".into(),
            broadcast_tasks: vec![],
        })),
    })
    .await?;
    let mut inbound = SchedulerClient::new(channel(addr).await?)
        .work(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            if let Some(Out::Job(j)) = m.msg {
                let _ = seen.send(Received {
                    at_unix_us: unix_us(),
                    sched_at_ms: j.sched_at_ms,
                });
                let done = pb::WorkerMessage {
                    msg: Some(In::Result(pb::WorkerResult {
                        lease_id: j.lease_id,
                        outcome: Some(pb::Outcome {
                            outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
                        }),
                    })),
                };
                if tx.send(done).await.is_err() {
                    return;
                }
            }
        }
    }))
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// `restart` and `memory`: a server started on `store_jobs` due jobs (payload bytes each).
/// Memory is the server's RSS once serving, against a server on an empty store.
pub(crate) async fn restart_and_memory(a: &BenchArgs) -> Result<Vec<BenchResult>, BoxError> {
    let n = a.store_jobs.max(1);
    let task = "bench-restart";
    let empty = data_dir("empty")?;
    let mut s = Server::spawn(&empty).await?;
    s.serving().await?;
    let rss_empty = s.rss()?;
    s.stop().await;
    let _ = std::fs::remove_dir_all(&empty);

    let dir = data_dir("restart")?;
    let fill = Instant::now();
    {
        let dir = dir.clone();
        let payload = a.payload;
        tokio::task::spawn_blocking(move || prefill(&dir, task, n, payload)).await??;
    }
    let fill = fill.elapsed();
    let mut s = Server::spawn(&dir).await?;
    let serving = s.serving().await?;
    let rss_full = s.rss()?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let w = worker(&s.addr, task, 1, seen_tx).await?;
    seen.recv().await.ok_or("restart: the worker got no job")?;
    let first = s.started.elapsed();
    w.abort();
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let h = hist();
    let mut restart = result("restart", n, serving, &h);
    restart.extra.insert("serving_ms".into(), ms(serving));
    restart.extra.insert("first_dispatch_ms".into(), ms(first));
    restart.extra.insert("prefill_s".into(), fill.as_secs_f64());
    let mut memory = result("memory", n, serving, &h);
    let per_job = (rss_full.saturating_sub(rss_empty)) as f64 / n as f64;
    memory
        .extra
        .insert("rss_empty_mib".into(), rss_empty as f64 / 1048576.0);
    memory
        .extra
        .insert("rss_full_mib".into(), rss_full as f64 / 1048576.0);
    memory.extra.insert("bytes_per_job".into(), per_job);
    memory.extra.insert(
        "bytes_per_job_beyond_payload".into(),
        per_job - a.payload as f64,
    );
    Ok(vec![restart, memory])
}

/// The task the `--schedules` schedules enqueue (no worker serves it).
const SCHEDULED_TASK: &str = "bench-cron";

/// Creates `n` schedules, 16 calls at a time: schedule i fires at second i of the hour.
async fn define_schedules(addr: &str, n: u64) -> Result<(), BoxError> {
    if n == 0 {
        return Ok(());
    }
    let client = SchedulerClient::new(channel(addr).await?);
    let mut calls = tokio::task::JoinSet::new();
    for lane in 0..16u64 {
        let mut c = client.clone();
        calls.spawn(async move {
            for i in (lane..n).step_by(16) {
                let at = i % 3600;
                c.create_schedule(pb::CreateScheduleRequest {
                    name: format!("bench-cron-{i}"),
                    cron: format!("{} {} * * * *", at % 60, at / 60),
                    task: SCHEDULED_TASK.into(),
                    ..Default::default()
                })
                .await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(r) = calls.join_next().await {
        r??;
    }
    Ok(())
}

/// Jobs of `task` waiting (pending or scheduled) on the server at `addr`.
async fn queued(addr: &str, task: &str) -> Result<u64, BoxError> {
    let st = SchedulerClient::new(channel(addr).await?)
        .status(pb::StatusRequest { task: task.into() })
        .await?
        .into_inner();
    Ok(st.tasks.iter().map(|t| t.pending + t.scheduled).sum())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `timers`: `store_jobs` jobs due evenly over the next `timer_window` seconds, with the
/// server started and 4 workers connected first; lateness is receipt time − sched_at.
pub async fn timers(a: &BenchArgs) -> Result<BenchResult, BoxError> {
    let n = a.store_jobs.max(1);
    let window_ms = (a.timer_window * 1000.0).max(1.0) as i64;
    let task = "bench-timers";
    let dir = data_dir("timers")?;
    {
        let dir = dir.clone();
        let payload = a.payload;
        tokio::task::spawn_blocking(move || prefill(&dir, task, n, payload)).await??;
    }
    // Due times are set once the store is full, leaving time for the server to load it (and
    // for the schedules to be created).
    let lead_ms = 2_000 + (n / 100) as i64 + (a.schedules / 2) as i64;
    let t0 = unix_ms() + lead_ms;
    {
        let conn = rusqlite::Connection::open(dir.join("taskhive.db"))?;
        conn.execute(
            "UPDATE jobs SET sched_at = ?1 + (id - 1) * ?2 / ?3",
            rusqlite::params![t0, window_ms, n as i64],
        )?;
    }
    let mut s = Server::spawn(&dir).await?;
    s.serving().await?;
    define_schedules(&s.addr, a.schedules).await?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(worker(&s.addr, task, 256, seen_tx.clone()).await?);
    }
    drop(seen_tx);
    let ready_ms = unix_ms();
    let mut h = hist();
    let mut got = 0u64;
    let mut early = 0u64;
    let mut due_before_ready = 0u64;
    let start = Instant::now();
    let deadline = Duration::from_millis((lead_ms + window_ms) as u64) + Duration::from_secs(60);
    while got < n {
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, seen.recv()).await {
            Ok(Some(r)) => {
                got += 1;
                if r.sched_at_ms < ready_ms {
                    due_before_ready += 1;
                }
                let due_us = r.sched_at_ms as u64 * 1000;
                if r.at_unix_us < due_us {
                    early += 1;
                }
                h.record(r.at_unix_us.saturating_sub(due_us).max(1)).ok();
            }
            _ => break,
        }
    }
    let took = start.elapsed();
    for w in workers {
        w.abort();
    }
    let fired = if a.schedules > 0 {
        Some(queued(&s.addr, SCHEDULED_TASK).await?)
    } else {
        None
    };
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if got < n {
        return Err(format!("timers: {got} of {n} jobs dispatched before the deadline").into());
    }
    let mut r = result("timers", got, took, &h);
    if let Some(fired) = fired {
        r.extra.insert("schedules".into(), a.schedules as f64);
        r.extra
            .insert("schedule_jobs_enqueued".into(), fired as f64);
    }
    r.extra.insert("window_s".into(), window_ms as f64 / 1000.0);
    r.extra.insert("over_2ms".into(), super::over_2ms(&h));
    r.extra.insert("early".into(), early as f64);
    r.extra
        .insert("due_before_workers".into(), due_before_ready as f64);
    Ok(r)
}
