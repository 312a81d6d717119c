//! The free-disk watermark (`serve --min-free-disk`) of the SQLite store.
//!
//! [`DiskWatch`] reads the free space of the data directory's filesystem (`statvfs`, the
//! space an unprivileged process may use) on a thread of its own every 500 ms; a check is
//! one atomic load. [`DiskGuarded`] wraps the client API's [`Backend`]: below the watermark
//! every call that adds jobs (submit, submit_many, submit_each, run_job, load) is refused
//! with `RESOURCE_EXHAUSTED` "disk almost full (N bytes free)", while reports, removes,
//! reads, the dead set and settings go on, so workers can drain what is stored. Reports
//! still write (a result is a row update), which is what the headroom is for.
//!
//! PostgreSQL stores are not watched: the database's disk is the database's concern.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::scheduler::backend::{Backend, Fut, SubmittedEach};
use crate::scheduler::core::{SubmitReply, TaskStatus};
use crate::scheduler::job::{JobId, JobKey, JobRecord, JobSpec, JobView, Millis};
use crate::scheduler::limits::TaskLimits;
use crate::scheduler::list::{JobPage, ListQuery};
use crate::scheduler::schedule::{Schedule, ScheduleSpec};
use crate::scheduler::Error;

/// How often the free space is read again.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The free space of one filesystem, refreshed in the background.
pub struct DiskWatch {
    dir: PathBuf,
    min_free: u64,
    free: AtomicU64,
    low: AtomicBool,
    gauge: Option<prometheus::IntGauge>,
}

/// Bytes available to unprivileged users on the filesystem holding `dir`.
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a struct we own.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

impl DiskWatch {
    /// Reads the free space of `dir`'s filesystem now, then every [`REFRESH`] on a thread
    /// that ends with the last reference to the watch; each reading also sets `gauge`.
    pub fn start(
        dir: &Path,
        min_free: u64,
        gauge: Option<prometheus::IntGauge>,
    ) -> std::io::Result<Arc<DiskWatch>> {
        let w = Arc::new(DiskWatch {
            dir: dir.to_path_buf(),
            min_free,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
            gauge,
        });
        w.refresh()?;
        let weak: Weak<DiskWatch> = Arc::downgrade(&w);
        std::thread::Builder::new()
            .name("taskhive-disk".into())
            .spawn(move || loop {
                std::thread::sleep(REFRESH);
                match weak.upgrade() {
                    Some(w) => {
                        if let Err(e) = w.refresh() {
                            tracing::warn!(dir = %w.dir.display(), error = %e, "statvfs failed");
                        }
                    }
                    None => return,
                }
            })?;
        Ok(w)
    }

    fn refresh(&self) -> std::io::Result<()> {
        let free = free_bytes(&self.dir)?;
        self.free.store(free, Ordering::Relaxed);
        if let Some(g) = &self.gauge {
            g.set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        let low = free < self.min_free;
        if self.low.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::warn!(
                    free,
                    min_free = self.min_free,
                    dir = %self.dir.display(),
                    "disk almost full: new jobs are refused until space is freed"
                );
            } else {
                tracing::info!(
                    free,
                    min_free = self.min_free,
                    "disk space back: new jobs accepted"
                );
            }
        }
        Ok(())
    }

    /// Free bytes at the last reading.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Refuses new jobs while the free space is under the watermark.
    pub fn check(&self) -> Result<(), Error> {
        let free = self.free();
        if free < self.min_free {
            return Err(Error::ResourceExhausted(format!(
                "disk almost full ({free} bytes free)"
            )));
        }
        Ok(())
    }
}

/// A [`Backend`] that refuses new jobs while the disk is almost full; see the module docs.
pub struct DiskGuarded {
    inner: Arc<dyn Backend>,
    disk: Arc<DiskWatch>,
}

impl DiskGuarded {
    /// `inner` behind the watermark of `disk`.
    pub(crate) fn wrap(inner: Arc<dyn Backend>, disk: Arc<DiskWatch>) -> Arc<dyn Backend> {
        Arc::new(DiskGuarded { inner, disk })
    }
}

fn refused<T: Send + 'static>(e: Error) -> Fut<T> {
    Box::pin(async move { Err(e) })
}

impl Backend for DiskGuarded {
    fn submit(&self, spec: JobSpec) -> Fut<SubmitReply> {
        match self.disk.check() {
            Ok(()) => self.inner.submit(spec),
            Err(e) => refused(e),
        }
    }

    fn submit_many(&self, specs: Vec<JobSpec>) -> Fut<Vec<SubmitReply>> {
        match self.disk.check() {
            Ok(()) => self.inner.submit_many(specs),
            Err(e) => refused(e),
        }
    }

    fn submit_each(&self, specs: Vec<JobSpec>) -> BoxFuture<'static, SubmittedEach> {
        match self.disk.check() {
            Ok(()) => self.inner.submit_each(specs),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn admit(
        &self,
        demand: crate::scheduler::durable::Demand,
    ) -> BoxFuture<'static, Option<crate::scheduler::durable::Admitted>> {
        self.inner.admit(demand)
    }

