//! Statistics of a run: per-task counters, HDR histograms, the capped executions list and the
//! per-second timeline. Pure: no clock, no I/O; the engine feeds it samples.

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use indexmap::IndexMap;

use super::exec_request::ExecOptions;
use super::job::LoadJob;
use super::report::{format_time, Execution, JobExec, TaskExec, TimelinePoint};

/// Largest latency the histograms resolve (one hour); longer ones count as one hour there.
/// min/max/avg/tot are exact regardless.
pub const MAX_TRACKED_USEC: u64 = 3_600_000_000;

/// Timeline seconds behind the newest that are still open for late samples; older ones are
/// reduced to their p99 so a long run keeps a few small histograms, not one per second.
const OPEN_SECONDS: usize = 3;

/// One finished task run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Index of the task in the job.
    pub task: usize,
    /// Swarm, from 1.
    pub swarm_id: u64,
    /// Start (arrival-rate mode: intended start), µs since the run began.
    pub start_usec: u64,
    /// End, µs since the run began (places the sample in the timeline).
    pub end_usec: u64,
    /// Latency.
    pub elapsed_usec: u64,
    /// What the task said.
    pub request_context: String,
    /// Succeeded.
    pub is_success: bool,
}

/// Counters so far, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Tasks finished.
    pub n_task: u64,
    /// Succeeded.
    pub n_success: u64,
    /// Failed.
    pub n_fail: u64,
    /// Median latency so far.
    pub p50_usec: u64,
    /// 99th percentile so far.
    pub p99_usec: u64,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_USEC, sigfig).expect("valid histogram bounds")
}

/// The value at quantile `q`, never above the exact maximum (HDR reports a bucket's top).
fn quantile(h: &Histogram<u64>, q: f64, max: u64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q).min(max)
    }
}

fn per_second(n: u64, elapsed_usec: u64) -> f64 {
    if elapsed_usec == 0 {
        return 0.0;
    }
    let r = n as f64 * 1e6 / elapsed_usec as f64;
    (r * 100.0).round() / 100.0
}

struct Kept {
    swarm_id: u64,
    start_usec: u64,
    elapsed_usec: u64,
    request_context: String,
    is_success: bool,
}

struct TaskStats {
    n: u64,
    n_success: u64,
    n_fail: u64,
    min: u64,
    max: u64,
    tot: u64,
    hist: Histogram<u64>,
    kept: Vec<Kept>,
    dropped: u64,
}

impl TaskStats {
    fn new() -> Self {
        TaskStats {
            n: 0,
            n_success: 0,
            n_fail: 0,
            min: u64::MAX,
            max: 0,
            tot: 0,
            hist: histogram(3),
            kept: Vec::new(),
            dropped: 0,
        }
    }
}

struct Second {
    n: u64,
    n_fail: u64,
    hist: Option<Histogram<u64>>,
    p99: u64,
}

impl Second {
    fn close(&mut self) {
        if let Some(h) = self.hist.take() {
            self.p99 = quantile(&h, 0.99, h.max());
        }
    }
}

/// Everything measured in one run.
pub struct ExecStats {
    tasks: Vec<TaskStats>,
    overall: Histogram<u64>,
    n: u64,
    n_success: u64,
    n_fail: u64,
    max: u64,
    cap: usize,
    timeline: Vec<Second>,
    closed: usize,
}

impl ExecStats {
    /// Statistics for `n_tasks` task classes, keeping at most `cap` executions of each.
    pub fn new(n_tasks: usize, cap: usize) -> Self {
        ExecStats {
            tasks: (0..n_tasks).map(|_| TaskStats::new()).collect(),
            overall: histogram(3),
            n: 0,
            n_success: 0,
            n_fail: 0,
            max: 0,
            cap,
            timeline: Vec::new(),
            closed: 0,
        }
    }

    /// Adds one run.
    pub fn record(&mut self, s: Sample) {
        let e = s.elapsed_usec;
        let t = &mut self.tasks[s.task];
        t.n += 1;
        if s.is_success {
            t.n_success += 1;
        } else {
            t.n_fail += 1;
        }
        t.min = t.min.min(e);
        t.max = t.max.max(e);
        t.tot = t.tot.saturating_add(e);
        t.hist.saturating_record(e);
        if t.kept.len() < self.cap {
            t.kept.push(Kept {
                swarm_id: s.swarm_id,
                start_usec: s.start_usec,
                elapsed_usec: e,
                request_context: s.request_context,
                is_success: s.is_success,
            });
        } else {
            t.dropped += 1;
        }
        self.n += 1;
        if s.is_success {
            self.n_success += 1;
        } else {
            self.n_fail += 1;
        }
        self.max = self.max.max(e);
        self.overall.saturating_record(e);
        self.add_to_timeline(s.end_usec, e, s.is_success);
    }

