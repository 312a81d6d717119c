//! One mapping from gRPC status codes to HTTP, and the JSON error body `{code, reason, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// The HTTP status for a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled => StatusCode::from_u16(499).expect("valid status"),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The name of a gRPC code as the proto3 JSON mapping spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

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
        let reason = self
            .reason
            .unwrap_or_else(|| code_name(self.code).to_string());
        let body = serde_json::json!({
            "code": code_name(self.code),
            "reason": reason,
            "message": self.message,
        });
        (http_status(self.code), axum::Json(body)).into_response()
    }
}
