//! Client subcommands: thin gRPC calls with human-readable output.

use std::io::{IsTerminal, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::conn::AuthChannel;
use prost::Message;

use super::{Command, Conn, SubmitArgs};
use crate::pb::{self, scheduler_client::SchedulerClient};

/// Errors of a client command, printed by `main`.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub use super::conn::channel;

/// Connects to the server named by `--addr` / `TASKHIVE_ADDR`.
pub async fn connect(
    conn: &Conn,
) -> Result<SchedulerClient<AuthChannel>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(SchedulerClient::new(channel(conn).await?).max_decoding_message_size(64 << 20))
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Runs a client subcommand (everything but `serve` and `run`).
pub async fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Submit(a) => submit(a).await,
        Command::Cron { action } => super::cron::run(action).await,
        Command::Limit { action } => super::limit::run(action).await,
        Command::Get {
            task,
            name,
            json,
            conn,
        } => {
            let j = connect(&conn)
                .await?
                .get_job(pb::JobRef {
                    job_id: 0,
                    task,
                    name,
                })
                .await?
                .into_inner();
            let state = pb::JobState::try_from(j.state)
                .map(|s| s.as_str_name().trim_start_matches("JOB_STATE_").to_lowercase())
                .unwrap_or_default();
            let result = String::from_utf8_lossy(&j.result).into_owned();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": j.id, "task": j.task, "name": j.name, "state": state,
                        "attempts": j.attempts, "last_error": j.last_error,
                        "result": result, "finished_at_ms": j.finished_at_ms,
                    })
                );
            } else {
                println!("id:       {}", j.id);
                println!("job:      {}/{}", j.task, j.name);
                println!("state:    {state}");
                println!("attempts: {}", j.attempts);
                if !j.last_error.is_empty() {
                    println!("error:    {}", j.last_error);
                }
                if j.finished_at_ms > 0 {
                    println!(
                        "finished: {}",
                        humantime::format_rfc3339_millis(
                            UNIX_EPOCH + std::time::Duration::from_millis(j.finished_at_ms as u64)
                        )
                    );
                    println!("result:   {result}");
                }
            }
            Ok(())
        }
        Command::Pause { task, conn } => {
            connect(&conn)
                .await?
                .pause_task(pb::TaskRef { task: task.clone() })
                .await?;
            println!("paused task {task}: jobs are kept, none is handed out");
            Ok(())
        }
        Command::Resume { task, conn } => {
            connect(&conn)
                .await?
                .resume_task(pb::TaskRef { task: task.clone() })
                .await?;
            println!("resumed task {task}");
            Ok(())
        }
        Command::Remove { task, name, conn } => {
            let r = connect(&conn)
                .await?
                .remove_job(pb::JobRef {
                    job_id: 0,
                    task,
                    name,
                })
                .await?;
            println!("removed job {}", r.into_inner().job_id);
            Ok(())
        }
        Command::Status { task, json, conn } => {
            let r = connect(&conn)
                .await?
                .status(pb::StatusRequest {
                    task: task.unwrap_or_default(),
                })
                .await?
                .into_inner();
            print_status(&r, json);
            Ok(())
        }
        Command::Drop { task, conn } => {
            let r = connect(&conn)
                .await?
                .drop_task(pb::DropTaskRequest { task: task.clone() })
                .await?;
            println!(
                "dropped task {task}: {} job(s) removed",
                r.into_inner().removed
            );
            Ok(())
        }
        Command::Dump { file, conn } => {
            let mut stream = connect(&conn)
                .await?
                .dump(pb::DumpRequest {})
                .await?
                .into_inner();
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
            let mut n = 0u64;
            while let Some(job) = stream.message().await? {
                out.write_all(&job.encode_length_delimited_to_vec())?;
                n += 1;
            }
            out.flush()?;
            println!("dumped {n} job(s) to {}", file.display());
            Ok(())
        }
        Command::Restore { file, conn } => {
            let n = restore(&file, &conn).await?;
            println!("restored {n} job(s)");
            Ok(())
        }
        Command::Load {
            runner: None,
            file: Some(file),
            conn,
        } => {
            eprintln!(
                "taskhive: 'load FILE' is deprecated and will be removed; use 'taskhive restore FILE'"
            );
            let n = restore(&file, &conn).await?;
            println!("loaded {n} job(s)");
            Ok(())
        }
        Command::Jobs(a) => super::jobs::run(a).await,
        Command::Agent(a) => super::agent::run(a).await,
        Command::Dead {
            action,
            task,
            name,
            conn,
        } => {
            let mut c = connect(&conn).await?;
            let dead_ref = pb::DeadRef {
                task: task.clone().unwrap_or_default(),
                name: name.unwrap_or_default(),
            };
            match action.as_str() {
                "list" => {
                    let r = c
                        .list_dead(pb::ListDeadRequest {
                            task: task.unwrap_or_default(),
                            limit: 0,
                        })
                        .await?
                        .into_inner();
                    for j in r.jobs {
                        println!(
                            "{}\t{}\t{}\tattempts={}\t{}",
                            j.id, j.task, j.name, j.attempts, j.last_error
                        );
                    }
                }
                "retry" => println!(
                    "requeued {}",
                    c.retry_dead(dead_ref).await?.into_inner().count
                ),
                _ => println!(
                    "purged {}",
                    c.purge_dead(dead_ref).await?.into_inner().count
                ),
            }
            Ok(())
        }
        Command::Config {
            action,
            key,
            value,
            conn,
        } => {
            let mut c = connect(&conn).await?;
            let key = key.unwrap_or_default();
            let values = if action == "set" {
                let value = value.ok_or("config set: a value is required")?;
                c.set_config(pb::SetConfigRequest { key, value }).await?
            } else {
                c.get_config(pb::GetConfigRequest { key }).await?
            }
            .into_inner()
            .values;
            let mut values: Vec<_> = values.into_iter().collect();
            values.sort();
            for (k, v) in values {
                println!("{k}\t{v}");
            }
            Ok(())
        }
        Command::Load { .. } => Err(
            "load: give a load runner subcommand (see --help); to restore a dump: taskhive restore FILE"
                .into(),
        ),
        Command::Serve(_) | Command::Run(_) | Command::Bench(_) | Command::Auth { .. } => {
            unreachable!("handled by main")
        }
    }
}

