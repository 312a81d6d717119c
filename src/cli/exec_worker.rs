//! `taskhive run -f TASK --exec CMD`: the Periodic shell worker over the Work stream.
//!
//! CMD is split on spaces (no shell) and runs with the job name as its last argument and
//! the job's args on stdin. A stdout line `DONE`, `FAIL`, `SCHED_LATER n` (or Periodic
//! 0.1.7's `SCHEDLATER n`) decides the outcome; without one, exit 0 is done and anything
//! else is fail. The options of haskell-periodic's `periodic-run` are supported too.
//!
//! A CancelJob from the server (the job was removed while running, or its node gave the
//! lease up) stops the command: SIGTERM, then SIGKILL after `--cancel-grace`. Its outcome
//! is not reported; once the command is gone the lease is released with a report the
//! server refuses (that refusal is expected, so it is not printed), which frees the
//! worker's slot on the server at the moment the command really stopped.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::commands::{connect, CliResult};
use super::Conn;
use crate::pb;
use crate::pb::outcome::Outcome as O;
use crate::pb::server_message::Msg as Out;
use crate::pb::worker_message::Msg as In;

/// `taskhive run` flags.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Task (func) to serve.
    #[arg(short = 'f', long = "func", alias = "task")]
    pub task: String,
    /// Command to run for each job.
    #[arg(long)]
    pub exec: String,
    /// Jobs run at once.
    #[arg(long, alias = "thread", default_value_t = 1)]
    pub concurrency: u32,
    /// Stop a command after this many seconds (SIGTERM, then SIGKILL 5 s later); the job fails.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// When the server cancels a running job (removed while running), its command gets
    /// SIGTERM, then SIGKILL this many seconds later if it is still there (decimals allowed).
    /// The default fits inside the third of the default claim TTL (15 s) that a cluster node
    /// cut off from the database leaves for its workers to stop.
    #[arg(long, value_name = "SECONDS", default_value = "4", value_parser = parse_grace)]
    pub cancel_grace: Duration,
    /// A failing command reschedules the job this many seconds later instead of failing it.
    #[arg(long, value_name = "SECONDS")]
    pub retry_secs: Option<i64>,
    /// A failing command counts as done.
    #[arg(long)]
    pub skip_fail: bool,
    /// The command's stdout becomes the job's result.
    #[arg(long)]
    pub data: bool,
    /// `WORKDATA x` lines stream x to watchers; `WORKDONE x` finishes with result x.
    #[arg(long)]
    pub work_data: bool,
    /// Run only while holding this named lock.
    #[arg(long)]
    pub lock_name: Option<String>,
    /// How many jobs may hold the lock at once.
    #[arg(long, default_value_t = 1)]
    pub lock_count: u32,
    /// Register the task as broadcast: every job runs on every such worker.
    #[arg(long)]
    pub broadcast: bool,
    /// Limit the command's address space (bytes; suffixes k, m, g).
    #[arg(long, value_parser = parse_size)]
    pub mem_limit: Option<u64>,
    /// Do not pass the job name as the last argument.
    #[arg(long)]
    pub no_name: bool,
    /// Where the server is.
    #[command(flatten)]
    pub conn: Conn,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not a size"))
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds (0 or more)"))
}

/// What a command's stdout line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// `DONE`.
    Done,
    /// `FAIL`.
    Fail,
    /// `SCHED_LATER n` / `SCHEDLATER n`, in seconds.
    SchedLater(i64),
}

/// Reads one stdout line as an outcome token, if it is one.
pub(crate) fn parse_line(line: &str) -> Option<LineOutcome> {
    let line = line.trim();
    let mut parts = line.split_whitespace();
    match parts.next()? {
        "DONE" => Some(LineOutcome::Done),
        "FAIL" => Some(LineOutcome::Fail),
        "SCHED_LATER" | "SCHEDLATER" => match parts.next().and_then(|n| n.parse::<i64>().ok()) {
            // Periodic 0.1.7: a missing, non-numeric or non-positive delay means done.
            Some(n) if n > 0 => Some(LineOutcome::SchedLater(n)),
            _ => Some(LineOutcome::Done),
        },
        _ => None,
    }
}

