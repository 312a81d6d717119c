//! Beetle::Server's endpoints, with its exact bodies: `/job`, `/exec`, `/tasks`, `/jobs`,
//! `/status` (and `/quit`, in the router). Handlers convert and call the load runner.
//! Endpoints that need no payload accept GET or POST, as Beetle users' scripts use either.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::AppState;
use crate::load::exec_request::RawExec;
use crate::load::runner::ExecEvent;

fn load_err(e: crate::load::Error) -> Response {
    ApiError::from(tonic::Status::from(e)).into_response()
}

fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /job`: save a job; answers `Job saved`.
pub async fn save_job(State(st): State<AppState>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match st.load.save_json(&text).await {
        Ok(_) => (StatusCode::OK, "Job saved").into_response(),
        Err(e) => load_err(e),
    }
}

/// `POST /exec`: run a saved job to the end and answer its JobExec. With `webhook_url` the
/// run goes on in the background and the answer is `Execution request enqueued`. With
/// `error_400_on_threshold_exceeded`, an exceeded threshold answers 400 with the JobExec.
pub async fn exec(State(st): State<AppState>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let opts = match RawExec::from_json(&text).and_then(RawExec::check) {
        Ok(o) => o,
        Err(e) => return load_err(e),
    };
    let flag = opts.error_400_on_threshold_exceeded;
    let mut events = match st.load.exec(opts).await {
        Ok(rx) => rx,
        Err(e) => return load_err(e),
    };
    while let Some(ev) = events.recv().await {
        match ev {
            ExecEvent::Progress(_) => {}
            ExecEvent::Enqueued { .. } => {
                return (StatusCode::OK, "Execution request enqueued").into_response()
            }
            ExecEvent::Finished(report) => {
                let status = if flag && report.threshold_exceeded {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                return json_text(status, report.to_json());
            }
        }
    }
    ApiError::new(
        tonic::Code::Unavailable,
        "the execution ended without a report",
    )
    .into_response()
}

/// `/tasks`: `{"tasks": [...]}`.
pub async fn tasks(State(st): State<AppState>) -> Response {
    match st.load.tasks().await {
        Ok(t) => axum::Json(serde_json::json!({ "tasks": t })).into_response(),
        Err(e) => load_err(e),
    }
}

/// `/jobs`: every saved job, keyed by name, each in Beetle's key order.
pub async fn jobs(State(st): State<AppState>) -> Response {
    let mut m = Map::new();
    for j in st.load.jobs() {
        let v: Value = serde_json::from_str(&j.to_json()).expect("a saved job is JSON");
        m.insert(j.name.clone(), v);
    }
    json_text(StatusCode::OK, Value::Object(m).to_string())
}

/// `/status`: idle or running, and the last finished execution.
pub async fn status(State(st): State<AppState>) -> Response {
    axum::Json(st.load.status()).into_response()
}
