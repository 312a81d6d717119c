//! One set of store tests run against every store: memory (the reference), SQLite and
//! PostgreSQL (`TASKHIVE_PG_URL`, or a throwaway cluster this binary starts itself).

#[allow(dead_code)]
mod common {
    pub mod pg;
}

use bytes::Bytes;
use taskhive::scheduler::job::{JobRecord, RetryPolicy, TraceParent};
use taskhive::store::memory::MemoryStore;
use taskhive::store::postgres::PgStore;
use taskhive::store::sqlite::{SqliteStore, Sync};
use taskhive::store::{ExecRow, Op, Store};
use taskhive::store::{JobWrite, Write};

/// Opens the store under test; every call opens the same underlying data (a reopen).
trait Fixture {
    fn open(&self) -> Box<dyn Store>;
}

struct MemoryFx(MemoryStore);
impl Fixture for MemoryFx {
    fn open(&self) -> Box<dyn Store> {
        Box::new(self.0.clone())
    }
}

struct SqliteFx(tempfile::TempDir);
impl Fixture for SqliteFx {
    fn open(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(self.0.path(), Sync::Normal).expect("open sqlite"))
    }
}

struct PgFx(common::pg::PgDb);
impl Fixture for PgFx {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PgStore::open(&self.0.url).expect("open postgres"))
    }
}

fn rec(id: u64, task: &str, name: &str) -> JobRecord {
    JobRecord {
        id,
        task: task.into(),
        name: name.into(),
        args: Bytes::from(format!("args of {name}")),
        sched_at: 1_700_000_000_000 + id as i64,
        timeout_ms: 30_000,
        priority: 0,
        retry: RetryPolicy::default(),
        attempts: 0,
        run_count: 0,
        dead: false,
        last_error: String::new(),
        // Odd ids carry a trace context, so every store round-trips both kinds.
        spilled: None,
        trace: (id % 2 == 1).then_some(TraceParent {
            trace_id: [(id as u8) | 1; 16],
            span_id: [9; 8],
            flags: 1,
        }),
        // Every third carries a flow-control key.
        key: if id.is_multiple_of(3) {
            format!("tenant-{}", id % 5)
        } else {
            String::new()
        },
    }
}

/// A failed attempt's reschedule: due at `sched_at`, `attempts` so far, `last_error`.
fn retried(id: u64, sched_at: i64, attempts: u32, last_error: &str) -> Op {
    Op::from(JobWrite::Reschedule {
        id,
        sched_at,
        attempts,
        run_count: 0,
        dead: false,
        last_error: last_error.into(),
    })
}

fn exec(id: &str, name: &str, t_start: &str) -> ExecRow {
    ExecRow {
        id: id.into(),
        name: name.into(),
        t_start: t_start.into(),
        elapsed_usec: 1_234_567,
        n_task: 10,
        n_fail: 2,
        threshold_exceeded: true,
        aborted: false,
        json: format!("{{\"id\":\"{id}\"}}"),
    }
}

fn apply(s: &mut Box<dyn Store>, ops: Vec<Op>) {
    s.apply(&ops).expect("apply");
}

/// Upserts `jobs` in one batch.
fn upsert_all(s: &mut Box<dyn Store>, jobs: &[JobRecord]) {
    let ops = jobs.iter().cloned().map(JobWrite::Upsert).map(Op::from);
    apply(s, ops.collect());
}

fn upsert_replaces_by_id(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(&mut s, vec![Op::from(JobWrite::Upsert(rec(1, "t", "a")))]);
    let mut changed = rec(1, "t", "b");
    changed.args = Bytes::from_static(b"\x00\xffbinary\x00");
    changed.priority = -7;
    changed.timeout_ms = u32::MAX;
    changed.retry = RetryPolicy {
        max_attempts: u32::MAX,
        backoff_base_ms: 1,
        backoff_max_ms: u32::MAX,
    };
    apply(&mut s, vec![Op::from(JobWrite::Upsert(changed.clone()))]);
    assert_eq!(s.load_jobs().unwrap(), vec![changed]);
}

