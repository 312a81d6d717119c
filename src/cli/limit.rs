//! `taskhive limit ...`: a task's flow-control limits.

use clap::Subcommand;

use super::commands::{connect, CliResult};
use super::Conn;
use crate::pb;

/// `taskhive limit` subcommands.
#[derive(Subcommand, Debug)]
pub enum LimitCommand {
    /// Set a task's limits (replacing the ones it had; a flag left out sets no limit of its
    /// kind).
    Set {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// At most N of its jobs leased at once (across nodes).
        #[arg(long)]
        max_running: Option<i64>,
        /// At most N starts per period: 100/s, 5000/h, 10/5m.
        #[arg(long)]
        rate: Option<String>,
        /// Starts that may go at once after an idle spell (default 1).
        #[arg(long)]
        burst: Option<i64>,
        /// At most N jobs of one key leased at once.
        #[arg(long)]
        max_running_per_key: Option<i64>,
        /// At most N starts of one key per period.
        #[arg(long)]
        rate_per_key: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the limits of one task, or of every task that has any.
    Show {
        /// Task (func); every limited task when absent.
        #[arg(short = 'f', long = "func", alias = "task")]
        task: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a task's limits.
    Clear {
        /// Task (func).
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
}

/// One line: `TASK  max_running=3 rate=50/s ...`, or `none`.
fn describe(l: &Option<pb::TaskLimits>) -> String {
    let Some(l) = l else {
        return "none".into();
    };
    let mut out = Vec::new();
    if let Some(n) = l.max_running {
        out.push(format!("max_running={n}"));
    }
    if !l.rate.is_empty() {
        out.push(format!("rate={}", l.rate));
    }
    if let Some(n) = l.burst {
        out.push(format!("burst={n}"));
    }
    if let Some(n) = l.max_running_per_key {
        out.push(format!("max_running_per_key={n}"));
    }
    if !l.rate_per_key.is_empty() {
        out.push(format!("rate_per_key={}", l.rate_per_key));
    }
    out.join(" ")
}

/// Runs a `taskhive limit` command.
pub async fn run(cmd: LimitCommand) -> CliResult {
    match cmd {
        LimitCommand::Set {
            task,
            max_running,
            rate,
            burst,
            max_running_per_key,
            rate_per_key,
            conn,
        } => {
            let r = connect(&conn)
                .await?
                .set_task_limits(pb::SetTaskLimitsRequest {
                    task,
                    limits: Some(pb::TaskLimits {
                        max_running,
                        rate: rate.unwrap_or_default(),
                        burst,
                        max_running_per_key,
                        rate_per_key: rate_per_key.unwrap_or_default(),
                    }),
                })
                .await?
                .into_inner();
            println!("{}\t{}", r.task, describe(&r.limits));
        }
        LimitCommand::Show {
            task: Some(task),
            conn,
        } => {
            let r = connect(&conn)
                .await?
                .get_task_limits(pb::TaskRef { task })
                .await?
                .into_inner();
            println!("{}\t{}", r.task, describe(&r.limits));
        }
        LimitCommand::Show { task: None, conn } => {
            let r = connect(&conn)
                .await?
                .status(pb::StatusRequest::default())
                .await?
                .into_inner();
            println!("TASK\tLIMITS\tWAITING");
            for t in r.tasks.iter().filter(|t| t.limits.is_some()) {
                println!(
                    "{}\t{}\t{}",
                    t.task,
                    describe(&t.limits),
                    t.waiting_on_limit
                );
            }
        }
        LimitCommand::Clear { task, conn } => {
            connect(&conn)
                .await?
                .set_task_limits(pb::SetTaskLimitsRequest {
                    task: task.clone(),
                    limits: None,
                })
                .await?;
            println!("{task}\tnone");
        }
    }
    Ok(())
}
