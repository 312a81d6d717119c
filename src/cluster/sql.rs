//! The statements cluster mode runs, in one place so their locking and NOTIFY rules can be
//! read together. Job columns come in [`crate::store::postgres::job_record`] order; `trace`, read
//! by name, may follow anywhere.

/// What a claim returns, the same for [`CLAIM`] and [`CLAIM_PER_KEY`] (the claimer reads it
/// by position): the job's columns, its claim's version, whether a RunJob waits on it, and
/// whether another node has a watcher for it.
macro_rules! claimed_columns {
    () => {
        " WHERE j.id = c.id
     RETURNING j.id, j.task, j.name, j.args, j.sched_at, j.timeout_ms, j.priority, j.max_attempts,
        j.backoff_base_ms, j.backoff_max_ms, j.attempts, j.run_count, j.dead, j.last_error,
        j.lease_version, j.wait,
        EXISTS (SELECT 1 FROM job_watches w
                WHERE w.task = j.task AND w.name = j.name AND w.node <> $1) AS watched, j.trace,
        j.job_key"
    };
}

/// Claims up to `$5` due jobs of task `$3` for node `$1` (claim TTL `$2` ms, now `$4`).
/// The last column says whether another node has a watcher for the job (see
/// [`super::watch`]): a primary-key probe of `job_watches`, empty unless someone watches.
pub const CLAIM: &str = concat!(
    "UPDATE jobs j SET owner = $1, lease_version = j.lease_version + 1,
        claim_until = now() + $2::bigint * interval '1 millisecond'
     FROM (SELECT id FROM jobs
           WHERE task = $3 AND NOT dead AND sched_at <= $4
             AND (owner IS NULL OR claim_until < now())
             AND NOT EXISTS (SELECT 1 FROM paused_tasks p WHERE p.task = $3)
           ORDER BY priority DESC, sched_at, id
           LIMIT $5
           FOR UPDATE SKIP LOCKED) c
",
    claimed_columns!()
);

/// The earliest due time of task `$1`'s claimable jobs.
pub const NEXT_DUE: &str = "SELECT min(sched_at) FROM jobs WHERE task = $1 AND NOT dead
     AND (owner IS NULL OR claim_until < now())
     AND NOT EXISTS (SELECT 1 FROM paused_tasks p WHERE p.task = $1)";

/// Extends node `$1`'s claims on ids `$3` by `$2` ms; answers the ones still held.
pub const RENEW: &str =
    "UPDATE jobs SET claim_until = now() + $2::bigint * interval '1 millisecond'
     WHERE owner = $1 AND id = ANY($3) RETURNING id, lease_version";

/// The lease length a job is stored with, from `$own` (its own, 0 = none): its own, or
/// the `timeout` setting as committed, read by the statement itself. A SetConfig on another
/// node then holds from its acknowledgement on, not from when its NOTIFY reaches this
/// node. `$node` is this node's setting, for a database that stores none yet (the node's
/// `--default-timeout`). As `taskhive_submit` does.
macro_rules! stored_timeout {
    ($own:literal, $node:literal) => {
        concat!(
            "CASE WHEN ",
            $own,
            " = 0 THEN LEAST(COALESCE(
            (SELECT value * 1000 FROM config WHERE key = 'timeout'), ",
            $node,
            "::bigint), 4294967295)
            ELSE ",
            $own,
            " END"
        )
    };
}

/// Inserts or replaces jobs by (task, name), in order, with ids from the database's
/// sequence. A row claimed by a live node is left alone (it is running: Periodic's rule);
/// a dead one is replaced. One NOTIFY per task with its earliest new due time. `$5`/`$13`:
/// see [`stored_timeout`].
pub const SUBMIT: &str = concat!("WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::bigint[],
            $6::int[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bool[], $11::text[], $12::text[])
            WITH ORDINALITY
        AS u(task, name, args, sched_at, timeout_ms, priority, max_attempts, backoff_base_ms,
            backoff_max_ms, wait, trace, job_key, ord)),
     up AS (
        INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
            backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, wait, trace, job_key)
        SELECT nextval('job_ids'), task, name, args, sched_at, ", stored_timeout!("timeout_ms", "$13"), ",
            priority, max_attempts, backoff_base_ms, backoff_max_ms, 0, 0, false, '', wait, trace,
            job_key
        FROM input ORDER BY ord
        ON CONFLICT (task, name) DO UPDATE SET args = EXCLUDED.args, sched_at = EXCLUDED.sched_at,
            timeout_ms = EXCLUDED.timeout_ms, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, backoff_base_ms = EXCLUDED.backoff_base_ms,
            backoff_max_ms = EXCLUDED.backoff_max_ms, attempts = 0, run_count = 0, dead = false,
            last_error = '', wait = EXCLUDED.wait, trace = EXCLUDED.trace, job_key = EXCLUDED.job_key, owner = NULL,
            claim_until = NULL
        WHERE jobs.owner IS NULL OR jobs.claim_until < now() OR jobs.dead
        RETURNING id, xmax <> 0 AS replaced, task, name, sched_at),
     n AS (SELECT pg_notify('taskhive_jobs', task || ' ' || min(sched_at)::text) FROM up GROUP BY task)
     SELECT id, replaced, task, name, (SELECT count(*) FROM n) FROM up");