/// Jobs are keyed by id; the core keeps (task, name) unique, so the store need not (the
/// PostgreSQL store still does: cluster submits upsert by name).
fn same_name_in_another_task(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Upsert(rec(1, "t", "a"))),
            Op::from(JobWrite::Upsert(rec(2, "u", "a"))),
        ],
    );
    assert_eq!(
        s.load_jobs().unwrap(),
        vec![rec(1, "t", "a"), rec(2, "u", "a")]
    );
}

fn reschedule_keeps_payload(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Upsert(rec(1, "t", "a"))),
            Op::from(JobWrite::Upsert(rec(2, "t", "b"))),
        ],
    );
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Reschedule {
                id: 1,
                sched_at: 42,
                attempts: 3,
                run_count: 9,
                dead: true,
                last_error: "boom".into(),
            }),
            // An unknown id changes nothing and is no error.
            Op::from(JobWrite::Reschedule {
                id: 99,
                sched_at: 1,
                attempts: 1,
                run_count: 1,
                dead: false,
                last_error: String::new(),
            }),
        ],
    );
    let mut want = rec(1, "t", "a");
    want.sched_at = 42;
    want.attempts = 3;
    want.run_count = 9;
    want.dead = true;
    want.last_error = "boom".into();
    assert_eq!(s.load_jobs().unwrap(), vec![want, rec(2, "t", "b")]);
}

fn delete_and_delete_task(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Upsert(rec(1, "t", "a"))),
            Op::from(JobWrite::Upsert(rec(2, "t", "b"))),
            Op::from(JobWrite::Upsert(rec(3, "u", "a"))),
            Op::from(JobWrite::Upsert(rec(4, "v", "a"))),
        ],
    );
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Delete(1)),
            Op::from(JobWrite::Delete(77)),
        ],
    );
    assert_eq!(
        s.load_jobs().unwrap(),
        vec![rec(2, "t", "b"), rec(3, "u", "a"), rec(4, "v", "a")]
    );
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::DeleteTask("t".into())),
            Op::from(JobWrite::DeleteTask("none".into())),
        ],
    );
    assert_eq!(
        s.load_jobs().unwrap(),
        vec![rec(3, "u", "a"), rec(4, "v", "a")]
    );
}

fn one_batch_applies_in_order(fx: &dyn Fixture) {
    let mut s = fx.open();
    let mut later = rec(1, "t", "a");
    later.args = Bytes::from_static(b"second");
    apply(
        &mut s,
        vec![
            Op::from(JobWrite::Upsert(rec(1, "t", "a"))),
            Op::from(JobWrite::Upsert(rec(2, "t", "b"))),
            retried(2, 5, 1, "x"),
            retried(2, 6, 2, "y"),
            Op::from(JobWrite::Delete(1)),
            Op::from(JobWrite::Upsert(later.clone())),
            Op::from(JobWrite::Upsert(rec(3, "t", "c"))),
            Op::from(JobWrite::Upsert(rec(4, "t", "c"))),
            Op::from(JobWrite::Delete(3)),
        ],
    );
    let mut two = rec(2, "t", "b");
    two.sched_at = 6;
    two.attempts = 2;
    two.last_error = "y".into();
    assert_eq!(s.load_jobs().unwrap(), vec![later, two, rec(4, "t", "c")]);
}

/// Jobs finished while their insert waited for a commit: one batch stores, reschedules and
/// deletes them (SQLite skips the writes the delete makes moot). A job stored before the
/// batch and deleted in it is gone, one deleted and stored again is back with its later row.
fn jobs_written_and_deleted_in_one_batch(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(&mut s, vec![Op::from(JobWrite::Upsert(rec(1, "t", "old")))]);
    // Reopened: what was stored before comes from the file, not from this store's memory.
    drop(s);
    let mut s = fx.open();
    let mut back = rec(3, "t", "back");
    back.args = Bytes::from_static(b"again");
    let mut ops = vec![
        Op::from(JobWrite::Upsert(rec(1, "t", "old"))),
        retried(1, 9, 1, "x"),
        Op::from(JobWrite::Delete(1)),
        Op::from(JobWrite::Upsert(rec(3, "t", "back"))),
        Op::from(JobWrite::Delete(3)),
        Op::from(JobWrite::Upsert(back.clone())),
    ];
    // The bench's shape: many jobs inserted, most finished before the commit.
    for i in 10..210u64 {
        ops.push(Op::from(JobWrite::Upsert(rec(i, "e2e", &format!("j{i}")))));
    }
    for i in (10..210u64).filter(|i| i % 10 != 0) {
        ops.push(Op::from(JobWrite::Delete(i)));
    }
    apply(&mut s, ops);
    let mut want = vec![back];
    want.extend(
        (10..210u64)
            .step_by(10)
            .map(|i| rec(i, "e2e", &format!("j{i}"))),
    );
    assert_eq!(s.load_jobs().unwrap(), want);
    drop(s);
    assert_eq!(fx.open().load_jobs().unwrap(), want, "after a reopen");
}

