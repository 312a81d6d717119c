//! Runs a job's swarms: what to run when, when to stop, and what every run measured.
//!
//! The engine knows nothing of HTTP or workers: it calls an [`Executor`] for each task and
//! feeds the outcome to the shared [`Live`] statistics. Time is tokio's, so the scheduling
//! logic runs under `tokio::time::pause` in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use super::job::LoadJob;
use super::stages::Ramp;
use super::stats::{ExecStats, Part, Sample, Snapshot};
use crate::metrics::ExecMetrics;

/// What one task run reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Succeeded.
    pub is_success: bool,
    /// What the task says about the run.
    pub request_context: String,
    /// Latency measured by the task itself (a remote worker); else the engine measures.
    pub elapsed_usec: Option<u64>,
}

/// Which run the executor is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Index of the task in the job.
    pub task: usize,
    /// Swarm, from 1.
    pub swarm_id: u64,
    /// The swarm's run number, from 0.
    pub seq: u64,
}

/// Runs tasks. Implemented by the server's dispatcher (HTTP and remote classes) and by tests.
pub trait Executor: Send + Sync + 'static {
    /// Runs one task.
    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Attempt>;
}

/// How a run proceeds, taken from the job and the Exec request.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Per task: weight.
    pub weights: Vec<u64>,
    /// Per task: sleep range after it, ms.
    pub sleeps: Vec<(u64, u64)>,
    /// Time limit.
    pub run_for: Option<Duration>,
    /// Tasks per swarm (0 = no limit); in arrival-rate mode, run_n × n_swarm in total.
    pub run_n: u64,
    /// Concurrent swarms.
    pub n_swarm: u64,
    /// Arrival-rate mode.
    pub rate_per_sec: Option<f64>,
    /// Stages: the ramp of active swarms (closed) or of the rate (arrival-rate mode).
    pub ramp: Option<Ramp>,
}

impl Plan {
    /// The plan of `job`.
    pub fn of(job: &LoadJob) -> Plan {
        Plan {
            weights: job.tasks.iter().map(|t| t.weight).collect(),
            sleeps: job
                .tasks
                .iter()
                .map(|t| (t.sleep_min_msec, t.sleep_max_msec))
                .collect(),
            run_for: (job.duration_sec() > 0).then(|| Duration::from_secs(job.duration_sec())),
            run_n: job.run_n,
            n_swarm: job.n_swarm,
            rate_per_sec: job.rate_per_sec,
            // Closed stages start from one swarm; arrival-rate stages from rate_per_sec.
            ramp: job
                .stages
                .as_deref()
                .map(|st| Ramp::new(job.rate_per_sec.unwrap_or(1.0), st)),
        }
    }
}

/// A run's shared state: statistics so far, the start, the abort switch.
pub struct Live {
    exec_id: String,
    started: Instant,
    stats: Mutex<ExecStats>,
    max_failures: u64,
    report_failures: bool,
    abort: watch::Sender<Option<String>>,
    metrics: Option<ExecMetrics>,
}

impl Live {
    /// A run starting now. `max_failures` 0 = no limit.
    pub fn new(
        exec_id: String,
        stats: ExecStats,
        max_failures: u64,
        report_failures: bool,
    ) -> Live {
        Live {
            exec_id,
            started: Instant::now(),
            stats: Mutex::new(stats),
            max_failures,
            report_failures,
            abort: watch::channel(None).0,
            metrics: None,
        }
    }

    /// Also feeds every sample to the Prometheus series in `m`.
    pub(crate) fn with_metrics(mut self, m: ExecMetrics) -> Live {
        self.metrics = Some(m);
        self
    }

