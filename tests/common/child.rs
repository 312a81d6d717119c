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

/// Starts `taskhive serve` on a free port over `dir`; returns the child and its address.
pub async fn spawn_server(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = super::within(30, lines.next_line())
        .await
        .unwrap()
        .expect("server printed nothing");
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}