/// The ids of jobs by (task, name): `$1` tasks, `$2` names.
pub const IDS_BY_NAME: &str = "SELECT id, task, name FROM jobs
     WHERE (task, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))";

/// A job by id (`$1`) or by task and name (`$2`, `$3`), with its claim.
pub const GET: &str = "SELECT id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
        backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error,
        owner, (owner IS NOT NULL AND claim_until >= now()) AS claimed, trace, job_key
     FROM jobs WHERE ($1::bigint IS NOT NULL AND id = $1) OR ($1::bigint IS NULL AND task = $2 AND name = $3)";

/// Deletes a job by id or by task and name; its holder (if any) is told to forget it.
pub const REMOVE: &str = "WITH d AS (DELETE FROM jobs
        WHERE ($1::bigint IS NOT NULL AND id = $1) OR ($1::bigint IS NULL AND task = $2 AND name = $3)
        RETURNING id, owner, wait),
     n AS (SELECT pg_notify('taskhive_forget', owner || ' ' || id::text) FROM d WHERE owner IS NOT NULL)
     SELECT id, owner IS NOT NULL, wait, (SELECT count(*) FROM n) FROM d";

/// Deletes every job of task `$1`; holders are told to forget theirs.
pub const DROP_TASK: &str = "WITH d AS (DELETE FROM jobs WHERE task = $1 RETURNING id, owner),
     n AS (SELECT pg_notify('taskhive_forget', owner || ' ' || id::text) FROM d WHERE owner IS NOT NULL)
     SELECT count(*), (SELECT count(*) FROM n) FROM d";

/// Per task: counts by state (a job claimed by a live node counts as running), the earliest
/// due time of unclaimed live jobs, and the workers of live nodes. `$1` now, `$2` one task
/// or NULL, `$3` the claim TTL in ms (a node unseen for longer is gone).
pub const STATUS: &str = "WITH j AS (
        SELECT task,
            count(*) FILTER (WHERE NOT dead AND (owner IS NULL OR claim_until < now()) AND sched_at <= $1) AS pending,
            count(*) FILTER (WHERE NOT dead AND (owner IS NULL OR claim_until < now()) AND sched_at > $1) AS scheduled,
            count(*) FILTER (WHERE NOT dead AND owner IS NOT NULL AND claim_until >= now()) AS running,
            count(*) FILTER (WHERE dead) AS dead,
            min(sched_at) FILTER (WHERE NOT dead AND (owner IS NULL OR claim_until < now())) AS next
        FROM jobs WHERE $2::text IS NULL OR task = $2 GROUP BY task),
     w AS (
        SELECT w.task, sum(w.workers)::bigint AS workers, bool_or(w.broadcast) AS broadcast
        FROM cluster_workers w JOIN cluster_nodes n ON n.node = w.node
        WHERE n.seen > now() - $3::bigint * interval '1 millisecond'
          AND ($2::text IS NULL OR w.task = $2)
        GROUP BY w.task)
     SELECT coalesce(j.task, w.task), coalesce(w.workers, 0), coalesce(j.pending, 0),
        coalesce(j.scheduled, 0), coalesce(j.running, 0), coalesce(j.dead, 0), j.next,
        coalesce(w.broadcast, false),
        EXISTS (SELECT 1 FROM paused_tasks p WHERE p.task = coalesce(j.task, w.task))
     FROM j FULL JOIN w ON j.task = w.task ORDER BY 1";

