//! Embedded SQLite store (WAL): the zero-set-up default.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{params, Connection};

use super::{Op, Store, StoreError};
use crate::scheduler::job::{JobRecord, RetryPolicy};

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
}

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
    UNIQUE (task, name)
);
CREATE TABLE IF NOT EXISTS config (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

impl SqliteStore {
    /// Opens (creating when missing) `dir/taskhive.db`.
    pub fn open(dir: &Path, sync: Sync) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("taskhive.db"))?;
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
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn })
    }
}

impl Store for SqliteStore {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for op in ops {
            match op {
                Op::Upsert(r) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO jobs (id, task, name, args, sched_at, timeout_ms, priority,
                         max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    )?
                    .execute(params![
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
                    ])?;
                }
                Op::Reschedule {
                    id,
                    sched_at,
                    attempts,
                    run_count,
                    dead,
                    last_error,
                } => {
                    tx.prepare_cached(
                        "UPDATE jobs SET sched_at = ?2, attempts = ?3, run_count = ?4, dead = ?5, last_error = ?6
                         WHERE id = ?1",
                    )?
                    .execute(params![*id as i64, sched_at, attempts, run_count, dead, last_error])?;
                }
                Op::Delete(id) => {
                    tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?
                        .execute(params![*id as i64])?;
                }
                Op::DeleteTask(task) => {
                    tx.prepare_cached("DELETE FROM jobs WHERE task = ?1")?
                        .execute(params![task])?;
                }
                Op::SetConfig { key, value } => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO config (key, value) VALUES (?1, ?2)",
                    )?
                    .execute(params![key, value])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, task, name, args, sched_at, timeout_ms, priority, max_attempts, backoff_base_ms,
             backoff_max_ms, attempts, run_count, dead, last_error FROM jobs ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(JobRecord {
                id: row.get::<_, i64>(0)? as u64,
                task: row.get(1)?,
                name: row.get(2)?,
                args: Bytes::from(row.get::<_, Vec<u8>>(3)?),
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
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM config ORDER BY key")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
