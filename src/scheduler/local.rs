//! [`Backend`] over this node's own core: every job lives in the actor's memory and in the
//! node's store (SQLite, or PostgreSQL without `--node-id`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::actor::{call, store_err, Cmd, LockCmd, ScheduleCmd};
use super::backend::{Backend, Fut, SubmittedEach};
use super::core::{SubmitReply, TaskStatus};
use super::durable::{Admitted, Backlog, Demand};
use super::error::Error;
use super::job::{JobId, JobKey, JobRecord, JobSpec, JobView, Millis};
use super::limits::TaskLimits;
use super::list::{JobPage, ListQuery};
use super::schedule::{Schedule, ScheduleSpec};

/// The local backend: commands to the actor, answers after the commit.
#[derive(Clone)]
pub struct LocalJobs {
    tx: mpsc::UnboundedSender<Cmd>,
    /// The store writer's queue: calls that add jobs wait while it is over its bound.
    backlog: Arc<Backlog>,
}

impl LocalJobs {
    pub(super) fn new(tx: mpsc::UnboundedSender<Cmd>, backlog: Arc<Backlog>) -> Self {
        LocalJobs { tx, backlog }
    }

    /// A RunJob's submit through the core: once stored, its reply and the receiver of the
    /// job's result.
    async fn submit_run(
        tx: mpsc::UnboundedSender<Cmd>,
        spec: JobSpec,
    ) -> Result<(SubmitReply, super::actor::ResultRx), Error> {
        let (reply, commit, rx) = call(&tx, |reply| Cmd::SubmitRun { spec, reply }).await??;
        commit.wait().await.map_err(store_err)?;
        Ok((reply, rx))
    }
}

