//! The gRPC face: converts protobuf messages to scheduler calls and errors to `tonic::Status`.

pub mod convert;
pub mod scheduler;

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
