//! Leases and what workers say about them (an `impl Core` of its own): creating a lease,
//! reports (done, fail, sched later), heartbeats, a lost lease, retries with backoff.

use super::*;

impl Core {
    /// Puts a running job back to pending as it was: no attempt counted, nothing to persist.
    pub(super) fn requeue(&mut self, id: JobId, now: Millis) {
        self.release_locks(id, now);
        self.run_ended(id);
        self.enqueue(id, now);
    }

    /// Applies a worker's outcome for a lease; stale or unknown leases are rejected untouched.
    pub fn report(&mut self, lid: LeaseId, outcome: Outcome, now: Millis) -> Result<JobId, Error> {
        let Some(lease) = self.leases.remove(&lid) else {
            let e = Error::StaleLease(Stale::Ended { lease: lid });
            self.log_refused("", "", Some(lid), &e);
            return Err(e);
        };
        self.lease_expiry.remove(&(lease.expires_at, lid));
        if let Some(w) = self.workers.get_mut(&lease.worker) {
            w.leases.remove(&lid);
            self.mark_worker_dirty(lease.worker);
        }
        let Some(id) = lease.job else {
            let e = Error::StaleLease(Stale::JobRemoved { lease: lid });
            self.log_refused("", "", Some(lid), &e);
            return Err(e);
        };
        let task = self.tasks[self.jobs[&id].task as usize].name.clone();
        self.effects.push(Effect::Observe(Observation::Ran {
            task,
            ms: now - lease.started_at,
        }));
        if self.broadcasts.contains_key(&id) {
            self.broadcast_settle(id, lid, Some(outcome), None, now);
            return Ok(id);
        }
        self.apply_outcome(id, outcome, now);
        Ok(id)
    }

    /// Applies a running job's outcome (its leases are already settled).
    pub(super) fn apply_outcome(&mut self, id: JobId, outcome: Outcome, now: Millis) {
        if is_part(id) {
            return self.part_over(id, outcome);
        }
        self.release_locks(id, now);
        match outcome {
            Outcome::Done { result } => {
                let tid = self.jobs[&id].task;
                self.run_ended(id);
                let task = self.tasks[tid as usize].name.clone();
                self.effects.push(Effect::Observe(Observation::Done(task)));
                let finished = self.finished(id, Ok(result));
                self.remove_job_silently(id);
                self.persist(JobWrite::Delete(id));
                self.effects.push(finished);
            }
            Outcome::Fail { error, retry } => self.fail_attempt(id, error, retry, true, now),
            Outcome::SchedLater {
                delay_ms,
                count_step,
            } => {
                self.run_ended(id);
                self.payload_untrack(id);
                let job = self.jobs.get_mut(&id).expect("leased job exists");
                job.run_count = job.run_count.saturating_add(count_step.max(1));
                job.attempts = 0;
                job.sched_at = now.saturating_add(delay_ms.max(0));
                self.payload_track(id);
                self.enqueue(id, now);
                self.persist_reschedule(id);
            }
        }
    }

    /// Extends leases by their job's timeout; returns the ones no longer held.
    pub fn heartbeat(&mut self, leases: &[LeaseId], now: Millis) -> Vec<LeaseId> {
        let mut lost = Vec::new();
        for &lid in leases {
            let Some(lease) = self.leases.get_mut(&lid) else {
                lost.push(lid);
                continue;
            };
            let Some(job) = lease.job.and_then(|id| self.jobs.get(&id)) else {
                lost.push(lid);
                continue;
            };
            self.lease_expiry.remove(&(lease.expires_at, lid));
            lease.expires_at = now + job.timeout_ms as Millis;
            self.lease_expiry.insert((lease.expires_at, lid));
        }
        lost
    }

