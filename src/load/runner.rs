//! The load runner: saved jobs, the one execution slot, progress, archiving and webhooks.
//! Every face (gRPC now, HTTP later) calls this; none holds load state of its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::agents::{self as agents_mod, AgentLink, AgentPool, Share};
use super::catalog::{Catalog, TaskClass};
use super::dispatch::Dispatcher;
use super::engine::{self, Live, Plan};
use super::error::Error;
use super::exec_request::ExecOptions;
use super::fields;
use super::http::HttpClient;
use super::job::{parse_job, LoadJob, Rules};
use super::report::{format_time, ExecAgent, ExecSummary, JobExec, RunningExec, ServerStatus};
use super::stats::{ExecStats, Snapshot};
use super::LoadConfig;
use crate::metrics::Metrics;
use crate::scheduler::SchedulerHandle;
use crate::store::writer::Writer;
use crate::store::{Op, StoreReader};

/// How often an Exec stream gets a progress event.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often `report_progress` logs a line.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Default and largest page of ListExecs.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 10_000;

/// Where a run stands (an Exec stream's progress event).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Execution id.
    pub exec_id: String,
    /// Job name.
    pub name: String,
    /// Time since the start, µs.
    pub elapsed_usec: u64,
    /// Counters and percentiles so far.
    pub so_far: Snapshot,
    /// Tasks finished per second since the previous event.
    pub rps: f64,
    /// run_n × n_swarm (0 = no count limit).
    pub planned_n: u64,
    /// The job's time limit (with stages, their total).
    pub run_for_sec: u64,
}

/// What an Exec caller receives.
#[derive(Clone, Debug)]
pub enum ExecEvent {
    /// About once a second while the run goes on.
    Progress(Progress),
    /// Webhook mode: the run was started in the background.
    Enqueued {
        /// Execution id.
        exec_id: String,
    },
    /// The run is over and archived.
    Finished(Box<JobExec>),
}

struct Running {
    exec_id: String,
    name: String,
    t_start: String,
    live: Arc<Live>,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    last: Option<ExecSummary>,
    closed: bool,
}

struct Inner {
    cfg: LoadConfig,
    catalog: Catalog,
    http: HttpClient,
    sched: SchedulerHandle,
    writer: Writer,
    reader: Arc<dyn StoreReader>,
    jobs: Mutex<BTreeMap<String, LoadJob>>,
    // Serialises saves so the in-memory map and the store apply them in the same order.
    save_lock: tokio::sync::Mutex<()>,
    slot: Mutex<Slot>,
    busy: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    exec_lock: Option<Arc<dyn ExecLock>>,
    agents: AgentPool,
}

/// A lock held by the node running an execution, so the rule "one execution at a time"
/// holds across nodes (cluster mode: a PostgreSQL advisory lock).
pub trait ExecLock: Send + Sync + 'static {
    /// Takes the lock if free; false when another node holds it.
    fn try_lock(&self) -> futures_util::future::BoxFuture<'static, Result<bool, String>>;
    /// Gives back one successful `try_lock`.
    fn unlock(&self) -> futures_util::future::BoxFuture<'static, ()>;
}

/// Cheap, cloneable handle to the load runner.
#[derive(Clone)]
pub struct LoadRunner {
    inner: Arc<Inner>,
}

/// What the runner is built from at start-up.
pub struct Parts {
    /// Settings.
    pub cfg: LoadConfig,
    /// Built-in classes.
    pub catalog: Catalog,
    /// The scheduler (remote classes).
    pub sched: SchedulerHandle,
    /// The store's writer (saves and archive).
    pub writer: Writer,
    /// The store's reader (archive look-ups).
    pub reader: Box<dyn StoreReader>,
    /// Saved jobs read from the store: `(name, json)`.
    pub stored_jobs: Vec<(String, String)>,
    /// Where executions report their samples (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Cluster mode: the lock that makes one execution at a time cluster-wide.
    pub exec_lock: Option<Arc<dyn ExecLock>>,
    /// What https:// targets and webhooks are checked against.
    pub trust: super::tls::Trust,
}

