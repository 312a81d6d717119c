//! Protobuf ⇄ load runner types. Typed input is turned into the same JSON document the
//! JSON faces take, so every face shares one validation (and one set of error messages).

use serde_json::{json, Map, Value};

use crate::load::exec_request::RawExec;
use crate::load::job::LoadJob;
use crate::load::report::{ExecSummary, JobExec, ServerStatus};
use crate::load::runner::{ExecEvent, Progress};
use crate::pb;

/// A typed job as the JSON document `/job` would take: unset fields are left out, so
/// defaults and error messages are the same as for JSON input.
pub fn job_value(j: pb::LoadJob) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(j.name));
    if !j.host.is_empty() {
        m.insert("host".into(), json!(j.host));
    }
    let tasks: Vec<Value> = j
        .tasks
        .into_iter()
        .map(|t| {
            let mut o = Map::new();
            o.insert("task_class".into(), json!(t.task_class));
            if let Some(w) = t.weight {
                o.insert("weight".into(), json!(w));
            }
            o.insert("sleep_min_msec".into(), json!(t.sleep_min_msec));
            o.insert("sleep_max_msec".into(), json!(t.sleep_max_msec));
            o.insert("threshold_avg_usec".into(), json!(t.threshold_avg_usec));
            o.insert("threshold_max_usec".into(), json!(t.threshold_max_usec));
            if !t.host.is_empty() {
                o.insert("host".into(), json!(t.host));
            }
            Value::Object(o)
        })
        .collect();
    m.insert("tasks".into(), Value::Array(tasks));
    m.insert("run_for_sec".into(), json!(j.run_for_sec));
    m.insert("run_n".into(), json!(j.run_n));
    if let Some(n) = j.n_swarm {
        m.insert("n_swarm".into(), json!(n));
    }
    if let Some(r) = j.rate_per_sec {
        m.insert("rate_per_sec".into(), json!(r));
    }
    if !j.stages.is_empty() {
        let stages: Vec<Value> = j
            .stages
            .iter()
            .map(|s| json!({"duration_sec": s.duration_sec, "target": s.target}))
            .collect();
        m.insert("stages".into(), Value::Array(stages));
    }
    Value::Object(m)
}

/// A saved job as protobuf, with its JSON.
pub fn job_pb(j: &LoadJob) -> pb::LoadJob {
    pb::LoadJob {
        name: j.name.clone(),
        host: j.host.clone().unwrap_or_default(),
        tasks: j
            .tasks
            .iter()
            .map(|t| pb::LoadTask {
                task_class: t.task_class.clone(),
                weight: Some(t.weight as i64),
                sleep_min_msec: t.sleep_min_msec as i64,
                sleep_max_msec: t.sleep_max_msec as i64,
                threshold_avg_usec: t.threshold_avg_usec as i64,
                threshold_max_usec: t.threshold_max_usec as i64,
                host: t.host.clone(),
            })
            .collect(),
        run_for_sec: j.run_for_sec as i64,
        run_n: j.run_n as i64,
        n_swarm: Some(j.n_swarm as i64),
        rate_per_sec: j.rate_per_sec,
        json: j.to_json(),
        stages: j
            .stages
            .iter()
            .flatten()
            .map(|s| pb::LoadStage {
                duration_sec: s.duration_sec as i64,
                target: s.target as i64,
            })
            .collect(),
    }
}

/// An Exec request before validation.
pub fn raw_exec(r: pb::ExecRequest) -> RawExec {
    let mut params: Vec<(String, String)> = r.params.into_iter().collect();
    params.sort();
    RawExec {
        name: r.name,
        params,
        max_failure_count: r.max_failure_count,
        report_progress: r.report_progress,
        report_failures: r.report_failures,
        error_400_on_threshold_exceeded: r.error_400_on_threshold_exceeded,
        webhook_url: r.webhook_url,
    }
}