    fn add_to_timeline(&mut self, end_usec: u64, e: u64, ok: bool) {
        let sec = (end_usec / 1_000_000) as usize;
        while self.timeline.len() <= sec {
            self.timeline.push(Second {
                n: 0,
                n_fail: 0,
                hist: Some(histogram(2)),
                p99: 0,
            });
        }
        let b = &mut self.timeline[sec];
        b.n += 1;
        if !ok {
            b.n_fail += 1;
        }
        // A sample for a second already closed still counts; only its p99 misses it.
        if let Some(h) = b.hist.as_mut() {
            h.saturating_record(e);
        }
        let open_from = sec.saturating_sub(OPEN_SECONDS);
        while self.closed < open_from {
            self.timeline[self.closed].close();
            self.closed += 1;
        }
    }

    /// Failed runs so far (cheap: no percentiles).
    pub fn n_fail(&self) -> u64 {
        self.n_fail
    }

    /// Counters and percentiles so far.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            n_task: self.n,
            n_success: self.n_success,
            n_fail: self.n_fail,
            p50_usec: quantile(&self.overall, 0.5, self.max),
            p99_usec: quantile(&self.overall, 0.99, self.max),
        }
    }

    /// The JobExec for this run. `t0` is the wall-clock start; sample offsets are relative to it.
    pub fn into_report(
        mut self,
        id: String,
        job: &LoadJob,
        opts: &ExecOptions,
        t0: DateTime<Utc>,
        elapsed_usec: u64,
        abort_reason: Option<String>,
    ) -> JobExec {
        let at = |usec: u64| format_time(t0 + chrono::Duration::microseconds(usec as i64));
        let mut tasks = IndexMap::with_capacity(job.tasks.len());
        for (spec, mut t) in job.tasks.iter().zip(std::mem::take(&mut self.tasks)) {
            let avg = t.tot.checked_div(t.n).unwrap_or(0);
            let min = if t.n == 0 { 0 } else { t.min };
            t.kept.sort_by_key(|k| k.start_usec);
            let executions = t
                .kept
                .into_iter()
                .map(|k| Execution {
                    id: uuid::Uuid::new_v4().to_string(),
                    swarm_id: k.swarm_id,
                    t_start: at(k.start_usec),
                    elapsed_usec: k.elapsed_usec,
                    request_context: k.request_context,
                    is_success: k.is_success,
                })
                .collect();
            tasks.insert(
                spec.task_class.clone(),
                TaskExec {
                    host: spec.host.clone(),
                    weight: spec.weight,
                    sleep_min_msec: spec.sleep_min_msec,
                    sleep_max_msec: spec.sleep_max_msec,
                    threshold_avg_usec: spec.threshold_avg_usec,
                    threshold_max_usec: spec.threshold_max_usec,
                    n_task: t.n,
                    n_success: t.n_success,
                    n_fail: t.n_fail,
                    min_usec: min,
                    max_usec: t.max,
                    avg_usec: avg,
                    tot_usec: t.tot,
                    executions,
                    threshold_avg_exceeded: spec.threshold_avg_usec > 0
                        && avg > spec.threshold_avg_usec,
                    threshold_max_exceeded: spec.threshold_max_usec > 0
                        && t.max > spec.threshold_max_usec,
                    p50_usec: quantile(&t.hist, 0.5, t.max),
                    p90_usec: quantile(&t.hist, 0.9, t.max),
                    p99_usec: quantile(&t.hist, 0.99, t.max),
                    p999_usec: quantile(&t.hist, 0.999, t.max),
                    rps: per_second(t.n, elapsed_usec),
                    n_executions_dropped: t.dropped,
                },
            );
        }
        for s in &mut self.timeline {
            s.close();
        }
        let threshold_exceeded = tasks
            .values()
            .any(|t: &TaskExec| t.threshold_avg_exceeded || t.threshold_max_exceeded);
        JobExec {
            id,
            name: job.name.clone(),
            host: job.host.clone(),
            t_start: format_time(t0),
            elapsed_usec,
            params: opts.params.clone(),
            error_400_on_threshold_exceeded: opts.error_400_on_threshold_exceeded,
            tasks,
            run_for_sec: job.run_for_sec,
            run_n: job.run_n,
            n_swarm: job.n_swarm,
            threshold_exceeded,
            rate_per_sec: job.rate_per_sec,
            aborted: abort_reason.is_some(),
            abort_reason,
            n_task: self.n,
            n_success: self.n_success,
            n_fail: self.n_fail,
            p50_usec: quantile(&self.overall, 0.5, self.max),
            p90_usec: quantile(&self.overall, 0.9, self.max),
            p99_usec: quantile(&self.overall, 0.99, self.max),
            p999_usec: quantile(&self.overall, 0.999, self.max),
            rps: per_second(self.n, elapsed_usec),
            timeline: self
                .timeline
                .iter()
                .enumerate()
                .map(|(i, s)| TimelinePoint {
                    second: i as u64,
                    n_task: s.n,
                    n_fail: s.n_fail,
                    p99_usec: s.p99,
                })
                .collect(),
            stages: job.stages.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::job::JobTask;

    fn job(tasks: &[(&str, u64, u64)]) -> LoadJob {
        LoadJob {
            name: "j".into(),
            host: Some("http://h".into()),
            tasks: tasks
                .iter()
                .map(|(c, avg, max)| JobTask {
                    task_class: c.to_string(),
                    weight: 1,
                    sleep_min_msec: 0,
                    sleep_max_msec: 0,
                    threshold_avg_usec: *avg,
                    threshold_max_usec: *max,
                    host: "http://h".into(),
                })
                .collect(),
            run_for_sec: 0,
            run_n: 1,
            n_swarm: 1,
            rate_per_sec: None,
            stages: None,
        }
    }

    fn opts() -> ExecOptions {
        crate::load::exec_request::RawExec {
            name: "j".into(),
            ..Default::default()
        }
        .check()
        .unwrap()
    }

    fn sample(task: usize, start: u64, e: u64, ok: bool) -> Sample {
        Sample {
            task,
            swarm_id: 1,
            start_usec: start,
            end_usec: start + e,
            elapsed_usec: e,
            request_context: String::new(),
            is_success: ok,
        }
    }

    #[test]
    fn counters_thresholds_and_cap() {
        let mut s = ExecStats::new(2, 2);
        for (i, e) in [448u64, 1980, 1000].into_iter().enumerate() {
            s.record(sample(0, i as u64 * 1000, e, i != 2));
        }
        let r = s.into_report(
            "x".into(),
            &job(&[("a", 1000, 0), ("b", 0, 0)]),
            &opts(),
            Utc::now(),
            2_000_000,
            None,
        );
        let a = &r.tasks["a"];
        assert_eq!((a.n_task, a.n_success, a.n_fail), (3, 2, 1));
        assert_eq!((a.min_usec, a.max_usec, a.tot_usec), (448, 1980, 3428));
        assert_eq!(a.avg_usec, 3428 / 3);
        assert!(a.threshold_avg_exceeded && !a.threshold_max_exceeded);
        assert!(r.threshold_exceeded);
        assert_eq!((a.executions.len(), a.n_executions_dropped), (2, 1));
        assert_eq!(a.rps, 1.5);
        let b = &r.tasks["b"];
        assert_eq!((b.n_task, b.min_usec, b.avg_usec), (0, 0, 0));
        assert_eq!(r.timeline.len(), 1);
        assert_eq!(r.timeline[0].n_task, 3);
    }

    #[test]
    fn percentiles_are_within_histogram_precision() {
        let mut s = ExecStats::new(1, 0);
        for v in 1..=10_000u64 {
            s.record(sample(0, v, v * 10, true));
        }
        let r = s.into_report(
            "x".into(),
            &job(&[("a", 0, 0)]),
            &opts(),
            Utc::now(),
            1,
            None,
        );
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.002;
        assert!(close(r.p50_usec, 50_000), "{}", r.p50_usec);
        assert!(close(r.p90_usec, 90_000), "{}", r.p90_usec);
        assert!(close(r.p99_usec, 99_000), "{}", r.p99_usec);
        assert!(close(r.p999_usec, 99_900), "{}", r.p999_usec);
        assert!(r.tasks["a"].executions.is_empty());
        assert_eq!(r.tasks["a"].n_executions_dropped, 10_000);
    }
}