    fn run_job(&self, spec: JobSpec) -> Fut<(JobId, Bytes)> {
        match self.disk.check() {
            Ok(()) => self.inner.run_job(spec),
            Err(e) => refused(e),
        }
    }

    fn load(&self, record: JobRecord) -> Fut<()> {
        match self.disk.check() {
            Ok(()) => self.inner.load(record),
            Err(e) => refused(e),
        }
    }

    fn remove(&self, key: JobKey) -> Fut<JobId> {
        self.inner.remove(key)
    }

    fn get(&self, key: JobKey) -> Fut<JobView> {
        self.inner.get(key)
    }

    fn drop_task(&self, task: String) -> Fut<u64> {
        self.inner.drop_task(task)
    }

    fn status(&self, task: Option<String>) -> Fut<(Vec<TaskStatus>, TaskStatus)> {
        self.inner.status(task)
    }

    fn list_dead(&self, task: Option<String>, limit: usize) -> Fut<Vec<JobView>> {
        self.inner.list_dead(task, limit)
    }

    fn retry_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        self.inner.retry_dead(task, name)
    }

    fn purge_dead(&self, task: Option<String>, name: Option<String>) -> Fut<u64> {
        self.inner.purge_dead(task, name)
    }

    fn dump_page(&self, after: JobId, limit: usize) -> Fut<Vec<JobRecord>> {
        self.inner.dump_page(after, limit)
    }

    fn get_config(&self, key: String) -> Fut<BTreeMap<String, i64>> {
        self.inner.get_config(key)
    }

    fn set_config(&self, key: String, value: i64) -> Fut<()> {
        self.inner.set_config(key, value)
    }

    fn has_worker(&self, task: String) -> Fut<bool> {
        self.inner.has_worker(task)
    }

    fn list_jobs(&self, query: ListQuery) -> Fut<JobPage> {
        self.inner.list_jobs(query)
    }

    fn pause_task(&self, task: String, paused: bool) -> Fut<()> {
        self.inner.pause_task(task, paused)
    }

    fn set_task_limits(&self, task: String, limits: TaskLimits) -> Fut<()> {
        self.inner.set_task_limits(task, limits)
    }

    fn get_task_limits(&self, task: String) -> Fut<TaskLimits> {
        self.inner.get_task_limits(task)
    }

    fn put_schedule(&self, spec: ScheduleSpec, now: Millis) -> Fut<()> {
        self.inner.put_schedule(spec, now)
    }

    fn list_schedules(&self) -> Fut<Vec<Schedule>> {
        self.inner.list_schedules()
    }

    fn get_schedule(&self, name: String) -> Fut<Schedule> {
        self.inner.get_schedule(name)
    }

    fn pause_schedule(&self, name: String, paused: bool, now: Millis) -> Fut<()> {
        self.inner.pause_schedule(name, paused, now)
    }

    fn delete_schedule(&self, name: String) -> Fut<()> {
        self.inner.delete_schedule(name)
    }

    fn watch_started(&self, task: String, name: String) -> Fut<()> {
        self.inner.watch_started(task, name)
    }

    fn acquire_lock(&self, lease: u64, name: String, count: u32) -> Fut<bool> {
        self.inner.acquire_lock(lease, name, count)
    }

    fn release_lock(&self, lease: u64, name: String) -> Fut<()> {
        self.inner.release_lock(lease, name)
    }

    /// A refused tick is not lost: the schedule driver tries it again a moment later.
    fn fire_schedule(&self, name: String, last: Millis, jobs: Vec<JobSpec>) -> Fut<bool> {
        match self.disk.check() {
            Ok(()) => self.inner.fire_schedule(name, last, jobs),
            Err(e) => refused(e),
        }
    }
}

/// Parses a size: plain bytes (`1048576`), or a number with a unit: `B`, decimal `KB MB GB
/// TB`, binary `KiB MiB GiB TiB` (`K M G T` alone are binary too). Case-insensitive.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    if num.is_empty() {
        return Err(format!("{s:?} is not a size"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f * (mult as f64) < u64::MAX as f64 => {
            Ok((f * mult as f64) as u64)
        }
        _ => Err(format!("{s:?} is not a size")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5KB"), Ok(1_500));
        assert_eq!(parse_size("1000TB"), Ok(1_000_000_000_000_000));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TB").is_err());
    }

    #[test]
    fn the_watch_reads_the_filesystem_and_refuses_under_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let free = super::free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let ok = super::DiskWatch::start(dir.path(), 0, None).unwrap();
        assert!(ok.check().is_ok());
        let full = super::DiskWatch::start(dir.path(), u64::MAX, None).unwrap();
        let e = full.check().unwrap_err().to_string();
        assert!(
            e.starts_with("disk almost full (") && e.ends_with(" bytes free)"),
            "{e}"
        );
    }
}
