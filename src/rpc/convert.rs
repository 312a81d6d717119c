//! Protobuf ⇄ scheduler types, with the validation every face shares.

use crate::face_limits::Limits;
use crate::pb;
use crate::scheduler::core::TaskStatus;
use crate::scheduler::job::*;
use crate::scheduler::limits::{LimitsRequest, TaskLimits};
use crate::scheduler::list::{JobPage, ListQuery};
use crate::scheduler::schedule::{Missed, Schedule, ScheduleSpec};
use crate::scheduler::Error;

pub(crate) use crate::scheduler::submit::check_name;
pub use crate::scheduler::submit::MAX_NAME_BYTES;
use crate::scheduler::submit::{retry_policy, RetryAsked, SubmitRequest};

/// The submit model of a protobuf submit (`traceparent` comes from the call's metadata).
pub(crate) fn submit_request(req: pb::SubmitJobRequest) -> SubmitRequest {
    SubmitRequest {
        task: req.task,
        name: req.name,
        // Decoded `bytes` fields are views into the connection's receive buffer: kept as is,
        // every stored job would pin that whole buffer (≈5 KB per job submitted by SubmitJob).
        args: bytes::Bytes::copy_from_slice(&req.args),
        sched_at_ms: req.sched_at_ms,
        timeout_ms: req.timeout_ms,
        priority: req.priority,
        retry: req.retry.map(retry_asked),
        trace: None,
        key: req.key,
    }
}

fn retry_asked(p: pb::RetryPolicy) -> RetryAsked {
    RetryAsked {
        max_attempts: p.max_attempts,
        backoff_base_ms: p.backoff_base_ms,
        backoff_max_ms: p.backoff_max_ms,
    }
}

/// Validates a protobuf submission (in the scheduler's submit model) and fills in defaults.
/// `run` marks a RunJob (no retries by default).
pub fn submit_spec(
    req: pb::SubmitJobRequest,
    limits: &Limits,
    now: Millis,
    run: bool,
) -> Result<JobSpec, Error> {
    submit_request(req).validate(&limits.submit(), now, run)
}

/// A job reference: by id, else by task and name.
pub fn job_key(r: pb::JobRef) -> Result<JobKey, Error> {
    if r.job_id != 0 {
        return Ok(JobKey::Id(r.job_id));
    }
    check_name("task", &r.task)?;
    check_name("name", &r.name)?;
    Ok(JobKey::Name {
        task: r.task,
        name: r.name,
    })
}

/// A worker's outcome.
pub fn outcome(o: Option<pb::Outcome>) -> Result<Outcome, Error> {
    use pb::outcome::Outcome as O;
    match o.and_then(|o| o.outcome) {
        None => Err(Error::invalid(
            "outcome",
            "must be one of done, fail, sched_later",
        )),
        Some(O::Done(d)) => Ok(Outcome::Done { result: d.result }),
        Some(O::Fail(f)) => Ok(Outcome::Fail {
            error: f.error,
            retry: f.retry.unwrap_or(true),
        }),
        Some(O::SchedLater(s)) => {
            if s.delay_ms < 0 {
                return Err(Error::invalid(
                    "outcome.sched_later.delay_ms",
                    format!("{} must be >= 0", s.delay_ms),
                ));
            }
            Ok(Outcome::SchedLater {
                delay_ms: s.delay_ms,
                count_step: s.count_step,
            })
        }
    }
}

fn retry_pb(r: RetryPolicy) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_attempts: r.max_attempts,
        backoff_base_ms: r.backoff_base_ms as u64,
        backoff_max_ms: r.backoff_max_ms as u64,
    }
}

