//! `taskhive load save|jobs|tasks|exec|status|execs|show`: the load runner's command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::conn::AuthChannel;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::commands::{channel, CliResult};
use super::Conn;
use crate::pb::{self, load_runner_client::LoadRunnerClient};

/// Exit status when a threshold was exceeded (k6's convention).
pub const EXIT_THRESHOLD: u8 = 99;

/// Load runner subcommands.
#[derive(Subcommand, Debug)]
pub enum LoadCommand {
    /// Save (or replace, by name) a load job from a JSON file (`-` = stdin).
    Save {
        /// The job, as Beetle's /job takes it.
        file: PathBuf,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// List saved load jobs.
    Jobs {
        /// Print Beetle's /jobs JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// List the task classes jobs may use.
    Tasks {
        /// Print Beetle's /tasks JSON.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Run a saved job: live progress, then a summary; exits 99 when a threshold is exceeded.
    Exec(ExecArgs),
    /// Show whether an execution is running, and the last one.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// List archived executions, newest first.
    Execs {
        /// Only this job's.
        #[arg(short = 'n', long)]
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Print an archived execution's JobExec JSON.
    Show {
        /// Execution id.
        id: String,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
    /// Write an archived execution as one self-contained HTML page (summary, per-task
    /// table, per-second charts; opens offline).
    Report {
        /// Execution id.
        id: String,
        /// The HTML file to write.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: std::path::PathBuf,
        /// Where the server is.
        #[command(flatten)]
        conn: Conn,
    },
}

/// `taskhive load exec` flags.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The saved job to run.
    pub name: String,
    /// A param handed to every task (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Abort after this many failed tasks (0 = no limit).
    #[arg(long = "max-failures", default_value_t = 0)]
    pub max_failures: i64,
    /// Print the JobExec JSON instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Run in the background; the server POSTs the JobExec to this URL.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Ask the HTTP face's 400 on an exceeded threshold (echoed in the JobExec).
    #[arg(long)]
    pub error_400_on_threshold_exceeded: bool,
    /// Run on this many connected load agents (`taskhive agent`), or `all`, instead of in
    /// the server; the swarms (or the arrival rate) are split across them.
    #[arg(long, value_name = "N|all", value_parser = parse_agents)]
    pub agents: Option<pb::exec_request::Agents>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: Conn,
}

fn parse_agents(s: &str) -> Result<pb::exec_request::Agents, String> {
    use pb::exec_request::Agents;
    if s == "all" {
        return Ok(Agents::AgentsAll(true));
    }
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Agents::AgentsN(n)),
        _ => Err(format!("{s:?}: expected a count >= 1 or all")),
    }
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

async fn client(
    conn: &Conn,
) -> Result<LoadRunnerClient<AuthChannel>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(LoadRunnerClient::new(channel(conn).await?).max_decoding_message_size(256 << 20))
}

/// Runs a load runner subcommand; the exit code carries the threshold verdict.
pub async fn run(cmd: LoadCommand) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    match cmd {
        LoadCommand::Exec(a) => exec(a).await,
        other => other_command(other).await.map(|()| ExitCode::SUCCESS),
    }
}

async fn other_command(cmd: LoadCommand) -> CliResult {
    match cmd {
        LoadCommand::Save { file, conn } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)?
            };
            let job = client(&conn)
                .await?
                .save_load_job(pb::SaveLoadJobRequest {
                    input: Some(pb::save_load_job_request::Input::JobJson(text)),
                })
                .await?
                .into_inner();
            // Beetle answers "Job saved"; the filled-in job follows for the curious.
            println!("Job saved");
            println!("{}", job.json);
        }
        LoadCommand::Jobs { json, conn } => {
            let jobs = client(&conn)
                .await?
                .list_load_jobs(pb::ListLoadJobsRequest {})
                .await?
                .into_inner()
                .jobs;
            if json {
                let body: Vec<String> = jobs
                    .iter()
                    .map(|j| format!("{}:{}", serde_json::json!(j.name), j.json))
                    .collect();
                println!("{{{}}}", body.join(","));
            } else {
                println!(
                    "{:<28} {:>11} {:>9} {:>7} {:>8}  TASKS",
                    "NAME", "RUN_FOR_SEC", "RUN_N", "N_SWARM", "RATE"
                );
                for j in jobs {
                    let classes: Vec<String> = j
                        .tasks
                        .iter()
                        .map(|t| format!("{}×{}", t.task_class, t.weight.unwrap_or(1)))
                        .collect();
                    let rate = j.rate_per_sec.map_or("-".into(), |r| format!("{r}/s"));
                    // A staged job lasts its stages' total.
                    let run_for = if j.stages.is_empty() {
                        j.run_for_sec.to_string()
                    } else {
                        let total: i64 = j.stages.iter().map(|s| s.duration_sec).sum();
                        format!("{total} staged")
                    };
                    println!(
                        "{:<28} {:>11} {:>9} {:>7} {:>8}  {}",
                        j.name,
                        run_for,
                        j.run_n,
                        j.n_swarm.unwrap_or(1),
                        rate,
                        classes.join(", ")
                    );
                }
            }
        }
        LoadCommand::Tasks { json, conn } => {
            let tasks = client(&conn)
                .await?
                .list_tasks(pb::ListTasksRequest {})
                .await?
                .into_inner()
                .tasks;
            if json {
                println!("{}", serde_json::json!({ "tasks": tasks }));
            } else {
                for t in tasks {
                    println!("{t}");
                }
            }
        }
        LoadCommand::Status { json, conn } => {
            let s = client(&conn)
                .await?
                .get_load_status(pb::GetLoadStatusRequest {})
                .await?
                .into_inner();
            if json {
                println!("{}", s.json);
            } else {
                if s.running {
                    println!(
                        "running: exec {} of job {} since {} ({} tasks, {} failed)",
                        s.exec_id, s.name, s.t_start, s.n_task, s.n_fail
                    );
                } else {
                    println!("idle");
                }
                if let Some(l) = s.last_exec {
                    println!(
                        "last: exec {} of job {} at {} ({} tasks, {} failed{}{})",
                        l.id,
                        l.name,
                        l.t_start,
                        l.n_task,
                        l.n_fail,
                        if l.threshold_exceeded {
                            ", threshold exceeded"
                        } else {
                            ""
                        },
                        if l.aborted { ", aborted" } else { "" },
                    );
                }
            }
        }
        LoadCommand::Execs { name, limit, conn } => {
            let execs = client(&conn)
                .await?
                .list_execs(pb::ListExecsRequest {
                    name: name.unwrap_or_default(),
                    limit,
                })
                .await?
                .into_inner()
                .execs;
            println!(
                "{:<36}  {:<29}  {:<20} {:>8} {:>6} {:>10}  FLAGS",
                "ID", "T_START", "NAME", "N", "FAIL", "ELAPSED"
            );
            for e in execs {
                let flags = [(e.threshold_exceeded, "threshold"), (e.aborted, "aborted")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, f)| *f)
                    .collect::<Vec<_>>()
                    .join(",");
                println!(
                    "{:<36}  {:<29}  {:<20} {:>8} {:>6} {:>10}  {flags}",
                    e.id,
                    e.t_start,
                    e.name,
                    e.n_task,
                    e.n_fail,
                    usec(e.elapsed_usec)
                );
            }
        }
        LoadCommand::Show { id, conn } => {
            let e = client(&conn)
                .await?
                .get_exec(pb::GetExecRequest { id })
                .await?
                .into_inner();
            println!("{}", e.json);
        }
        LoadCommand::Report { id, output, conn } => {
            let e = client(&conn)
                .await?
                .get_exec(pb::GetExecRequest { id })
                .await?
                .into_inner();
            let exec: crate::load::report::JobExec = serde_json::from_str(&e.json)?;
            std::fs::write(&output, crate::load::html_report::render(&exec))
                .map_err(|err| format!("{}: {err}", output.display()))?;
            println!("wrote {}", output.display());
        }
        LoadCommand::Exec(_) => unreachable!("handled by run"),
    }
    Ok(())
}

