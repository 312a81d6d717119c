//! PostgreSQL store: for several nodes on one database, or where PostgreSQL is already run.
//!
//! Uses the synchronous `postgres` client: the store lives on the writer thread, which
//! blocks on commits anyway. A batch of ops is one transaction; runs of the same op kind
//! become one multi-row statement (arrays unnested server-side), so a batch of 5,000
//! submits costs a handful of round trips rather than 5,000.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use postgres::{Client, Row};

use super::{ExecRow, Op, ScheduleRow, Store, StoreError, StoreReader, StoredJobs};
use super::{JobWrite, Write};
use crate::scheduler::job::{JobId, JobRecord, RetryPolicy, TraceParent};

/// Schema migrations, applied in order at start-up; `schema_version` records the last one.
/// Append only: a released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: the tables of the SQLite store.
    "CREATE TABLE jobs (
        id BIGINT PRIMARY KEY,
        task TEXT NOT NULL,
        name TEXT NOT NULL,
        args BYTEA NOT NULL,
        sched_at BIGINT NOT NULL,
        timeout_ms BIGINT NOT NULL,
        priority INTEGER NOT NULL,
        max_attempts BIGINT NOT NULL,
        backoff_base_ms BIGINT NOT NULL,
        backoff_max_ms BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        run_count BIGINT NOT NULL,
        dead BOOLEAN NOT NULL,
        last_error TEXT NOT NULL,
        UNIQUE (task, name)
    );
    CREATE TABLE config (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    CREATE TABLE load_jobs (name TEXT PRIMARY KEY, json TEXT NOT NULL);
    CREATE TABLE load_execs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        t_start TEXT NOT NULL,
        elapsed_usec BIGINT NOT NULL,
        n_task BIGINT NOT NULL,
        n_fail BIGINT NOT NULL,
        threshold_exceeded BOOLEAN NOT NULL,
        aborted BOOLEAN NOT NULL,
        json TEXT NOT NULL
    );
    CREATE INDEX load_execs_by_start ON load_execs (t_start, id);",
    // 2: cluster claims: the owning node, its claim's expiry, and the fencing token.
    "ALTER TABLE jobs ADD COLUMN owner TEXT;
     ALTER TABLE jobs ADD COLUMN claim_until TIMESTAMPTZ;
     ALTER TABLE jobs ADD COLUMN lease_version BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX jobs_due ON jobs (task, sched_at) WHERE NOT dead;
     CREATE SEQUENCE job_ids;",
    // 3: RunJob across nodes: which jobs someone waits on, and their results.
    "ALTER TABLE jobs ADD COLUMN wait BOOLEAN NOT NULL DEFAULT false;
     CREATE TABLE results (id BIGINT PRIMARY KEY, ok BOOLEAN NOT NULL, data BYTEA NOT NULL);",
    // 4: each cluster node's workers, so any node can answer Status, RunJob and DropTask
    // for the whole cluster; a node unseen for a claim TTL is gone.
    "CREATE TABLE cluster_nodes (node TEXT PRIMARY KEY, workers INT NOT NULL, seen TIMESTAMPTZ NOT NULL);
     CREATE TABLE cluster_workers (node TEXT NOT NULL, task TEXT NOT NULL, workers INT NOT NULL,
        broadcast BOOLEAN NOT NULL, PRIMARY KEY (node, task));",
    // 5: `taskhive_submit`, for applications that enqueue inside their own transaction.
    SUBMIT_FUNCTION,
    // 6: ListJobs' orders, one index each: pending in run order (priority negated as a
    // bigint, so the keyset is one row comparison), scheduled by (sched_at, id), dead jobs by
    // id. None covers owner or claim_until, so claims and renewals stay HOT updates (which is
    // why running jobs, the claimed ones, have no index: see ARCHITECTURE.md). The scheduled
    // index extends jobs_due with id and serves the claimer's queries as well, so jobs_due goes.
    "CREATE INDEX jobs_list_pending ON jobs (task, (-(priority::bigint)), sched_at, id) WHERE NOT dead;
     CREATE INDEX jobs_list_scheduled ON jobs (task, sched_at, id) WHERE NOT dead;
     CREATE INDEX jobs_list_dead ON jobs (task, id) WHERE dead;
     DROP INDEX jobs_due;",
    // 7: schedules (cron): the spec as JSON, and the last tick fired, advanced by
    // compare-and-set together with the tick's job.
    "CREATE TABLE schedules (name TEXT PRIMARY KEY, spec TEXT NOT NULL, paused BOOLEAN NOT NULL,
        last_tick BIGINT NOT NULL, last_job TEXT NOT NULL);",
    // 8: paused tasks (PauseTask): their jobs are kept and none is claimed.
    "CREATE TABLE paused_tasks (task TEXT PRIMARY KEY);",
    // 9: cluster kept results (`--keep-results`): a done job's outcome until it expires.
    "CREATE TABLE results_kept (task TEXT NOT NULL, name TEXT NOT NULL, id BIGINT NOT NULL,
        attempts BIGINT NOT NULL, result BYTEA NOT NULL, finished_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL, PRIMARY KEY (task, name));
     CREATE INDEX results_kept_by_expiry ON results_kept (expires_at);
     CREATE INDEX results_kept_by_id ON results_kept (id);",
    // 10: cluster watchers (WatchJob, RunJobStream, RecvData on one node of a job that runs
    // on another): which node watches which (task, name).
    "CREATE TABLE job_watches (task TEXT NOT NULL, name TEXT NOT NULL, node TEXT NOT NULL,
        PRIMARY KEY (task, name, node));",
    // 11: cluster-wide named locks (Periodic's ACQUIRE/RELEASE): who holds or waits for
    // each lock, and its limit; the functions serialize on the limit's row.
    LOCK_FUNCTIONS,
    // 12: the submitter's W3C trace context (`traceparent`), handed to the worker.
    "ALTER TABLE jobs ADD COLUMN trace TEXT;",
    // 13: flow control: each job's key, and each task's limits with the cluster's token
    // buckets (`tat_us`, `key_tat`: see `cluster/limits.rs`).
    "ALTER TABLE jobs ADD COLUMN job_key TEXT NOT NULL DEFAULT '';
     CREATE TABLE task_limits (task TEXT PRIMARY KEY, limits TEXT NOT NULL,
        tat_us BIGINT NOT NULL DEFAULT 0);
     CREATE TABLE task_key_buckets (task TEXT NOT NULL, job_key TEXT NOT NULL,
        tat_us BIGINT NOT NULL, PRIMARY KEY (task, job_key));",
    // 14: a job an earlier version stored with `timeout_ms = 0` (its lease length left to
    // the claiming node's `timeout` setting) gets the stored setting now, as a single
    // server fills such jobs when it starts, so GetJob and ListJobs show its real lease.
    // Every submit path stores the setting since. The claim still fills a 0 that a node of
    // the earlier version writes during an upgrade.
    "UPDATE jobs SET timeout_ms = LEAST(COALESCE(
        (SELECT value * 1000 FROM config WHERE key = 'timeout'), 600000), 4294967295)
     WHERE timeout_ms = 0;",
];

