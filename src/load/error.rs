//! The load runner's one error type; `src/rpc/mod.rs` maps it to gRPC codes.

/// Every way a load runner operation can be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field is missing, malformed or out of range; nothing was stored or run.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The offending field as a path (`tasks[1].weight`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such load job or execution.
    #[error("{0}")]
    NotFound(String),
    /// Another execution is running (one at a time, cluster-wide).
    #[error("{}", busy(running.as_ref()))]
    Busy {
        /// The execution running on this node; None when another node of the cluster runs
        /// one (its id is that node's to tell).
        running: Option<ExecRef>,
    },
    /// A remote task class has no worker.
    #[error("{}", no_worker(field.as_deref(), task))]
    NoWorker {
        /// Where the class is named in the job (`tasks[1].task_class`), when known.
        field: Option<String>,
        /// The task (remote class) without a worker.
        task: String,
    },
    /// An Exec asked for more load agents than are connected to this server.
    #[error("agents: {asked} asked, {connected} connected to this server")]
    TooFewAgents {
        /// What was asked.
        asked: super::exec_request::Agents,
        /// Agents connected now.
        connected: usize,
    },
    /// The job cannot run now for another reason.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A target is outside the load-target allow-list (`--load-allow`).
    #[error("{0}")]
    PermissionDenied(String),
    /// The store could not commit or read; nothing was acknowledged.
    #[error("store unavailable: {0}")]
    Store(String),
    /// The server is stopping.
    #[error("server is shutting down")]
    ShuttingDown,
}

fn no_worker(field: Option<&str>, task: &str) -> String {
    match field {
        Some(f) => format!("{f}: no worker for task {task}"),
        None => format!("no worker for task {task}"),
    }
}

/// An execution running on this node, as a busy runner names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRef {
    /// Its id.
    pub exec_id: String,
    /// Its job's name.
    pub name: String,
}

fn busy(running: Option<&ExecRef>) -> String {
    match running {
        Some(r) => format!(
            "execution {} of job {:?} is running; one execution at a time",
            r.exec_id, r.name
        ),
        None => "an execution is running on another node; one execution at a time".into(),
    }
}

impl Error {
    /// The stable machine reason, as `crate::scheduler::Error::reason` (`EXEC_BUSY` is the
    /// runner's own); carried in `google.rpc.ErrorInfo` and the JSON face's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Busy { .. } => "EXEC_BUSY",
            Error::NoWorker { .. } => "NO_WORKER",
            Error::TooFewAgents { .. } => "TOO_FEW_AGENTS",
            Error::FailedPrecondition(_) => "FAILED_PRECONDITION",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::Store(_) => "STORE_UNAVAILABLE",
            Error::ShuttingDown => "SHUTTING_DOWN",
        }
    }

    /// The data the reason carries: `field`, `task`, `exec_id`, `name` (or `elsewhere`).
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::InvalidArgument { field, .. } => vec![("field", field.clone())],
            Error::Busy {
                running: Some(r), ..
            } => vec![("exec_id", r.exec_id.clone()), ("name", r.name.clone())],
            Error::Busy { running: None } => vec![("elsewhere", "true".into())],
            Error::NoWorker { field, task } => {
                let mut m = vec![("task", task.clone())];
                if let Some(f) = field {
                    m.push(("field", f.clone()));
                }
                m
            }
            Error::TooFewAgents { asked, connected } => vec![
                ("field", "agents".into()),
                ("asked", asked.to_string()),
                ("connected", connected.to_string()),
            ],
            Error::NotFound(_)
            | Error::FailedPrecondition(_)
            | Error::PermissionDenied(_)
            | Error::Store(_)
            | Error::ShuttingDown => Vec::new(),
        }
    }

    /// Shorthand for an invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<crate::scheduler::Error> for Error {
    fn from(e: crate::scheduler::Error) -> Self {
        use crate::scheduler::Error as S;
        match e {
            S::ShuttingDown => Error::ShuttingDown,
            S::Store(s) => Error::Store(s),
            S::NoWorker { task } => Error::NoWorker { field: None, task },
            other => Error::FailedPrecondition(other.to_string()),
        }
    }
}
