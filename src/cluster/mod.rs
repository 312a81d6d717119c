//! Cluster mode: several nodes on one PostgreSQL database.
//!
//! The database holds every job; a node's core holds only the jobs the node has claimed.
//! Submits on any node insert the row unclaimed (`owner` NULL) and `NOTIFY taskhive_jobs`.
//! Each node's claimer asks its core how many more jobs its connected workers could take,
//! and claims that many due jobs per task with `FOR UPDATE SKIP LOCKED`, bumping the row's
//! `lease_version` (the fencing token) and setting `claim_until`. The node renews its claims
//! while it lives; a dead node's claims expire and any node claims the jobs again. Reports
//! are written back fenced by owner and version (see [`crate::store::postgres::Fence`]).
//!
//! Nodes wait on `LISTEN` and on a timer for the earliest known future job; a slow poll is
//! the safety net (missed notifications, expired claims). With nothing to do, a node only
//! polls: no database traffic scales with idle time beyond that.
//!
//! RunJob on one node learns the result from a worker on another through the `results`
//! table and `NOTIFY taskhive_results`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client};

use crate::scheduler::actor::{FinishedHook, RemoteSubmit, ResultRx};
use crate::scheduler::core::SubmitReply;
use crate::scheduler::error::Error;
use crate::scheduler::job::{JobId, JobSpec, RetryPolicy};
use crate::scheduler::SchedulerHandle;
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
    /// Lease length of jobs that set none.
    pub default_timeout_ms: u32,
}

impl ClusterConfig {
    /// Defaults for node `node_id`.
    pub fn new(node_id: impl Into<String>) -> Self {
        ClusterConfig {
            node_id: node_id.into(),
            claim_ttl: Duration::from_secs(15),
            poll_interval: Duration::from_secs(5),
            default_timeout_ms: 600_000,
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
/// Connections submits are spread over (each pipelines its queries).
const SUBMIT_CONNECTIONS: usize = 4;
/// Claims per query at most.
const MAX_CLAIM: u64 = 1_000;

type Waiters = HashMap<JobId, Vec<oneshot::Sender<Result<Bytes, String>>>>;

struct Shared {
    node: String,
    default_timeout_ms: u32,
    /// Connections, each with the submit statement prepared on it.
    clients: Vec<(Client, tokio_postgres::Statement)>,
    next: AtomicUsize,
    versions: Arc<Mutex<HashMap<JobId, i64>>>,
    /// Claimed jobs a RunJob somewhere waits on: their results are published.
    waited: Mutex<HashSet<JobId>>,
    /// RunJob callers on this node.
    waiters: Mutex<Waiters>,
}

impl Shared {
    fn client(&self) -> &Client {
        &self.pick().0
    }

    fn pick(&self) -> &(Client, tokio_postgres::Statement) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
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

    /// Prepares the (migrated) database for this node: forgets claims a previous run of the
    /// same node left behind (that process is gone) and keeps the id sequence ahead of
    /// stored ids.
    pub async fn prepare(url: &str, cfg: &ClusterConfig) -> Result<(), ClusterError> {
        let (c, _) = connect(url).await?;
        c.execute(
            "UPDATE jobs SET owner = NULL, claim_until = NULL WHERE owner = $1",
            &[&cfg.node_id],
        )
        .await?;
        c.execute(
            "SELECT setval('job_ids', GREATEST(COALESCE((SELECT max(id) FROM jobs), 1),
                 (SELECT last_value FROM job_ids)))",
            &[],
        )
        .await?;
        Ok(())
    }

    /// Gives this node's claims back at a graceful stop, so other nodes need not wait for
    /// them to expire (every report was committed before).
    pub async fn release(url: &str, cfg: &ClusterConfig) -> Result<u64, ClusterError> {
        let (c, _) = connect(url).await?;
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
    ) -> Result<(Cluster, FinishedHook), ClusterError> {
        let mut clients = Vec::new();
        for _ in 0..SUBMIT_CONNECTIONS {
            let c = connect(url).await?.0;
            let st = c.prepare(SUBMIT).await?;
            clients.push((c, st));
        }
        let shared = Arc::new(Shared {
            node: cfg.node_id.clone(),
            default_timeout_ms: cfg.default_timeout_ms,
            clients,
            next: AtomicUsize::new(0),
            versions: fence.versions.clone(),
            waited: Mutex::new(HashSet::new()),
            waiters: Mutex::new(HashMap::new()),
        });
        let hook_shared = shared.clone();
        let hook: FinishedHook = Arc::new(move |id, result| {
            if !hook_shared.waited.lock().expect("poisoned").remove(&id) {
                return;
            }
            let s = hook_shared.clone();
            let (ok, data) = match result {
                Ok(b) => (true, b.to_vec()),
                Err(e) => (false, e.as_bytes().to_vec()),
            };
            tokio::spawn(async move {
                let r = s
                    .client()
                    .execute(
                        "WITH r AS (INSERT INTO results (id, ok, data) VALUES ($1, $2, $3)
                             ON CONFLICT (id) DO UPDATE SET ok = EXCLUDED.ok, data = EXCLUDED.data
                             RETURNING id)
                         SELECT pg_notify('taskhive_results', id::text) FROM r",
                        &[&(id as i64), &ok, &data],
                    )
                    .await;
                if let Err(e) = r {
                    tracing::error!(job = id, error = %db_err(e), "publishing a RunJob result failed");
                }
            });
        });
        Ok((Cluster { shared }, hook))
    }