impl LoadRunner {
    /// A runner with the jobs the store holds.
    pub fn new(p: Parts) -> Self {
        let mut jobs = BTreeMap::new();
        for (name, json) in p.stored_jobs {
            match serde_json::from_str::<LoadJob>(&json) {
                Ok(job) => {
                    jobs.insert(name, job);
                }
                Err(e) => {
                    tracing::error!(job = %name, error = %e, "stored load job unreadable; skipped")
                }
            }
        }
        let http = HttpClient::with_trust(Arc::new(p.cfg.allow.clone()), p.trust);
        LoadRunner {
            inner: Arc::new(Inner {
                cfg: p.cfg,
                catalog: p.catalog,
                http,
                sched: p.sched,
                writer: p.writer,
                reader: Arc::from(p.reader),
                jobs: Mutex::new(jobs),
                save_lock: tokio::sync::Mutex::new(()),
                slot: Mutex::new(Slot::default()),
                busy: watch::channel(false).0,
                metrics: p.metrics,
                exec_lock: p.exec_lock,
                agents: AgentPool::default(),
            }),
        }
    }

    /// Saves (or replaces) a job given as JSON text; returns it with defaults filled in.
    pub(crate) async fn save_json(&self, text: &str) -> Result<LoadJob, Error> {
        self.save(&fields::parse("job", text)?).await
    }

    /// Saves (or replaces) a job given as a JSON value, once committed.
    pub async fn save(&self, v: &Value) -> Result<LoadJob, Error> {
        let i = &self.inner;
        let known = i.catalog.classes(&i.sched).await?;
        let is_http = |c: &str| i.catalog.is_http(c);
        let job = parse_job(
            v,
            &Rules {
                known: &known,
                is_http: &is_http,
                max_swarms: i.cfg.max_swarms,
            },
        )?;
        self.check_targets(&job).await?;
        let _order = i.save_lock.lock().await;
        i.writer
            .write(vec![Op::SaveLoadJob {
                name: job.name.clone(),
                json: job.to_json(),
            }])
            .wait()
            .await?;
        i.jobs
            .lock()
            .expect("poisoned")
            .insert(job.name.clone(), job.clone());
        tracing::info!(job = %job.name, "load job saved");
        Ok(job)
    }

    /// Refuses a job whose built-in HTTP tasks aim outside the load-target allow-list.
    async fn check_targets(&self, job: &LoadJob) -> Result<(), Error> {
        let i = &self.inner;
        for (n, t) in job.tasks.iter().enumerate() {
            if !i.catalog.is_http(&t.task_class) {
                continue;
            }
            i.cfg.allow.check(&t.host).await.map_err(|why| {
                Error::PermissionDenied(format!(
                    "tasks[{n}] ({}): host {}: {why}",
                    t.task_class, t.host
                ))
            })?;
        }
        Ok(())
    }