/// A JobExec as protobuf; `json` is the document as archived.
pub fn exec_pb(e: &JobExec, json: String) -> pb::JobExec {
    pb::JobExec {
        id: e.id.clone(),
        name: e.name.clone(),
        host: e.host.clone().unwrap_or_default(),
        t_start: e.t_start.clone(),
        elapsed_usec: e.elapsed_usec,
        params: e
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        error_400_on_threshold_exceeded: e.error_400_on_threshold_exceeded,
        tasks: e
            .tasks
            .iter()
            .map(|(class, t)| pb::TaskExec {
                task_class: class.clone(),
                host: t.host.clone(),
                weight: t.weight as i64,
                sleep_min_msec: t.sleep_min_msec as i64,
                sleep_max_msec: t.sleep_max_msec as i64,
                threshold_avg_usec: t.threshold_avg_usec as i64,
                threshold_max_usec: t.threshold_max_usec as i64,
                n_task: t.n_task,
                n_success: t.n_success,
                n_fail: t.n_fail,
                min_usec: t.min_usec,
                max_usec: t.max_usec,
                avg_usec: t.avg_usec,
                tot_usec: t.tot_usec,
                threshold_avg_exceeded: t.threshold_avg_exceeded,
                threshold_max_exceeded: t.threshold_max_exceeded,
                p50_usec: t.p50_usec,
                p90_usec: t.p90_usec,
                p99_usec: t.p99_usec,
                p999_usec: t.p999_usec,
                rps: t.rps,
                n_executions_dropped: t.n_executions_dropped,
            })
            .collect(),
        run_for_sec: e.run_for_sec as i64,
        run_n: e.run_n as i64,
        n_swarm: e.n_swarm as i64,
        threshold_exceeded: e.threshold_exceeded,
        rate_per_sec: e.rate_per_sec,
        aborted: e.aborted,
        abort_reason: e.abort_reason.clone().unwrap_or_default(),
        n_task: e.n_task,
        n_success: e.n_success,
        n_fail: e.n_fail,
        p50_usec: e.p50_usec,
        p90_usec: e.p90_usec,
        p99_usec: e.p99_usec,
        p999_usec: e.p999_usec,
        rps: e.rps,
        json,
    }
}

/// An archived execution in brief.
pub fn summary_pb(s: ExecSummary) -> pb::ExecSummary {
    pb::ExecSummary {
        id: s.id,
        name: s.name,
        t_start: s.t_start,
        elapsed_usec: s.elapsed_usec,
        n_task: s.n_task,
        n_fail: s.n_fail,
        threshold_exceeded: s.threshold_exceeded,
        aborted: s.aborted,
    }
}

/// The server status, typed and as JSON.
pub fn status_pb(s: ServerStatus) -> pb::LoadStatus {
    let json = serde_json::to_string(&s).expect("a status serializes");
    let r = s
        .running
        .unwrap_or_else(|| crate::load::report::RunningExec {
            exec_id: String::new(),
            name: String::new(),
            t_start: String::new(),
            elapsed_usec: 0,
            n_task: 0,
            n_success: 0,
            n_fail: 0,
        });
    pb::LoadStatus {
        running: s.state == "running",
        exec_id: r.exec_id,
        name: r.name,
        t_start: r.t_start,
        elapsed_usec: r.elapsed_usec,
        n_task: r.n_task,
        n_success: r.n_success,
        n_fail: r.n_fail,
        last_exec: s.last_exec.map(summary_pb),
        json,
    }
}

fn progress_pb(p: Progress) -> pb::ExecProgress {
    pb::ExecProgress {
        exec_id: p.exec_id,
        name: p.name,
        elapsed_usec: p.elapsed_usec,
        n_task: p.so_far.n_task,
        n_success: p.so_far.n_success,
        n_fail: p.so_far.n_fail,
        rps: p.rps,
        p50_usec: p.so_far.p50_usec,
        p99_usec: p.so_far.p99_usec,
        planned_n: p.planned_n,
        run_for_sec: p.run_for_sec,
    }
}

/// One Exec stream event.
pub fn event_pb(e: ExecEvent) -> pb::ExecEvent {
    use pb::exec_event::Event;
    pb::ExecEvent {
        event: Some(match e {
            ExecEvent::Progress(p) => Event::Progress(progress_pb(p)),
            ExecEvent::Enqueued { exec_id } => Event::Enqueued(pb::ExecEnqueued { exec_id }),
            ExecEvent::Finished(x) => {
                let json = x.to_json();
                Event::Finished(exec_pb(&x, json))
            }
        }),
    }
}
