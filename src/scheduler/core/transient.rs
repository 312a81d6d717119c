//! Transient jobs: runs that live in memory only, for the load runner's remote task classes.
//!
//! A load run of a remote class is a one-shot job whose loss in a crash is correct (the
//! execution is lost with it), so it is not worth two store commits. A transient job is
//! submitted with an id carrying [`TRANSIENT_BIT`] and is then an ordinary job of the core
//! (leases, heartbeats, reports, RunJob waiters, metrics) except that nothing about it is
//! written ([`Core::persist`] drops it), a Dump skips it, and a final failure hands the error
//! to its waiter instead of keeping it in the dead set.

use super::Core;
use crate::scheduler::error::Error;
use crate::scheduler::job::{JobId, JobSpec, Millis};

/// Marks a transient job's id (cluster job ids come from a database sequence and never reach
/// it; a node's own ids count up from 1).
pub const TRANSIENT_BIT: JobId = 1 << 61;

/// Whether `id` is a transient job.
pub fn is_transient(id: JobId) -> bool {
    id & TRANSIENT_BIT != 0
}

/// Whether nothing about job `id` is ever written (a transient job or a broadcast part).
pub(crate) fn in_memory_only(id: JobId) -> bool {
    is_transient(id) || super::is_part(id)
}

impl Core {
    /// Submits a transient job; its name must be new in its task (a load run's is). Refused
    /// (`NoWorker`) when no worker here serves the task, so a cluster node can fall back to
    /// a durable job that any node's workers may take.
    pub fn submit_transient(&mut self, spec: JobSpec, now: Millis) -> Result<JobId, Error> {
        if !self.has_worker(&spec.task) {
            return Err(Error::NoWorker { task: spec.task });
        }
        self.check_room(&spec.task, &spec.name)?;
        let tid = self.task_id(&spec.task);
        if self.tasks[tid as usize]
            .by_name
            .contains(&self.jobs, spec.name.as_str())
        {
            return Err(Error::invalid(
                "name",
                format!("{} is already a job of task {}", spec.name, spec.task),
            ));
        }
        self.next_transient += 1;
        let id = self.next_transient | TRANSIENT_BIT;
        self.insert_record(id, spec.into_record(id), now);
        Ok(id)
    }
}
