//! One mapping from gRPC status codes to HTTP, and the JSON error body `{code, reason, message}`.

use axum::response::{IntoResponse, Response};
use tonic::Code;

use crate::status::code_name;

/// An error answered as `{"code": "...", "reason": "...", "message": "..."}` with the mapped
/// HTTP status. `reason` is the scheduler's machine reason (`NO_WORKER`, `STALE_LEASE`, ...),
/// or the code's name where there is no finer one.
#[derive(Debug)]
pub struct ApiError {
    /// gRPC code.
    pub code: Code,
    /// Machine reason; `None` answers the code's name.
    pub reason: Option<String>,
    /// Human-readable, starting with the offending field where there is one.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message (its reason is the code's name).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: None,
            message: message.into(),
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        ApiError {
            code: s.code(),
            reason: Some(crate::rpc::reason_of(&s)),
            message: s.message().to_string(),
        }
    }
}

impl From<crate::scheduler::Error> for ApiError {
    fn from(e: crate::scheduler::Error) -> Self {
        ApiError {
            code: crate::rpc::code_of(&e),
            reason: Some(e.reason().to_string()),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.reason.as_deref().unwrap_or(code_name(self.code));
        crate::status::json_error(self.code, reason, &self.message)
    }
}
