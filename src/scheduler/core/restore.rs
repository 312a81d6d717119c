//! Start-up and cluster hand-over (an `impl Core` of its own): restoring from the store (bulk-built
//! from rows in id order), the resync after failed commits, and claims adopted, forgotten,
//! released or given back.

use super::*;

impl Core {
    /// Loads jobs read from the store at start-up: leased jobs come back as pending (at-least-once).
    pub fn restore(&mut self, records: Vec<JobRecord>, now: Millis) {
        self.restore_stored(StoredJobs::from_records(records), now);
    }

    /// [`Core::restore`] from what the store's `load_stored_jobs` read.
    pub fn restore_stored(&mut self, stored: StoredJobs, now: Millis) {
        if self.jobs.is_empty() && stored.jobs.windows(2).all(|w| w[0].1.id < w[1].1.id) {
            self.restore_bulk(stored, now);
        } else {
            for r in stored.into_records() {
                self.next_job = self.next_job.max(r.id + 1);
                self.insert_record(r.id, r, now);
            }
        }
        self.payload_enforce();
        self.effects.clear();
    }

    /// [`Core::restore`] into an empty core from rows in id order (what a store reads): the
    /// job table and every queue are bulk-built from sorted runs instead of one insert at a
    /// time, which halves their memory and most of the start-up time at 1M jobs.
    pub(super) fn restore_bulk(&mut self, stored: StoredJobs, now: Millis) {
        let tids: Vec<TaskId> = stored.tasks.iter().map(|t| self.task_id(t)).collect();
        let mut jobs = Vec::with_capacity(stored.jobs.len());
        let mut ready: Vec<Vec<ReadyKey>> = Vec::new();
        let mut scheduled: Vec<Vec<(Millis, JobId)>> = Vec::new();
        let mut dead: Vec<Vec<JobId>> = Vec::new();
        let mut keyed: BTreeSet<TaskId> = BTreeSet::new();
        for (t, r) in stored.jobs {
            let tid = tids[t as usize];
            let t = tid as usize;
            if ready.len() <= t {
                ready.resize_with(t + 1, Vec::new);
                scheduled.resize_with(t + 1, Vec::new);
                dead.resize_with(t + 1, Vec::new);
            }
            let phase = if r.dead {
                dead[t].push(r.id);
                Phase::Dead
            } else if r.sched_at <= now {
                ready[t].push((Reverse(r.priority), r.sched_at, r.id));
                if !r.key.is_empty() {
                    keyed.insert(tid);
                }
                Phase::Pending
            } else {
                scheduled[t].push((r.sched_at, r.id));
                Phase::Scheduled
            };
            self.next_job = self.next_job.max(r.id + 1);
            let key = self.keys.hold(&r.key);
            jobs.push((r.id, Job::from_record(tid, key, r, phase)));
        }
        self.jobs = JobTable::from_sorted(jobs);
        for (t, task) in self.tasks.iter_mut().enumerate() {
            let held = ready.get(t).map_or(0, Vec::len)
                + scheduled.get(t).map_or(0, Vec::len)
                + dead.get(t).map_or(0, Vec::len);
            task.by_name.reserve(&self.jobs, held);
        }
        for slot in 0..self.jobs.len() as crate::scheduler::table::Slot {
            let tid = self.jobs.at(slot).1.task;
            self.tasks[tid as usize].by_name.insert(&self.jobs, slot);
            self.payload_count(slot, true);
        }
        let queues = ready.into_iter().zip(scheduled).zip(dead);
        for (t, ((ready, scheduled), dead)) in queues.enumerate() {
            let tid = t as TaskId;
            let task = &mut self.tasks[t];
            task.ready = ready.into_iter().collect();
            task.scheduled = scheduled.into_iter().collect();
            self.dead_total += dead.len();
            task.dead = dead.into_iter().collect();
            if let Some(&(s, _)) = task.scheduled.first() {
                self.timers.insert((s, tid));
            }
            if !task.ready.is_empty() {
                self.mark_dirty(tid);
            }
        }
        for tid in keyed {
            self.build_fair(tid);
        }
        self.trim_dead();
    }

