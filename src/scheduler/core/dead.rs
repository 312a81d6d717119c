//! The dead set (an `impl Core` of its own): listing, re-queueing and purging dead jobs, and
//! keeping it under its cap.

use super::*;

impl Core {
    /// Dead jobs, of one task or all, oldest first.
    pub fn list_dead(&self, task: Option<&str>, limit: usize) -> Vec<JobView> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if task.is_some_and(|o| o != &*t.name) {
                continue;
            }
            for &id in &t.dead {
                if out.len() >= limit {
                    return out;
                }
                out.push(self.view(id));
            }
        }
        out
    }

    /// Puts dead jobs back to pending with their attempts reset.
    pub fn retry_dead(&mut self, task: Option<&str>, name: Option<&str>, now: Millis) -> u64 {
        let ids = self.dead_matching(task, name);
        for &id in &ids {
            self.payload_untrack(id);
            let job = self.jobs.get_mut(&id).expect("dead job exists");
            self.tasks[job.task as usize].dead.remove(&id);
            self.dead_total -= 1;
            job.attempts = 0;
            job.sched_at = now;
            self.payload_track(id);
            self.enqueue(id, now);
            self.persist_reschedule(id);
        }
        ids.len() as u64
    }

    /// Deletes dead jobs for good.
    pub fn purge_dead(&mut self, task: Option<&str>, name: Option<&str>) -> u64 {
        let ids = self.dead_matching(task, name);
        for &id in &ids {
            self.remove_job(id, "purged");
            self.persist(JobWrite::Delete(id));
        }
        ids.len() as u64
    }

    pub(super) fn dead_matching(&self, task: Option<&str>, name: Option<&str>) -> Vec<JobId> {
        let mut ids = Vec::new();
        for t in &self.tasks {
            if task.is_some_and(|o| o != &*t.name) {
                continue;
            }
            match name {
                Some(n) => {
                    if let Some(id) = t.by_name.get(&self.jobs, n) {
                        if t.dead.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                None => ids.extend(t.dead.iter().copied()),
            }
        }
        ids
    }

    pub(super) fn trim_dead(&mut self) {
        while self.dead_total > self.cfg.max_dead {
            // Oldest by id across tasks.
            let oldest = self
                .tasks
                .iter()
                .filter_map(|t| t.dead.first().copied())
                .min();
            let Some(id) = oldest else { break };
            self.remove_job(id, "dead set full");
            self.persist(JobWrite::Delete(id));
        }
    }
}
