//! Durable storage behind a trait: the core's write-behind mirror and its start-up source.
//!
//! The scheduler core holds the live state in memory; every change it makes is an [`Op`]
//! applied here in order. The [`writer`] thread batches ops from many requests into one
//! transaction (group commit) and acknowledges each request only once its ops are committed.

pub mod memory;
pub mod sqlite;
pub mod writer;

use crate::scheduler::job::{JobId, JobRecord, Millis};

/// One change to the stored jobs, applied in the order the core produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or fully replace a job (by id, and by task and name).
    Upsert(JobRecord),
    /// Change a job's schedule, counters and dead flag; its payload stays.
    Reschedule {
        /// Job id.
        id: JobId,
        /// New due time.
        sched_at: Millis,
        /// Failed attempts.
        attempts: u32,
        /// SchedLater count.
        run_count: u32,
        /// In the dead set.
        dead: bool,
        /// Last failure.
        last_error: String,
    },
    /// Delete a job.
    Delete(JobId),
    /// Delete every job of a task.
    DeleteTask(String),
    /// Store a run-time setting.
    SetConfig {
        /// Setting name.
        key: String,
        /// Its value.
        value: i64,
    },
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, disk full, read-only, corruption).
    #[error("{0}")]
    Backend(String),
    /// The writer thread has stopped.
    #[error("store writer stopped")]
    Closed,
}

/// A job store: applies batches of ops atomically and reads everything back at start-up.
pub trait Store: Send + 'static {
    /// Applies `ops` in order in one transaction: all of them are committed or none.
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError>;
    /// Every stored job, in id order.
    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError>;
    /// Every stored run-time setting.
    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError>;
}
