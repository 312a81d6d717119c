//! The submit model: what every face (gRPC, the JSON face, Periodic's binary protocol and its
//! curl API, the load runner) turns its own wire form into, validated once here against the
//! server's limits into a [`JobSpec`]. The faces only convert; no face validates a submit.

use bytes::Bytes;

use super::error::Error;
use super::job::{JobSpec, Millis, RetryPolicy, TraceParent};

/// Longest task or job name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a task or job name: non-empty and at most 255 bytes of UTF-8.
pub(crate) fn check_name(field: &'static str, v: &str) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("is {} bytes; at most {MAX_NAME_BYTES} allowed", v.len()),
        ));
    }
    Ok(())
}

/// The server limits a submit is checked against.
#[derive(Clone, Copy, Debug)]
pub struct SubmitLimits {
    /// Largest accepted payload.
    pub max_args_bytes: usize,
    /// How far ahead a job may be scheduled.
    pub max_schedule_ahead_ms: i64,
    /// Retry policy fields a job leaves at zero.
    pub default_retry: RetryPolicy,
}

/// A retry policy as asked for: zero fields take the server's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryAsked {
    /// Attempts before the dead set (0 = default).
    pub max_attempts: u32,
    /// First backoff (0 = default).
    pub backoff_base_ms: u64,
    /// Longest backoff (0 = default).
    pub backoff_max_ms: u64,
}

/// A submit as a face received it, not yet checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubmitRequest {
    /// Task (Periodic's func).
    pub task: String,
    /// Job name, unique within the task.
    pub name: String,
    /// Payload.
    pub args: Bytes,
    /// When the job is due, unix ms; 0 or less = now.
    pub sched_at_ms: i64,
    /// Lease length; None = the server's run-time `timeout` setting.
    pub timeout_ms: Option<i64>,
    /// Higher first among due jobs.
    pub priority: i32,
    /// Retry policy; None = the server's (a RunJob's: one attempt).
    pub retry: Option<RetryAsked>,
    /// The submitter's trace context.
    pub trace: Option<TraceParent>,
    /// Flow-control key (empty = none).
    pub key: String,
}

impl SubmitRequest {
    /// Checks every field against `limits` and fills in defaults; errors name the field.
    /// `run` marks a RunJob: its caller hears of the first failure, so no retries by default.
    pub fn validate(self, limits: &SubmitLimits, now: Millis, run: bool) -> Result<JobSpec, Error> {
        check_name("task", &self.task)?;
        check_name("name", &self.name)?;
        super::limits::check_key(&self.key)?;
        if self.args.len() > limits.max_args_bytes {
            return Err(Error::invalid(
                "args",
                format!(
                    "is {} bytes; at most {} allowed",
                    self.args.len(),
                    limits.max_args_bytes
                ),
            ));
        }
        let sched_at = if self.sched_at_ms <= 0 {
            now
        } else if self.sched_at_ms > now.saturating_add(limits.max_schedule_ahead_ms) {
            return Err(Error::invalid(
                "sched_at_ms",
                format!(
                    "{} is more than {} days ahead",
                    self.sched_at_ms,
                    limits.max_schedule_ahead_ms / 86_400_000
                ),
            ));
        } else {
            self.sched_at_ms
        };
        let timeout_ms = match self.timeout_ms {
            // 0 = the server's run-time "timeout" setting, resolved by the scheduler.
            None => 0,
            Some(t) if t <= 0 => {
                return Err(Error::invalid("timeout_ms", format!("{t} must be > 0")))
            }
            Some(t) if t > u32::MAX as i64 => {
                return Err(Error::invalid(
                    "timeout_ms",
                    format!("{t} is over the limit of {} ms", u32::MAX),
                ))
            }
            Some(t) => t as u32,
        };
        let retry = retry_policy(self.retry, limits.default_retry, run)?;
        Ok(JobSpec {
            task: self.task,
            name: self.name,
            args: self.args,
            sched_at,
            timeout_ms,
            priority: self.priority,
            retry,
            trace: self.trace,
            key: self.key,
        })
    }
}

/// A retry policy as asked for, with `default`'s fields where it leaves zeros.
pub(crate) fn retry_policy(
    asked: Option<RetryAsked>,
    default: RetryPolicy,
    run: bool,
) -> Result<RetryPolicy, Error> {
    let d = default;
    let Some(p) = asked else {
        // A RunJob caller hears of the first failure; retrying behind its back would be a surprise.
        return Ok(if run {
            RetryPolicy {
                max_attempts: 1,
                ..d
            }
        } else {
            d
        });
    };
    let ms = |field: &'static str, v: u64, default: u32| -> Result<u32, Error> {
        match v {
            0 => Ok(default),
            v if v > u32::MAX as u64 => Err(Error::invalid(field, format!("{v} is too large"))),
            v => Ok(v as u32),
        }
    };
    let r = RetryPolicy {
        max_attempts: if p.max_attempts == 0 {
            d.max_attempts
        } else {
            p.max_attempts
        },
        backoff_base_ms: ms(
            "retry.backoff_base_ms",
            p.backoff_base_ms,
            d.backoff_base_ms,
        )?,
        backoff_max_ms: ms("retry.backoff_max_ms", p.backoff_max_ms, d.backoff_max_ms)?,
    };
    if r.max_attempts > 10_000 {
        return Err(Error::invalid("retry.max_attempts", "at most 10000"));
    }
    if r.backoff_base_ms > r.backoff_max_ms {
        return Err(Error::invalid(
            "retry.backoff_base_ms",
            "must not exceed retry.backoff_max_ms",
        ));
    }
    Ok(r)
}
