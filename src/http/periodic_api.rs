//! Periodic's HTTP APIs: 0.1.7's curl API (`/`, `/{func}`, also under `/sched/{func}` for
//! funcs named like other routes) and haskell-periodic's bridge routes (`/periodic/...`).
//! Replies keep Periodic's keys, codes and messages; extra fields are added, never renamed.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::periodic::session::status_lines;
use crate::scheduler::core::TaskStatus;
use crate::scheduler::job::JobKey;
use crate::scheduler::submit::SubmitRequest;
use crate::scheduler::Error;
use crate::telemetry;

/// Periodic replies are JSON with this exact content type.
fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn success() -> Response {
    reply(StatusCode::OK, json!({"msg": "SUCCESS"}))
}

fn err(msg: impl Into<String>) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({"err": msg.into()}))
}

fn func_json(t: &TaskStatus) -> Value {
    json!({
        "func_name": t.task,
        "total_worker": t.workers,
        "total_job": t.pending + t.scheduled + t.running + t.locked,
        "processing": t.running,
        "locked": t.locked,
        "pending": t.pending,
        "scheduled": t.scheduled,
        "dead": t.dead,
        "sched_at": t.next_sched_at.map_or(0, |ms| ms.div_euclid(1000)),
    })
}

/// `GET /`: every func's status.
pub(crate) async fn status_all(State(st): State<AppState>) -> Response {
    match st.h.status(None).await {
        Ok((tasks, _)) => {
            let m: Map<String, Value> = tasks
                .iter()
                .map(|t| (t.task.clone(), func_json(t)))
                .collect();
            reply(StatusCode::OK, Value::Object(m))
        }
        Err(e) => err(e.to_string()),
    }
}

/// `GET /{func}`: one func's status, `{}` when unknown.
pub(crate) async fn status_one(State(st): State<AppState>, Path(func): Path<String>) -> Response {
    match st.h.status(Some(func)).await {
        Ok((tasks, _)) => reply(
            StatusCode::OK,
            tasks.first().map_or_else(|| json!({}), func_json),
        ),
        Err(e) => err(e.to_string()),
    }
}

/// `DELETE /`: Periodic requires a func.
pub(crate) async fn drop_none() -> Response {
    err("func is required")
}

/// `DELETE /{func}`: drops the func's jobs when no worker serves it; success either way.
pub(crate) async fn drop_func(State(st): State<AppState>, Path(func): Path<String>) -> Response {
    let _ = st.h.drop_task(func).await;
    success()
}

/// Form fields from an urlencoded or multipart body; the error is Periodic's `err` text.
async fn form(req: Request) -> Result<HashMap<String, String>, String> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| format!("body: {e}"))?;
        let mut out = HashMap::new();
        while let Some(field) = mp.next_field().await.map_err(|e| format!("body: {e}"))? {
            let name = field.name().unwrap_or_default().to_string();
            let value = field.text().await.map_err(|e| format!("{name}: {e}"))?;
            out.insert(name, value);
        }
        Ok(out)
    } else {
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|e| format!("body: {e}"))?;
        parse_urlencoded(&body)
    }
}

/// `POST /`: submit (upsert) or, with `act=remove`, remove.
pub(crate) async fn submit_root(State(st): State<AppState>, req: Request) -> Response {
    submit(st, None, req).await
}

/// `POST /{func}`: the path's func wins over the form's.
pub(crate) async fn submit_func(
    State(st): State<AppState>,
    Path(func): Path<String>,
    req: Request,
) -> Response {
    submit(st, Some(func), req).await
}

fn int_field(f: &HashMap<String, String>, key: &'static str) -> Result<i64, String> {
    match f.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{key}: {v:?} is not an integer")),
    }
}

/// What a form `POST` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum FormAction {
    /// `act=remove`: remove this job.
    Remove {
        /// Task (func).
        func: String,
        /// Job name.
        name: String,
    },
    /// Submit (upsert) this job; still to be checked ([`SubmitRequest::validate`]).
    Submit(SubmitRequest),
}

/// Reads the form of a `POST /` or `POST /{func}` (the path's func wins); the error is
/// Periodic's `err` text. Pure, so it is fuzzed (`fuzz/fuzz_targets/http_form.rs`).
pub fn form_action(
    path_func: Option<String>,
    f: &HashMap<String, String>,
) -> Result<FormAction, String> {
    let func = path_func
        .or_else(|| f.get("func").cloned())
        .unwrap_or_default();
    let name = f.get("name").cloned().unwrap_or_default();
    if func.is_empty() || name.is_empty() {
        return Err("job name or func is required".into());
    }
    if f.get("act").map(String::as_str) == Some("remove") {
        return Ok(FormAction::Remove { func, name });
    }
    let timeout = int_field(f, "timeout")?;
    let sched_at = int_field(f, "sched_at")?;
    Ok(FormAction::Submit(SubmitRequest {
        task: func,
        name,
        args: f
            .get("args")
            .cloned()
            .unwrap_or_default()
            .into_bytes()
            .into(),
        sched_at_ms: sched_at.saturating_mul(1000),
        timeout_ms: (timeout != 0).then(|| timeout.saturating_mul(1000)),
        ..SubmitRequest::default()
    }))
}