impl Backend for LocalJobs {
    fn admit(&self, demand: Demand) -> BoxFuture<'static, Option<Admitted>> {
        let backlog = self.backlog.clone();
        Box::pin(async move { Some(backlog.admit(demand).await) })
    }

    fn submit(&self, spec: JobSpec) -> Fut<SubmitReply> {
        let (tx, backlog) = (self.tx.clone(), self.backlog.clone());
        Box::pin(async move {
            let _admitted = backlog.admit(Demand::of([&spec])).await;
            call(&tx, |reply| Cmd::SubmitStored { spec, reply }).await?
        })
    }

    fn submit_many(&self, specs: Vec<JobSpec>) -> Fut<Vec<SubmitReply>> {
        let (tx, backlog) = (self.tx.clone(), self.backlog.clone());
        Box::pin(async move {
            let _admitted = backlog.admit(Demand::of(&specs)).await;
            let (replies, commit) = call(&tx, |reply| Cmd::SubmitMany { specs, reply }).await??;
            commit.wait().await.map_err(store_err)?;
            Ok(replies)
        })
    }

    fn submit_each(&self, specs: Vec<JobSpec>) -> BoxFuture<'static, SubmittedEach> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Cmd::SubmitEach { specs, reply }).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(Error::ShuttingDown);
            }
            rx.await.map_err(|_| Error::ShuttingDown)
        })
    }

    fn run_job(&self, spec: JobSpec) -> Fut<(JobId, Bytes)> {
        let (tx, backlog) = (self.tx.clone(), self.backlog.clone());
        Box::pin(async move {
            // Held until the submit's commit only: not while the job runs.
            let admitted = backlog.admit(Demand::of([&spec])).await;
            let (reply, rx) = Self::submit_run(tx, spec).await?;
            drop(admitted);
            match rx.await {
                Ok(Ok(result)) => Ok((reply.id, result)),
                Ok(Err(e)) => Err(Error::JobFailed(e)),
                Err(_) => Err(Error::ShuttingDown),
            }
        })
    }

    fn remove(&self, key: JobKey) -> Fut<JobId> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (id, commit) = call(&tx, |reply| Cmd::Remove { key, reply }).await??;
            commit.wait().await.map_err(store_err)?;
            Ok(id)
        })
    }

    fn get(&self, key: JobKey) -> Fut<JobView> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::Get { key, reply }).await? })
    }

    fn drop_task(&self, task: String) -> Fut<u64> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (n, commit) = call(&tx, |reply| Cmd::DropTask { task, reply }).await??;
            commit.wait().await.map_err(store_err)?;
            Ok(n)
        })
    }

    fn status(&self, task: Option<String>) -> Fut<(Vec<TaskStatus>, TaskStatus)> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::Status { task, reply }).await })
    }

    fn list_jobs(&self, query: ListQuery) -> Fut<JobPage> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::ListJobs { query, reply }).await })
    }

    fn list_dead(&self, task: Option<String>, limit: usize) -> Fut<Vec<JobView>> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::ListDead { task, limit, reply }).await? })
    }

    fn retry_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (n, commit) = call(&tx, |reply| Cmd::RetryDead { task, name, reply }).await?;
            commit.wait().await.map_err(store_err)?;
            Ok(n)
        })
    }

    fn purge_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (n, commit) = call(&tx, |reply| Cmd::PurgeDead { task, name, reply }).await?;
            commit.wait().await.map_err(store_err)?;
            Ok(n)
        })
    }

    fn dump_page(&self, after: JobId, limit: usize) -> Fut<Vec<JobRecord>> {
        let tx = self.tx.clone();
        Box::pin(async move {
            call(&tx, |reply| Cmd::DumpPage {
                after,
                limit,
                reply,
            })
            .await?
        })
    }

    fn load(&self, record: JobRecord) -> Fut<()> {
        let (tx, backlog) = (self.tx.clone(), self.backlog.clone());
        Box::pin(async move {
            let demand = Demand {
                jobs: 1,
                bytes: record.args.len(),
            };
            let _admitted = backlog.admit(demand).await;
            let commit = call(&tx, |reply| Cmd::Load { record, reply }).await?;
            commit.wait().await.map_err(store_err)
        })
    }

    fn get_config(&self, key: String) -> Fut<BTreeMap<String, i64>> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::GetConfig { key, reply }).await? })
    }

    fn set_config(&self, key: String, value: i64) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let commit = call(&tx, |reply| Cmd::SetConfig {
                key,
                value,
                persist: true,
                reply,
            })
            .await??;
            commit.wait().await.map_err(store_err)
        })
    }

    fn has_worker(&self, task: String) -> Fut<bool> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::HasWorker { task, reply }).await })
    }

    fn pause_task(&self, task: String, paused: bool) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let commit = call(&tx, |reply| Cmd::PauseTask {
                task,
                paused,
                persist: true,
                reply,
            })
            .await?;
            commit.wait().await.map_err(store_err)
        })
    }

    fn set_task_limits(&self, task: String, limits: TaskLimits) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let commit = call(&tx, |reply| Cmd::SetTaskLimits {
                task,
                limits,
                persist: true,
                reply,
            })
            .await?;
            commit.wait().await.map_err(store_err)
        })
    }

    fn get_task_limits(&self, task: String) -> Fut<TaskLimits> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::GetTaskLimits { task, reply }).await })
    }

    fn put_schedule(&self, spec: ScheduleSpec, now: Millis) -> Fut<()> {
        let tx = self.tx.clone();
        let schedule = Schedule {
            spec,
            paused: false,
            last_tick: now,
            last_job: String::new(),
        };
        Box::pin(async move {
            let commit = call(&tx, |reply| {
                Cmd::Schedule(ScheduleCmd::Put { schedule, reply })
            })
            .await?;
            commit.wait().await.map_err(store_err)
        })
    }

    fn list_schedules(&self) -> Fut<Vec<Schedule>> {
        let tx = self.tx.clone();
        Box::pin(async move { call(&tx, |reply| Cmd::Schedule(ScheduleCmd::List { reply })).await })
    }

    fn get_schedule(&self, name: String) -> Fut<Schedule> {
        let tx = self.tx.clone();
        Box::pin(async move {
            call(&tx, |reply| Cmd::Schedule(ScheduleCmd::Get { name, reply })).await?
        })
    }

    fn pause_schedule(&self, name: String, paused: bool, now: Millis) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let commit = call(&tx, |reply| {
                Cmd::Schedule(ScheduleCmd::Pause {
                    name,
                    paused,
                    now,
                    reply,
                })
            })
            .await??;
            commit.wait().await.map_err(store_err)
        })
    }

    fn delete_schedule(&self, name: String) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            let commit = call(&tx, |reply| {
                Cmd::Schedule(ScheduleCmd::Delete { name, reply })
            })
            .await??;
            commit.wait().await.map_err(store_err)
        })
    }

    fn acquire_lock(&self, lease: u64, name: String, count: u32) -> Fut<bool> {
        let tx = self.tx.clone();
        Box::pin(async move {
            call(&tx, |reply| {
                Cmd::Lock(LockCmd::Acquire {
                    lease,
                    name,
                    count,
                    reply,
                })
            })
            .await?
        })
    }

    fn release_lock(&self, lease: u64, name: String) -> Fut<()> {
        let tx = self.tx.clone();
        Box::pin(async move {
            call(&tx, |reply| {
                Cmd::Lock(LockCmd::Release { lease, name, reply })
            })
            .await?
        })
    }

    /// Every job runs on this node, where its events reach its watchers directly.
    fn watch_started(&self, _task: String, _name: String) -> Fut<()> {
        Box::pin(async { Ok(()) })
    }

    fn fire_schedule(&self, name: String, last: Millis, jobs: Vec<JobSpec>) -> Fut<bool> {
        let tx = self.tx.clone();
        Box::pin(async move {
            match call(&tx, |reply| {
                Cmd::Schedule(ScheduleCmd::Fire {
                    name,
                    last,
                    jobs,
                    reply,
                })
            })
            .await?
            {
                Some(commit) => {
                    commit.wait().await.map_err(store_err)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }
}
