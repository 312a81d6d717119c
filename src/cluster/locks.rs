//! Named locks across a cluster (Periodic's ACQUIRE/RELEASE, the Work stream's
//! AcquireLock): the database decides who holds a slot, so a lock's `count` holds across
//! every node. The functions are installed by migration 11 (`taskhive_lock_*` in
//! `store::postgres`); each locks the lock's row, so one lock's acquires and releases run one
//! at a time.
//!
//! A node's core keeps *external* locks ([`crate::scheduler::locks::Locks::external`]): it
//! records the database's answers and never promotes a waiter itself. A queued job waits
//! (locked, still claimed by its node) until a release anywhere gives it a slot: the
//! database announces that (`NOTIFY taskhive_locks`) and the job's node makes it pending
//! again ([`NodeHandle::lock_granted`]); its next acquire finds the slot held. When a job
//! ends (done, failed, removed, requeued) its core says so ([`Effect::LocksReleased`]) and
//! every entry of the job goes in one call.
//!
//! Cost: one statement per acquire and per release (the function's body: a few index
//! reads and writes); jobs that never take a lock cost nothing.
//!
//! [`Effect::LocksReleased`]: crate::scheduler::core::Effect::LocksReleased

use std::sync::Arc;

use super::{db_err, now_ms, Shared};
use crate::scheduler::actor::NodeHandle;
use crate::scheduler::error::Error;
use crate::scheduler::job::{JobId, Millis};

/// The lock timeout (ms) the functions are given: the `lock-timeout` setting as committed,
/// read by the statement itself, so a SetConfig acknowledged on another node holds before
/// its NOTIFY reaches this node; this node's copy (the last parameter) only while the
/// database stores none. At least 1 ms, as a single node's core keeps it.
macro_rules! lock_timeout {
    ($node:literal) => {
        concat!(
            "GREATEST(COALESCE((SELECT value * 1000 FROM config WHERE key = 'lock-timeout'), ",
            $node,
            "::bigint), 1)"
        )
    };
}

const ACQUIRE: &str = concat!(
    "SELECT taskhive_lock_acquire($1, $2, $3, $4, $5, ",
    lock_timeout!("$6"),
    ")"
);
const RELEASE: &str = concat!(
    "SELECT taskhive_lock_release($1, $2, $3, ",
    lock_timeout!("$4"),
    ")"
);
const RELEASE_ALL: &str = concat!(
    "SELECT taskhive_lock_release_all($1, $2, ",
    lock_timeout!("$3"),
    ")"
);

/// Takes (true) or queues for (false) a slot of `name` for the job of `lease`.
pub(super) async fn acquire(
    shared: &Arc<Shared>,
    node: &NodeHandle,
    lease: u64,
    name: String,
    count: u32,
) -> Result<bool, Error> {
    let (job, timeout) = node.lock_request(lease).await?;
    let live = shared.conn().await?;
    let count = count.min(i32::MAX as u32) as i32;
    let row = live
        .client
        .query_one(
            ACQUIRE,
            &[
                &name,
                &count,
                &(job as i64),
                &shared.node,
                &now_ms(),
                &timeout,
            ],
        )
        .await
        .map_err(db_err)?;
    let held: bool = row.get(0);
    match node.acquire_decided(lease, name.clone(), held).await {
        Ok(h) => Ok(h),
        Err(e) => {
            // The lease ended meanwhile (its job's entries were already let go): this
            // entry must not keep a slot, or a place in the queue, until it goes stale.
            release_in_db(shared.clone(), name, job, timeout);
            Err(e)
        }
    }
}

/// Lets go of `name` held by the job of `lease`: in the database (which may give the slot
/// to a waiter on any node), then in the node's record.
pub(super) async fn release(
    shared: &Arc<Shared>,
    node: &NodeHandle,
    lease: u64,
    name: String,
) -> Result<(), Error> {
    let (job, timeout) = node.lock_request(lease).await?;
    shared
        .conn()
        .await?
        .client
        .execute(RELEASE, &[&name, &(job as i64), &now_ms(), &timeout])
        .await
        .map_err(db_err)?;
    node.release_lock(lease, name).await
}

fn release_in_db(shared: Arc<Shared>, name: String, job: JobId, timeout: Millis) {
    tokio::spawn(async move {
        let r = match shared.conn().await {
            Ok(live) => live
                .client
                .execute(RELEASE, &[&name, &(job as i64), &now_ms(), &timeout])
                .await
                .map_err(db_err),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(job, lock = %name, error = %e, "letting go of a lock failed; it goes stale");
        }
    });
}

/// Every lock entry of `job` goes (the job ended here); waiters anywhere may get the slots.
pub(super) fn release_all(shared: Arc<Shared>, job: JobId, timeout: Millis) {
    tokio::spawn(async move {
        let r = match shared.conn().await {
            Ok(live) => live
                .client
                .execute(RELEASE_ALL, &[&(job as i64), &now_ms(), &timeout])
                .await
                .map_err(db_err),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(job, error = %e, "letting go of a job's locks failed; they go stale");
        }
    });
}

/// A `taskhive_locks` notification: a waiting job of this node was given a slot.
pub(super) fn granted(me: &str, payload: &str, node: &NodeHandle) {
    #[derive(serde::Deserialize)]
    struct Grant {
        o: String,
        j: i64,
        n: String,
    }
    match serde_json::from_str::<Grant>(payload) {
        Ok(g) if g.o == me => node.lock_granted(g.j as JobId, g.n),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "unreadable lock grant"),
    }
}
