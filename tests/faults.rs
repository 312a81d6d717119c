//! Faults a server meets in production, against real processes where it matters: a store that
//! cannot write (simulated in process, and a real file-size limit on a child server), a worker
//! process killed mid-job, workers connecting and dropping by the thousand, and SIGTERM with
//! results still in flight.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::child::{bin, spawn_server, spawn_server_with};
use common::*;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use taskhive::periodic::command::{encode_request, Request};
use taskhive::periodic::frame;
use taskhive::scheduler::actor;
use taskhive::scheduler::clock::Clock;
use taskhive::scheduler::core::{Core, CoreConfig};
use taskhive::scheduler::job::*;
use taskhive::scheduler::settings::Settings;
use taskhive::scheduler::Error;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;
use taskhive::store::{Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Code;

/// A memory store whose commits fail while `fail` is set; reads keep working.
fn flaky_store(inner: MemoryStore, fail: Arc<AtomicBool>) -> common::stores::HookedStore {
    common::stores::HookedStore::new(inner, move |_| {
        if fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("database or disk is full".into()));
        }
        Ok(())
    })
}

fn spec(name: &str, at: Millis) -> JobSpec {
    JobSpec {
        task: "t".into(),
        name: name.into(),
        args: Bytes::from_static(b"x"),
        sched_at: at,
        timeout_ms: 3_600_000,
        priority: 0,
        retry: RetryPolicy::default(),
        trace: None,
        key: String::new(),
    }
}

fn key(name: &str) -> JobKey {
    JobKey::Name {
        task: "t".into(),
        name: name.into(),
    }
}

fn sorted(mut v: Vec<JobRecord>) -> Vec<JobRecord> {
    v.sort_by_key(|r| r.id);
    v
}