/// Migration 11: named locks held across a cluster. `cluster_locks` has one row per job
/// holding (`holding`) or waiting for a lock, waiters in arrival order (`seq`), each with
/// the time it goes stale (`stale_at`, the lock timeout after it was taken or queued). Every
/// function first locks the lock's `cluster_lock_limits` row, so the acquires and releases
/// of one lock run one at a time. `taskhive_lock_promote` drops stale entries and gives
/// free slots to the first waiters, announcing each (`NOTIFY taskhive_locks`, JSON: node,
/// job, lock) so the waiter's node makes its job pending again.
const LOCK_FUNCTIONS: &str = r##"
CREATE TABLE cluster_locks (name TEXT NOT NULL, job BIGINT NOT NULL, node TEXT NOT NULL,
    holding BOOLEAN NOT NULL, seq BIGSERIAL NOT NULL, stale_at BIGINT NOT NULL,
    PRIMARY KEY (name, job));
CREATE INDEX cluster_locks_by_job ON cluster_locks (job);
CREATE TABLE cluster_lock_limits (name TEXT PRIMARY KEY, max INT NOT NULL);

CREATE FUNCTION taskhive_lock_promote(p_name text, p_now bigint, p_timeout bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE m int; h bigint; w record;
BEGIN
  SELECT max INTO m FROM cluster_lock_limits WHERE name = p_name FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  DELETE FROM cluster_locks WHERE name = p_name AND stale_at <= p_now;
  SELECT count(*) INTO h FROM cluster_locks WHERE name = p_name AND holding;
  WHILE h < m LOOP
    SELECT job, node INTO w FROM cluster_locks WHERE name = p_name AND NOT holding
      ORDER BY seq LIMIT 1;
    EXIT WHEN NOT FOUND;
    UPDATE cluster_locks SET holding = true, stale_at = p_now + p_timeout
      WHERE name = p_name AND job = w.job;
    PERFORM pg_notify('taskhive_locks',
      json_build_object('o', w.node, 'j', w.job, 'n', p_name)::text);
    h := h + 1;
  END LOOP;
END $$;

CREATE FUNCTION taskhive_lock_acquire(p_name text, p_count int, p_job bigint, p_node text,
    p_now bigint, p_timeout bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE m int; h bigint; was boolean;
BEGIN
  INSERT INTO cluster_lock_limits (name, max) VALUES (p_name, GREATEST(p_count, 1))
    ON CONFLICT (name) DO UPDATE SET max = GREATEST(cluster_lock_limits.max, EXCLUDED.max);
  -- Stale entries go, and a raised limit lets waiters in before this newcomer.
  PERFORM taskhive_lock_promote(p_name, p_now, p_timeout);
  SELECT holding INTO was FROM cluster_locks WHERE name = p_name AND job = p_job;
  IF FOUND THEN
    -- The job asks again (after its slot was granted, or rerun on another node).
    UPDATE cluster_locks SET node = p_node WHERE name = p_name AND job = p_job;
    RETURN was;
  END IF;
  SELECT max INTO m FROM cluster_lock_limits WHERE name = p_name;
  SELECT count(*) INTO h FROM cluster_locks WHERE name = p_name AND holding;
  INSERT INTO cluster_locks (name, job, node, holding, stale_at)
    VALUES (p_name, p_job, p_node, h < m, p_now + p_timeout);
  RETURN h < m;
END $$;

CREATE FUNCTION taskhive_lock_release(p_name text, p_job bigint, p_now bigint,
    p_timeout bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM cluster_lock_limits WHERE name = p_name FOR UPDATE;
  DELETE FROM cluster_locks WHERE name = p_name AND job = p_job;
  PERFORM taskhive_lock_promote(p_name, p_now, p_timeout);
END $$;

CREATE FUNCTION taskhive_lock_release_all(p_job bigint, p_now bigint, p_timeout bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE n text;
BEGIN
  FOR n IN SELECT name FROM cluster_locks WHERE job = p_job ORDER BY name LOOP
    PERFORM taskhive_lock_release(n, p_job, p_now, p_timeout);
  END LOOP;
END $$;
"##;

/// Migration 5: `taskhive_submit(task, name, args, ...) RETURNS bigint` submits a job as the
/// cluster's submit does (`SUBMIT` in `src/cluster/sql.rs`: an id from `job_ids`, an upsert
/// on (task, name) that leaves a row claimed by a live node alone, `NOTIFY taskhive_jobs`),
/// from inside the caller's transaction: the job exists, and nodes hear of it, only if that
/// transaction commits. Defaults and checks are those of the gRPC face (`rpc::convert`):
/// `sched_at_ms <= 0` is now, the retry fields' 0 is `RetryPolicy::default()`, and
/// `timeout_ms = 0` is resolved here (a claimed row's timeout is used as is): the stored
/// `timeout` setting, else 600 s. Its `search_path` is the schema of the store's tables, so
/// callers with another search path still reach them.
const SUBMIT_FUNCTION: &str = r##"
CREATE FUNCTION taskhive_submit(
    task TEXT,
    name TEXT,
    args BYTEA DEFAULT '\x',
    sched_at_ms BIGINT DEFAULT 0,
    priority INTEGER DEFAULT 0,
    timeout_ms BIGINT DEFAULT 0,
    max_attempts BIGINT DEFAULT 25,
    backoff_base_ms BIGINT DEFAULT 1000,
    backoff_max_ms BIGINT DEFAULT 3600000
) RETURNS BIGINT
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    now_ms BIGINT := floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
    v_sched BIGINT;
    v_timeout BIGINT;
    v_attempts BIGINT := COALESCE(NULLIF(taskhive_submit.max_attempts, 0), 25);
    v_base BIGINT := COALESCE(NULLIF(taskhive_submit.backoff_base_ms, 0), 1000);
    v_max BIGINT := COALESCE(NULLIF(taskhive_submit.backoff_max_ms, 0), 3600000);
    v_id BIGINT;
BEGIN
    IF taskhive_submit.task IS NULL OR octet_length(taskhive_submit.task) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'taskhive_submit: task must be 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF taskhive_submit.name IS NULL OR octet_length(taskhive_submit.name) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'taskhive_submit: name must be 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF taskhive_submit.args IS NULL OR octet_length(taskhive_submit.args) > 1048576 THEN
        RAISE EXCEPTION 'taskhive_submit: args must be at most 1048576 bytes'
            USING ERRCODE = '22023';
    END IF;
    IF taskhive_submit.sched_at_ms IS NULL OR taskhive_submit.sched_at_ms <= 0 THEN
        v_sched := now_ms;
    ELSIF taskhive_submit.sched_at_ms > now_ms + 10::BIGINT * 366 * 86400000 THEN
        RAISE EXCEPTION 'taskhive_submit: sched_at_ms % is more than 3660 days ahead',
            taskhive_submit.sched_at_ms USING ERRCODE = '22023';
    ELSE
        v_sched := taskhive_submit.sched_at_ms;
    END IF;
    IF taskhive_submit.timeout_ms IS NULL OR taskhive_submit.timeout_ms = 0 THEN
        SELECT value * 1000 INTO v_timeout FROM config WHERE key = 'timeout';
        v_timeout := LEAST(COALESCE(v_timeout, 600000), 4294967295);
    ELSIF taskhive_submit.timeout_ms < 0 OR taskhive_submit.timeout_ms > 4294967295 THEN
        RAISE EXCEPTION 'taskhive_submit: timeout_ms % is out of range (0 = the default, else 1 to 4294967295)',
            taskhive_submit.timeout_ms USING ERRCODE = '22023';
    ELSE
        v_timeout := taskhive_submit.timeout_ms;
    END IF;
    IF v_attempts < 0 OR v_attempts > 10000 THEN
        RAISE EXCEPTION 'taskhive_submit: max_attempts must be at most 10000' USING ERRCODE = '22023';
    END IF;
    IF v_base < 0 OR v_base > 4294967295 OR v_max < 0 OR v_max > 4294967295 THEN
        RAISE EXCEPTION 'taskhive_submit: backoffs must be 0 to 4294967295 ms' USING ERRCODE = '22023';
    END IF;
    IF v_base > v_max THEN
        RAISE EXCEPTION 'taskhive_submit: backoff_base_ms must not exceed backoff_max_ms'
            USING ERRCODE = '22023';
    END IF;
    -- As the cluster's SUBMIT: a row claimed by a live node is left alone (it is running);
    -- if it is gone by the time it is looked up (done meanwhile), insert again.
    FOR attempt IN 1..3 LOOP
        INSERT INTO jobs AS j (id, task, name, args, sched_at, timeout_ms, priority,
            max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead,
            last_error, wait)
        VALUES (nextval('job_ids'), taskhive_submit.task, taskhive_submit.name,
            taskhive_submit.args, v_sched, v_timeout, COALESCE(taskhive_submit.priority, 0),
            v_attempts, v_base, v_max, 0, 0, false, '', false)
        ON CONFLICT (task, name) DO UPDATE SET args = EXCLUDED.args,
            sched_at = EXCLUDED.sched_at, timeout_ms = EXCLUDED.timeout_ms,
            priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts,
            backoff_base_ms = EXCLUDED.backoff_base_ms, backoff_max_ms = EXCLUDED.backoff_max_ms,
            attempts = 0, run_count = 0, dead = false, last_error = '', wait = EXCLUDED.wait,
            owner = NULL, claim_until = NULL
        WHERE j.owner IS NULL OR j.claim_until < now() OR j.dead
        RETURNING j.id INTO v_id;
        IF v_id IS NOT NULL THEN
            -- Delivered at commit, and never if the caller rolls back.
            PERFORM pg_notify('taskhive_jobs', taskhive_submit.task || ' ' || v_sched::TEXT);
            RETURN v_id;
        END IF;
        SELECT j.id INTO v_id FROM jobs j
            WHERE j.task = taskhive_submit.task AND j.name = taskhive_submit.name;
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'taskhive_submit: job %/% changed under three submits in a row; try again',
        taskhive_submit.task, taskhive_submit.name USING ERRCODE = '40001';
END
$fn$;
-- The tables' schema (where this migration created them), whatever the caller's search path.
DO $do$ BEGIN
    EXECUTE format('ALTER FUNCTION taskhive_submit(TEXT, TEXT, BYTEA, BIGINT, INTEGER, BIGINT, '
        'BIGINT, BIGINT, BIGINT) SET search_path = %I', current_schema());
END $do$;
COMMENT ON FUNCTION taskhive_submit(TEXT, TEXT, BYTEA, BIGINT, INTEGER, BIGINT, BIGINT, BIGINT, BIGINT) IS
    'Submits a taskhive job inside the caller''s transaction; returns its id. Nodes hear of it at commit.';
"##;

/// Cluster mode: this node's id and the lease version of every claim it holds. Writes to a
/// claimed job only land while the row still carries that owner and version, so a node
/// whose claim expired and was taken over cannot overwrite the new holder's work.
#[derive(Clone, Debug)]
pub struct Fence {
    /// This node's id (the `owner` column of its claims).
    pub node: String,
    /// Claimed job id → lease version.
    pub versions: Arc<Mutex<HashMap<JobId, i64>>>,
}

/// Serialises concurrent migrations (several nodes starting at once); any constant will do.
const MIGRATION_LOCK: i64 = 0x7461_736b_6869_7665;

/// Applies the migrations the database has not seen yet; returns the schema version.
pub fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let current: i64 = match tx.query_opt("SELECT version FROM schema_version", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])?;
            0
        }
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.batch_execute(sql)
            .map_err(|e| StoreError::Backend(format!("migration {}: {e}", i + 1)))?;
    }
    let version = MIGRATIONS.len() as i64;
    if version > current {
        tx.execute("UPDATE schema_version SET version = $1", &[&version])?;
    }
    tx.commit()?;
    Ok(version.max(current))
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The driver's Display omits the server's message; the source has it.
        let detail = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        StoreError::Backend(format!("postgres: {e}{detail}"))
    }
}

