//! [`NodeHandle`]: a node's own actor before its client API is chosen, and what a cluster
//! backend feeds claims, parts and locks in through.

use super::*;

/// The node's own actor, before its client API is chosen; also what a cluster backend uses
/// to feed claims in and to learn about the node's workers.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) tx: mpsc::UnboundedSender<Cmd>,
    pub(super) clock: Clock,
    /// The store writer's queue, which local submits wait on.
    pub(super) backlog: Arc<Backlog>,
    /// The `timeout` setting as the actor holds it.
    pub(super) timeout: TimeoutSetting,
}

impl NodeHandle {
    /// The client API over this node's own core.
    pub fn local(&self) -> LocalJobs {
        LocalJobs::new(self.tx.clone(), self.backlog.clone())
    }

    /// External locks: the job of `lease` and the lock timeout.
    pub async fn lock_request(&self, lease: LeaseId) -> Result<(JobId, Millis), Error> {
        call(&self.tx, |reply| {
            Cmd::Lock(LockCmd::Request { lease, reply })
        })
        .await?
    }

    /// External locks: the database's answer to an acquire; false when the job now waits.
    pub(crate) async fn acquire_decided(
        &self,
        lease: LeaseId,
        name: String,
        held: bool,
    ) -> Result<bool, Error> {
        call(&self.tx, |reply| {
            Cmd::Lock(LockCmd::Decided {
                lease,
                name,
                held,
                reply,
            })
        })
        .await?
    }

    /// External locks: lets go of a lock here (the database was told first).
    pub async fn release_lock(&self, lease: LeaseId, name: String) -> Result<(), Error> {
        call(&self.tx, |reply| {
            Cmd::Lock(LockCmd::Release { lease, name, reply })
        })
        .await?
    }

    /// External locks: the database gave waiting job `job` a slot of `name`.
    pub(crate) fn lock_granted(&self, job: JobId, name: String) {
        let _ = self.tx.send(Cmd::Lock(LockCmd::Granted { job, name }));
    }

    /// Cluster: hands an event of a job running on another node to this node's watchers.
    pub(crate) fn watch_event(&self, task: String, name: String, event: JobEvent) {
        let _ = self.tx.send(Cmd::WatchEvent { task, name, event });
    }

    /// Cluster: applies limits another node stored and announced.
    pub(crate) async fn apply_task_limits(
        &self,
        task: String,
        limits: TaskLimits,
    ) -> Result<(), Error> {
        call(&self.tx, |reply| Cmd::SetTaskLimits {
            task,
            limits,
            persist: false,
            reply,
        })
        .await
        .map(drop)
    }

    /// Cluster: applies a pause or resume another node stored and announced.
    pub(crate) async fn apply_task_paused(&self, task: String, paused: bool) -> Result<(), Error> {
        call(&self.tx, |reply| Cmd::PauseTask {
            task,
            paused,
            persist: false,
            reply,
        })
        .await
        .map(drop)
    }

    /// Keeps finished jobs' outcomes for `keep_ms` (start-up; one node holding every job).
    pub fn keep_results(&self, keep_ms: Millis) {
        let _ = self.tx.send(Cmd::KeepResults { keep_ms });
    }

    /// Hands the actor the stored schedules (start-up, before serving).
    pub(crate) fn restore_schedules(&self, schedules: Vec<Schedule>) {
        let _ = self
            .tx
            .send(Cmd::Schedule(ScheduleCmd::Restore { schedules }));
    }

    /// The full handle, with the client API served by `jobs`.
    pub(crate) fn with_jobs(self, jobs: Arc<dyn Backend>) -> SchedulerHandle {
        SchedulerHandle {
            tx: self.tx,
            clock: self.clock,
            jobs,
            schedules_changed: Arc::default(),
            plans: Arc::default(),
            backlog: self.backlog,
            timeout: self.timeout,
        }
    }

    /// The `timeout` setting, read without a round trip to the actor.
    pub(crate) fn timeout_setting(&self) -> TimeoutSetting {
        self.timeout.clone()
    }

    /// Hands jobs claimed elsewhere (cluster claims) to the core; nothing is written.
    pub(crate) fn adopt(&self, records: Vec<JobRecord>) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::Adopt { records }));
    }

    /// Drops jobs whose claim was lost; nothing is written.
    pub(crate) fn forget(&self, ids: Vec<JobId>) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::Forget { ids }));
    }

    /// Cluster broadcast: the other nodes with broadcast workers for `task`; sent before the
    /// claimed jobs it applies to are adopted.
    pub fn set_remote_broadcast(&self, task: String, nodes: Vec<String>) {
        let _ = self
            .tx
            .send(Cmd::Node(NodeCmd::RemoteBroadcast { task, nodes }));
    }

    /// Cluster broadcast: runs this node's part of `origin`'s job `record` (run `run`).
    pub fn run_part(&self, record: JobRecord, origin: String, run: u64) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::RunPart {
            record,
            origin,
            run,
        }));
    }

    /// Cluster broadcast: the live nodes; parts owed by others count as failed.
    pub fn nodes_live(&self, nodes: Vec<String>) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::NodesLive { nodes }));
    }

    /// Cluster broadcast: drops this node's part of job `job` if it is still here.
    pub fn drop_part(&self, job: JobId) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::DropPart { job }));
    }

    /// Cluster broadcast: node `node`'s part of run `run` of job `job` (owned here) is over.
    pub fn part_reported(
        &self,
        job: JobId,
        run: u64,
        node: String,
        outcome: Result<Outcome, String>,
    ) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::PartReported {
            job,
            run,
            node,
            outcome,
        }));
    }

    /// Per task, how many more jobs the connected workers could take now.
    pub(crate) async fn idle_slots(&self) -> Result<Vec<(String, u64)>, Error> {
        call(&self.tx, |reply| Cmd::Node(NodeCmd::IdleSlots { reply })).await
    }

    /// Gives back claimed jobs of tasks no worker here serves any more.
    pub(crate) fn release_unserved(&self) {
        let _ = self.tx.send(Cmd::Node(NodeCmd::ReleaseUnserved));
    }

    /// Per task, the workers registered here and whether the task is broadcast.
    pub(crate) async fn local_workers(&self) -> Result<LocalWorkers, Error> {
        call(&self.tx, |reply| Cmd::LocalWorkers { reply }).await
    }

    /// Applies a setting another node changed (already persisted there).
    pub(crate) async fn apply_config(&self, key: String, value: i64) -> Result<(), Error> {
        call(&self.tx, |reply| Cmd::SetConfig {
            key,
            value,
            persist: false,
            reply,
        })
        .await??;
        Ok(())
    }

    /// Run-time settings as this node holds them.
    pub async fn config(&self) -> Result<BTreeMap<String, i64>, Error> {
        call(&self.tx, |reply| Cmd::GetConfig {
            key: String::new(),
            reply,
        })
        .await?
    }

    /// This node's view of a job it holds (running or about to run), if any.
    pub async fn held(&self, key: JobKey) -> Result<Option<JobView>, Error> {
        match call(&self.tx, |reply| Cmd::Get { key, reply }).await? {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
