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
    /// Another execution is running (one at a time).
    #[error("execution {exec_id} of job {name:?} is running; one execution at a time")]
    Busy {
        /// The running execution's id.
        exec_id: String,
        /// Its job.
        name: String,
    },
    /// The job cannot run now (a remote task class has no worker).
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

impl Error {
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
            other => Error::FailedPrecondition(other.to_string()),
        }
    }
}
