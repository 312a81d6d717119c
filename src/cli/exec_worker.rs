//! `taskhive run -f TASK --exec CMD`: the Periodic shell worker over the Work stream.
//!
//! CMD is split on spaces (no shell) and runs with the job name as its last argument and
//! the job's args on stdin. A stdout line `DONE`, `FAIL`, `SCHED_LATER n` (or Periodic
//! 0.1.7's `SCHEDLATER n`) decides the outcome; without one, exit 0 is done and anything
//! else is fail.

use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::commands::{connect, CliResult};
use super::Conn;
use crate::pb;
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
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Where the server is.
    #[command(flatten)]
    pub conn: Conn,
}

/// The outcome a command's stdout line asks for.
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
pub fn parse_line(line: &str) -> Option<LineOutcome> {
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

async fn session(args: &RunArgs, argv: &[String]) -> CliResult {
    let mut client = connect(&args.conn).await?;
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(64);
    tx.send(pb::WorkerMessage {
        msg: Some(In::Hello(pb::WorkerHello {
            tasks: vec![args.task.clone()],
            capacity: args.concurrency.max(1),
            name: format!("taskhive run --exec {}", args.exec),
            broadcast_tasks: vec![],
        })),
    })
    .await?;
    let mut inbound = client.work(ReceiverStream::new(rx)).await?.into_inner();
    while let Some(msg) = inbound.message().await? {
        match msg.msg {
            Some(Out::Job(job)) => {
                let tx = tx.clone();
                let argv = argv.to_vec();
                tokio::spawn(async move {
                    let lease_id = job.lease_id;
                    let outcome = run_job(&argv, job, &tx).await;
                    let _ = tx
                        .send(pb::WorkerMessage {
                            msg: Some(In::Result(pb::WorkerResult {
                                lease_id,
                                outcome: Some(outcome),
                            })),
                        })
                        .await;
                });
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

fn outcome(o: pb::outcome::Outcome) -> pb::Outcome {
    pb::Outcome { outcome: Some(o) }
}

async fn run_job(
    argv: &[String],
    job: pb::Job,
    tx: &mpsc::Sender<pb::WorkerMessage>,
) -> pb::Outcome {
    use pb::outcome::Outcome as O;
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
        .arg(&job.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return outcome(O::Fail(pb::Fail {
                error: format!("spawn {}: {e}", argv[0]),
                retry: None,
            }))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let args = job.args.clone();
        // A command that ignores stdin may exit before reading it: that is not an error.
        tokio::spawn(async move {
            let _ = stdin.write_all(&args).await;
        });
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut token = None;
    // Heartbeats keep the lease of a long command alive.
    let beat = Duration::from_millis((job.timeout_ms.max(3) / 3) as u64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => match parse_line(&l) {
                    Some(t) => token = Some(t),
                    None => println!("{l}"),
                },
                _ => break,
            },
            _ = ticker.tick() => {
                let _ = tx.send(pb::WorkerMessage {
                    msg: Some(In::Heartbeat(pb::HeartbeatRequest { lease_ids: vec![job.lease_id] })),
                }).await;
            }
        }
    }
    let status = child.wait().await;
    match (token, status) {
        (Some(LineOutcome::Done), _) => outcome(O::Done(pb::Done::default())),
        (Some(LineOutcome::Fail), _) => outcome(O::Fail(pb::Fail {
            error: "command printed FAIL".into(),
            retry: None,
        })),
        (Some(LineOutcome::SchedLater(n)), _) => outcome(O::SchedLater(pb::SchedLater {
            delay_ms: n * 1000,
            count_step: 1,
        })),
        (None, Ok(s)) if s.success() => outcome(O::Done(pb::Done::default())),
        (None, Ok(s)) => outcome(O::Fail(pb::Fail {
            error: format!("command exited with {s}"),
            retry: None,
        })),
        (None, Err(e)) => outcome(O::Fail(pb::Fail {
            error: format!("wait: {e}"),
            retry: None,
        })),
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
}