    /// Creates a lease of job `id` for worker `wid`; the caller sets the job's phase.
    pub(super) fn lease_to(&mut self, id: JobId, wid: WorkerId, now: Millis) -> LeaseId {
        let lid = self.next_lease;
        self.next_lease += 1;
        let job = &self.jobs[&id];
        let expires_at = now + job.timeout_ms as Millis;
        self.effects.push(Effect::Observe(Observation::Dispatched {
            task: self.tasks[job.task as usize].name.clone(),
            wait_ms: (now - job.sched_at).max(0),
        }));
        self.leases.insert(
            lid,
            Lease {
                job: Some(id),
                worker: wid,
                expires_at,
                started_at: now,
            },
        );
        self.lease_expiry.insert((expires_at, lid));
        self.workers
            .get_mut(&wid)
            .expect("picked worker exists")
            .leases
            .insert(lid);
        lid
    }

    /// A lease ended without a report (expiry, lost worker): a failed attempt, or for a
    /// broadcast job one settled lease.
    pub(super) fn lease_lost(&mut self, id: JobId, lid: LeaseId, why: &str, now: Millis) {
        if self.broadcasts.contains_key(&id) {
            self.broadcast_settle(id, lid, None, Some(why.to_string()), now);
        } else if is_part(id) {
            let outcome = Outcome::Fail {
                error: why.to_string(),
                retry: true,
            };
            self.apply_outcome(id, outcome, now);
        } else {
            self.fail_attempt(id, why.to_string(), true, false, now);
        }
    }

    /// One failed attempt: retry (with backoff, or at once for lost leases) or move to the dead set.
    pub(super) fn fail_attempt(
        &mut self,
        id: JobId,
        error: String,
        retry: bool,
        backoff: bool,
        now: Millis,
    ) {
        if !self.jobs.contains_key(&id) {
            return;
        }
        self.release_locks(id, now);
        if let Phase::Running(_) = self.jobs[&id].phase {
            self.run_ended(id);
        }
        let job = self.jobs.get_mut(&id).expect("checked above");
        job.attempts = job.attempts.saturating_add(1);
        job.last_error = Some(error.clone().into_boxed_str());
        let dead = !retry || job.attempts >= job.retry.max_attempts;
        let task = self.tasks[job.task as usize].name.clone();
        self.effects
            .push(Effect::Observe(Observation::Failed { task, dead }));
        if dead && is_transient(id) {
            // Its waiter hears the error; nothing keeps it.
            self.log_attempt(id, &error);
            let finished = self.finished(id, Err(error));
            self.remove_job_silently(id);
            self.effects.push(finished);
            return;
        }
        if dead {
            job.phase = Phase::Dead;
            let tid = job.task;
            self.tasks[tid as usize].dead.insert(id);
            self.dead_total += 1;
            self.persist_reschedule(id);
            self.trim_dead();
        } else {
            if backoff {
                let delay = self.backoff_ms(id);
                self.payload_untrack(id);
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.sched_at = now + delay;
                self.payload_track(id);
            }
            self.enqueue(id, now);
            self.persist_reschedule(id);
        }
        self.log_attempt(id, &error);
        // RunJob callers and watchers hear of a failure only once no retry follows.
        if dead {
            let finished = self.finished(id, Err(error));
            self.effects.push(finished);
        }
    }

    pub(super) fn finished(&self, id: JobId, result: Result<Bytes, String>) -> Effect {
        let job = &self.jobs[&id];
        Effect::Finished {
            job: id,
            task: self.tasks[job.task as usize].name.clone(),
            name: Arc::from(&*job.name),
            attempts: job.attempts,
            result,
        }
    }

    pub(super) fn backoff_ms(&mut self, id: JobId) -> Millis {
        let job = &self.jobs[&id];
        let p = job.retry;
        let exp = job.attempts.saturating_sub(1).min(40);
        let full = (p.backoff_base_ms as u64)
            .saturating_mul(1u64 << exp)
            .min(p.backoff_max_ms as u64);
        // Equal jitter: half fixed, half random, so retries of many jobs spread out.
        let half = full / 2;
        (half + self.rng.random_range(0..=half)) as Millis
    }
}