/// Runs the shell worker until the process is stopped, reconnecting with backoff.
pub async fn run(args: RunArgs) -> CliResult {
    let argv: Vec<String> = args.exec.split_whitespace().map(String::from).collect();
    if argv.is_empty() {
        return Err("--exec: must name a command".into());
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match session(&args, &argv).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("taskhive run: {e}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

type LockWaiters = Arc<Mutex<HashMap<u64, oneshot::Sender<bool>>>>;

/// The running jobs of a session that the server may cancel, by lease: each is told why.
type CancelWaiters = Arc<Mutex<HashMap<u64, oneshot::Sender<String>>>>;

/// One job's view of the stream: send messages, ask for locks.
#[derive(Clone)]
struct Link {
    tx: mpsc::Sender<pb::WorkerMessage>,
    locks: LockWaiters,
    cancels: CancelWaiters,
}

impl Link {
    async fn send(&self, m: In) {
        let _ = self.tx.send(pb::WorkerMessage { msg: Some(m) }).await;
    }

    async fn acquire(&self, lease_id: u64, name: &str, count: u32) -> bool {
        let (tx, rx) = oneshot::channel();
        self.locks.lock().expect("poisoned").insert(lease_id, tx);
        self.send(In::Acquire(pb::AcquireLockRequest {
            lease_id,
            name: name.to_string(),
            count,
        }))
        .await;
        rx.await.unwrap_or(false)
    }
}

async fn session(args: &RunArgs, argv: &[String]) -> CliResult {
    let mut client = connect(&args.conn).await?;
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(64);
    let (tasks, broadcast_tasks) = if args.broadcast {
        (vec![], vec![args.task.clone()])
    } else {
        (vec![args.task.clone()], vec![])
    };
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::WorkerHello {
            tasks,
            capacity: args.concurrency.max(1),
            name: format!("taskhive run --exec {}", args.exec),
            broadcast_tasks,
        })),
    })
    .await?;
    let link = Link {
        tx,
        locks: Arc::default(),
        cancels: Arc::default(),
    };
    // Cancelled leases whose report the server is expected to refuse.
    let mut cancelled = HashSet::new();
    let mut inbound = client.work(ReceiverStream::new(rx)).await?.into_inner();
    while let Some(msg) = inbound.message().await? {
        match msg.msg {
            Some(Out::Job(job)) => {
                let link = link.clone();
                let argv = argv.to_vec();
                let args = args.clone();
                let (cancel_tx, mut cancel) = oneshot::channel();
                link.cancels
                    .lock()
                    .expect("poisoned")
                    .insert(job.lease_id, cancel_tx);
                tokio::spawn(async move {
                    let lease_id = job.lease_id;
                    if let Some(name) = &args.lock_name {
                        // Not acquired: the job now waits for the lock and comes back later.
                        if !link.acquire(lease_id, name, args.lock_count).await {
                            link.cancels.lock().expect("poisoned").remove(&lease_id);
                            return;
                        }
                    }
                    let outcome = match cancel.try_recv() {
                        // Cancelled while it waited for its lock: nothing to stop.
                        Ok(reason) => Err(reason),
                        Err(_) => run_job(&args, &argv, job, &link, cancel).await,
                    };
                    link.cancels.lock().expect("poisoned").remove(&lease_id);
                    let outcome = outcome.unwrap_or_else(|reason| {
                        // Not the command's outcome: releases the lease (and this worker's
                        // slot) now that the command is gone. The server refuses it.
                        O::Fail(pb::Fail {
                            error: format!("cancelled: {reason}"),
                            retry: None,
                        })
                    });
                    link.send(In::Result(pb::WorkerResult {
                        lease_id,
                        outcome: Some(pb::Outcome {
                            outcome: Some(outcome),
                        }),
                    }))
                    .await;
                });
            }
            Some(Out::Cancel(c)) => {
                // A lease not found here has already ended: its report is refused as well.
                cancelled.insert(c.lease_id);
                let waiter = link.cancels.lock().expect("poisoned").remove(&c.lease_id);
                if let Some(w) = waiter {
                    eprintln!(
                        "taskhive run: job {} (lease {}) cancelled: {}; stopping its command",
                        c.job_id, c.lease_id, c.reason
                    );
                    let _ = w.send(c.reason);
                }
            }
            Some(Out::Ack(a)) if cancelled.remove(&a.lease_id) => {}
            Some(Out::Lock(l)) => {
                if let Some(w) = link.locks.lock().expect("poisoned").remove(&l.lease_id) {
                    let _ = w.send(l.acquired);
                }
            }
            Some(Out::Ack(a)) if !a.error.is_empty() => {
                eprintln!(
                    "taskhive run: result for lease {} rejected: {}",
                    a.lease_id, a.error
                )
            }
            _ => {}
        }
    }
    Err("server closed the stream".into())
}

/// Why the reading of a command's stdout stopped.
enum Stop {
    /// Its stdout closed (it exited, or closed it).
    Eof,
    /// `--timeout` passed.
    TimedOut,
    /// The server cancelled the job, for this reason.
    Cancelled(String),
}

/// How the command ended, before the options turn it into an outcome.
enum Ended {
    Token(LineOutcome),
    Exit(Result<std::process::ExitStatus, String>),
    TimedOut,
}

