//! Flow control at dispatch: a task's `max_running` and start `rate`, the same per job key,
//! and the ready set's entry points that keep the fairness index (`fair.rs`) in step.
//!
//! A limited task is dispatched only while its running count is under `max_running` and its
//! bucket allows a start; when the bucket is empty the task gets a timer at the time it
//! refills (`limit_timers`, part of `next_wakeup`), so limits cost no polling. A key at its
//! limit is parked in the fairness index (its jobs wait, other keys go on) and unparked when
//! one of its runs ends or, for a rate, by the same timer.

use std::collections::{BTreeSet, HashMap};

use super::fair::{Fair, Verdict};
use super::keys::KeyId;
use super::{Core, ReadyKey, Task};
use crate::scheduler::job::{JobId, Millis, TaskId};
use crate::scheduler::limits::{Gcra, TaskLimits};

/// A task's limits and what they have counted so far.
#[derive(Debug, Default)]
pub(super) struct LimitState {
    pub limits: TaskLimits,
    bucket: Gcra,
    key_buckets: HashMap<KeyId, Gcra>,
    /// Keys parked by their rate, and when their bucket lets the next one go.
    key_wake: BTreeSet<(Millis, KeyId)>,
}

fn us(ms: Millis) -> i64 {
    ms.saturating_mul(1_000)
}

fn ceil_ms(us: i64) -> Millis {
    us.div_euclid(1_000) + i64::from(us.rem_euclid(1_000) != 0)
}

impl Core {
    /// Sets (or, with no limit in `limits`, clears) a task's limits; waiting jobs are looked
    /// at again at once. Counting starts afresh: the bucket is full.
    pub fn set_task_limits(&mut self, task: &str, limits: TaskLimits) {
        let tid = self.task_id(task);
        let t = &mut self.tasks[tid as usize];
        t.limits = (!limits.is_none()).then(|| {
            Box::new(LimitState {
                limits,
                ..LimitState::default()
            })
        });
        if let Some(f) = t.fair.as_mut() {
            f.unpark_all();
        }
        self.limit_timers.retain(|&(_, t)| t != tid);
        self.mark_dirty(tid);
    }

    /// A task's limits (none set = all `None`).
    pub fn task_limits(&self, task: &str) -> TaskLimits {
        self.task_ids
            .get(task)
            .and_then(|&tid| self.tasks[tid as usize].limits.as_ref())
            .map(|l| l.limits)
            .unwrap_or_default()
    }

    /// Ready jobs of task `t` held back by a limit at `now` (Status).
    pub(super) fn held_by_limits(t: &Task, now: Millis) -> u64 {
        let Some(l) = t.limits.as_ref() else {
            return 0;
        };
        let lim = l.limits;
        let full = lim.max_running.is_some_and(|m| t.running >= m as u64)
            || lim
                .rate
                .is_some_and(|r| l.bucket.allowance(r, lim.burst(), us(now), 1) == 0);
        if full {
            t.ready.len() as u64
        } else {
            t.fair.as_ref().map_or(0, |f| f.parked_jobs())
        }
    }

    /// How many more of task `tid`'s jobs may start now by its task-wide limits; when its
    /// rate says none, a timer is set for when one may.
    pub(super) fn task_room(&mut self, tid: TaskId, now: Millis) -> u64 {
        let t = &self.tasks[tid as usize];
        let Some(l) = t.limits.as_ref() else {
            return u64::MAX;
        };
        let lim = l.limits;
        let mut room = lim
            .max_running
            .map_or(u64::MAX, |m| (m as u64).saturating_sub(t.running));
        if room > 0 {
            if let Some(rate) = lim.rate {
                room = l.bucket.allowance(rate, lim.burst(), us(now), room);
                if room == 0 {
                    let at = ceil_ms(l.bucket.next_at_us(rate, lim.burst())).max(now + 1);
                    self.limit_timers.insert((at, tid));
                }
            }
        }
        room
    }

    /// Takes the next ready job of task `tid` out of the ready set: the first in order, or,
    /// with keyed jobs, the head of the next key in the rotation whose own limits allow it.
    pub(super) fn take_ready(&mut self, tid: TaskId, now: Millis) -> Option<JobId> {
        let t = &mut self.tasks[tid as usize];
        let Some(fair) = t.fair.as_mut() else {
            return t.ready.pop_first().map(|(_, _, id)| id);
        };
        let per_key = t.limits.as_ref().filter(|l| l.limits.per_key());
        let mut wake = Vec::new();
        let picked = fair.next(|key| {
            let Some(l) = per_key.filter(|_| key != KeyId::NONE) else {
                return Verdict::Go;
            };
            let lim = l.limits;
            if lim
                .max_running_per_key
                .is_some_and(|m| t.key_running.get(&key).copied().unwrap_or(0) >= m)
            {
                return Verdict::Park;
            }
            if let Some(rate) = lim.rate_per_key {
                let b = l.key_buckets.get(&key).copied().unwrap_or_default();
                if b.allowance(rate, lim.burst(), us(now), 1) == 0 {
                    wake.push((ceil_ms(b.next_at_us(rate, lim.burst())).max(now + 1), key));
                    return Verdict::Park;
                }
            }
            Verdict::Go
        });
        if !wake.is_empty() {
            let l = t.limits.as_mut().expect("per-key limits parked a key");
            l.key_wake.extend(wake.iter().copied());
            let first = l.key_wake.first().expect("just added").0;
            self.limit_timers.insert((first, tid));
        }
        let (key, rk) = picked?;
        fair.remove(key, rk);
        t.ready.remove(&rk);
        if t.ready.is_empty() {
            t.fair = None;
        }
        Some(rk.2)
    }