/// Opens a connection with a bounded connect time, over TLS as the URL's `sslmode` says
/// (see [`super::pg_tls`]).
pub fn connect(url: &str) -> Result<Client, StoreError> {
    super::pg_tls::pg_config(url)?.connect_sync()
}

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    client: Option<Client>,
    cache: Prepared,
    fence: Option<Fence>,
    /// Fenced-out writes of the last apply.
    fenced: Vec<JobId>,
    url: String,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and applies pending migrations.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut client = connect(url)?;
        migrate(&mut client)?;
        Ok(PgStore {
            client: Some(client),
            cache: Prepared::new(),
            fence: None,
            fenced: Vec::new(),
            url: url.to_string(),
        })
    }

    /// Cluster mode: fences reschedules and deletes by this node's claims.
    pub(crate) fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }

    /// The connection, opened again if the last one broke (the database restarted or the
    /// network dropped it): a store that lost its session recovers with the database.
    fn live(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let fresh = connect(&self.url)?;
            drop_off_runtime(self.client.replace(fresh));
            // Prepared statements belonged to the old session.
            self.cache.clear();
            tracing::warn!("store: reconnected to PostgreSQL");
        }
        Ok(self.client())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        drop_off_runtime(self.client.take());
    }
}

/// The sync client owns a small runtime, which must not be dropped inside an async context
/// (a reader may be dropped on a Tokio thread at shutdown): drop it on a plain thread.
fn drop_off_runtime(client: Option<Client>) {
    if let Some(c) = client {
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("taskhive-pg-close".into())
                .spawn(move || drop(c));
        } else {
            drop(c);
        }
    }
}

