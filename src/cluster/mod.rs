//! Cluster mode: several nodes on one PostgreSQL database.
//!
//! The database holds every job; a node's core holds only the jobs the node has claimed
//! (running, or about to run). The client API is [`ClusterJobs`], this mode's implementation
//! of the scheduler's one [`crate::scheduler::backend::Backend`] seam: submits of every kind
//! insert rows with ids from the database's sequence and `NOTIFY taskhive_jobs`; reads,
//! removes, the dead set, dump/load and settings go to the database, so any node answers for
//! the whole cluster.
//!
//! Each node's claimer ([`claimer`]) asks its core how many more jobs its connected workers
//! could take, and claims that many due jobs per task with `FOR UPDATE SKIP LOCKED`, bumping
//! the row's `lease_version` (the fencing token) and setting `claim_until`. The node renews
//! its claims while it lives; a dead node's claims expire and any node claims the jobs
//! again. Reports are written back fenced by owner and version (see
//! [`crate::store::postgres::Fence`]). A job rescheduled (retry, SchedLater) or dead gives
//! its claim back in the same commit and leaves the node's core.
//!
//! RunJob on one node learns the result from a worker on another through the `results`
//! table and `NOTIFY taskhive_results`. Workers are published per node in
//! `cluster_workers` / `cluster_nodes`, so Status, RunJob and DropTask see every node's.

mod broadcast;
mod claimer;
mod exec_lock;
mod jobs;
mod limits;
mod locks;
mod sql;
mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client};

pub use exec_lock::PgExecLock;
pub use jobs::ClusterJobs;

use crate::scheduler::actor::{NodeEvents, NodeHandle, NodeHook};
use crate::scheduler::error::Error;
use crate::scheduler::job::JobId;
use crate::store::postgres::Fence;

/// Cluster settings (`serve --node-id`, `--claim-ttl`, `--poll-interval`).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's id, unique among live nodes.
    pub node_id: String,
    /// How long a claim lasts without renewal: a dead node's jobs run again after this.
    pub claim_ttl: Duration,
    /// Safety-net poll for work nobody announced (and for expired claims).
    pub poll_interval: Duration,
    /// How long finished jobs' outcomes stay readable (`--keep-results`; 0 = not kept).
    pub keep_results: Duration,
}

impl ClusterConfig {
    /// Defaults for node `node_id`.
    pub fn new(node_id: impl Into<String>) -> Self {
        ClusterConfig {
            node_id: node_id.into(),
            claim_ttl: Duration::from_secs(15),
            poll_interval: Duration::from_secs(5),
            keep_results: Duration::ZERO,
        }
    }
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The database refused or failed.
    #[error("cluster database: {0}")]
    Db(String),
}

/// Connection set-up (`store::pg_tls`) reports store errors.
impl From<crate::store::StoreError> for ClusterError {
    fn from(e: crate::store::StoreError) -> Self {
        ClusterError::Db(e.to_string())
    }
}

impl From<tokio_postgres::Error> for ClusterError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The driver's Display omits the server's message; the source has it.
        let detail = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        ClusterError::Db(format!("{e}{detail}"))
    }
}

const JOBS_CHANNEL: &str = "taskhive_jobs";
const RESULTS_CHANNEL: &str = "taskhive_results";
const FORGET_CHANNEL: &str = "taskhive_forget";
const CONFIG_CHANNEL: &str = "taskhive_config";
const LOAD_JOBS_CHANNEL: &str = "taskhive_load_jobs";
const PAUSE_CHANNEL: &str = "taskhive_paused";
/// A task's limits changed (payload: the task): every node reloads them.
const LIMITS_CHANNEL: &str = "taskhive_limits";
/// A schedule was created, replaced, paused, resumed or deleted (payload: its name): every
/// node's schedule driver reloads, instead of polling the table.
const SCHEDULES_CHANNEL: &str = "taskhive_schedules";
/// A node got a watcher of a job (see [`watch`]).
const WATCH_CHANNEL: &str = "taskhive_watch";
/// A piece of a watched job's event, for the watchers on other nodes.
const JOB_DATA_CHANNEL: &str = "taskhive_job_data";
/// A job waiting for a named lock was given a slot (see [`locks`]).
const LOCKS_CHANNEL: &str = "taskhive_locks";
/// Connections the client API's writes are spread over (each pipelines its queries).
const API_CONNECTIONS: usize = 4;
/// Connections of the client API's reads (GetJob, ListJobs, Status, ...): kept apart from
/// the writes' so a read never queues behind INSERTs that wait on the database (a lock, a
/// slow disk) in the same session's pipeline.
const READ_CONNECTIONS: usize = 2;