    /// Counts a start of job `id` against its task's limits.
    pub(super) fn run_started(&mut self, tid: TaskId, id: JobId, now: Millis) {
        let key = self.jobs[&id].key();
        let t = &mut self.tasks[tid as usize];
        t.running += 1;
        if key != KeyId::NONE {
            *t.key_running.entry(key).or_default() += 1;
        }
        let Some(l) = t.limits.as_mut() else {
            return;
        };
        let lim = l.limits;
        if let Some(rate) = lim.rate {
            l.bucket.take(rate, us(now), 1);
        }
        if let (Some(rate), true) = (lim.rate_per_key, key != KeyId::NONE) {
            l.key_buckets.entry(key).or_default().take(rate, us(now), 1);
            // Buckets that refilled cost nothing to forget.
            if l.key_buckets.len() > 1_024 && l.key_buckets.len() > 2 * t.key_running.len() {
                l.key_buckets.retain(|_, b| !b.is_idle(us(now)));
            }
        }
    }

    /// A run of job `id` ended (or the job left the running phase): its task and key may
    /// start another.
    pub(super) fn run_ended(&mut self, id: JobId) {
        let (tid, key) = {
            let j = &self.jobs[&id];
            (j.task, j.key())
        };
        let t = &mut self.tasks[tid as usize];
        t.running -= 1;
        if key != KeyId::NONE {
            if let Some(n) = t.key_running.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    t.key_running.remove(&key);
                }
            }
            if let Some(f) = t.fair.as_mut() {
                f.unpark(key);
            }
        }
        if t.limits.is_some() {
            self.mark_dirty(tid);
        }
    }

    /// Limit timers that came due: their tasks are looked at again, parked keys whose
    /// bucket refilled are unparked.
    pub(super) fn limit_timers_due(&mut self, now: Millis) {
        while let Some(&(at, tid)) = self.limit_timers.first() {
            if at > now {
                break;
            }
            self.limit_timers.pop_first();
            let t = &mut self.tasks[tid as usize];
            if let Some(l) = t.limits.as_mut() {
                while let Some(&(w, key)) = l.key_wake.first() {
                    if w > now {
                        self.limit_timers.insert((w, tid));
                        break;
                    }
                    l.key_wake.pop_first();
                    if let Some(f) = t.fair.as_mut() {
                        f.unpark(key);
                    }
                }
            }
            self.mark_dirty(tid);
        }
    }

    /// Puts a job in its task's ready set (and the fairness index when it has a key).
    pub(super) fn ready_insert(&mut self, id: JobId) {
        let j = &self.jobs[&id];
        let rk: ReadyKey = (std::cmp::Reverse(j.priority), j.sched_at, id);
        let (tid, key) = (j.task, j.key());
        let t = &mut self.tasks[tid as usize];
        t.ready.insert(rk);
        if let Some(f) = t.fair.as_mut() {
            f.insert(key, rk);
        } else if key != KeyId::NONE {
            self.build_fair(tid);
        }
    }

    /// Takes a job out of its task's ready set (and the fairness index).
    pub(super) fn ready_remove(&mut self, id: JobId) {
        let j = &self.jobs[&id];
        let rk: ReadyKey = (std::cmp::Reverse(j.priority), j.sched_at, id);
        let t = &mut self.tasks[j.task as usize];
        t.ready.remove(&rk);
        if let Some(f) = t.fair.as_mut() {
            f.remove(j.key(), rk);
            if t.ready.is_empty() {
                t.fair = None;
            }
        }
    }

    /// Builds task `tid`'s fairness index from its ready set (a first keyed job arrived, or
    /// a restart read keyed jobs).
    pub(super) fn build_fair(&mut self, tid: TaskId) {
        let mut fair = Fair::default();
        for &rk in &self.tasks[tid as usize].ready {
            fair.insert(self.jobs[&rk.2].key(), rk);
        }
        self.tasks[tid as usize].fair = Some(Box::new(fair));
    }

    /// The limit bookkeeping agrees with the jobs (invariant checks).
    pub(super) fn check_limits(&self) -> Result<(), String> {
        for t in &self.tasks {
            if let Some(f) = &t.fair {
                f.check().map_err(|e| format!("task {}: {e}", t.name))?;
                if f.len() != t.ready.len() {
                    return Err(format!("task {}: fairness index out of step", t.name));
                }
                for rk in &t.ready {
                    if !f.contains(self.jobs[&rk.2].key(), rk) {
                        return Err(format!("task {}: job {} not indexed", t.name, rk.2));
                    }
                }
            } else if t
                .ready
                .iter()
                .any(|rk| self.jobs[&rk.2].key() != KeyId::NONE)
            {
                return Err(format!("task {}: keyed ready job and no index", t.name));
            }
        }
        Ok(())
    }
}
