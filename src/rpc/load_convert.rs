//! Protobuf ⇄ load runner types. Typed input is turned into the same JSON document the
//! JSON faces take, so every face shares one validation (and one set of error messages).

use serde_json::{json, Map, Value};

use std::sync::Arc;

use crate::load::agents::{Command, Share};
use crate::load::exec_request::{RawAgents, RawExec};
use crate::load::http::HttpTaskDef;
use crate::load::job::LoadJob;
use crate::load::report::{ExecSummary, JobExec, ServerStatus};
use crate::load::runner::{ExecEvent, Progress};
use crate::load::stats::{self, KeptRun, Part, SecondPart, TaskPart};
use crate::load::template::Template;
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
pub(crate) fn job_pb(j: &LoadJob) -> pb::LoadJob {
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
        agents: r.agents.map(|a| match a {
            pb::exec_request::Agents::AgentsN(n) => RawAgents::Count(i64::from(n)),
            // `agents_all: false` is a client saying "not all": read as unset.
            pb::exec_request::Agents::AgentsAll(all) => {
                if all {
                    RawAgents::All
                } else {
                    RawAgents::Count(0)
                }
            }
        }),
    }
}

/// A JobExec as protobuf; `json` is the document as archived.
pub(crate) fn exec_pb(e: &JobExec, json: String) -> pb::JobExec {
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
        agents: e
            .agents
            .iter()
            .flatten()
            .map(|a| pb::ExecAgent {
                id: a.id.clone(),
                addr: a.addr.clone(),
                swarms: a.swarms,
                n_task: a.n_task,
                lost: a.lost,
            })
            .collect(),
    }
}