/// Polls `check` until it returns true; fails the test after `secs`.
async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    mut check: impl FnMut() -> F,
) {
    within(secs, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// An actor over a memory store (returned) whose commits fail while the flag is set, with
/// one worker of task "t" (capacity 1); the receiver gets the jobs that worker is handed (a
/// resync also revokes the lease it held).
async fn flaky_actor() -> (
    actor::SchedulerHandle,
    MemoryStore,
    Arc<AtomicBool>,
    Clock,
    mpsc::UnboundedReceiver<JobView>,
) {
    let store = MemoryStore::default();
    let fail = Arc::new(AtomicBool::new(false));
    let (writer, _join) = Writer::spawn(flaky_store(store.clone(), fail.clone()));
    let clock = Clock::system();
    let (h, _actor) = actor::spawn(
        Core::new(CoreConfig::default(), 1, 1),
        Settings::new(600, Vec::new()),
        writer,
        clock,
        std::sync::Arc::new(taskhive::metrics::Metrics::new()),
    );
    let (tx, mut to_worker) = actor::worker_channel();
    h.register(None, vec!["t".into()], vec![], 1, Some(tx))
        .await
        .unwrap();
    let (jobs_tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = to_worker.recv().await {
            if let taskhive::scheduler::actor::ToWorker::Job(j) = m {
                let _ = jobs_tx.send(j);
            }
        }
    });
    (h, store, fail, clock, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_put_memory_back_as_stored() {
    let (h, store, fail, clock, mut rx) = flaky_actor().await;
    let now = clock.now_ms();
    h.submit(spec("a", now)).await.unwrap();
    h.submit(spec("later", now + 3_600_000)).await.unwrap();
    let first = within(10, rx.recv()).await.unwrap();
    assert_eq!(first.record.name, "a");
    let old_lease = first.lease.unwrap();

    fail.store(true, Ordering::SeqCst);
    // Each of these changed memory before its commit failed; the caller hears why.
    let e = h
        .report(
            old_lease,
            Outcome::Done {
                result: Bytes::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Store(_)) && e.to_string().contains("store cannot write"),
        "{e}"
    );
    let e = h.submit(spec("b", now)).await.unwrap_err();
    assert!(e.to_string().contains("database or disk is full"), "{e}");
    h.remove(key("later")).await.unwrap_err();
    h.set_config("timeout".into(), 42).await.unwrap_err();

    // Memory comes back to what the store holds: "a" (done refused) is handed out again
    // under a new lease, "b" (submit refused) is gone, "later" (remove refused) is back.
    let again = within(10, async {
        loop {
            let j = rx.recv().await.unwrap();
            if j.record.name == "a" {
                return j;
            }
        }
    })
    .await;
    assert_ne!(again.lease, Some(old_lease));
    eventually(10, || async {
        matches!(h.get(key("b")).await, Err(Error::NotFound(_)))
            && h.get(key("later")).await.is_ok()
    })
    .await;
    assert_eq!(
        h.get_config("timeout".into()).await.unwrap()["timeout"],
        600
    );
    // The lease the refused report named is not the job's any more.
    let e = h
        .report(
            old_lease,
            Outcome::Done {
                result: Bytes::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StaleLease(_)), "{e:?}");
    assert_eq!(
        sorted(h.dump_page(0, usize::MAX).await.unwrap()),
        sorted(store.snapshot())
    );
    let (_, totals) = h.status(None).await.unwrap();
    assert_eq!(
        totals.pending + totals.scheduled + totals.running + totals.dead,
        store.snapshot().len() as u64
    );

    // Space is back: writes go through again.
    fail.store(false, Ordering::SeqCst);
    h.submit(spec("b", now)).await.unwrap();
    h.report(
        again.lease.unwrap(),
        Outcome::Done {
            result: Bytes::new(),
        },
    )
    .await
    .unwrap();
    let names: Vec<String> = store.snapshot().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["later", "b"]);
    assert_eq!(
        sorted(h.dump_page(0, usize::MAX).await.unwrap()),
        sorted(store.snapshot())
    );
}

/// A stored row with no timeout of its own (an earlier version's cluster submits stored
/// none: each node applied its `timeout` setting when it claimed the job) gets this node's
/// setting when a failed commit reloads it, and so does a job loaded from such a dump.
/// Leased with none, it expired at once and was retried at once, and it went dead after its
/// 25 attempts within milliseconds (seen in `tests/cluster_faults.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_reloaded_or_loaded_without_a_timeout_take_the_default() {
    let (h, mut store, fail, clock, mut rx) = flaky_actor().await;
    h.submit(spec("a", clock.now_ms())).await.unwrap();
    let first = within(10, rx.recv()).await.unwrap();
    assert_eq!(first.record.timeout_ms, 3_600_000);
    // The row as an earlier version's cluster submit stored it.
    let mut row = store.snapshot().pop().unwrap();
    row.timeout_ms = 0;
    store
        .apply(&[taskhive::store::Op::from(
            taskhive::store::JobWrite::Upsert(row),
        )])
        .unwrap();

    fail.store(true, Ordering::SeqCst);
    let done = Outcome::Done {
        result: Bytes::new(),
    };
    h.report(first.lease.unwrap(), done).await.unwrap_err();
    fail.store(false, Ordering::SeqCst);
    let again = within(10, rx.recv()).await.unwrap();
    assert_eq!(again.record.name, "a");
    assert_eq!(again.record.timeout_ms, 600_000, "this node's timeout");
    assert_eq!(again.record.attempts, 0, "not failed by an instant expiry");
    let (_, totals) = h.status(None).await.unwrap();
    assert_eq!((totals.running, totals.dead), (1, 0));

    // A job loaded from a cluster's dump has none either.
    let mut dumped = again.record.clone();
    (dumped.id, dumped.name, dumped.timeout_ms) = (0, "b".into(), 0);
    h.load(dumped).await.unwrap();
    let done = Outcome::Done {
        result: Bytes::new(),
    };
    h.report(again.lease.unwrap(), done).await.unwrap();
    let b = within(10, rx.recv()).await.unwrap();
    assert_eq!(
        (b.record.name.as_str(), b.record.timeout_ms),
        ("b", 600_000)
    );
}

async fn client(addr: SocketAddr) -> SchedulerClient<Channel> {
    let ch = within(10, async {
        loop {
            if let Ok(c) = Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    SchedulerClient::new(ch)
}

fn job_ref(task: &str, name: &str) -> pb::JobRef {
    pb::JobRef {
        job_id: 0,
        task: task.into(),
        name: name.into(),
    }
}

/// Sets the soft file-size limit of process `pid` (the hard limit stays unlimited).
fn set_file_size_limit(pid: u32, bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall on a pid we own; no memory is shared.
    let r = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A disk that stops taking writes: a file-size limit of 0 on the running server makes every
/// write fail (EFBIG; SIGXFSZ is ignored so the process lives), as a full disk does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_clearly_serves_reads_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut child, addr) = spawn_server_with(&dir, &[], |cmd| {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    })
    .await;
    let pid = child.id().unwrap();
    let mut c = client(addr).await;
    for i in 0..20 {
        c.submit_job(job("disk", &format!("ok-{i}"))).await.unwrap();
    }

    set_file_size_limit(pid, 0);
    for i in 0..5 {
        let e = c
            .submit_job(job("disk", &format!("full-{i}")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("store cannot write"), "{e:?}");
    }
    // Reads are still served, and memory agrees with the store: the refused jobs are not there.
    for i in 0..5 {
        let name = format!("full-{i}");
        eventually(10, || {
            let mut c = c.clone();
            let name = name.clone();
            async move {
                matches!(c.get_job(job_ref("disk", &name)).await, Err(e) if e.code() == Code::NotFound)
            }
        })
        .await;
    }
    c.get_job(job_ref("disk", "ok-7")).await.unwrap();
    assert_eq!(task_status(&mut c, "disk").await.pending, 20);

    // Space returns: submits work again, at once.
    set_file_size_limit(pid, libc::RLIM_INFINITY);
    c.submit_job(job("disk", "after")).await.unwrap();
    assert_eq!(task_status(&mut c, "disk").await.pending, 21);

    // What was acknowledged is on disk, what was refused is not.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let (_child, addr) = spawn_server(&dir, &[]).await;
    let mut c = client(addr).await;
    assert_eq!(task_status(&mut c, "disk").await.pending, 21);
    c.get_job(job_ref("disk", "after")).await.unwrap();
    let e = c.get_job(job_ref("disk", "full-0")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// A `taskhive run --exec` worker process is SIGKILLed while its job runs: the job goes to
/// another worker within its lease timeout, and a late report under the old lease is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_process_job_is_redelivered_and_its_stale_lease_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, addr) = spawn_server(&tmp.path().join("data"), &[]).await;
    let started = tmp.path().join("started");
    // The job records its pid (exec keeps it) and then runs far longer than the test.
    let exec = script(
        tmp.path(),
        "w.sh",
        &format!("echo $$ > {}\nexec sleep 120", started.display()),
    );
    let mut worker = Command::new(bin())
        .args([
            "run",
            "-f",
            "kill",
            "--exec",
            &exec,
            "--addr",
            &addr.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut c = client(addr).await;
    const LEASE_MS: i64 = 10_000;
    let mut req = job("kill", "j");
    req.timeout_ms = Some(LEASE_MS);
    req.retry = Some(pb::RetryPolicy {
        max_attempts: 5,
        backoff_base_ms: 100,
        backoff_max_ms: 100,
    });
    c.submit_job(req).await.unwrap();
    eventually(30, || async {
        std::fs::read_to_string(&started).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let running = c.get_job(job_ref("kill", "j")).await.unwrap().into_inner();
    assert_eq!(running.state(), pb::JobState::Running);
    let stale = running.lease_id;
    assert_ne!(stale, 0);

    worker.start_kill().unwrap(); // SIGKILL
    worker.wait().await.unwrap();
    let killed_at = Instant::now();
    let orphan: i32 = std::fs::read_to_string(&started)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signals the job's own process, which the test started.
    unsafe { libc::kill(orphan, libc::SIGKILL) };

    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut w2 = Worker::connect(ch, &["kill"], 1).await;
    let j = w2.next_job().await;
    assert_eq!(j.name, "j");
    assert!(
        killed_at.elapsed() < Duration::from_millis(LEASE_MS as u64),
        "redelivered after {:?}",
        killed_at.elapsed()
    );
    assert_ne!(j.lease_id, stale);
    assert_eq!(j.attempts, 1, "the lost worker counts one attempt");

    // The killed worker's report arrives late: refused, and the job stays with w2.
    let e = c
        .report_result(pb::ReportResultRequest {
            lease_id: stale,
            outcome: Some(pb::Outcome {
                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let reason = tonic_types::StatusExt::get_details_error_info(&e).map(|i| i.reason);
    assert_eq!(reason.as_deref(), Some("STALE_LEASE"), "{e:?}");
    let now = c.get_job(job_ref("kill", "j")).await.unwrap().into_inner();
    assert_eq!(now.state(), pb::JobState::Running);
    assert_eq!(now.lease_id, j.lease_id);
    w2.done(j.lease_id, b"ok").await;
    let e = c.get_job(job_ref("kill", "j")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One Periodic worker connection: handshake, CAN_DO, GRAB_JOB, then dropped.
async fn periodic_worker_blip(addr: SocketAddr) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame::encode_request(&[2])).await.unwrap();
    let mut buf = BytesMut::new();
    while buf.len() < 12 + 4 {
        assert_ne!(
            s.read_buf(&mut buf).await.unwrap(),
            0,
            "closed before the id"
        );
    }
    let mut out =
        frame::encode_request(&encode_request(1, &Request::CanDo("leak".into()))).to_vec();
    out.extend_from_slice(&frame::encode_request(&encode_request(
        2,
        &Request::GrabJob,
    )));
    s.write_all(&out).await.unwrap();
}

async fn grpc_worker_blip(addr: SocketAddr) {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let w = Worker::connect(ch, &["leak"], 4).await;
    drop(w);
}

async fn blips(grpc: SocketAddr, periodic: SocketAddr, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        if set.len() >= 16 {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(grpc_worker_blip(grpc));
        if i % 2 == 0 {
            set.spawn(periodic_worker_blip(periodic));
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// Waits until the server counts no worker (every dropped connection was noticed).
async fn no_workers(c: &mut SchedulerClient<Channel>) {
    eventually(30, || {
        let mut c = c.clone();
        async move { task_status(&mut c, "leak").await.workers == 0 }
    })
    .await
}

/// Rounds of 1,000 gRPC workers and 500 Periodic workers connecting and dropping: the
/// server's open files come back to where they were and its memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_connecting_and_dropping_leak_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let periodic = free.local_addr().unwrap();
    drop(free);
    let listen = format!("tcp://{periodic}");
    // One malloc arena, trimmed eagerly: per-thread arenas make RSS jump by whole arenas.
    let (child, addr) = spawn_server_with(
        &tmp.path().join("data"),
        &["--periodic-listen", &listen],
        |cmd| {
            cmd.env("MALLOC_ARENA_MAX", "1")
                .env("MALLOC_TRIM_THRESHOLD_", "0");
        },
    )
    .await;
    let pid = child.id().unwrap();
    let mut c = client(addr).await;
    eventually(10, || async {
        tokio::net::TcpStream::connect(periodic).await.is_ok()
    })
    .await;

    // Warm-up: thread pools, buffers and the heap reach their working size. Measured RSS
    // after each round of 1,500 connections: 44, 48, 51, 51.5, 51.8 MiB (a plateau).
    for _ in 0..3 {
        blips(addr, periodic, 1_000).await;
    }
    no_workers(&mut c).await;
    let (fd0, rss0) = (open_fds(pid), rss_kib(pid));

    for _ in 0..2 {
        blips(addr, periodic, 1_000).await;
        no_workers(&mut c).await;
    }
    // Closed sockets are released as their tasks end; allow the test's own connection and a
    // few in teardown.
    eventually(10, || async { open_fds(pid) <= fd0 + 2 }).await;
    let rss1 = rss_kib(pid);
    eprintln!(
        "server fds {fd0} -> {}, RSS {rss0} KiB -> {rss1} KiB",
        open_fds(pid)
    );
    // Tolerance 8 MiB over 3,000 connections: glibc's heap still moves by 1 to 5 MiB here
    // (ten runs); a leak of 2.8 KiB or more per connection fails it. Open files are exact.
    assert!(
        rss1 <= rss0 + 8 * 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB over 3,000 connections"
    );
}

/// SIGTERM with jobs out: a result reported within the grace period is applied and
/// acknowledged, the job never reported goes back to pending, and the server exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_accepts_results_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut child, addr) = spawn_server(&dir, &["--shutdown-grace", "3s"]).await;
    let mut c = client(addr).await;
    c.submit_job(job("term", "reported")).await.unwrap();
    c.submit_job(job("term", "held")).await.unwrap();
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut w = Worker::connect(ch, &["term"], 2).await;
    let a = w.next_job().await;
    let b = w.next_job().await;
    let (reported, held) = if a.name == "reported" { (a, b) } else { (b, a) };

    // SAFETY: signals the child server this test started.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let term_at = Instant::now();
    // Shutdown has begun once the server stops accepting connections.
    eventually(10, || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    w.done(reported.lease_id, b"in time").await;
    assert!(term_at.elapsed() < Duration::from_secs(3));

    let status = within(15, child.wait()).await.unwrap();
    assert!(status.success(), "server exited with {status:?}");
    let (_child, addr) = spawn_server(&dir, &[]).await;
    let mut c = client(addr).await;
    let e = c.get_job(job_ref("term", "reported")).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "the result within the grace period was lost"
    );
    let back = c
        .get_job(job_ref("term", "held"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.state(), pb::JobState::Pending);
    assert_eq!(back.attempts, 0, "shutdown does not count an attempt");
    drop(held);
}
