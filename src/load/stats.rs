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

/// `into += from`; values beyond `into`'s range count at its top (as recording them would).
fn add_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            let _ = into.record_n(v.value_iterated_to().min(into.high()), v.count_at_value());
        }
    }
}

/// The V2 serialization of `h` (HdrHistogram's standard encoding, uncompressed).
pub(crate) fn encode_histogram(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        h,
        &mut out,
    )
    .expect("a histogram serializes into memory");
    out
}

/// Reads a V2 (or V2 deflate) serialized histogram.
pub(crate) fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("not an HDR histogram (V2 serialization): {e:?}"))
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

/// What one task's runs measured: counters and a histogram, mergeable with another's.
#[derive(Clone, Debug)]
pub struct TaskPart {
    /// Index of the task in the job.
    pub task: usize,
    /// Succeeded.
    pub n_success: u64,
    /// Failed.
    pub n_fail: u64,
    /// Fastest (meaningless when no run is counted).
    pub min_usec: u64,
    /// Slowest.
    pub max_usec: u64,
    /// Sum of latencies.
    pub tot_usec: u64,
    /// Latencies, 3 significant digits (as the server's own).
    pub hist: Histogram<u64>,
    /// Runs kept for the executions list (the rest are counted only).
    pub kept: Vec<KeptRun>,
}

/// One run kept for the executions list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptRun {
    /// Swarm, from 1.
    pub swarm_id: u64,
    /// Start, µs since the run began.
    pub start_usec: u64,
    /// Latency.
    pub elapsed_usec: u64,
    /// What the task said.
    pub request_context: String,
    /// Succeeded.
    pub is_success: bool,
}

/// One second of the timeline.
#[derive(Clone, Debug)]
pub struct SecondPart {
    /// Seconds since the run began.
    pub second: u64,
    /// Tasks finished in it.
    pub n_task: u64,
    /// Of which failed.
    pub n_fail: u64,
    /// Their latencies (2 significant digits, as the timeline's own).
    pub hist: Histogram<u64>,
}

/// Statistics of a stretch of a run (a load agent's report): everything [`ExecStats`] keeps,
/// in a form another `ExecStats` merges exactly (counts add, histograms add, min/max
/// compare), so statistics merged from parts equal those of one process seeing every sample.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// Tasks that ran.
    pub tasks: Vec<TaskPart>,
    /// Timeline seconds that changed.
    pub seconds: Vec<SecondPart>,
}

impl Part {
    /// Tasks finished in this part.
    pub fn n_task(&self) -> u64 {
        self.tasks.iter().map(|t| t.n_success + t.n_fail).sum()
    }

    /// Moves a part recorded on a clock that started `offset_usec` after the run's (a load
    /// agent started on its AgentStart) onto the run's clock.
    pub(crate) fn shift(&mut self, offset_usec: u64) {
        for t in &mut self.tasks {
            for k in &mut t.kept {
                k.start_usec = k.start_usec.saturating_add(offset_usec);
            }
        }
        for s in &mut self.seconds {
            s.second = s.second.saturating_add(offset_usec / 1_000_000);
        }
    }