/// Form fields of an urlencoded body.
pub fn parse_urlencoded(body: &[u8]) -> Result<HashMap<String, String>, String> {
    serde_urlencoded::from_bytes(body).map_err(|e| format!("body: {e}"))
}

async fn submit(st: AppState, path_func: Option<String>, req: Request) -> Response {
    let incoming = telemetry::incoming(req.headers());
    let f = match form(req).await {
        Ok(f) => f,
        Err(e) => return err(e),
    };
    let req = match form_action(path_func, &f) {
        Ok(FormAction::Submit(req)) => req,
        Ok(FormAction::Remove { func, name }) => {
            return match st
                .h
                .remove(JobKey::Name {
                    task: func.clone(),
                    name: name.clone(),
                })
                .await
            {
                Ok(_) => success(),
                Err(Error::NotFound(_)) => err(format!("Job {func}:{name} not exists.")),
                Err(e) => err(e.to_string()),
            };
        }
        Err(e) => return err(e),
    };
    let mut spec = match req.validate(&st.limits.submit(), st.h.clock().now_ms(), false) {
        Ok(s) => s,
        Err(e) => return err(e.to_string()),
    };
    let span = telemetry::Submit::start(incoming, &spec.task, &spec.name, 1);
    spec.trace = span.trace();
    let r = st.h.submit(spec).await;
    span.end(&r);
    match r {
        Ok(_) => success(),
        Err(e) => err(e.to_string()),
    }
}

/// Query of the bridge's submit: `sched_at` (unix seconds) and `timeout` (seconds).
#[derive(serde::Deserialize, Default)]
pub struct BridgeQuery {
    sched_at: Option<i64>,
    timeout: Option<i64>,
}

fn bridge_spec(
    st: &AppState,
    headers: &HeaderMap,
    func: String,
    name: String,
    body: Bytes,
    q: BridgeQuery,
    run: bool,
) -> Result<crate::scheduler::job::JobSpec, Error> {
    let req = SubmitRequest {
        task: func,
        name,
        args: body,
        sched_at_ms: q.sched_at.unwrap_or(0).saturating_mul(1000),
        timeout_ms: q
            .timeout
            .filter(|&t| t != 0)
            .map(|t| t.saturating_mul(1000)),
        trace: telemetry::incoming(headers),
        ..SubmitRequest::default()
    };
    req.validate(&st.limits.submit(), st.h.clock().now_ms(), run)
}

fn no_content(ok: bool) -> Response {
    if ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// `GET /periodic/status/`: Periodic's STATUS text.
pub(crate) async fn bridge_status(State(st): State<AppState>) -> Response {
    status_lines(&st.h).await.into_response()
}

/// `POST /periodic/submit/{func}/{job}/`: body = workload; 204 or 500.
pub(crate) async fn bridge_submit(
    State(st): State<AppState>,
    Path((func, name)): Path<(String, String)>,
    Query(q): Query<BridgeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ok = match bridge_spec(&st, &headers, func, name, body, q, false) {
        Ok(spec) => st.h.submit(spec).await.is_ok(),
        Err(_) => false,
    };
    no_content(ok)
}

/// Header naming the machine reason of a bridge route's 500 (`NO_WORKER`, `JOB_FAILED`, ...).
pub const REASON_HEADER: &str = "taskhive-reason";

/// `POST /periodic/run/{func}/{job}/`: 200 with the result, 500 on no worker or failure
/// (the reason in the `taskhive-reason` header).
pub(crate) async fn bridge_run(
    State(st): State<AppState>,
    Path((func, name)): Path<(String, String)>,
    Query(q): Query<BridgeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match bridge_spec(&st, &headers, func, name, body, q, true) {
        Ok(spec) => st.h.run_job(spec).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((_, r)) => (StatusCode::OK, r).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(REASON_HEADER, e.reason())],
            "Error: Job execution failed or timed out",
        )
            .into_response(),
    }
}

/// `POST /periodic/remove/{func}/{job}/`: 204 or 500.
pub(crate) async fn bridge_remove(
    State(st): State<AppState>,
    Path((func, name)): Path<(String, String)>,
) -> Response {
    no_content(st.h.remove(JobKey::Name { task: func, name }).await.is_ok())
}

/// `POST /periodic/drop/{func}/`: 204 or 500.
pub(crate) async fn bridge_drop(State(st): State<AppState>, Path(func): Path<String>) -> Response {
    no_content(st.h.drop_task(func).await.is_ok())
}