    /// Starts the claimer: it feeds claimed jobs to `sched` until `sched` stops.
    pub async fn spawn_claimer(
        &self,
        url: &str,
        cfg: &ClusterConfig,
        sched: SchedulerHandle,
    ) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
        let (listener, notes) = connect(url).await?;
        listener
            .batch_execute(&format!("LISTEN {JOBS_CHANNEL}; LISTEN {RESULTS_CHANNEL}"))
            .await?;
        let (client, _) = connect(url).await?;
        // Prepared once: an unprepared query costs the database an extra round trip
        // (and an extra transaction in its statistics) every time.
        let claim = client.prepare(CLAIM).await?;
        let next_due = client.prepare(NEXT_DUE).await?;
        let renew = client.prepare(RENEW).await?;
        let claimer = Claimer {
            shared: self.shared.clone(),
            client,
            claim,
            next_due,
            renew,
            _listener: listener,
            sched,
            ttl_ms: cfg.claim_ttl.as_millis().max(1) as i64,
            poll: cfg.poll_interval,
            drained: HashMap::new(),
        };
        Ok(tokio::spawn(claimer.run(notes)))
    }
}

/// `$n` placeholders for the job columns, in [`crate::store::postgres::job_record`] order.
const CLAIM: &str = "UPDATE jobs j SET owner = $1, lease_version = j.lease_version + 1,
        claim_until = now() + $2::bigint * interval '1 millisecond'
     FROM (SELECT id FROM jobs
           WHERE task = $3 AND NOT dead AND sched_at <= $4
             AND (owner IS NULL OR claim_until < now())
           ORDER BY priority DESC, sched_at, id
           LIMIT $5
           FOR UPDATE SKIP LOCKED) c
     WHERE j.id = c.id
     RETURNING j.id, j.task, j.name, j.args, j.sched_at, j.timeout_ms, j.priority, j.max_attempts,
        j.backoff_base_ms, j.backoff_max_ms, j.attempts, j.run_count, j.dead, j.last_error,
        j.lease_version, j.wait";

const NEXT_DUE: &str = "SELECT min(sched_at) FROM jobs WHERE task = $1 AND NOT dead
     AND (owner IS NULL OR claim_until < now())";
const RENEW: &str = "UPDATE jobs SET claim_until = now() + $2::bigint * interval '1 millisecond'
     WHERE owner = $1 AND id = ANY($3) RETURNING id, lease_version";