/// Workers of every live node (a worker serving several tasks counts once).
pub const TOTAL_WORKERS: &str = "SELECT coalesce(sum(workers), 0)::bigint FROM cluster_nodes
     WHERE seen > now() - $1::bigint * interval '1 millisecond'";

/// Whether a live node has a worker for task `$1`.
pub const HAS_WORKER: &str = "SELECT EXISTS (SELECT 1 FROM cluster_workers w
        JOIN cluster_nodes n ON n.node = w.node
        WHERE w.task = $1 AND w.workers > 0
          AND n.seen > now() - $2::bigint * interval '1 millisecond')";

/// Node `$1` publishes its workers: `$2` tasks, `$3` counts, `$4` broadcast flags, `$5` total.
pub const PUBLISH_WORKERS: &str = "WITH d AS (DELETE FROM cluster_workers WHERE node = $1 AND task <> ALL($2)),
     i AS (INSERT INTO cluster_workers (node, task, workers, broadcast)
        SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bool[])
        ON CONFLICT (node, task) DO UPDATE SET workers = EXCLUDED.workers, broadcast = EXCLUDED.broadcast)
     INSERT INTO cluster_nodes (node, workers, seen) VALUES ($1, $5, now())
     ON CONFLICT (node) DO UPDATE SET workers = EXCLUDED.workers, seen = now()";

/// The live nodes other than `$1` with broadcast workers for task `$2` (claim TTL `$3` ms).
pub const BROADCAST_NODES: &str = "SELECT w.node FROM cluster_workers w
        JOIN cluster_nodes n ON n.node = w.node
     WHERE w.task = $2 AND w.broadcast AND w.workers > 0 AND w.node <> $1
       AND n.seen > now() - $3::bigint * interval '1 millisecond'
     ORDER BY w.node";

/// Node `$1` is alive; answers the live nodes (claim TTL `$2` ms), for broadcast parts owed
/// by nodes that left. One statement: an idle node runs it every third of a claim TTL.
pub const NODE_SEEN: &str = "WITH s AS (UPDATE cluster_nodes SET seen = now() WHERE node = $1)
     SELECT node FROM cluster_nodes
     WHERE seen > now() - $2::bigint * interval '1 millisecond'";

/// Dead jobs (of task `$1` when set), oldest id first, at most `$2`.
pub const LIST_DEAD: &str =
    "SELECT id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
        backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE dead AND ($1::text IS NULL OR task = $1) ORDER BY id LIMIT $2";

/// Re-queues dead jobs (task `$1`, name `$2`, either NULL for any) due at `$3`.
pub const RETRY_DEAD: &str = "WITH u AS (UPDATE jobs SET dead = false, attempts = 0, sched_at = $3,
            owner = NULL, claim_until = NULL
        WHERE dead AND ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR name = $2)
        RETURNING task),
     n AS (SELECT pg_notify('taskhive_jobs', task || ' ' || $3::text) FROM u GROUP BY task)
     SELECT count(*), (SELECT count(*) FROM n) FROM u";

/// Deletes dead jobs (task `$1`, name `$2`, either NULL for any).
pub const PURGE_DEAD: &str = "DELETE FROM jobs
     WHERE dead AND ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR name = $2)";

/// One page of jobs after id `$1`, at most `$2`.
pub const DUMP_PAGE: &str =
    "SELECT id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
        backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE id > $1 ORDER BY id LIMIT $2";

/// Restores a dumped job over whatever has its (task, name), claimed or not; a holder is
/// told to forget it. `$5` 0 = no lease length: `$14` as in [`stored_timeout`].
pub const LOAD: &str = concat!("WITH old AS (SELECT id, owner FROM jobs WHERE task = $1 AND name = $2),
     up AS (
        INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
            backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error)
        VALUES (nextval('job_ids'), $1, $2, $3, $4, ", stored_timeout!("$5::bigint", "$14"), ",
            $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (task, name) DO UPDATE SET args = EXCLUDED.args, sched_at = EXCLUDED.sched_at,
            timeout_ms = EXCLUDED.timeout_ms, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, backoff_base_ms = EXCLUDED.backoff_base_ms,
            backoff_max_ms = EXCLUDED.backoff_max_ms, attempts = EXCLUDED.attempts,
            run_count = EXCLUDED.run_count, dead = EXCLUDED.dead, last_error = EXCLUDED.last_error,
            wait = false, owner = NULL, claim_until = NULL
        RETURNING id, task, sched_at, dead),
     f AS (SELECT pg_notify('taskhive_forget', owner || ' ' || id::text) FROM old WHERE owner IS NOT NULL),
     n AS (SELECT pg_notify('taskhive_jobs', task || ' ' || sched_at::text) FROM up WHERE NOT dead)
     SELECT id, (SELECT count(*) FROM f), (SELECT count(*) FROM n) FROM up");

/// Publishes a RunJob result (`$1` id, `$2` ok, `$3` data) for the node waiting on it.
pub const PUBLISH_RESULT: &str = "WITH r AS (INSERT INTO results (id, ok, data) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE SET ok = EXCLUDED.ok, data = EXCLUDED.data
        RETURNING id)
     SELECT pg_notify('taskhive_results', id::text) FROM r";