/// A job record with its live state.
pub(crate) fn job_pb(r: JobRecord, state: JobState, lease: Option<LeaseId>) -> pb::Job {
    pb::Job {
        traceparent: r.trace.map(|t| t.to_string()).unwrap_or_default(),
        id: r.id,
        task: r.task,
        name: r.name,
        args: r.args,
        sched_at_ms: r.sched_at,
        timeout_ms: r.timeout_ms as i64,
        priority: r.priority,
        attempts: r.attempts,
        run_count: r.run_count,
        state: match state {
            JobState::Pending => pb::JobState::Pending,
            JobState::Scheduled => pb::JobState::Scheduled,
            JobState::Running => pb::JobState::Running,
            JobState::Dead => pb::JobState::Dead,
            JobState::Done => pb::JobState::Done,
        } as i32,
        lease_id: lease.unwrap_or(0),
        retry: Some(retry_pb(r.retry)),
        last_error: r.last_error,
        result: Default::default(),
        finished_at_ms: 0,
        key: r.key,
    }
}

/// A task's limits as protobuf (`None` when it has none).
pub(crate) fn limits_pb(l: TaskLimits) -> Option<pb::TaskLimits> {
    (!l.is_none()).then(|| pb::TaskLimits {
        max_running: l.max_running.map(i64::from),
        rate: l.rate.map(|r| r.to_string()).unwrap_or_default(),
        burst: l.burst.map(i64::from),
        max_running_per_key: l.max_running_per_key.map(i64::from),
        rate_per_key: l.rate_per_key.map(|r| r.to_string()).unwrap_or_default(),
    })
}

/// Protobuf limits as asked for (validated by [`LimitsRequest::validate`]).
pub(crate) fn limits_request(l: Option<pb::TaskLimits>) -> LimitsRequest {
    let l = l.unwrap_or_default();
    LimitsRequest {
        max_running: l.max_running,
        rate: Some(l.rate),
        burst: l.burst,
        max_running_per_key: l.max_running_per_key,
        rate_per_key: Some(l.rate_per_key),
    }
}

/// A job view as protobuf.
pub(crate) fn view_pb(v: JobView) -> pb::Job {
    pb::Job {
        result: v.result.unwrap_or_default(),
        finished_at_ms: v.finished_at.unwrap_or(0),
        ..job_pb(v.record, v.state, v.lease)
    }
}

/// A ListJobs request as the scheduler's query (validated there).
pub(crate) fn list_query(r: pb::ListJobsRequest) -> Result<ListQuery, Error> {
    let state = match pb::JobState::try_from(r.state) {
        Ok(pb::JobState::Unspecified) => None,
        Ok(pb::JobState::Pending) => Some(JobState::Pending),
        Ok(pb::JobState::Scheduled) => Some(JobState::Scheduled),
        Ok(pb::JobState::Running) => Some(JobState::Running),
        Ok(pb::JobState::Dead) => Some(JobState::Dead),
        Ok(pb::JobState::Done) => Some(JobState::Done),
        Err(_) => {
            return Err(Error::invalid(
                "state",
                format!("unknown state {}", r.state),
            ))
        }
    };
    ListQuery::new(r.task, state, r.name_prefix, r.page_size, &r.page_token)
}

/// A page of jobs as protobuf.
pub(crate) fn page_pb(p: JobPage) -> pb::ListJobsResponse {
    pb::ListJobsResponse {
        jobs: p.jobs.into_iter().map(view_pb).collect(),
        next_page_token: p.next.map(|c| c.encode()).unwrap_or_default(),
    }
}

/// A dumped job back to a record (for Load); validated like a submission.
pub fn record_from_pb(j: pb::Job, limits: &Limits) -> Result<JobRecord, Error> {
    check_name("job.task", &j.task)?;
    check_name("job.name", &j.name)?;
    if j.args.len() > limits.max_args_bytes {
        return Err(Error::invalid("job.args", "over the size limit"));
    }
    // 0 = none: the scheduler gives it the `timeout` setting, as it does a submit's (and a
    // row an earlier version stored without one).
    let timeout_ms = u32::try_from(j.timeout_ms).map_err(|_| {
        Error::invalid(
            "job.timeout_ms",
            format!(
                "{} is out of range (0 = the setting, else 1 to {})",
                j.timeout_ms,
                u32::MAX
            ),
        )
    })?;
    let retry = retry_policy(j.retry.map(retry_asked), limits.default_retry, false)?;
    Ok(JobRecord {
        id: 0,
        task: j.task,
        name: j.name,
        args: j.args,
        sched_at: j.sched_at_ms,
        timeout_ms,
        priority: j.priority,
        retry,
        attempts: j.attempts,
        run_count: j.run_count,
        dead: j.state == pb::JobState::Dead as i32,
        last_error: j.last_error,
        trace: TraceParent::parse(&j.traceparent),
        key: j.key,
        spilled: None,
    })
}

