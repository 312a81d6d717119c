//! [`Backend`] for cluster mode: the client API answered by the shared database, so every
//! node answers for the whole cluster. What each call costs is in ARCHITECTURE.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::{db_err, deliver, now_ms, publish_result, sql, ClusterError, Live, Shared};
use crate::scheduler::actor::{JobEvent, NodeHandle};
use crate::scheduler::backend::{Backend, Fut, SubmittedEach};
use crate::scheduler::core::{SubmitReply, TaskStatus};
use crate::scheduler::durable::{Admitted, Backlog, Commit, Demand};
use crate::scheduler::error::Error;
use crate::scheduler::job::{
    JobId, JobKey, JobRecord, JobSpec, JobState, JobView, Millis, RetryPolicy,
};
use crate::scheduler::limits::TaskLimits;
use crate::scheduler::list::{Cursor, JobPage, ListQuery};
use crate::scheduler::local::LocalJobs;
use crate::scheduler::schedule::{Schedule, ScheduleSpec};
use crate::scheduler::settings::TimeoutSetting;
use crate::store::postgres::schedule_row;

/// A batch of SubmitStream jobs for the ordered submitter.
type Ordered = (
    Vec<JobSpec>,
    oneshot::Sender<Result<Vec<SubmitReply>, Error>>,
);

/// One unary submit waiting to share a statement with others.
type Single = (JobSpec, oneshot::Sender<Result<SubmitReply, Error>>);

/// Jobs per coalesced submit statement at most.
const MAX_COALESCED: usize = 1_000;

/// The cluster's client API. See the module docs.
#[derive(Clone)]
pub struct ClusterJobs {
    shared: Arc<Shared>,
    node: NodeHandle,
    local: LocalJobs,
    /// SubmitStream batches, applied one after another in the order they were queued.
    ordered: mpsc::UnboundedSender<Ordered>,
    /// Unary submits: concurrent ones share one statement (group submit), the way the
    /// store's writer shares one commit among concurrent writes.
    singles: mpsc::UnboundedSender<Single>,
    /// Submits admitted and not yet stored, as the writer's on one node: while the
    /// database is slow, submitters wait here instead of the queues above growing.
    backlog: Arc<Backlog>,
    /// What a job that sets no lease length is stored with while the database stores no
    /// `timeout` setting (see `sql::SUBMIT`).
    timeout: TimeoutSetting,
}

