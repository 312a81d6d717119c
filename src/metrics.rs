//! Prometheus metrics: counters and histograms fed by the scheduler's observations and by
//! the load runner's samples, gauges read from Status at scrape time, and process figures.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::scheduler::core::{Observation, TaskStatus};
use crate::scheduler::durable::Backlog;

/// Every metric taskhive exports.
pub struct Metrics {
    registry: Registry,
    submitted: IntCounterVec,
    done: IntCounterVec,
    failed: IntCounterVec,
    retried: IntCounterVec,
    dead: IntCounterVec,
    expired: IntCounterVec,
    dispatch_wait: HistogramVec,
    run_time: HistogramVec,
    jobs: IntGaugeVec,
    workers: IntGaugeVec,
    workers_total: IntGauge,
    load: LoadMetrics,
    conns: ConnMetrics,
    disk_free: IntGauge,
    /// The payload budget: bytes held in memory, and jobs whose payload is in the store only.
    payload_held: IntGauge,
    payload_spilled: IntGauge,
    /// The submit backlog (one node: the store writer's; a cluster node: its own before the
    /// shared database), read at scrape time: jobs admitted and not yet stored, and
    /// submits waiting to be admitted.
    backlog: std::sync::OnceLock<std::sync::Arc<Backlog>>,
    backlog_jobs: IntGauge,
    submits_waiting: IntGauge,
    /// 1 when the last scrape's per-task counts could not be had in time.
    counts_missing: IntGauge,
    kept_dropped: IntCounter,
}

/// Connections of every listener (the shared port and the Periodic ones).
#[derive(Clone)]
pub struct ConnMetrics {
    /// Connections closed at accept, by `reason` (`max_connections`, `per_ip`).
    pub refused: IntCounterVec,
    /// Connections open now.
    pub open: IntGauge,
    /// Connections closed by the server for a timeout, by `reason` (`header`, `idle`).
    pub timed_out: IntCounterVec,
}

/// The load runner's metrics.
struct LoadMetrics {
    tasks: IntCounterVec,
    task_time: HistogramVec,
    execs_started: IntCounter,
    execs_finished: IntCounterVec,
    running: IntGauge,
    rate: Gauge,
}

/// One execution's handles on the per-class series, resolved once so that recording a
/// sample costs no label look-up.
pub struct ExecMetrics {
    per_task: Vec<TaskSeries>,
    running: IntGauge,
    rate: Gauge,
    started: IntCounter,
    finished: IntCounterVec,
}

struct TaskSeries {
    success: IntCounter,
    fail: IntCounter,
    time: Histogram,
}

impl ExecMetrics {
    /// Records one finished load task (`task` indexes the job's task list).
    pub fn sample(&self, task: usize, is_success: bool, elapsed_usec: u64) {
        if let Some(t) = self.per_task.get(task) {
            if is_success {
                t.success.inc()
            } else {
                t.fail.inc()
            }
            t.time.observe(elapsed_usec as f64 / 1e6);
        }
    }

    /// The execution holds the runner's slot: counts it as started and running.
    pub fn started(&self) {
        self.started.inc();
        self.running.set(1);
    }

    /// Sets the current rate (tasks finished per second over the last progress interval).
    pub fn rate(&self, per_sec: f64) {
        self.rate.set(per_sec);
    }