/// Task counts as protobuf.
pub(crate) fn status_pb(s: TaskStatus) -> pb::TaskStatus {
    pb::TaskStatus {
        task: s.task,
        workers: s.workers,
        pending: s.pending,
        scheduled: s.scheduled,
        running: s.running,
        dead: s.dead,
        next_sched_at_ms: s.next_sched_at.unwrap_or(0),
        locked: s.locked,
        broadcast: s.broadcast,
        paused: s.paused,
        limits: limits_pb(s.limits),
        waiting_on_limit: s.waiting_on_limit,
    }
}

/// An optional filter: empty means none.
pub(crate) fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Validates a CreateSchedule request: the job fields as a submission's, then the
/// expression and zone (by the scheduler, which parses them).
pub(crate) fn schedule_spec(
    r: pb::CreateScheduleRequest,
    limits: &Limits,
    now: Millis,
) -> Result<ScheduleSpec, Error> {
    let missed = match pb::MissedTicks::try_from(r.missed) {
        Ok(pb::MissedTicks::Unspecified | pb::MissedTicks::Skip) => Missed::Skip,
        Ok(pb::MissedTicks::One) => Missed::One,
        Ok(pb::MissedTicks::All) => Missed::All,
        Err(_) => {
            return Err(Error::invalid(
                "missed",
                format!("{} is not a MissedTicks value", r.missed),
            ))
        }
    };
    let job = submit_spec(
        pb::SubmitJobRequest {
            task: r.task,
            name: r.name.clone(),
            args: r.args,
            sched_at_ms: 0,
            timeout_ms: r.timeout_ms,
            priority: r.priority,
            retry: r.retry,
            key: String::new(),
        },
        limits,
        now,
        false,
    )?;
    let spec = ScheduleSpec {
        name: r.name,
        cron: r.cron,
        tz: r.tz,
        task: job.task,
        args: job.args,
        priority: job.priority,
        timeout_ms: job.timeout_ms,
        retry: job.retry,
        missed,
    };
    spec.validate()?;
    Ok(spec)
}

/// A schedule as protobuf; `next` and `last_job_id` only where looked up.
pub(crate) fn schedule_pb(
    s: Schedule,
    next: Vec<Millis>,
    last_job_id: Option<JobId>,
) -> pb::Schedule {
    let Schedule {
        spec,
        paused,
        last_tick,
        last_job,
    } = s;
    pb::Schedule {
        name: spec.name,
        cron: spec.cron,
        tz: spec.tz,
        task: spec.task,
        args: spec.args,
        priority: spec.priority,
        timeout_ms: spec.timeout_ms as i64,
        retry: Some(retry_pb(spec.retry)),
        missed: match spec.missed {
            Missed::Skip => pb::MissedTicks::Skip,
            Missed::One => pb::MissedTicks::One,
            Missed::All => pb::MissedTicks::All,
        } as i32,
        paused,
        last_tick_ms: last_tick,
        last_job,
        last_job_id: last_job_id.unwrap_or(0),
        next_fire_ms: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_args_do_not_pin_the_receive_buffer() {
        let buffer = bytes::Bytes::from(vec![b'x'; 8192]);
        let req = pb::SubmitJobRequest {
            task: "t".into(),
            name: "n".into(),
            args: buffer.slice(0..100),
            ..Default::default()
        };
        let spec = submit_spec(req, &Limits::default(), 0, false).unwrap();
        assert_eq!(&spec.args[..], &buffer[..100]);
        assert!(spec.args.is_unique(), "args still share the receive buffer");
    }
}
