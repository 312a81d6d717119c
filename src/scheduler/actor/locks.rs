//! Named locks a running job takes (Periodic's `ACQUIRE`/`RELEASE`): decided by the core on
//! one node; in a cluster the database decides and the actor applies its answer.

use super::*;

/// A command about named locks.
pub(in crate::scheduler) enum LockCmd {
    Acquire {
        lease: LeaseId,
        name: String,
        count: u32,
        reply: Reply<Result<bool, Error>>,
    },
    Release {
        lease: LeaseId,
        name: String,
        reply: Reply<Result<(), Error>>,
    },
    /// External locks: the job of a lease, and the lock timeout.
    Request {
        lease: LeaseId,
        reply: Reply<Result<(JobId, Millis), Error>>,
    },
    /// External locks: the database's answer to an acquire.
    Decided {
        lease: LeaseId,
        name: String,
        held: bool,
        reply: Reply<Result<bool, Error>>,
    },
    /// External locks: the database gave a waiting job a slot.
    Granted { job: JobId, name: String },
}

impl Actor {
    pub(super) fn handle_lock(&mut self, cmd: LockCmd, now: Millis) {
        match cmd {
            LockCmd::Acquire {
                lease,
                name,
                count,
                reply,
            } => {
                let _ = reply.send(self.core.acquire_lock(lease, &name, count, now));
            }
            LockCmd::Release { lease, name, reply } => {
                let _ = reply.send(self.core.release_lock(lease, &name, now));
            }
            LockCmd::Request { lease, reply } => {
                let _ = reply.send(self.core.lock_request(lease));
            }
            LockCmd::Decided {
                lease,
                name,
                held,
                reply,
            } => {
                let _ = reply.send(self.core.acquire_lock_decided(lease, &name, held, now));
            }
            LockCmd::Granted { job, name } => self.core.grant_lock(job, &name, now),
        }
    }
}
