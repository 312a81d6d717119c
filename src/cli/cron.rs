//! `taskhive cron ...`: schedules.

use std::io::{IsTerminal, Read};

use clap::{Subcommand, ValueEnum};

use super::commands::{connect, CliResult};
use super::Conn;
use crate::pb;

/// What happens to ticks missed while no server ran.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MissedArg {
    /// Dropped (a tick at most 5 s late still fires).
    Skip,
    /// One job for the newest missed tick.
    One,
    /// A job for each missed tick (the newest 100).
    All,
}

/// `taskhive cron` subcommands.
#[derive(Subcommand, Debug)]
pub enum CronCommand {
    /// Create or replace a schedule.
    Add {
        /// Schedule name.
        name: String,
        /// Cron expression: 5 fields, or 6 with seconds first.
        #[arg(long)]
        cron: String,
        /// Task (func) of the jobs it enqueues.
        #[arg(short = 'f', long = "func", alias = "task")]
        task: String,
        /// IANA time zone (default UTC).
        #[arg(long, default_value = "")]
        tz: String,
        /// Payload; read from stdin when absent and stdin is not a terminal.
        #[arg(long)]
        args: Option<String>,
        /// Priority of the jobs.
        #[arg(long, default_value_t = 0)]
        priority: i32,
        /// Lease length of the jobs, in seconds (default: the server's).
        #[arg(long)]
        timeout: Option<i64>,
        /// Missed ticks after downtime.
        #[arg(long, value_enum, default_value = "skip")]
        missed: MissedArg,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// List schedules.
    List {
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a schedule, its next fire times and its last job.
    Show {
        /// Schedule name.
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Pause a schedule.
    Pause {
        /// Schedule name.
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Resume a schedule.
    Resume {
        /// Schedule name.
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a schedule (its jobs stay).
    Rm {
        /// Schedule name.
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
}

/// Runs a `cron` subcommand.
pub async fn run(cmd: CronCommand) -> CliResult {
    match cmd {
        CronCommand::Add {
            name,
            cron,
            task,
            tz,
            args,
            priority,
            timeout,
            missed,
            conn,
        } => {
            let args = match args {
                Some(a) => a.into_bytes(),
                None if !std::io::stdin().is_terminal() => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v)?;
                    v
                }
                None => Vec::new(),
            };
            let s = connect(&conn)
                .await?
                .create_schedule(pb::CreateScheduleRequest {
                    name,
                    cron,
                    tz,
                    task,
                    args: args.into(),
                    priority,
                    timeout_ms: timeout.map(|t| t.saturating_mul(1000)),
                    retry: None,
                    missed: match missed {
                        MissedArg::Skip => pb::MissedTicks::Skip,
                        MissedArg::One => pb::MissedTicks::One,
                        MissedArg::All => pb::MissedTicks::All,
                    } as i32,
                })
                .await?
                .into_inner();
            print_schedule(&s);
        }
        CronCommand::List { conn } => {
            let r = connect(&conn)
                .await?
                .list_schedules(pb::ListSchedulesRequest {})
                .await?
                .into_inner();
            println!("NAME\tCRON\tTZ\tTASK\tSTATE\tLAST JOB");
            for s in r.schedules {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.name,
                    s.cron,
                    if s.tz.is_empty() { "UTC" } else { &s.tz },
                    s.task,
                    if s.paused { "paused" } else { "active" },
                    s.last_job
                );
            }
        }
        CronCommand::Show { name, conn } => {
            let s = connect(&conn)
                .await?
                .get_schedule(pb::ScheduleRef { name })
                .await?
                .into_inner();
            print_schedule(&s);
        }
        CronCommand::Pause { name, conn } => {
            let s = connect(&conn)
                .await?
                .pause_schedule(pb::ScheduleRef { name })
                .await?
                .into_inner();
            println!("paused schedule {}", s.name);
        }
        CronCommand::Resume { name, conn } => {
            let s = connect(&conn)
                .await?
                .resume_schedule(pb::ScheduleRef { name })
                .await?
                .into_inner();
            println!("resumed schedule {}", s.name);
        }
        CronCommand::Rm { name, conn } => {
            connect(&conn)
                .await?
                .delete_schedule(pb::ScheduleRef { name: name.clone() })
                .await?;
            println!("deleted schedule {name}");
        }
    }
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

fn print_schedule(s: &pb::Schedule) {
    println!("name:     {}", s.name);
    println!("cron:     {}", s.cron);
    println!("tz:       {}", if s.tz.is_empty() { "UTC" } else { &s.tz });
    println!("task:     {}", s.task);
    println!(
        "missed:   {}",
        match pb::MissedTicks::try_from(s.missed) {
            Ok(pb::MissedTicks::One) => "one",
            Ok(pb::MissedTicks::All) => "all",
            _ => "skip",
        }
    );
    println!("state:    {}", if s.paused { "paused" } else { "active" });
    if !s.last_job.is_empty() {
        println!("last job: {} (id {})", s.last_job, s.last_job_id);
    }
    for (i, t) in s.next_fire_ms.iter().enumerate() {
        let label = if i == 0 { "next:" } else { "" };
        println!("{label:<10}{}", rfc3339(*t));
    }
}
