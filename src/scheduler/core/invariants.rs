//! `Core::check_invariants` (an `impl Core` of its own): every index agrees with the jobs;
//! tests call it after every step.

use super::*;

impl Core {
    /// Checks the internal indexes agree with each other (used by tests).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_payloads()?;
        let mut running = vec![0u64; self.tasks.len()];
        let mut locked = vec![0u64; self.tasks.len()];
        for (id, job) in self.jobs.iter() {
            let t = &self.tasks[job.task as usize];
            if t.by_name.get(&self.jobs, &job.name) != Some(id) {
                return Err(format!("job {id} missing from by_name"));
            }
            let ok = match job.phase {
                Phase::Pending => t.ready.contains(&(Reverse(job.priority), job.sched_at, id)),
                Phase::Scheduled => t.scheduled.contains(&(job.sched_at, id)),
                Phase::Dead => t.dead.contains(&id),
                Phase::Locked => {
                    locked[job.task as usize] += 1;
                    self.locks.is_waiting(id)
                }
                Phase::Running(l) => {
                    running[job.task as usize] += 1;
                    // A broadcast job whose leases are settled may wait for other nodes' parts.
                    self.leases.get(&l).is_some_and(|x| x.job == Some(id))
                        || self
                            .broadcasts
                            .get(&id)
                            .is_some_and(|r| r.leases.is_empty() && !r.remote.is_empty())
                }
            };
            if !ok {
                return Err(format!("job {id} in phase {:?} is not indexed", job.phase));
            }
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let n = t.ready.len()
                + t.scheduled.len()
                + t.dead.len()
                + running[i] as usize
                + locked[i] as usize;
            if n != t.by_name.len() {
                return Err(format!(
                    "task {} counts {} != {}",
                    t.name,
                    n,
                    t.by_name.len()
                ));
            }
            let keyed: u32 = t.key_running.values().sum();
            if t.running != running[i] || t.locked != locked[i] || keyed as u64 > t.running {
                return Err(format!("task {} running or locked counter off", t.name));
            }
            if let Some(&(s, _)) = t.scheduled.first() {
                if !self.timers.contains(&(s, i as TaskId)) {
                    return Err(format!("task {} timer missing", t.name));
                }
            }
        }
        for (lid, l) in &self.leases {
            if !self.lease_expiry.contains(&(l.expires_at, *lid)) {
                return Err(format!("lease {lid} has no expiry"));
            }
            match self.workers.get(&l.worker) {
                Some(w) if w.leases.contains(lid) => {}
                _ => return Err(format!("lease {lid} not held by its worker")),
            }
        }
        for (wid, w) in &self.workers {
            if w.leases.len() as u32 > w.capacity {
                return Err(format!("worker {wid} over capacity"));
            }
        }
        for (_, job) in self.jobs.iter() {
            if job.key() != KeyId::NONE && self.keys.holders(job.key()) == 0 {
                return Err(format!("job {} holds a forgotten key", job.name));
            }
        }
        self.check_limits()
    }
}