    /// Cluster mode: takes in the jobs other nodes save (`news` names each saved job once
    /// committed), read back from the store, so every node lists and runs the same jobs.
    pub(crate) fn follow(&self, mut news: tokio::sync::broadcast::Receiver<String>) {
        let i = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let name = match news.recv().await {
                    Ok(n) => n,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "load job announcements missed");
                        continue;
                    }
                    Err(_) => return,
                };
                let reader = i.reader.clone();
                let n = name.clone();
                let got = tokio::task::spawn_blocking(move || reader.get_load_job(&n)).await;
                let json = match got {
                    Ok(Ok(Some(json))) => json,
                    Ok(Ok(None)) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(job = %name, error = %e, "saved load job unreadable");
                        continue;
                    }
                    Err(_) => return,
                };
                match serde_json::from_str::<LoadJob>(&json) {
                    Ok(job) => {
                        // Saves on this node change the map themselves, in commit order.
                        let _order = i.save_lock.lock().await;
                        i.jobs.lock().expect("poisoned").insert(name, job);
                    }
                    Err(e) => tracing::error!(job = %name, error = %e, "saved load job unreadable"),
                }
            }
        });
    }

    /// The load agents connected to this server.
    pub fn agents(&self) -> &AgentPool {
        &self.inner.agents
    }

    /// Every saved job, by name.
    pub fn jobs(&self) -> Vec<LoadJob> {
        self.inner
            .jobs
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Task classes usable now.
    pub async fn tasks(&self) -> Result<Vec<String>, Error> {
        self.inner.catalog.classes(&self.inner.sched).await
    }

    /// Idle or running, and the last finished execution.
    pub fn status(&self) -> ServerStatus {
        let slot = self.inner.slot.lock().expect("poisoned");
        let running = slot.running.as_ref().map(|r| {
            let s = r.live.snapshot();
            RunningExec {
                exec_id: r.exec_id.clone(),
                name: r.name.clone(),
                t_start: r.t_start.clone(),
                elapsed_usec: r.live.elapsed().as_micros() as u64,
                n_task: s.n_task,
                n_success: s.n_success,
                n_fail: s.n_fail,
            }
        });
        ServerStatus {
            state: if running.is_some() { "running" } else { "idle" }.into(),
            running,
            last_exec: slot.last.clone(),
        }
    }

    /// Starts an execution. Refused before anything runs when the job is unknown, a param
    /// an HTTP task uses is missing, a remote class has no worker, or another run is going.
    pub async fn exec(&self, opts: ExecOptions) -> Result<mpsc::Receiver<ExecEvent>, Error> {
        let i = &self.inner;
        let job = i
            .jobs
            .lock()
            .expect("poisoned")
            .get(&opts.name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("load job {:?} not found", opts.name)))?;
        let classes: Vec<TaskClass> = job
            .tasks
            .iter()
            .map(|t| i.catalog.resolve(&t.task_class))
            .collect();
        for (t, class) in job.tasks.iter().zip(&classes) {
            if let TaskClass::Http(def) = class {
                if let Some(p) = def.params().find(|p| !opts.params.contains_key(*p)) {
                    return Err(Error::invalid(
                        "params",
                        format!(
                            "task {} uses {{{{{p}}}}}, which params does not set",
                            t.task_class
                        ),
                    ));
                }
            }
        }
        // Checked again at exec: the list or the names' addresses may have changed since the save.
        self.check_targets(&job).await?;
        if let Some(url) = &opts.webhook_url {
            i.cfg
                .allow
                .check(&url.to_string())
                .await
                .map_err(|why| Error::PermissionDenied(format!("webhook_url {url}: {why}")))?;
        }
        if classes.iter().any(|c| matches!(c, TaskClass::Remote(_))) {
            let remote = i.catalog.remote(&i.sched).await?;
            for (n, class) in classes.iter().enumerate() {
                if let TaskClass::Remote(name) = class {
                    if !remote.contains(name) {
                        return Err(Error::NoWorker {
                            field: Some(format!("tasks[{n}].task_class")),
                            task: name.clone(),
                        });
                    }
                }
            }
        }

        let exec_id = uuid::Uuid::new_v4().to_string();
        let on_agents = match opts.agents {
            None => None,
            Some(asked) => Some(self.shares(asked, &job, &classes, &opts, &exec_id)?),
        };
        let t0 = Utc::now();
        let class_names: Vec<&str> = job.tasks.iter().map(|t| t.task_class.as_str()).collect();
        let live = Arc::new(
            Live::new(
                exec_id.clone(),
                ExecStats::new(job.tasks.len(), i.cfg.max_executions),
                opts.max_failure_count,
                opts.report_failures,
            )
            .with_metrics(i.metrics.load_exec(&class_names)),
        );
        // Cluster-wide first (it may wait on the database), then this node's slot.
        if let Some(l) = &i.exec_lock {
            let free = l
                .try_lock()
                .await
                .map_err(|e| Error::FailedPrecondition(format!("cluster exec lock: {e}")))?;
            if !free {
                return Err(Error::Busy { running: None });
            }
        }
        let refused = {
            let mut slot = i.slot.lock().expect("poisoned");
            let refused = if slot.closed {
                Some(Error::ShuttingDown)
            } else {
                slot.running.as_ref().map(|r| Error::Busy {
                    running: Some(super::error::ExecRef {
                        exec_id: r.exec_id.clone(),
                        name: r.name.clone(),
                    }),
                })
            };
            if refused.is_none() {
                slot.running = Some(Running {
                    exec_id: exec_id.clone(),
                    name: job.name.clone(),
                    t_start: format_time(t0),
                    live: live.clone(),
                });
                i.busy.send_replace(true);
            }
            refused
        };
        if let Some(e) = refused {
            if let Some(l) = &i.exec_lock {
                l.unlock().await;
            }
            return Err(e);
        }
        if let Some(m) = live.metrics() {
            m.started();
        }
        tracing::info!(exec = %exec_id, job = %job.name, "load execution started");

        let dispatcher = Dispatcher {
            tasks: classes
                .into_iter()
                .zip(job.tasks.iter().map(|t| t.host.clone()))
                .collect(),
            params: opts.params.clone(),
            exec_id: exec_id.clone(),
            http: i.http.clone(),
            sched: i.sched.clone(),
            remote_timeout_ms: i.cfg.remote_timeout_ms,
        };
        let (tx, rx) = mpsc::channel(16);
        let events = if opts.webhook_url.is_some() {
            let _ = tx.try_send(ExecEvent::Enqueued {
                exec_id: exec_id.clone(),
            });
            None
        } else {
            Some(tx)
        };
        // Exported with `serve --otlp-endpoint` (see crate::telemetry); a no-op span otherwise.
        let span = tracing::info_span!(
            target: crate::telemetry::OTEL_TARGET,
            "taskhive.load.exec",
            exec = %exec_id,
            job = %job.name,
        );
        let run = Run {
            runner: self.clone(),
            exec_id,
            job,
            opts,
            t0,
            live,
            on_agents,
        };
        tokio::spawn(tracing::Instrument::instrument(
            run.drive(dispatcher, events),
            span,
        ));
        Ok(rx)
    }

    /// Each agent's share of `job`: refused when a task is not a built-in HTTP class (an
    /// agent has no workers), when the job ramps, or when too few agents are connected.
    fn shares(
        &self,
        asked: super::exec_request::Agents,
        job: &LoadJob,
        classes: &[TaskClass],
        opts: &ExecOptions,
        exec_id: &str,
    ) -> Result<Vec<(Arc<AgentLink>, Share)>, Error> {
        let mut defs = Vec::with_capacity(classes.len());
        for (n, class) in classes.iter().enumerate() {
            match class {
                TaskClass::Http(def) => defs.push(def.clone()),
                TaskClass::Remote(name) => {
                    return Err(Error::invalid(
                        format!("tasks[{n}].task_class"),
                        format!(
                            "{name} is a remote class; load agents run built-in HTTP classes only (leave agents out)"
                        ),
                    ))
                }
            }
        }
        if job.stages.is_some() {
            return Err(Error::invalid(
                "agents",
                format!(
                    "job {:?} has stages; a staged job runs in the server only (leave agents out)",
                    job.name
                ),
            ));
        }
        let picked = self.inner.agents.pick(asked, job.n_swarm)?;
        let swarms: Vec<u64> = picked.iter().map(|(_, s)| *s).collect();
        let rates = job.rate_per_sec.map(|r| agents_mod::split_rate(r, &swarms));
        let mut first_swarm = 1;
        Ok(picked
            .into_iter()
            .enumerate()
            .map(|(i, (link, n))| {
                let share = Share {
                    exec_id: exec_id.to_string(),
                    job: agents_mod::share_job(job, n, rates.as_ref().map(|r| r[i])),
                    params: opts.params.clone(),
                    classes: defs.clone(),
                    first_swarm,
                    max_executions: self.inner.cfg.max_executions as u64,
                    report_failures: opts.report_failures,
                };
                first_swarm += n;
                (link, share)
            })
            .collect())
    }

    /// Archived executions, newest first.
    pub async fn list_execs(
        &self,
        name: Option<String>,
        limit: usize,
    ) -> Result<Vec<ExecSummary>, Error> {
        let limit = if limit == 0 {
            DEFAULT_LIST
        } else {
            limit.min(MAX_LIST)
        };
        let reader = self.inner.reader.clone();
        let rows = tokio::task::spawn_blocking(move || reader.list_execs(name.as_deref(), limit))
            .await
            .map_err(|e| Error::Store(e.to_string()))??;
        Ok(rows.into_iter().map(ExecSummary::from).collect())
    }

    /// One archived execution and its JSON document as stored.
    pub async fn get_exec(&self, id: String) -> Result<(JobExec, String), Error> {
        let reader = self.inner.reader.clone();
        let key = id.clone();
        let row = tokio::task::spawn_blocking(move || reader.get_exec(&key))
            .await
            .map_err(|e| Error::Store(e.to_string()))??
            .ok_or_else(|| Error::NotFound(format!("execution {id:?} not found")))?;
        let exec = serde_json::from_str(&row.json)
            .map_err(|e| Error::Store(format!("archived execution {id} unreadable: {e}")))?;
        Ok((exec, row.json))
    }

    /// Refuses new executions and stops the running one (its tasks in flight finish).
    pub fn stop(&self) {
        let mut slot = self.inner.slot.lock().expect("poisoned");
        slot.closed = true;
        if let Some(r) = &slot.running {
            r.live.abort("server shutting down".into());
        }
    }

    /// Resolves once no execution is running (the last one archived), or after `grace`.
    pub(crate) async fn wait_idle(&self, grace: Duration) {
        let mut busy = self.inner.busy.subscribe();
        let _ = tokio::time::timeout(grace, busy.wait_for(|b| !b)).await;
    }

    /// Stores the report (and writes the archive file); failures are logged, not fatal.
    async fn archive(&self, report: &JobExec, t0: DateTime<Utc>) {
        let i = &self.inner;
        let commit = i.writer.write(vec![
            Op::ArchiveExec(report.row()),
            Op::TrimExecs(i.cfg.max_archived),
        ]);
        if let Err(e) = commit.wait().await {
            tracing::error!(exec = %report.id, error = %e, "archiving the execution failed");
        }
        if let Some(dir) = i.cfg.archive_dir.clone() {
            let file = dir.join(format!(
                "{}-{}.json",
                t0.format("%Y%m%dT%H%M%S%.3fZ"),
                report.id
            ));
            let body = serde_json::to_vec_pretty(report).expect("a JobExec serializes");
            let written = tokio::task::spawn_blocking(move || {
                // Write then rename, so a reader of the directory never sees half a file.
                let tmp = file.with_extension("json.tmp");
                std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, &file))
            })
            .await;
            if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                tracing::error!(exec = %report.id, error = %e, "writing the archive file failed");
            }
        }
    }
}

