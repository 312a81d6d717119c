//! The gRPC face: converts protobuf messages to scheduler calls and errors to `tonic::Status`.

pub mod convert;
pub mod load;
pub mod load_convert;
pub mod scheduler;
pub mod submit_stream;

use tonic::{Code, Status};

use crate::scheduler::Error;

/// The gRPC code for each scheduler error; the HTTP face maps these codes in turn.
pub fn code_of(e: &Error) -> Code {
    match e {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::JobFailed(_) => Code::Aborted,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Store(_) | Error::ShuttingDown => Code::Unavailable,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        Status::new(code_of(&e), e.to_string())
    }
}

/// Metadata key naming the running execution when an Exec is refused as busy.
pub const RUNNING_EXEC_KEY: &str = "taskhive-running-exec-id";

/// The gRPC code for each load runner error; the HTTP face maps these codes in turn
/// (ABORTED for a busy runner becomes 409).
pub fn load_code_of(e: &crate::load::Error) -> Code {
    use crate::load::Error as L;
    match e {
        L::InvalidArgument { .. } => Code::InvalidArgument,
        L::NotFound(_) => Code::NotFound,
        L::Busy { .. } => Code::Aborted,
        L::FailedPrecondition(_) => Code::FailedPrecondition,
        L::PermissionDenied(_) => Code::PermissionDenied,
        L::Store(_) | L::ShuttingDown => Code::Unavailable,
    }
}

impl From<crate::load::Error> for Status {
    fn from(e: crate::load::Error) -> Self {
        let mut s = Status::new(load_code_of(&e), e.to_string());
        if let crate::load::Error::Busy { exec_id, .. } = &e {
            if let Ok(v) = exec_id.parse() {
                s.metadata_mut().insert(RUNNING_EXEC_KEY, v);
            }
        }
        s
    }
}
