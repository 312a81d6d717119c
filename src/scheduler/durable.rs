//! The scheduler's seam to durable storage: what it hands writes to ([`Durable`]), what it
//! waits on ([`Commit`], [`Backlog`]) and what comes back ([`Resync`], [`ReadArgs`],
//! [`StoreError`]). The store's group-commit writer (`store::writer::Writer`) implements
//! it; the scheduler names nothing of the store, and tests can put any [`Durable`] behind
//! the actor.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::job::{JobId, JobRecord, JobSpec};
use super::write::Write;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, disk full, read-only, corruption).
    #[error("{0}")]
    Backend(String),
    /// The writer thread has stopped.
    #[error("store writer stopped")]
    Closed,
    /// Cluster: the job's claim had passed to another node, so its write changed nothing.
    #[error("job {0}: its claim passed to another node; the write changed nothing")]
    Fenced(JobId),
}

/// Where the actor's writes go: a queue that commits them in order and says when.
///
/// Writes are applied in the order they were queued; a read or a resync sees every write
/// queued before it.
pub trait Durable: Send + Sync + 'static {
    /// Queues `writes`; the returned [`Commit`] resolves once they are committed.
    fn write(&self, writes: Vec<Write>) -> Commit;
    /// Queues `writes` and runs `then` with the outcome once they are committed (at once,
    /// when there are none): a caller that waits for nothing but the commit is woken once,
    /// from the writer, rather than by the actor's answer and then by the commit.
    fn write_then(&self, writes: Vec<Write>, then: Then);
    /// Queues `writes` with no one waiting for them (internal changes such as lease expiry).
    fn write_detached(&self, writes: Vec<Write>);
    /// A commit that resolves once everything queued before it is committed.
    fn barrier(&self) -> Commit;
    /// The queue of writes not yet committed, which submits wait on.
    fn backlog(&self) -> Arc<Backlog>;
    /// Reads the stored payloads of `ids` as left by every write queued before, and hands
    /// them to `done` (keep it short: it may hold up the writes).
    fn read_args(&self, ids: Vec<JobId>, done: ReadDone);
    /// True from a failed commit until the next successful [`Durable::resync`].
    fn refusing(&self) -> bool;
    /// Notified when a commit has failed and writes are being refused until a resync (the
    /// owner of the memory state waits on it; notifying it again retries the resync).
    fn failures(&self) -> Arc<Notify>;
    /// Once every write queued before it is done: the stored state of everything refused
    /// since the first failed commit, and writes are accepted again. Empty when none failed.
    fn resync(&self) -> BoxFuture<'static, Result<Resync, StoreError>>;
}

/// What a submit asks of the backlog: its jobs and their payloads' bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Jobs submitted.
    pub jobs: usize,
    /// Their payloads' bytes together.
    pub bytes: usize,
}

impl Demand {
    /// The demand of submitting `specs`.
    pub fn of<'a>(specs: impl IntoIterator<Item = &'a JobSpec>) -> Demand {
        specs.into_iter().fold(Demand::default(), |d, s| Demand {
            jobs: d.jobs + 1,
            bytes: d.bytes + s.args.len(),
        })
    }
}

/// The writer's queue. Submits take a permit per job and one per KiB of payload
/// ([`Backlog::admit`]) and hold them until their commit resolves, so at most the bounds'
/// worth of submitted jobs and bytes wait for the store: when it falls behind (a slow disk)
/// submitters wait instead of memory growing with a queue of writes. The byte bound matters
/// for large payloads, whose uncommitted copies no payload budget can let go of: 100,000
/// jobs of 1 MiB would be 100 GiB. Reports, removes and reads take none, so workers drain
/// while submitters wait. It also counts the ops queued and not yet committed, and their peak.
#[derive(Debug)]
pub struct Backlog {
    queued: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
    permits: Arc<Semaphore>,
    limit_kib: usize,
    kib: Arc<Semaphore>,
    peak_kib: AtomicUsize,
    /// Submits waiting in [`Backlog::admit`].
    waiting: AtomicUsize,
}

/// One submit counted in [`Backlog::waiting`] until it is admitted or gives up.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Jobs (and their payload bytes) admitted and not yet committed; dropping it lets others in.
#[must_use = "hold it until the submit's commit resolves"]
pub struct Admitted(
    #[allow(dead_code)] Option<OwnedSemaphorePermit>,
    #[allow(dead_code)] Option<OwnedSemaphorePermit>,
);