/// One execution in flight.
struct Run {
    runner: LoadRunner,
    exec_id: String,
    job: LoadJob,
    opts: ExecOptions,
    t0: DateTime<Utc>,
    live: Arc<Live>,
    // Set when the Exec asked for agents: who runs which share.
    on_agents: Option<Vec<(Arc<AgentLink>, Share)>>,
}

impl Run {
    fn progress(&self, rps: f64) -> Progress {
        Progress {
            exec_id: self.exec_id.clone(),
            name: self.job.name.clone(),
            elapsed_usec: self.live.elapsed().as_micros() as u64,
            so_far: self.live.snapshot(),
            rps,
            planned_n: self.job.planned_n(),
            run_for_sec: self.job.duration_sec(),
        }
    }

    /// Runs the swarms, reports progress, then archives and delivers the JobExec.
    async fn drive(mut self, dispatcher: Dispatcher, events: Option<mpsc::Sender<ExecEvent>>) {
        let send = |e: ExecEvent| {
            // A slow or gone client misses progress events; the run does not wait for it.
            if let Some(tx) = &events {
                let _ = tx.try_send(e);
            }
        };
        send(ExecEvent::Progress(self.progress(0.0)));
        // In the server, or on agents whose reports merge into the same `live`.
        let swarms: futures_util::future::BoxFuture<'static, Option<Vec<ExecAgent>>> =
            match self.on_agents.take() {
                None => {
                    let run = engine::run(
                        Arc::new(Plan::of(&self.job)),
                        Arc::new(dispatcher),
                        self.live.clone(),
                    );
                    Box::pin(async move {
                        run.await;
                        None
                    })
                }
                Some(shares) => {
                    let run_for = (self.job.duration_sec() > 0)
                        .then(|| Duration::from_secs(self.job.duration_sec()));
                    Box::pin(agents_mod::drive(shares, self.live.clone(), run_for).map(Some))
                }
            };
        tokio::pin!(swarms);
        let start = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(start + PROGRESS_EVERY, PROGRESS_EVERY);
        let (mut prev_at, mut prev_n) = (start, 0u64);
        let mut next_log = LOG_EVERY;
        let took_part = loop {
            tokio::select! {
                entries = &mut swarms => break entries,
                now = ticks.tick() => {
                    let n = self.live.snapshot().n_task;
                    let dt = now.duration_since(prev_at).as_secs_f64();
                    let rps = if dt > 0.0 { (n - prev_n) as f64 / dt } else { 0.0 };
                    (prev_at, prev_n) = (now, n);
                    let p = self.progress((rps * 100.0).round() / 100.0);
                    if let Some(m) = self.live.metrics() {
                        m.rate(p.rps);
                    }
                    if self.opts.report_progress && now.duration_since(start) >= next_log {
                        next_log += LOG_EVERY;
                        tracing::info!(
                            exec = %p.exec_id, elapsed_s = p.elapsed_usec / 1_000_000,
                            n_task = p.so_far.n_task, n_fail = p.so_far.n_fail, rps = p.rps,
                            p50_usec = p.so_far.p50_usec, p99_usec = p.so_far.p99_usec,
                            "load execution progress"
                        );
                    }
                    send(ExecEvent::Progress(p));
                }
            }
        };

        let elapsed = self.live.elapsed().as_micros() as u64;
        let mut report = self.live.take_stats().into_report(
            self.exec_id.clone(),
            &self.job,
            &self.opts,
            self.t0,
            elapsed,
            self.live.abort_reason(),
        );
        report.agents = took_part;
        tracing::info!(
            exec = %report.id, job = %report.name, n_task = report.n_task, n_fail = report.n_fail,
            elapsed_usec = report.elapsed_usec, threshold_exceeded = report.threshold_exceeded,
            aborted = report.aborted, "load execution finished"
        );
        self.runner.archive(&report, self.t0).await;
        if let Some(m) = self.live.metrics() {
            m.finished(if report.aborted {
                "aborted"
            } else if report.threshold_exceeded {
                "threshold_exceeded"
            } else {
                "ok"
            });
        }
        {
            let inner = &self.runner.inner;
            let mut slot = inner.slot.lock().expect("poisoned");
            slot.running = None;
            slot.last = Some(report.summary());
            inner.busy.send_replace(false);
        }
        if let Some(l) = &self.runner.inner.exec_lock {
            l.unlock().await;
        }
        if let Some(tx) = &events {
            let _ = tx.send(ExecEvent::Finished(Box::new(report.clone()))).await;
        }
        if let Some(url) = &self.opts.webhook_url {
            let timeout = self.runner.inner.cfg.webhook_timeout;
            match self
                .runner
                .inner
                .http
                .post_json(url, report.to_json(), timeout)
                .await
            {
                Ok(r) if (200..300).contains(&r.status) => {
                    tracing::info!(exec = %report.id, %url, "webhook delivered")
                }
                Ok(r) => {
                    tracing::warn!(exec = %report.id, %url, status = r.status, "webhook refused")
                }
                Err(e) => tracing::warn!(exec = %report.id, %url, error = %e, "webhook failed"),
            }
        }
    }
}
