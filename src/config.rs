//! Server configuration: what `taskhive serve` flags set, with defaults for the embedded quick start.

use std::path::PathBuf;

use crate::scheduler::job::RetryPolicy;
use crate::store::sqlite::Sync;

/// Everything the server needs to start.
#[derive(Debug)]
pub struct Config {
    /// Directory of the embedded store (created on first start).
    pub data_dir: PathBuf,
    /// Commit durability.
    pub sync: Sync,
    /// Request limits and job defaults.
    pub limits: Limits,
    /// Dead jobs kept at most.
    pub max_dead: usize,
    /// How long shutdown waits for open calls.
    pub shutdown_grace: std::time::Duration,
    /// Bound listeners of the Periodic-protocol face.
    pub periodic: Vec<crate::periodic::Listener>,
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1 << 20,
            default_timeout_ms: 600_000,
            default_retry: RetryPolicy::default(),
            max_schedule_ahead_ms: 10 * 366 * 24 * 3600 * 1000,
        }
    }
}

impl Config {
    /// Defaults with the store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            sync: Sync::Full,
            limits: Limits::default(),
            max_dead: 100_000,
            shutdown_grace: std::time::Duration::from_secs(5),
            periodic: Vec::new(),
        }
    }
}
