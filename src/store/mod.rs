//! Durable storage behind a trait: the core's write-behind mirror and its start-up source.
//!
//! The scheduler core holds the live state in memory; every change it makes is an [`Op`]
//! applied here in order. The [`writer`] thread batches ops from many requests into one
//! transaction (group commit) and acknowledges each request only once its ops are committed.
//!
//! The load runner's saved jobs and archived executions live in the same store and go
//! through the same writer; they are read back through a [`StoreReader`], which works
//! beside the writer thread (SQLite: a second, read-only connection on the WAL database).

pub mod disk;
pub mod memory;
mod moot;
pub mod pg_tls;
pub mod postgres;
pub mod sqlite;
mod syncing;
pub mod writer;

pub use crate::scheduler::durable::StoreError;
use crate::scheduler::job::{JobId, JobRecord};
pub use crate::scheduler::schedule::ScheduleRow;
pub use crate::scheduler::stored::StoredJobs;
pub use crate::scheduler::write::{JobWrite, Write};
pub(crate) use moot::moot_writes;

/// One change to what is stored, applied in the order it was queued.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A change of the scheduler's (jobs, settings, schedules, task state).
    Scheduler(Write),
    /// Insert or replace a load job (by name); `json` is its canonical document.
    SaveLoadJob {
        /// Job name.
        name: String,
        /// The job as Beetle's `/jobs` shows it.
        json: String,
    },
    /// Archive a finished load execution (replacing one with the same id).
    ArchiveExec(ExecRow),
    /// Keep only the newest `n` archived executions.
    TrimExecs(usize),
}

/// An archived load execution: summary columns for listing, and the whole JobExec document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRow {
    /// Execution id (a UUID).
    pub id: String,
    /// Load job name.
    pub name: String,
    /// Start time as the report writes it (UTC, sorts as text).
    pub t_start: String,
    /// Run time in microseconds.
    pub elapsed_usec: u64,
    /// Tasks run.
    pub n_task: u64,
    /// Tasks failed.
    pub n_fail: u64,
    /// Some task exceeded a threshold.
    pub threshold_exceeded: bool,
    /// The run was cut short.
    pub aborted: bool,
    /// The JobExec JSON; empty in listings.
    pub json: String,
}

impl From<Write> for Op {
    fn from(w: Write) -> Op {
        Op::Scheduler(w)
    }
}

impl From<JobWrite> for Op {
    fn from(w: JobWrite) -> Op {
        Op::Scheduler(Write::Job(w))
    }
}

/// A job store: applies batches of ops atomically and reads everything back at start-up.
pub trait Store: Send + 'static {
    /// Applies `ops` in order in one transaction: all of them are committed or none.
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError>;
    /// The jobs whose writes in the last `apply` were fenced out and changed nothing (a
    /// store that fences claims); empty elsewhere.
    fn take_fenced(&mut self) -> Vec<JobId> {
        Vec::new()
    }
    /// Upkeep that follows a commit once its callers have heard of it, or its sync is under
    /// way (SQLite: a WAL checkpoint every so many commits); nothing in a store that needs none.
    fn after_acks(&mut self) {}
    /// From now on `apply` leaves its commits to be made durable by the returned [`Syncer`]
    /// (SQLite with `--sync full`: the WAL's fdatasync, taken out of the commit), so that the
    /// writer can apply the next batch while the last one is synced. None: `apply` stays
    /// durable by itself (the default, and every store that has nothing to gain).
    fn take_syncer(&mut self) -> Result<Option<Box<dyn Syncer>>, StoreError> {
        Ok(None)
    }
    /// Every stored job, in id order.
    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError>;
    /// Every stored job, in id order, task names held once (start-up). With `spill_from`,
    /// payloads of that many bytes or more are not read: such a record has an empty `args`
    /// and `spilled` set to the payload's length (the payload budget reads them later).
    fn load_stored_jobs(&mut self, spill_from: Option<usize>) -> Result<StoredJobs, StoreError> {
        let mut stored = StoredJobs::from_records(self.load_jobs()?);
        if let Some(n) = spill_from {
            for (_, r) in &mut stored.jobs {
                if r.args.len() >= n {
                    r.spilled = Some(r.args.len() as u32);
                    r.args = bytes::Bytes::new();
                }
            }
        }
        Ok(stored)
    }
    /// The payloads of `ids` (of those still stored), read back for jobs whose payload
    /// memory let go (`serve --payload-memory`).
    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, bytes::Bytes)>, StoreError>;
    /// The stored jobs among `ids` and every stored job of `tasks` (resync after a failed commit).
    fn load_some(&mut self, ids: &[JobId], tasks: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let ids: std::collections::HashSet<JobId> = ids.iter().copied().collect();
        Ok(self
            .load_jobs()?
            .into_iter()
            .filter(|r| ids.contains(&r.id) || tasks.contains(&r.task))
            .collect())
    }
    /// Every stored run-time setting.
    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Every saved load job as `(name, json)`, in name order.
    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    /// A reader that can be used from other threads while this store writes.
    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError>;
    /// Every stored schedule, in name order.
    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError>;
    /// The paused tasks.
    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError>;
    /// Every task's stored limits, as `(task, text)` in task order.
    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        (**self).apply(ops)
    }
    fn take_fenced(&mut self) -> Vec<JobId> {
        (**self).take_fenced()
    }
    fn after_acks(&mut self) {
        (**self).after_acks()
    }
    fn take_syncer(&mut self) -> Result<Option<Box<dyn Syncer>>, StoreError> {
        (**self).take_syncer()
    }
    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        (**self).load_jobs()
    }
    fn load_stored_jobs(&mut self, spill_from: Option<usize>) -> Result<StoredJobs, StoreError> {
        (**self).load_stored_jobs(spill_from)
    }
    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, bytes::Bytes)>, StoreError> {
        (**self).read_args(ids)
    }
    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        (**self).load_config()
    }
    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        (**self).load_load_jobs()
    }
    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError> {
        (**self).reader()
    }
    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        (**self).load_schedules()
    }
    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError> {
        (**self).load_paused_tasks()
    }
    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        (**self).load_task_limits()
    }
}

/// Makes every commit a store's `apply` has returned from durable; runs on a thread of its
/// own ([`Store::take_syncer`]).
pub trait Syncer: Send + 'static {
    /// Returns once everything committed before the call is on disk.
    fn sync(&mut self) -> Result<(), StoreError>;
}

/// Read access to archived load executions, independent of the writer thread.
/// Calls block (disk reads): call them from `spawn_blocking`.
pub trait StoreReader: Send + Sync + 'static {
    /// The newest executions first (of job `name` when given), at most `limit`; `json` left empty.
    fn list_execs(&self, name: Option<&str>, limit: usize) -> Result<Vec<ExecRow>, StoreError>;
    /// One execution with its JSON document.
    fn get_exec(&self, id: &str) -> Result<Option<ExecRow>, StoreError>;
    /// One saved load job's JSON (cluster: a job another node saved).
    fn get_load_job(&self, name: &str) -> Result<Option<String>, StoreError>;
}