fn large_batches(fx: &dyn Fixture) {
    let mut s = fx.open();
    let n = 5_000u64;
    apply(
        &mut s,
        (1..=n)
            .map(|i| Op::from(JobWrite::Upsert(rec(i, "bulk", &format!("j{i}")))))
            .collect(),
    );
    apply(
        &mut s,
        (1..=n)
            .map(|i| {
                Op::from(JobWrite::Reschedule {
                    id: i,
                    sched_at: i as i64,
                    attempts: 1,
                    run_count: 2,
                    dead: false,
                    last_error: String::new(),
                })
            })
            .collect(),
    );
    apply(
        &mut s,
        (1..=n)
            .filter(|i| i % 2 == 0)
            .map(|id| Op::from(JobWrite::Delete(id)))
            .collect(),
    );
    let jobs = s.load_jobs().unwrap();
    assert_eq!(jobs.len(), (n / 2) as usize);
    assert!(jobs
        .iter()
        .all(|j| j.id % 2 == 1 && j.sched_at == j.id as i64 && j.run_count == 2));
}

/// A batch with a run of upserts and a run of deletes applies as the same ops one by one: a
/// later row with the same id wins and a dead job keeps its error.
fn runs_of_upserts_and_deletes_apply_in_order(fx: &dyn Fixture) {
    let mut s = fx.open();
    let mut ops: Vec<Op> = (1..=70u64)
        .map(|i| Op::from(JobWrite::Upsert(rec(i, "run", &format!("j{i}")))))
        .collect();
    let mut again = rec(5, "run", "renamed");
    again.dead = true;
    again.last_error = "boom".into();
    ops.insert(40, Op::from(JobWrite::Upsert(again.clone())));
    apply(&mut s, ops);
    apply(
        &mut s,
        (1..=70u64)
            .filter(|i| *i != 5 && i % 7 != 0)
            .map(|id| Op::from(JobWrite::Delete(id)))
            .collect(),
    );
    let jobs = s.load_jobs().unwrap();
    let mut want = vec![again];
    want.extend(
        (7..=70u64)
            .step_by(7)
            .map(|i| rec(i, "run", &format!("j{i}"))),
    );
    assert_eq!(jobs, want);
}

/// The start-up read: past 50,000 ids SQLite splits it over two threads; task names come
/// back once each and every job keeps its own.
fn start_up_read_of_many_jobs(fx: &dyn Fixture) {
    let mut s = fx.open();
    let n = 60_000u64;
    let tasks = ["alpha", "beta", "gamma"];
    let all: Vec<JobRecord> = (1..=n)
        .map(|i| rec(i, tasks[(i % 7 % 3) as usize], &format!("j{i}")))
        .collect();
    for chunk in all.chunks(10_000) {
        upsert_all(&mut s, chunk);
    }
    apply(
        &mut s,
        (1..=n)
            .filter(|i| i % 5 == 0)
            .map(|id| Op::from(JobWrite::Delete(id)))
            .collect(),
    );
    let want: Vec<JobRecord> = all.into_iter().filter(|r| r.id % 5 != 0).collect();
    let mut s = fx.open();
    let stored = s.load_stored_jobs(None).unwrap();
    let mut names = stored.tasks.clone();
    names.sort();
    assert_eq!(names, tasks, "each task name once");
    assert!(stored.jobs.iter().all(|(_, r)| r.task.is_empty()));
    assert_eq!(stored.into_records(), want);
    assert_eq!(s.load_jobs().unwrap(), want);
}

