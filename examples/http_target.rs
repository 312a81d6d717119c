//! A local HTTP target to point load jobs at: `cargo run --release --example http_target`.
//!
//! Answers 200 `ok` on any path; `/delay/MS` waits MS ms first; `/status/CODE` answers CODE.
//! Listens on 127.0.0.1:0 (or the address given as the first argument) and prints
//! `listening on ADDR`.

use std::time::Duration;

use axum::http::{StatusCode, Uri};
use axum::Router;

async fn handle(uri: Uri) -> (StatusCode, &'static str) {
    let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["delay", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            (StatusCode::OK, "ok")
        }
        ["status", code] => (
            code.parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST),
            "status",
        ),
        _ => (StatusCode::OK, "ok"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, Router::new().fallback(handle)).await
}