    /// Makes memory agree with the store after failed commits: every job a refused op named
    /// (by id, or every job of a task whose drop was refused) is replaced by its stored row,
    /// or dropped when the store has none. A running one loses its lease (the worker's report
    /// is then refused) and is pending again: memory went ahead of the store, so the work
    /// since the last good commit may run again (at-least-once).
    pub fn resync(&mut self, ids: &[JobId], tasks: &[String], stored: Vec<JobRecord>, now: Millis) {
        self.last_now = self.last_now.max(now);
        let mut affected: BTreeSet<JobId> = ids.iter().copied().collect();
        for t in tasks {
            if let Some(&tid) = self.task_ids.get(t.as_str()) {
                affected.extend(self.tasks[tid as usize].by_name.ids(&self.jobs));
            }
        }
        affected.extend(stored.iter().map(|r| r.id));
        for id in affected {
            if self.jobs.contains_key(&id) {
                self.remove_job(id, "store write failed; job reloaded from the store");
            }
        }
        for r in stored {
            let clash = self.task_ids.get(r.task.as_str()).and_then(|&t| {
                self.tasks[t as usize]
                    .by_name
                    .get(&self.jobs, r.name.as_str())
            });
            if let Some(other) = clash {
                self.remove_job(other, "store write failed; job reloaded from the store");
            }
            self.next_job = self.next_job.max(r.id + 1);
            self.insert_record(r.id, r, now);
        }
        self.payload_enforce();
    }

    /// Takes in jobs another party already stored (cluster claims): like [`Core::restore`],
    /// but keeps the effects of other operations and writes nothing.
    pub(crate) fn adopt(&mut self, records: Vec<JobRecord>, now: Millis) {
        for r in records {
            if self.jobs.contains_key(&r.id) {
                continue;
            }
            let tid = self.task_id(&r.task);
            if let Some(old) = self.tasks[tid as usize]
                .by_name
                .get(&self.jobs, r.name.as_str())
            {
                // A part run here for another node gives way to the job itself, now ours.
                if is_part(old) {
                    self.remove_job(old, "claimed by this node");
                } else if matches!(self.jobs[&old].phase, Phase::Running(_)) {
                    // The stored row replaced ours (same task and name): ours is stale.
                    continue;
                } else {
                    self.remove_job(old, "replaced in the store");
                }
            }
            self.next_job = self.next_job.max(r.id + 1);
            self.insert_record(r.id, r, now);
        }
    }

    /// Drops jobs this node no longer holds (a cluster claim lost to another node), writing
    /// nothing: a late report on their leases is refused as unknown.
    pub(crate) fn forget(&mut self, ids: &[JobId]) {
        for &id in ids {
            if self.jobs.contains_key(&id) {
                self.remove_job(id, "claim lost to another node");
            }
        }
    }

    /// Gives back jobs this node holds but will not run now (cluster claims): of `ids`, the
    /// ones not running leave the core without a trace (no result, no write); returns them.
    /// The caller writes the release of their claims.
    pub fn release(&mut self, ids: &[JobId]) -> Vec<JobId> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            // Nothing of a part or a transient job is claimed; their waits end on their own.
            if matches!(job.phase, Phase::Running(_) | Phase::Locked) || in_memory_only(id) {
                continue;
            }
            self.remove_job_silently(id);
            out.push(id);
        }
        out
    }

    /// Ready or scheduled jobs of tasks no worker here serves (their workers left): a node
    /// holding claims gives these back so other nodes' workers can run them.
    pub(crate) fn unserved(&self) -> Vec<JobId> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if !t.workers.is_empty() {
                continue;
            }
            out.extend(t.ready.iter().map(|&(_, _, id)| id));
            out.extend(t.scheduled.iter().map(|&(_, id)| id));
        }
        out
    }

    /// One page of every job in id order, for Dump.
    pub fn dump_page(&self, after: JobId, limit: usize) -> Vec<JobRecord> {
        self.jobs
            .after(after)
            .filter(|&(id, _)| !in_memory_only(id))
            .take(limit)
            .map(|(id, _)| self.record(id))
            .collect()
    }
}
