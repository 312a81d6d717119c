//! Status (an `impl Core` of its own): per-task counts and totals.

use super::*;

impl Core {
    /// Per-task counts (one task when `only` is set) and totals.
    pub fn status(&self, only: Option<&str>) -> (Vec<TaskStatus>, TaskStatus) {
        let mut out = Vec::new();
        let mut totals = TaskStatus::default();
        for t in &self.tasks {
            if only.is_some_and(|o| o != &*t.name) {
                continue;
            }
            let s = self.task_status(t);
            if only.is_none()
                && s.workers == 0
                && s.pending == 0
                && s.scheduled == 0
                && s.running == 0
                && s.dead == 0
                && s.locked == 0
                && s.limits.is_none()
            {
                continue;
            }
            totals.add(&s);
            out.push(s);
        }
        out.sort_by(|a, b| a.task.cmp(&b.task));
        if only.is_none() {
            // A worker serving several tasks is one worker.
            totals.workers = self.workers.len() as u32;
        }
        (out, totals)
    }

    pub(super) fn task_status(&self, t: &Task) -> TaskStatus {
        // The ready set is ordered by priority first: its earliest sched_at is the
        // minimum over the first entry of each priority level.
        let mut next: Option<Millis> = t.scheduled.first().map(|&(s, _)| s);
        let mut cursor = t.ready.first().copied();
        while let Some((Reverse(p), s, _)) = cursor {
            next = Some(next.map_or(s, |n| n.min(s)));
            cursor = match p.checked_sub(1) {
                Some(lower) => t
                    .ready
                    .range((Reverse(lower), Millis::MIN, 0)..)
                    .next()
                    .copied(),
                None => None,
            };
        }
        TaskStatus {
            task: t.name.to_string(),
            workers: t.workers.len() as u32,
            pending: t.ready.len() as u64,
            scheduled: t.scheduled.len() as u64,
            running: t.running,
            dead: t.dead.len() as u64,
            locked: t.locked,
            broadcast: t.broadcast,
            paused: self.paused_tasks.contains(&*t.name),
            next_sched_at: next,
            limits: t.limits.as_ref().map(|l| l.limits).unwrap_or_default(),
            waiting_on_limit: Core::held_by_limits(t, self.last_now),
        }
    }
}
