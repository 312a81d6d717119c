//! What the core asks the store to keep: its writes of jobs, in the order it made them. The
//! store carries each as one of its ops (`store::Op::Job`), so the pure core
//! names nothing outside the scheduler.

use super::job::{JobId, JobRecord, Millis};

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
