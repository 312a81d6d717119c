//! What the scheduler asks the store to keep, in the order it made the changes: the core's
//! writes of jobs ([`JobWrite`]) and the actor's own ([`Write`]). The store carries each as
//! one of its ops (`store::Op::Scheduler`), so the scheduler names nothing of the store.

use super::job::{JobId, JobRecord, Millis};
use super::schedule::ScheduleRow;

/// One change the scheduler makes to what is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A write of the core (upsert, reschedule, delete, delete-task). The core keeps
    /// (task, name) unique: a replaced job keeps its id, so a store needs no index on
    /// (task, name).
    Job(JobWrite),
    /// Cluster: give these jobs' claims back (fenced by this node's claims); other stores
    /// keep no claims and ignore it.
    Release(Vec<JobId>),
    /// Store a run-time setting.
    SetConfig {
        /// Setting name.
        key: String,
        /// Its value.
        value: i64,
    },
    /// Insert or replace a schedule (by name).
    PutSchedule(ScheduleRow),
    /// Delete a schedule.
    DeleteSchedule(String),
    /// Pause (`paused`) or resume a task.
    SetTaskPaused {
        /// The task.
        task: String,
        /// Paused.
        paused: bool,
    },
    /// Set a task's flow-control limits (`TaskLimits::to_stored`), or clear them (None).
    SetTaskLimits {
        /// The task.
        task: String,
        /// The limits as stored text; None = no limits.
        limits: Option<String>,
    },
}

impl From<JobWrite> for Write {
    fn from(w: JobWrite) -> Write {
        Write::Job(w)
    }
}

/// One change to the stored jobs, as the core made it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobWrite {
    /// Insert or fully replace a job by id (a replaced job keeps its id).
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
}
