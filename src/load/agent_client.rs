//! Load agents, agent side: runs one share of an execution with the built-in HTTP classes
//! on the same engine the server uses, and hands out what finished about once a second.
//!
//! The stream to the server (hello, reports, done, reconnects) is `cli/agent.rs`; this part
//! knows nothing of gRPC, so a share runs here exactly as swarms run in the server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::agents::Share;
use super::engine::{self, Attempt, Executor, Invocation, Live, Plan};
use super::http::{HttpClient, HttpTaskDef};
use super::stats::{ExecStats, Part};

/// How often a running share reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What a running share hands to the stream.
#[derive(Debug)]
pub enum Out {
    /// What finished since the previous report.
    Report {
        /// Execution id.
        exec_id: String,
        /// Counters, histograms, kept runs (swarm ids from 1 within the share).
        part: Part,
        /// The share's first swarm across the execution.
        first_swarm: u64,
    },
    /// Every swarm stopped and the last report was handed out.
    Done {
        /// Execution id.
        exec_id: String,
    },
}

/// Runs tasks of built-in HTTP classes only (an agent has no workers).
struct HttpOnly {
    tasks: Vec<(Arc<HttpTaskDef>, String)>,
    params: BTreeMap<String, String>,
    http: HttpClient,
}

impl Executor for HttpOnly {
    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let (def, host) = &self.tasks[inv.task];
            def.run(&self.http, host, &self.params).await
        })
    }
}

/// Starts a share in the background; returns its [`Live`] (to abort it). Reports go to `out`
/// every [`REPORT_EVERY`] (empty ones too: they say the agent is alive), then a last one
/// and `Done`.
pub fn start(share: Share, http: HttpClient, out: mpsc::UnboundedSender<Out>) -> Arc<Live> {
    let n_tasks = share.job.tasks.len();
    // max_failure_count is the server's to judge, on every agent's failures together.
    let live = Arc::new(Live::new(
        share.exec_id.clone(),
        ExecStats::new(
            n_tasks,
            share.max_executions.min(usize::MAX as u64) as usize,
        ),
        0,
        share.report_failures,
    ));
    let exec = Arc::new(HttpOnly {
        tasks: share
            .classes
            .iter()
            .cloned()
            .zip(share.job.tasks.iter().map(|t| t.host.clone()))
            .collect(),
        params: share.params.clone(),
        http,
    });
    let plan = Arc::new(Plan::of(&share.job));
    let l = live.clone();
    tokio::spawn(async move {
        // The executions cap holds across the whole share, not per report.
        let mut budget = vec![share.max_executions; n_tasks];
        let send = |part: Part| {
            let _ = out.send(Out::Report {
                exec_id: share.exec_id.clone(),
                part,
                first_swarm: share.first_swarm,
            });
        };
        let run = engine::run(plan, exec, l.clone());
        tokio::pin!(run);
        let start = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(start + REPORT_EVERY, REPORT_EVERY);
        loop {
            tokio::select! {
                _ = &mut run => break,
                // Sent even when empty: the server counts an agent silent for
                // `agents::SILENT_LOST` lost.
                _ = ticks.tick() => send(l.take_part(&mut budget)),
            }
        }
        let part = l.take_part(&mut budget);
        if part.n_task() > 0 {
            send(part);
        }
        let _ = out.send(Out::Done {
            exec_id: share.exec_id.clone(),
        });
    });
    live
}
