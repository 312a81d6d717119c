//! The server's [`Executor`]: runs each task of one execution by its class.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;

use super::catalog::TaskClass;
use super::engine::{Attempt, Executor, Invocation};
use super::http::HttpClient;
use super::remote::RemoteRun;
use crate::scheduler::SchedulerHandle;

/// Everything one execution's tasks need.
pub struct Dispatcher {
    /// Per task of the job: its class and host.
    pub tasks: Vec<(TaskClass, String)>,
    /// Exec params.
    pub params: BTreeMap<String, String>,
    /// Execution id.
    pub exec_id: String,
    /// Pooled client for HTTP classes.
    pub http: HttpClient,
    /// Dispatch path for remote classes.
    pub sched: SchedulerHandle,
    /// Lease length of remote runs.
    pub remote_timeout_ms: u32,
}

impl Executor for Dispatcher {
    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Attempt> {
        Box::pin(async move {
            let (class, host) = &self.tasks[inv.task];
            match class {
                TaskClass::Http(def) => def.run(&self.http, host, &self.params).await,
                TaskClass::Remote(class) => {
                    RemoteRun {
                        sched: &self.sched,
                        class,
                        host,
                        params: &self.params,
                        exec_id: &self.exec_id,
                        timeout_ms: self.remote_timeout_ms,
                    }
                    .run(inv)
                    .await
                }
            }
        })
    }
}
