//! Server configuration: what `taskhive serve` flags set, with defaults for the embedded quick start.

use std::path::PathBuf;

use crate::store::sqlite::Sync;

pub use crate::face_limits::Limits;
pub use crate::load::LoadConfig;

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
    /// Submitted jobs admitted and not yet committed at most: past it, further submits wait
    /// (on one node for the store's writer, in a cluster for the shared database). See
    /// ARCHITECTURE.md, "Where every queue is bounded".
    pub backlog_jobs: usize,
    /// The same bound for those jobs' payload bytes.
    pub backlog_bytes: usize,
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
            backlog_jobs: crate::store::writer::DEFAULT_BACKLOG_JOBS,
            backlog_bytes: crate::store::writer::DEFAULT_BACKLOG_BYTES,
        }
    }
}
