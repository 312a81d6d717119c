//! [`SchedulerHandle`]: the client API through the backend chosen at start-up, and this
//! node's workers, schedules and settings through its actor.

use super::*;

/// Cheap, cloneable access to the scheduler: the client API through the [`Backend`] chosen
/// at start-up, and this node's workers through its actor.
#[derive(Clone)]
pub struct SchedulerHandle {
    pub(super) tx: mpsc::UnboundedSender<Cmd>,
    pub(super) clock: Clock,
    pub(super) jobs: Arc<dyn Backend>,
    /// Woken when a schedule changes through this node (the schedule driver reloads).
    pub(super) schedules_changed: Arc<tokio::sync::Notify>,
    /// Parsed cron expressions, for next fire times.
    pub(super) plans: Arc<PlanCache>,
    pub(super) backlog: Arc<Backlog>,
    pub(super) timeout: TimeoutSetting,
}

impl SchedulerHandle {
    /// The clock the scheduler runs on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// This node's actor.
    pub fn node(&self) -> NodeHandle {
        NodeHandle {
            tx: self.tx.clone(),
            clock: self.clock,
            backlog: self.backlog.clone(),
            timeout: self.timeout.clone(),
        }
    }

    /// Waits while the store is too far behind to take `demand` (see [`Backlog`]); hold
    /// the answer until their commit resolves. The ordered submit paths (SubmitStream,
    /// Periodic's pipelined SUBMIT_JOB) call it before [`Self::submit_each`]; the others wait
    /// inside their backend call.
    pub async fn admit(&self, demand: Demand) -> Option<Admitted> {
        self.jobs.admit(demand).await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, Error> {
        call(&self.tx, make).await
    }

    /// Pauses or resumes a task (cluster-wide); resolves once stored.
    pub async fn pause_task(&self, task: String, paused: bool) -> Result<(), Error> {
        self.jobs.pause_task(task, paused).await
    }

    /// Sets or clears a task's limits (cluster-wide); resolves once stored.
    pub async fn set_task_limits(&self, task: String, limits: TaskLimits) -> Result<(), Error> {
        check_name("task", &task)?;
        self.jobs.set_task_limits(task, limits).await
    }

    /// A task's limits.
    pub async fn get_task_limits(&self, task: String) -> Result<TaskLimits, Error> {
        check_name("task", &task)?;
        self.jobs.get_task_limits(task).await
    }

    /// Creates or replaces a schedule after checking it (nothing is stored when refused);
    /// its ticks from now on fire.
    pub async fn create_schedule(&self, spec: ScheduleSpec) -> Result<(), Error> {
        spec.validate()?;
        self.jobs.put_schedule(spec, self.clock.now_ms()).await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// Every schedule, in name order.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>, Error> {
        self.jobs.list_schedules().await
    }

    /// The next `n` fire times of `s` (after its last tick and after now).
    pub(crate) fn upcoming(&self, s: &Schedule, n: usize) -> Vec<Millis> {
        self.plans
            .get(&s.spec.cron, &s.spec.tz)
            .map(|p| p.upcoming(s.last_tick.max(self.clock.now_ms()), n))
            .unwrap_or_default()
    }

    /// One schedule, with its next `next` fire times and the id of its last job (while that
    /// job exists).
    pub async fn get_schedule(
        &self,
        name: String,
        next: usize,
    ) -> Result<(Schedule, Vec<Millis>, Option<JobId>), Error> {
        let s = self.jobs.get_schedule(name).await?;
        let upcoming = self.upcoming(&s, next);
        let last_id = if s.last_job.is_empty() {
            None
        } else {
            let key = JobKey::Name {
                task: s.spec.task.clone(),
                name: s.last_job.clone(),
            };
            self.jobs.get(key).await.ok().map(|v| v.record.id)
        };
        Ok((s, upcoming, last_id))
    }

    /// Pauses (no tick fires) or resumes (ticks from now on fire) a schedule.
    pub async fn pause_schedule(&self, name: String, paused: bool) -> Result<(), Error> {
        self.jobs
            .pause_schedule(name, paused, self.clock.now_ms())
            .await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// Deletes a schedule; the jobs it enqueued stay.
    pub async fn delete_schedule(&self, name: String) -> Result<(), Error> {
        self.jobs.delete_schedule(name).await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// One schedule as stored.
    pub(crate) async fn schedule(&self, name: String) -> Result<Schedule, Error> {
        self.jobs.get_schedule(name).await
    }

    /// See [`Backend::fire_schedule`].
    pub(crate) async fn fire_schedule(
        &self,
        name: String,
        last: Millis,
        jobs: Vec<JobSpec>,
    ) -> Result<bool, Error> {
        self.jobs.fire_schedule(name, last, jobs).await
    }

    /// Woken whenever a schedule changes through this node.
    pub(crate) fn schedules_changed(&self) -> Arc<tokio::sync::Notify> {
        self.schedules_changed.clone()
    }

    /// Submits (or replaces) a job; returns once it is committed.
    pub async fn submit(&self, spec: JobSpec) -> Result<SubmitReply, Error> {
        self.jobs.submit(spec).await
    }

    /// Submits (or replaces) jobs in order as one command and one commit; returns once committed.
    pub async fn submit_many(&self, specs: Vec<JobSpec>) -> Result<Vec<SubmitReply>, Error> {
        self.jobs.submit_many(specs).await
    }

    /// Submits jobs in order, each on its own; see [`Backend::submit_each`].
    pub fn submit_each(&self, specs: Vec<JobSpec>) -> BoxFuture<'static, SubmittedEach> {
        self.jobs.submit_each(specs)
    }

    /// Submits a job and waits for the worker's result. Needs a worker for the task.
    pub async fn run_job(&self, spec: JobSpec) -> Result<(JobId, Bytes), Error> {
        self.jobs.run_job(spec).await
    }

    /// Runs a job that lives in this node's memory only (no store write; lost on a crash)
    /// and waits for its result: the load runner's remote task runs. Without a worker for
    /// the task on this node, a durable [`Self::run_job`] (in a cluster, any node's worker
    /// may take it).
    pub(crate) async fn run_transient(&self, spec: JobSpec) -> Result<(JobId, Bytes), Error> {
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::SubmitTransient {
            spec: spec.clone(),
            reply,
        };
        if self.tx.send(cmd).is_err() {
            return Err(Error::ShuttingDown);
        }
        let (id, result) = match rx.await.map_err(|_| Error::ShuttingDown)? {
            Ok(r) => r,
            Err(Error::NoWorker { .. }) => return self.run_job(spec).await,
            Err(e) => return Err(e),
        };
        match result.await {
            Ok(Ok(r)) => Ok((id, r)),
            Ok(Err(e)) => Err(Error::JobFailed(e)),
            Err(_) => Err(Error::ShuttingDown),
        }
    }

    /// Removes a job.
    pub async fn remove(&self, key: JobKey) -> Result<JobId, Error> {
        self.jobs.remove(key).await
    }

    /// Looks a job up.
    pub async fn get(&self, key: JobKey) -> Result<JobView, Error> {
        self.jobs.get(key).await
    }

    /// Drops a task and its jobs.
    pub async fn drop_task(&self, task: String) -> Result<u64, Error> {
        self.jobs.drop_task(task).await
    }

    /// Per-task counts and totals.
    pub async fn status(
        &self,
        task: Option<String>,
    ) -> Result<(Vec<TaskStatus>, TaskStatus), Error> {
        self.jobs.status(task).await
    }

    /// One page of a task's jobs.
    pub async fn list_jobs(&self, query: ListQuery) -> Result<JobPage, Error> {
        self.jobs.list_jobs(query).await
    }

    /// Dead jobs.
    pub async fn list_dead(
        &self,
        task: Option<String>,
        limit: usize,
    ) -> Result<Vec<JobView>, Error> {
        self.jobs.list_dead(task, limit).await
    }

    /// Re-queues dead jobs.
    pub async fn retry_dead(
        &self,
        task: Option<String>,
        name: Option<String>,
    ) -> Result<u64, Error> {
        self.jobs.retry_dead(task, name).await
    }

    /// Deletes dead jobs.
    pub async fn purge_dead(
        &self,
        task: Option<String>,
        name: Option<String>,
    ) -> Result<u64, Error> {
        self.jobs.purge_dead(task, name).await
    }

    /// One page of jobs after `after`, in id order.
    pub async fn dump_page(&self, after: JobId, limit: usize) -> Result<Vec<JobRecord>, Error> {
        self.jobs.dump_page(after, limit).await
    }

    /// Restores one dumped job; returns once committed.
    pub async fn load(&self, record: JobRecord) -> Result<(), Error> {
        self.jobs.load(record).await
    }

    /// Whether any worker serves `task`.
    pub async fn has_worker(&self, task: String) -> Result<bool, Error> {
        self.jobs.has_worker(task).await
    }

    /// Run-time settings: one, or all when `key` is empty.
    pub async fn get_config(&self, key: String) -> Result<BTreeMap<String, i64>, Error> {
        self.jobs.get_config(key).await
    }

    /// Changes a run-time setting; returns once it is persisted.
    pub async fn set_config(&self, key: String, value: i64) -> Result<(), Error> {
        self.jobs.set_config(key, value).await
    }

    /// Registers a worker. With `tx` it is connected at once (the Work stream); without, GrabJob attaches later.
    pub async fn register(
        &self,
        worker: Option<WorkerId>,
        tasks: Vec<String>,
        broadcast: Vec<String>,
        capacity: u32,
        tx: Option<WorkerTx>,
    ) -> Result<WorkerId, Error> {
        self.call(|reply| Cmd::Register {
            worker,
            tasks,
            broadcast,
            capacity,
            tx,
            reply,
        })
        .await?
    }

    /// Attaches a registered worker's job stream.
    pub async fn connect(&self, worker: WorkerId, tx: WorkerTx) -> Result<(), Error> {
        self.call(|reply| Cmd::Connect { worker, tx, reply })
            .await?
    }

    /// The worker's stream closed: requeue its jobs. Safe to call from `Drop`.
    pub fn worker_gone(&self, worker: WorkerId) {
        let _ = self.tx.send(Cmd::WorkerGone { worker });
    }

    /// Applies a worker's outcome; returns once the change is committed.
    pub async fn report(&self, lease: LeaseId, outcome: Outcome) -> Result<(), Error> {
        self.report_deferred(lease, outcome)
            .await?
            .wait()
            .await
            .map_err(store_err)
    }

    /// Applies a worker's outcome in memory; the returned commit resolves once it is durable.
    /// Lets a stream pipeline many reports without waiting for each fsync.
    pub(crate) async fn report_deferred(
        &self,
        lease: LeaseId,
        outcome: Outcome,
    ) -> Result<Commit, Error> {
        self.call(|reply| Cmd::Report {
            lease,
            outcome,
            reply,
        })
        .await?
    }

    /// Hands a worker's outcome to the actor at once and returns its answer to await later,
    /// so a Work stream reads on while the actor applies the stream's reports in order (one
    /// actor wake-up takes many of them) instead of one round trip per result.
    pub(crate) fn report_queued(
        &self,
        lease: LeaseId,
        outcome: Outcome,
    ) -> impl std::future::Future<Output = Result<Commit, Error>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Cmd::Report {
                lease,
                outcome,
                reply,
            })
            .map_err(|_| Error::ShuttingDown);
        async move {
            sent?;
            rx.await.map_err(|_| Error::ShuttingDown)?
        }
    }

