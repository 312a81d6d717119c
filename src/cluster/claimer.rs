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
use tokio_postgres::{Client, Notification, Statement};

use super::{
    connect, db_err, deliver, now_ms, sql, ClusterConfig, ClusterError, Shared, CONFIG_CHANNEL,
    FORGET_CHANNEL, JOBS_CHANNEL, RESULTS_CHANNEL,
};
use crate::scheduler::actor::NodeHandle;
use crate::scheduler::error::Error;

/// Claims per query at most.
const MAX_CLAIM: u64 = 1_000;

/// The workers this node last published.
type Published = crate::scheduler::core::LocalWorkers;

struct Claimer {
    shared: Arc<Shared>,
    client: Client,
    claim: Statement,
    next_due: Statement,
    renew: Statement,
    publish: Statement,
    _listener: Client,
    node: NodeHandle,
    poll: Duration,
    /// Tasks found without claimable work, with the time their next known job is due.
    drained: HashMap<String, Option<i64>>,
    published: Option<Published>,
    /// When the claims were last renewed (or none were held).
    renewed: Instant,
}

/// Connects the claimer's sessions and starts it.
pub(super) async fn spawn(
    shared: Arc<Shared>,
    url: &str,
    cfg: &ClusterConfig,
    node: NodeHandle,
) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let (listener, notes) = connect(url).await?;
    listener
        .batch_execute(&format!(
            "LISTEN {JOBS_CHANNEL}; LISTEN {RESULTS_CHANNEL}; LISTEN {FORGET_CHANNEL}; LISTEN {CONFIG_CHANNEL}"
        ))
        .await?;
    let (client, _) = connect(url).await?;
    // Prepared once: an unprepared query costs the database an extra round trip (and an
    // extra transaction in its statistics) every time.
    let claimer = Claimer {
        claim: client.prepare(sql::CLAIM).await?,
        next_due: client.prepare(sql::NEXT_DUE).await?,
        renew: client.prepare(sql::RENEW).await?,
        publish: client.prepare(sql::PUBLISH_WORKERS).await?,
        shared,
        client,
        _listener: listener,
        node,
        poll: cfg.poll_interval,
        drained: HashMap::new(),
        published: None,
        renewed: Instant::now(),
    };
    Ok(tokio::spawn(claimer.run(notes)))
}

impl Claimer {
    async fn run(mut self, mut notes: mpsc::UnboundedReceiver<Notification>) {
        let mut last_poll = Instant::now();
        let mut last_renew = Instant::now();
        let renew_every = Duration::from_millis((self.shared.ttl_ms / 3).max(1) as u64);
        loop {
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
            if self.publish_workers().await.is_err() {
                return; // the scheduler stopped
            }
            if last_renew.elapsed() >= renew_every {
                last_renew = Instant::now();
                self.renew().await;
                self.node.release_unserved();
                if let Err(e) = self
                    .client
                    .execute(sql::NODE_SEEN, &[&self.shared.node])
                    .await
                {
                    tracing::warn!(error = %db_err(e), "node heartbeat failed");
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
                if let Err(e) = self.claim(&task, want).await {
                    tracing::warn!(task, error = %e, "claim failed");
                    self.drained.insert(task, None);
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
                    deliver(&self.shared, id).await;
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
            .client
            .execute(
                &self.publish,
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
        let limit = (want * 2).clamp(1, MAX_CLAIM) as i64;
        let rows = self
            .client
            .query(
                &self.claim,
                &[
                    &self.shared.node,
                    &self.shared.ttl_ms,
                    &task,
                    &now_ms(),
                    &limit,
                ],
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
            self.node.adopt(records);
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
            self.renewed = Instant::now();
            return;
        }
        let rows = match self
            .client
            .query(&self.renew, &[&self.shared.node, &self.shared.ttl_ms, &ids])
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %db_err(e), "claim renewal failed");
                return;
            }
        };
        self.renewed = Instant::now();
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
