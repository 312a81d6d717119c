//! `taskhive bench`: throughput and latency scenarios against a server started in-process
//! (or `--addr` for a running one). Prints a table and writes JSON.
//!
//! The scenarios that load a peer (gearmand) need that peer's protocol driver, which the
//! product binary does not carry: `taskhive-bench` (`bench/peers/`) is this same command
//! with the Gearman driver plugged in as a [`PeerDriver`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::commands::CliResult;

mod boot;
mod faces;
mod lean_grpc;
mod others;
mod pipelined_grpc;
mod ratios;
mod timer_floor;
mod unary_ext;

/// Any error a scenario can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
use crate::pb::server_message::Msg as Out;
use crate::pb::worker_message::Msg as In;
use crate::pb::{self, scheduler_client::SchedulerClient};

/// One `taskhive bench --scenarios` entry (see [`BenchArgs::scenarios`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Unary SubmitJob, in-process server.
    Submit,
    /// SubmitJobs batches.
    SubmitBatch,
    /// SubmitStream.
    SubmitStream,
    /// Unary SubmitJob against a separate server process, with its CPU per job.
    SubmitUnaryExt,
    /// The JSON face, likewise.
    SubmitJsonExt,
    /// The Periodic protocol's SUBMIT_JOB, likewise.
    SubmitPeriodicExt,
    /// Submit and run, unary submits.
    E2e,
    /// Submit and run, batches.
    E2eBatch,
    /// Submit and run, SubmitStream.
    E2eStream,
    /// RunJob round trips.
    Dispatch,
    /// Lateness of 1M jobs falling due.
    Timers,
    /// Lateness of a bare timerfd, no server: the machine's floor under `timers`.
    TimerFloor,
    /// Start-up time over a full store.
    Restart,
    /// Memory per pending job.
    Memory,
    /// Gearman SUBMIT_JOB_BG against every `--gearman` server (`taskhive-bench` only).
    GearmanSubmit,
    /// Gearman submit and run (`taskhive-bench` only).
    GearmanE2e,
}

impl Scenario {
    /// Its name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Submit => "submit",
            Scenario::SubmitBatch => "submit-batch",
            Scenario::SubmitStream => "submit-stream",
            Scenario::SubmitUnaryExt => "submit-unary-ext",
            Scenario::SubmitJsonExt => "submit-json-ext",
            Scenario::SubmitPeriodicExt => "submit-periodic-ext",
            Scenario::E2e => "e2e",
            Scenario::E2eBatch => "e2e-batch",
            Scenario::E2eStream => "e2e-stream",
            Scenario::Dispatch => "dispatch",
            Scenario::Timers => "timers",
            Scenario::TimerFloor => "timer-floor",
            Scenario::Restart => "restart",
            Scenario::Memory => "memory",
            Scenario::GearmanSubmit => "gearman-submit",
            Scenario::GearmanE2e => "gearman-e2e",
        }
    }
}

impl Scenario {
    /// Whether it loads the in-process server (or `--addr`); the others start what they
    /// measure themselves, or measure no server at all.
    fn uses_in_process_server(self) -> bool {
        match self {
            Scenario::Submit
            | Scenario::SubmitBatch
            | Scenario::SubmitStream
            | Scenario::E2e
            | Scenario::E2eBatch
            | Scenario::E2eStream
            | Scenario::Dispatch => true,
            Scenario::SubmitUnaryExt
            | Scenario::SubmitJsonExt
            | Scenario::SubmitPeriodicExt
            | Scenario::Timers
            | Scenario::TimerFloor
            | Scenario::Restart
            | Scenario::Memory
            | Scenario::GearmanSubmit
            | Scenario::GearmanE2e => false,
        }
    }
}

