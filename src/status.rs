//! Status codes as every face answers them: one mapping from gRPC codes to HTTP statuses
//! and names, the JSON error body `{code, reason, message}`, and a refusal in the caller's
//! protocol. A leaf that the faces, auth and connection admission share.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use tonic::Code;

/// The HTTP status for a gRPC code.
pub(crate) fn http_status(code: Code) -> StatusCode {
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
pub(crate) fn code_name(code: Code) -> &'static str {
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

/// The JSON error body `{"code", "reason", "message"}` with the HTTP status for `code`.
pub(crate) fn json_error(code: Code, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "code": code_name(code),
        "reason": reason,
        "message": message,
    });
    (http_status(code), axum::Json(body)).into_response()
}

/// Whether a request is gRPC (the content type the shared port routes on).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    is_grpc_content(req.headers())
}

/// Whether these headers (a request's or an answer's) say gRPC: `application/grpc`,
/// with or without a `+proto`-style suffix.
pub(crate) fn is_grpc_content(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A refusal in the caller's protocol: a gRPC status (trailers-only), or the HTTP face's
/// `{code, message}` JSON with the mapped status.
pub fn refusal(grpc: bool, code: Code, message: String) -> Response<Body> {
    if grpc {
        tonic::Status::new(code, message).into_http()
    } else {
        json_error(code, code_name(code), &message)
    }
}
