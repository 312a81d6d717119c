//! The scheduler's one error type; the faces map it to gRPC and HTTP codes, and each variant to
//! a stable machine reason (`Error::reason`) that clients branch on instead of message text.

use super::job::{JobId, LeaseId, WorkerId};

/// Every way a scheduler operation can be refused.
///
/// The messages (`Display`) are for people and may be reworded; [`Error::reason`] and
/// [`Error::metadata`] are the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field is missing or out of range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The offending field, as named in the API.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The job, worker or task does not exist.
    #[error("{0}")]
    NotFound(String),
    /// RunJob (or a waiting submit) on a task no worker serves.
    #[error("no worker for task {task}")]
    NoWorker {
        /// The task.
        task: String,
    },
    /// A report, data chunk or lock call named a lease that is not current.
    #[error("{0}")]
    StaleLease(Stale),
    /// DropTask while workers are registered for the task.
    #[error("{}", workers_present(task, *workers))]
    WorkersPresent {
        /// The task.
        task: String,
        /// How many workers (on this node); `None` in cluster mode, where they may be anywhere.
        workers: Option<usize>,
    },
    /// A registered worker opened a second job stream.
    #[error("worker {worker} already has a job stream")]
    WorkerAttached {
        /// The worker.
        worker: WorkerId,
    },
    /// Cluster: RunJob of a job already running on a node (its result goes to that RunJob).
    #[error(
        "job {task}/{name} is running on a node; its result goes to the RunJob that started it"
    )]
    JobRunning {
        /// The job's task.
        task: String,
        /// The job's name.
        name: String,
    },
    /// A job ran and failed (RunJob).
    #[error("job failed: {0}")]
    JobFailed(String),
    /// A limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The store could not commit; nothing was acknowledged and memory is put back as stored.
    /// The cause is the store's own words (SQLite's "database or disk is full", a PostgreSQL
    /// error with its SQLSTATE): one fixed guess here would be wrong for the other store.
    #[error("store cannot write; nothing was changed: {0}")]
    Store(String),
    /// A job's payload, held in the store only (the payload budget), could not be read back.
    #[error("store cannot be read: {0}")]
    StoreRead(String),
    /// The server is stopping.
    #[error("server is shutting down")]
    ShuttingDown,
}

/// Why a lease is not current; each keeps the message it always had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// A report on a lease that expired, was reassigned or was already reported.
    #[error("lease {lease} is not held: it expired, was reassigned or was already reported")]
    Ended {
        /// The lease named.
        lease: LeaseId,
    },
    /// A data chunk or lock call on a lease that is not held.
    #[error("lease {lease} is not held")]
    NotHeld {
        /// The lease named.
        lease: LeaseId,
    },
    /// The lease's job was removed while it ran.
    #[error("lease {lease}: its job was removed while running")]
    JobRemoved {
        /// The lease named.
        lease: LeaseId,
    },
    /// Cluster: the job's claim passed to another node, so the write changed nothing.
    #[error("job {job}: its claim passed to another node; the write changed nothing")]
    ClaimLost {
        /// The job.
        job: JobId,
    },
    /// Periodic: a handle this connection's worker does not hold.
    #[error("job {task}:{name} is not held by this worker")]
    NotHeldByWorker {
        /// The job's task (func).
        task: String,
        /// The job's name.
        name: String,
    },
}

fn workers_present(task: &str, workers: Option<usize>) -> String {
    match workers {
        Some(n) => {
            format!("task {task:?} has {n} registered worker(s); stop them before dropping it")
        }
        None => format!(
            "task {task:?} has registered worker(s) on some node; stop them before dropping it"
        ),
    }
}

/// The `domain` of every reason (`google.rpc.ErrorInfo.domain`).
pub const REASON_DOMAIN: &str = "taskhive";

