//! The claimer: turns this node's worker demand into claims, renews them, publishes the
//! node's workers, and applies what other nodes announce (new jobs, results, removals,
//! settings).
//!
//! Local demand is checked often (in-process, no database traffic); the database is asked
//! only when demand meets news, a due timer or the slow poll. With nothing to do, a node
//! only polls: no database traffic scales with idle time beyond that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_postgres::{Client, Notification, Statement};

use super::broadcast;
use super::{
    connect, db_err, deliver, now_ms, sql, ClusterConfig, ClusterError, Shared, CONFIG_CHANNEL,
    FORGET_CHANNEL, JOBS_CHANNEL, JOB_DATA_CHANNEL, LIMITS_CHANNEL, LOAD_JOBS_CHANNEL,
    LOCKS_CHANNEL, PAUSE_CHANNEL, RESULTS_CHANNEL, SCHEDULES_CHANNEL, WATCH_CHANNEL,
};
use crate::scheduler::actor::NodeHandle;
use crate::scheduler::error::Error;
use crate::scheduler::limits::TaskLimits;

/// Claims per query at most.
const MAX_CLAIM: u64 = 1_000;

/// The workers this node last published.
type Published = crate::scheduler::core::LocalWorkers;

/// The claimer's session with its statements prepared.
struct Session {
    client: Client,
    claim: Statement,
    next_due: Statement,
    renew: Statement,
    publish: Statement,
}

impl Session {
    async fn open(url: &str) -> Result<Session, ClusterError> {
        let (client, _) = connect(url).await?;
        // Prepared once: an unprepared query costs the database an extra round trip (and an
        // extra transaction in its statistics) every time.
        Ok(Session {
            claim: client.prepare(sql::CLAIM).await?,
            next_due: client.prepare(sql::NEXT_DUE).await?,
            renew: client.prepare(sql::RENEW).await?,
            publish: client.prepare(sql::PUBLISH_WORKERS).await?,
            client,
        })
    }
}

/// Opens the session that LISTENs for the cluster's notifications.
async fn listen(
    url: &str,
) -> Result<(Client, mpsc::UnboundedReceiver<Notification>), ClusterError> {
    let (listener, notes) = connect(url).await?;
    listener
        .batch_execute(&format!(
            "LISTEN {JOBS_CHANNEL}; LISTEN {RESULTS_CHANNEL}; LISTEN {FORGET_CHANNEL}; \
             LISTEN {CONFIG_CHANNEL}; LISTEN {LOAD_JOBS_CHANNEL}; LISTEN {PAUSE_CHANNEL}; \
             LISTEN {SCHEDULES_CHANNEL}; LISTEN {WATCH_CHANNEL}; LISTEN {JOB_DATA_CHANNEL}; \
             LISTEN {LOCKS_CHANNEL}; LISTEN {LIMITS_CHANNEL}; LISTEN {}; LISTEN {}",
            broadcast::ASK_CHANNEL,
            broadcast::ANSWER_CHANNEL
        ))
        .await?;
    Ok((listener, notes))
}

struct Claimer {
    shared: Arc<Shared>,
    url: String,
    s: Session,
    listener: Client,
    node: NodeHandle,
    poll: Duration,
    /// Tasks found without claimable work, with the time their next known job is due.
    drained: HashMap<String, Option<i64>>,
    published: Option<Published>,
    /// When the last successful renewal was sent (or no claim was held): every claim this
    /// node holds lasts at least a claim TTL from then, by the database's clock.
    renewed: Instant,
    /// Past this long without a renewal the node gives its claims up (self-fencing).
    fence_after: Duration,
    /// Longest wait for one statement: a session that stalls (a network that drops
    /// packets rather than connections) is replaced, and never holds up self-fencing.
    io_limit: Duration,
    /// The session stalled: open a new one.
    broken: bool,
    /// Tasks with flow-control limits: their claims go through `limits::claim`.
    limits: HashMap<String, TaskLimits>,
}

/// Connects the claimer's sessions and starts it.
pub(super) async fn spawn(
    shared: Arc<Shared>,
    url: &str,
    cfg: &ClusterConfig,
    node: NodeHandle,
) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let (listener, notes) = listen(url).await?;
    // Listening first, so no watch announced after this read is missed.
    let elsewhere = super::watch::load_elsewhere(&listener, &shared.node).await?;
    shared.watches.set_elsewhere(elsewhere);
    // The store was read at start-up before this node listened: what changed in between
    // was announced to no one here. Read again now that announcements arrive: every saved
    // load job's name goes to the runner (it re-reads each), and the limits below.
    let names = listener
        .query(sql::LOAD_JOB_NAMES, &[])
        .await
        .map_err(ClusterError::from)?;
    for r in names {
        let _ = shared.load_jobs.send(r.get(0));
    }
    let ttl = Duration::from_millis(shared.ttl_ms as u64);
    let mut claimer = Claimer {
        s: Session::open(url).await?,
        url: url.to_string(),
        shared,
        listener,
        node,
        poll: cfg.poll_interval,
        drained: HashMap::new(),
        published: None,
        renewed: Instant::now(),
        fence_after: fence_after(ttl),
        io_limit: (ttl / 6).max(Duration::from_millis(50)),
        broken: false,
        limits: HashMap::new(),
    };
    // Into the claims and this node's core (which read them before listening).
    claimer.reload_limits().await;
    Ok(tokio::spawn(claimer.run(notes)))
}

