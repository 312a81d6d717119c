//! The load engine's scheduling under paused time: stop conditions, sleeps, weights and the
//! arrival-rate schedule, with a fake executor whose latencies are exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use taskhive::load::engine::{self, Attempt, Executor, Invocation, Live, Plan};
use taskhive::load::exec_request::RawExec;
use taskhive::load::job::{JobTask, LoadJob};
use taskhive::load::report::JobExec;
use taskhive::load::stages::Stage;
use taskhive::load::stats::ExecStats;

type ByCall<T> = Box<dyn Fn(u64) -> T + Send + Sync>;

/// Takes `latency(call number)` and fails when `fail(call number)`.
struct Fake {
    calls: AtomicU64,
    latency: ByCall<Duration>,
    fail: ByCall<bool>,
}

impl Executor for Fake {
    fn execute(&self, _inv: Invocation) -> BoxFuture<'_, Attempt> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            tokio::time::sleep((self.latency)(n)).await;
            Attempt {
                is_success: !(self.fail)(n),
                request_context: format!("call {n}"),
                elapsed_usec: None,
            }
        })
    }
}

fn job(tasks: &[(&str, u64, u64, u64)], run_for_sec: u64, run_n: u64, n_swarm: u64) -> LoadJob {
    LoadJob {
        name: "j".into(),
        host: None,
        tasks: tasks
            .iter()
            .map(|&(class, weight, lo, hi)| JobTask {
                task_class: class.into(),
                weight,
                sleep_min_msec: lo,
                sleep_max_msec: hi,
                threshold_avg_usec: 0,
                threshold_max_usec: 0,
                host: "http://h".into(),
            })
            .collect(),
        run_for_sec,
        run_n,
        n_swarm,
        rate_per_sec: None,
        stages: None,
    }
}

async fn run(job: &LoadJob, fake: Fake, max_failures: u64) -> JobExec {
    let live = Arc::new(Live::new(
        "x".into(),
        ExecStats::new(job.tasks.len(), usize::MAX),
        max_failures,
        false,
    ));
    engine::run(Arc::new(Plan::of(job)), Arc::new(fake), live.clone()).await;
    let opts = RawExec {
        name: "j".into(),
        ..Default::default()
    }
    .check()
    .unwrap();
    let elapsed = live.elapsed().as_micros() as u64;
    live.take_stats().into_report(
        "x".into(),
        job,
        &opts,
        chrono::Utc::now(),
        elapsed,
        live.abort_reason(),
    )
}

fn fixed(ms: u64) -> impl Fn(u64) -> Duration + Send + Sync {
    move |_| Duration::from_millis(ms)
}

fn never(_: u64) -> bool {
    false
}

fn fake(
    latency: impl Fn(u64) -> Duration + Send + Sync + 'static,
    fail: impl Fn(u64) -> bool + Send + Sync + 'static,
) -> Fake {
    Fake {
        calls: AtomicU64::new(0),
        latency: Box::new(latency),
        fail: Box::new(fail),
    }
}

#[tokio::test(start_paused = true)]
async fn run_for_sec_stops_at_the_deadline() {
    let j = job(&[("a", 1, 0, 0)], 1, 0, 3);
    let r = run(&j, fake(fixed(10), never), 0).await;
    // Tasks start at 0, 10, ..., 990 ms: 100 per swarm, then the deadline.
    assert_eq!(r.n_task, 300);
    assert_eq!(r.elapsed_usec, 1_000_000);
    assert_eq!(r.tasks["a"].min_usec, 10_000);
    assert_eq!(r.tasks["a"].max_usec, 10_000);
}

#[tokio::test(start_paused = true)]
async fn run_n_counts_per_swarm_and_no_sleep_follows_the_last_task() {
    let j = job(&[("a", 1, 20, 20)], 0, 5, 2);
    let r = run(&j, fake(fixed(10), never), 0).await;
    assert_eq!(r.n_task, 10);
    // 5 tasks of 10 ms and 4 sleeps of 20 ms.
    assert_eq!(r.elapsed_usec, 130_000);
}

#[tokio::test(start_paused = true)]
async fn sleeps_are_cut_at_the_deadline() {
    let j = job(&[("a", 1, 800, 800)], 1, 0, 1);
    let r = run(&j, fake(fixed(10), never), 0).await;
    // Tasks at 0 and 810 ms; the sleep after the second would end at 1620 ms.
    assert_eq!(r.n_task, 2);
    assert_eq!(r.elapsed_usec, 1_000_000);
}

#[tokio::test(start_paused = true)]
async fn sleeps_are_uniform_in_the_range() {
    let j = job(&[("a", 1, 0, 10)], 0, 2001, 1);
    let r = run(&j, fake(fixed(1), never), 0).await;
    // 2001 tasks of 1 ms and 2000 sleeps of mean 5 ms (sd of the sum ≈ 142 ms).
    let sleeping = r.elapsed_usec - 2001 * 1000;
    assert!((9_300_000..=10_700_000).contains(&sleeping), "{sleeping}");
}

#[tokio::test(start_paused = true)]
async fn weights_split_the_tasks() {
    let j = job(&[("a", 1, 0, 0), ("b", 4, 0, 0)], 0, 1000, 2);
    let r = run(&j, fake(fixed(1), never), 0).await;
    let b = r.tasks["b"].n_task;
    // Binomial(2000, 0.8): mean 1600, sd 17.9; ±90 is 5 sd.
    assert!((1510..=1690).contains(&b), "{b}");
    assert_eq!(r.tasks["a"].n_task + b, 2000);
}