type Waiters = HashMap<JobId, Vec<oneshot::Sender<Result<Bytes, String>>>>;

/// A database session with the submit statement prepared on it.
struct Live {
    client: Client,
    submit: tokio_postgres::Statement,
}

/// One pooled session, opened again when it broke (the database restarted, or this node
/// was cut off and the network came back): a node recovers with its database.
struct Conn {
    url: String,
    cur: Mutex<Arc<Live>>,
    reopening: tokio::sync::Mutex<()>,
}

impl Conn {
    async fn open(url: &str) -> Result<Conn, ClusterError> {
        Ok(Conn {
            url: url.to_string(),
            cur: Mutex::new(Arc::new(Live::open(url).await?)),
            reopening: tokio::sync::Mutex::new(()),
        })
    }

    /// The session, reopened first if it broke.
    async fn get(&self) -> Result<Arc<Live>, Error> {
        let cur = self.cur.lock().expect("poisoned").clone();
        if !cur.client.is_closed() {
            return Ok(cur);
        }
        let _one = self.reopening.lock().await;
        let cur = self.cur.lock().expect("poisoned").clone();
        if !cur.client.is_closed() {
            return Ok(cur);
        }
        let fresh = Arc::new(
            Live::open(&self.url)
                .await
                .map_err(|e| Error::Store(e.to_string()))?,
        );
        tracing::warn!("cluster: reconnected to PostgreSQL");
        *self.cur.lock().expect("poisoned") = fresh.clone();
        Ok(fresh)
    }
}

/// Sessions a kind of statement is spread over, round robin.
struct Pool {
    conns: Vec<Conn>,
    next: AtomicUsize,
}

impl Pool {
    async fn open(url: &str, n: usize) -> Result<Pool, ClusterError> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(Conn::open(url).await?);
        }
        Ok(Pool {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// The next session, reopened if it broke.
    async fn get(&self) -> Result<Arc<Live>, Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].get().await
    }

    /// Always the same session: statements whose notifications must arrive in order.
    async fn first(&self) -> Result<Arc<Live>, Error> {
        self.conns[0].get().await
    }
}

impl Live {
    async fn open(url: &str) -> Result<Live, ClusterError> {
        let client = connect(url).await?.0;
        let submit = client.prepare(sql::SUBMIT).await?;
        Ok(Live { client, submit })
    }
}

/// What the claimer, the client API and the finished-job hook share.
struct Shared {
    node: String,
    ttl_ms: i64,
    /// Sessions of the client API's writes.
    writes: Pool,
    /// Sessions of the client API's reads.
    reads: Pool,
    /// The writer's fence: claimed job id → lease version.
    versions: Arc<Mutex<HashMap<JobId, i64>>>,
    /// Claimed jobs a RunJob somewhere waits on: their results are published.
    waited: Mutex<HashSet<JobId>>,
    /// RunJob callers on this node.
    waiters: Mutex<Waiters>,
    /// Names of load jobs saved on some node (this one included).
    load_jobs: tokio::sync::broadcast::Sender<String>,
    /// Woken when some node changed a schedule (or notifications may have been missed).
    schedule_news: Arc<tokio::sync::Notify>,
    /// Watchers across nodes.
    watches: watch::Watches,
}

impl Shared {
    /// The next pooled session (round robin), reopened if it broke.
    async fn conn(&self) -> Result<Arc<Live>, Error> {
        self.writes.get().await
    }

    /// The next pooled session for a read-only statement (round robin), reopened if it broke.
    async fn read_conn(&self) -> Result<Arc<Live>, Error> {
        self.reads.get().await
    }
}

/// A running cluster node's link to the database.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

