//! Job events worth one log line each: refusals, lease expiries, retries and deaths. The
//! core emits them as [`super::core::Observation::Log`] effects (it does no I/O); the actor
//! writes them with `tracing`, so `serve --log-format json` gives log shippers one JSON
//! object per event with `task`, `job` (the name) and `job_id` fields.

use std::sync::Arc;

use super::job::{JobId, LeaseId, Millis, WorkerId};

/// One job event.
#[derive(Debug, Clone, PartialEq)]
pub enum JobLog {
    /// A request about a job was refused (a limit, a stale lease).
    Refused {
        /// Task (empty when unknown, e.g. a report on a lease that is gone).
        task: Arc<str>,
        /// Job name (empty when unknown).
        name: Arc<str>,
        /// Job id, when the job exists.
        id: Option<JobId>,
        /// The lease a refused report named.
        lease: Option<LeaseId>,
        /// Why.
        reason: String,
    },
    /// A lease ran out without a report or heartbeat.
    Expired {
        /// Task.
        task: Arc<str>,
        /// Job name.
        name: Arc<str>,
        /// Job id.
        id: JobId,
        /// The lease.
        lease: LeaseId,
        /// The worker that held it.
        worker: WorkerId,
    },
    /// A failed attempt; the job runs again at `next_at`.
    Retry {
        /// Task.
        task: Arc<str>,
        /// Job name.
        name: Arc<str>,
        /// Job id.
        id: JobId,
        /// Failed attempts so far.
        attempts: u32,
        /// Attempts allowed.
        max_attempts: u32,
        /// When it is due again.
        next_at: Millis,
        /// The attempt's error.
        error: String,
    },
    /// A failed attempt past the retry cap (or a fail without retry): the job is dead.
    Dead {
        /// Task.
        task: Arc<str>,
        /// Job name.
        name: Arc<str>,
        /// Job id.
        id: JobId,
        /// Failed attempts.
        attempts: u32,
        /// The last error.
        error: String,
    },
}

impl JobLog {
    /// Writes the event's one log line.
    pub(crate) fn emit(&self) {
        match self {
            JobLog::Refused {
                task,
                name,
                id,
                lease,
                reason,
            } => tracing::warn!(
                event = "refused",
                task = &**task,
                job = &**name,
                job_id = id,
                lease_id = lease,
                reason = reason.as_str(),
                "job request refused"
            ),
            JobLog::Expired {
                task,
                name,
                id,
                lease,
                worker,
            } => tracing::warn!(
                event = "lease_expired",
                task = &**task,
                job = &**name,
                job_id = id,
                lease_id = lease,
                worker_id = worker,
                "lease expired"
            ),
            JobLog::Retry {
                task,
                name,
                id,
                attempts,
                max_attempts,
                next_at,
                error,
            } => tracing::info!(
                event = "retry",
                task = &**task,
                job = &**name,
                job_id = id,
                attempts,
                max_attempts,
                next_at_ms = next_at,
                error = error.as_str(),
                "attempt failed; job will be retried"
            ),
            JobLog::Dead {
                task,
                name,
                id,
                attempts,
                error,
            } => tracing::warn!(
                event = "dead",
                task = &**task,
                job = &**name,
                job_id = id,
                attempts,
                error = error.as_str(),
                "job moved to the dead set"
            ),
        }
    }
}