    /// The execution is over: `result` is `ok`, `threshold_exceeded` or `aborted`.
    pub fn finished(&self, result: &str) {
        self.running.set(0);
        self.rate.set(0.0);
        self.finished.with_label_values(&[result]).inc();
    }
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &["task"]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0, 300.0,
    ];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["task"])
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric (and the process collector) registered.
    pub fn new() -> Self {
        let r = Registry::new();
        let jobs = IntGaugeVec::new(
            Opts::new("taskhive_jobs", "Jobs by task and state"),
            &["task", "state"],
        )
        .expect("valid metric");
        r.register(Box::new(jobs.clone())).expect("unique metric");
        let workers = IntGaugeVec::new(
            Opts::new("taskhive_task_workers", "Workers registered per task"),
            &["task"],
        )
        .expect("valid metric");
        r.register(Box::new(workers.clone()))
            .expect("unique metric");
        let workers_total =
            IntGauge::new("taskhive_workers", "Workers registered, counted per task")
                .expect("valid metric");
        r.register(Box::new(workers_total.clone()))
            .expect("unique metric");
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric");
        let load = LoadMetrics::new(&r);
        let conns = ConnMetrics {
            refused: IntCounterVec::new(
                Opts::new(
                    "taskhive_connections_refused_total",
                    "Connections closed at accept: over --max-connections or --max-connections-per-ip",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            open: IntGauge::new(
                "taskhive_connections_open",
                "Connections open on every listener",
            )
            .expect("valid metric"),
            timed_out: IntCounterVec::new(
                Opts::new(
                    "taskhive_connections_timed_out_total",
                    "Connections closed by the server: header/handshake or idle timeout",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        };
        r.register(Box::new(conns.refused.clone()))
            .expect("unique metric");
        r.register(Box::new(conns.open.clone()))
            .expect("unique metric");
        r.register(Box::new(conns.timed_out.clone()))
            .expect("unique metric");
        let payload_held = gauge(
            &r,
            "taskhive_payload_memory_bytes",
            "Bytes of job payloads of 1 KiB or more held in memory (serve --payload-memory)",
        );
        let payload_spilled = gauge(
            &r,
            "taskhive_payloads_in_store_only",
            "Jobs whose payload is held in the store only, read back when handed out",
        );
        let kept_dropped = IntCounter::new(
            "taskhive_kept_results_dropped_total",
            "Kept results let go before their time: they held more than --payload-memory",
        )
        .expect("valid metric");
        r.register(Box::new(kept_dropped.clone()))
            .expect("unique metric");
        let disk_free = gauge(
            &r,
            "taskhive_disk_free_bytes",
            "Free bytes on the SQLite data directory's filesystem (with --min-free-disk)",
        );
        let runtime_workers = gauge(
            &r,
            "taskhive_runtime_workers",
            "Threads serving connections and running the scheduler (serve --worker-threads)",
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            runtime_workers.set(rt.metrics().num_workers() as i64);
        }
        let backlog_jobs = gauge(
            &r,
            "taskhive_submit_backlog_jobs",
            "Submitted jobs admitted and not yet stored (bounded; past it submits wait)",
        );
        let submits_waiting = gauge(
            &r,
            "taskhive_submits_waiting",
            "Submit calls waiting for the store to catch up before they are admitted",
        );
        let counts_missing = gauge(
            &r,
            "taskhive_job_counts_missing",
            "1 when this scrape's per-task counts could not be read in time (store stalled)",
        );
        Metrics {
            counts_missing,
            backlog: std::sync::OnceLock::new(),
            backlog_jobs,
            submits_waiting,
            load,
            conns,
            disk_free,
            payload_held,
            payload_spilled,
            kept_dropped,
            submitted: counter(&r, "taskhive_jobs_submitted_total", "Jobs submitted"),
            done: counter(&r, "taskhive_jobs_done_total", "Jobs finished with done"),
            failed: counter(
                &r,
                "taskhive_jobs_failed_total",
                "Failed attempts (fail, lost lease, lost worker)",
            ),
            retried: counter(
                &r,
                "taskhive_jobs_retried_total",
                "Failed attempts scheduled to run again",
            ),
            dead: counter(&r, "taskhive_jobs_dead_total", "Jobs moved to the dead set"),
            expired: counter(
                &r,
                "taskhive_lease_expired_total",
                "Leases that expired without a report",
            ),
            dispatch_wait: histogram(
                &r,
                "taskhive_dispatch_wait_seconds",
                "From a job's due time to its dispatch to a worker",
            ),
            run_time: histogram(
                &r,
                "taskhive_job_run_seconds",
                "From dispatch to the worker's report",
            ),
            jobs,
            workers,
            workers_total,
            registry: r,
        }
    }

    /// The connection metrics, for the listeners' admission gate.
    pub fn connections(&self) -> ConnMetrics {
        self.conns.clone()
    }

    /// The free-disk gauge, set by the store's disk watch.
    pub(crate) fn disk_free(&self) -> IntGauge {
        self.disk_free.clone()
    }

    /// Handles for one load execution over `classes` (the job's task classes, in order).
    pub(crate) fn load_exec(&self, classes: &[&str]) -> ExecMetrics {
        let l = &self.load;
        ExecMetrics {
            per_task: classes
                .iter()
                .map(|c| TaskSeries {
                    success: l.tasks.with_label_values(&[c, "success"]),
                    fail: l.tasks.with_label_values(&[c, "fail"]),
                    time: l.task_time.with_label_values(&[c]),
                })
                .collect(),
            running: l.running.clone(),
            rate: l.rate.clone(),
            started: l.execs_started.clone(),
            finished: l.execs_finished.clone(),
        }
    }

    /// Records one scheduler observation.
    pub(crate) fn observe(&self, o: &Observation) {
        match o {
            Observation::Submitted(t) => self.submitted.with_label_values(&[&**t]).inc(),
            Observation::Dispatched { task, wait_ms } => self
                .dispatch_wait
                .with_label_values(&[&**task])
                .observe(*wait_ms as f64 / 1000.0),
            Observation::Ran { task, ms } => self
                .run_time
                .with_label_values(&[&**task])
                .observe(*ms as f64 / 1000.0),
            Observation::Done(t) => self.done.with_label_values(&[&**t]).inc(),
            Observation::Failed { task, dead } => {
                self.failed.with_label_values(&[&**task]).inc();
                if *dead {
                    self.dead.with_label_values(&[&**task]).inc();
                } else {
                    self.retried.with_label_values(&[&**task]).inc();
                }
            }
            Observation::Expired(t) => self.expired.with_label_values(&[&**t]).inc(),
            Observation::KeptDropped(n) => self.kept_dropped.inc_by(*n as u64),
            Observation::Payloads(p) => {
                self.payload_held.set(p.held as i64);
                self.payload_spilled.set(p.spilled_jobs as i64);
            }
            // A log line, written by the actor; counted above under its other variants.
            Observation::Log(_) => {}
        }
    }

    /// Reports `backlog`'s figures from now on (the node's submit backlog; set once).
    pub(crate) fn watch_backlog(&self, backlog: std::sync::Arc<Backlog>) {
        let _ = self.backlog.set(backlog);
    }

    /// Prometheus text exposition, with gauges set from `tasks`; None when the counts could
    /// not be had in time (a cluster's database stalled): the per-task series are left
    /// out, `taskhive_workers_total` keeps its last value and `taskhive_job_counts_missing`
    /// is 1, so the node's own figures (the backlog above all) still reach the scraper.
    pub fn render(&self, tasks: Option<&[TaskStatus]>) -> String {
        if let Some(b) = self.backlog.get() {
            self.backlog_jobs.set(b.admitted() as i64);
            self.submits_waiting.set(b.waiting() as i64);
        }
        self.jobs.reset();
        self.workers.reset();
        self.counts_missing.set(i64::from(tasks.is_none()));
        if let Some(tasks) = tasks {
            self.set_counts(tasks);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }

    fn set_counts(&self, tasks: &[TaskStatus]) {
        let mut total = 0i64;
        for t in tasks {
            for (state, n) in [
                ("pending", t.pending),
                ("scheduled", t.scheduled),
                ("running", t.running),
                ("locked", t.locked),
                ("dead", t.dead),
            ] {
                self.jobs.with_label_values(&[&t.task, state]).set(n as i64);
            }
            self.workers
                .with_label_values(&[&t.task])
                .set(t.workers as i64);
            total += t.workers as i64;
        }
        self.workers_total.set(total);
    }
}

impl LoadMetrics {
    fn new(r: &Registry) -> Self {
        let tasks = IntCounterVec::new(
            Opts::new(
                "taskhive_load_tasks_total",
                "Load-exec tasks run, by task class and result",
            ),
            &["task_class", "result"],
        )
        .expect("valid metric");
        r.register(Box::new(tasks.clone())).expect("unique metric");
        let buckets = prometheus::exponential_buckets(0.0001, 2.5, 14).expect("valid buckets");
        let task_time = HistogramVec::new(
            HistogramOpts::new(
                "taskhive_load_task_seconds",
                "Latency of load-exec tasks, by task class",
            )
            .buckets(buckets),
            &["task_class"],
        )
        .expect("valid metric");
        r.register(Box::new(task_time.clone()))
            .expect("unique metric");
        let execs_started = IntCounter::new(
            "taskhive_load_execs_started_total",
            "Load executions started",
        )
        .expect("valid metric");
        r.register(Box::new(execs_started.clone()))
            .expect("unique metric");
        let execs_finished = IntCounterVec::new(
            Opts::new(
                "taskhive_load_execs_finished_total",
                "Load executions finished, by result (ok, threshold_exceeded, aborted)",
            ),
            &["result"],
        )
        .expect("valid metric");
        r.register(Box::new(execs_finished.clone()))
            .expect("unique metric");
        let running = IntGauge::new(
            "taskhive_load_exec_running",
            "1 while a load execution runs",
        )
        .expect("valid metric");
        r.register(Box::new(running.clone()))
            .expect("unique metric");
        let rate = Gauge::new(
            "taskhive_load_tasks_per_second",
            "The running load execution's tasks finished per second (last second; 0 when idle)",
        )
        .expect("valid metric");
        r.register(Box::new(rate.clone())).expect("unique metric");
        LoadMetrics {
            tasks,
            task_time,
            execs_started,
            execs_finished,
            running,
            rate,
        }
    }
}

/// The scheduler's actor reports its observations here.
impl crate::scheduler::core::Observer for Metrics {
    fn observe(&self, o: &Observation) {
        Metrics::observe(self, o)
    }
}