#[tokio::test(start_paused = true)]
async fn max_failures_stops_every_swarm() {
    let j = job(&[("a", 1, 0, 0)], 60, 0, 4);
    let r = run(&j, fake(fixed(10), |n| n % 3 == 0), 5).await;
    assert!(r.aborted);
    assert_eq!(
        r.abort_reason.as_deref(),
        Some("max_failure_count 5 reached")
    );
    // Tasks already running when the fifth failure lands still finish (at most one per swarm).
    assert!((5..=8).contains(&r.n_fail), "{}", r.n_fail);
    assert!(r.elapsed_usec < 1_000_000);
}

fn stall_fifth(n: u64) -> Duration {
    if n == 4 {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(1)
    }
}

#[tokio::test(start_paused = true)]
async fn arrival_rate_counts_waiting_behind_a_stall() {
    let mut j = job(&[("a", 1, 0, 0)], 1, 0, 1);
    j.rate_per_sec = Some(100.0);
    let open = run(&j, fake(stall_fifth, never), 0).await;
    // Slots every 10 ms; slot 4 (due 40 ms) takes 500 ms, so slots due 50..530 ms start late.
    assert!(open.n_task >= 90, "{}", open.n_task);
    let late = open.tasks["a"]
        .executions
        .iter()
        .filter(|e| e.elapsed_usec >= 100_000)
        .count();
    assert!((40..=50).contains(&late), "{late} late");
    assert!(open.p99_usec >= 450_000, "{}", open.p99_usec);
    // The closed model sees one slow task.
    j.rate_per_sec = None;
    let closed = run(&j, fake(stall_fifth, never), 0).await;
    let slow = closed.tasks["a"]
        .executions
        .iter()
        .filter(|e| e.elapsed_usec >= 100_000)
        .count();
    assert_eq!(slow, 1);
    assert!(closed.p99_usec < 10_000, "{}", closed.p99_usec);
}

#[tokio::test(start_paused = true)]
async fn arrival_rate_keeps_its_schedule_and_run_n_is_a_total() {
    let mut j = job(&[("a", 1, 0, 0)], 0, 25, 4);
    j.rate_per_sec = Some(50.0);
    let r = run(&j, fake(fixed(1), never), 0).await;
    assert_eq!(r.n_task, 100);
    // Slot 99 is due at 1.98 s and takes 1 ms.
    assert_eq!(r.elapsed_usec, 1_981_000);
    assert!(r.tasks["a"]
        .executions
        .iter()
        .all(|e| e.elapsed_usec == 1000));
}

fn stages(list: &[(u64, u64)]) -> Option<Vec<Stage>> {
    Some(
        list.iter()
            .map(|&(duration_sec, target)| Stage {
                duration_sec,
                target,
            })
            .collect(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_staged_rate_ramps_the_timeline() {
    // 0 → 2,000/s over 5 s: 400·t²/2 tasks by time t, 200·(2i + 1) finishing in second i.
    let mut j = job(&[("a", 1, 0, 0)], 0, 0, 50);
    j.rate_per_sec = Some(0.0);
    j.stages = stages(&[(5, 2000)]);
    let r = run(&j, fake(fixed(2), never), 0).await;
    let per_second: Vec<u64> = r.timeline.iter().map(|p| p.n_task).collect();
    // The last tasks, due just before 5 s, finish in a sixth second.
    assert!(
        per_second.len() <= 6 && per_second[5..].iter().sum::<u64>() < 10,
        "{per_second:?}"
    );
    for (i, &n) in per_second[..5].iter().enumerate() {
        let want = 200.0 * (2 * i + 1) as f64;
        assert!(
            (n as f64 - want).abs() <= want * 0.1,
            "second {i}: {n} tasks, want {want} ± 10% ({per_second:?})"
        );
    }
    // 5,000 due; the timer's 1 ms ticks push the few due in the last ms past the end.
    assert!((4990..=5000).contains(&r.n_task), "{}", r.n_task);
    // The JobExec records the stages after Beetle's keys.
    let x: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(
        x["stages"],
        serde_json::json!([{"duration_sec": 5, "target": 2000}])
    );
}

#[tokio::test(start_paused = true)]
async fn staged_swarms_join_and_leave_on_the_ramp() {
    // 1 → 5 swarms over 4 s (swarm n joins at n - 1 s), 5 for 1 s, then down to 1 over 4 s.
    let mut j = job(&[("a", 1, 0, 0)], 0, 0, 5);
    j.stages = stages(&[(4, 5), (1, 5), (4, 1)]);
    let r = run(&j, fake(fixed(100), never), 0).await;
    let per_second: Vec<u64> = r.timeline.iter().map(|p| p.n_task).collect();
    // 10 tasks per active swarm per second, give or take the tasks that end exactly on a
    // second boundary and the one a leaving swarm has in flight; a last task in flight at
    // 9 s ends in a tenth second.
    let want = [10, 20, 30, 40, 50, 40, 30, 20, 10];
    assert!(per_second.len() <= 10, "{per_second:?}");
    for (i, w) in want.iter().enumerate() {
        assert!(
            per_second[i].abs_diff(*w) <= 2,
            "second {i}: want {w} ± 2, got {per_second:?}"
        );
    }
    assert!(r.elapsed_usec >= 9_000_000 && r.elapsed_usec <= 9_100_000);
}