/// How long a node may go without renewing before it gives its claims up: a third of the
/// TTL before they can expire. That third covers the workers' stop (the cancel reaches
/// them at once over their streams) and clock-rate drift between this node and the
/// database (a claim lasts a TTL by the database's clock from the renewal, which this node
/// times from before it sent the renewal).
pub(super) fn fence_after(ttl: Duration) -> Duration {
    ttl * 2 / 3
}

impl Claimer {
    async fn run(mut self, mut notes: mpsc::UnboundedReceiver<Notification>) {
        let mut last_poll = Instant::now();
        let mut last_renew = Instant::now();
        let renew_every = Duration::from_millis((self.shared.ttl_ms / 3).max(1) as u64);
        let mut listening = true;
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(5));
            tokio::select! {
                n = notes.recv(), if listening => match n {
                    Some(n) => self.note(n).await,
                    None => {
                        tracing::error!("cluster notifications stopped; claiming by poll until the session is back");
                        listening = false;
                    }
                },
                _ = tick => {}
            }
            while let Ok(n) = notes.try_recv() {
                self.note(n).await;
            }
            if self.renewed.elapsed() >= self.fence_after {
                self.give_up();
            }
            if !listening || self.broken || self.s.client.is_closed() {
                // Cut off (or the database restarted): try again at the poll's pace, and
                // look at every task afresh once back, since notifications were missed.
                if last_poll.elapsed() < Duration::from_millis(200) {
                    continue;
                }
                last_poll = Instant::now();
                if !listening {
                    if let Ok(Ok((l, n))) = timeout(self.io_limit, listen(&self.url)).await {
                        (self.listener, notes, listening) = (l, n, true);
                        self.drained.clear();
                        if let Ok(keys) =
                            super::watch::load_elsewhere(&self.listener, &self.shared.node).await
                        {
                            self.shared.watches.set_elsewhere(keys);
                        }
                        // Schedule and limit changes announced meanwhile were missed too.
                        self.shared.schedule_news.notify_one();
                        self.reload_limits().await;
                    }
                }
                if self.broken || self.s.client.is_closed() {
                    match timeout(self.io_limit, Session::open(&self.url)).await {
                        Ok(Ok(s)) => {
                            self.s = s;
                            self.broken = false;
                            self.published = None;
                            self.drained.clear();
                            tracing::warn!("cluster: claimer reconnected to PostgreSQL");
                        }
                        _ => continue,
                    }
                }
            }
            match timeout(self.io_limit, self.publish_workers()).await {
                Ok(Err(_)) => return, // the scheduler stopped
                Ok(Ok(())) => {}
                Err(_) => {
                    self.stalled();
                    continue;
                }
            }
            if last_renew.elapsed() >= renew_every {
                last_renew = Instant::now();
                if timeout(self.io_limit, self.renew()).await.is_err() {
                    self.stalled();
                    continue;
                }
                self.node.release_unserved();
                let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                    [&self.shared.node, &self.shared.ttl_ms];
                let seen = self.s.client.query(sql::NODE_SEEN, &args);
                match timeout(self.io_limit, seen).await {
                    // Broadcast parts owed by nodes that left count as failed (core/parts.rs).
                    Ok(Ok(rows)) => self
                        .node
                        .nodes_live(rows.iter().map(|r| r.get(0)).collect()),
                    Ok(Err(e)) => tracing::warn!(error = %db_err(e), "node heartbeat failed"),
                    Err(_) => {
                        self.stalled();
                        continue;
                    }
                }
            }
            if last_poll.elapsed() >= self.poll {
                last_poll = Instant::now();
                self.drained.clear();
            }
            let now = now_ms();
            self.drained
                .retain(|_, next| !next.is_some_and(|t| t <= now));
            let Ok(idle) = self.node.idle_slots().await else {
                return; // the scheduler stopped
            };
            for (task, want) in idle {
                if self.drained.contains_key(&task) {
                    continue;
                }
                match timeout(self.io_limit, self.claim(&task, want)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(task, error = %e, "claim failed");
                        self.drained.insert(task, None);
                    }
                    Err(_) => {
                        self.stalled();
                        break;
                    }
                }
            }
        }
    }

    async fn note(&mut self, n: Notification) {
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
                    let _ = timeout(self.io_limit, deliver(&self.shared, id)).await;
                }
            }
            FORGET_CHANNEL => {
                // "node id": a job this node holds was removed or replaced in the database.
                let mut parts = n.payload().rsplitn(2, ' ');
                let id: Option<u64> = parts.next().and_then(|a| a.parse().ok());
                if let (Some(id), Some(node)) = (id, parts.next()) {
                    if node == self.shared.node {
                        self.shared.versions.lock().expect("poisoned").remove(&id);
                        self.node.forget(vec![id]);
                    }
                }
            }
            SCHEDULES_CHANNEL => self.shared.schedule_news.notify_one(),
            WATCH_CHANNEL => self.shared.watches.noticed(&self.shared.node, n.payload()),
            LOCKS_CHANNEL => super::locks::granted(&self.shared.node, n.payload(), &self.node),
            broadcast::ASK_CHANNEL => {
                let asked = broadcast::asked(&self.shared, &self.node, n.payload());
                let _ = timeout(self.io_limit, asked).await;
            }
            broadcast::ANSWER_CHANNEL => broadcast::answered(&self.shared, &self.node, n.payload()),
            JOB_DATA_CHANNEL => {
                let me = &self.shared.node;
                if let Some(((task, name), event)) = self.shared.watches.piece(me, n.payload()) {
                    if matches!(event, crate::scheduler::actor::JobEvent::Finished(_)) {
                        super::watch::end(self.shared.clone(), (task.clone(), name.clone()));
                    }
                    self.node.watch_event(task, name, event);
                }
            }
            LOAD_JOBS_CHANNEL => {
                let _ = self.shared.load_jobs.send(n.payload().to_string());
            }
            LIMITS_CHANNEL => {
                // "LIMITS\nTASK", as stored by the node that announced them.
                let Some((text, task)) = n.payload().split_once('\n') else {
                    return;
                };
                match TaskLimits::from_stored(text) {
                    Ok(l) => self.set_limits(task.to_string(), l).await,
                    Err(e) => {
                        tracing::warn!(task, error = %e, "limits announced by another node unreadable")
                    }
                }
            }
            PAUSE_CHANNEL => {
                // "1 task" (paused) or "0 task" (resumed), stored by the node that announced it.
                if let Some((flag, task)) = n.payload().split_once(' ') {
                    let paused = flag == "1";
                    if let Err(e) = self.node.apply_task_paused(task.to_string(), paused).await {
                        tracing::warn!(task, paused, error = %e, "pause announced by another node not applied");
                    }
                }
            }
            CONFIG_CHANNEL => {
                let mut parts = n.payload().rsplitn(2, ' ');
                let value: Option<i64> = parts.next().and_then(|a| a.parse().ok());
                if let (Some(value), Some(key)) = (value, parts.next()) {
                    if let Err(e) = self.node.apply_config(key.to_string(), value).await {
                        tracing::warn!(key, value, error = %e, "setting announced by another node not applied");
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies a task's limits to the claims and to this node's core.
    async fn set_limits(&mut self, task: String, l: TaskLimits) {
        if l.is_none() {
            self.limits.remove(&task);
        } else {
            self.limits.insert(task.clone(), l);
        }
        self.drained.remove(&task);
        if let Err(e) = self.node.apply_task_limits(task.clone(), l).await {
            tracing::warn!(task, error = %e, "limits announced by another node not applied");
        }
    }

    /// Reads every task's limits afresh (after notifications may have been missed) and
    /// applies the changes.
    async fn reload_limits(&mut self) {
        let stored = match super::limits::load_all(&self.listener).await {
            Ok(v) => v,
            Err(e) => return tracing::warn!(error = %e, "task limits not reloaded"),
        };
        let mut gone: Vec<String> = self.limits.keys().cloned().collect();
        for (task, l) in stored {
            gone.retain(|t| *t != task);
            if self.limits.get(&task) != Some(&l) {
                self.set_limits(task, l).await;
            }
        }
        for task in gone {
            self.set_limits(task, TaskLimits::default()).await;
        }
    }

    /// Publishes this node's workers when they changed (one statement).
    async fn publish_workers(&mut self) -> Result<(), Error> {
        let now = self.node.local_workers().await?;
        if self.published.as_ref() == Some(&now) {
            return Ok(());
        }
        let tasks: Vec<&str> = now.0.iter().map(|(t, _, _)| t.as_str()).collect();
        let counts: Vec<i32> = now.0.iter().map(|(_, n, _)| *n as i32).collect();
        let broadcast: Vec<bool> = now.0.iter().map(|(_, _, b)| *b).collect();
        let total = now.1 as i32;
        match self
            .s
            .client
            .execute(
                &self.s.publish,
                &[&self.shared.node, &tasks, &counts, &broadcast, &total],
            )
            .await
        {
            Ok(_) => self.published = Some(now),
            Err(e) => tracing::warn!(error = %db_err(e), "publishing this node's workers failed"),
        }
        Ok(())
    }

    async fn claim(&mut self, task: &str, want: u64) -> Result<(), Error> {
        let limited = self.limits.contains_key(task);
        // A limited task takes no more than its workers want now: a claimed job counts
        // against the limit until it is done.
        let limit = if limited {
            want.clamp(1, MAX_CLAIM)
        } else {
            (want * 2).clamp(1, MAX_CLAIM)
        } as i64;
        let mut held_back = None;
        let rows = if limited {
            let c = super::limits::claim(
                &mut self.s.client,
                &self.shared.node,
                self.shared.ttl_ms,
                task,
                now_ms(),
                limit,
            )
            .await?;
            held_back = c.retry_in_ms;
            c.rows
        } else {
            self.s
                .client
                .query(
                    &self.s.claim,
                    &[
                        &self.shared.node,
                        &self.shared.ttl_ms,
                        &task,
                        &now_ms(),
                        &limit,
                    ],
                )
                .await
                .map_err(db_err)?
        };
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
                if row.get::<_, bool>(16) {
                    self.shared.watches.watched_elsewhere(&r.task, &r.name);
                }
                records.push(r);
            }
        }
        if !records.is_empty() {
            if self.serves_broadcast(task) {
                // Before the jobs reach the core: it asks these nodes for parts as it leases them.
                let nodes: Vec<String> = self
                    .s
                    .client
                    .query(
                        sql::BROADCAST_NODES,
                        &[&self.shared.node, &task, &self.shared.ttl_ms],
                    )
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                self.node.set_remote_broadcast(task.to_string(), nodes);
            }
            self.node.adopt(records);
        }
        if let Some(ms) = held_back {
            // A limit, not a lack of work, held the claim back: look again when it may allow.
            self.drained.insert(task.to_string(), Some(now_ms() + ms));
        } else if got < limit {
            // Nothing more is due now: wait for news, the next known due time, or the poll.
            let next: Option<i64> = self
                .s
                .client
                .query_one(&self.s.next_due, &[&task])
                .await
                .map_err(db_err)?
                .get(0);
            // Due rows another node is claiming right now: look again shortly.
            let next = next.map(|t| t.max(now_ms() + 50));
            self.drained.insert(task.to_string(), next);
        }
        Ok(())
    }

    /// Whether this node's workers take `task` as broadcast (as last published).
    fn serves_broadcast(&self, task: &str) -> bool {
        self.published
            .as_ref()
            .is_some_and(|p| p.0.iter().any(|(t, _, b)| *b && t == task))
    }

    fn stalled(&mut self) {
        tracing::warn!(
            limit_ms = self.io_limit.as_millis() as u64,
            "cluster database did not answer in time; reopening the session"
        );
        self.broken = true;
    }

    /// Self-fencing: this node could not renew its claims for too long (cut off from the
    /// database), so before they can expire and another node runs the jobs, it drops every
    /// claim from its core: their workers are told to stop (CancelJob) and later reports are
    /// refused. RunJob callers elsewhere keep waiting: the job runs again on some node.
    fn give_up(&mut self) {
        let ids: Vec<u64> = {
            let mut v = self.shared.versions.lock().expect("poisoned");
            let ids = v.keys().copied().collect();
            v.clear();
            ids
        };
        self.renewed = Instant::now();
        if ids.is_empty() {
            return;
        }
        {
            let mut waited = self.shared.waited.lock().expect("poisoned");
            for id in &ids {
                waited.remove(id);
            }
        }
        tracing::error!(
            jobs = ids.len(),
            after_ms = self.fence_after.as_millis() as u64,
            "cannot renew claims: giving them up before they expire (workers told to stop)"
        );
        self.node.forget(ids);
    }

    /// Extends this node's claims; the ones that are no longer ours are dropped from the core.
    async fn renew(&mut self) {
        let ids: Vec<i64> = {
            let v = self.shared.versions.lock().expect("poisoned");
            v.keys().map(|&id| id as i64).collect()
        };
        if ids.is_empty() {
            self.renewed = Instant::now();
            return;
        }
        let sent = Instant::now();
        let rows = match self
            .s
            .client
            .query(
                &self.s.renew,
                &[&self.shared.node, &self.shared.ttl_ms, &ids],
            )
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %db_err(e), "claim renewal failed");
                return;
            }
        };
        // Claims taken after `sent` were taken later still: timing from here is safe.
        self.renewed = sent;
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
            self.node.forget(lost);
        }
    }
}
