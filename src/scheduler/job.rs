//! Job model shared by the core, the store and the faces.

pub use super::trace::TraceParent;
use bytes::Bytes;

/// Job identifier: allocated by the core, never reused.
pub type JobId = u64;
/// Lease identifier: a fencing token, unique across restarts.
pub type LeaseId = u64;
/// Worker identifier, unique within one server run.
pub type WorkerId = u64;
/// Index of a task in the core's task table.
pub type TaskId = u32;
/// Wall-clock time in unix milliseconds.
pub type Millis = i64;

/// How a failing job is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the job moves to the dead set.
    pub max_attempts: u32,
    /// First backoff, doubled on every further attempt.
    pub backoff_base_ms: u32,
    /// Backoff cap.
    pub backoff_max_ms: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 25,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
        }
    }
}

/// What a worker says about a leased job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The job is finished; it is removed and RunJob waiters get `result`.
    Done {
        /// Handed to RunJob waiters.
        result: Bytes,
    },
    /// The attempt failed; retried with backoff when `retry`, else dead at once.
    Fail {
        /// Why it failed.
        error: String,
        /// Whether the retry policy applies (else dead at once).
        retry: bool,
    },
    /// Run again after `delay_ms`; the run count grows by `count_step`.
    SchedLater {
        /// Delay before the next run.
        delay_ms: i64,
        /// Added to the run count (0 counts as 1).
        count_step: u32,
    },
}

/// A validated submission.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Task name (1..=255 bytes).
    pub task: String,
    /// Job name, unique within the task (1..=255 bytes).
    pub name: String,
    /// Opaque payload.
    pub args: Bytes,
    /// When the job becomes due.
    pub sched_at: Millis,
    /// Lease length (0 = the server's current default).
    pub timeout_ms: u32,
    /// Higher first among due jobs.
    pub priority: i32,
    /// Retry policy with server defaults filled in.
    pub retry: RetryPolicy,
    /// The submitter's trace context, handed to the worker that runs the job.
    pub trace: Option<TraceParent>,
    /// Flow-control key (a tenant, an account, a host; empty = none): limits per key and
    /// fairness between keys.
    pub key: String,
}

impl JobSpec {
    /// A new job of this spec under `id`: no attempts, runs or error yet.
    pub(crate) fn into_record(self, id: JobId) -> JobRecord {
        JobRecord {
            id,
            task: self.task,
            name: self.name,
            args: self.args,
            sched_at: self.sched_at,
            timeout_ms: self.timeout_ms,
            priority: self.priority,
            retry: self.retry,
            attempts: 0,
            run_count: 0,
            dead: false,
            last_error: String::new(),
            trace: self.trace,
            key: self.key,
            spilled: None,
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Due and waiting for a worker.
    Pending,
    /// Due in the future.
    Scheduled,
    /// Leased to a worker.
    Running,
    /// Failed past its retry cap.
    Dead,
    /// Finished; kept for `serve --keep-results`.
    Done,
}

/// A full job as stored, dumped and shown to clients.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct JobRecord {
    /// Job id.
    pub id: JobId,
    /// Task name.
    pub task: String,
    /// Job name.
    pub name: String,
    /// Payload.
    pub args: Bytes,
    /// Due time.
    pub sched_at: Millis,
    /// Lease length.
    pub timeout_ms: u32,
    /// Priority.
    pub priority: i32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Failed attempts so far.
    pub attempts: u32,
    /// SchedLater count.
    pub run_count: u32,
    /// In the dead set.
    pub dead: bool,
    /// Last failure message (empty when none).
    pub last_error: String,
    /// The submitter's trace context.
    pub trace: Option<TraceParent>,
    /// Flow-control key (empty = none).
    pub key: String,
    /// `Some(len)`: the payload (`len` bytes) is held in the store only and `args` is empty,
    /// to be read back before the job is handed out or shown (`serve --payload-memory`).
    /// Never set on a record written to the store or sent to a client.
    pub spilled: Option<u32>,
}

/// A job as a client sees it: the record plus its live state and lease.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// The job.
    pub record: JobRecord,
    /// Live state.
    pub state: JobState,
    /// The current lease when running.
    pub lease: Option<LeaseId>,
    /// A finished job's result (kept results).
    pub result: Option<Bytes>,
    /// When a finished job finished (kept results).
    pub finished_at: Option<Millis>,
}

/// Identifies a job by id or by task and name.
#[derive(Clone, Debug)]
pub enum JobKey {
    /// By id.
    Id(JobId),
    /// By task and name.
    Name {
        /// Task name.
        task: String,
        /// Job name.
        name: String,
    },
}
