//! Every unary RPC as `POST /taskhive.v1.Scheduler/{Method}` with a JSON body (the proto3 JSON
//! mapping): the same service code as gRPC, converted at the edge.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Request};

use super::error::ApiError;
use super::AppState;
use crate::pb::load_runner_server::LoadRunner;
use crate::pb::scheduler_server::Scheduler;

/// The request's `traceparent` header alone (the `HeaderMap` extractor would copy every
/// header of every request).
pub struct TraceHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for TraceHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(TraceHeader::of(&parts.headers))
    }
}

impl TraceHeader {
    fn of(headers: &axum::http::HeaderMap) -> Self {
        TraceHeader(headers.get(crate::telemetry::TRACEPARENT).cloned())
    }
}

/// The request body, or its rejection (over the size limit, a broken stream) answered as
/// JSON here: these routes skip the router's JSON-errors middleware.
pub struct Body(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, st: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, st).await {
            Ok(b) => Ok(Body(b)),
            Err(r) => Err(super::rejection_json(r.status(), &r.body_text())),
        }
    }
}

/// A request from its proto3 JSON body (empty = every field default). A refusal names the
/// field at fault by its path (`body: retry.maxAttempts: ...`). Pure, so it is fuzzed
/// (`fuzz/fuzz_targets/http_json.rs`).
pub fn decode_json<Req: DeserializeOwned>(body: &[u8]) -> Result<Req, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    // Tracking the path costs about 2 % of a JSON submit's instructions, so only a body
    // that failed is read again to find it: the same bytes fail the same way.
    serde_json::from_slice(body).map_err(|e| {
        let mut de = serde_json::Deserializer::from_slice(body);
        let at = match serde_path_to_error::deserialize::<_, Req>(&mut de) {
            Err(e) if e.path().to_string() != "." => format!("{}: ", e.path()),
            _ => String::new(),
        };
        ApiError::new(Code::InvalidArgument, format!("body: {at}{e}"))
    })
}

async fn unary<Req, Resp, F, Fut>(body: &[u8], trace: &TraceHeader, call: F) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let req: Req = match decode_json(body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut req = Request::new(req);
    // The W3C trace context travels as an HTTP header here, as gRPC metadata there.
    if let Some(v) = &trace.0 {
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(v.as_bytes()) {
            req.metadata_mut().insert(crate::telemetry::TRACEPARENT, v);
        }
    }
    match call(req).await {
        Ok(resp) => axum::Json(resp.into_inner()).into_response(),
        Err(status) => ApiError::from(status).into_response(),
    }
}

/// `POST /taskhive.v1.Scheduler/{method}` through the HTTP router. The shared port takes
/// these calls past the router ([`scheduler_past_router`]); this route stays for what the
/// router answers itself (405 for another HTTP method).
pub async fn scheduler(
    State(st): State<AppState>,
    Path(method): Path<String>,
    trace: TraceHeader,
    Body(body): Body,
) -> Response {
    call_scheduler(&st, &method, &trace, &body).await
}

/// `POST /taskhive.v1.Scheduler/{method}` as the shared port hands it over
/// (`server::one_port`), past the HTTP router: the JSON face's one-job-per-call path. It does
/// what the route would: the method is what follows the service's path (anything else than
/// a method's name is 404, as the router's fallback is; a percent-encoded path is left to
/// the router, which decodes it), the body is read up to the message
/// size limit (413 over it, as the router's limit answers), and the `traceparent` header
/// goes along. The router's route lookup, its path-parameter map and its boxed handler
/// future were about 12 % of a JSON SubmitJob's server instructions (BENCHMARKS.md, "The
/// JSON face's numbers").
pub(crate) async fn scheduler_past_router(
    st: AppState,
    req: axum::http::Request<crate::net::ReqBody>,
) -> Response {
    use http_body_util::{BodyExt, LengthLimitError, Limited};
    let (parts, body) = req.into_parts();
    let trace = TraceHeader::of(&parts.headers);
    let body = match Limited::new(body, st.limits.message_limit())
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return over_the_size_limit(),
        Err(e) => {
            return super::rejection_json(
                axum::http::StatusCode::BAD_REQUEST,
                &format!("body: could not be read: {e}"),
            )
        }
    };
    let method = parts
        .uri
        .path()
        .strip_prefix(SCHEDULER_PATH)
        .unwrap_or_default();
    call_scheduler(&st, method, &trace, &body).await
}

/// The answer to a body over the message size limit, whoever finds it: this path, or the
/// shared port from the declared length (`server::one_port`).
pub(crate) fn over_the_size_limit() -> Response {
    super::rejection_json(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "")
}