async fn exec(a: ExecArgs) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = client(&a.conn)
        .await?
        .exec(pb::ExecRequest {
            name: a.name.clone(),
            params: a.params.into_iter().collect(),
            max_failure_count: a.max_failures,
            report_progress: None,
            report_failures: None,
            error_400_on_threshold_exceeded: a.error_400_on_threshold_exceeded,
            webhook_url: a.webhook.unwrap_or_default(),
            agents: a.agents,
        })
        .await?
        .into_inner();
    let mut bar: Option<ProgressBar> = None;
    while let Some(ev) = stream.message().await? {
        use pb::exec_event::Event;
        match ev.event {
            Some(Event::Progress(p)) => {
                let b = bar.get_or_insert_with(|| progress_bar(&p));
                if p.run_for_sec > 0 {
                    b.set_position(p.elapsed_usec / 1_000_000);
                } else {
                    b.set_position(p.n_task);
                }
                b.set_message(format!(
                    "{} tasks, {} failed, {:.1}/s, p50 {}, p99 {}",
                    p.n_task,
                    p.n_fail,
                    p.rps,
                    usec(p.p50_usec),
                    usec(p.p99_usec)
                ));
            }
            Some(Event::Enqueued(e)) => {
                println!("Execution request enqueued: {}", e.exec_id);
                return Ok(ExitCode::SUCCESS);
            }
            Some(Event::Finished(x)) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if a.json {
                    println!("{}", x.json);
                } else {
                    print_summary(&x);
                }
                return Ok(if x.threshold_exceeded {
                    ExitCode::from(EXIT_THRESHOLD)
                } else if x.aborted {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            None => {}
        }
    }
    Err("the server ended the execution stream without a result".into())
}

fn progress_bar(p: &pb::ExecProgress) -> ProgressBar {
    // A time limit drives the bar when there is one; else the task count does.
    let (len, unit) = if p.run_for_sec > 0 {
        (p.run_for_sec, "s")
    } else {
        (p.planned_n, "")
    };
    let b = ProgressBar::new(len.max(1));
    let template =
        format!("{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}}{unit} {{msg}}");
    b.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// A latency in the unit that reads best.
fn usec(u: u64) -> String {
    if u >= 1_000_000 {
        format!("{:.2}s", u as f64 / 1e6)
    } else if u >= 1_000 {
        format!("{:.2}ms", u as f64 / 1e3)
    } else {
        format!("{u}µs")
    }
}

fn print_summary(x: &pb::JobExec) {
    println!(
        "exec {} of job {}: {} tasks in {} ({:.1}/s), {} failed",
        x.id,
        x.name,
        x.n_task,
        usec(x.elapsed_usec),
        x.rps,
        x.n_fail
    );
    println!(
        "{:<28} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "TASK", "N", "FAIL", "AVG", "P50", "P99", "MAX", "RPS"
    );
    for t in &x.tasks {
        println!(
            "{:<28} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9.1}",
            t.task_class,
            t.n_task,
            t.n_fail,
            usec(t.avg_usec),
            usec(t.p50_usec),
            usec(t.p99_usec),
            usec(t.max_usec),
            t.rps
        );
    }
    for t in &x.tasks {
        if t.threshold_avg_exceeded {
            println!(
                "threshold exceeded: {} avg {} > {}",
                t.task_class,
                usec(t.avg_usec),
                usec(t.threshold_avg_usec as u64)
            );
        }
        if t.threshold_max_exceeded {
            println!(
                "threshold exceeded: {} max {} > {}",
                t.task_class,
                usec(t.max_usec),
                usec(t.threshold_max_usec as u64)
            );
        }
    }
    for a in &x.agents {
        println!(
            "agent {} ({}): {} swarms, {} tasks{}",
            a.id,
            a.addr,
            a.swarms,
            a.n_task,
            if a.lost { ", lost mid-run" } else { "" }
        );
    }
    if x.aborted {
        println!("aborted: {}", x.abort_reason);
    }
}