/// A setting changed on one node (already stored): every node applies it.
pub const ANNOUNCE_CONFIG: &str = "SELECT pg_notify('taskhive_config', $1 || ' ' || $2::text)";

/// ListJobs, one state at a time: task `$1`, name prefix `$2`, now `$3`, at most `$4` rows,
/// after the page token's key (`$5`.. as each statement says). A job claimed by a live node
/// is running (as in [`STATUS`]). For pending, scheduled and dead the keyset predicate is a
/// row comparison on the columns of the index that serves the ORDER BY (migration 6), so a
/// page reads about a page of index entries. Running jobs have no index (one on `owner`
/// would make every claim a non-HOT update): this one scans the task's live rows.
pub const LIST_RUNNING: &str = "SELECT id, task, name, args, sched_at, timeout_ms, priority,
        max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE task = $1 AND NOT dead AND starts_with(name, $2)
        AND owner IS NOT NULL AND claim_until >= now() AND $3::bigint IS NOT NULL
        AND id > $5
     ORDER BY id LIMIT $4";

/// Pending jobs in run order after (`$5` negated priority, `$6` sched_at, `$7` id).
pub const LIST_PENDING: &str = "SELECT id, task, name, args, sched_at, timeout_ms, priority,
        max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE task = $1 AND NOT dead AND starts_with(name, $2)
        AND (owner IS NULL OR claim_until < now()) AND sched_at <= $3
        AND (-(priority::bigint), sched_at, id) > ($5::bigint, $6::bigint, $7::bigint)
     ORDER BY -(priority::bigint), sched_at, id LIMIT $4";

/// Scheduled jobs after (`$5` sched_at, `$6` id).
pub const LIST_SCHEDULED: &str = "SELECT id, task, name, args, sched_at, timeout_ms, priority,
        max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE task = $1 AND NOT dead AND starts_with(name, $2)
        AND (owner IS NULL OR claim_until < now()) AND sched_at > $3
        AND (sched_at, id) > ($5::bigint, $6::bigint)
     ORDER BY sched_at, id LIMIT $4";

/// Dead jobs after id `$5`.
pub const LIST_DEAD_PAGE: &str = "SELECT id, task, name, args, sched_at, timeout_ms, priority,
        max_attempts, backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, trace, job_key
     FROM jobs WHERE task = $1 AND dead AND starts_with(name, $2) AND $3::bigint IS NOT NULL
        AND id > $5
     ORDER BY id LIMIT $4";
/// Creates or replaces schedule `$1` (spec `$2`), unpaused, last tick `$3`.
pub const PUT_SCHEDULE: &str = "INSERT INTO schedules (name, spec, paused, last_tick, last_job)
        VALUES ($1, $2, false, $3, '')
     ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, paused = false,
        last_tick = EXCLUDED.last_tick, last_job = ''";

/// Every schedule, in name order.
pub const LIST_SCHEDULES: &str =
    "SELECT name, spec, paused, last_tick, last_job FROM schedules ORDER BY name";

/// Schedule `$1`.
pub const GET_SCHEDULE: &str =
    "SELECT name, spec, paused, last_tick, last_job FROM schedules WHERE name = $1";

/// Pauses (`$2` true) or resumes schedule `$1`; resuming moves its last tick to `$3`.
pub const PAUSE_SCHEDULE: &str = "UPDATE schedules SET paused = $2,
        last_tick = CASE WHEN paused AND NOT $2 THEN GREATEST(last_tick, $3) ELSE last_tick END
     WHERE name = $1";

/// Tells every node's schedule driver that schedule `$1` changed.
pub const ANNOUNCE_SCHEDULE: &str = "SELECT pg_notify('taskhive_schedules', $1::text)";

