//! Flow control across a cluster: claims that respect a task's limits through the database.
//!
//! A claim of a limited task runs in one transaction that first locks the task's row in
//! `task_limits` (so claims of that task from every node go one at a time), counts the jobs
//! claimed by live nodes that are due (running, or about to be handed out by the node that
//! holds them), and takes at most `max_running` minus that count, and at most what the
//! task's token bucket allows by the database's clock (the same [`Gcra`] the core uses; its
//! state is the row's `tat_us`). With per-key limits, one claim takes at most one job per
//! key, and only of keys whose claimed count is under `max_running_per_key`.
//!
//! Error bound: none above the limit — a job counts from its claim until its row is deleted
//! or given back, which covers its whole run. The cost is the other way: a claimed job that
//! waits in a node's core for a free worker holds a slot, and a freed slot is seen by the
//! next claim (at most the poll interval, or 50 ms while the task is saturated). A per-key
//! rate keeps one bucket per key in `task_key_buckets` (one claim takes at most one job per
//! key, so each claimed key takes one start). Transient jobs (load-runner remote runs) count
//! on their node only.

use tokio_postgres::Client;

use super::db_err;
use super::sql;
use crate::scheduler::error::Error;
use crate::scheduler::limits::{tolerance_us, Gcra, TaskLimits};

/// What a limited claim may take.
pub(super) struct Allowed {
    /// Jobs at most.
    pub n: i64,
    /// Per key at most (`i64::MAX` when no per-key count limit).
    pub per_key: Option<i64>,
}

/// Every task's stored limits (the claimer's cache, refreshed by `taskhive_limits`).
pub(super) async fn load_all(c: &Client) -> Result<Vec<(String, TaskLimits)>, Error> {
    let rows = c
        .query("SELECT task, limits FROM task_limits", &[])
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let task: String = r.get(0);
            match TaskLimits::from_stored(r.get(1)) {
                Ok(l) => Some((task, l)),
                Err(e) => {
                    tracing::error!(task, error = %e, "stored task limits unreadable; not applied");
                    None
                }
            }
        })
        .collect())
}

/// How long a node waits before it claims a task held back by `max_running` again: a slot
/// freed on another node is seen no later than this (each try is one short transaction).
const SATURATED_RETRY_MS: i64 = 10;

/// How late after its token a claim may count from the token's time: a quarter interval, at
/// most 5 ms (a claim's round trip is ~1–2 ms). After an idle spell the next start may then
/// come that much sooner than one interval; the long-run rate is unchanged.
fn late_slack_us(rate: crate::scheduler::limits::Rate) -> i64 {
    (rate.interval_us() / 4).min(5_000)
}

/// What a limited claim got.
pub(super) struct Claimed {
    /// The claimed rows, as the plain claim returns them.
    pub rows: Vec<tokio_postgres::Row>,
    /// When a limit (not a lack of due jobs) held the claim back: try again in this many ms
    /// (the bucket's next start, by the database's clock, or a short wait for a slot).
    pub retry_in_ms: Option<i64>,
}