/// The Scheduler's calls' path prefix on the JSON face, as on gRPC.
const SCHEDULER_PATH: &str = "/taskhive.v1.Scheduler/";

async fn call_scheduler(st: &AppState, method: &str, trace: &TraceHeader, body: &[u8]) -> Response {
    let s = &st.scheduler;
    match method {
        "SubmitJob" => unary(body, trace, |r| s.submit_job(r)).await,
        "SubmitJobs" => unary(body, trace, |r| s.submit_jobs(r)).await,
        "RunJob" => unary(body, trace, |r| s.run_job(r)).await,
        "RemoveJob" => unary(body, trace, |r| s.remove_job(r)).await,
        "GetJob" => unary(body, trace, |r| s.get_job(r)).await,
        "ListJobs" => unary(body, trace, |r| s.list_jobs(r)).await,
        "DropTask" => unary(body, trace, |r| s.drop_task(r)).await,
        "Status" => unary(body, trace, |r| s.status(r)).await,
        "ListDead" => unary(body, trace, |r| s.list_dead(r)).await,
        "RetryDead" => unary(body, trace, |r| s.retry_dead(r)).await,
        "PurgeDead" => unary(body, trace, |r| s.purge_dead(r)).await,
        "RegisterTask" => unary(body, trace, |r| s.register_task(r)).await,
        "ReportResult" => unary(body, trace, |r| s.report_result(r)).await,
        "Heartbeat" => unary(body, trace, |r| s.heartbeat(r)).await,
        "SendData" => unary(body, trace, |r| s.send_data(r)).await,
        "AcquireLock" => unary(body, trace, |r| s.acquire_lock(r)).await,
        "ReleaseLock" => unary(body, trace, |r| s.release_lock(r)).await,
        "GetConfig" => unary(body, trace, |r| s.get_config(r)).await,
        "SetConfig" => unary(body, trace, |r| s.set_config(r)).await,
        "CreateSchedule" => unary(body, trace, |r| s.create_schedule(r)).await,
        "ListSchedules" => unary(body, trace, |r| s.list_schedules(r)).await,
        "GetSchedule" => unary(body, trace, |r| s.get_schedule(r)).await,
        "PauseSchedule" => unary(body, trace, |r| s.pause_schedule(r)).await,
        "ResumeSchedule" => unary(body, trace, |r| s.resume_schedule(r)).await,
        "DeleteSchedule" => unary(body, trace, |r| s.delete_schedule(r)).await,
        "PauseTask" => unary(body, trace, |r| s.pause_task(r)).await,
        "ResumeTask" => unary(body, trace, |r| s.resume_task(r)).await,
        "SetTaskLimits" => unary(body, trace, |r| s.set_task_limits(r)).await,
        "GetTaskLimits" => unary(body, trace, |r| s.get_task_limits(r)).await,
        "SubmitStream" | "RunJobStream" | "WatchJob" | "GrabJob" | "Work" | "Dump" | "Load" => {
            ApiError::new(
                Code::Unimplemented,
                format!("{method} is a streaming method: call it over gRPC"),
            )
            .into_response()
        }
        _ => ApiError::new(
            Code::NotFound,
            format!("taskhive.v1.Scheduler has no method {method:?}"),
        )
        .into_response(),
    }
}

/// `POST /taskhive.v1.LoadRunner/{method}`.
pub(crate) async fn load_runner(
    State(st): State<AppState>,
    Path(method): Path<String>,
    trace: TraceHeader,
    Body(body): Body,
) -> Response {
    let s = &st.load_service;
    let (body, trace) = (&body[..], &trace);
    match method.as_str() {
        "SaveLoadJob" => unary(body, trace, |r| s.save_load_job(r)).await,
        "ListLoadJobs" => unary(body, trace, |r| s.list_load_jobs(r)).await,
        "ListTasks" => unary(body, trace, |r| s.list_tasks(r)).await,
        "GetLoadStatus" => unary(body, trace, |r| s.get_load_status(r)).await,
        "ListExecs" => unary(body, trace, |r| s.list_execs(r)).await,
        "GetExec" => unary(body, trace, |r| s.get_exec(r)).await,
        "Exec" => ApiError::new(
            Code::Unimplemented,
            "Exec is a streaming method: call it over gRPC, or POST /exec",
        )
        .into_response(),
        "Agent" => ApiError::new(
            Code::Unimplemented,
            "Agent is a bidirectional stream: load agents call it over gRPC (taskhive agent)",
        )
        .into_response(),
        _ => ApiError::new(
            Code::NotFound,
            format!("taskhive.v1.LoadRunner has no method {method:?}"),
        )
        .into_response(),
    }
}