    /// The Prometheus series this run feeds, if any.
    pub fn metrics(&self) -> Option<&ExecMetrics> {
        self.metrics.as_ref()
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counters so far.
    pub fn snapshot(&self) -> Snapshot {
        self.stats.lock().expect("poisoned").snapshot()
    }

    /// Stops the run: swarms start no new task (running ones finish). The first reason stays.
    pub fn abort(&self, reason: String) {
        self.abort.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Why the run was stopped, if it was.
    pub fn abort_reason(&self) -> Option<String> {
        self.abort.borrow().clone()
    }

    /// Follows the abort switch: `Some(reason)` once the run is stopped.
    pub(crate) fn abort_watch(&self) -> watch::Receiver<Option<String>> {
        self.abort.subscribe()
    }

    /// Adds statistics recorded elsewhere (a load agent's report): the Prometheus series,
    /// the counters and histograms, and the max_failure_count check, as `record` does for
    /// one sample, so a limit is judged on the merged figures.
    pub(crate) fn merge(&self, part: Part) -> Result<(), String> {
        if let Some(m) = &self.metrics {
            for t in &part.tasks {
                // The series count successes and failures per task, and latencies
                // regardless of outcome: totals per task are exact, as in-process.
                let mut successes = t.n_success;
                for v in t.hist.iter_recorded() {
                    for _ in 0..v.count_at_value() {
                        let ok = successes > 0;
                        successes = successes.saturating_sub(1);
                        m.sample(t.task, ok, v.value_iterated_to());
                    }
                }
            }
        }
        let n_fail = {
            let mut st = self.stats.lock().expect("poisoned");
            st.merge(part)?;
            st.n_fail()
        };
        if self.max_failures > 0 && n_fail >= self.max_failures {
            self.abort(format!("max_failure_count {} reached", self.max_failures));
        }
        Ok(())
    }

    /// What was recorded since the previous call (a load agent's report); see
    /// [`ExecStats::take_part`].
    pub(crate) fn take_part(&self, budget: &mut [u64]) -> Part {
        self.stats.lock().expect("poisoned").take_part(budget)
    }

    /// The statistics, leaving empty ones behind (call once the run is over).
    pub fn take_stats(&self) -> ExecStats {
        std::mem::replace(
            &mut *self.stats.lock().expect("poisoned"),
            ExecStats::new(0, 0),
        )
    }

    fn usec_since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.started).as_micros() as u64
    }

    fn record(&self, s: Sample) {
        if !s.is_success && self.report_failures {
            tracing::warn!(
                exec = %self.exec_id,
                task = s.task,
                swarm = s.swarm_id,
                request_context = %s.request_context,
                "load task failed"
            );
        }
        let failed = !s.is_success;
        if let Some(m) = &self.metrics {
            m.sample(s.task, s.is_success, s.elapsed_usec);
        }
        let n_fail = {
            let mut st = self.stats.lock().expect("poisoned");
            st.record(s);
            st.n_fail()
        };
        if failed && self.max_failures > 0 && n_fail >= self.max_failures {
            self.abort(format!("max_failure_count {} reached", self.max_failures));
        }
    }
}

/// Picks a task index at random in proportion to the weights.
struct Picker {
    cumulative: Vec<u64>,
}

impl Picker {
    fn new(weights: &[u64]) -> Self {
        let mut sum = 0;
        Picker {
            cumulative: weights
                .iter()
                .map(|w| {
                    sum += w;
                    sum
                })
                .collect(),
        }
    }

    fn pick(&self, rng: &mut SmallRng) -> usize {
        let total = *self.cumulative.last().expect("a job has tasks");
        let r = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= r)
    }
}

fn usec(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// Runs every swarm to the end; returns when the last one stops.
pub async fn run<E: Executor>(plan: Arc<Plan>, exec: Arc<E>, live: Arc<Live>) {
    let deadline = plan.run_for.map(|d| live.started + d);
    let slots = Arc::new(AtomicU64::new(0));
    let mut swarms = tokio::task::JoinSet::new();
    for swarm_id in 1..=plan.n_swarm {
        let (plan, exec, live, slots) = (plan.clone(), exec.clone(), live.clone(), slots.clone());
        swarms.spawn(async move {
            let rng = SmallRng::from_rng(&mut rand::rng());
            match plan.rate_per_sec {
                None => closed_swarm(swarm_id, &plan, &*exec, &live, deadline, rng).await,
                Some(rate) => {
                    open_swarm(swarm_id, &plan, &*exec, &live, deadline, rate, &slots, rng).await
                }
            }
        });
    }
    while let Some(r) = swarms.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "load swarm panicked");
        }
    }
}