    /// Extends leases; returns those no longer held.
    pub async fn heartbeat(&self, leases: Vec<LeaseId>) -> Result<Vec<LeaseId>, Error> {
        self.call(|reply| Cmd::Heartbeat { leases, reply }).await
    }

    /// Subscribes to a job's data chunks and end, by task and name (it need not exist yet).
    /// Resolves once every node that may run the job will forward its events here.
    pub async fn watch(&self, task: String, name: String) -> Result<EventRx, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.tx.send(Cmd::Watch {
            task: task.clone(),
            name: name.clone(),
            tx,
        });
        self.jobs.watch_started(task, name).await?;
        Ok(rx)
    }

    /// Streams a chunk of a running job's output to its watchers.
    pub(crate) async fn work_data(&self, lease: LeaseId, data: Bytes) -> Result<(), Error> {
        self.call(|reply| Cmd::WorkData { lease, data, reply })
            .await?
    }

    /// Takes a slot of lock `name` for a leased job; false means the job now waits for the lock.
    pub async fn acquire_lock(
        &self,
        lease: LeaseId,
        name: String,
        count: u32,
    ) -> Result<bool, Error> {
        self.jobs.acquire_lock(lease, name, count).await
    }

    /// Releases lock `name` held by a leased job.
    pub async fn release_lock(&self, lease: LeaseId, name: String) -> Result<(), Error> {
        self.jobs.release_lock(lease, name).await
    }

    /// A worker stops serving a task.
    pub(crate) fn unregister_task(&self, worker: WorkerId, task: String) {
        let _ = self.tx.send(Cmd::Unregister { worker, task });
    }

    /// Stops handing out jobs (shutdown) and resolves once every open lease is settled:
    /// results in flight are applied; call [`Self::close_workers`] after, or at a deadline.
    pub async fn drain(&self) -> Result<(), Error> {
        self.call(|reply| Cmd::Drain { reply }).await
    }

    /// Ends every worker's job stream (shutdown); their leased jobs go back to pending.
    pub(crate) fn close_workers(&self) {
        let _ = self.tx.send(Cmd::CloseWorkers);
    }

    /// Waits until every change made so far is committed.
    pub async fn flush(&self) -> Result<(), Error> {
        let commit = self.call(|reply| Cmd::Barrier { reply }).await?;
        commit.wait().await.map_err(store_err)
    }
}
