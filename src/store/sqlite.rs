//! Embedded SQLite store (WAL): the zero-set-up default.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{ExecRow, Op, ScheduleRow, Store, StoreError, StoreReader, StoredJobs, Syncer};
use super::{JobWrite, Write};
use crate::scheduler::job::{JobId, JobRecord, RetryPolicy, TraceParent};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// fsync every commit: acknowledged jobs survive power loss.
    #[default]
    Full,
    /// No fsync on commit in WAL mode: acknowledged jobs survive a process crash, not power loss.
    Normal,
}

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    sync: Sync,
    /// Commits since the last checkpoint this store asked for ([`Store::after_acks`]).
    commits: u32,
}

/// Commits after which [`Store::after_acks`] checkpoints the WAL.
///
/// SQLite's WAL index is a hash table per 4,096 frames with linear probing, and every frame
/// of a page sits under that page's key: a page written by each of n commits since the WAL
/// last restarted makes the next append of it probe n slots. Small commits rewrite the same
/// few pages (the B-tree's rightmost leaf), so at one RunJob in flight, with the WAL
/// restarting only every 10,000 frames, probing took 40k of the server's 206k instructions
/// per round trip (callgrind). A checkpoint lets the next commit restart the WAL, so the
/// chains stay below this length; it costs a page copy and an fsync or two (≈0.1 ms each
/// here) once per this many commits, after their callers have had their acks. Large
/// commits reach `wal_autocheckpoint`'s 10,000 frames first, as before.
const CHECKPOINT_EVERY_COMMITS: u32 = 1024;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    name TEXT NOT NULL,
    args BLOB NOT NULL,
    sched_at INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    run_count INTEGER NOT NULL,
    dead INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    trace TEXT,
    job_key TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS config (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS load_jobs (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS paused_tasks (
    task TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS task_limits (
    task TEXT PRIMARY KEY,
    limits TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL,
    last_tick INTEGER NOT NULL,
    last_job TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS load_execs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    t_start TEXT NOT NULL,
    elapsed_usec INTEGER NOT NULL,
    n_task INTEGER NOT NULL,
    n_fail INTEGER NOT NULL,
    threshold_exceeded INTEGER NOT NULL,
    aborted INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS load_execs_by_start ON load_execs (t_start, id);
";

const JOB_COLUMNS: &str = "id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
    backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key";

/// Columns added after the first release, added to an older store's table at open.
const ADDED_JOB_COLUMNS: &[(&str, &str)] = &[
    // The submitter's W3C trace context (`traceparent`), handed to the worker.
    ("trace", "ALTER TABLE jobs ADD COLUMN trace TEXT"),
    // The flow-control key.
    (
        "job_key",
        "ALTER TABLE jobs ADD COLUMN job_key TEXT NOT NULL DEFAULT ''",
    ),
];

fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        task: row.get(1)?,
        ..job_row_without_task(row)?
    })
}

/// A row's job with an empty task name (the caller holds task names once).
fn job_row_without_task(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get::<_, i64>(0)? as u64,
        task: String::new(),
        name: row.get(2)?,
        // An integer: a start-up read left the payload in the store and read its length
        // (see `read_jobs`).
        args: match row.get_ref(3)? {
            ValueRef::Integer(_) => Bytes::new(),
            v => Bytes::copy_from_slice(v.as_blob().map_err(rusqlite::Error::from)?),
        },
        sched_at: row.get(4)?,
        timeout_ms: row.get(5)?,
        priority: row.get(6)?,
        retry: RetryPolicy {
            max_attempts: row.get(7)?,
            backoff_base_ms: row.get(8)?,
            backoff_max_ms: row.get(9)?,
        },
        attempts: row.get(10)?,
        run_count: row.get(11)?,
        dead: row.get(12)?,
        last_error: row.get(13)?,
        // A stored value that does not parse is dropped, as at the edge.
        trace: row
            .get_ref(14)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?
            .and_then(TraceParent::parse),
        key: row.get(15)?,
        spilled: match row.get_ref(3)? {
            ValueRef::Integer(n) => Some(n as u32),
            _ => None,
        },
    })
}

/// Row counts from which a restart reads the jobs table with two threads.
const PARALLEL_LOAD_ROWS: i64 = 50_000;