/// The payload budget's reads: a start-up read leaves payloads from the threshold up in the
/// store (empty `args`, their length in `spilled`), and `read_args` brings them back by id.
fn large_payloads_stay_in_the_store_until_read(fx: &dyn Fixture) {
    let mut s = fx.open();
    let mut jobs: Vec<JobRecord> = (1..=6u64).map(|i| rec(i, "t", &format!("j{i}"))).collect();
    for (i, r) in jobs.iter_mut().enumerate() {
        // 1023, 1024, 1025, 0, 5000 and 70,000 bytes, each byte telling which job it is.
        let len = [1023, 1024, 1025, 0, 5000, 70_000][i];
        r.args = Bytes::from(vec![b'a' + i as u8; len]);
    }
    upsert_all(&mut s, &jobs);
    let mut s = fx.open();
    let stored = s.load_stored_jobs(Some(1024)).unwrap().into_records();
    assert_eq!(stored.len(), 6);
    for (got, want) in stored.iter().zip(&jobs) {
        if want.args.len() >= 1024 {
            assert_eq!(got.spilled, Some(want.args.len() as u32), "job {}", want.id);
            assert!(got.args.is_empty(), "job {}", want.id);
            let left = JobRecord {
                args: want.args.clone(),
                spilled: None,
                ..got.clone()
            };
            assert_eq!(&left, want, "every other column read");
        } else {
            assert_eq!(got, want, "a small payload is read at once");
        }
    }
    let mut read = s.read_args(&[5, 2, 3, 99, 6]).unwrap();
    read.sort_by_key(|(id, _)| *id);
    let ids: Vec<u64> = read.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2, 3, 5, 6], "an id not stored is left out");
    for (id, args) in read {
        assert_eq!(
            args,
            jobs[id as usize - 1].args,
            "job {id}'s payload intact"
        );
    }
    assert_eq!(s.load_stored_jobs(None).unwrap().into_records(), jobs);
}

fn config_round_trip(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(
        &mut s,
        vec![
            Op::Scheduler(Write::SetConfig {
                key: "timeout".into(),
                value: 600,
            }),
            Op::Scheduler(Write::SetConfig {
                key: "lock-timeout".into(),
                value: -1,
            }),
            Op::Scheduler(Write::SetConfig {
                key: "timeout".into(),
                value: i64::MAX,
            }),
        ],
    );
    assert_eq!(
        s.load_config().unwrap(),
        vec![
            ("lock-timeout".to_string(), -1),
            ("timeout".to_string(), i64::MAX)
        ]
    );
}

fn load_jobs_saved_by_name(fx: &dyn Fixture) {
    let mut s = fx.open();
    apply(
        &mut s,
        vec![
            Op::SaveLoadJob {
                name: "b".into(),
                json: "{\"v\":1}".into(),
            },
            Op::SaveLoadJob {
                name: "a".into(),
                json: "{}".into(),
            },
            Op::SaveLoadJob {
                name: "b".into(),
                json: "{\"v\":2}".into(),
            },
        ],
    );
    assert_eq!(
        s.load_load_jobs().unwrap(),
        vec![
            ("a".to_string(), "{}".to_string()),
            ("b".to_string(), "{\"v\":2}".to_string())
        ]
    );
}

fn exec_archive_and_trim(fx: &dyn Fixture) {
    let mut s = fx.open();
    let reader = s.reader().unwrap();
    let rows = [
        exec("e1", "web", "2026-01-01 00:00:01.000+00:00"),
        exec("e2", "api", "2026-01-01 00:00:02.000+00:00"),
        exec("e3", "web", "2026-01-01 00:00:03.000+00:00"),
        exec("e4", "web", "2026-01-01 00:00:04.000+00:00"),
    ];
    apply(&mut s, rows.iter().cloned().map(Op::ArchiveExec).collect());
    let ids = |v: Vec<ExecRow>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(reader.list_execs(None, 10).unwrap()),
        ["e4", "e3", "e2", "e1"]
    );
    assert_eq!(
        ids(reader.list_execs(Some("web"), 2).unwrap()),
        ["e4", "e3"]
    );
    assert!(reader
        .list_execs(None, 10)
        .unwrap()
        .iter()
        .all(|r| r.json.is_empty()));
    assert_eq!(reader.get_exec("e2").unwrap(), Some(rows[1].clone()));
    assert_eq!(reader.get_exec("nope").unwrap(), None);
    // Same id replaces.
    let mut again = exec("e2", "api", "2026-01-01 00:00:05.000+00:00");
    again.aborted = true;
    apply(&mut s, vec![Op::ArchiveExec(again.clone())]);
    assert_eq!(reader.get_exec("e2").unwrap(), Some(again));
    apply(&mut s, vec![Op::TrimExecs(2)]);
    assert_eq!(ids(reader.list_execs(None, 10).unwrap()), ["e2", "e4"]);
    apply(&mut s, vec![Op::TrimExecs(0)]);
    assert!(reader.list_execs(None, 10).unwrap().is_empty());
}

