//! The `taskhive` command line: `serve` plus client commands that speak gRPC to a server.

pub mod agent;
pub mod bench;
pub mod commands;
pub mod conn;
pub mod cron;
pub mod error;
pub mod exec_worker;
pub mod jobs;
pub mod limit;
pub mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// taskhive: a durable job scheduler and load runner.
#[derive(Parser, Debug)]
#[command(name = "taskhive", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where client commands find the server.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server address (host:port or http://host:port).
    #[arg(long, env = "TASKHIVE_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// Bearer token, for a server started with --auth.
    #[arg(long, env = "TASKHIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify a TLS server with; implies https.
    #[arg(long, env = "TASKHIVE_CA")]
    pub ca: Option<PathBuf>,
}

/// Every subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (embedded SQLite store, nothing to set up).
    Serve(Box<ServeArgs>),
    /// Submit (or replace) a job.
    Submit(SubmitArgs),
    /// Remove a job; a running one is cancelled (its worker is told to stop; `run --exec`
    /// sends its command SIGTERM) and a late report for it is refused.
    #[command(visible_alias = "cancel")]
    Remove {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Job name.
        #[arg(short = 'n', long)]
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Show per-task status.
    Status {
        /// Only this task.
        #[arg(short = 'f', long = "func", alias = "task")]
        task: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Drop a task and its jobs (refused while workers serve it).
    Drop {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Write every job to FILE (length-delimited protobuf).
    Dump {
        /// Output file.
        file: PathBuf,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Restore jobs from a FILE written by `dump`.
    Restore {
        /// Input file (written by `dump`).
        file: PathBuf,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Drive the load runner (`load save job.json`, `load jobs`, `load tasks`,
    /// `load exec NAME`, ...).
    #[command(args_conflicts_with_subcommands = true)]
    Load {
        /// A load runner command.
        #[command(subcommand)]
        runner: Option<load::LoadCommand>,
        /// Deprecated: `load FILE` restores a dump; use `taskhive restore FILE`.
        #[arg(hide = true)]
        file: Option<PathBuf>,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// List a task's jobs (all pages, or up to --limit), in the server's listing order:
    /// running, pending (run order), scheduled (due time), dead.
    Jobs(jobs::JobsArgs),
    /// Inspect or act on the dead set.
    Dead {
        /// list, retry or purge.
        #[arg(value_parser = ["list", "retry", "purge"])]
        action: String,
        /// Only this task.
        #[arg(short = 'f', long = "func", alias = "task")]
        task: Option<String>,
        /// Only this job.
        #[arg(short = 'n', long)]
        name: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Get or set run-time settings (timeout, lock-timeout, ...).
    Config {
        /// get or set.
        #[arg(value_parser = ["get", "set"])]
        action: String,
        /// Setting name (get: all when omitted).
        key: Option<String>,
        /// New value (set).
        value: Option<i64>,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a job: its state, attempts and, once done (with `serve --keep-results`), its
    /// result and finish time.
    Get {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Job name.
        #[arg(short = 'n', long)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause a task: its jobs are accepted and kept, none is handed out; running ones finish.
    Pause {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a paused task.
    Resume {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Flow control: `limit set -f TASK --max-running N --rate 100/s [--burst B]
    /// [--max-running-per-key N] [--rate-per-key 10/s]`, `limit show [-f TASK]`,
    /// `limit clear -f TASK`.
    Limit {
        /// A limit command.
        #[command(subcommand)]
        action: limit::LimitCommand,
    },
    /// Schedules: `cron add NAME --cron EXPR -f TASK`, `cron list`, `cron show NAME`,
    /// `cron pause NAME`, `cron resume NAME`, `cron rm NAME`.
    Cron {
        /// A schedule command.
        #[command(subcommand)]
        action: cron::CronCommand,
    },
    /// Run a shell command for each job of a task (Periodic's `run --exec`).
    Run(exec_worker::RunArgs),
    /// Be a load agent: take shares of load executions from the server (`load exec
    /// --agents N`) and run them here with the built-in HTTP classes.
    Agent(agent::AgentArgs),
    /// Measure throughput and latency (submit, e2e, dispatch).
    Bench(bench::BenchArgs),
    /// Make tokens-file lines for `serve --auth`.
    Auth {
        /// hash or add.
        #[command(subcommand)]
        action: AuthCommand,
    },
}

/// `taskhive auth` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Print the tokens-file line for TOKEN (its SHA-256; the token itself is not stored).
    Hash {
        /// The token.
        token: String,
        /// Role: client, worker or admin.
        #[arg(long, default_value = "client", value_parser = ["client", "worker", "admin"])]
        role: String,
        /// A label shown in logs.
        #[arg(long)]
        name: Option<String>,
    },
    /// Make a random token, append its line to FILE, print the token (shown only once).
    Add {
        /// The tokens file (created when missing, mode 0600).
        file: PathBuf,
        /// Role: client, worker or admin.
        #[arg(long, value_parser = ["client", "worker", "admin"])]
        role: String,
        /// A label shown in logs.
        #[arg(long)]
        name: Option<String>,
    },
}

/// `taskhive serve` flags.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (gRPC).
    #[arg(long, default_value = "127.0.0.1:5000", env = "TASKHIVE_LISTEN")]
    pub listen: SocketAddr,
    /// Data directory of the embedded store.
    #[arg(long, default_value = "./taskhive-data", env = "TASKHIVE_DATA")]
    pub data: PathBuf,
    /// Store: `postgres://user@host:port/db` (PostgreSQL), or `sqlite:DIR` (same as --data DIR).
    /// Default: SQLite in --data.
    #[arg(long, env = "TASKHIVE_STORE", value_parser = parse_store)]
    pub store: Option<StoreArg>,
    /// Cluster mode: this node's id (unique among live nodes); needs a postgres:// --store.
    #[arg(long, env = "TASKHIVE_NODE_ID")]
    pub node_id: Option<String>,
    /// Cluster mode: a dead node's jobs are claimed again after this (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub claim_ttl: Duration,
    /// Cluster mode: safety-net poll for unannounced work and expired claims (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Commit durability: full (fsync each commit) or normal (survives process crashes only).
    #[arg(long, value_enum, default_value_t = SyncArg::Full)]
    pub sync: SyncArg,
    /// Largest job payload in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_args_bytes: usize,
    /// Lease length of jobs that set none (e.g. 600s, 10m).
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,
    /// Attempts before a failing job goes to the dead set.
    #[arg(long, default_value_t = 25)]
    pub max_attempts: u32,
    /// Dead jobs kept at most.
    #[arg(long, default_value_t = 100_000)]
    pub max_dead: usize,
    /// Also speak the Periodic protocol here (repeatable): unix:///tmp/periodic.sock, tcp://127.0.0.1:5001.
    #[arg(long = "periodic-listen", value_name = "ADDR")]
    pub periodic_listen: Vec<String>,
    /// Load runner: TOML file declaring named HTTP task classes.
    #[arg(long = "tasks")]
    pub tasks_file: Option<PathBuf>,
    /// Load runner: also write every finished JobExec to this directory as JSON.
    #[arg(long)]
    pub archive_dir: Option<PathBuf>,
    /// Load runner: executions listed per task in a JobExec (the rest are only counted).
    #[arg(long, default_value_t = 10_000)]
    pub max_executions: usize,
    /// Load runner: most swarms a job may ask for.
    #[arg(long, default_value_t = 10_000)]
    pub max_swarms: u64,
    /// Load runner: archived executions kept in the store.
    #[arg(long, default_value_t = 1_000)]
    pub max_archived: usize,
    /// Load runner: how long a worker may take on a remote task run (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub remote_timeout: Duration,
    /// Tokens file (lines `ROLE SHA256-HEX [NAME]`); every call then needs a token.
    #[arg(long, env = "TASKHIVE_AUTH")]
    pub auth: Option<PathBuf>,
    /// Log lines on stderr: text (for people) or json (one object per line, for log shippers).
    #[arg(long, value_enum, default_value = "text", env = "TASKHIVE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317): spans of
    /// submit, commit, dispatch and run, joined to a client's `traceparent`. Off when unset.
    #[arg(long, env = "TASKHIVE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// TLS certificate chain (PEM) for the gRPC/HTTP port.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Where built-in HTTP load tasks may send traffic: comma list of host, host:port,
    /// address or CIDR, or * (default: any host without --auth, loopback only with it).
    #[arg(long, value_parser = crate::load::allow::Allow::parse)]
    pub load_allow: Option<crate::load::allow::Allow>,
    /// Also trust these PEM certificates (a private CA) for https:// load targets and
    /// webhooks, besides the web PKI roots and the system store (or SSL_CERT_FILE).
    #[arg(long, value_name = "FILE")]
    pub load_ca: Option<PathBuf>,
    /// Permit tasks-file classes with `insecure_skip_verify = true` (certificates unchecked);
    /// without it such a class stops the server at start-up.
    #[arg(long)]
    pub load_insecure_tls: bool,
    /// Largest incoming gRPC message, HTTP body or Periodic frame in bytes (0: --max-args-bytes + 64 KiB).
    #[arg(long, default_value_t = 0)]
    pub max_message_bytes: usize,
    /// Jobs the server holds at most (dead ones included); new submits past it are refused.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_jobs: usize,
    /// Jobs one task holds at most (dead ones included).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_jobs_per_task: usize,
    /// Workers one task may have registered at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_workers_per_task: usize,
    /// Concurrent HTTP/2 streams (calls) per connection.
    #[arg(long, default_value_t = 1024)]
    pub max_concurrent_streams: u32,
    /// Requests per second per connection (gRPC calls and HTTP requests); 0 = no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Requests a connection may burst above --rate-limit (default: one second's worth).
    #[arg(long, default_value_t = 0)]
    pub rate_burst: u32,
    /// From accept: the TLS handshake, HTTP/2 preface or HTTP/1 request head, or the Periodic
    /// client type must arrive within this (e.g. 10s), else the connection is closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Close connections with no request or stream open (Periodic: silent, and not a
    /// worker) after this (e.g. 5min). Worker streams are never idle.
    #[arg(long, default_value = "5min", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// HTTP/2: ping a connection silent this long; close it when the ping is not answered
    /// within 20 s (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,
    /// Threads that serve connections and run the scheduler; default: one per CPU this
    /// process may run on. The store's writer has a thread of its own besides. On a 2-CPU
    /// machine 1 gives shorter round trips and less CPU per job, 2 more one-job-per-call
    /// throughput (BENCHMARKS.md, "One runtime worker or two").
    #[arg(long, env = "TASKHIVE_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Open connections at most, every listener together; more are closed at accept. 0 = no cap.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections from one IP address at most; 0 = no cap.
    #[arg(long, default_value_t = 1_000)]
    pub max_connections_per_ip: usize,
    /// SQLite store: refuse new jobs while the data directory's filesystem has less free
    /// space than this (bytes, or 512MiB, 2GB, ...); 0 = off. Reports and removes go on.
    #[arg(long, default_value = "1GiB", value_parser = crate::store::disk::parse_size)]
    pub min_free_disk: u64,
    /// Job payloads held in memory at most (bytes, or 256MiB, 1GB, ...); payloads past it
    /// stay in the store, those of the jobs due last first, and are read back when their job
    /// is handed out or shown. 0 = hold every payload. Payloads under 1 KiB are always held.
    #[arg(long, default_value = "256MiB", value_parser = crate::store::disk::parse_size)]
    pub payload_memory: u64,
    /// Submitted jobs not yet committed at most (one node: waiting for the store's writer;
    /// a cluster node: for the shared database); past it further submits wait instead of
    /// queueing without end.
    #[arg(long, default_value_t = crate::store::writer::DEFAULT_BACKLOG_JOBS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub submit_backlog: usize,
    /// The same bound for those jobs' payloads (bytes, or 256MiB, 1GB, ...).
    #[arg(long, default_value = "256MiB", value_parser = crate::store::disk::parse_size)]
    pub submit_backlog_bytes: u64,
    /// On SIGTERM, SIGINT or /quit: how long results of jobs already handed out may still
    /// arrive before the rest go back to pending (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// How long a finished job's state, result, attempts and finish time stay readable
    /// (GetJob, `taskhive get`, WatchJob), e.g. 1h; 0 = not kept.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub keep_results: Duration,
}

/// `taskhive submit` flags.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Task (func).
    #[arg(short = 'f', long = "func", alias = "task")]
    pub task: String,
    /// Job name.
    #[arg(short = 'n', long)]
    pub name: String,
    /// Payload; read from stdin when absent and stdin is not a terminal.
    #[arg(long)]
    pub args: Option<String>,
    /// Run at this unix time (seconds).
    #[arg(long, conflicts_with = "delay")]
    pub at: Option<i64>,
    /// Run after this delay (e.g. 5s, 2m).
    #[arg(long = "in", value_parser = humantime::parse_duration)]
    pub delay: Option<Duration>,
    /// Lease length (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Higher runs first among due jobs.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    /// Flow-control key (a tenant, an account, a host): per-key limits and fairness.
    #[arg(long)]
    pub key: Option<String>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: Conn,
}

/// The server configuration `serve` flags describe.
pub fn serve_config(a: &ServeArgs) -> crate::config::Config {
    let mut c = crate::config::Config::new(&a.data);
    match &a.store {
        Some(StoreArg::Sqlite(dir)) => c.data_dir = dir.clone(),
        Some(StoreArg::Postgres(url)) => c.postgres_url = Some(url.clone()),
        None => {}
    }
    c.sync = match a.sync {
        SyncArg::Full => crate::store::sqlite::Sync::Full,
        SyncArg::Normal => crate::store::sqlite::Sync::Normal,
    };
    c.limits.max_args_bytes = a.max_args_bytes;
    c.limits.default_timeout_ms = a.default_timeout.as_millis().min(u32::MAX as u128) as u32;
    c.limits.default_retry.max_attempts = a.max_attempts.max(1);
    c.max_dead = a.max_dead;
    c.shutdown_grace = a.shutdown_grace;
    c.keep_results = a.keep_results;
    if let Some(node) = &a.node_id {
        let mut cc = crate::cluster::ClusterConfig::new(node.clone());
        cc.keep_results = a.keep_results;
        cc.claim_ttl = a.claim_ttl.max(Duration::from_millis(100));
        cc.poll_interval = a.poll_interval.max(Duration::from_millis(10));
        c.cluster = Some(cc);
    }
    c.load.tasks_file = a.tasks_file.clone();
    c.load.archive_dir = a.archive_dir.clone();
    c.load.max_executions = a.max_executions;
    c.load.max_swarms = a.max_swarms;
    c.load.max_archived = a.max_archived;
    c.load.remote_timeout_ms = a.remote_timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
    c.load.ca_file = a.load_ca.clone();
    c.load.insecure_tls = a.load_insecure_tls;
    c.auth = a.auth.clone();
    // With auth on, a client token must not be able to aim traffic anywhere by default.
    c.load.allow = match (&a.load_allow, &a.auth) {
        (Some(allow), _) => allow.clone(),
        (None, Some(_)) => crate::load::allow::Allow::loopback(),
        (None, None) => crate::load::allow::Allow::Any,
    };
    c.net.tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(crate::net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: a.tls_client_ca.clone(),
        }),
        _ => None,
    };
    c.limits.max_message_bytes = a.max_message_bytes;
    c.max_jobs = a.max_jobs;
    c.max_jobs_per_task = a.max_jobs_per_task;
    c.max_workers_per_task = a.max_workers_per_task;
    c.net.max_concurrent_streams = a.max_concurrent_streams;
    c.net.rate_per_sec = a.rate_limit;
    c.net.rate_burst = a.rate_burst;
    // A zero timeout would close every connection at once (or spin): at least 1 ms.
    c.net.header_read_timeout = a.header_read_timeout.max(Duration::from_millis(1));
    c.net.idle_timeout = a.idle_timeout.max(Duration::from_millis(1));
    c.net.keepalive_interval = a.keepalive_interval.max(Duration::from_millis(1));
    c.net.keepalive_timeout = Duration::from_secs(20).min(c.net.keepalive_interval);
    c.net.max_connections = a.max_connections;
    c.net.max_connections_per_ip = a.max_connections_per_ip;
    c.min_free_disk = a.min_free_disk;
    c.payload_memory = a.payload_memory;
    c.backlog_jobs = a.submit_backlog;
    c.backlog_bytes = usize::try_from(a.submit_backlog_bytes).unwrap_or(usize::MAX);
    c
}

/// Runs `taskhive auth hash|add`.
pub fn auth_command(cmd: AuthCommand) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use std::io::Write;
    let line = |role: &str, token: &str, name: &Option<String>| {
        let hash = crate::auth::hash_hex(token);
        match name {
            Some(n) => format!("{role} {hash} {n}"),
            None => format!("{role} {hash}"),
        }
    };
    match cmd {
        AuthCommand::Hash { token, role, name } => println!("{}", line(&role, &token, &name)),
        AuthCommand::Add { file, role, name } => {
            use std::os::unix::fs::OpenOptionsExt;
            let token = crate::auth::new_token();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            writeln!(f, "{}", line(&role, &token, &name))?;
            // Read it back: a line the server would refuse should fail here, not at start-up.
            crate::auth::Tokens::load(&file)?;
            println!("{token}");
        }
    }
    Ok(())
}

/// `serve --sync`: how durable a commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncArg {
    /// fsync every commit.
    Full,
    /// Survive process crashes, not power loss.
    Normal,
}

/// `serve --log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, fields such as task, job, job_id).
    Json,
}

/// The runtime every command runs on: multi-threaded, with `serve --worker-threads` workers
/// when given (else tokio's default, one per CPU this process may run on).
pub fn runtime(cli: &Cli) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Command::Serve(args) = &cli.command {
        if let Some(n) = args.worker_threads {
            b.worker_threads(usize::from(n));
        }
    }
    b.build()
}

/// Runs a command's future to completion as a task on `rt`'s workers, not on the calling
/// thread: a future that `block_on` polls on the main thread needs a cross-thread wake-up
/// for every event its connections' tasks hand it (measured: two more thread hops per
/// RunJob round trip in `taskhive bench`). A panic in the command is raised again here.
pub fn run_on_workers<F>(rt: &tokio::runtime::Runtime, command: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(command))
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Sets up logging on stderr: `RUST_LOG` filters (default info).
///
/// With an OTLP endpoint it also starts the trace exporter (inside the Tokio runtime: call it
/// there) and answers it; keep it until exit, its drop flushes the last spans. The log filter
/// (`RUST_LOG`) applies to the log lines only, not to the exported spans.
pub fn init_logging(
    format: LogFormat,
    otlp: Option<(&str, &str)>,
) -> Result<Option<crate::telemetry::Exporter>, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // A log on a full disk must not take the server down: the fallback report of a
        // failed log write goes through eprintln!, which panics when stderr cannot be written.
        .log_internal_errors(false);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let exporter = match otlp {
        Some((endpoint, node)) => Some(crate::telemetry::Exporter::start(endpoint, node)?),
        None => None,
    };
    let otel = exporter.as_ref().map(|e| e.layer());
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    Ok(exporter)
}

/// Where `serve --store` puts the store.
#[derive(Clone, Debug)]
pub enum StoreArg {
    /// SQLite in this directory.
    Sqlite(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

fn parse_store(s: &str) -> Result<StoreArg, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        crate::store::pg_tls::check_url(s).map_err(|e| e.to_string())?;
        Ok(StoreArg::Postgres(s.to_string()))
    } else if let Some(dir) = s.strip_prefix("sqlite:") {
        if dir.is_empty() {
            return Err("store: sqlite: needs a directory (sqlite:DIR)".into());
        }
        Ok(StoreArg::Sqlite(PathBuf::from(dir)))
    } else {
        Err("store: expected postgres://... or sqlite:DIR".into())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