impl Backlog {
    /// At most `limit` jobs and `limit_bytes` of payload admitted and not yet committed.
    pub(crate) fn new(limit: usize, limit_bytes: usize) -> Backlog {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        let limit_kib = limit_bytes.div_ceil(1024).clamp(1, u32::MAX as usize);
        Backlog {
            queued: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            limit_kib,
            kib: Arc::new(Semaphore::new(limit_kib)),
            peak_kib: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn add(&self, n: usize) {
        let now = self.queued.fetch_add(n, Ordering::AcqRel) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn committed(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// Waits until `demand` may be submitted (at once, nearly always). A batch larger than
    /// a bound waits for the whole bound. Jobs are taken before bytes by every caller, so
    /// two waiters never hold what the other waits for. Bytes count in whole KiB, rounded
    /// down: a submit of small payloads takes no byte permit at all (the job bound keeps
    /// those under 100 MB) and its path no second semaphore.
    pub async fn admit(&self, demand: Demand) -> Admitted {
        let n = demand.jobs.clamp(1, self.limit) as u32;
        // Counted only when it will wait (a read decides: the count is a gauge, and the
        // common case then costs no shared write); the semaphore's own queue keeps order.
        let _waiting = (self.permits.available_permits() < n as usize).then(|| {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            Waiting(&self.waiting)
        });
        let jobs = self.permits.clone().acquire_many_owned(n).await.ok();
        let kib = (demand.bytes / 1024).min(self.limit_kib) as u32;
        let bytes = if kib == 0 {
            None
        } else {
            let p = self.kib.clone().acquire_many_owned(kib).await.ok();
            let held = self.limit_kib - self.kib.available_permits();
            self.peak_kib.fetch_max(held, Ordering::Relaxed);
            p
        };
        Admitted(jobs, bytes)
    }

    /// Jobs admitted and not yet committed now.
    pub fn admitted(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// Submits waiting to be admitted now (for jobs; a wait for bytes is not counted).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The most payload KiB ever admitted and not yet committed at once.
    pub fn peak_kib(&self) -> usize {
        self.peak_kib.load(Ordering::Relaxed)
    }

    /// Ops queued and not yet committed.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most ops ever queued at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Jobs admitted and not yet committed at most.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Jobs whose writes in a commit were fenced out (cluster: the claim had passed to another
/// node), so the commit changed nothing for them.
pub(crate) type Fenced = Arc<BTreeSet<JobId>>;

/// What a commit's outcome is handed to in [`Durable::write_then`]; it runs on the writer's
/// thread, so keep it short (send an answer).
pub type Then = Box<dyn FnOnce(Result<Fenced, StoreError>) + Send>;

/// Payloads read back from the store, by job: what [`Writer::read_args`] hands its callback.
pub type ReadArgs = Result<std::collections::HashMap<JobId, bytes::Bytes>, StoreError>;

/// Called on the writer thread with what a read found.
pub type ReadDone = Box<dyn FnOnce(ReadArgs) + Send>;

/// What memory must be made to agree with after failed commits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resync {
    /// Jobs a refused op named by id.
    pub ids: Vec<JobId>,
    /// Tasks a refused op deleted whole.
    pub tasks: Vec<String>,
    /// The stored rows of those jobs and of every job of those tasks.
    pub jobs: Vec<JobRecord>,
    /// Every stored run-time setting (a refused `SetConfig` changed memory too).
    pub config: Vec<(String, i64)>,
}

/// Resolves once the ops it stands for are committed.
pub struct Commit {
    rx: Option<oneshot::Receiver<Result<Fenced, StoreError>>>,
    /// The job whose write this commit acknowledges: a fenced-out write fails the wait.
    job: Option<JobId>,
    /// Backlog permits of the jobs it commits, let go once it resolves.
    held: Option<Admitted>,
}

impl Commit {
    /// Nothing to wait for.
    pub fn done() -> Self {
        Commit {
            rx: None,
            job: None,
            held: None,
        }
    }

    pub(crate) fn pending(rx: oneshot::Receiver<Result<Fenced, StoreError>>) -> Self {
        Commit {
            rx: Some(rx),
            job: None,
            held: None,
        }
    }

    /// The same commit, holding the backlog permits of its jobs until it resolves.
    pub fn holding(mut self, admitted: Option<Admitted>) -> Self {
        self.held = admitted;
        self
    }

    /// The same commit, failing its wait if `job`'s write was fenced out: an acknowledgement
    /// follows what was written, not what was asked.
    pub(crate) fn for_job(mut self, job: JobId) -> Self {
        self.job = Some(job);
        self
    }

    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), StoreError> {
        let fenced = match self.rx {
            None => return Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed))?,
        };
        match self.job {
            Some(id) if fenced.contains(&id) => Err(StoreError::Fenced(id)),
            _ => Ok(()),
        }
    }
}