/// `taskhive bench` flags.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenarios to run (comma-separated): submit, submit-batch, submit-stream,
    /// submit-unary-ext, submit-json-ext and submit-periodic-ext (one job per call through
    /// gRPC, the JSON face or the Periodic protocol, against a separate server process, with
    /// its CPU per job), e2e, e2e-batch, e2e-stream, dispatch, timers, timer-floor (a bare
    /// timerfd's lateness on this machine, no server), memory, restart; gearman-submit and
    /// gearman-e2e run against every `--gearman` server.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Scenario::Submit, Scenario::E2e, Scenario::Dispatch])]
    pub scenarios: Vec<Scenario>,
    /// Jobs per scenario.
    #[arg(long, default_value_t = 50_000)]
    pub jobs: u64,
    /// Concurrent submitting clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Payload bytes per job.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Requests each client keeps in flight (gRPC calls multiplexed on its connection;
    /// unacknowledged jobs on its SubmitStream; Gearman packets pipelined on its socket).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Requests each Gearman client keeps in flight, when it should differ from
    /// `--pipeline` (e.g. 1: unpipelined SUBMIT_JOB_BG, gearmand's one-job-per-call path).
    #[arg(long)]
    pub gearman_pipeline: Option<usize>,
    /// Jobs in the store for timers, memory and restart.
    #[arg(long, default_value_t = 1_000_000)]
    pub store_jobs: u64,
    /// timers: the jobs fall due evenly over this many seconds (timer-floor: it runs as long).
    #[arg(long, default_value_t = 60.0, value_parser = parse_window)]
    pub timer_window: f64,
    /// timers: also define this many cron schedules (6-field, each firing once an hour at
    /// its own second, so about N/3600 fire each second) of a task with no worker.
    #[arg(long, default_value_t = 0)]
    pub schedules: u64,
    /// A gearmand to drive with the Gearman scenarios, as LABEL=HOST:PORT (repeatable);
    /// LABEL=HOST:PORT/N caps its jobs per scenario at N (for a slow persistent queue).
    #[arg(long, value_name = "LABEL=ADDR")]
    pub gearman: Vec<String>,
    /// Tiny sizes, for CI: proves the scenarios run, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Bench a running server instead of starting one in-process.
    #[arg(long)]
    pub addr: Option<String>,
    /// Leave the submit scenarios' jobs in the server (no DropTask at the end): for
    /// profiling a server's submit path alone (`bench/profile-unary`).
    #[arg(long)]
    pub keep_jobs: bool,
    /// The client of the submit and e2e scenarios' SubmitJob and SubmitJobs calls, of their
    /// workers and of dispatch's RunJob caller and worker (the stream scenarios' submits and
    /// the other scenarios use tonic's).
    #[arg(long, value_enum, default_value_t = GrpcClient::Lean)]
    pub grpc_client: GrpcClient,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Which gRPC client makes the unary calls (see `bench/lean_grpc.rs` for why there are two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrpcClient {
    /// Hand-written drivers, as the Gearman driver is for gearmand: the pipelined unary
    /// calls write their HTTP/2 frames themselves (`bench/pipelined_grpc.rs`), the Work
    /// streams and RunJob round trips go over `h2` (`bench/lean_grpc.rs`).
    Lean,
    /// tonic's generated client over `Channel`, as an application would call.
    Tonic,
}

/// One scenario's figures.
#[derive(Clone, Debug, serde::Serialize)]
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
    /// Scenario-specific figures (restart times, memory per job, ...).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// A scenario's figures from its operation count, wall time and latency histogram (µs).
pub fn result(scenario: &str, ops: u64, took: Duration, h: &Histogram<u64>) -> BenchResult {
    BenchResult {
        scenario: scenario.into(),
        ops,
        seconds: took.as_secs_f64(),
        per_sec: ops as f64 / took.as_secs_f64().max(1e-9),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
        extra: Default::default(),
    }
}

/// The histogram of `total` job latencies (µs) as workers report them on `rx`; `None` when
/// none came for 60 s (the workers stopped receiving jobs).
pub async fn gather_latencies(
    rx: &mut mpsc::UnboundedReceiver<u64>,
    total: u64,
) -> Option<Histogram<u64>> {
    let mut h = hist();
    for _ in 0..total {
        let us = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .ok()??;
        h.record(us.max(1)).ok();
    }
    Some(h)
}

/// A latency histogram in microseconds, 1 µs to 120 s.
pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// The `taskhive` binary that scenarios start as a separate server process: this one, or the
/// `taskhive` beside it when this is `taskhive-bench`.
fn server_exe() -> std::io::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_stem().is_some_and(|s| s == "taskhive-bench") {
        return Ok(me.with_file_name(format!("taskhive{}", std::env::consts::EXE_SUFFIX)));
    }
    Ok(me)
}

/// A gRPC connection to `addr` whose writes are coalesced like the server's
/// ([`crate::net::coalesce`]): the driver's CPU shares the machine with the server's.
async fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let addr = addr.to_string();
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let addr = addr.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    crate::net::coalesce::Coalesced::h2(tcp),
                ))
            }
        }))
        .await
}

