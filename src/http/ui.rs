//! The dashboard: `GET /ui` and its assets, compiled into the binary (no CDN, no build step),
//! and `POST /ui/exec`, which starts a load execution like `/exec` and streams its progress as
//! server-sent events so the page can chart rps and p50/p99 while the run goes on, and
//! `GET /ui/report/{id}`, an archived execution as the same self-contained HTML page
//! `taskhive load report` writes. Everything else the page shows comes from the existing
//! JSON routes.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ApiError;
use super::AppState;
use crate::load::exec_request::RawExec;
use crate::load::runner::ExecEvent;

const INDEX_HTML: &str = include_str!("../../assets/ui/index.html");
const APP_JS: &str = include_str!("../../assets/ui/app.js");
const APP_CSS: &str = include_str!("../../assets/ui/app.css");
const UPLOT_JS: &str = include_str!("../../assets/ui/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/ui/vendor/uPlot.min.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The assets change with the binary; a restarted server must not be masked by a cache.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui`: the page.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /ui/app.js`.
pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /ui/app.css`.
pub(crate) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /ui/vendor/uPlot.iife.min.js`.
pub(crate) async fn uplot_js() -> Response {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

/// `GET /ui/whoami` without auth: every call is allowed (with auth, the auth layer answers
/// with the token's role before routing).
pub async fn whoami() -> Response {
    axum::Json(json!({"auth": false, "role": "admin", "name": ""})).into_response()
}

/// `GET /ui/vendor/uPlot.min.css`.
pub(crate) async fn uplot_css() -> Response {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}

/// The SSE form of one exec event.
fn event(ev: ExecEvent) -> Event {
    match ev {
        ExecEvent::Progress(p) => Event::default().event("progress").data(
            json!({
                "exec_id": p.exec_id,
                "name": p.name,
                "elapsed_usec": p.elapsed_usec,
                "n_task": p.so_far.n_task,
                "n_success": p.so_far.n_success,
                "n_fail": p.so_far.n_fail,
                "p50_usec": p.so_far.p50_usec,
                "p99_usec": p.so_far.p99_usec,
                "rps": p.rps,
                "planned_n": p.planned_n,
                "run_for_sec": p.run_for_sec,
            })
            .to_string(),
        ),
        ExecEvent::Enqueued { exec_id } => Event::default()
            .event("enqueued")
            .data(json!({ "exec_id": exec_id }).to_string()),
        // The page needs the summary, not the (possibly long) executions lists.
        ExecEvent::Finished(r) => Event::default().event("finished").data(
            json!({
                "exec_id": r.id,
                "name": r.name,
                "elapsed_usec": r.elapsed_usec,
                "n_task": r.n_task,
                "n_success": r.n_success,
                "n_fail": r.n_fail,
                "p50_usec": r.p50_usec,
                "p99_usec": r.p99_usec,
                "rps": r.rps,
                "threshold_exceeded": r.threshold_exceeded,
                "aborted": r.aborted,
                "abort_reason": r.abort_reason,
            })
            .to_string(),
        ),
    }
}

/// `POST /ui/exec`: the body is `/exec`'s (`{name, params, ...}`). Refusals (unknown job,
/// another run going, bad input) answer with the usual JSON error before any event; otherwise
/// `progress` events about once a second and a last `finished` event. A client that goes
/// away does not stop the run, as with `/exec`.
pub async fn exec(State(st): State<AppState>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let opts = match RawExec::from_json(&text).and_then(RawExec::check) {
        Ok(o) => o,
        Err(e) => return ApiError::from(tonic::Status::from(e)).into_response(),
    };
    match st.load.exec(opts).await {
        Ok(rx) => Sse::new(ReceiverStream::new(rx).map(|ev| Ok::<_, Infallible>(event(ev))))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response(),
        Err(e) => ApiError::from(tonic::Status::from(e)).into_response(),
    }
}

/// `GET /ui/report/{id}`: the archived execution's HTML report (404 as JSON when unknown).
pub async fn report(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.load.get_exec(id).await {
        Ok((exec, _)) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::load::html_report::render(&exec),
        )
            .into_response(),
        Err(e) => ApiError::from(tonic::Status::from(e)).into_response(),
    }
}
