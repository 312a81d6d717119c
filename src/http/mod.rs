//! The HTTP/JSON face, on the same port as gRPC: requests whose content type is not
//! `application/grpc` come here. Handlers only convert and call the same service code.

pub mod beetle;
pub mod error;
pub mod periodic_api;
pub mod rpc_json;
pub mod ui;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;
use tonic::Code;

use crate::face_limits::Limits;
use crate::rpc::scheduler::SchedulerService;
use crate::scheduler::SchedulerHandle;
use error::ApiError;

/// What every handler can reach, behind one `Arc`: axum clones the state for every request,
/// and cloning each part (the scheduler handle's channel senders among them) was ~2% of a
/// JSON submit's server CPU in perf.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    /// The state over its parts.
    pub fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    /// The gRPC service implementation, called directly for JSON RPCs.
    pub scheduler: SchedulerService,
    /// The scheduler.
    pub h: SchedulerHandle,
    /// Submission limits.
    pub limits: Limits,
    /// Notified by `/quit`: the server shuts down gracefully.
    pub quit: Arc<Notify>,
    /// What `/metrics` exports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The load runner (Beetle endpoints).
    pub load: crate::load::runner::LoadRunner,
    /// The gRPC load runner service, called directly for JSON RPCs.
    pub load_service: crate::rpc::load::LoadRunnerService,
}

/// The HTTP routes.
pub(crate) fn router(st: AppState) -> Router {
    use periodic_api as p;
    let body_limit = st.limits.message_limit();
    // Every other route's plain-text rejections are made JSON by a middleware; the JSON RPC
    // routes answer their own (`rpc_json::Body`), so the hot path skips its boxed future.
    let rest = Router::new()
        .route("/job", post(beetle::save_job))
        .route("/exec", post(beetle::exec).get(beetle::exec))
        .route("/tasks", get(beetle::tasks).post(beetle::tasks))
        .route("/jobs", get(beetle::jobs).post(beetle::jobs))
        .route("/status", get(beetle::status).post(beetle::status))
        .route("/quit", get(quit).post(quit))
        .route("/metrics", get(metrics))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/app.css", get(ui::app_css))
        .route("/ui/vendor/uPlot.iife.min.js", get(ui::uplot_js))
        .route("/ui/vendor/uPlot.min.css", get(ui::uplot_css))
        .route("/ui/exec", post(ui::exec))
        .route(crate::auth::WHOAMI, get(ui::whoami))
        .route("/ui/report/{id}", get(ui::report))
        .route("/periodic/status/", get(p::bridge_status))
        .route("/periodic/submit/{func}/{job}/", post(p::bridge_submit))
        .route("/periodic/run/{func}/{job}/", post(p::bridge_run))
        .route("/periodic/remove/{func}/{job}/", post(p::bridge_remove))
        .route("/periodic/drop/{func}/", post(p::bridge_drop))
        .route(
            "/",
            get(p::status_all).post(p::submit_root).delete(p::drop_none),
        )
        .route(
            "/{func}",
            get(p::status_one).post(p::submit_func).delete(p::drop_func),
        )
        .route(
            "/sched/{func}",
            get(p::status_one).post(p::submit_func).delete(p::drop_func),
        )
        .layer(axum::middleware::from_fn(json_errors));
    Router::new()
        .route("/taskhive.v1.Scheduler/{method}", post(rpc_json::scheduler))
        .route(
            "/taskhive.v1.LoadRunner/{method}",
            post(rpc_json::load_runner),
        )
        .merge(rest)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(st)
}

async fn quit(axum::extract::State(st): axum::extract::State<AppState>) -> Response {
    st.quit.notify_one();
    (StatusCode::OK, "Quitting").into_response()
}

/// How long a scrape waits for the per-task counts: a cluster reads them from the shared
/// database, and a stalled database must not hide the node's own figures (its submit
/// backlog above all) past a scraper's timeout (Prometheus: 10 s).
const COUNTS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn metrics(axum::extract::State(st): axum::extract::State<AppState>) -> Response {
    let tasks = match tokio::time::timeout(COUNTS_WAIT, st.h.status(None)).await {
        Ok(Ok((tasks, _))) => Some(tasks),
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(_) => {
            tracing::warn!(wait = ?COUNTS_WAIT, "metrics: per-task counts not read in time; left out");
            None
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(tasks.as_deref()),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    ApiError::new(
        Code::NotFound,
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let body = serde_json::json!({
        "code": "METHOD_NOT_ALLOWED",
        "reason": "METHOD_NOT_ALLOWED",
        "message": format!("{} is not allowed on {}", req.method(), req.uri().path()),
    });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Rejections axum produces itself (body too large, unreadable JSON, form or query) become
/// JSON errors like every other client mistake.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let rejected = matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
    );
    if is_json || !rejected {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    rejection_json(status, &String::from_utf8_lossy(&text))
}

/// An extractor's rejection (`status`, plain `text`) as the JSON error body every route answers.
pub(crate) fn rejection_json(status: StatusCode, text: &str) -> Response {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        _ => "INVALID_ARGUMENT",
    };
    let message = match text.trim() {
        // One wording whichever limit refused it (the router's, or the JSON face's direct
        // path in `rpc_json::scheduler_past_router`).
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body: over the size limit".to_string(),
        t => t.to_string(),
    };
    let body = serde_json::json!({ "code": code, "reason": code, "message": message });
    (status, axum::Json(body)).into_response()
}