/// A gRPC client over one bare HTTP/2 connection, for one call in flight at a time (the
/// round-trip scenario). Two things `Channel` does would add latency to every call and
/// save nothing here: its `Buffer` (each call passes through a queue and a worker task of
/// its own, one more task hop) and [`channel`]'s held flush (one more poll).
async fn direct_client(addr: &str) -> Result<SchedulerClient<DirectH2>, BoxError> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await?;
    tokio::spawn(conn);
    let svc = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let mut sender = sender.clone();
        async move { sender.send_request(req).await }
    });
    let origin = format!("http://{addr}").parse()?;
    Ok(SchedulerClient::with_origin(
        tower::util::BoxCloneSyncService::new(svc),
        origin,
    ))
}

/// The dispatch scenario's caller: one RunJob at a time, over a connection that writes each
/// call at once.
enum RoundTripClient {
    Lean(lean_grpc::LeanClient),
    Tonic(SchedulerClient<DirectH2>),
}

impl RoundTripClient {
    async fn connect(kind: GrpcClient, addr: &str) -> Result<RoundTripClient, BoxError> {
        Ok(match kind {
            GrpcClient::Lean => {
                RoundTripClient::Lean(lean_grpc::LeanClient::connect_plain(addr).await?)
            }
            GrpcClient::Tonic => RoundTripClient::Tonic(direct_client(addr).await?),
        })
    }

    async fn run_job(&mut self, req: pb::SubmitJobRequest) -> Result<(), tonic::Status> {
        match self {
            RoundTripClient::Lean(c) => c.run_job(req).await.map(drop),
            RoundTripClient::Tonic(c) => c.run_job(req).await.map(drop),
        }
    }
}

/// The service [`direct_client`] calls through.
type DirectH2 = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<hyper::body::Incoming>,
    hyper::Error,
>;

/// A peer's protocol driver: loads one of its servers with the shape of `--clients`,
/// `--jobs`, `--pipeline` and `--payload` that the taskhive scenarios use.
pub trait PeerDriver: Sync {
    /// Background submits only (`gearman-submit`).
    fn submit<'a>(
        &'a self,
        a: &'a BenchArgs,
        addr: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<BenchResult, BoxError>>;
    /// Submits and workers running them to the end (`gearman-e2e`).
    fn e2e<'a>(
        &'a self,
        a: &'a BenchArgs,
        addr: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<BenchResult, BoxError>>;
}

/// Runs the chosen scenarios (`taskhive bench`: no peer driver).
pub async fn run(a: BenchArgs) -> CliResult {
    run_with(a, None).await
}

