//! A `taskhive serve` child process, for tests that kill the server or run the CLI.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_taskhive")
}

/// Runs `taskhive ARGS` (120 s at most), asserts that it succeeded and returns its stdout.
pub async fn cli_ok(args: &[&str]) -> String {
    let out = super::within(
        120,
        Command::new(bin())
            .args(args)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "taskhive {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `taskhive serve` on a free port over `dir`; returns the child and its address.
pub async fn spawn_server(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    spawn_server_with(dir, extra, |_| {}).await
}

/// [`spawn_server`] with the command adjusted first (environment, `pre_exec`).
pub async fn spawn_server_with(
    dir: &Path,
    extra: &[&str],
    tweak: impl FnOnce(&mut Command),
) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    tweak(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = super::within(30, lines.next_line())
        .await
        .unwrap()
        .expect("server printed nothing");
    // Keep reading: a server whose stdout is closed fails its next print.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// Runs `taskhive serve` over `dir` for a start that must fail: waits (30 s at most) for it
/// to exit, checks that it failed without announcing a port (a node announces it only once
/// its store is open), and returns what it wrote on stderr.
pub async fn serve_fails(dir: &Path, extra: &[&str]) -> String {
    let out = super::within(
        30,
        Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve started: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "serve announced a port before it failed: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A gRPC channel to a child server's address.
pub async fn channel_at(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A gRPC client connected to a child server's address.
pub async fn client_at(
    addr: SocketAddr,
) -> taskhive::pb::scheduler_client::SchedulerClient<tonic::transport::Channel> {
    taskhive::pb::scheduler_client::SchedulerClient::new(channel_at(addr).await)
}
