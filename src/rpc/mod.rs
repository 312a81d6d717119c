//! The gRPC face: converts protobuf messages to scheduler calls and errors to `tonic::Status`.

pub mod convert;
pub mod load;
pub mod load_convert;
pub mod scheduler;
pub mod submit_stream;
pub(crate) mod wire;
mod work;

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::scheduler::error::REASON_DOMAIN;
use crate::scheduler::Error;

/// The gRPC code for each scheduler error; the HTTP face maps these codes in turn.
pub(crate) fn code_of(e: &Error) -> Code {
    match e {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::NoWorker { .. }
        | Error::StaleLease(_)
        | Error::WorkersPresent { .. }
        | Error::WorkerAttached { .. }
        | Error::JobRunning { .. } => Code::FailedPrecondition,
        Error::JobFailed(_) => Code::Aborted,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Store(_) | Error::StoreRead(_) | Error::ShuttingDown => Code::Unavailable,
    }
}

/// The status of a scheduler error: its code, its message, and in the details a
/// `google.rpc.ErrorInfo` with the reason (`Error::reason`), domain `taskhive` and the
/// variant's data as metadata.
impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let details = ErrorDetails::with_error_info(e.reason(), REASON_DOMAIN, kv(e.metadata()));
        Status::with_error_details(code_of(&e), e.to_string(), details)
    }
}

fn kv(m: Vec<(&'static str, String)>) -> HashMap<String, String> {
    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The reason of a failed call: its `google.rpc.ErrorInfo` reason when the status carries
/// one, else the code's name (`UNAUTHENTICATED`, `UNAVAILABLE`, ...), so every error has one.
pub(crate) fn reason_of(s: &Status) -> String {
    s.get_details_error_info()
        .map(|i| i.reason)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| crate::status::code_name(s.code()).to_string())
}

/// Metadata key naming the running execution when an Exec is refused as busy.
pub const RUNNING_EXEC_KEY: &str = "taskhive-running-exec-id";

/// The gRPC code for each load runner error; the HTTP face maps these codes in turn
/// (ABORTED for a busy runner becomes 409).
pub(crate) fn load_code_of(e: &crate::load::Error) -> Code {
    use crate::load::Error as L;
    match e {
        L::InvalidArgument { .. } => Code::InvalidArgument,
        L::NotFound(_) => Code::NotFound,
        L::Busy { .. } => Code::Aborted,
        L::NoWorker { .. } | L::FailedPrecondition(_) | L::TooFewAgents { .. } => {
            Code::FailedPrecondition
        }
        L::PermissionDenied(_) => Code::PermissionDenied,
        L::Store(_) | L::ShuttingDown => Code::Unavailable,
    }
}

impl From<crate::load::Error> for Status {
    fn from(e: crate::load::Error) -> Self {
        let details = ErrorDetails::with_error_info(e.reason(), REASON_DOMAIN, kv(e.metadata()));
        let mut s = Status::with_error_details(load_code_of(&e), e.to_string(), details);
        if let crate::load::Error::Busy { running: Some(r) } = &e {
            if let Ok(v) = r.exec_id.parse() {
                s.metadata_mut().insert(RUNNING_EXEC_KEY, v);
            }
        }
        s
    }
}
