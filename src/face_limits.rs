//! Limits and defaults every face applies to what it is sent (`serve --max-args-bytes`,
//! `--max-message-bytes`, ...). A leaf: the faces and the server name it, it names only the
//! scheduler's submit model.

use crate::scheduler::job::RetryPolicy;

/// Limits and defaults applied to every submission.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted job payload.
    pub max_args_bytes: usize,
    /// Lease length when a job sets none.
    pub default_timeout_ms: u32,
    /// Retry policy fields a job leaves at zero.
    pub default_retry: RetryPolicy,
    /// How far ahead a job may be scheduled.
    pub max_schedule_ahead_ms: i64,
    /// Largest incoming gRPC message, HTTP body or Periodic frame; 0 = the payload limit plus 64 KiB.
    pub max_message_bytes: usize,
}

impl Limits {
    /// What a submit is checked against (the scheduler's submit model).
    pub fn submit(&self) -> crate::scheduler::submit::SubmitLimits {
        crate::scheduler::submit::SubmitLimits {
            max_args_bytes: self.max_args_bytes,
            max_schedule_ahead_ms: self.max_schedule_ahead_ms,
            default_retry: self.default_retry,
        }
    }

    /// The message and body size limit in force.
    pub(crate) fn message_limit(&self) -> usize {
        if self.max_message_bytes == 0 {
            self.max_args_bytes + 64 * 1024
        } else {
            self.max_message_bytes
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_args_bytes: 1 << 20,
            default_timeout_ms: 600_000,
            default_retry: RetryPolicy::default(),
            max_schedule_ahead_ms: 10 * 366 * 24 * 3600 * 1000,
            max_message_bytes: 0,
        }
    }
}
