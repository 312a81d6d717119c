//! What the `taskhive` client commands print when they fail, and their exit codes: one line on
//! stderr naming what failed and what to check; 1 for a failure, 2 for a usage error.

mod common;

use std::process::Output;

use common::*;

/// Runs the real binary with `args`, without any connection settings from the environment.
async fn taskhive(args: &[&str]) -> Output {
    let mut c = tokio::process::Command::new(common::child::bin());
    c.args(args)
        .env_remove("TASKHIVE_ADDR")
        .env_remove("TASKHIVE_TOKEN")
        .env_remove("TASKHIVE_CA")
        .env("RUST_LOG", "off")
        .kill_on_drop(true);
    within(60, c.output()).await.unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn no_server_says_what_was_tried_and_what_to_do() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = taskhive(&["status", "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "taskhive: cannot connect to {addr}: connection refused; \
             is 'taskhive serve' running? (--addr / TASKHIVE_ADDR)\n"
        )
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn a_refused_request_prints_the_code_in_words_and_the_message() {
    let s = TestServer::start().await;
    let addr = s.addr.to_string();
    let out = taskhive(&[
        "submit", "-f", "", "-n", "x", "--args", "a", "--addr", &addr,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "taskhive: invalid argument: task: must not be empty\n"
    );
    let out = taskhive(&["remove", "-f", "t", "-n", "nope", "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("taskhive: not found: "),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = taskhive(&["status", "--no-such-flag"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `taskhive bench --timer-window` takes seconds above 0 and up to a day: anything else is a
/// usage error that names the flag, never a panic in a scenario's arithmetic.
#[tokio::test]
async fn a_bench_timer_window_out_of_range_is_a_usage_error() {
    for bad in ["inf", "NaN", "0", "-1", "86401", "soon"] {
        let flag = format!("--timer-window={bad}");
        let out = taskhive(&["bench", "--scenarios", "timer-floor", &flag]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--timer-window"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn restore_reads_a_dump_and_load_file_still_works_with_a_note() {
    let s = TestServer::start().await;
    let addr = s.addr.to_string();
    let mut c = s.client().await;
    c.submit_job(job("rs", "a")).await.unwrap();
    let file = s.dir.path().join("backup.bin");
    let file = file.to_str().unwrap();
    let out = taskhive(&["dump", file, "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = taskhive(&["restore", file, "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "restored 1 job(s)\n");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));

    let out = taskhive(&["load", file, "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "loaded 1 job(s)\n");
    assert!(
        stderr(&out).contains("'load FILE' is deprecated") && stderr(&out).contains("restore"),
        "{}",
        stderr(&out)
    );

    // `load` with a runner subcommand is the load runner, as before.
    let out = taskhive(&["load", "tasks", "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    // A missing dump file names the file.
    let out = taskhive(&["restore", "/nonexistent/dump.bin", "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("taskhive: /nonexistent/dump.bin: "),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn auth_refusals_say_which_flag_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!(
            "client {}\n",
            taskhive::auth::hash_hex("client-token-0123456789")
        ),
    )
    .unwrap();
    let s = TestServer::start_with(|c| c.auth = Some(file)).await;
    let addr = s.addr.to_string();
    let out = taskhive(&["status", "--addr", &addr]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("taskhive: unauthenticated: "), "{err}");
    assert!(err.contains("check --token / TASKHIVE_TOKEN"), "{err}");
    // A client token may not drop tasks.
    let out = taskhive(&[
        "drop",
        "-f",
        "t",
        "--addr",
        &addr,
        "--token",
        "client-token-0123456789",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("taskhive: permission denied: "), "{err}");
    assert!(err.contains("--token / TASKHIVE_TOKEN"), "{err}");
}

#[tokio::test]
async fn a_node_whose_store_cannot_open_exits_without_announcing_its_port() {
    // Scripts take "listening on" for "ready": a node that cannot open its store must not
    // print it before it fails (`serve_fails` checks that). One node's store (a file where
    // its directory should be) and a cluster node's (a PostgreSQL address nothing listens on).
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("data");
    std::fs::write(&not_a_dir, b"a file where the data directory should be").unwrap();
    let log = common::child::serve_fails(&not_a_dir, &[]).await;
    assert!(log.contains("taskhive: store: create "), "{log}");

    let url = format!("postgres://taskhive@127.0.0.1:{}/taskhive", free_port());
    let log = common::child::serve_fails(&dir.path().join("node"), &["--store", &url]).await;
    assert!(log.contains("taskhive: store: postgres: "), "{log}");
}