/// Claims jobs of limited task `task` for `node`: at most `want`, within its limits.
pub(super) async fn claim(
    client: &mut Client,
    node: &str,
    ttl_ms: i64,
    task: &str,
    now_ms: i64,
    want: i64,
) -> Result<Claimed, Error> {
    let tx = client.transaction().await.map_err(db_err)?;
    let Some(row) = tx
        .query_opt(sql::LOCK_LIMITS, &[&task])
        .await
        .map_err(db_err)?
    else {
        // Cleared meanwhile: nothing to respect.
        let rows = tx
            .query(sql::CLAIM, &[&node, &ttl_ms, &task, &now_ms, &want])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        return Ok(Claimed {
            rows,
            retry_in_ms: None,
        });
    };
    let limits = TaskLimits::from_stored(row.get(0))?;
    let mut bucket = Gcra { tat_us: row.get(1) };
    let db_now_us: i64 = row.get(2);
    let held: i64 = tx
        .query_one(sql::CLAIMED_DUE, &[&task, &now_ms])
        .await
        .map_err(db_err)?
        .get(0);
    let allowed = allowance(&limits, &bucket, db_now_us, held, want);
    // Held back by the count (a slot frees when a job ends, on any node): look again soon.
    let by_count = limits
        .max_running
        .is_some_and(|m| held + allowed.n >= m as i64);
    if allowed.n == 0 {
        tx.commit().await.map_err(db_err)?;
        let by_rate = limits
            .rate
            .map(|r| bucket.next_at_us(r, limits.burst()) - db_now_us);
        let retry = match by_rate.filter(|&us| us > 0) {
            Some(us) if !by_count => us.div_euclid(1_000) + 1,
            _ => SATURATED_RETRY_MS,
        };
        return Ok(Claimed {
            rows: Vec::new(),
            retry_in_ms: Some(retry),
        });
    }
    let rows = match allowed.per_key {
        None => tx
            .query(sql::CLAIM, &[&node, &ttl_ms, &task, &now_ms, &allowed.n])
            .await
            .map_err(db_err)?,
        Some(per_key) => {
            let (tolerance, at) = match limits.rate_per_key {
                Some(r) => (tolerance_us(r, limits.burst()), db_now_us),
                None => (0, i64::MAX),
            };
            let rows = tx
                .query(
                    sql::CLAIM_PER_KEY,
                    &[
                        &node, &ttl_ms, &task, &now_ms, &allowed.n, &per_key, &tolerance, &at,
                    ],
                )
                .await
                .map_err(db_err)?;
            if let Some(rate) = limits.rate_per_key {
                // One job per key per claim: each claimed key takes one start.
                let keys: Vec<String> = rows
                    .iter()
                    .map(|r| r.get::<_, String>("job_key"))
                    .filter(|k| !k.is_empty())
                    .collect();
                tx.execute(
                    sql::TAKE_KEY_STARTS,
                    &[&task, &keys, &db_now_us, &rate.interval_us()],
                )
                .await
                .map_err(db_err)?;
            }
            rows
        }
    };
    let mut retry_in_ms = None;
    if let Some(rate) = limits.rate {
        // A claim reaches the database a little after the token it was waiting for (its
        // round trip): counting from then would lose that time on every start and the
        // cluster would run slow. Up to `late_slack_us` late counts from the token's time.
        bucket.take(rate, db_now_us - late_slack_us(rate), rows.len() as u64);
        tx.execute(sql::SET_LIMITS_TAT, &[&task, &bucket.tat_us])
            .await
            .map_err(db_err)?;
        if (rows.len() as i64) < want && rows.len() as i64 == allowed.n {
            let us = bucket.next_at_us(rate, limits.burst()) - db_now_us;
            retry_in_ms = Some(us.div_euclid(1_000).max(0) + 1);
        }
    }
    if by_count && (rows.len() as i64) < want {
        retry_in_ms = Some(retry_in_ms.map_or(SATURATED_RETRY_MS, |r| r.min(SATURATED_RETRY_MS)));
    }
    tx.commit().await.map_err(db_err)?;
    Ok(Claimed { rows, retry_in_ms })
}

/// How many a claim may take: `want`, less what `max_running` and the bucket leave.
pub(super) fn allowance(
    limits: &TaskLimits,
    bucket: &Gcra,
    now_us: i64,
    held: i64,
    want: i64,
) -> Allowed {
    let mut n = want.max(0) as u64;
    if let Some(m) = limits.max_running {
        n = n.min((m as i64 - held).max(0) as u64);
    }
    if let Some(rate) = limits.rate {
        n = bucket.allowance(rate, limits.burst(), now_us, n);
    }
    Allowed {
        n: n as i64,
        per_key: limits
            .per_key()
            .then(|| limits.max_running_per_key.map_or(i64::MAX, i64::from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::limits::Rate;

    #[test]
    fn a_claim_takes_what_the_limits_leave() {
        let l = TaskLimits {
            max_running: Some(5),
            ..Default::default()
        };
        assert_eq!(allowance(&l, &Gcra::default(), 0, 3, 10).n, 2);
        assert_eq!(allowance(&l, &Gcra::default(), 0, 7, 10).n, 0);
        let l = TaskLimits {
            rate: Some(Rate::new("rate", 10, 1_000).unwrap()),
            burst: Some(3),
            ..Default::default()
        };
        assert_eq!(allowance(&l, &Gcra::default(), 1_000_000, 0, 10).n, 3);
        let full = Gcra {
            tat_us: 1_000_000 + 300_000,
        };
        assert_eq!(allowance(&l, &full, 1_000_000, 0, 10).n, 0);
        assert_eq!(allowance(&l, &full, 1_000_000, 0, 10).per_key, None);
    }
}