/// Deletes schedule `$1`.
pub const DELETE_SCHEDULE: &str = "DELETE FROM schedules WHERE name = $1";

/// Fires ticks of schedule `$14`: when its last tick is still `$15` and it is not paused,
/// moves the last tick to `$16` (job `$17`) and inserts the tick jobs (`$1`..`$13` as in
/// [`SUBMIT`]), all in this one statement. Nodes racing for one tick all run it; the row
/// lock makes the later ones see the new last tick and change nothing. Returns whether
/// this call fired.
pub const FIRE_SCHEDULE: &str = concat!("WITH cas AS (
        UPDATE schedules SET last_tick = $16, last_job = $17
        WHERE name = $14 AND last_tick = $15 AND NOT paused RETURNING 1),
     input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::bigint[],
            $6::int[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bool[], $11::text[], $12::text[])
            WITH ORDINALITY
        AS u(task, name, args, sched_at, timeout_ms, priority, max_attempts, backoff_base_ms,
            backoff_max_ms, wait, trace, job_key, ord)
        WHERE EXISTS (SELECT 1 FROM cas)),
     up AS (
        INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
            backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error, wait, trace, job_key)
        SELECT nextval('job_ids'), task, name, args, sched_at, ", stored_timeout!("timeout_ms", "$13"), ",
            priority, max_attempts, backoff_base_ms, backoff_max_ms, 0, 0, false, '', wait, trace,
            job_key
        FROM input ORDER BY ord
        ON CONFLICT (task, name) DO NOTHING
        RETURNING task, sched_at),
     n AS (SELECT pg_notify('taskhive_jobs', task || ' ' || min(sched_at)::text) FROM up GROUP BY task)
     SELECT (SELECT count(*) FROM cas), (SELECT count(*) FROM n)");

/// A task paused (`$1` = '1') or resumed ('0') on one node (already stored): every node
/// applies it.
pub const ANNOUNCE_PAUSE: &str = "SELECT pg_notify('taskhive_paused', $1::text || ' ' || $2::text)";

/// A task's limits changed on one node (already stored): every node applies them. The
/// payload carries them (`$1`, as stored; empty = none) and the task (`$2`) after a newline,
/// so a node whose session is being reopened still gets them.
pub const ANNOUNCE_LIMITS: &str =
    "SELECT pg_notify('taskhive_limits', $1::text || chr(10) || $2::text)";

/// Locks limited task `$1`'s row for a claim (claims of the task go one at a time): its
/// limits, its bucket and the database's clock in µs.
pub const LOCK_LIMITS: &str = "SELECT limits, tat_us,
        (extract(epoch from clock_timestamp()) * 1000000)::bigint
     FROM task_limits WHERE task = $1 FOR UPDATE";

/// How many of task `$1`'s jobs due by `$2` are claimed by a live node (running, or about
/// to be handed out by their node). A statement of its own, after [`LOCK_LIMITS`]: in READ
/// COMMITTED a statement reads with the snapshot it started with, so a count taken in the
/// locking statement would miss the claims of the transaction it waited for.
pub const CLAIMED_DUE: &str = "SELECT count(*) FROM jobs WHERE task = $1 AND NOT dead
     AND sched_at <= $2 AND owner IS NOT NULL AND claim_until >= now()";

/// Takes one start from the buckets of task `$1`'s keys `$2` at `$3` µs, each interval `$4`
/// µs; forgets the task's buckets that are full again (they cost nothing to recreate).
pub const TAKE_KEY_STARTS: &str = "WITH gone AS (DELETE FROM task_key_buckets
        WHERE task = $1 AND tat_us <= $3 AND NOT (job_key = ANY($2)))
     INSERT INTO task_key_buckets (task, job_key, tat_us)
     SELECT $1, k, $3 + $4 FROM unnest($2::text[]) AS k
     ON CONFLICT (task, job_key) DO UPDATE
        SET tat_us = GREATEST(task_key_buckets.tat_us, $3) + $4";

/// Stores limited task `$1`'s bucket after a claim.
pub const SET_LIMITS_TAT: &str = "UPDATE task_limits SET tat_us = $2 WHERE task = $1";

