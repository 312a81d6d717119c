//! Named locks as the core sees them (an `impl Core` of its own): a leased job takes or queues
//! for a slot (`scheduler/locks.rs` keeps the slots), a queued job gives its lease back and
//! waits as locked, and a job's slots go when its attempt ends. With external locks (cluster)
//! the database decides and the core records its answers.

use super::*;

impl Core {
    /// Frees every lock slot the job holds or waits for; waiters that get a slot become pending.
    pub(super) fn release_locks(&mut self, id: JobId, now: Millis) {
        let promoted = self.drop_locks(id, now);
        self.wake_locked(promoted);
    }

    /// Lets go of the job's lock entries; returns the waiters promoted here. With external
    /// locks the database holds the slots too: it is told ([`Effect::LocksReleased`]).
    pub(super) fn drop_locks(&mut self, id: JobId, now: Millis) -> Vec<JobId> {
        if self.locks.is_external() && self.locks.has_entries(id) {
            self.effects.push(Effect::LocksReleased {
                job: id,
                timeout_ms: self.cfg.lock_timeout_ms,
            });
        }
        self.locks.release_all(id, now, self.cfg.lock_timeout_ms)
    }

    /// Cluster nodes: lock slots are granted by the database, not counted here.
    pub fn set_locks_external(&mut self) {
        self.locks = Locks::external();
    }

    /// The job a lock request's lease is for, and how long a lock entry lasts.
    pub fn lock_request(&self, lid: LeaseId) -> Result<(JobId, Millis), Error> {
        let (id, _) = self.lease_holder(lid)?;
        Ok((id, self.cfg.lock_timeout_ms))
    }

    /// External locks: applies the database's answer to an acquire (see
    /// [`Core::acquire_lock`] for what a queued job does).
    pub fn acquire_lock_decided(
        &mut self,
        lid: LeaseId,
        name: &str,
        held: bool,
        now: Millis,
    ) -> Result<bool, Error> {
        let (id, wid) = self.lease_holder(lid)?;
        if self.broadcasts.contains_key(&id) {
            return Ok(true);
        }
        self.locks
            .record(name, held, id, now, self.cfg.lock_timeout_ms);
        if !held {
            self.park_locked(lid, id, wid);
        }
        Ok(held)
    }

    /// External locks: the database gave waiting job `id` a slot of `name`: it is pending
    /// again, and its next acquire succeeds.
    pub fn grant_lock(&mut self, id: JobId, name: &str, now: Millis) {
        if self.locks.grant(name, id, now, self.cfg.lock_timeout_ms) {
            self.wake_locked(vec![id]);
        }
    }

    pub(super) fn wake_locked(&mut self, jobs: Vec<JobId>) {
        for id in jobs {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            if job.phase == Phase::Locked {
                let tid = job.task;
                job.phase = Phase::Pending;
                self.tasks[tid as usize].locked -= 1;
                self.ready_insert(id);
                self.mark_dirty(tid);
            }
        }
    }

    /// Takes (or queues for) a slot of lock `name` for the job of a lease. When queued, the
    /// lease ends (the worker's credit comes back) and the job waits as locked.
    pub fn acquire_lock(
        &mut self,
        lid: LeaseId,
        name: &str,
        count: u32,
        now: Millis,
    ) -> Result<bool, Error> {
        let (id, wid) = self.lease_holder(lid)?;
        // A broadcast job runs on every worker at once: a lock cannot queue it.
        if self.broadcasts.contains_key(&id)
            || self
                .locks
                .acquire(name, count, id, now, self.cfg.lock_timeout_ms)
        {
            return Ok(true);
        }
        self.park_locked(lid, id, wid);
        Ok(false)
    }

    /// A job queued for a lock: its lease ends (the worker's credit comes back) and it waits
    /// as locked.
    pub(super) fn park_locked(&mut self, lid: LeaseId, id: JobId, wid: WorkerId) {
        let lease = self.leases.remove(&lid).expect("checked by lease_holder");
        self.lease_expiry.remove(&(lease.expires_at, lid));
        if let Some(w) = self.workers.get_mut(&wid) {
            w.leases.remove(&lid);
        }
        self.mark_worker_dirty(wid);
        self.run_ended(id);
        let job = self.jobs.get_mut(&id).expect("leased job exists");
        job.phase = Phase::Locked;
        self.tasks[job.task as usize].locked += 1;
    }

    /// Releases one lock held by the job of a lease.
    pub fn release_lock(&mut self, lid: LeaseId, name: &str, now: Millis) -> Result<(), Error> {
        let (id, _) = self.lease_holder(lid)?;
        let promoted = self.locks.release(name, id, now, self.cfg.lock_timeout_ms);
        self.wake_locked(promoted.into_iter().collect());
        Ok(())
    }

    /// Holders of lock `name` now.
    pub fn lock_holders(&self, name: &str) -> usize {
        self.locks.holders(name)
    }

    /// Changes the lock timeout (run-time config).
    pub(crate) fn set_lock_timeout(&mut self, ms: i64) {
        self.cfg.lock_timeout_ms = ms.max(1);
    }

    pub(super) fn lease_holder(&self, lid: LeaseId) -> Result<(JobId, WorkerId), Error> {
        match self.leases.get(&lid) {
            Some(Lease {
                job: Some(id),
                worker,
                ..
            }) => Ok((*id, *worker)),
            _ => Err(Error::StaleLease(Stale::NotHeld { lease: lid })),
        }
    }

    /// The job (id, task, name) a current lease is for.
    pub fn lease_job(&self, lid: LeaseId) -> Option<(JobId, Arc<str>, Arc<str>)> {
        let id = self.leases.get(&lid)?.job?;
        let job = self.jobs.get(&id)?;
        Some((
            id,
            self.tasks[job.task as usize].name.clone(),
            Arc::from(&*job.name),
        ))
    }
}