/// An archived execution in brief.
pub(crate) fn summary_pb(s: ExecSummary) -> pb::ExecSummary {
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
pub(crate) fn status_pb(s: ServerStatus) -> pb::LoadStatus {
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
pub(crate) fn event_pb(e: ExecEvent) -> pb::ExecEvent {
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

/// An agent's share as its `AgentStart`.
pub(crate) fn start_pb(s: &Share) -> pb::AgentStart {
    pb::AgentStart {
        exec_id: s.exec_id.clone(),
        job_json: s.job.to_json(),
        params: s
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        classes: s
            .classes
            .iter()
            .map(|d| pb::AgentHttpClass {
                name: d.name.clone(),
                method: d.method.to_string(),
                path: d.path.source().to_string(),
                headers: d
                    .headers
                    .iter()
                    .map(|(n, v)| pb::AgentHeader {
                        name: n.to_string(),
                        value: v.source().to_string(),
                    })
                    .collect(),
                body: d.body.source().to_string(),
                expect_status: d.expect_status.iter().map(|&c| u32::from(c)).collect(),
                timeout_ms: d.timeout.as_millis().min(u64::MAX as u128) as u64,
                insecure_skip_verify: d.insecure_skip_verify,
            })
            .collect(),
        first_swarm: s.first_swarm,
        max_executions: s.max_executions,
        report_failures: s.report_failures,
    }
}

/// An `AgentStart` as the share the agent runs; a malformed one is an error naming the field.
pub(crate) fn share_of(s: pb::AgentStart) -> Result<Share, String> {
    let job: crate::load::job::LoadJob =
        serde_json::from_str(&s.job_json).map_err(|e| format!("job_json: {e}"))?;
    if s.classes.len() != job.tasks.len() {
        return Err(format!(
            "classes: {} given for {} tasks",
            s.classes.len(),
            job.tasks.len()
        ));
    }
    let classes = s
        .classes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let method = c
                .method
                .parse()
                .map_err(|e| format!("classes[{i}].method: {e}"))?;
            let headers = c
                .headers
                .into_iter()
                .map(|h| {
                    let name = http::HeaderName::from_bytes(h.name.as_bytes())
                        .map_err(|e| format!("classes[{i}].headers: {e}"))?;
                    Ok((name, Template::parse(&h.value)))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let expect_status = c
                .expect_status
                .into_iter()
                .map(|c| u16::try_from(c).map_err(|_| format!("classes[{i}].expect_status: {c}")))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Arc::new(HttpTaskDef {
                name: c.name,
                method,
                path: Template::parse(&c.path),
                headers,
                body: Template::parse(&c.body),
                expect_status,
                timeout: std::time::Duration::from_millis(c.timeout_ms),
                insecure_skip_verify: c.insecure_skip_verify,
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Share {
        exec_id: s.exec_id,
        job,
        params: s.params.into_iter().collect(),
        classes,
        first_swarm: s.first_swarm.max(1),
        max_executions: s.max_executions,
        report_failures: s.report_failures,
    })
}

/// A part of an agent's statistics as its report; swarm ids move up by `first_swarm - 1`,
/// so they number the swarms across the whole execution.
pub(crate) fn report_pb(exec_id: &str, part: Part, first_swarm: u64) -> pb::AgentReport {
    let shift = first_swarm.saturating_sub(1);
    pb::AgentReport {
        exec_id: exec_id.to_string(),
        tasks: part
            .tasks
            .into_iter()
            .map(|t| pb::AgentTaskPart {
                task: t.task as u32,
                n_success: t.n_success,
                n_fail: t.n_fail,
                min_usec: t.min_usec,
                max_usec: t.max_usec,
                tot_usec: t.tot_usec,
                histogram: stats::encode_histogram(&t.hist).into(),
                executions: t
                    .kept
                    .into_iter()
                    .map(|k| pb::AgentExecution {
                        swarm_id: k.swarm_id + shift,
                        start_usec: k.start_usec,
                        elapsed_usec: k.elapsed_usec,
                        request_context: k.request_context,
                        is_success: k.is_success,
                    })
                    .collect(),
            })
            .collect(),
        seconds: part
            .seconds
            .into_iter()
            .map(|s| pb::AgentSecond {
                second: s.second,
                n_task: s.n_task,
                n_fail: s.n_fail,
                histogram: stats::encode_histogram(&s.hist).into(),
            })
            .collect(),
    }
}

/// Most runs of one task in one report: far above what one process finishes in a second
/// (reports come about once a second), low enough that merging a report stays cheap (the
/// Prometheus feed walks every run).
const MAX_REPORT_TASKS: u64 = 10_000_000;

/// An agent's report as a part to merge (times still on the agent's clock: see
/// [`Part::shift`]).
pub(crate) fn part_of(r: pb::AgentReport) -> Result<Part, String> {
    let tasks = r
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let n = t
                .n_success
                .checked_add(t.n_fail)
                .filter(|n| *n <= MAX_REPORT_TASKS)
                .ok_or_else(|| {
                    format!("tasks[{i}]: more than {MAX_REPORT_TASKS} runs in one report")
                })?;
            if t.executions.len() as u64 > n {
                return Err(format!(
                    "tasks[{i}]: {} executions for {n} runs",
                    t.executions.len()
                ));
            }
            let hist = stats::decode_histogram(&t.histogram)
                .map_err(|e| format!("tasks[{i}].histogram: {e}"))?;
            if hist.len() != n {
                return Err(format!(
                    "tasks[{i}]: histogram holds {} runs, counts say {n}",
                    hist.len()
                ));
            }
            Ok(TaskPart {
                task: t.task as usize,
                n_success: t.n_success,
                n_fail: t.n_fail,
                min_usec: t.min_usec,
                max_usec: t.max_usec,
                tot_usec: t.tot_usec,
                hist,
                kept: t
                    .executions
                    .into_iter()
                    .map(|k| KeptRun {
                        swarm_id: k.swarm_id,
                        start_usec: k.start_usec,
                        elapsed_usec: k.elapsed_usec,
                        request_context: k.request_context,
                        is_success: k.is_success,
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let seconds = r
        .seconds
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(SecondPart {
                second: s.second,
                n_task: s.n_task,
                n_fail: s.n_fail,
                hist: stats::decode_histogram(&s.histogram)
                    .map_err(|e| format!("seconds[{i}].histogram: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Part { tasks, seconds })
}

/// A command for an agent's stream.
pub(crate) fn command_pb(c: Command) -> pb::AgentCommand {
    use pb::agent_command::Cmd;
    pb::AgentCommand {
        cmd: Some(match c {
            Command::Start(share) => Cmd::Start(start_pb(&share)),
            Command::Abort { exec_id, reason } => Cmd::Abort(pb::AgentAbort { exec_id, reason }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::{ExecStats, Sample};

    fn part() -> Part {
        let mut s = ExecStats::new(1, 10);
        for (i, e) in [900u64, 1_100, 250_000].into_iter().enumerate() {
            s.record(Sample {
                task: 0,
                swarm_id: 1 + i as u64,
                start_usec: 0,
                end_usec: e,
                elapsed_usec: e,
                request_context: String::new(),
                is_success: i != 1,
            });
        }
        s.take_part(&mut [10])
    }

    #[test]
    fn a_report_round_trips_with_swarms_numbered_across_the_execution() {
        let r = report_pb("x", part(), 11);
        assert_eq!(r.tasks[0].executions[0].swarm_id, 11);
        let p = part_of(r).unwrap();
        let t = &p.tasks[0];
        assert_eq!(
            (t.n_success, t.n_fail, t.min_usec, t.max_usec),
            (2, 1, 900, 250_000)
        );
        assert_eq!(t.hist.len(), 3);
        assert_eq!(
            t.kept.iter().map(|k| k.swarm_id).collect::<Vec<_>>(),
            [11, 12, 13]
        );
        assert_eq!(p.seconds[0].n_task, 3);
    }

    #[test]
    fn inconsistent_reports_are_refused_naming_the_part() {
        let mut r = report_pb("x", part(), 1);
        r.tasks[0].n_fail = 5;
        assert!(part_of(r)
            .unwrap_err()
            .contains("histogram holds 3 runs, counts say 7"));
        let mut r = report_pb("x", part(), 1);
        r.tasks[0].n_success = u64::MAX;
        assert!(part_of(r).unwrap_err().starts_with("tasks[0]: more than"));
        let mut r = report_pb("x", part(), 1);
        r.tasks[0].n_success = 0;
        r.tasks[0].n_fail = 2;
        assert!(part_of(r).unwrap_err().contains("3 executions for 2 runs"));
        let mut r = report_pb("x", part(), 1);
        r.seconds[0].histogram = vec![1, 2, 3].into();
        assert!(part_of(r)
            .unwrap_err()
            .starts_with("seconds[0].histogram: "));
    }
}