fn db_err(e: tokio_postgres::Error) -> Error {
    let detail = std::error::Error::source(&e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Error::Store(format!("postgres: {e}{detail}"))
}

async fn connect(
    url: &str,
) -> Result<
    (
        Client,
        mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    ),
    ClusterError,
> {
    let (client, mut conn) = crate::store::pg_tls::pg_config(url)?.connect().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cluster database connection failed");
                    break;
                }
            }
        }
    });
    Ok((client, rx))
}

impl Cluster {
    /// The fence the store's writer applies for node `cfg`.
    pub fn fence(cfg: &ClusterConfig) -> Fence {
        Fence {
            node: cfg.node_id.clone(),
            versions: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Prepares the (migrated) database for this node: forgets claims and workers a previous
    /// run of the same node left behind (that process is gone) and keeps the id sequence
    /// ahead of stored ids.
    pub(crate) async fn prepare(url: &str, cfg: &ClusterConfig) -> Result<(), ClusterError> {
        Self::release(url, cfg).await?;
        let (c, _) = connect(url).await?;
        c.execute(
            "SELECT setval('job_ids', GREATEST(COALESCE((SELECT max(id) FROM jobs), 1),
                 (SELECT last_value FROM job_ids)))",
            &[],
        )
        .await?;
        Ok(())
    }

    /// Gives this node's claims back and withdraws its workers, at a graceful stop (every
    /// report was committed before) or at the start of a new run of the node.
    pub async fn release(url: &str, cfg: &ClusterConfig) -> Result<u64, ClusterError> {
        let (c, _) = connect(url).await?;
        c.execute(
            "DELETE FROM cluster_workers WHERE node = $1",
            &[&cfg.node_id],
        )
        .await?;
        c.execute("DELETE FROM cluster_nodes WHERE node = $1", &[&cfg.node_id])
            .await?;
        // This node's watchers are gone with its previous run.
        c.execute("DELETE FROM job_watches WHERE node = $1", &[&cfg.node_id])
            .await?;
        Ok(c.execute(
            "UPDATE jobs SET owner = NULL, claim_until = NULL WHERE owner = $1",
            &[&cfg.node_id],
        )
        .await?)
    }

    /// Connects this node and returns the link plus the hook the actor calls on finished jobs.
    pub async fn connect(
        url: &str,
        cfg: &ClusterConfig,
        fence: &Fence,
    ) -> Result<(Cluster, NodeHook), ClusterError> {
        let writes = Pool::open(url, API_CONNECTIONS).await?;
        let reads = Pool::open(url, READ_CONNECTIONS).await?;
        let (watches, forwards) = watch::Watches::new();
        let shared = Arc::new(Shared {
            node: cfg.node_id.clone(),
            ttl_ms: cfg.claim_ttl.as_millis().max(1) as i64,
            writes,
            reads,
            versions: fence.versions.clone(),
            waited: Mutex::new(HashSet::new()),
            waiters: Mutex::new(HashMap::new()),
            load_jobs: tokio::sync::broadcast::channel(1024).0,
            schedule_news: Arc::default(),
            watches,
        });
        tokio::spawn(watch::publish(shared.clone(), forwards));
        let hook = Arc::new(Hook {
            shared: shared.clone(),
            keep_ms: cfg.keep_results.as_millis() as i64,
        });
        Ok((Cluster { shared }, hook))
    }

    /// Names of load jobs saved on any node, as they are committed.
    pub(crate) fn load_job_news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.shared.load_jobs.subscribe()
    }

    /// Woken when any node changed a schedule: the schedule driver reloads then.
    pub(crate) fn schedule_news(&self) -> Arc<tokio::sync::Notify> {
        self.shared.schedule_news.clone()
    }

    /// The client API of this node, over its actor `node`; submits wait while `backlog`'s
    /// (jobs, payload bytes) are admitted and not yet stored.
    pub async fn jobs(
        &self,
        url: &str,
        node: NodeHandle,
        backlog: (usize, usize),
    ) -> Result<ClusterJobs, ClusterError> {
        ClusterJobs::start(self.shared.clone(), url, node, backlog).await
    }

    /// Starts the claimer: it feeds claimed jobs to `node` until the actor stops.
    pub(crate) async fn spawn_claimer(
        &self,
        url: &str,
        cfg: &ClusterConfig,
        node: NodeHandle,
    ) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
        claimer::spawn(self.shared.clone(), url, cfg, node).await
    }
}