const JOB_COLUMNS: &str = "id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
    backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key";

/// Reads a row selected with [`JOB_COLUMNS`]: the first 14 by position, `trace` by name where
/// the query selects it (a stored value that does not parse is dropped, as at the edge).
pub(crate) fn job_record(row: &Row) -> JobRecord {
    JobRecord {
        id: row.get::<_, i64>(0) as u64,
        task: row.get(1),
        name: row.get(2),
        // NULL: a start-up read that left a large payload in the store.
        args: row
            .get::<_, Option<Vec<u8>>>(3)
            .map(Bytes::from)
            .unwrap_or_default(),
        sched_at: row.get(4),
        timeout_ms: row.get::<_, i64>(5) as u32,
        priority: row.get(6),
        retry: RetryPolicy {
            max_attempts: row.get::<_, i64>(7) as u32,
            backoff_base_ms: row.get::<_, i64>(8) as u32,
            backoff_max_ms: row.get::<_, i64>(9) as u32,
        },
        attempts: row.get::<_, i64>(10) as u32,
        run_count: row.get::<_, i64>(11) as u32,
        dead: row.get(12),
        last_error: row.get(13),
        trace: row
            .try_get::<_, Option<&str>>("trace")
            .ok()
            .flatten()
            .and_then(TraceParent::parse),
        key: row.try_get::<_, String>("job_key").unwrap_or_default(),
        spilled: None,
    }
}

/// The job columns of an `INSERT ... SELECT FROM unnest(...)`, one array per column.
#[derive(Default)]
struct JobArrays {
    id: Vec<i64>,
    task: Vec<String>,
    name: Vec<String>,
    args: Vec<Vec<u8>>,
    sched_at: Vec<i64>,
    timeout_ms: Vec<i64>,
    priority: Vec<i32>,
    max_attempts: Vec<i64>,
    backoff_base_ms: Vec<i64>,
    backoff_max_ms: Vec<i64>,
    attempts: Vec<i64>,
    run_count: Vec<i64>,
    dead: Vec<bool>,
    last_error: Vec<String>,
    trace: Vec<Option<String>>,
    key: Vec<String>,
}

impl JobArrays {
    fn push(&mut self, r: &JobRecord) {
        self.id.push(r.id as i64);
        self.task.push(r.task.clone());
        self.name.push(r.name.clone());
        self.args.push(r.args.to_vec());
        self.sched_at.push(r.sched_at);
        self.timeout_ms.push(r.timeout_ms as i64);
        self.priority.push(r.priority);
        self.max_attempts.push(r.retry.max_attempts as i64);
        self.backoff_base_ms.push(r.retry.backoff_base_ms as i64);
        self.backoff_max_ms.push(r.retry.backoff_max_ms as i64);
        self.attempts.push(r.attempts as i64);
        self.run_count.push(r.run_count as i64);
        self.dead.push(r.dead);
        self.last_error.push(r.last_error.clone());
        self.trace.push(r.trace.map(|t| t.to_string()));
        self.key.push(r.key.clone());
    }
}

/// Replaces by id. A row holding the same (task, name) under another id goes first: the
/// core keeps names unique, and the table's unique (task, name) index, which cluster
/// submits upsert on, would otherwise refuse the insert.
const UPSERT_DELETE: &str =
    "DELETE FROM jobs j USING unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, task, name)
     WHERE j.task = u.task AND j.name = u.name AND j.id <> u.id";
const UPSERT_INSERT: &str = "INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
        backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[],
        $7::int[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bool[],
        $14::text[], $15::text[], $16::text[])
     ON CONFLICT (id) DO UPDATE SET task = EXCLUDED.task, name = EXCLUDED.name, args = EXCLUDED.args,
        sched_at = EXCLUDED.sched_at, timeout_ms = EXCLUDED.timeout_ms, priority = EXCLUDED.priority,
        max_attempts = EXCLUDED.max_attempts, backoff_base_ms = EXCLUDED.backoff_base_ms,
        backoff_max_ms = EXCLUDED.backoff_max_ms, attempts = EXCLUDED.attempts,
        run_count = EXCLUDED.run_count, dead = EXCLUDED.dead, last_error = EXCLUDED.last_error,
        trace = EXCLUDED.trace, job_key = EXCLUDED.job_key";
const RESCHEDULE_FENCED: &str = "UPDATE jobs j SET sched_at = u.sched_at, attempts = u.attempts,
        run_count = u.run_count, dead = u.dead, last_error = u.last_error
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bool[], $6::text[], $7::bigint[])
        AS u(id, sched_at, attempts, run_count, dead, last_error, v)
     WHERE j.id = u.id AND j.owner = $8 AND j.lease_version = u.v
     RETURNING j.id";
const DELETE_FENCED: &str =
    "DELETE FROM jobs j USING unnest($1::bigint[], $2::bigint[]) AS u(id, v)
     WHERE j.id = u.id AND j.owner = $3 AND j.lease_version = u.v
     RETURNING j.id";