fn reader_beside_writer(fx: &dyn Fixture) {
    let mut s = fx.open();
    let reader = s.reader().unwrap();
    // The writer keeps writing on its own thread while another thread reads.
    let writer = std::thread::spawn(move || {
        for i in 0..50 {
            let t = format!("2026-01-01 00:00:{i:02}.000+00:00");
            s.apply(&[Op::ArchiveExec(exec(&format!("x{i:02}"), "w", &t))])
                .unwrap();
        }
        s
    });
    let mut last = 0;
    while last < 50 {
        let n = reader.list_execs(Some("w"), 100).unwrap().len();
        assert!(n >= last, "a reader never sees committed rows vanish");
        last = n;
        if writer.is_finished() && n < 50 {
            assert_eq!(reader.list_execs(Some("w"), 100).unwrap().len(), 50);
            break;
        }
    }
    drop(writer.join().unwrap());
}

fn reopen_and_load(fx: &dyn Fixture) {
    let mut jobs: Vec<JobRecord> = (1..=20).map(|i| rec(i, "t", &format!("n{i}"))).collect();
    jobs[3].dead = true;
    jobs[3].last_error = "ünïcode error".into();
    jobs[4].args = Bytes::from(vec![0u8; 100_000]);
    {
        let mut s = fx.open();
        upsert_all(&mut s, &jobs);
        apply(
            &mut s,
            vec![
                Op::Scheduler(Write::SetConfig {
                    key: "k".into(),
                    value: 7,
                }),
                Op::SaveLoadJob {
                    name: "lj".into(),
                    json: "{}".into(),
                },
                Op::ArchiveExec(exec("e", "lj", "2026-01-01 00:00:00.000+00:00")),
            ],
        );
    }
    let mut s = fx.open();
    assert_eq!(s.load_jobs().unwrap(), jobs);
    assert_eq!(s.load_config().unwrap(), vec![("k".to_string(), 7)]);
    assert_eq!(s.load_load_jobs().unwrap().len(), 1);
    assert!(s.reader().unwrap().get_exec("e").unwrap().is_some());
}

macro_rules! suite {
    ($store:ident, $fx:expr; $($case:ident),* $(,)?) => {
        mod $store {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let fx = $fx;
                    super::$case(&fx);
                }
            )*
        }
    };
}

macro_rules! all_stores {
    ($($case:ident),* $(,)?) => {
        suite!(memory, MemoryFx(MemoryStore::default()); $($case),*);
        suite!(sqlite, SqliteFx(tempfile::tempdir().unwrap()); $($case),*);
        suite!(postgres, PgFx(common::pg::fresh_db()); $($case),*);
    };
}

all_stores!(
    upsert_replaces_by_id,
    same_name_in_another_task,
    reschedule_keeps_payload,
    delete_and_delete_task,
    one_batch_applies_in_order,
    jobs_written_and_deleted_in_one_batch,
    large_batches,
    runs_of_upserts_and_deletes_apply_in_order,
    start_up_read_of_many_jobs,
    large_payloads_stay_in_the_store_until_read,
    config_round_trip,
    load_jobs_saved_by_name,
    exec_archive_and_trim,
    reader_beside_writer,
    reopen_and_load,
);