/// Runs the command of one job: its outcome, or Err(reason) when the server cancelled the
/// job (the command was stopped).
async fn run_job(
    args: &RunArgs,
    argv: &[String],
    job: pb::Job,
    link: &Link,
    cancel: oneshot::Receiver<String>,
) -> Result<O, String> {
    // Resolves with the reason of a cancel; a dropped sender is no cancel.
    let cancel = async move {
        match cancel.await {
            Ok(reason) => reason,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::pin!(cancel);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if !args.no_name {
        cmd.arg(&job.name);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(limit) = args.mem_limit {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ok(O::Fail(pb::Fail {
                error: format!("spawn {}: {e}", argv[0]),
                retry: None,
            }))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let input = job.args.clone();
        // A command that ignores stdin may exit before reading it: that is not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut token = None;
    let mut output = Vec::new();
    let mut work_done: Option<Bytes> = None;
    // Heartbeats keep the lease of a long command alive.
    let beat = Duration::from_millis((job.timeout_ms.max(3) / 3) as u64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let stop = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    if args.work_data {
                        if let Some(d) = l.strip_prefix("WORKDATA ") {
                            link.send(In::Data(pb::WorkData {
                                lease_id: job.lease_id,
                                data: Bytes::from(d.to_string()),
                            })).await;
                            continue;
                        }
                        if let Some(d) = l.strip_prefix("WORKDONE") {
                            work_done = Some(Bytes::from(d.trim_start().to_string()));
                            continue;
                        }
                    }
                    match parse_line(&l) {
                        Some(t) => token = Some(t),
                        None if args.data => {
                            output.extend_from_slice(l.as_bytes());
                            output.push(b'\n');
                        }
                        None => println!("{l}"),
                    }
                }
                _ => break Stop::Eof,
            },
            _ = ticker.tick() => {
                link.send(In::Heartbeat(pb::HeartbeatRequest { lease_ids: vec![job.lease_id] })).await;
            }
            _ = crate::scheduler::clock::sleep_until_opt(deadline) => break Stop::TimedOut,
            reason = &mut cancel => break Stop::Cancelled(reason),
        }
    };
    let ended = match stop {
        Stop::Cancelled(reason) => {
            terminate(&mut child, args.cancel_grace).await;
            return Err(reason);
        }
        Stop::TimedOut => {
            terminate(&mut child, TIMEOUT_GRACE).await;
            Ended::TimedOut
        }
        Stop::Eof => {
            let status = tokio::select! {
                s = child.wait() => s.map_err(|e| e.to_string()),
                // Stdout closed but the command runs on: a cancel still stops it.
                reason = &mut cancel => {
                    terminate(&mut child, args.cancel_grace).await;
                    return Err(reason);
                }
            };
            match token {
                Some(t) => Ended::Token(t),
                None => Ended::Exit(status),
            }
        }
    };
    let done = |result: Bytes| O::Done(pb::Done { result });
    let result = work_done.unwrap_or_else(|| Bytes::from(output));
    let failed = |error: String| -> O {
        if args.skip_fail {
            done(Bytes::new())
        } else if let Some(secs) = args.retry_secs {
            O::SchedLater(pb::SchedLater {
                delay_ms: secs.max(0) * 1000,
                count_step: 1,
            })
        } else {
            O::Fail(pb::Fail { error, retry: None })
        }
    };
    Ok(match ended {
        Ended::Token(LineOutcome::Done) => done(result),
        Ended::Token(LineOutcome::Fail) => failed("command printed FAIL".into()),
        Ended::Token(LineOutcome::SchedLater(n)) => O::SchedLater(pb::SchedLater {
            delay_ms: n * 1000,
            count_step: 1,
        }),
        Ended::Exit(Ok(s)) if s.success() => done(result),
        Ended::Exit(Ok(s)) => failed(format!("command exited with {s}")),
        Ended::Exit(Err(e)) => failed(format!("wait: {e}")),
        Ended::TimedOut => failed(format!(
            "command timed out after {} s",
            args.timeout.unwrap_or(0)
        )),
    })
}

/// How long a command stopped by `--timeout` has between SIGTERM and SIGKILL.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// SIGTERM, then SIGKILL if the command is still there `grace` later. The command is not
/// in a process group of its own (Ctrl-C on `taskhive run` reaches it too), so only its
/// own process is signalled: a script that starts children forwards the signal (or execs).
async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(parse_line("DONE"), Some(LineOutcome::Done));
        assert_eq!(parse_line("FAIL"), Some(LineOutcome::Fail));
        assert_eq!(
            parse_line("SCHED_LATER 5"),
            Some(LineOutcome::SchedLater(5))
        );
        assert_eq!(parse_line("SCHEDLATER 7"), Some(LineOutcome::SchedLater(7)));
        assert_eq!(parse_line("SCHED_LATER 0"), Some(LineOutcome::Done));
        assert_eq!(parse_line("SCHED_LATER x"), Some(LineOutcome::Done));
        assert_eq!(parse_line("total 0"), None);
        assert_eq!(parse_line("DONEISH"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn graces() {
        assert_eq!(parse_grace("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_grace("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_grace("0"), Ok(Duration::ZERO));
        assert!(parse_grace("-1").is_err());
        assert!(parse_grace("soon").is_err());
    }
}
