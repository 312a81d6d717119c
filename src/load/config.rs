//! The load runner's own settings, set by `taskhive serve` flags.

use std::path::PathBuf;

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
    pub allow: super::allow::Allow,
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
            allow: super::allow::Allow::Any,
            ca_file: None,
            insecure_tls: false,
        }
    }
}