impl Error {
    /// Shorthand for an invalid field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// The stable machine reason (SCREAMING_SNAKE), carried as `google.rpc.ErrorInfo.reason` on
    /// gRPC and as `reason` in HTTP error bodies. Clients branch on this, never on the message.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::NoWorker { .. } => "NO_WORKER",
            Error::StaleLease(_) => "STALE_LEASE",
            Error::WorkersPresent { .. } => "WORKERS_PRESENT",
            Error::WorkerAttached { .. } => "WORKER_ATTACHED",
            Error::JobRunning { .. } => "JOB_RUNNING",
            Error::JobFailed(_) => "JOB_FAILED",
            Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            Error::Store(_) | Error::StoreRead(_) => "STORE_UNAVAILABLE",
            Error::ShuttingDown => "SHUTTING_DOWN",
        }
    }

    /// The data a reason carries (`google.rpc.ErrorInfo.metadata`): `task`, `name`, `lease`,
    /// `job`, `worker`, `workers`, `field`, and for STALE_LEASE a `cause`.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::InvalidArgument { field, .. } => vec![("field", field.to_string())],
            Error::NoWorker { task } => vec![("task", task.clone())],
            Error::StaleLease(s) => s.metadata(),
            Error::WorkersPresent { task, workers } => {
                let mut m = vec![("task", task.clone())];
                if let Some(n) = workers {
                    m.push(("workers", n.to_string()));
                }
                m
            }
            Error::WorkerAttached { worker } => vec![("worker", worker.to_string())],
            Error::JobRunning { task, name } => {
                vec![("task", task.clone()), ("name", name.clone())]
            }
            Error::NotFound(_)
            | Error::JobFailed(_)
            | Error::ResourceExhausted(_)
            | Error::Store(_)
            | Error::StoreRead(_)
            | Error::ShuttingDown => Vec::new(),
        }
    }
}

impl Stale {
    /// A short name for why the lease is stale (`cause` in the reason's metadata).
    pub fn cause(&self) -> &'static str {
        match self {
            Stale::Ended { .. } => "ended",
            Stale::NotHeld { .. } => "not_held",
            Stale::JobRemoved { .. } => "job_removed",
            Stale::ClaimLost { .. } => "claim_lost",
            Stale::NotHeldByWorker { .. } => "not_held_by_worker",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = vec![("cause", self.cause().to_string())];
        match self {
            Stale::Ended { lease } | Stale::NotHeld { lease } | Stale::JobRemoved { lease } => {
                m.push(("lease", lease.to_string()))
            }
            Stale::ClaimLost { job } => m.push(("job", job.to_string())),
            Stale::NotHeldByWorker { task, name } => {
                m.push(("task", task.clone()));
                m.push(("name", name.clone()));
            }
        }
        m
    }
}

impl From<super::durable::StoreError> for Error {
    fn from(e: super::durable::StoreError) -> Self {
        match e {
            // The report's lease was over before it landed: like any stale lease.
            super::durable::StoreError::Fenced(job) => Error::StaleLease(Stale::ClaimLost { job }),
            _ => Error::Store(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_unchanged_and_reasons_stable() {
        let e = Error::StaleLease(Stale::Ended { lease: 7 });
        assert_eq!(
            e.to_string(),
            "lease 7 is not held: it expired, was reassigned or was already reported"
        );
        assert_eq!(e.reason(), "STALE_LEASE");
        let e = Error::from(crate::scheduler::durable::StoreError::Fenced(3));
        assert_eq!(
            e.to_string(),
            crate::scheduler::durable::StoreError::Fenced(3).to_string()
        );
        assert_eq!(
            e.metadata(),
            vec![("cause", "claim_lost".into()), ("job", "3".into())]
        );
        let e = Error::WorkersPresent {
            task: "t".into(),
            workers: Some(2),
        };
        assert_eq!(
            e.to_string(),
            "task \"t\" has 2 registered worker(s); stop them before dropping it"
        );
        assert_eq!(e.reason(), "WORKERS_PRESENT");
        assert_eq!(
            Error::NoWorker { task: "t".into() }.to_string(),
            "no worker for task t"
        );
    }
}