struct Claimer {
    shared: Arc<Shared>,
    client: Client,
    claim: tokio_postgres::Statement,
    next_due: tokio_postgres::Statement,
    renew: tokio_postgres::Statement,
    _listener: Client,
    sched: SchedulerHandle,
    ttl_ms: i64,
    poll: Duration,
    /// Tasks found without claimable work, with the time their next known job is due.
    drained: HashMap<String, Option<i64>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Claimer {
    async fn run(mut self, mut notes: mpsc::UnboundedReceiver<tokio_postgres::Notification>) {
        let mut last_poll = Instant::now();
        let mut last_renew = Instant::now();
        let renew_every = Duration::from_millis((self.ttl_ms / 3).max(1) as u64);
        loop {
            // Local demand is checked often (in-process, no database traffic); the database
            // is asked only when demand meets news, a due timer or the slow poll.
            let tick = tokio::time::sleep(Duration::from_millis(5));
            tokio::select! {
                n = notes.recv() => match n {
                    Some(n) => self.note(n).await,
                    None => {
                        tracing::error!("cluster notifications stopped; claiming by poll only");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                },
                _ = tick => {}
            }
            while let Ok(n) = notes.try_recv() {
                self.note(n).await;
            }
            if last_renew.elapsed() >= renew_every {
                last_renew = Instant::now();
                self.renew().await;
            }
            if last_poll.elapsed() >= self.poll {
                last_poll = Instant::now();
                self.drained.clear();
            }
            let now = now_ms();
            self.drained
                .retain(|_, next| !next.is_some_and(|t| t <= now));
            let Ok(idle) = self.sched.idle_slots().await else {
                return; // the scheduler stopped
            };
            for (task, want) in idle {
                if self.drained.contains_key(&task) {
                    continue;
                }
                if let Err(e) = self.claim(&task, want).await {
                    tracing::warn!(task, error = %e, "claim failed");
                    self.drained.insert(task, None);
                }
            }
        }
    }

    async fn note(&mut self, n: tokio_postgres::Notification) {
        match n.channel() {
            JOBS_CHANNEL => {
                let mut parts = n.payload().rsplitn(2, ' ');
                let at: Option<i64> = parts.next().and_then(|a| a.parse().ok());
                let task = parts.next().unwrap_or_default();
                match (self.drained.get_mut(task), at) {
                    (Some(next), Some(at)) if at > now_ms() => {
                        *next = Some(next.map_or(at, |n| n.min(at)));
                    }
                    (Some(_), _) => {
                        self.drained.remove(task);
                    }
                    (None, _) => {}
                }
            }
            RESULTS_CHANNEL => {
                if let Ok(id) = n.payload().parse::<u64>() {
                    deliver(&self.shared, id).await;
                }
            }
            _ => {}
        }
    }

    async fn claim(&mut self, task: &str, want: u64) -> Result<(), Error> {
        let limit = (want * 2).clamp(1, MAX_CLAIM) as i64;
        let rows = self
            .client
            .query(
                &self.claim,
                &[&self.shared.node, &self.ttl_ms, &task, &now_ms(), &limit],
            )
            .await
            .map_err(db_err)?;
        let got = rows.len() as i64;
        let mut records = Vec::with_capacity(rows.len());
        {
            let mut versions = self.shared.versions.lock().expect("poisoned");
            let mut waited = self.shared.waited.lock().expect("poisoned");
            for row in &rows {
                let r = crate::store::postgres::job_record(row);
                versions.insert(r.id, row.get::<_, i64>(14));
                if row.get::<_, bool>(15) {
                    waited.insert(r.id);
                }
                records.push(r);
            }
        }
        if !records.is_empty() {
            self.sched.adopt(records);
        }
        if got < limit {
            // Nothing more is due now: wait for news, the next known due time, or the poll.
            let next: Option<i64> = self
                .client
                .query_one(&self.next_due, &[&task])
                .await
                .map_err(db_err)?
                .get(0);
            // Due rows another node is claiming right now: look again shortly.
            let next = next.map(|t| t.max(now_ms() + 50));
            self.drained.insert(task.to_string(), next);
        }
        Ok(())
    }

    /// Extends this node's claims; the ones that are no longer ours are dropped from the core.
    async fn renew(&mut self) {
        let ids: Vec<i64> = {
            let v = self.shared.versions.lock().expect("poisoned");
            v.keys().map(|&id| id as i64).collect()
        };
        if ids.is_empty() {
            return;
        }
        let rows = match self
            .client
            .query(&self.renew, &[&self.shared.node, &self.ttl_ms, &ids])
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %db_err(e), "claim renewal failed");
                return;
            }
        };
        let held: HashMap<u64, i64> = rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1)))
            .collect();
        let mut lost = Vec::new();
        {
            let mut v = self.shared.versions.lock().expect("poisoned");
            let mut waited = self.shared.waited.lock().expect("poisoned");
            for id in ids {
                let id = id as u64;
                let ours = v.get(&id).copied();
                // Deleted meanwhile (done) or claimed by someone else: not ours any more.
                if ours.is_some() && held.get(&id) != ours.as_ref() {
                    v.remove(&id);
                    waited.remove(&id);
                    lost.push(id);
                }
            }
        }
        if !lost.is_empty() {
            tracing::warn!(jobs = lost.len(), "claims lost to other nodes");
            self.sched.forget(lost);
        }
    }
}

/// Hands a published result to the RunJob callers on this node waiting for it.
async fn deliver(shared: &Arc<Shared>, id: JobId) {
    if !shared.waiters.lock().expect("poisoned").contains_key(&id) {
        return;
    }
    let row = shared
        .client()
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

const SUBMIT: &str = "WITH up AS (
        INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
            backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, wait)
        VALUES (nextval('job_ids'), $1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, false, '', $10)
        ON CONFLICT (task, name) DO UPDATE SET args = EXCLUDED.args, sched_at = EXCLUDED.sched_at,
            timeout_ms = EXCLUDED.timeout_ms, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, backoff_base_ms = EXCLUDED.backoff_base_ms,
            backoff_max_ms = EXCLUDED.backoff_max_ms, attempts = 0, run_count = 0, dead = false,
            last_error = '', wait = EXCLUDED.wait, owner = NULL, claim_until = NULL
        WHERE jobs.owner IS NULL OR jobs.claim_until < now() OR jobs.dead
        RETURNING id, xmax <> 0 AS replaced, task, sched_at)
     SELECT id, replaced, pg_notify('taskhive_jobs', task || ' ' || sched_at::text)::text FROM up";