const RELEASE_FENCED: &str = "UPDATE jobs j SET owner = NULL, claim_until = NULL
     FROM unnest($1::bigint[], $2::bigint[]) AS u(id, v)
     WHERE j.id = u.id AND j.owner = $3 AND j.lease_version = u.v";
const RESCHEDULE: &str =
    "UPDATE jobs j SET sched_at = u.sched_at, attempts = u.attempts, run_count = u.run_count,
        dead = u.dead, last_error = u.last_error
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bool[], $6::text[])
        AS u(id, sched_at, attempts, run_count, dead, last_error)
     WHERE j.id = u.id";

/// How ops are grouped into statements: consecutive ops of one kind share a statement when
/// doing so cannot change the result.
fn runs(ops: &[Op]) -> Vec<&[Op]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_ids = std::collections::HashSet::new();
    let mut seen_names = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        let joins = i > start
            && match (&ops[start], op) {
                // A set-based insert cannot touch one row twice: such a run is split.
                (
                    Op::Scheduler(Write::Job(JobWrite::Upsert(_))),
                    Op::Scheduler(Write::Job(JobWrite::Upsert(r))),
                ) => !seen_ids.contains(&r.id) && !seen_names.contains(&(&r.task, &r.name)),
                (
                    Op::Scheduler(Write::Job(JobWrite::Reschedule { .. })),
                    Op::Scheduler(Write::Job(JobWrite::Reschedule { id, .. })),
                ) => !seen_ids.contains(id),
                (
                    Op::Scheduler(Write::Job(JobWrite::Delete(_))),
                    Op::Scheduler(Write::Job(JobWrite::Delete(_))),
                ) => true,
                _ => false,
            };
        if !joins {
            if i > start {
                out.push(&ops[start..i]);
            }
            start = i;
            seen_ids.clear();
            seen_names.clear();
        }
        match op {
            Op::Scheduler(Write::Job(JobWrite::Upsert(r))) => {
                seen_ids.insert(r.id);
                seen_names.insert((&r.task, &r.name));
            }
            Op::Scheduler(Write::Job(JobWrite::Reschedule { id, .. })) => {
                seen_ids.insert(*id);
            }
            _ => {}
        }
    }
    if start < ops.len() {
        out.push(&ops[start..]);
    }
    out
}

/// Statements prepared once per connection.
type Prepared = std::collections::HashMap<&'static str, postgres::Statement>;

fn prepared(
    cache: &mut Prepared,
    tx: &mut postgres::Transaction<'_>,
    sql: &'static str,
) -> Result<postgres::Statement, TryError> {
    if let Some(st) = cache.get(sql) {
        return Ok(st.clone());
    }
    let st = tx.prepare(sql)?;
    cache.insert(sql, st.clone());
    Ok(st)
}

/// Why one try at a batch failed.
enum TryError {
    /// The database gave the transaction up so that another could go on
    /// ([`lost_a_conflict`]): nothing was wrong with it.
    Conflict(postgres::Error),
    /// The try waited [`LOCK_WAIT`] for a row another transaction held and gave up, which
    /// also ends any deadlock it was part of: the other side goes on at once.
    Waited(postgres::Error),
    /// Anything else; goes to the caller as it is.
    Other(StoreError),
}

/// Whether PostgreSQL gave a transaction up so that another could go on (deadlock detected,
/// serialization failure): nothing it did stays, and the same work may pass when tried again.
pub(crate) fn lost_a_conflict(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl From<postgres::Error> for TryError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        if lost_a_conflict(&e) {
            TryError::Conflict(e)
        } else if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            TryError::Waited(e)
        } else {
            TryError::Other(e.into())
        }
    }
}

impl From<StoreError> for TryError {
    fn from(e: StoreError) -> Self {
        TryError::Other(e)
    }
}

impl From<TryError> for StoreError {
    fn from(e: TryError) -> Self {
        match e {
            TryError::Conflict(e) | TryError::Waited(e) => e.into(),
            TryError::Other(e) => e,
        }
    }
}

/// A run of reschedules in the order of their job ids. Two transactions that lock the same
/// rows in one order cannot deadlock on them, so each statement touches its rows lowest id
/// first (a plain `id = ANY(..)` scan does so by itself; a join on `unnest` follows the
/// array, hence this and the sorted id arrays of deletes and releases). Rows locked by
/// different statements of a batch can still meet another batch's in the other order,
/// which is what `PgStore::apply`'s second try is for.
fn by_id(run: &[Op]) -> Vec<&Op> {
    let mut ops: Vec<&Op> = run.iter().collect();
    ops.sort_by_key(|op| match op {
        Op::Scheduler(Write::Job(JobWrite::Reschedule { id, .. })) => Some(*id),
        _ => None,
    });
    ops
}

/// Takes the claim versions of the jobs `ops` delete or release out of the fence; returns
/// them, to be put back if the commit fails.
fn claims_ended(fence: &Fence, ops: &[Op]) -> Vec<(JobId, i64)> {
    let mut v = fence.versions.lock().expect("poisoned");
    let mut ended = Vec::new();
    let mut end = |id: &JobId| {
        if let Some(version) = v.remove(id) {
            ended.push((*id, version));
        }
    };
    for op in ops {
        match op {
            Op::Scheduler(Write::Job(JobWrite::Delete(id))) => end(id),
            Op::Scheduler(Write::Release(ids)) => ids.iter().for_each(&mut end),
            _ => {}
        }
    }
    ended
}

/// The lease version of each id under `fence` (-1, matching nothing, when not held).
fn versions(fence: &Fence, ids: &[i64]) -> Vec<i64> {
    let v = fence.versions.lock().expect("poisoned");
    ids.iter()
        .map(|id| v.get(&(*id as u64)).copied().unwrap_or(-1))
        .collect()
}

/// The ids of `asked` that a fenced statement's `RETURNING id` lacks: writes that changed nothing.
fn not_returned(asked: &[i64], rows: &[Row]) -> Vec<JobId> {
    let done: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    asked
        .iter()
        .filter(|id| !done.contains(id))
        .map(|&id| id as JobId)
        .collect()
}