/// Runs the chosen scenarios, loading peers with `peer` (`taskhive-bench`).
pub async fn run_with(mut a: BenchArgs, peer: Option<&dyn PeerDriver>) -> CliResult {
    if a.smoke {
        a.jobs = a.jobs.min(500);
        a.clients = a.clients.min(4);
        a.store_jobs = a.store_jobs.min(2_000);
        a.timer_window = a.timer_window.min(1.0);
    }
    a.clients = a.clients.max(1);
    a.pipeline = a.pipeline.max(1);
    let mut gearmands = Vec::new();
    for g in &a.gearman {
        match g.split_once('=') {
            Some((label, addr)) if !label.is_empty() && !addr.is_empty() => {
                let (addr, cap) = match addr.split_once('/') {
                    Some((addr, n)) => match n.parse::<u64>() {
                        Ok(n) if n > 0 => (addr, n),
                        _ => return Err(format!("--gearman: {g:?}: bad job cap {n:?}").into()),
                    },
                    None => (addr, u64::MAX),
                };
                gearmands.push((format!("gearmand-{label}"), addr.to_string(), cap))
            }
            _ => return Err(format!("--gearman: {g:?} is not LABEL=HOST:PORT[/N]").into()),
        }
    }
    let needs_peer = a
        .scenarios
        .iter()
        .find(|s| matches!(s, Scenario::GearmanSubmit | Scenario::GearmanE2e));
    if let (Some(s), None) = (needs_peer, peer) {
        return Err(format!(
            "scenario {} loads gearmand, and this binary carries no peer's protocol driver: \
             run it with taskhive-bench (built beside taskhive)",
            s.name()
        )
        .into());
    }
    let (addr, _server) = match &a.addr {
        Some(addr) => (addr.clone(), None),
        None if !a.scenarios.iter().any(|s| s.uses_in_process_server()) => (String::new(), None),
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
    // Each gearmand's process, looked up once: its CPU per job, and load of the bench's own.
    let gearmand_cpus: Vec<Option<unary_ext::ProcCpu>> = gearmands
        .iter()
        .map(|(_, gaddr, _)| listening_process(gaddr))
        .collect();
    // The servers the bench drives (the peers, a server at `--addr`) are its own load, not
    // other processes'.
    let watch = others::Watch::new(
        gearmand_cpus
            .iter()
            .copied()
            .chain(a.addr.as_deref().map(listening_process))
            .flatten()
            .collect(),
    );
    let run_mark = watch.mark();
    let mut results = Vec::new();
    for &s in &a.scenarios {
        use Scenario as S;
        let mark = watch.mark();
        let before = results.len();
        let r = match s {
            S::Submit => submit(&a, &addr, false).await?,
            S::SubmitBatch => submit(&a, &addr, true).await?,
            S::SubmitStream => submit_stream(&a, &addr).await?,
            S::SubmitUnaryExt => unary_ext::submit_ext(&a, unary_ext::Face::Grpc).await?,
            S::SubmitJsonExt => unary_ext::submit_ext(&a, unary_ext::Face::Json).await?,
            S::SubmitPeriodicExt => unary_ext::submit_ext(&a, unary_ext::Face::Periodic).await?,
            S::E2e => e2e(&a, &addr, Submits::Unary).await?,
            S::E2eBatch => e2e(&a, &addr, Submits::Batch).await?,
            S::E2eStream => e2e(&a, &addr, Submits::Stream).await?,
            S::Dispatch => dispatch(&a, &addr).await?,
            S::Timers => boot::timers(&a).await?,
            S::TimerFloor => timer_floor::timer_floor(&a).await?,
            S::Restart | S::Memory => {
                // One run measures both; the second name finds its figures already there.
                if !results.iter().any(|r: &BenchResult| r.scenario == s.name()) {
                    results.extend(boot::restart_and_memory(&a).await?);
                    note_others(&watch, mark.as_ref(), &mut results[before..]);
                }
                continue;
            }
            S::GearmanSubmit | S::GearmanE2e => {
                // Refused before the server started when there is none.
                let peer = peer.ok_or("no peer driver")?;
                if gearmands.is_empty() {
                    return Err(format!("scenario {} needs --gearman LABEL=ADDR", s.name()).into());
                }
                for ((label, gaddr, cap), cpu) in gearmands.iter().zip(&gearmand_cpus) {
                    let mut ga = a.clone();
                    ga.jobs = ga.jobs.min(*cap).max(ga.clients as u64);
                    ga.pipeline = a.gearman_pipeline.unwrap_or(a.pipeline).max(1);
                    // Each instance gets a window of its own, not the scenario's.
                    let mark = watch.mark();
                    // gearmand's CPU per job, as submit-unary-ext reports taskhive's.
                    let before = cpu.as_ref().and_then(|c| c.used().ok());
                    let mut r = if s == S::GearmanSubmit {
                        peer.submit(&ga, gaddr, label).await?
                    } else {
                        peer.e2e(&ga, gaddr, label).await?
                    };
                    let after = cpu.as_ref().and_then(|c| c.used().ok());
                    unary_ext::add_cpu(&mut r, before, after);
                    if ga.jobs < a.jobs {
                        r.extra.insert(ratios::JOBS_CAP.into(), ga.jobs as f64);
                    }
                    note_others(&watch, mark.as_ref(), std::slice::from_mut(&mut r));
                    results.push(r);
                }
                continue;
            }
        };
        results.push(r);
        note_others(&watch, mark.as_ref(), &mut results[before..]);
    }
    let ratios = ratios::ratios(&results);
    println!(
        "{:<24} {:>9} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "scenario", "ops", "secs", "ops/s", "p50 µs", "p99 µs", "max µs"
    );
    for r in &results {
        println!(
            "{:<24} {:>9} {:>8.2} {:>12.0} {:>9} {:>9} {:>9}",
            r.scenario, r.ops, r.seconds, r.per_sec, r.p50_us, r.p99_us, r.max_us
        );
        if !r.extra.is_empty() {
            let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
            println!("{:<24} {}", "", extra.join("  "));
        }
    }
    ratios::print(&ratios);
    for r in &results {
        if let Some(cores) = others::busy_cores(r) {
            let window = Duration::from_secs_f64(r.seconds);
            println!("{}", others::warning(&r.scenario, cores, window));
        }
    }
    let run_others = run_mark.as_ref().and_then(|m| watch.since(m));
    if let Some((cores, window)) = run_others {
        println!(
            "other processes: {cores:.2} of a core over the run ({:.1} s)",
            window.as_secs_f64()
        );
        if others::busy(cores, window) {
            println!("{}", others::warning("the run", cores, window));
        }
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "clients": a.clients,
            "jobs": a.jobs,
            "payload": a.payload,
            "pipeline": a.pipeline,
            "results": results,
            "ratios": ratios,
            "others_cpu_cores": run_others.map(|(cores, _)| cores),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    if let Some((stop, join, dir)) = _server {
        let _ = stop.send(());
        let _ = join.await;
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// The process listening on the port of `addr` (`HOST:PORT`).
fn listening_process(addr: &str) -> Option<unary_ext::ProcCpu> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .and_then(unary_ext::ProcCpu::listening_on)
}

/// Gives `results` (one scenario's) the CPU other processes took since `mark`, when the
/// window was long enough to tell.
fn note_others(watch: &others::Watch, mark: Option<&others::Mark>, results: &mut [BenchResult]) {
    let Some((cores, window)) = mark.and_then(|m| watch.since(m)) else {
        return;
    };
    if window < others::MIN_WINDOW {
        return;
    }
    for r in results {
        r.extra.insert(others::OTHERS_CORES.into(), cores);
    }
}

/// A fresh directory per call: the in-process server's and each `-ext` scenario's server's
/// stores must not share one (an `-ext` scenario removes its own when done).
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("taskhive-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// N clients submit durable jobs as fast as acks come back.
async fn submit(a: &BenchArgs, addr: &str, batch: bool) -> Result<BenchResult, BoxError> {
    let r = submit_load(a, addr, batch).await?;
    if a.keep_jobs {
        return Ok(r);
    }
    let mut c = SchedulerClient::new(channel(addr).await?);
    c.drop_task(pb::DropTaskRequest {
        task: "bench-submit".into(),
    })
    .await?;
    Ok(r)
}

/// The load of [`submit`] (jobs of task `bench-submit`, left in the store).
async fn submit_load(a: &BenchArgs, addr: &str, batch: bool) -> Result<BenchResult, BoxError> {
    let per = a.jobs / a.clients as u64;
    let payload = bytes::Bytes::from(vec![b'x'; a.payload]);
    // Far ahead: this scenario measures the durable submit path only.
    let sched_at_ms = unix_ms() + 3_600_000;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..a.clients {
        let payload = payload.clone();
        let job = move |i: u64| pb::SubmitJobRequest {
            task: "bench-submit".into(),
            name: format!("{k}-{i}"),
            args: payload.clone(),
            sched_at_ms,
            ..Default::default()
        };
        // Either way each client has `pipeline` jobs unacknowledged.
        let to = SubmitTo::connect(a.grpc_client, addr).await?;
        tasks.push(tokio::spawn(to.submit(batch, per, a.pipeline as u64, job)));
    }
    let mut h = hist();
    for t in tasks {
        h.add(t.await??).ok();
    }
    let took = start.elapsed();
    let name = if batch { "submit-batch" } else { "submit" };
    Ok(result(name, per * a.clients as u64, took, &h))
}

/// Where one client's submit calls go, through the client `--grpc-client` names.
enum SubmitTo {
    /// [`pipelined_grpc`], which connects when it starts.
    Pipelined(String),
    /// tonic's client; a task per call in flight.
    Tonic(SchedulerClient<Channel>),
}

impl SubmitTo {
    async fn connect(kind: GrpcClient, addr: &str) -> Result<SubmitTo, BoxError> {
        Ok(match kind {
            GrpcClient::Lean => SubmitTo::Pipelined(addr.to_string()),
            GrpcClient::Tonic => SubmitTo::Tonic(SchedulerClient::new(channel(addr).await?)),
        })
    }

    /// Submits one client's `per` jobs, `job(i)` being the `i`th, by SubmitJob (`pipeline`
    /// calls in flight) or by SubmitJobs (`batch`: one call of `pipeline` jobs in flight);
    /// returns their submit → acknowledgement latencies (µs, one entry per job, a batch's
    /// jobs all taking its call's).
    async fn submit<F>(
        self,
        batch: bool,
        per: u64,
        pipeline: u64,
        job: F,
    ) -> Result<Histogram<u64>, tonic::Status>
    where
        F: Fn(u64) -> pb::SubmitJobRequest + Clone + Send + Sync + 'static,
    {
        let mut h = hist();
        let (calls, size) = match batch {
            true => (per.div_ceil(pipeline), pipeline),
            false => (per, 1),
        };
        // The jobs of call `c`, and how many they are.
        let range = |c: u64| c * size..((c + 1) * size).min(per);
        let count = |c: u64| range(c).end - range(c).start;
        match self {
            SubmitTo::Pipelined(addr) => {
                let mut record = |c: u64, took: Duration| {
                    h.record_n(took.as_micros().max(1) as u64, count(c)).ok();
                };
                if batch {
                    let depth = 1;
                    let make = |c| pb::SubmitJobsRequest {
                        jobs: range(c).map(&job).collect(),
                    };
                    let method = "/taskhive.v1.Scheduler/SubmitJobs";
                    pipelined_grpc::pipelined(
                        &addr,
                        method,
                        calls,
                        depth,
                        make,
                        |c, t, _: pb::SubmitJobsResponse| record(c, t),
                    )
                    .await?;
                } else {
                    let depth = pipeline as usize;
                    let method = "/taskhive.v1.Scheduler/SubmitJob";
                    pipelined_grpc::pipelined(
                        &addr,
                        method,
                        calls,
                        depth,
                        &job,
                        |c, t, _: pb::SubmitJobResponse| record(c, t),
                    )
                    .await?;
                }
            }
            SubmitTo::Tonic(mut c) if batch => {
                for k in 0..calls {
                    let t = Instant::now();
                    let jobs = range(k).map(&job).collect();
                    c.submit_jobs(pb::SubmitJobsRequest { jobs }).await?;
                    h.record_n(t.elapsed().as_micros().max(1) as u64, count(k))
                        .ok();
                }
            }
            SubmitTo::Tonic(c) => {
                let mut tasks = Vec::new();
                for p in 0..pipeline {
                    let (mut c, job) = (c.clone(), job.clone());
                    let (i0, n) = share(per, pipeline, p);
                    tasks.push(tokio::spawn(async move {
                        let mut h = hist();
                        for i in i0..i0 + n {
                            let t = Instant::now();
                            c.submit_job(job(i)).await?;
                            h.record(t.elapsed().as_micros().max(1) as u64).ok();
                        }
                        Ok::<_, tonic::Status>(h)
                    }));
                }
                for t in tasks {
                    let part = t
                        .await
                        .map_err(|e| tonic::Status::internal(e.to_string()))??;
                    h.add(part).ok();
                }
            }
        }
        Ok(h)
    }
}

/// One SubmitStream that keeps `pipeline` jobs unacknowledged until `n` are acked;
/// returns the submit → ack latencies.
async fn stream_jobs(
    mut c: SchedulerClient<Channel>,
    n: u64,
    pipeline: u64,
    job: impl Fn(u64) -> pb::SubmitJobRequest,
) -> Result<Histogram<u64>, BoxError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut sent_at = std::collections::VecDeque::with_capacity(pipeline as usize);
    let mut sent = 0;
    while sent < n.min(pipeline) {
        tx.send(job(sent))?;
        sent_at.push_back(Instant::now());
        sent += 1;
    }
    let mut acks = c
        .submit_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut tx = Some(tx);
    let mut h = hist();
    let mut acked = 0;
    while acked < n {
        let Some(m) = acks.message().await? else {
            return Err(format!("SubmitStream ended after {acked} of {n} acks").into());
        };
        for a in m.acks {
            if !a.error_code.is_empty() {
                return Err(format!("job {}: {} {}", a.seq, a.error_code, a.error).into());
            }
            let t = sent_at.pop_front().ok_or("more acks than jobs")?;
            h.record(t.elapsed().as_micros().max(1) as u64).ok();
            acked += 1;
        }
        while sent < n && sent - acked < pipeline {
            if let Some(tx) = &tx {
                tx.send(job(sent))?;
            }
            sent_at.push_back(Instant::now());
            sent += 1;
        }
        if sent == n {
            tx = None; // half-close: the server ends the stream after the last ack
        }
    }
    drop(tx);
    Ok(h)
}

/// N clients, each one SubmitStream with `pipeline` jobs in flight; latency is submit → ack.
async fn submit_stream(a: &BenchArgs, addr: &str) -> Result<BenchResult, BoxError> {
    let per = a.jobs / a.clients as u64;
    let payload = bytes::Bytes::from(vec![b'x'; a.payload]);
    let sched_at_ms = unix_ms() + 3_600_000;
    let mut conns = Vec::new();
    for _ in 0..a.clients {
        conns.push(SchedulerClient::new(channel(addr).await?));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, c) in conns.into_iter().enumerate() {
        let payload = payload.clone();
        let pipeline = a.pipeline as u64;
        tasks.push(tokio::spawn(async move {
            stream_jobs(c, per, pipeline, |i| pb::SubmitJobRequest {
                task: "bench-submit".into(),
                name: format!("s{k}-{i}"),
                args: payload.clone(),
                sched_at_ms,
                ..Default::default()
            })
            .await
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
    Ok(result("submit-stream", per * a.clients as u64, took, &h))
}

/// `--timer-window`: more than 0 and at most a day of seconds, so the scenarios' deadlines
/// stay in range.
fn parse_window(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0 and up to 86400"
        )),
    }
}

/// Jobs or wake-ups in `h` more than 2 ms late.
fn over_2ms(h: &Histogram<u64>) -> f64 {
    h.count_between(2_001, u64::MAX) as f64
}

/// The `p`th of `parts` shares of `n` items: (first index, count).
fn share(n: u64, parts: u64, p: u64) -> (u64, u64) {
    let base = n / parts;
    let extra = n % parts;
    let first = p * base + p.min(extra);
    (first, base + u64::from(p < extra))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// How e2e's clients submit their `pipeline` jobs in flight.
#[derive(Clone, Copy, PartialEq)]
enum Submits {
    /// That many SubmitJob calls.
    Unary,
    /// One SubmitJobs of that many jobs at a time.
    Batch,
    /// One SubmitStream with that many unacknowledged.
    Stream,
}

/// Submit while 4 Work-stream workers finish jobs at once; latency is submit → worker.
async fn e2e(a: &BenchArgs, addr: &str, how: Submits) -> Result<BenchResult, BoxError> {
    let base = Instant::now();
    // A task of this process's own: several bench processes can share one cluster.
    // Leaked once per run: a `&'static str` keeps the per-client job closure `Copy`.
    let task: &'static str =
        Box::leak(format!("bench-e2e-{}", std::process::id()).into_boxed_str());
    let done = Arc::new(AtomicU64::new(0));
    let total = (a.jobs / a.clients as u64) * a.clients as u64;
    let (lat_tx, mut lat_rx) = mpsc::unbounded_channel::<u64>();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (done, lat_tx) = (done.clone(), lat_tx.clone());
        let on_job = move |j: &pb::Job| {
            let sent = u64::from_le_bytes(j.args[..8].try_into().unwrap_or([0; 8]));
            let _ = lat_tx.send((base.elapsed().as_micros() as u64).saturating_sub(sent));
            done.fetch_add(1, Ordering::Relaxed);
        };
        workers.push(match a.grpc_client {
            GrpcClient::Lean => {
                let mut c = lean_grpc::LeanClient::connect(addr).await?;
                let (welcomed, welcome) = tokio::sync::oneshot::channel();
                let w = tokio::spawn(async move {
                    let _ = c.work_done(task, 256, welcomed, on_job).await;
                });
                welcome
                    .await
                    .map_err(|_| "e2e: a worker's stream ended before its welcome")?;
                w
            }
            GrpcClient::Tonic => tonic_worker(addr, task, on_job).await?,
        });
    }
    let start = Instant::now();
    let per = total / a.clients as u64;
    let mut tasks = Vec::new();
    for k in 0..a.clients {
        let pad = a.payload.saturating_sub(8);
        let job = move |i: u64| {
            let mut args = (base.elapsed().as_micros() as u64).to_le_bytes().to_vec();
            args.resize(8 + pad, b'x');
            pb::SubmitJobRequest {
                task: task.into(),
                name: format!("{k}-{i}"),
                args: args.into(),
                ..Default::default()
            }
        };
        if how == Submits::Stream {
            let conn = SchedulerClient::new(channel(addr).await?);
            let pipeline = a.pipeline as u64;
            tasks.push(tokio::spawn(async move {
                stream_jobs(conn, per, pipeline, job)
                    .await
                    .map(drop)
                    .map_err(|e| tonic::Status::unknown(e.to_string()))
            }));
            continue;
        }
        let to = SubmitTo::connect(a.grpc_client, addr).await?;
        let submits = to.submit(how == Submits::Batch, per, a.pipeline as u64, job);
        tasks.push(tokio::spawn(async move { submits.await.map(drop) }));
    }
    for t in tasks {
        t.await??;
    }
    let h = gather_latencies(&mut lat_rx, total)
        .await
        .ok_or("e2e: workers stopped receiving jobs")?;
    let took = start.elapsed();
    // Every job reached a worker, but the last Dones may still be on their way: a worker
    // stopped now would leave its jobs running until their lease ran out, and
    // `bench/cluster` would count them as left in the database.
    until_task_empty(addr, task).await?;
    for w in workers {
        w.abort();
    }
    let name = match how {
        Submits::Unary => "e2e",
        Submits::Batch => "e2e-batch",
        Submits::Stream => "e2e-stream",
    };
    Ok(result(name, total, took, &h))
}

/// Waits (10 s at most) until the server holds no job of `task`: none pending, scheduled or
/// running.
async fn until_task_empty(addr: &str, task: &str) -> Result<(), BoxError> {
    let mut c = SchedulerClient::new(channel(addr).await?);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = c
            .status(pb::StatusRequest { task: task.into() })
            .await?
            .into_inner();
        let held: u64 = status
            .tasks
            .iter()
            .map(|t| t.pending + t.scheduled + t.running)
            .sum();
        if held == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{held} jobs of {task} still held 10 s after the last reached a worker"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// dispatch's worker over tonic's client on a bare HTTP/2 connection (capacity 1, Done at
/// once), taken on by the server when this returns.
async fn tonic_round_trip_worker(addr: &str) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let (tx, rx) = hello("bench-rt", 1).await?;
    let mut inbound = direct_client(addr).await?.work(rx).await?.into_inner();
    // Wait for the welcome so the first RunJob finds the worker.
    inbound.message().await?;
    Ok(answer_done(inbound, tx, |_| {}))
}

/// A Work-stream worker of `task` over tonic's client (capacity 256) that calls `on_job`
/// with each job and answers Done at once.
async fn tonic_worker(
    addr: &str,
    task: &str,
    on_job: impl FnMut(&pb::Job) + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, BoxError> {
    let (tx, rx) = hello(task, 256).await?;
    let inbound = SchedulerClient::new(channel(addr).await?)
        .work(rx)
        .await?
        .into_inner();
    Ok(answer_done(inbound, tx, on_job))
}

/// A worker's outbound messages, its hello to `task` with `capacity` already in them.
async fn hello(
    task: &str,
    capacity: u32,
) -> Result<
    (
        mpsc::Sender<pb::WorkerMessage>,
        ReceiverStream<pb::WorkerMessage>,
    ),
    BoxError,
> {
    let (tx, rx) = mpsc::channel(1024);
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::WorkerHello {
            tasks: vec![task.to_string()],
            capacity,
            name: "bench".into(),
            broadcast_tasks: vec![],
        })),
    })
    .await?;
    Ok((tx, ReceiverStream::new(rx)))
}

/// Answers Done to every job on `inbound` through `tx`, calling `on_job` first.
fn answer_done(
    mut inbound: tonic::Streaming<pb::ServerMessage>,
    tx: mpsc::Sender<pb::WorkerMessage>,
    mut on_job: impl FnMut(&pb::Job) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            if let Some(Out::Job(j)) = m.msg {
                on_job(&j);
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
    })
}