/// Jobs with ids in `lo..=hi`, in id order, each task name read once; payloads of
/// `spill_from` bytes or more are left in the store (`length()` of a blob reads no overflow
/// page, so they cost nothing to skip).
fn read_jobs(
    conn: &Connection,
    lo: i64,
    hi: i64,
    expect: i64,
    spill_from: Option<usize>,
) -> Result<StoredJobs, StoreError> {
    // One column, the payload or its length: a second column cost 8% of a 1M-job read.
    let columns = JOB_COLUMNS.replace(
        "args,",
        "CASE WHEN length(args) < ?3 THEN args ELSE length(args) END,",
    );
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns} FROM jobs WHERE id BETWEEN ?1 AND ?2 ORDER BY id"
    ))?;
    let mut out = StoredJobs::with_capacity(expect.clamp(0, 1 << 24) as usize);
    let spill_from = spill_from.map_or(i64::MAX, |n| n as i64);
    let mut rows = stmt.query(params![lo, hi, spill_from])?;
    while let Some(row) = rows.next()? {
        let task = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        out.push(task, job_row_without_task(row)?);
    }
    Ok(out)
}

const EXEC_COLUMNS: &str =
    "id, name, t_start, elapsed_usec, n_task, n_fail, threshold_exceeded, aborted";

fn exec_row(row: &rusqlite::Row<'_>, with_json: bool) -> rusqlite::Result<ExecRow> {
    Ok(ExecRow {
        id: row.get(0)?,
        name: row.get(1)?,
        t_start: row.get(2)?,
        elapsed_usec: row.get::<_, i64>(3)? as u64,
        n_task: row.get::<_, i64>(4)? as u64,
        n_fail: row.get::<_, i64>(5)? as u64,
        threshold_exceeded: row.get(6)?,
        aborted: row.get(7)?,
        json: if with_json {
            row.get(8)?
        } else {
            String::new()
        },
    })
}

/// Turns off SQLite's memory statistics before its first connection (it can only be set
/// then). With them on, every allocation SQLite makes takes a process-wide mutex to count
/// it; nothing here reads the counts.
fn no_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. Called before any connection is
        // opened by this process's store; if SQLite is already initialized (a bench opened
        // a connection first) it refuses with SQLITE_MISUSE and keeps counting.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            )
        };
    });
}

impl SqliteStore {
    /// Opens (creating when missing) `dir/taskhive.db`.
    pub fn open(dir: &Path, sync: Sync) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        let path = dir.join("taskhive.db");
        no_memory_statistics();
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match sync {
                Sync::Full => "FULL",
                Sync::Normal => "NORMAL",
            },
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Group commits write many pages at once: a bigger cache keeps the B-tree interior
        // pages resident, and rarer checkpoints keep their fsyncs off most commits.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.execute_batch(SCHEMA)?;
        add_columns(&conn)?;
        Ok(SqliteStore {
            conn,
            path,
            sync,
            commits: 0,
        })
    }
}

/// Brings an older store's `jobs` table up to [`JOB_COLUMNS`].
fn add_columns(conn: &Connection) -> Result<(), StoreError> {
    let have: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('jobs')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (column, alter) in ADDED_JOB_COLUMNS {
        if !have.iter().any(|h| h == column) {
            conn.execute_batch(alter)?;
        }
    }
    Ok(())
}

/// The WAL file's `fdatasync`, run by the writer's sync thread ([`Store::take_syncer`]).
struct WalSync {
    file: std::fs::File,
    path: PathBuf,
}

impl Syncer for WalSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::Backend(format!("fdatasync {}: {e}", self.path.display())))
    }
}