impl Cluster {
    async fn submit_job(
        &self,
        mut spec: JobSpec,
        wait: bool,
    ) -> Result<(SubmitReply, Option<ResultRx>), Error> {
        if spec.timeout_ms == 0 {
            spec.timeout_ms = self.shared.default_timeout_ms;
        }
        let RetryPolicy {
            max_attempts,
            backoff_base_ms,
            backoff_max_ms,
        } = spec.retry;
        let (c, submit) = self.shared.pick();
        let mut reply = None;
        // A claimed row is left alone (like a running job); if it is gone by the time we
        // look it up (done meanwhile), the insert goes through on the next round.
        for _ in 0..3 {
            let row = c
                .query_opt(
                    submit,
                    &[
                        &spec.task,
                        &spec.name,
                        &&spec.args[..],
                        &spec.sched_at,
                        &(spec.timeout_ms as i64),
                        &spec.priority,
                        &(max_attempts as i64),
                        &(backoff_base_ms as i64),
                        &(backoff_max_ms as i64),
                        &wait,
                    ],
                )
                .await
                .map_err(db_err)?;
            if let Some(r) = row {
                reply = Some(SubmitReply {
                    id: r.get::<_, i64>(0) as u64,
                    replaced: r.get(1),
                    running: false,
                });
                break;
            }
            let held = c
                .query_opt(
                    "SELECT id FROM jobs WHERE task = $1 AND name = $2",
                    &[&spec.task, &spec.name],
                )
                .await
                .map_err(db_err)?;
            if let Some(r) = held {
                reply = Some(SubmitReply {
                    id: r.get::<_, i64>(0) as u64,
                    replaced: false,
                    running: true,
                });
                break;
            }
        }
        let reply = reply.ok_or_else(|| {
            Error::Store(format!(
                "job {}/{} changed under three submits in a row; try again",
                spec.task, spec.name
            ))
        })?;
        if !wait {
            return Ok((reply, None));
        }
        if reply.running {
            return Err(Error::FailedPrecondition(format!(
                "job {}/{} is running on a node; its result goes to the RunJob that started it",
                spec.task, spec.name
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .waiters
            .lock()
            .expect("poisoned")
            .entry(reply.id)
            .or_default()
            .push(tx);
        // The result may have been published before the waiter was in place.
        deliver(&self.shared, reply.id).await;
        Ok((reply, Some(rx)))
    }
}

impl RemoteSubmit for Cluster {
    fn submit(
        &self,
        spec: JobSpec,
        wait: bool,
    ) -> BoxFuture<'static, Result<(SubmitReply, Option<ResultRx>), Error>> {
        let me = self.clone();
        Box::pin(async move { me.submit_job(spec, wait).await })
    }
}

/// Advisory lock key of the load runner's execution slot; any constant will do.
const EXEC_LOCK_KEY: i64 = 0x7468_6578_6563;

/// The load runner's cluster-wide slot: a session-level advisory lock on a connection of
/// its own, so a node that dies releases it with its session.
pub struct PgExecLock {
    client: Arc<Client>,
}

impl PgExecLock {
    /// Connects the lock's session.
    pub async fn connect(url: &str) -> Result<Self, ClusterError> {
        Ok(PgExecLock {
            client: Arc::new(connect(url).await?.0),
        })
    }
}

impl crate::load::runner::ExecLock for PgExecLock {
    fn try_lock(&self) -> BoxFuture<'static, Result<bool, String>> {
        let c = self.client.clone();
        Box::pin(async move {
            c.query_one("SELECT pg_try_advisory_lock($1)", &[&EXEC_LOCK_KEY])
                .await
                .map(|r| r.get(0))
                .map_err(|e| db_err(e).to_string())
        })
    }

    fn unlock(&self) -> BoxFuture<'static, ()> {
        let c = self.client.clone();
        Box::pin(async move {
            if let Err(e) = c
                .query_one("SELECT pg_advisory_unlock($1)", &[&EXEC_LOCK_KEY])
                .await
            {
                tracing::error!(error = %db_err(e), "releasing the cluster exec lock failed");
            }
        })
    }
}