/// Sends the jobs of a `dump` FILE to the server; returns how many it took.
async fn restore(
    file: &std::path::Path,
    conn: &Conn,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut buf = &data[..];
    let mut jobs = Vec::new();
    while !buf.is_empty() {
        jobs.push(pb::DumpedJob::decode_length_delimited(&mut buf)?);
    }
    let r = connect(conn).await?.load(tokio_stream::iter(jobs)).await?;
    Ok(r.into_inner().loaded)
}

async fn submit(a: SubmitArgs) -> CliResult {
    let args = match a.args {
        Some(s) => s.into_bytes(),
        None if !std::io::stdin().is_terminal() => {
            let mut v = Vec::new();
            std::io::stdin().read_to_end(&mut v)?;
            v
        }
        None => Vec::new(),
    };
    let sched_at_ms = match (a.at, a.delay) {
        (Some(at), _) => at * 1000,
        (None, Some(d)) => unix_ms() + d.as_millis() as i64,
        (None, None) => 0,
    };
    let r = connect(&a.conn)
        .await?
        .submit_job(pb::SubmitJobRequest {
            task: a.task,
            name: a.name,
            args: args.into(),
            sched_at_ms,
            timeout_ms: a.timeout.map(|t| t.as_millis() as i64),
            priority: a.priority,
            retry: None,
            key: a.key.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let how = if r.running {
        " (already running; unchanged)"
    } else if r.replaced {
        " (replaced)"
    } else {
        ""
    };
    println!("submitted job {}{how}", r.job_id);
    Ok(())
}

fn print_status(r: &pb::StatusResponse, json: bool) {
    if json {
        let rows: Vec<String> = r
            .tasks
            .iter()
            .map(|t| {
                serde_json::json!({
                    "task": t.task,
                    "workers": t.workers,
                    "pending": t.pending,
                    "scheduled": t.scheduled,
                    "running": t.running,
                    "locked": t.locked,
                    "dead": t.dead,
                    "broadcast": t.broadcast,
                    "paused": t.paused,
                    "next_sched_at_ms": t.next_sched_at_ms,
                })
                .to_string()
            })
            .collect();
        println!("[{}]", rows.join(","));
        return;
    }
    println!(
        "{:<24} {:>7} {:>9} {:>9} {:>7} {:>6} {:>6}  next",
        "TASK", "WORKERS", "PENDING", "SCHEDULED", "RUNNING", "LOCKED", "DEAD"
    );
    let mut rows: Vec<&pb::TaskStatus> = r.tasks.iter().collect();
    let totals = r.totals.clone().unwrap_or_default();
    let total_row = pb::TaskStatus {
        task: "TOTAL".into(),
        ..totals
    };
    rows.push(&total_row);
    for t in rows {
        let next = if t.next_sched_at_ms == 0 {
            "-".to_string()
        } else {
            humantime::format_rfc3339_millis(
                UNIX_EPOCH + std::time::Duration::from_millis(t.next_sched_at_ms as u64),
            )
            .to_string()
        };
        let mut task = if t.broadcast {
            format!("{} (broadcast)", t.task)
        } else {
            t.task.clone()
        };
        if t.paused {
            task.push_str(" (paused)");
        }
        println!(
            "{:<24} {:>7} {:>9} {:>9} {:>7} {:>6} {:>6}  {next}",
            task, t.workers, t.pending, t.scheduled, t.running, t.locked, t.dead
        );
    }
}
