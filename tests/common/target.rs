//! A local HTTP target for load tests (axum on 127.0.0.1:0), and a webhook receiver.
//!
//! Routes (any method):
//! - `/status/CODE` answers CODE.
//! - `/delay/MS` answers 200 after MS ms.
//! - `/ramp` sleeps ((n - 1) % 100 + 1) ms on its n-th hit: a known latency distribution.
//! - `/stall/*` stalls for 1 s on the 20th hit of that path, else answers at once.
//! - `/hook` (POST) hands its body to [`Target::next_hook`].
//! - anything else answers 200 (500 on every `error_every`-th request when set).
//!   Every request is recorded with its method, path, headers and body.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::sync::mpsc;

/// The hit on which `/stall/*` stalls, and for how long.
pub const STALL_ON_HIT: u64 = 20;
pub const STALL: Duration = Duration::from_secs(1);

/// One request the target saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

pub struct TargetState {
    /// 0 = never; n = every n-th request to a plain path fails with 500.
    pub error_every: AtomicU64,
    hits: Mutex<HashMap<String, u64>>,
    seen: Mutex<Vec<Seen>>,
    hooks: mpsc::UnboundedSender<String>,
}

/// A running target.
pub struct Target {
    pub addr: SocketAddr,
    pub state: Arc<TargetState>,
    hooks: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Target {
    pub async fn start() -> Target {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(TargetState {
            error_every: AtomicU64::new(0),
            hits: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            hooks: tx,
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target {
            addr,
            state,
            hooks: tokio::sync::Mutex::new(rx),
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Hits of one path so far.
    pub fn hits(&self, path: &str) -> u64 {
        *self.state.hits.lock().unwrap().get(path).unwrap_or(&0)
    }

    /// The next webhook body (fails the test after `secs`).
    pub async fn next_hook(&self, secs: u64) -> String {
        super::within(secs, async {
            self.hooks.lock().await.recv().await.unwrap()
        })
        .await
    }
}

async fn handle(
    State(s): State<Arc<TargetState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let n = {
        let mut hits = s.hits.lock().unwrap();
        let h = hits.entry(path.clone()).or_insert(0);
        *h += 1;
        *h
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    s.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers,
        body: body.clone(),
    });
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["status", code] => {
            let code = code.parse().unwrap_or(500);
            (
                StatusCode::from_u16(code).unwrap(),
                format!("status {code}"),
            )
        }
        ["delay", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            (StatusCode::OK, "ok".into())
        }
        ["ramp"] => {
            tokio::time::sleep(Duration::from_millis((n - 1) % 100 + 1)).await;
            (StatusCode::OK, "ok".into())
        }
        ["stall", ..] => {
            if n == STALL_ON_HIT {
                tokio::time::sleep(STALL).await;
            }
            (StatusCode::OK, "ok".into())
        }
        ["hook"] => {
            let _ = s.hooks.send(body);
            (StatusCode::OK, "thanks".into())
        }
        _ => {
            let every = s.error_every.load(Ordering::Relaxed);
            if every > 0 && n % every == 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
            } else {
                (StatusCode::OK, "ok".into())
            }
        }
    }
}