/// One RunJob at a time through a remote worker that answers at once.
///
/// The caller and the worker share one thread (a current-thread runtime of their own), as
/// a lean client would: on the bench's multi-threaded runtime each message also crossed
/// between its two workers (a response read on one, the next call sent from the other),
/// and on a 2-vCPU VM such a hand-off costs about 30 µs. That is the client's time, not
/// the server's; BENCHMARKS.md gives both figures.
async fn dispatch(a: &BenchArgs, addr: &str) -> Result<BenchResult, BoxError> {
    let (a, addr) = (a.clone(), addr.to_string());
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(dispatch_here(&a, &addr))
    })
    .await?
}

/// [`dispatch`] on the calling thread's runtime.
async fn dispatch_here(a: &BenchArgs, addr: &str) -> Result<BenchResult, BoxError> {
    let worker = match a.grpc_client {
        GrpcClient::Lean => {
            let mut w = lean_grpc::LeanClient::connect_plain(addr).await?;
            let (welcomed, welcome) = tokio::sync::oneshot::channel();
            let worker = tokio::spawn(async move {
                let _ = w.work_done("bench-rt", 1, welcomed, |_| {}).await;
            });
            // Wait for the welcome so the first RunJob finds the worker.
            welcome
                .await
                .map_err(|_| "dispatch: the worker's stream ended before its welcome")?;
            worker
        }
        GrpcClient::Tonic => tonic_round_trip_worker(addr).await?,
    };
    let n = (a.jobs / 10).max(10);
    let mut c = RoundTripClient::connect(a.grpc_client, addr).await?;
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