#[test]
fn postgres_migrations_are_idempotent_and_versioned() {
    let db = common::pg::fresh_db();
    let mut a = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let v1 = taskhive::store::postgres::migrate(&mut a).unwrap();
    let v2 = taskhive::store::postgres::migrate(&mut a).unwrap();
    assert_eq!(v1, v2);
    let stored: i64 = a
        .query_one("SELECT version FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, v1);
}

/// Migration 14: rows an earlier version stored with `timeout_ms = 0` take the stored
/// `timeout` setting (seconds); rows with a lease length keep theirs.
#[test]
fn postgres_migration_fills_the_timeouts_an_earlier_version_left_unset() {
    let db = common::pg::fresh_db();
    let mut c = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let latest = taskhive::store::postgres::migrate(&mut c).unwrap();
    assert!(latest >= 14, "schema version {latest}");
    // The database as the earlier version left it: at version 13, two jobs without a lease
    // length and one with, and the setting changed to 42 s.
    c.batch_execute(
        "UPDATE schema_version SET version = 13;
         INSERT INTO jobs (id, task, name, args, sched_at, timeout_ms, priority, max_attempts,
             backoff_base_ms, backoff_max_ms, attempts, run_count, dead, last_error)
         VALUES (1, 't', 'unset', '', 0, 0, 0, 1, 0, 0, 0, 0, false, ''),
                (2, 't', 'dead-unset', '', 0, 0, 0, 1, 0, 0, 1, 1, true, 'failed'),
                (3, 't', 'set', '', 0, 5000, 0, 1, 0, 0, 0, 0, false, '');
         INSERT INTO config (key, value) VALUES ('timeout', 42);",
    )
    .unwrap();
    assert_eq!(taskhive::store::postgres::migrate(&mut c).unwrap(), latest);
    let rows: Vec<(i64, i64)> = c
        .query("SELECT id, timeout_ms FROM jobs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![(1, 42_000), (2, 42_000), (3, 5000)]);
}

/// Two transactions that wait on each other's rows: a store batch and another session.
/// PostgreSQL would end the cycle only `deadlock_timeout` after a wait starts (1 s by
/// default); the batch gives up on its own after a tenth of a second, rolls back so that
/// the other side goes on, and is tried again: it lands whole and the caller sees no error
/// (in a cluster, an error would make the node throw away and reload every job the batch
/// touched).
#[test]
fn postgres_batch_in_a_deadlock_gives_way_and_lands() {
    let db = common::pg::fresh_db();
    // PostgreSQL must not end the cycle itself within the test: both sessions connect after
    // this, so neither looks for a deadlock for a minute, and the test gives up at 30 s.
    db.set_session_default("deadlock_timeout", "60s");
    let mut s = PgStore::open(&db.url).expect("open postgres");
    s.apply(&[
        Op::from(JobWrite::Upsert(rec(1, "t", "a"))),
        Op::from(JobWrite::Upsert(rec(2, "t", "b"))),
    ])
    .unwrap();

    let mut other = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let timeout: String = other
        .query_one("SHOW deadlock_timeout", &[])
        .unwrap()
        .get(0);
    assert_eq!(timeout, "1min", "the database default reaches new sessions");
    // Its wait on row 1 below fails at 30 s, long before PostgreSQL would end the cycle.
    other
        .batch_execute("SET statement_timeout = '30s'")
        .unwrap();
    let mut other = other.transaction().unwrap();
    other
        .execute("UPDATE jobs SET last_error = 'other' WHERE id = 2", &[])
        .unwrap();
    // The batch locks row 1, then waits on row 2.
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = s.apply(&[retried(1, 42, 1, "batch"), Op::from(JobWrite::Delete(2))]);
        let _ = done_tx.send((s, r));
    });
    let mut watch = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: bool = watch
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock')",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited on row 2"
        );
        std::thread::yield_now();
    }
    // Row 1 closes the cycle while the batch holds it (or goes through at once if it
    // caught the batch between two tries). Either way it must not wait for PostgreSQL's
    // deadlock check: the batch lets go.
    other
        .execute("UPDATE jobs SET last_error = 'other' WHERE id = 1", &[])
        .expect("the batch let go of row 1 before the other session's 30 s ran out");
    other.commit().unwrap();

    let (mut s, r) = done
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the batch gave way and landed before PostgreSQL looked for a deadlock");
    r.expect("the batch is tried again after giving way");
    let mut want = rec(1, "t", "a");
    want.sched_at = 42;
    want.attempts = 1;
    want.last_error = "batch".into();
    assert_eq!(s.load_jobs().unwrap(), vec![want]);
}