/// Takes every unary submit queued (up to [`MAX_COALESCED`]) and stores them with one
/// statement on its own session; several of these run at once, one per pooled session.
async fn coalesce(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Single>>>,
    timeout: TimeoutSetting,
) {
    loop {
        let mut batch: Vec<Single> = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(s) => batch.push(s),
                None => return,
            }
            while batch.len() < MAX_COALESCED {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
        }
        let (specs, replies): (Vec<JobSpec>, Vec<_>) = batch.into_iter().unzip();
        let r = match shared.conn().await {
            Ok(c) => submit_batch(&c.client, &c.submit, &specs, false, &timeout).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(answers) => {
                for (reply, a) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(a));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl ClusterJobs {
    pub(super) async fn start(
        shared: Arc<Shared>,
        url: &str,
        node: NodeHandle,
        (backlog_jobs, backlog_bytes): (usize, usize),
    ) -> Result<ClusterJobs, ClusterError> {
        let conn = super::Conn::open(url).await?;
        let timeout = node.timeout_setting();
        let (ordered, mut rx) = mpsc::unbounded_channel::<Ordered>();
        let ordered_timeout = timeout.clone();
        tokio::spawn(async move {
            // Every batch queued meanwhile joins one statement, in queue order (the
            // statement applies its rows in order), so a stream's commits are shared the
            // way the store's writer shares one among concurrent writes.
            while let Some(first) = rx.recv().await {
                let mut queued = vec![first];
                let mut jobs = queued[0].0.len();
                while jobs < MAX_COALESCED {
                    match rx.try_recv() {
                        Ok(b) => {
                            jobs += b.0.len();
                            queued.push(b);
                        }
                        Err(_) => break,
                    }
                }
                let specs: Vec<JobSpec> =
                    queued.iter().flat_map(|(s, _)| s.iter().cloned()).collect();
                let r = match conn.get().await {
                    Ok(c) => {
                        submit_batch(&c.client, &c.submit, &specs, false, &ordered_timeout).await
                    }
                    Err(e) => Err(e),
                };
                match r {
                    Ok(mut answers) => {
                        for (specs, reply) in queued.into_iter().rev() {
                            let mine = answers.split_off(answers.len() - specs.len());
                            let _ = reply.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in queued {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        let (singles, rx) = mpsc::unbounded_channel::<Single>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..super::API_CONNECTIONS {
            tokio::spawn(coalesce(shared.clone(), rx.clone(), timeout.clone()));
        }
        Ok(ClusterJobs {
            shared,
            local: node.local(),
            node,
            ordered,
            singles,
            backlog: Arc::new(Backlog::new(backlog_jobs, backlog_bytes)),
            timeout,
        })
    }

    /// Submits admitted and not yet stored.
    pub(crate) fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// Submits through a pooled connection; with `wait`, a receiver of the job's result.
    async fn submit_one(
        &self,
        spec: JobSpec,
        wait: bool,
    ) -> Result<(SubmitReply, Option<crate::scheduler::actor::ResultRx>), Error> {
        let c = self.shared.conn().await?;
        let one = std::slice::from_ref(&spec);
        let reply = submit_batch(&c.client, &c.submit, one, wait, &self.timeout)
            .await?
            .pop()
            .expect("one reply per job");
        if !wait {
            return Ok((reply, None));
        }
        if reply.running {
            return Err(Error::JobRunning {
                task: spec.task,
                name: spec.name,
            });
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

    /// A done job's kept outcome (`--keep-results`).
    async fn get_kept(&self, key: &JobKey) -> Result<JobView, Error> {
        let (id, task, name) = key_params(key);
        let row = self
            .shared
            .read_conn()
            .await?
            .client
            .query_opt(sql::GET_KEPT, &[&id, &task, &name, &now_ms()])
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(key))?;
        Ok(JobView {
            record: JobRecord {
                id: row.get::<_, i64>(0) as u64,
                task: row.get(1),
                name: row.get(2),
                attempts: row.get::<_, i64>(3) as u32,
                ..JobRecord::default()
            },
            state: JobState::Done,
            lease: None,
            result: Some(Bytes::from(row.get::<_, Vec<u8>>(4))),
            finished_at: Some(row.get(5)),
        })
    }

    async fn workers_anywhere(&self, task: &str) -> Result<bool, Error> {
        if self.local.has_worker(task.to_string()).await? {
            return Ok(true);
        }
        let row = self
            .shared
            .read_conn()
            .await?
            .client
            .query_one(sql::HAS_WORKER, &[&task, &self.shared.ttl_ms])
            .await
            .map_err(db_err)?;
        Ok(row.get(0))
    }
}

/// `$1` of the by-id-or-name statements.
fn key_params(key: &JobKey) -> (Option<i64>, String, String) {
    match key {
        JobKey::Id(id) => (Some(*id as i64), String::new(), String::new()),
        JobKey::Name { task, name } => (None, task.clone(), name.clone()),
    }
}

fn not_found(key: &JobKey) -> Error {
    match key {
        JobKey::Id(id) => Error::NotFound(format!("job {id} not found")),
        JobKey::Name { task, name } => Error::NotFound(format!("job {task}/{name} not found")),
    }
}

/// Inserts or replaces `specs` in order (one statement); a job whose row a live node holds
/// is answered `running` and left alone. Several specs with one (task, name) act in order:
/// the last one is stored, the later ones count as replacing. A job that sets no lease
/// length is stored with the `timeout` setting as committed, as a single node's core
/// stores the setting it holds.
async fn submit_batch(
    c: &Client,
    st: &tokio_postgres::Statement,
    specs: &[JobSpec],
    wait: bool,
    timeout: &TimeoutSetting,
) -> Result<Vec<SubmitReply>, Error> {
    // The last spec of each (task, name) is the one stored.
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, s) in specs.iter().enumerate() {
        last.insert((s.task.as_str(), s.name.as_str()), i);
    }
    let mut pending: Vec<usize> = (0..specs.len())
        .filter(|&i| last[&(specs[i].task.as_str(), specs[i].name.as_str())] == i)
        .collect();
    let mut got: HashMap<(String, String), SubmitReply> = HashMap::new();
    // A row taken (claimed) or gone between the two statements is tried again, and so is a
    // statement that lost a deadlock.
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        let mut a = SpecArrays::new(timeout);
        for &i in &pending {
            a.push(&specs[i], wait);
        }
        let rows = match c.query(st, &a.params()).await {
            Ok(rows) => rows,
            // A deadlock with another transaction on these names' rows (another node's
            // submit or write batch), which PostgreSQL ended by failing this statement:
            // nothing of it was stored, so it goes again rather than failing the caller.
            Err(e) if crate::store::postgres::lost_a_conflict(&e) => {
                tracing::warn!(jobs = pending.len(), error = %db_err(e), "cluster submit lost a conflict; trying it again");
                continue;
            }
            Err(e) => return Err(db_err(e)),
        };
        for r in rows {
            got.insert(
                (r.get(2), r.get(3)),
                SubmitReply {
                    id: r.get::<_, i64>(0) as u64,
                    replaced: r.get(1),
                    running: false,
                },
            );
        }
        let held: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| !got.contains_key(&(specs[i].task.clone(), specs[i].name.clone())))
            .collect();
        if held.is_empty() {
            pending.clear();
            break;
        }
        let tasks: Vec<&str> = held.iter().map(|&i| specs[i].task.as_str()).collect();
        let names: Vec<&str> = held.iter().map(|&i| specs[i].name.as_str()).collect();
        for r in c
            .query(sql::IDS_BY_NAME, &[&tasks, &names])
            .await
            .map_err(db_err)?
        {
            got.insert(
                (r.get(1), r.get(2)),
                SubmitReply {
                    id: r.get::<_, i64>(0) as u64,
                    replaced: false,
                    running: true,
                },
            );
        }
        pending = held
            .into_iter()
            .filter(|&i| !got.contains_key(&(specs[i].task.clone(), specs[i].name.clone())))
            .collect();
    }
    if let Some(&i) = pending.first() {
        return Err(Error::Store(format!(
            "job {}/{} changed under three submits in a row (claimed or deadlocked each time); try again",
            specs[i].task, specs[i].name
        )));
    }
    // Earlier specs of a repeated (task, name): the first is answered as the database did,
    // the later ones replaced it.
    let mut seen: HashMap<(&str, &str), bool> = HashMap::new();
    Ok(specs
        .iter()
        .map(|s| {
            let key = (s.task.as_str(), s.name.as_str());
            let mut r = got[&(s.task.clone(), s.name.clone())];
            if seen.insert(key, true).is_some() && !r.running {
                r.replaced = true;
            }
            r
        })
        .collect())
}

/// The submit statement's columns, one array each.
#[derive(Default)]
struct SpecArrays<'a> {
    task: Vec<&'a str>,
    name: Vec<&'a str>,
    args: Vec<&'a [u8]>,
    sched_at: Vec<i64>,
    timeout_ms: Vec<i64>,
    priority: Vec<i32>,
    max_attempts: Vec<i64>,
    backoff_base_ms: Vec<i64>,
    backoff_max_ms: Vec<i64>,
    wait: Vec<bool>,
    trace: Vec<Option<String>>,
    key: Vec<&'a str>,
    /// This node's `timeout` setting in ms (`$13`), for a database that stores none.
    setting_ms: i64,
}

impl<'a> SpecArrays<'a> {
    /// Empty arrays; a job that sets no lease length is stored with the `timeout` setting
    /// the database holds when the statement runs, else `timeouts`' (see `sql::SUBMIT`).
    fn new(timeouts: &TimeoutSetting) -> Self {
        SpecArrays {
            setting_ms: i64::from(timeouts.ms()),
            ..SpecArrays::default()
        }
    }

    /// Adds `s`.
    fn push(&mut self, s: &'a JobSpec, wait: bool) {
        let RetryPolicy {
            max_attempts,
            backoff_base_ms,
            backoff_max_ms,
        } = s.retry;
        self.task.push(&s.task);
        self.name.push(&s.name);
        self.args.push(&s.args);
        self.sched_at.push(s.sched_at);
        self.timeout_ms.push(s.timeout_ms as i64);
        self.priority.push(s.priority);
        self.max_attempts.push(max_attempts as i64);
        self.backoff_base_ms.push(backoff_base_ms as i64);
        self.backoff_max_ms.push(backoff_max_ms as i64);
        self.wait.push(wait);
        self.trace.push(s.trace.map(|t| t.to_string()));
        self.key.push(&s.key);
    }

    /// The arrays and the setting as the submit statement's parameters `$1`..`$13`.
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            &self.task,
            &self.name,
            &self.args,
            &self.sched_at,
            &self.timeout_ms,
            &self.priority,
            &self.max_attempts,
            &self.backoff_base_ms,
            &self.backoff_max_ms,
            &self.wait,
            &self.trace,
            &self.key,
            &self.setting_ms,
        ]
    }
}

/// ListJobs: one keyset query per state in listing order, each asking for one row more than
/// the page still needs, so the last page is known to be the last.
async fn list_jobs(shared: &Shared, q: &ListQuery) -> Result<JobPage, Error> {
    let live = shared.read_conn().await?;
    let c = &live.client;
    let now = now_ms();
    let mut jobs: Vec<JobView> = Vec::new();
    for state in q.states() {
        let after = q.after_in(state);
        let limit = (q.page_size + 1 - jobs.len()) as i64;
        let head: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&q.task, &q.name_prefix, &now, &limit];
        let rows = match state {
            // Not in the listing order (refused by `ListQuery::new`).
            JobState::Done => continue,
            JobState::Running | JobState::Dead => {
                let id = after.map_or(-1, |a| a.id as i64);
                let st = if state == JobState::Running {
                    sql::LIST_RUNNING
                } else {
                    sql::LIST_DEAD_PAGE
                };
                c.query(st, &[head[0], head[1], head[2], head[3], &id])
                    .await
            }
            JobState::Pending => {
                let (p, s, id) = after.map_or((i64::MIN, i64::MIN, -1), |a| {
                    (-(a.priority as i64), a.sched_at, a.id as i64)
                });
                let params = [head[0], head[1], head[2], head[3], &p, &s, &id];
                c.query(sql::LIST_PENDING, &params).await
            }
            JobState::Scheduled => {
                let (s, id) = after.map_or((i64::MIN, -1), |a| (a.sched_at, a.id as i64));
                let params = [head[0], head[1], head[2], head[3], &s, &id];
                c.query(sql::LIST_SCHEDULED, &params).await
            }
        }
        .map_err(db_err)?;
        jobs.extend(rows.iter().map(|r| JobView {
            record: record_of(r),
            state,
            lease: None,
            result: None,
            finished_at: None,
        }));
        if jobs.len() > q.page_size {
            jobs.truncate(q.page_size);
            let next = jobs.last().map(Cursor::of);
            return Ok(JobPage { jobs, next });
        }
    }
    Ok(JobPage { jobs, next: None })
}

/// Tells every node's schedule driver that a schedule changed (after the change committed).
async fn announce_schedule(live: &Live, name: &str) -> Result<(), Error> {
    live.client
        .execute(sql::ANNOUNCE_SCHEDULE, &[&name])
        .await
        .map_err(db_err)?;
    Ok(())
}

fn record_of(row: &tokio_postgres::Row) -> JobRecord {
    crate::store::postgres::job_record(row)
}

impl Backend for ClusterJobs {
    fn submit(&self, spec: JobSpec) -> Fut<SubmitReply> {
        let (singles, backlog) = (self.singles.clone(), self.backlog.clone());
        Box::pin(async move {
            let _admitted = backlog.admit(Demand::of([&spec])).await;
            let (tx, rx) = oneshot::channel();
            if singles.send((spec, tx)).is_err() {
                return Err(Error::ShuttingDown);
            }
            rx.await.map_err(|_| Error::ShuttingDown)?
        })
    }

    fn submit_many(&self, specs: Vec<JobSpec>) -> Fut<Vec<SubmitReply>> {
        let (shared, backlog) = (self.shared.clone(), self.backlog.clone());
        let timeout = self.timeout.clone();
        Box::pin(async move {
            let _admitted = backlog.admit(Demand::of(&specs)).await;
            let c = shared.conn().await?;
            submit_batch(&c.client, &c.submit, &specs, false, &timeout).await
        })
    }

    fn admit(&self, demand: Demand) -> BoxFuture<'static, Option<Admitted>> {
        let backlog = self.backlog.clone();
        Box::pin(async move { Some(backlog.admit(demand).await) })
    }

    fn submit_each(&self, specs: Vec<JobSpec>) -> BoxFuture<'static, SubmittedEach> {
        let (tx, rx) = oneshot::channel();
        let sent = self.ordered.send((specs, tx)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(Error::ShuttingDown);
            }
            let replies = rx.await.map_err(|_| Error::ShuttingDown)??;
            Ok((replies.into_iter().map(Ok).collect(), Commit::done()))
        })
    }

    fn run_job(&self, spec: JobSpec) -> Fut<(JobId, Bytes)> {
        let me = self.clone();
        Box::pin(async move {
            if !me.workers_anywhere(&spec.task).await? {
                return Err(Error::NoWorker { task: spec.task });
            }
            // Held until the submit is stored only: not while the job runs.
            let admitted = me.backlog.admit(Demand::of([&spec])).await;
            let (reply, rx) = me.submit_one(spec, true).await?;
            drop(admitted);
            match rx.ok_or(Error::ShuttingDown)?.await {
                Ok(Ok(result)) => Ok((reply.id, result)),
                Ok(Err(e)) => Err(Error::JobFailed(e)),
                Err(_) => Err(Error::ShuttingDown),
            }
        })
    }

    fn remove(&self, key: JobKey) -> Fut<JobId> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let (id, task, name) = key_params(&key);
            let row = shared
                .conn()
                .await?
                .client
                .query_opt(sql::REMOVE, &[&id, &task, &name])
                .await
                .map_err(db_err)?
                .ok_or_else(|| not_found(&key))?;
            let id = row.get::<_, i64>(0) as u64;
            let (held, wait): (bool, bool) = (row.get(1), row.get(2));
            if wait && !held {
                // Nobody holds it to tell the RunJob caller; the holder does so when there is one.
                publish_result(shared.clone(), id, Err("job removed".into()));
            }
            Ok(id)
        })
    }

    fn get(&self, key: JobKey) -> Fut<JobView> {
        let me = self.clone();
        Box::pin(async move {
            let (id, task, name) = key_params(&key);
            let row = me
                .shared
                .read_conn()
                .await?
                .client
                .query_opt(sql::GET, &[&id, &task, &name])
                .await
                .map_err(db_err)?;
            let Some(row) = row else {
                return me.get_kept(&key).await;
            };
            let record = record_of(&row);
            let (owner, claimed): (Option<String>, bool) = (row.get(14), row.get(15));
            if claimed && owner.as_deref() == Some(me.shared.node.as_str()) {
                // Ours: the core knows whether it is leased, and the lease.
                if let Some(v) = me.node.held(JobKey::Id(record.id)).await? {
                    return Ok(v);
                }
            }
            let state = if record.dead {
                JobState::Dead
            } else if claimed {
                JobState::Running
            } else if record.sched_at <= now_ms() {
                JobState::Pending
            } else {
                JobState::Scheduled
            };
            Ok(JobView {
                record,
                state,
                lease: None,
                result: None,
                finished_at: None,
            })
        })
    }

    fn drop_task(&self, task: String) -> Fut<u64> {
        let me = self.clone();
        Box::pin(async move {
            if me.workers_anywhere(&task).await? {
                return Err(Error::WorkersPresent {
                    task,
                    workers: None,
                });
            }
            let row = me
                .shared
                .conn()
                .await?
                .client
                .query_one(sql::DROP_TASK, &[&task])
                .await
                .map_err(db_err)?;
            let n = row.get::<_, i64>(0) as u64;
            if n == 0 {
                return Err(Error::NotFound(format!("task {task:?} not found")));
            }
            Ok(n)
        })
    }

    fn status(&self, task: Option<String>) -> Fut<(Vec<TaskStatus>, TaskStatus)> {
        let shared = self.shared.clone();
        let local = self.local.clone();
        Box::pin(async move {
            // Limits are kept equal on every node; this node's core also knows which of its
            // own claimed jobs a limit holds back (claims hold back the rest in the database).
            let (mine, _) = local.status(task.clone()).await?;
            let c = &shared.read_conn().await?.client;
            let rows = c
                .query(sql::STATUS, &[&now_ms(), &task, &shared.ttl_ms])
                .await
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(rows.len());
            let mut totals = TaskStatus::default();
            for r in rows {
                let s = TaskStatus {
                    task: r.get(0),
                    workers: r.get::<_, i64>(1) as u32,
                    pending: r.get::<_, i64>(2) as u64,
                    scheduled: r.get::<_, i64>(3) as u64,
                    running: r.get::<_, i64>(4) as u64,
                    dead: r.get::<_, i64>(5) as u64,
                    locked: 0,
                    broadcast: r.get(7),
                    paused: r.get(8),
                    next_sched_at: r.get(6),
                    limits: Default::default(),
                    waiting_on_limit: 0,
                };
                let s = match mine.iter().find(|m| m.task == s.task) {
                    Some(m) => TaskStatus {
                        limits: m.limits,
                        waiting_on_limit: s.limits_waiting(m),
                        ..s
                    },
                    None => s,
                };
                totals.add(&s);
                out.push(s);
            }
            if task.is_none() {
                // A worker serving several tasks is one worker.
                let row = c
                    .query_one(sql::TOTAL_WORKERS, &[&shared.ttl_ms])
                    .await
                    .map_err(db_err)?;
                totals.workers = row.get::<_, i64>(0) as u32;
            }
            Ok((out, totals))
        })
    }

    fn list_jobs(&self, query: ListQuery) -> Fut<JobPage> {
        let shared = self.shared.clone();
        Box::pin(async move { list_jobs(&shared, &query).await })
    }

    fn list_dead(&self, task: Option<String>, limit: usize) -> Fut<Vec<JobView>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let limit = limit.min(i64::MAX as usize) as i64;
            let rows = shared
                .read_conn()
                .await?
                .client
                .query(sql::LIST_DEAD, &[&task, &limit])
                .await
                .map_err(db_err)?;
            Ok(rows
                .iter()
                .map(|r| JobView {
                    record: record_of(r),
                    state: JobState::Dead,
                    lease: None,
                    result: None,
                    finished_at: None,
                })
                .collect())
        })
    }

    fn retry_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let row = shared
                .conn()
                .await?
                .client
                .query_one(sql::RETRY_DEAD, &[&task, &name, &now_ms()])
                .await
                .map_err(db_err)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn purge_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared
                .conn()
                .await?
                .client
                .execute(sql::PURGE_DEAD, &[&task, &name])
                .await
                .map_err(db_err)
        })
    }

    fn dump_page(&self, after: JobId, limit: usize) -> Fut<Vec<JobRecord>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let (after, limit) = (after as i64, limit.min(i64::MAX as usize) as i64);
            let rows = shared
                .read_conn()
                .await?
                .client
                .query(sql::DUMP_PAGE, &[&after, &limit])
                .await
                .map_err(db_err)?;
            Ok(rows.iter().map(record_of).collect())
        })
    }

    fn load(&self, r: JobRecord) -> Fut<()> {
        let (shared, backlog) = (self.shared.clone(), self.backlog.clone());
        // A dumped row without a lease length gets the setting as committed (`sql::LOAD`),
        // as a single node's load gives it the setting it holds.
        let setting_ms = i64::from(self.timeout.ms());
        Box::pin(async move {
            let demand = Demand {
                jobs: 1,
                bytes: r.args.len(),
            };
            let _admitted = backlog.admit(demand).await;
            shared
                .conn()
                .await?
                .client
                .query_one(
                    sql::LOAD,
                    &[
                        &r.task,
                        &r.name,
                        &&r.args[..],
                        &r.sched_at,
                        &(r.timeout_ms as i64),
                        &r.priority,
                        &(r.retry.max_attempts as i64),
                        &(r.retry.backoff_base_ms as i64),
                        &(r.retry.backoff_max_ms as i64),
                        &(r.attempts as i64),
                        &(r.run_count as i64),
                        &r.dead,
                        &r.last_error,
                        &setting_ms,
                    ],
                )
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn get_config(&self, key: String) -> Fut<BTreeMap<String, i64>> {
        // Every node holds the same values: a change is stored, then announced to all.
        self.local.get_config(key)
    }

    fn set_config(&self, key: String, value: i64) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            me.local.set_config(key.clone(), value).await?;
            me.shared
                .conn()
                .await?
                .client
                .execute(sql::ANNOUNCE_CONFIG, &[&key, &value.to_string()])
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn has_worker(&self, task: String) -> Fut<bool> {
        let me = self.clone();
        Box::pin(async move { me.workers_anywhere(&task).await })
    }

    fn pause_task(&self, task: String, paused: bool) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            // Stored through this node's writer (the shared database), then announced.
            me.local.pause_task(task.clone(), paused).await?;
            let flag = if paused { "1" } else { "0" };
            let c = me.shared.conn().await?;
            c.client
                .execute(sql::ANNOUNCE_PAUSE, &[&flag, &task])
                .await
                .map_err(db_err)?;
            if !paused {
                c.client
                    .execute(sql::WAKE_TASK, &[&task])
                    .await
                    .map_err(db_err)?;
            }
            Ok(())
        })
    }

    fn set_task_limits(&self, task: String, limits: TaskLimits) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            // Stored through this node's writer (the shared database; the bucket starts
            // full), then announced: every claimer and core reloads them.
            me.local.set_task_limits(task.clone(), limits).await?;
            let c = me.shared.conn().await?;
            c.client
                .execute(sql::ANNOUNCE_LIMITS, &[&limits.to_stored(), &task])
                .await
                .map_err(db_err)?;
            c.client
                .execute(sql::WAKE_TASK, &[&task])
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn get_task_limits(&self, task: String) -> Fut<TaskLimits> {
        // Kept equal on every node by the announcement.
        self.local.get_task_limits(task)
    }

    fn put_schedule(&self, spec: ScheduleSpec, now: Millis) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            let row = Schedule {
                spec,
                paused: false,
                last_tick: now,
                last_job: String::new(),
            }
            .row();
            let live = me.shared.conn().await?;
            live.client
                .execute(sql::PUT_SCHEDULE, &[&row.name, &row.spec, &row.last_tick])
                .await
                .map_err(db_err)?;
            announce_schedule(&live, &row.name).await
        })
    }

    fn list_schedules(&self) -> Fut<Vec<Schedule>> {
        let me = self.clone();
        Box::pin(async move {
            let rows = me
                .shared
                .read_conn()
                .await?
                .client
                .query(sql::LIST_SCHEDULES, &[])
                .await
                .map_err(db_err)?;
            Ok(rows
                .iter()
                .filter_map(|r| Schedule::from_row(schedule_row(r)))
                .collect())
        })
    }

    fn get_schedule(&self, name: String) -> Fut<Schedule> {
        let me = self.clone();
        Box::pin(async move {
            let row = me
                .shared
                .read_conn()
                .await?
                .client
                .query_opt(sql::GET_SCHEDULE, &[&name])
                .await
                .map_err(db_err)?;
            row.and_then(|r| Schedule::from_row(schedule_row(&r)))
                .ok_or_else(|| Error::NotFound(format!("schedule {name} not found")))
        })
    }

    fn pause_schedule(&self, name: String, paused: bool, now: Millis) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            let live = me.shared.conn().await?;
            let n = live
                .client
                .execute(sql::PAUSE_SCHEDULE, &[&name, &paused, &now])
                .await
                .map_err(db_err)?;
            if n == 0 {
                return Err(Error::NotFound(format!("schedule {name} not found")));
            }
            announce_schedule(&live, &name).await
        })
    }

    fn delete_schedule(&self, name: String) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            let live = me.shared.conn().await?;
            let n = live
                .client
                .execute(sql::DELETE_SCHEDULE, &[&name])
                .await
                .map_err(db_err)?;
            if n == 0 {
                return Err(Error::NotFound(format!("schedule {name} not found")));
            }
            announce_schedule(&live, &name).await
        })
    }

    fn acquire_lock(&self, lease: u64, name: String, count: u32) -> Fut<bool> {
        let me = self.clone();
        Box::pin(
            async move { super::locks::acquire(&me.shared, &me.node, lease, name, count).await },
        )
    }

    fn release_lock(&self, lease: u64, name: String) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move { super::locks::release(&me.shared, &me.node, lease, name).await })
    }

    /// Registers the watch cluster-wide; a job of that name already finished, whose outcome
    /// is kept and which no later submit replaced, is answered at once (as on one node).
    fn watch_started(&self, task: String, name: String) -> Fut<()> {
        let me = self.clone();
        Box::pin(async move {
            me.shared
                .watches
                .start(&me.shared, (task.clone(), name.clone()))
                .await?;
            let kept = me
                .shared
                .read_conn()
                .await?
                .client
                .query_opt(sql::KEPT_AND_GONE, &[&task, &name, &now_ms()])
                .await
                .map_err(db_err)?;
            if let Some(row) = kept {
                let result: Vec<u8> = row.get(0);
                me.node
                    .watch_event(task, name, JobEvent::Finished(Ok(Bytes::from(result))));
            }
            Ok(())
        })
    }

    fn fire_schedule(&self, name: String, last: Millis, jobs: Vec<JobSpec>) -> Fut<bool> {
        let me = self.clone();
        Box::pin(async move {
            let Some(newest) = jobs.iter().max_by_key(|j| j.sched_at) else {
                return Ok(false);
            };
            let (tick, job) = (newest.sched_at, newest.name.clone());
            let mut a = SpecArrays::new(&me.timeout);
            for j in &jobs {
                a.push(j, false);
            }
            let row = me
                .shared
                .conn()
                .await?
                .client
                .query_one(
                    sql::FIRE_SCHEDULE,
                    &[&a.params()[..], &[&name, &last, &tick, &job]].concat(),
                )
                .await
                .map_err(db_err)?;
            Ok(row.get::<_, i64>(0) == 1)
        })
    }
}