    /// The latest timeline second it touches.
    pub(crate) fn last_second(&self) -> Option<u64> {
        self.seconds.iter().map(|s| s.second).max()
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

    /// Timeline second `sec`, the timeline grown to it (open seconds keep a histogram).
    fn second(&mut self, sec: usize) -> &mut Second {
        while self.timeline.len() <= sec {
            self.timeline.push(Second {
                n: 0,
                n_fail: 0,
                hist: Some(histogram(2)),
                p99: 0,
            });
        }
        &mut self.timeline[sec]
    }

    fn add_to_timeline(&mut self, end_usec: u64, e: u64, ok: bool) {
        let sec = (end_usec / 1_000_000) as usize;
        let b = self.second(sec);
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

    /// Takes what was recorded since the start or the previous call, leaving the counters
    /// empty (a load agent's per-second report). `budget[t]` is how many more runs of task
    /// `t` may be kept for the executions list; it is lowered by what the part keeps, and
    /// runs past it are dropped here (the counters still cover them).
    pub(crate) fn take_part(&mut self, budget: &mut [u64]) -> Part {
        let n_tasks = self.tasks.len();
        let tasks = std::mem::replace(
            &mut self.tasks,
            (0..n_tasks).map(|_| TaskStats::new()).collect(),
        );
        let tasks = tasks
            .into_iter()
            .enumerate()
            .filter(|(_, t)| t.n > 0)
            .map(|(i, mut t)| {
                let room = budget.get(i).copied().unwrap_or(0);
                t.kept.truncate(room.min(usize::MAX as u64) as usize);
                if let Some(b) = budget.get_mut(i) {
                    *b -= t.kept.len() as u64;
                }
                TaskPart {
                    task: i,
                    n_success: t.n_success,
                    n_fail: t.n_fail,
                    min_usec: t.min,
                    max_usec: t.max,
                    tot_usec: t.tot,
                    hist: t.hist,
                    kept: t
                        .kept
                        .into_iter()
                        .map(|k| KeptRun {
                            swarm_id: k.swarm_id,
                            start_usec: k.start_usec,
                            elapsed_usec: k.elapsed_usec,
                            request_context: k.request_context,
                            is_success: k.is_success,
                        })
                        .collect(),
                }
            })
            .collect();
        // The timeline keeps its seconds (one small entry per second of the run), emptied:
        // the last few stay open with a fresh histogram, since samples of the current
        // second go on arriving after the take; older ones are closed (a sample landing
        // there still counts, as in `add_to_timeline`).
        let open_from = self.timeline.len().saturating_sub(OPEN_SECONDS + 1);
        let mut seconds = Vec::new();
        for (i, sec) in self.timeline.iter_mut().enumerate() {
            if sec.n == 0 {
                continue;
            }
            let fresh = (i >= open_from).then(|| histogram(2));
            let hist = std::mem::replace(&mut sec.hist, fresh).unwrap_or_else(|| histogram(2));
            seconds.push(SecondPart {
                second: i as u64,
                n_task: sec.n,
                n_fail: sec.n_fail,
                hist,
            });
            (sec.n, sec.n_fail) = (0, 0);
        }
        self.overall.reset();
        (self.n, self.n_success, self.n_fail, self.max) = (0, 0, 0, 0);
        Part { tasks, seconds }
    }

    /// Adds a part recorded elsewhere (a load agent's report). A task index outside the
    /// job is an error naming it; nothing of that part is merged then.
    pub(crate) fn merge(&mut self, part: Part) -> Result<(), String> {
        if let Some(t) = part.tasks.iter().find(|t| t.task >= self.tasks.len()) {
            return Err(format!(
                "task {} out of range: the job has {}",
                t.task,
                self.tasks.len()
            ));
        }
        for p in part.tasks {
            let n = p.n_success + p.n_fail;
            if n == 0 {
                continue;
            }
            let t = &mut self.tasks[p.task];
            t.n += n;
            t.n_success += p.n_success;
            t.n_fail += p.n_fail;
            t.min = t.min.min(p.min_usec);
            t.max = t.max.max(p.max_usec);
            t.tot = t.tot.saturating_add(p.tot_usec);
            // Same bounds on both sides, so `add` cannot fail; a foreign histogram with
            // wider values saturates rather than losing the part.
            add_histogram(&mut t.hist, &p.hist);
            add_histogram(&mut self.overall, &p.hist);
            let room = self.cap.saturating_sub(t.kept.len());
            let kept = p.kept.len();
            t.kept.extend(p.kept.into_iter().take(room).map(|k| Kept {
                swarm_id: k.swarm_id,
                start_usec: k.start_usec,
                elapsed_usec: k.elapsed_usec,
                request_context: k.request_context,
                is_success: k.is_success,
            }));
            // Runs the sender did not keep, and those past the cap here, are counted only.
            t.dropped += n.saturating_sub(kept.min(room) as u64);
            self.n += n;
            self.n_success += p.n_success;
            self.n_fail += p.n_fail;
            self.max = self.max.max(p.max_usec);
        }
        let mut newest = None;
        for s in part.seconds {
            let sec = s.second as usize;
            let b = self.second(sec);
            b.n += s.n_task;
            b.n_fail += s.n_fail;
            // A report for a second already closed still counts; only its p99 misses it.
            if let Some(h) = b.hist.as_mut() {
                add_histogram(h, &s.hist);
            }
            newest = newest.max(Some(sec));
        }
        if let Some(sec) = newest {
            let open_from = sec.saturating_sub(OPEN_SECONDS);
            while self.closed < open_from {
                self.timeline[self.closed].close();
                self.closed += 1;
            }
        }
        Ok(())
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
            agents: None,
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

    /// Samples with distinct latencies per "agent" (1-3 ms, 10-30 ms, 100-300 ms).
    fn agent_samples(agent: u64) -> Vec<Sample> {
        (0..500u64)
            .map(|i| Sample {
                task: (i % 2) as usize,
                swarm_id: agent * 10 + i % 10,
                start_usec: i * 7_000,
                end_usec: i * 7_000 + 2_000,
                elapsed_usec: 10u64.pow(agent as u32) * (1_000 + i * 4),
                request_context: format!("agent {agent} run {i}"),
                is_success: i % 9 != 0,
            })
            .collect()
    }

    fn report(s: ExecStats) -> JobExec {
        s.into_report(
            "x".into(),
            &job(&[("a", 0, 0), ("b", 0, 0)]),
            &opts(),
            Utc::now(),
            4_000_000,
            None,
        )
    }

    #[test]
    fn parts_merged_equal_one_process_seeing_every_sample() {
        let mut whole = ExecStats::new(2, 10_000);
        let mut merged = ExecStats::new(2, 10_000);
        for agent in 0..3 {
            let mut own = ExecStats::new(2, 10_000);
            let mut budget = vec![10_000; 2];
            for (n, s) in agent_samples(agent).into_iter().enumerate() {
                whole.record(s.clone());
                own.record(s);
                // Reports every 100 samples, as an agent's per-second reports.
                if n % 100 == 99 {
                    let mut part = own.take_part(&mut budget);
                    // Through the wire encoding, as a report travels.
                    for t in &mut part.tasks {
                        t.hist = decode_histogram(&encode_histogram(&t.hist)).unwrap();
                    }
                    for sec in &mut part.seconds {
                        sec.hist = decode_histogram(&encode_histogram(&sec.hist)).unwrap();
                    }
                    merged.merge(part).unwrap();
                }
            }
        }
        let (w, m) = (report(whole), report(merged));
        assert_eq!(m.n_task, 1_500);
        for k in ["a", "b"] {
            let (w, m) = (&w.tasks[k], &m.tasks[k]);
            assert_eq!(
                (
                    m.n_task,
                    m.n_success,
                    m.n_fail,
                    m.min_usec,
                    m.max_usec,
                    m.tot_usec
                ),
                (
                    w.n_task,
                    w.n_success,
                    w.n_fail,
                    w.min_usec,
                    w.max_usec,
                    w.tot_usec
                )
            );
            assert_eq!(
                (m.p50_usec, m.p90_usec, m.p99_usec, m.p999_usec),
                (w.p50_usec, w.p90_usec, w.p99_usec, w.p999_usec)
            );
            assert_eq!(m.executions.len(), w.executions.len());
        }
        assert_eq!(
            (m.p50_usec, m.p90_usec, m.p99_usec, m.p999_usec),
            (w.p50_usec, w.p90_usec, w.p99_usec, w.p999_usec)
        );
        // The merged p99 is the slowest agent's range, not an average of the agents' p99s.
        assert!(m.p99_usec > 100_000, "{}", m.p99_usec);
        assert_eq!(m.timeline, w.timeline);
    }

    #[test]
    fn merged_executions_keep_the_cap_and_count_the_rest() {
        let mut merged = ExecStats::new(2, 150);
        for agent in 0..3 {
            let mut own = ExecStats::new(2, 10_000);
            // Each sender keeps at most 100 runs per task.
            let mut budget = vec![100; 2];
            for s in agent_samples(agent) {
                own.record(s);
            }
            let part = own.take_part(&mut budget);
            assert_eq!(budget, vec![0, 0]);
            assert!(part.tasks.iter().all(|t| t.kept.len() == 100));
            merged.merge(part).unwrap();
        }
        let r = report(merged);
        for t in r.tasks.values() {
            assert_eq!(t.executions.len(), 150);
            assert_eq!(t.n_executions_dropped, t.n_task - 150);
        }
    }

    #[test]
    fn a_part_naming_an_unknown_task_is_refused_whole() {
        let mut own = ExecStats::new(3, 10);
        own.record(sample(0, 0, 5, true));
        own.record(sample(2, 0, 5, true));
        let part = own.take_part(&mut [10, 10, 10]);
        let mut merged = ExecStats::new(2, 10);
        let e = merged.merge(part).unwrap_err();
        assert!(e.contains("task 2 out of range"), "{e}");
        assert_eq!(merged.snapshot().n_task, 0);
    }

    #[test]
    fn parts_of_a_long_run_carry_only_the_seconds_that_changed() {
        let mut s = ExecStats::new(1, 0);
        for sec in 0..100u64 {
            // Each second: one sample of that second, one late by a second.
            s.record(sample(0, sec * 1_000_000, 10 + sec, true));
            if sec > 0 {
                s.record(sample(0, (sec - 1) * 1_000_000 + 500_000, 20, false));
            }
            let p = s.take_part(&mut [0]);
            let got: Vec<(u64, u64)> = p.seconds.iter().map(|x| (x.second, x.n_task)).collect();
            let want = if sec == 0 {
                vec![(0, 1)]
            } else {
                vec![(sec - 1, 1), (sec, 1)]
            };
            assert_eq!(got, want);
            // The late sample is still in its second's histogram (it stays open).
            assert!(p.seconds.iter().all(|x| x.hist.len() == x.n_task));
        }
        // Closed seconds hold no histogram: memory stays one small entry per second.
        assert!(s.timeline[..90].iter().all(|x| x.hist.is_none()));
    }

    #[test]
    fn a_taken_part_leaves_empty_counters() {
        let mut s = ExecStats::new(1, 10);
        s.record(sample(0, 0, 5, false));
        let p = s.take_part(&mut [10]);
        assert_eq!((p.n_task(), p.tasks[0].n_fail, p.seconds.len()), (1, 1, 1));
        assert_eq!(s.snapshot(), Snapshot::default());
        assert_eq!(s.take_part(&mut [10]).n_task(), 0);
        assert!(decode_histogram(b"not a histogram").is_err());
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