/// Closed model: run, sleep, repeat. A slow target slows the swarm down.
async fn closed_swarm<E: Executor>(
    swarm_id: u64,
    plan: &Plan,
    exec: &E,
    live: &Live,
    deadline: Option<Instant>,
    mut rng: SmallRng,
) {
    let picker = Picker::new(&plan.weights);
    let mut abort = live.abort.subscribe();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) || abort.borrow().is_some() {
            return;
        }
        if let Some(ramp) = &plan.ramp {
            // Staged: swarm n runs only while the ramp has at least n swarms active.
            let at = now - live.started;
            if ramp.active_at(at) < swarm_id {
                let Some(from) = ramp.first_time_active(swarm_id, at) else {
                    return;
                };
                // At least a tick ahead, so float rounding cannot spin this loop.
                let mut until = live.started + from.max(at + Duration::from_millis(1));
                if let Some(d) = deadline {
                    until = until.min(d);
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = abort.wait_for(Option::is_some) => return,
                }
                continue;
            }
        }
        let task = picker.pick(&mut rng);
        let a = exec
            .execute(Invocation {
                task,
                swarm_id,
                seq,
            })
            .await;
        let end = Instant::now();
        live.record(Sample {
            task,
            swarm_id,
            start_usec: live.usec_since_start(now),
            end_usec: live.usec_since_start(end),
            elapsed_usec: a.elapsed_usec.unwrap_or_else(|| usec(end - now)),
            request_context: a.request_context,
            is_success: a.is_success,
        });
        seq += 1;
        // No sleep after a swarm's last task.
        if plan.run_n > 0 && seq >= plan.run_n {
            return;
        }
        let (lo, hi) = plan.sleeps[task];
        if hi > 0 {
            let ms = rng.random_range(lo..=hi);
            let mut until = Instant::now() + Duration::from_millis(ms);
            if let Some(d) = deadline {
                until = until.min(d);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = abort.wait_for(Option::is_some) => return,
            }
        }
    }
}

/// Open model: slot k is due at start + k / rate (with stages, when the ramped rate's
/// integral reaches it), whoever is free takes it, and when no swarm
/// was free at its due time its latency counts from then, so time spent waiting behind a
/// slow task is not hidden.
#[allow(clippy::too_many_arguments)]
async fn open_swarm<E: Executor>(
    swarm_id: u64,
    plan: &Plan,
    exec: &E,
    live: &Live,
    deadline: Option<Instant>,
    rate: f64,
    slots: &AtomicU64,
    mut rng: SmallRng,
) {
    let picker = Picker::new(&plan.weights);
    let mut abort = live.abort.subscribe();
    let total = plan.run_n.saturating_mul(plan.n_swarm);
    let mut seq = 0u64;
    loop {
        let k = slots.fetch_add(1, Ordering::Relaxed);
        if total > 0 && k >= total {
            return;
        }
        let offset = match &plan.ramp {
            // Past the stages' last arrival: nothing more to start.
            Some(ramp) => match ramp.due(k) {
                Some(d) => d,
                None => return,
            },
            None => Duration::from_secs_f64(k as f64 / rate),
        };
        let due = live.started + offset;
        if deadline.is_some_and(|d| due >= d) || abort.borrow().is_some() {
            return;
        }
        // Free before the slot was due: any lateness from here on is the timer's (tokio's
        // ticks are 1 ms), not the target's, so the latency counts from the actual start.
        // Busy past the due time: earlier responses held this slot up, so it counts from due.
        let held_up = Instant::now() >= due;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = abort.wait_for(Option::is_some) => return,
        }
        let start = Instant::now();
        let from = if held_up { due } else { start };
        if deadline.is_some_and(|d| start >= d) {
            return;
        }
        let task = picker.pick(&mut rng);
        let a = exec
            .execute(Invocation {
                task,
                swarm_id,
                seq,
            })
            .await;
        let end = Instant::now();
        let service = a.elapsed_usec.unwrap_or_else(|| usec(end - start));
        live.record(Sample {
            task,
            swarm_id,
            start_usec: live.usec_since_start(due),
            end_usec: live.usec_since_start(end),
            elapsed_usec: usec(start - from).saturating_add(service),
            request_context: a.request_context,
            is_success: a.is_success,
        });
        seq += 1;
    }
}
