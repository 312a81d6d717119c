//! `taskhive run --exec`: the Periodic shell worker, against a real server.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::child::bin;
use common::*;
use taskhive::pb;
use tokio::process::{Child, Command};

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn run_worker(s: &TestServer, task: &str, exec: &str) -> Child {
    Command::new(bin())
        .args([
            "run",
            "-f",
            task,
            "--exec",
            exec,
            "--addr",
            &s.addr.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn job_state(s: &TestServer, task: &str, name: &str) -> Option<pb::Job> {
    let mut c = s.client().await;
    c.get_job(pb::JobRef {
        job_id: 0,
        task: task.into(),
        name: name.into(),
    })
    .await
    .ok()
    .map(|r| r.into_inner())
}

/// Polls the job until `pred` holds (or the deadline fails the test).
async fn wait_job(s: &TestServer, task: &str, name: &str, pred: impl Fn(Option<&pb::Job>) -> bool) {
    within(30, async {
        loop {
            if pred(job_state(s, task, name).await.as_ref()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sched_later_then_done() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let exec = script(
        tmp.path(),
        "w.sh",
        &format!(
            r#"echo "$1 $(cat)" >> {log}
n=$(wc -l < {log})
echo "some output"
if [ "$n" -lt 2 ]; then echo "SCHED_LATER 1"; else echo "DONE"; fi"#,
            log = log.display()
        ),
    );
    let _w = run_worker(&s, "sh", &exec);
    let mut c = s.client().await;
    let mut r = job("sh", "job one");
    r.args = b"payload".to_vec().into();
    c.submit_job(r).await.unwrap();
    let t = Instant::now();
    wait_job(&s, "sh", "job one", |j| j.is_some_and(|j| j.run_count == 1)).await;
    wait_job(&s, "sh", "job one", |j| j.is_none()).await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "ran again before its delay"
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    // The name is one argument (no shell splitting) and the args arrive on stdin.
    assert_eq!(lines, "job one payload\njob one payload\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_0_1_7_spelling_and_exit_codes() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let later = script(tmp.path(), "later.sh", "echo SCHEDLATER 60");
    let failing = script(tmp.path(), "fail.sh", "echo oops; exit 3");
    let ok = script(tmp.path(), "ok.sh", "exit 0");
    let _a = run_worker(&s, "later", &later);
    let _b = run_worker(&s, "failing", &failing);
    let _c = run_worker(&s, "ok", &ok);
    let mut c = s.client().await;
    for t in ["later", "failing", "ok"] {
        c.submit_job(job(t, "j")).await.unwrap();
    }
    wait_job(&s, "later", "j", |j| {
        j.is_some_and(|j| j.run_count == 1 && j.state == pb::JobState::Scheduled as i32)
    })
    .await;
    let j = job_state(&s, "later", "j").await.unwrap();
    assert!(j.sched_at_ms >= now_ms() + 55_000);
    wait_job(&s, "failing", "j", |j| j.is_some_and(|j| j.attempts >= 1)).await;
    let j = job_state(&s, "failing", "j").await.unwrap();
    assert!(j.last_error.contains("exit status: 3"), "{}", j.last_error);
    wait_job(&s, "ok", "j", |j| j.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_ls_every_five_second_example_works_as_written() {
    let s = TestServer::start().await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ls-every-five-second.sh");
    let _w = run_worker(&s, "ls5", &example.display().to_string());
    let target = tempfile::tempdir().unwrap();
    let name = target.path().display().to_string();
    cli(&s, &["submit", "-f", "ls5", "-n", &name, "--args", ""]).await;
    wait_job(&s, "ls5", &name, |j| j.is_some_and(|j| j.run_count == 1)).await;
    let j = job_state(&s, "ls5", &name).await.unwrap();
    assert_eq!(j.state, pb::JobState::Scheduled as i32);
    assert!(
        j.sched_at_ms > now_ms() + 3_000,
        "SCHED_LATER 5 means about five seconds"
    );
}

/// Waits until a worker process has registered for `task`.
async fn wait_registered(s: &TestServer, task: &str) {
    let mut c = s.client().await;
    within(30, async {
        while task_status(&mut c, task).await.workers == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn run_worker_with(s: &TestServer, task: &str, exec: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args([
            "run",
            "-f",
            task,
            "--exec",
            exec,
            "--addr",
            &s.addr.to_string(),
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_terminates_the_command_and_fails_the_job() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("term");
    let exec = script(
        tmp.path(),
        "slow.sh",
        &format!(
            "trap 'echo got-term > {}; exit 1' TERM\nsleep 30 & wait",
            marker.display()
        ),
    );
    let _w = run_worker_with(&s, "slow", &exec, &["--timeout", "1"]);
    let mut c = s.client().await;
    let t = std::time::Instant::now();
    c.submit_job(job("slow", "j")).await.unwrap();
    wait_job(&s, "slow", "j", |j| j.is_some_and(|j| j.attempts >= 1)).await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the 30 s command was not stopped"
    );
    let j = job_state(&s, "slow", "j").await.unwrap();
    assert!(
        j.last_error.contains("timed out after 1 s"),
        "{}",
        j.last_error
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "got-term");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_secs_reschedules_failures_and_skip_fail_finishes_them() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let failing = script(tmp.path(), "fail.sh", "exit 2");
    let _a = run_worker_with(&s, "retry", &failing, &["--retry-secs", "30"]);
    let _b = run_worker_with(&s, "skip", &failing, &["--skip-fail"]);
    let mut c = s.client().await;
    c.submit_job(job("retry", "j")).await.unwrap();
    c.submit_job(job("skip", "j")).await.unwrap();
    wait_job(&s, "retry", "j", |j| j.is_some_and(|j| j.run_count == 1)).await;
    let j = job_state(&s, "retry", "j").await.unwrap();
    assert_eq!((j.attempts, j.state), (0, pb::JobState::Scheduled as i32));
    assert!(j.sched_at_ms >= now_ms() + 25_000);
    wait_job(&s, "skip", "j", |j| j.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_data_lines_stream_and_workdone_sets_the_result() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let exec = script(
        tmp.path(),
        "wd.sh",
        "echo 'WORKDATA one'\necho 'WORKDATA two'\necho 'WORKDONE the end'",
    );
    let _w = run_worker_with(&s, "wd", &exec, &["--work-data"]);
    wait_registered(&s, "wd").await;
    let mut c = s.client().await;
    let mut events = c.run_job_stream(job("wd", "j")).await.unwrap().into_inner();
    let mut got = Vec::new();
    while let Some(e) = within(20, events.message()).await.unwrap() {
        got.push(e.event.unwrap());
    }
    use pb::job_event::Event;
    assert_eq!(
        got,
        vec![
            Event::Data(b"one".to_vec().into()),
            Event::Data(b"two".to_vec().into()),
            Event::Result(pb::RunJobResponse {
                job_id: match &got[2] {
                    Event::Result(r) => r.job_id,
                    _ => 0,
                },
                result: b"the end".to_vec().into(),
            }),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_makes_stdout_the_result_and_no_name_drops_the_argument() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let exec = script(tmp.path(), "d.sh", "echo \"args=$# $(cat)\"");
    let _w = run_worker_with(&s, "d", &exec, &["--data", "--no-name"]);
    wait_registered(&s, "d").await;
    let mut c = s.client().await;
    let mut r = job("d", "j");
    r.args = b"in".to_vec().into();
    let res = within(20, c.run_job(r)).await.unwrap().into_inner();
    assert_eq!(&res.result[..], b"args=0 in\n");
}

/// A script for the cancel tests: job "quick" is done at once; any other job writes its pid
/// to `<dir>/pid` and runs until stopped, with `on_term` as its TERM trap.
fn cancel_script(dir: &Path, on_term: &str) -> String {
    let d = dir.display();
    script(
        dir,
        "cancel.sh",
        &format!(
            r#"if [ "$1" = quick ]; then echo DONE; exit 0; fi
trap '{on_term}' TERM
echo $$ > {d}/pid.tmp && mv {d}/pid.tmp {d}/pid
while :; do sleep 0.1; done"#
        ),
    )
}

/// Waits for the running command's pid (written by `cancel_script`).
async fn command_pid(dir: &Path) -> i32 {
    let p = dir.join("pid");
    within(30, async {
        loop {
            if let Ok(s) = std::fs::read_to_string(&p) {
                return s.trim().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn alive(pid: i32) -> bool {
    // Reaped by `taskhive run` once it exits: then there is no /proc entry any more.
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn remove(s: &TestServer, task: &str, name: &str) {
    let mut c = s.client().await;
    c.remove_job(pb::JobRef {
        job_id: 0,
        task: task.into(),
        name: name.into(),
    })
    .await
    .unwrap();
}

/// Runs the `taskhive` CLI against `s` with `args`; asserts it succeeds and returns stdout.
async fn cli(s: &TestServer, args: &[&str]) -> String {
    let addr = s.addr.to_string();
    common::child::cli_ok(&[args, &["--addr", &addr]].concat()).await
}

/// `taskhive cancel -f TASK -n NAME`, as a user types it.
async fn cancel_with_cli(s: &TestServer, task: &str, name: &str) {
    let said = cli(s, &["cancel", "-f", task, "-n", name]).await;
    assert!(said.starts_with("removed job "), "{said}");
}

/// After a cancel the worker (concurrency 1) takes the next job: its slot was released.
async fn next_job_runs(s: &TestServer, task: &str) {
    let mut c = s.client().await;
    c.submit_job(job(task, "quick")).await.unwrap();
    wait_job(s, task, "quick", |j| j.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_running_job_sends_its_command_sigterm() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("term");
    let exec = cancel_script(
        tmp.path(),
        &format!("echo got-term > {}; exit 0", marker.display()),
    );
    let _w = run_worker(&s, "rm", &exec);
    let mut c = s.client().await;
    c.submit_job(job("rm", "long")).await.unwrap();
    let pid = command_pid(tmp.path()).await;
    let t = Instant::now();
    cancel_with_cli(&s, "rm", "long").await;
    within(5, async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "got-term");
    within(5, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    next_job_runs(&s, "rm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let s = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("term");
    // The trap notes the TERM and carries on.
    let exec = cancel_script(tmp.path(), &format!("echo got-term > {}", marker.display()));
    let _w = run_worker_with(&s, "stubborn", &exec, &["--cancel-grace", "1"]);
    let mut c = s.client().await;
    c.submit_job(job("stubborn", "long")).await.unwrap();
    let pid = command_pid(tmp.path()).await;
    let t = Instant::now();
    remove(&s, "stubborn", "long").await;
    within(5, async {
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(alive(pid), "the command should outlive its TERM");
    within(10, async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "SIGKILL after the 1 s grace, not {took:?}"
    );
    next_job_runs(&s, "stubborn").await;
}