impl Store for SqliteStore {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The statements of the ops a group commit is made of (a job stored, a job gone),
        // taken from the cache once per commit rather than once per op: each take and give
        // back hashes the SQL text and resets the statement (about 2k instructions a job).
        let mut upsert = None;
        let mut delete = None;
        let moot = super::moot_writes(ops);
        for (i, op) in ops.iter().enumerate() {
            if moot.as_ref().is_some_and(|m| m[i]) {
                continue;
            }
            match op {
                Op::Scheduler(Write::Job(JobWrite::Upsert(r))) => {
                    let stmt = match &mut upsert {
                        Some(stmt) => stmt,
                        None => upsert.insert(tx.prepare_cached(
                            "INSERT OR REPLACE INTO jobs (id, task, name, args, sched_at, timeout_ms, priority,
                             max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error,
                             trace, job_key)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                        )?),
                    };
                    stmt.execute(params![
                        r.id as i64,
                        r.task,
                        r.name,
                        &r.args[..],
                        r.sched_at,
                        r.timeout_ms,
                        r.priority,
                        r.retry.max_attempts,
                        r.retry.backoff_base_ms,
                        r.retry.backoff_max_ms,
                        r.attempts,
                        r.run_count,
                        r.dead,
                        r.last_error,
                        r.trace.map(|t| t.to_string()),
                        r.key,
                    ])?;
                }
                Op::Scheduler(Write::Job(JobWrite::Reschedule {
                    id,
                    sched_at,
                    attempts,
                    run_count,
                    dead,
                    last_error,
                })) => {
                    tx.prepare_cached(
                        "UPDATE jobs SET sched_at = ?2, attempts = ?3, run_count = ?4, dead = ?5, last_error = ?6
                         WHERE id = ?1",
                    )?
                    .execute(params![*id as i64, sched_at, attempts, run_count, dead, last_error])?;
                }
                Op::Scheduler(Write::Job(JobWrite::Delete(id))) => {
                    let stmt = match &mut delete {
                        Some(stmt) => stmt,
                        None => delete.insert(tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?),
                    };
                    stmt.execute(params![*id as i64])?;
                }
                // One node holds every job: no claims to give back.
                Op::Scheduler(Write::Release(_)) => {}
                Op::Scheduler(Write::Job(JobWrite::DeleteTask(task))) => {
                    tx.prepare_cached("DELETE FROM jobs WHERE task = ?1")?
                        .execute(params![task])?;
                }
                Op::Scheduler(Write::SetConfig { key, value }) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO config (key, value) VALUES (?1, ?2)",
                    )?
                    .execute(params![key, value])?;
                }
                Op::Scheduler(Write::PutSchedule(r)) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO schedules (name, spec, paused, last_tick, last_job)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        r.name,
                        r.spec,
                        r.paused,
                        r.last_tick,
                        r.last_job
                    ])?;
                }
                Op::Scheduler(Write::SetTaskPaused { task, paused: true }) => {
                    tx.prepare_cached("INSERT OR REPLACE INTO paused_tasks (task) VALUES (?1)")?
                        .execute(params![task])?;
                }
                Op::Scheduler(Write::SetTaskPaused {
                    task,
                    paused: false,
                }) => {
                    tx.prepare_cached("DELETE FROM paused_tasks WHERE task = ?1")?
                        .execute(params![task])?;
                }
                Op::Scheduler(Write::SetTaskLimits {
                    task,
                    limits: Some(text),
                }) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO task_limits (task, limits) VALUES (?1, ?2)",
                    )?
                    .execute(params![task, text])?;
                }
                Op::Scheduler(Write::SetTaskLimits { task, limits: None }) => {
                    tx.prepare_cached("DELETE FROM task_limits WHERE task = ?1")?
                        .execute(params![task])?;
                }
                Op::Scheduler(Write::DeleteSchedule(name)) => {
                    tx.prepare_cached("DELETE FROM schedules WHERE name = ?1")?
                        .execute(params![name])?;
                }
                Op::SaveLoadJob { name, json } => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO load_jobs (name, json) VALUES (?1, ?2)",
                    )?
                    .execute(params![name, json])?;
                }
                Op::ArchiveExec(r) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO load_execs (id, name, t_start, elapsed_usec, n_task, n_fail,
                         threshold_exceeded, aborted, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        r.id,
                        r.name,
                        r.t_start,
                        r.elapsed_usec as i64,
                        r.n_task as i64,
                        r.n_fail as i64,
                        r.threshold_exceeded,
                        r.aborted,
                        r.json,
                    ])?;
                }
                Op::TrimExecs(keep) => {
                    tx.prepare_cached(
                        "DELETE FROM load_execs WHERE id NOT IN
                         (SELECT id FROM load_execs ORDER BY t_start DESC, id DESC LIMIT ?1)",
                    )?
                    .execute(params![*keep as i64])?;
                }
            }
        }
        // Given back to the cache before the commit, which needs `tx` by value.
        drop((upsert, delete));
        tx.commit()?;
        self.commits += 1;
        Ok(())
    }

    fn after_acks(&mut self) {
        if self.commits < CHECKPOINT_EVERY_COMMITS {
            return;
        }
        self.commits = 0;
        // PASSIVE: copies what no reader still needs and never waits for one; a reader in
        // the way only postpones the restart to a later checkpoint.
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }

    /// With `--sync full`: SQLite stops syncing the WAL at each commit (`synchronous=NORMAL`)
    /// and the returned [`WalSync`] does it instead. In WAL mode a commit is durable once its
    /// frames, the last one marked as a commit, are on disk, which one `fdatasync` of the WAL
    /// file ensures for every commit written before it. What NORMAL still does is what FULL
    /// did besides: the WAL synced before each checkpoint copies from it, the database file
    /// after, the WAL's header when it starts over. The WAL file keeps its inode while this
    /// connection is open (SQLite deletes it only when the last connection closes).
    fn take_syncer(&mut self) -> Result<Option<Box<dyn Syncer>>, StoreError> {
        if self.sync != Sync::Full {
            return Ok(None);
        }
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .map_err(|e| StoreError::Backend(format!("open {}: {e}", wal.display())))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Some(Box::new(WalSync { file, path: wal })))
    }

    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.load_stored_jobs(None)?.into_records())
    }

    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Bytes)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT args FROM jobs WHERE id = ?1")?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let args = stmt
                .query_row(params![id as i64], |r| {
                    Ok(Bytes::copy_from_slice(
                        r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?,
                    ))
                })
                .optional()?;
            out.extend(args.map(|a| (id, a)));
        }
        Ok(out)
    }

    fn load_stored_jobs(&mut self, spill_from: Option<usize>) -> Result<StoredJobs, StoreError> {
        let (lo, hi): (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT min(id), max(id) FROM jobs", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(StoredJobs::default());
        };
        // Ids are dense in practice: the span is a fair guess at the row count.
        let n = hi - lo + 1;
        // Rows are read on connections of their own with a small page cache, closed after:
        // a scan through the writer's connection would leave its 64 MiB cache full of job
        // pages for good. Decoding rows is most of a big restart, so past a few thousand the
        // upper half of the ids is read on a second thread (WAL readers do not block).
        let path = &self.path;
        let read = |lo: i64, hi: i64| -> Result<StoredJobs, StoreError> {
            // One thread per connection: without NO_MUTEX every column read takes and
            // gives back the connection's mutex (30% of a 1M-job read in perf).
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "cache_size", -1_024)?;
            read_jobs(&conn, lo, hi, hi - lo + 1, spill_from)
        };
        if n < PARALLEL_LOAD_ROWS {
            return read(lo, hi);
        }
        let mid = lo + (hi - lo) / 2;
        std::thread::scope(|scope| {
            let upper = scope.spawn(|| read(mid + 1, hi));
            let mut lower = read(lo, mid)?;
            lower.append(upper.join().expect("job reader thread")?);
            Ok(lower)
        })
    }

    fn load_some(&mut self, ids: &[JobId], tasks: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        {
            let mut by_id = self
                .conn
                .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
            for &id in ids {
                if let Some(r) = by_id.query_row(params![id as i64], job_row).optional()? {
                    out.insert(r.id, r);
                }
            }
        }
        let mut by_task = self
            .conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE task = ?1"))?;
        for t in tasks {
            for r in by_task.query_map(params![t], job_row)? {
                let r = r?;
                out.insert(r.id, r);
            }
        }
        Ok(out.into_values().collect())
    }

    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM config ORDER BY key")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, json FROM load_jobs ORDER BY name")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task, limits FROM task_limits ORDER BY task")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task FROM paused_tasks ORDER BY task")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, spec, paused, last_tick, last_job FROM schedules ORDER BY name",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(ScheduleRow {
                name: row.get(0)?,
                spec: row.get(1)?,
                paused: row.get(2)?,
                last_tick: row.get(3)?,
                last_job: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError> {
        // WAL lets this connection read committed data while the writer thread writes.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Box::new(SqliteReader {
            conn: Mutex::new(conn),
        }))
    }
}