/// What the actor tells this node's cluster layer.
struct Hook {
    shared: Arc<Shared>,
    keep_ms: i64,
}

impl NodeEvents for Hook {
    fn finished(
        &self,
        id: JobId,
        task: &str,
        name: &str,
        attempts: u32,
        result: &Result<Bytes, String>,
    ) {
        let shared = &self.shared;
        if let (Ok(r), true) = (result, self.keep_ms > 0) {
            keep_result(
                shared.clone(),
                id,
                (task.to_string(), name.to_string()),
                attempts,
                r.clone(),
                self.keep_ms,
            );
        }
        if shared.watches.finished(task, name, result) {
            watch::end(shared.clone(), (task.to_string(), name.to_string()));
        }
        if shared.waited.lock().expect("poisoned").remove(&id) {
            publish_result(shared.clone(), id, result.clone());
        }
    }

    fn data(&self, task: &str, name: &str, data: &Bytes) {
        self.shared.watches.data(task, name, data);
    }

    fn locks_released(&self, job: JobId, timeout_ms: i64) {
        locks::release_all(self.shared.clone(), job, timeout_ms);
    }

    fn broadcast_parts(&self, job: JobId, run: u64, nodes: &[Arc<str>]) {
        broadcast::ask(self.shared.clone(), job, run, nodes);
    }

    fn part_done(
        &self,
        origin: &str,
        job: JobId,
        run: u64,
        outcome: &crate::scheduler::job::Outcome,
    ) {
        broadcast::answer(self.shared.clone(), origin, job, run, outcome);
    }
}

/// Keeps a done job's outcome in `results_kept` for `keep_ms` (purging expired ones).
fn keep_result(
    shared: Arc<Shared>,
    id: JobId,
    (task, name): (String, String),
    attempts: u32,
    result: Bytes,
    keep_ms: i64,
) {
    tokio::spawn(async move {
        let now = now_ms();
        let r = match shared.conn().await {
            Ok(c) => c
                .client
                .execute(
                    sql::KEEP_RESULT,
                    &[
                        &(id as i64),
                        &task,
                        &name,
                        &(attempts as i64),
                        &result.as_ref(),
                        &now,
                        &(now + keep_ms),
                    ],
                )
                .await
                .map_err(db_err),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(job = id, error = %e, "keeping a job's result failed");
        }
    });
}

/// Publishes a RunJob's result for the node whose caller waits on it.
fn publish_result(shared: Arc<Shared>, id: JobId, result: Result<Bytes, String>) {
    let (ok, data) = match result {
        Ok(b) => (true, b.to_vec()),
        Err(e) => (false, e.into_bytes()),
    };
    tokio::spawn(async move {
        let r = match shared.conn().await {
            Ok(c) => c
                .client
                .execute(sql::PUBLISH_RESULT, &[&(id as i64), &ok, &data])
                .await
                .map_err(db_err),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::error!(job = id, error = %e, "publishing a RunJob result failed");
        }
    });
}

/// Hands a published result to the RunJob callers on this node waiting for it.
async fn deliver(shared: &Arc<Shared>, id: JobId) {
    if !shared.waiters.lock().expect("poisoned").contains_key(&id) {
        return;
    }
    let Ok(c) = shared.conn().await else { return };
    let row = c
        .client
        .query_opt(
            "DELETE FROM results WHERE id = $1 RETURNING ok, data",
            &[&(id as i64)],
        )
        .await;
    let Ok(Some(row)) = row else { return };
    let ok: bool = row.get(0);
    let data: Vec<u8> = row.get(1);
    let result = if ok {
        Ok(Bytes::from(data))
    } else {
        Err(String::from_utf8_lossy(&data).into_owned())
    };
    if let Some(ws) = shared.waiters.lock().expect("poisoned").remove(&id) {
        for w in ws {
            let _ = w.send(result.clone());
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
