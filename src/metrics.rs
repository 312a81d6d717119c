//! Prometheus metrics: counters and histograms fed by the scheduler's observations, gauges
//! read from Status at scrape time, and process figures.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::scheduler::core::{Observation, TaskStatus};

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
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &["task"]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
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
        Metrics {
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

    /// Records one scheduler observation.
    pub fn observe(&self, o: &Observation) {
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
        }
    }

    /// Prometheus text exposition, with gauges set from `tasks`.
    pub fn render(&self, tasks: &[TaskStatus]) -> String {
        self.jobs.reset();
        self.workers.reset();
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
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