/// A read-only connection for archived executions.
struct SqliteReader {
    conn: Mutex<Connection>,
}

impl StoreReader for SqliteReader {
    fn list_execs(&self, name: Option<&str>, limit: usize) -> Result<Vec<ExecRow>, StoreError> {
        let conn = self.conn.lock().expect("poisoned");
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = match name {
            Some(n) => conn
                .prepare_cached(&format!(
                    "SELECT {EXEC_COLUMNS} FROM load_execs WHERE name = ?1
                     ORDER BY t_start DESC, id DESC LIMIT ?2"
                ))?
                .query_map(params![n, limit], |r| exec_row(r, false))?
                .collect::<Result<Vec<_>, _>>()?,
            None => conn
                .prepare_cached(&format!(
                    "SELECT {EXEC_COLUMNS} FROM load_execs ORDER BY t_start DESC, id DESC LIMIT ?1"
                ))?
                .query_map(params![limit], |r| exec_row(r, false))?
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    fn get_exec(&self, id: &str) -> Result<Option<ExecRow>, StoreError> {
        let conn = self.conn.lock().expect("poisoned");
        let row = conn
            .prepare_cached(&format!(
                "SELECT {EXEC_COLUMNS}, json FROM load_execs WHERE id = ?1"
            ))?
            .query_row(params![id], |r| exec_row(r, true))
            .optional()?;
        Ok(row)
    }

    fn get_load_job(&self, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn.lock().expect("poisoned");
        let json = conn
            .prepare_cached("SELECT json FROM load_jobs WHERE name = ?1")?
            .query_map(params![name], |r| r.get::<_, String>(0))?
            .next()
            .transpose()?;
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames in the WAL since it last restarted (`log` of `wal_checkpoint`, which also
    /// checkpoints: call it once per store).
    fn wal_frames(store: &SqliteStore) -> i64 {
        store
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .expect("wal_checkpoint")
    }

    fn commit_one(store: &mut SqliteStore, value: i64) {
        let op = Op::Scheduler(Write::SetConfig {
            key: "timeout".into(),
            value,
        });
        store.apply(&[op]).expect("commit");
    }

    fn synchronous(store: &SqliteStore) -> i64 {
        store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("synchronous")
    }

    /// `--sync full` hands the commit's WAL sync to a syncer (SQLite itself drops to NORMAL,
    /// 1, from FULL, 2); `--sync normal` has none to hand over.
    #[test]
    fn full_sync_takes_the_wal_sync_out_of_the_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(dir.path(), Sync::Full).expect("open");
        assert_eq!(synchronous(&store), 2);
        let mut syncer = store
            .take_syncer()
            .expect("syncer")
            .expect("full syncs apart");
        assert_eq!(synchronous(&store), 1);
        commit_one(&mut store, 7);
        syncer.sync().expect("fdatasync of the WAL");
        drop(store);
        let mut again = SqliteStore::open(dir.path(), Sync::Full).expect("reopen");
        assert_eq!(
            again.load_config().expect("config"),
            [("timeout".to_string(), 7)]
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let mut normal = SqliteStore::open(dir.path(), Sync::Normal).expect("open");
        assert!(normal.take_syncer().expect("no error").is_none());
        assert_eq!(synchronous(&normal), 1);
    }

    #[test]
    fn after_acks_checkpoints_every_so_many_commits_so_the_wal_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(dir.path(), Sync::Normal).expect("open");
        for i in 0..CHECKPOINT_EVERY_COMMITS {
            store.after_acks();
            commit_one(&mut store, i.into());
        }
        store.after_acks();
        // The commit after the checkpoint starts the WAL over.
        commit_one(&mut store, -1);
        let frames = wal_frames(&store);
        assert!(frames <= 4, "{frames} frames: the WAL did not restart");
    }

    #[test]
    fn fewer_commits_leave_the_wal_to_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = SqliteStore::open(dir.path(), Sync::Normal).expect("open");
        let n = CHECKPOINT_EVERY_COMMITS / 2;
        for i in 0..n {
            commit_one(&mut store, i.into());
            store.after_acks();
        }
        let frames = wal_frames(&store);
        assert!(frames >= i64::from(n), "{frames} frames after {n} commits");
    }
}
