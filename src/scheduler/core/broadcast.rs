//! Broadcast tasks (Periodic's BROADCAST): each due job is leased to every connected worker
//! of the task with a free slot, and is over once every lease is settled: done if any worker
//! said done, else run again if any said later, else a failed attempt. Across cluster nodes
//! the owner also waits for other nodes' parts (`parts.rs`).

use super::*;

/// A broadcast job's leases and the outcomes reported so far. Once every lease is settled
/// the job is done if any worker said done, else run again if any said later, else failed.
#[derive(Debug, Default)]
pub(super) struct BroadcastRun {
    pub(super) leases: HashSet<LeaseId>,
    pub(super) done: Option<Bytes>,
    pub(super) later: Option<(i64, u32)>,
    pub(super) error: Option<String>,
    /// Cluster: other nodes running a part of it, not yet answered (owner side).
    pub(super) remote: BTreeSet<Arc<str>>,
    /// Which run: the first lease (parts answer with it).
    pub(super) run: u64,
}

impl BroadcastRun {
    /// Takes one lease's or one node's outcome (`lost` = why there is none).
    pub(super) fn record(&mut self, outcome: Option<Outcome>, lost: Option<String>) {
        match outcome {
            Some(Outcome::Done { result }) => self.done = Some(result),
            Some(Outcome::SchedLater {
                delay_ms,
                count_step,
            }) => {
                let d = self.later.map_or(delay_ms, |(d, _)| d.min(delay_ms));
                self.later = Some((d, count_step));
            }
            Some(Outcome::Fail { error, .. }) => self.error = Some(error),
            None => self.error = lost,
        }
    }
}

impl Core {
    /// Hands each due job to every connected worker of the task that has a free slot.
    pub(super) fn dispatch_broadcast(&mut self, tid: TaskId, now: Millis) {
        loop {
            let t = &self.tasks[tid as usize];
            if t.ready.is_empty() {
                return;
            }
            let targets: Vec<WorkerId> = t
                .workers
                .iter()
                .copied()
                .filter(|w| {
                    let w = &self.workers[w];
                    w.connected && (w.leases.len() as u32) < w.capacity
                })
                .collect();
            if targets.is_empty() {
                return;
            }
            // Limits and key fairness do not apply: a broadcast job runs everywhere at once.
            let (_, _, id) = *self.tasks[tid as usize]
                .ready
                .first()
                .expect("ready not empty");
            self.ready_remove(id);
            let mut run = BroadcastRun::default();
            for &w in &targets {
                run.leases.insert(self.lease_to(id, w, now));
            }
            let first = *run.leases.iter().min().expect("at least one target");
            self.jobs.get_mut(&id).expect("ready job exists").phase = Phase::Running(first);
            self.run_started(tid, id, now);
            let mut leases: Vec<LeaseId> = run.leases.iter().copied().collect();
            leases.sort_unstable();
            run.run = first;
            self.ask_parts(tid, id, &mut run, now);
            self.broadcasts.insert(id, run);
            for (w, lid) in targets.into_iter().zip(leases) {
                let mut job = self.view(id);
                job.lease = Some(lid);
                self.effects.push(Effect::Assign { worker: w, job });
            }
        }
    }

    /// Records one broadcast lease's outcome; once all are in, applies the combined outcome.
    pub(super) fn broadcast_settle(
        &mut self,
        id: JobId,
        lid: LeaseId,
        outcome: Option<Outcome>,
        lost: Option<String>,
        now: Millis,
    ) {
        let run = self.broadcasts.get_mut(&id).expect("broadcast run exists");
        run.leases.remove(&lid);
        run.record(outcome, lost);
        if let Some(&next) = run.leases.iter().min() {
            self.jobs.get_mut(&id).expect("running job exists").phase = Phase::Running(next);
            return;
        }
        self.broadcast_finish(id, now);
    }

    /// Applies a broadcast run's combined outcome once no lease and no other node's part is
    /// open (while parts are, the job stays running on its last settled lease).
    pub(super) fn broadcast_finish(&mut self, id: JobId, now: Millis) {
        if self
            .broadcasts
            .get(&id)
            .is_none_or(|r| !r.leases.is_empty() || !r.remote.is_empty())
        {
            return;
        }
        let run = self.broadcasts.remove(&id).expect("broadcast run exists");
        let combined = if let Some(result) = run.done {
            Outcome::Done { result }
        } else if let Some((delay_ms, count_step)) = run.later {
            Outcome::SchedLater {
                delay_ms,
                count_step,
            }
        } else {
            Outcome::Fail {
                error: run.error.unwrap_or_default(),
                retry: true,
            }
        };
        self.apply_outcome(id, combined, now);
    }
}