/// [`CLAIM`] for a task with per-key limits: at most one job per key (`''`, no key, is one
/// more key), only of keys with fewer than `$6` jobs claimed by live nodes and whose bucket
/// (`task_key_buckets`) lets a start go at `$8` µs (tolerance `$7` µs; `$8` = i64 max when
/// no per-key rate); keys by their best job's order. Runs under [`LOCK_LIMITS`]'s row lock.
pub const CLAIM_PER_KEY: &str = concat!(
    "UPDATE jobs j SET owner = $1, lease_version = j.lease_version + 1,
        claim_until = now() + $2::bigint * interval '1 millisecond'
     FROM (SELECT id FROM jobs WHERE id IN (
             SELECT DISTINCT ON (c.job_key) c.id FROM jobs c
             WHERE c.task = $3 AND NOT c.dead AND c.sched_at <= $4
               AND (c.owner IS NULL OR c.claim_until < now())
               AND NOT EXISTS (SELECT 1 FROM paused_tasks p WHERE p.task = $3)
               AND (c.job_key = '' OR (SELECT count(*) FROM jobs o
                    WHERE o.task = $3 AND o.job_key = c.job_key AND NOT o.dead
                      AND o.sched_at <= $4 AND o.owner IS NOT NULL AND o.claim_until >= now()) < $6)
               AND NOT EXISTS (SELECT 1 FROM task_key_buckets b
                    WHERE b.task = $3 AND b.job_key = c.job_key AND c.job_key <> ''
                      AND b.tat_us - $7::bigint > $8::bigint)
             ORDER BY c.job_key, c.priority DESC, c.sched_at, c.id)
           ORDER BY priority DESC, sched_at, id
           LIMIT $5
           FOR UPDATE SKIP LOCKED) c
",
    claimed_columns!()
);

/// Every saved load job's name (a node that starts announces them to its runner).
pub const LOAD_JOB_NAMES: &str = "SELECT name FROM load_jobs";

/// Wakes every claimer for task `$1` (a resumed task's jobs are claimable again).
pub const WAKE_TASK: &str = "SELECT pg_notify('taskhive_jobs', $1::text || ' 0')";

/// Keeps a done job's outcome (`$1` id, `$2` task, `$3` name, `$4` attempts, `$5` result,
/// `$6` finished at, `$7` expires at), replacing an older one of the same (task, name);
/// outcomes expired by `$6` go in the same statement (by the expiry index, no scan).
pub const KEEP_RESULT: &str = "WITH gone AS (DELETE FROM results_kept WHERE expires_at <= $6)
     INSERT INTO results_kept (task, name, id, attempts, result, finished_at, expires_at)
        VALUES ($2, $3, $1, $4, $5, $6, $7)
     ON CONFLICT (task, name) DO UPDATE SET id = EXCLUDED.id, attempts = EXCLUDED.attempts,
        result = EXCLUDED.result, finished_at = EXCLUDED.finished_at,
        expires_at = EXCLUDED.expires_at";

/// A kept outcome by id (`$1`) or by task and name (`$2`, `$3`), unexpired at `$4`.
pub const GET_KEPT: &str = "SELECT id, task, name, attempts, result, finished_at FROM results_kept
     WHERE (($1::bigint IS NOT NULL AND id = $1) OR ($1::bigint IS NULL AND task = $2 AND name = $3))
       AND expires_at > $4";

/// Registers node `$3`'s watcher of job (`$1`, `$2`) and announces it (`$4`, JSON).
pub const WATCH_START: &str = "WITH w AS (INSERT INTO job_watches (task, name, node)
        VALUES ($1, $2, $3) ON CONFLICT DO NOTHING)
     SELECT pg_notify('taskhive_watch', $4::text)";

/// Node `$3`'s watch of (`$1`, `$2`) was answered.
pub const WATCH_END: &str = "DELETE FROM job_watches WHERE task = $1 AND name = $2 AND node = $3";

/// The keys some node other than `$1` watches.
pub const WATCHED_ELSEWHERE: &str = "SELECT task, name FROM job_watches WHERE node <> $1";

/// A piece of a watched job's event (`$1`, JSON) for the watchers on other nodes.
pub const JOB_EVENT: &str = "SELECT pg_notify('taskhive_job_data', $1::text)";

/// The kept result of job (`$1`, `$2`), unexpired at `$3`, when no job of that name exists
/// now (a later submit starts a new job, which a watcher waits for instead).
pub const KEPT_AND_GONE: &str = "SELECT k.result FROM results_kept k
     WHERE k.task = $1 AND k.name = $2 AND k.expires_at > $3
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task = $1 AND j.name = $2)";
