//! The one seam between the client API and where jobs live, chosen once at start-up.
//!
//! Every call a face makes about jobs (submits, reads, removes, the dead set, dump/load,
//! settings, "is anyone serving this task") goes through [`Backend`]. There are two
//! implementations: [`crate::scheduler::local::LocalJobs`] (the node's own core holds every
//! job: SQLite, or PostgreSQL without `--node-id`) and `cluster::ClusterJobs` (the shared
//! database holds every job; a node's core holds only what it claimed). The trait has no
//! default methods, so a call added here without a cluster implementation does not compile,
//! and nothing falls through to the local core in cluster mode.
//!
//! What stays node-local in both modes is what belongs to a worker's connection: leases,
//! reports, heartbeats, streamed data and lock slots of leased jobs. Those go to the actor
//! of the node the worker is connected to ([`crate::scheduler::SchedulerHandle`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::core::{SubmitReply, TaskStatus};
use super::durable::{Admitted, Commit, Demand};
use super::error::Error;
use super::job::{JobId, JobKey, JobRecord, JobSpec, JobView, Millis};
use super::limits::TaskLimits;
use super::list::{JobPage, ListQuery};
use super::schedule::{Schedule, ScheduleSpec};

/// What [`Backend::submit_each`] hands back: one answer per job, and their commit.
pub type SubmittedEach = Result<(Vec<Result<SubmitReply, Error>>, Commit), Error>;

/// A future the backend hands back; `'static` so handlers can spawn or select on it.
pub type Fut<T> = BoxFuture<'static, Result<T, Error>>;

/// Where the client API's jobs live. See the module docs.
pub trait Backend: Send + Sync + 'static {
    /// Submits (or replaces) a job; resolves once it is committed.
    fn submit(&self, spec: JobSpec) -> Fut<SubmitReply>;
    /// Submits jobs in order, all or none, as one commit.
    fn submit_many(&self, specs: Vec<JobSpec>) -> Fut<Vec<SubmitReply>>;
    /// Submits jobs in order, each on its own (one refused job does not stop the others).
    /// The work is queued before this returns, so calls made in order are applied in order;
    /// the future yields the per-job answers and the commit covering them.
    fn submit_each(&self, specs: Vec<JobSpec>) -> BoxFuture<'static, SubmittedEach>;
    /// Waits until `demand` may be submitted; hold what it answers until their commit
    /// resolves. The ordered paths call it before [`Self::submit_each`] (which must queue at
    /// once to keep order); the other submit calls wait inside. Local: the store writer's
    /// bounded backlog ([`super::durable::Backlog`]); None where nothing is bounded.
    fn admit(&self, demand: Demand) -> BoxFuture<'static, Option<Admitted>>;
    /// Submits a job and waits for a worker's result. Needs a worker for the task.
    fn run_job(&self, spec: JobSpec) -> Fut<(JobId, Bytes)>;
    /// Removes a job in any state; a running job's report is then refused.
    fn remove(&self, key: JobKey) -> Fut<JobId>;
    /// Looks a job up.
    fn get(&self, key: JobKey) -> Fut<JobView>;
    /// Removes a task's jobs (live and dead); refused while any worker serves it.
    fn drop_task(&self, task: String) -> Fut<u64>;
    /// Per-task counts (one task when given) and totals.
    fn status(&self, task: Option<String>) -> Fut<(Vec<TaskStatus>, TaskStatus)>;
    /// One page of a task's jobs in listing order (see [`super::list`]).
    fn list_jobs(&self, query: ListQuery) -> Fut<JobPage>;
    /// Dead jobs, oldest first.
    fn list_dead(&self, task: Option<String>, limit: usize) -> Fut<Vec<JobView>>;
    /// Re-queues dead jobs with their attempts reset.
    fn retry_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64>;
    /// Deletes dead jobs.
    fn purge_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64>;
    /// One page of jobs with ids after `after`, in id order.
    fn dump_page(&self, after: JobId, limit: usize) -> Fut<Vec<JobRecord>>;
    /// Restores one dumped job; resolves once committed.
    fn load(&self, record: JobRecord) -> Fut<()>;
    /// Run-time settings: one, or all when `key` is empty.
    fn get_config(&self, key: String) -> Fut<BTreeMap<String, i64>>;
    /// Changes a run-time setting; resolves once persisted (and, in a cluster, announced).
    fn set_config(&self, key: String, value: i64) -> Fut<()>;
    /// Whether any worker (on any node) serves `task`.
    fn has_worker(&self, task: String) -> Fut<bool>;
    /// Pauses (`paused`) or resumes a task: while paused its jobs are accepted and kept, none
    /// is handed out (on any node), running ones finish. Resolves once stored (and announced).
    fn pause_task(&self, task: String, paused: bool) -> Fut<()>;
    /// Sets (or, all `None`, clears) a task's flow-control limits; resolves once stored (and,
    /// in a cluster, announced: every node's dispatch and the claims follow them).
    fn set_task_limits(&self, task: String, limits: TaskLimits) -> Fut<()>;
    /// A task's limits (all `None` when it has none).
    fn get_task_limits(&self, task: String) -> Fut<TaskLimits>;
    /// Creates or replaces a schedule (already validated), unpaused, its last tick `now`
    /// (no tick before `now` fires); resolves once stored.
    fn put_schedule(&self, spec: ScheduleSpec, now: Millis) -> Fut<()>;
    /// Every schedule, in name order.
    fn list_schedules(&self) -> Fut<Vec<Schedule>>;
    /// One schedule.
    fn get_schedule(&self, name: String) -> Fut<Schedule>;
    /// Pauses or resumes a schedule; resuming sets its last tick to `now`, so the ticks
    /// passed while paused do not fire.
    fn pause_schedule(&self, name: String, paused: bool, now: Millis) -> Fut<()>;
    /// Deletes a schedule (its jobs stay).
    fn delete_schedule(&self, name: String) -> Fut<()>;
    /// Fires ticks of an unpaused schedule whose last tick is still `last`: submits `jobs`
    /// and advances the last tick to the newest of theirs, in one commit. `false` (and
    /// nothing done) when the schedule moved on meanwhile: fired elsewhere, paused,
    /// replaced or deleted.
    fn fire_schedule(&self, name: String, last: Millis, jobs: Vec<JobSpec>) -> Fut<bool>;
    /// A watcher of job (task, name) subscribed on this node (WatchJob, RunJobStream,
    /// Periodic's RecvData): resolves once a job of that name running anywhere will have
    /// its events forwarded here.
    fn watch_started(&self, task: String, name: String) -> Fut<()>;
    /// Takes (true) or queues for (false) a slot of lock `name` for the job of `lease`;
    /// queued, the lease ends and the job waits until a slot is given to it.
    fn acquire_lock(&self, lease: u64, name: String, count: u32) -> Fut<bool>;
    /// Lets go of lock `name` held by the job of `lease`.
    fn release_lock(&self, lease: u64, name: String) -> Fut<()>;
}
