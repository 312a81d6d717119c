//! `taskhive jobs`: pages through ListJobs and prints one job per line.

use clap::{Args, ValueEnum};

use super::commands::{connect, CliResult};
use super::Conn;
use crate::pb;

/// A state to list (`--state`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StateArg {
    /// Due, waiting for a worker (in run order).
    Pending,
    /// Due later.
    Scheduled,
    /// Leased to a worker.
    Running,
    /// Failed past the retry cap.
    Dead,
}

impl From<StateArg> for pb::JobState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Pending => pb::JobState::Pending,
            StateArg::Scheduled => pb::JobState::Scheduled,
            StateArg::Running => pb::JobState::Running,
            StateArg::Dead => pb::JobState::Dead,
        }
    }
}

/// `taskhive jobs` flags.
#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Task (func).
    #[arg(short = 'f', long = "func", alias = "task")]
    pub task: String,
    /// Only jobs in this state (default: every state).
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only jobs whose name starts with this.
    #[arg(long, default_value = "")]
    pub name_prefix: String,
    /// Print at most this many jobs (default: all of them).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: Conn,
}

fn state_name(s: i32) -> &'static str {
    match pb::JobState::try_from(s) {
        Ok(pb::JobState::Pending) => "pending",
        Ok(pb::JobState::Scheduled) => "scheduled",
        Ok(pb::JobState::Running) => "running",
        Ok(pb::JobState::Dead) => "dead",
        _ => "?",
    }
}

/// Lists the jobs: `ID STATE NAME priority=P sched_at=MS attempts=N [LAST_ERROR]`.
pub async fn run(a: JobsArgs) -> CliResult {
    let mut c = connect(&a.conn).await?;
    let mut left = a.limit.unwrap_or(usize::MAX);
    let mut token = String::new();
    while left > 0 {
        let r = c
            .list_jobs(pb::ListJobsRequest {
                task: a.task.clone(),
                state: a.state.map_or(pb::JobState::Unspecified, Into::into) as i32,
                name_prefix: a.name_prefix.clone(),
                page_size: left.min(1000) as u32,
                page_token: token,
            })
            .await?
            .into_inner();
        for j in r.jobs.iter().take(left) {
            println!(
                "{}\t{}\t{}\tpriority={}\tsched_at={}\tattempts={}\t{}",
                j.id,
                state_name(j.state),
                j.name,
                j.priority,
                j.sched_at_ms,
                j.attempts,
                j.last_error
            );
        }
        left = left.saturating_sub(r.jobs.len());
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    Ok(())
}
