//! Server configuration: what `taskhive serve` flags set, with defaults for the embedded quick start.

use std::path::PathBuf;

use crate::scheduler::job::RetryPolicy;
use crate::store::sqlite::Sync;

/// Everything the server needs to start.
#[derive(Debug)]
pub struct Config {
    /// Directory of the embedded store (created on first start).
    pub data_dir: PathBuf,
    /// PostgreSQL URL of the store (`serve --store postgres://...`); None: SQLite in `data_dir`.
    pub postgres_url: Option<String>,
    /// Cluster mode (several nodes on the PostgreSQL store): this node's settings.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Commit durability.
    pub sync: Sync,
    /// Request limits and job defaults.
    pub limits: Limits,
    /// Dead jobs kept at most.
    pub max_dead: usize,
    /// How long shutdown waits for open calls.
    pub shutdown_grace: std::time::Duration,
    /// How long a finished job's outcome stays readable (`serve --keep-results`; 0 = not kept).
    pub keep_results: std::time::Duration,
    /// Bound listeners of the Periodic-protocol face.
    pub periodic: Vec<crate::periodic::Listener>,
    /// Load runner settings.
    pub load: LoadConfig,
    /// Tokens file (`--auth`); every call needs a token when set.
    pub auth: Option<PathBuf>,
    /// TLS, stream and rate limits of the shared port.
    pub net: crate::net::NetConfig,
    /// Jobs held at most (pending, scheduled, running and dead); submits past it are refused.
    pub max_jobs: usize,
    /// Jobs one task may hold at most.
    pub max_jobs_per_task: usize,
    /// Workers one task may have registered at most.
    pub max_workers_per_task: usize,
    /// SQLite store: below this many free bytes on the data directory's filesystem, new
    /// jobs are refused (reports, removes and reads go on). 0 = not watched. Not applied
    /// to PostgreSQL stores.
    pub min_free_disk: u64,
    /// Bytes of job payloads held in memory at most (`--payload-memory`); the rest stay in
    /// the store and are read when needed. 0 = every payload held. Not applied in a cluster
    /// (a node holds only the jobs it claimed).
    pub payload_memory: u64,
}

/// Load runner settings (`serve --tasks`, `--archive-dir`, ...).
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// TOML file declaring named HTTP task classes.
    pub tasks_file: Option<PathBuf>,
    /// Also write every finished JobExec here as a JSON file.
    pub archive_dir: Option<PathBuf>,
    /// Executions listed per task in a JobExec; the rest are counted in `n_executions_dropped`.
    pub max_executions: usize,
    /// Most swarms a job may ask for.
    pub max_swarms: u64,
    /// Archived executions kept in the store (oldest deleted first).
    pub max_archived: usize,
    /// Lease length of a remote task run: a worker silent this long fails the run.
    pub remote_timeout_ms: u32,
    /// Time limit of a webhook POST.
    pub webhook_timeout: std::time::Duration,
    /// Where built-in HTTP tasks and webhooks may send traffic.
    pub allow: crate::load::allow::Allow,
    /// PEM certificates trusted for https:// targets and webhooks, besides the web PKI and
    /// system roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Permits tasks-file classes with `insecure_skip_verify`.
    pub insecure_tls: bool,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            tasks_file: None,
            archive_dir: None,
            max_executions: 10_000,
            max_swarms: 10_000,
            max_archived: 1_000,
            remote_timeout_ms: 30_000,
            webhook_timeout: std::time::Duration::from_secs(30),
            allow: crate::load::allow::Allow::Any,
            ca_file: None,
            insecure_tls: false,
        }
    }
}

/// Limits and defaults applied to every submission.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted job payload.
    pub max_args_bytes: usize,
    /// Lease length when a job sets none.
    pub default_timeout_ms: u32,
    /// Retry policy fields a job leaves at zero.
    pub default_retry: RetryPolicy,
    /// How far ahead a job may be scheduled.
    pub max_schedule_ahead_ms: i64,
    /// Largest incoming gRPC message, HTTP body or Periodic frame; 0 = the payload limit plus 64 KiB.
    pub max_message_bytes: usize,
}

impl Limits {
    /// What a submit is checked against (the scheduler's submit model).
    pub fn submit(&self) -> crate::scheduler::submit::SubmitLimits {
        crate::scheduler::submit::SubmitLimits {
            max_args_bytes: self.max_args_bytes,
            max_schedule_ahead_ms: self.max_schedule_ahead_ms,
            default_retry: self.default_retry,
        }
    }

    /// The message and body size limit in force.
    pub fn message_limit(&self) -> usize {
        if self.max_message_bytes == 0 {
            self.max_args_bytes + 64 * 1024
        } else {
            self.max_message_bytes
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1 << 20,
            default_timeout_ms: 600_000,
            default_retry: RetryPolicy::default(),
            max_schedule_ahead_ms: 10 * 366 * 24 * 3600 * 1000,
            max_message_bytes: 0,
        }
    }
}

impl Config {
    /// Defaults with the store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            postgres_url: None,
            cluster: None,
            sync: Sync::Full,
            limits: Limits::default(),
            max_dead: 100_000,
            shutdown_grace: std::time::Duration::from_secs(5),
            keep_results: std::time::Duration::ZERO,
            periodic: Vec::new(),
            load: LoadConfig::default(),
            auth: None,
            net: crate::net::NetConfig::default(),
            max_jobs: 5_000_000,
            max_jobs_per_task: 1_000_000,
            max_workers_per_task: 10_000,
            min_free_disk: 1 << 30,
            payload_memory: 256 << 20,
        }
    }
}
