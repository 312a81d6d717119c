//! The scheduler's one error type; the faces map it to gRPC and HTTP codes.

/// Every way a scheduler operation can be refused.
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
    /// The operation does not apply in the current state (stale lease, workers present, no worker).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A job ran and failed (RunJob).
    #[error("job failed: {0}")]
    JobFailed(String),
    /// A limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The store could not commit; nothing was acknowledged and memory is put back as stored.
    #[error("store cannot write (disk full, read-only or failing); nothing was changed: {0}")]
    Store(String),
    /// The server is stopping.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl Error {
    /// Shorthand for an invalid field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // The report's lease was over before it landed: like any stale lease.
            crate::store::StoreError::Fenced(_) => Error::FailedPrecondition(e.to_string()),
            _ => Error::Store(e.to_string()),
        }
    }
}