fn apply_run(
    tx: &mut postgres::Transaction<'_>,
    cache: &mut Prepared,
    fence: Option<&Fence>,
    run: &[Op],
) -> Result<Vec<JobId>, TryError> {
    let mut fenced_out = Vec::new();
    match &run[0] {
        Op::Scheduler(Write::Job(JobWrite::Upsert(_))) => {
            let mut a = JobArrays::default();
            for op in run {
                if let Op::Scheduler(Write::Job(JobWrite::Upsert(r))) = op {
                    a.push(r);
                }
            }
            let del = prepared(cache, tx, UPSERT_DELETE)?;
            tx.execute(&del, &[&a.id, &a.task, &a.name])?;
            let ins = prepared(cache, tx, UPSERT_INSERT)?;
            tx.execute(
                &ins,
                &[
                    &a.id,
                    &a.task,
                    &a.name,
                    &a.args,
                    &a.sched_at,
                    &a.timeout_ms,
                    &a.priority,
                    &a.max_attempts,
                    &a.backoff_base_ms,
                    &a.backoff_max_ms,
                    &a.attempts,
                    &a.run_count,
                    &a.dead,
                    &a.last_error,
                    &a.trace,
                    &a.key,
                ],
            )?;
        }
        Op::Scheduler(Write::Job(JobWrite::Reschedule { .. })) => {
            let (mut id, mut at, mut att, mut rc, mut dead, mut err) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            // Rows are locked in id order, as every other node's batch locks them.
            for op in by_id(run) {
                if let Op::Scheduler(Write::Job(JobWrite::Reschedule {
                    id: i,
                    sched_at,
                    attempts,
                    run_count,
                    dead: d,
                    last_error,
                })) = op
                {
                    id.push(*i as i64);
                    at.push(*sched_at);
                    att.push(*attempts as i64);
                    rc.push(*run_count as i64);
                    dead.push(*d);
                    err.push(last_error.clone());
                }
            }
            if let Some(f) = fence {
                let v = versions(f, &id);
                let st = prepared(cache, tx, RESCHEDULE_FENCED)?;
                let rows = tx.query(&st, &[&id, &at, &att, &rc, &dead, &err, &v, &f.node])?;
                fenced_out.extend(not_returned(&id, &rows));
            } else {
                let st = prepared(cache, tx, RESCHEDULE)?;
                tx.execute(&st, &[&id, &at, &att, &rc, &dead, &err])?;
            }
        }
        Op::Scheduler(Write::Job(JobWrite::Delete(_))) => {
            let mut ids: Vec<i64> = run
                .iter()
                .filter_map(|op| match op {
                    Op::Scheduler(Write::Job(JobWrite::Delete(id))) => Some(*id as i64),
                    _ => None,
                })
                .collect();
            ids.sort_unstable();
            if let Some(f) = fence {
                let v = versions(f, &ids);
                let st = prepared(cache, tx, DELETE_FENCED)?;
                let rows = tx.query(&st, &[&ids, &v, &f.node])?;
                fenced_out.extend(not_returned(&ids, &rows));
            } else {
                let st = prepared(cache, tx, "DELETE FROM jobs WHERE id = ANY($1)")?;
                tx.execute(&st, &[&ids])?;
            }
        }
        Op::Scheduler(Write::Release(ids)) => {
            // Only a fenced store holds claims: elsewhere there is nothing to give back.
            if let Some(f) = fence {
                let mut ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
                ids.sort_unstable();
                let v = versions(f, &ids);
                let st = prepared(cache, tx, RELEASE_FENCED)?;
                tx.execute(&st, &[&ids, &v, &f.node])?;
            }
        }
        Op::Scheduler(Write::Job(JobWrite::DeleteTask(task))) => {
            let st = prepared(cache, tx, "DELETE FROM jobs WHERE task = $1")?;
            tx.execute(&st, &[task])?;
        }
        Op::Scheduler(Write::SetConfig { key, value }) => {
            let st = prepared(
                cache,
                tx,
                "INSERT INTO config (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?;
            tx.execute(&st, &[key, value])?;
        }
        Op::Scheduler(Write::PutSchedule(r)) => {
            let st = prepared(
                cache,
                tx,
                "INSERT INTO schedules (name, spec, paused, last_tick, last_job) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, paused = EXCLUDED.paused,
                    last_tick = EXCLUDED.last_tick, last_job = EXCLUDED.last_job",
            )?;
            tx.execute(
                &st,
                &[&r.name, &r.spec, &r.paused, &r.last_tick, &r.last_job],
            )?;
        }
        Op::Scheduler(Write::SetTaskPaused { task, paused: true }) => {
            let st = prepared(
                cache,
                tx,
                "INSERT INTO paused_tasks (task) VALUES ($1) ON CONFLICT (task) DO NOTHING",
            )?;
            tx.execute(&st, &[task])?;
        }
        Op::Scheduler(Write::SetTaskPaused {
            task,
            paused: false,
        }) => {
            let st = prepared(cache, tx, "DELETE FROM paused_tasks WHERE task = $1")?;
            tx.execute(&st, &[task])?;
        }
        Op::Scheduler(Write::SetTaskLimits {
            task,
            limits: Some(text),
        }) => {
            // A change starts the cluster's bucket afresh (tat 0 = full).
            let st = prepared(
                cache,
                tx,
                "INSERT INTO task_limits (task, limits, tat_us) VALUES ($1, $2, 0)
                 ON CONFLICT (task) DO UPDATE SET limits = EXCLUDED.limits, tat_us = 0",
            )?;
            tx.execute(&st, &[task, text])?;
        }
        Op::Scheduler(Write::SetTaskLimits { task, limits: None }) => {
            let st = prepared(cache, tx, "DELETE FROM task_limits WHERE task = $1")?;
            tx.execute(&st, &[task])?;
        }
        Op::Scheduler(Write::DeleteSchedule(name)) => {
            let st = prepared(cache, tx, "DELETE FROM schedules WHERE name = $1")?;
            tx.execute(&st, &[name])?;
        }
        Op::SaveLoadJob { name, json } => {
            let st = prepared(
                cache,
                tx,
                "INSERT INTO load_jobs (name, json) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET json = EXCLUDED.json",
            )?;
            tx.execute(&st, &[name, json])?;
            if fence.is_some() {
                // Cluster: the other nodes read the job again when this commits.
                let st = prepared(cache, tx, "SELECT pg_notify('taskhive_load_jobs', $1)")?;
                tx.execute(&st, &[name])?;
            }
        }
        Op::ArchiveExec(r) => {
            let st = prepared(
                cache,
                tx,
                "INSERT INTO load_execs (id, name, t_start, elapsed_usec, n_task, n_fail,
                    threshold_exceeded, aborted, json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, t_start = EXCLUDED.t_start,
                    elapsed_usec = EXCLUDED.elapsed_usec, n_task = EXCLUDED.n_task,
                    n_fail = EXCLUDED.n_fail, threshold_exceeded = EXCLUDED.threshold_exceeded,
                    aborted = EXCLUDED.aborted, json = EXCLUDED.json",
            )?;
            tx.execute(
                &st,
                &[
                    &r.id,
                    &r.name,
                    &r.t_start,
                    &(r.elapsed_usec as i64),
                    &(r.n_task as i64),
                    &(r.n_fail as i64),
                    &r.threshold_exceeded,
                    &r.aborted,
                    &r.json,
                ],
            )?;
        }
        Op::TrimExecs(keep) => {
            let st = prepared(
                cache,
                tx,
                "DELETE FROM load_execs WHERE id NOT IN
                 (SELECT id FROM load_execs ORDER BY t_start DESC, id DESC LIMIT $1)",
            )?;
            tx.execute(&st, &[&(*keep.min(&(i64::MAX as usize)) as i64)])?;
        }
    }
    Ok(fenced_out)
}

/// How many times a batch the database refused for a conflict (see [`TryError::Conflict`])
/// is tried in all before its error goes to the caller.
const BATCH_TRIES: u32 = 3;

/// How long a try of a batch waits for a row another transaction holds before it gives up
/// and the batch is tried again. PostgreSQL looks for a deadlock only `deadlock_timeout`
/// after a session starts to wait (1 s by default, and only a superuser may lower it), so a
/// batch in a deadlock with an API statement or another node's batch used to stall both
/// for that second. A batch that gives up on its own after this long ends the cycle
/// sooner: it rolls back and the other side goes on at once. taskhive's own statements
/// hold row locks for one statement or one batch, far less than this, so a batch that
/// waits this long is in a deadlock or behind a long transaction (an application's own
/// around `taskhive_submit`, an operator's), which the tries after [`IMPATIENT_FOR`] wait
/// out.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '100ms'";

/// How long a batch keeps giving up after [`LOCK_WAIT`] before its tries wait as long as
/// the database lets them (as every try did before): a batch behind a transaction that
/// holds its rows for a long time still lands, in its turn in the row's queue, instead of
/// failing on a timeout of our own or losing its place to every newcomer.
const IMPATIENT_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl PgStore {
    /// One transaction for `ops`. Nothing of it stays behind when it fails: the transaction
    /// rolls back when dropped, and the fence gets back the claims the batch would have ended.
    /// `patient`: wait for rows as long as the database lets it, not just [`LOCK_WAIT`].
    fn apply_once(&mut self, ops: &[Op], patient: bool) -> Result<(), TryError> {
        self.live()?;
        let client = self.client.as_mut().expect("client present until drop");
        let mut tx = client.transaction()?;
        if !patient {
            tx.batch_execute(LOCK_WAIT)?;
        }
        let mut fenced_out = Vec::new();
        for run in runs(ops) {
            fenced_out.extend(apply_run(
                &mut tx,
                &mut self.cache,
                self.fence.as_ref(),
                run,
            )?);
        }
        // A deleted or released job's claim is over. Its version goes before the commit, not
        // after: the claimer's renewal, reading the row gone (committed) while the version
        // was still here, would take the job for lost to another node and drop its RunJob
        // waiter before the finished hook could publish its result.
        let ended = self.fence.as_ref().map(|f| claims_ended(f, ops));
        if let Err(e) = tx.commit() {
            if let (Some(f), Some(ended)) = (&self.fence, ended) {
                f.versions.lock().expect("poisoned").extend(ended);
            }
            return Err(e.into());
        }
        if self.fence.is_some() {
            if !fenced_out.is_empty() {
                tracing::warn!(
                    writes = fenced_out.len(),
                    "stale writes refused: claims held by another node now"
                );
            }
            self.fenced = fenced_out;
        }
        Ok(())
    }
}

impl Store for PgStore {
    /// A batch that lost a deadlock to another node's batch is tried again: the other one
    /// goes on once this one rolls back, and this node's core, which already acted on the
    /// batch, need not throw its memory away and reload it for a conflict that was no one's
    /// error (it used to: every job the batch touched went back through a resync).
    ///
    /// A try that waits [`LOCK_WAIT`] on a row gives up and the batch is tried again, so a
    /// deadlock costs this node a tenth of a second, not PostgreSQL's `deadlock_timeout`;
    /// once it has done so for [`IMPATIENT_FOR`], it waits as long as it must.
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let start = std::time::Instant::now();
        let mut tries = 1;
        loop {
            let patient = start.elapsed() >= IMPATIENT_FOR;
            match self.apply_once(ops, patient) {
                Ok(()) => return Ok(()),
                Err(TryError::Waited(e)) if !patient => {
                    tracing::debug!(ops = ops.len(), error = %StoreError::from(e), "store: a write batch waited too long on a row; trying it again");
                }
                Err(TryError::Conflict(e)) if tries < BATCH_TRIES => {
                    tries += 1;
                    tracing::warn!(ops = ops.len(), tries, error = %StoreError::from(e), "store: a write batch lost a conflict; trying it again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Resync after a failed commit. With a fence (cluster), only rows this node still holds
    /// under the version it knows come back: anything else is not this node's to run (and
    /// its claim is dropped), so a resync never pulls an unclaimed row into the core.
    fn load_some(&mut self, ids: &[JobId], tasks: &[String]) -> Result<Vec<JobRecord>, StoreError> {
        let fence = self.fence.clone();
        let client = self.live()?;
        let ids_i: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
        let rows = client.query(
            &format!(
                "SELECT {JOB_COLUMNS}, owner, lease_version FROM jobs
                 WHERE id = ANY($1) OR task = ANY($2) ORDER BY id"
            ),
            &[&ids_i, &tasks],
        )?;
        let Some(f) = fence else {
            return Ok(rows.iter().map(job_record).collect());
        };
        let mut v = f.versions.lock().expect("poisoned");
        let mut out = Vec::new();
        for r in &rows {
            let id = r.get::<_, i64>(0) as JobId;
            let owner: Option<String> = r.get("owner");
            let version: i64 = r.get("lease_version");
            if owner.as_deref() == Some(f.node.as_str()) && v.get(&id) == Some(&version) {
                out.push(job_record(r));
            } else {
                v.remove(&id);
            }
        }
        // Touched jobs whose rows are gone are not held any more either.
        let kept: std::collections::HashSet<JobId> = out.iter().map(|r| r.id).collect();
        for id in ids {
            if !kept.contains(id) {
                v.remove(id);
            }
        }
        Ok(out)
    }

    fn take_fenced(&mut self) -> Vec<JobId> {
        std::mem::take(&mut self.fenced)
    }

    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        let rows = self
            .live()?
            .query(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"), &[])?;
        Ok(rows.iter().map(job_record).collect())
    }

    fn load_stored_jobs(&mut self, spill_from: Option<usize>) -> Result<StoredJobs, StoreError> {
        let Some(n) = spill_from else {
            return Ok(StoredJobs::from_records(self.load_jobs()?));
        };
        // Large payloads stay in the database: NULL here, their length last.
        let columns = JOB_COLUMNS.replace(
            "args,",
            "CASE WHEN octet_length(args) < $1 THEN args END AS args,",
        );
        let rows = self.live()?.query(
            &format!("SELECT {columns}, octet_length(args) FROM jobs ORDER BY id"),
            &[&(n as i32)],
        )?;
        let mut out = StoredJobs::with_capacity(rows.len());
        for row in &rows {
            let mut r = job_record(row);
            if row.get::<_, Option<&[u8]>>(3).is_none() {
                r.spilled = Some(row.get::<_, i32>(row.len() - 1) as u32);
            }
            let task = std::mem::take(&mut r.task);
            out.push(&task, r);
        }
        Ok(out)
    }

    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, Bytes)>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
        let rows = self
            .live()?
            .query("SELECT id, args FROM jobs WHERE id = ANY($1)", &[&ids])?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as JobId,
                    Bytes::from(r.get::<_, Vec<u8>>(1)),
                )
            })
            .collect())
    }

    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .live()?
            .query("SELECT key, value FROM config ORDER BY key", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .live()?
            .query("SELECT name, json FROM load_jobs ORDER BY name", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .live()?
            .query("SELECT task, limits FROM task_limits ORDER BY task", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .live()?
            .query("SELECT task FROM paused_tasks ORDER BY task", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = self.live()?.query(
            "SELECT name, spec, paused, last_tick, last_job FROM schedules ORDER BY name",
            &[],
        )?;
        Ok(rows.iter().map(schedule_row).collect())
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError> {
        Ok(Box::new(PgReader {
            client: Mutex::new(Some(connect(&self.url)?)),
        }))
    }
}

/// Its own connection, so reads never queue behind the writer's transaction.
struct PgReader {
    client: Mutex<Option<Client>>,
}

impl Drop for PgReader {
    fn drop(&mut self) {
        drop_off_runtime(self.client.get_mut().ok().and_then(|c| c.take()));
    }
}

const EXEC_COLUMNS: &str =
    "id, name, t_start, elapsed_usec, n_task, n_fail, threshold_exceeded, aborted";

fn exec_row(row: &Row, with_json: bool) -> ExecRow {
    ExecRow {
        id: row.get(0),
        name: row.get(1),
        t_start: row.get(2),
        elapsed_usec: row.get::<_, i64>(3) as u64,
        n_task: row.get::<_, i64>(4) as u64,
        n_fail: row.get::<_, i64>(5) as u64,
        threshold_exceeded: row.get(6),
        aborted: row.get(7),
        json: if with_json { row.get(8) } else { String::new() },
    }
}

impl StoreReader for PgReader {
    fn list_execs(&self, name: Option<&str>, limit: usize) -> Result<Vec<ExecRow>, StoreError> {
        let mut guard = self.client.lock().expect("poisoned");
        let client = guard.as_mut().ok_or(StoreError::Closed)?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = client.query(
            &format!(
                "SELECT {EXEC_COLUMNS} FROM load_execs WHERE $1::text IS NULL OR name = $1
                 ORDER BY t_start DESC, id DESC LIMIT $2"
            ),
            &[&name, &limit],
        )?;
        Ok(rows.iter().map(|r| exec_row(r, false)).collect())
    }

    fn get_exec(&self, id: &str) -> Result<Option<ExecRow>, StoreError> {
        let mut guard = self.client.lock().expect("poisoned");
        let client = guard.as_mut().ok_or(StoreError::Closed)?;
        let row = client.query_opt(
            &format!("SELECT {EXEC_COLUMNS}, json FROM load_execs WHERE id = $1"),
            &[&id],
        )?;
        Ok(row.map(|r| exec_row(&r, true)))
    }

    fn get_load_job(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut guard = self.client.lock().expect("poisoned");
        let client = guard.as_mut().ok_or(StoreError::Closed)?;
        let row = client.query_opt("SELECT json FROM load_jobs WHERE name = $1", &[&name])?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// A `schedules` row (`name, spec, paused, last_tick, last_job`).
pub(crate) fn schedule_row(r: &Row) -> ScheduleRow {
    ScheduleRow {
        name: r.get(0),
        spec: r.get(1),
        paused: r.get(2),
        last_tick: r.get(3),
        last_job: r.get(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, name: &str) -> JobRecord {
        JobRecord {
            id,
            task: "t".into(),
            name: name.into(),
            ..JobRecord::default()
        }
    }

    #[test]
    fn runs_split_where_a_row_repeats() {
        let ops = vec![
            Op::Scheduler(Write::Job(JobWrite::Upsert(rec(1, "a")))),
            Op::Scheduler(Write::Job(JobWrite::Upsert(rec(2, "b")))),
            Op::Scheduler(Write::Job(JobWrite::Upsert(rec(3, "a")))),
            Op::Scheduler(Write::Job(JobWrite::Delete(1))),
            Op::Scheduler(Write::Job(JobWrite::Delete(2))),
            Op::Scheduler(Write::Job(JobWrite::Upsert(rec(4, "c")))),
        ];
        let lens: Vec<usize> = runs(&ops).iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![2, 1, 2, 1]);
    }

    #[test]
    fn a_commits_deleted_and_released_claims_leave_the_fence_before_it() {
        let fence = Fence {
            node: "n".into(),
            versions: Arc::new(Mutex::new(HashMap::from([
                (1, 10),
                (2, 20),
                (3, 30),
                (4, 40),
            ]))),
        };
        let ops = vec![
            Op::Scheduler(Write::Job(JobWrite::Delete(1))),
            Op::Scheduler(Write::Job(JobWrite::Upsert(rec(2, "b")))),
            Op::Scheduler(Write::Release(vec![3, 9])),
        ];
        let mut ended = claims_ended(&fence, &ops);
        ended.sort();
        assert_eq!(ended, vec![(1, 10), (3, 30)]);
        let left = fence.versions.lock().unwrap().clone();
        assert_eq!(left, HashMap::from([(2, 20), (4, 40)]));
    }
}
