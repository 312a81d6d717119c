//! The core's job log events ([`JobLog`]), pushed as `Observation::Log` effects.

use std::sync::Arc;

use super::{Core, Effect, Observation, Phase};
use crate::scheduler::error::Error;
use crate::scheduler::job::{JobId, LeaseId, WorkerId};
use crate::scheduler::job_log::JobLog;

impl Core {
    fn log(&mut self, l: JobLog) {
        self.effects.push(Effect::Observe(Observation::Log(l)));
    }

    /// A refused request about a job (by task and name, or a lease).
    pub(super) fn log_refused(
        &mut self,
        task: &str,
        name: &str,
        lease: Option<LeaseId>,
        why: &Error,
    ) {
        let id = self
            .task_ids
            .get(task)
            .and_then(|&t| self.tasks[t as usize].by_name.get(&self.jobs, name));
        self.log(JobLog::Refused {
            task: Arc::from(task),
            name: Arc::from(name),
            id,
            lease,
            reason: why.to_string(),
        });
    }

    /// A lease of job `id` expired.
    pub(super) fn log_expired(&mut self, id: JobId, lease: LeaseId, worker: WorkerId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let l = JobLog::Expired {
            task: self.tasks[job.task as usize].name.clone(),
            name: Arc::from(&*job.name),
            id,
            lease,
            worker,
        };
        self.log(l);
    }

    /// A failed attempt of job `id`, after it was applied: retried or dead.
    pub(super) fn log_attempt(&mut self, id: JobId, error: &str) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let (task, name) = (
            self.tasks[job.task as usize].name.clone(),
            Arc::from(&*job.name),
        );
        let l = if job.phase == Phase::Dead {
            JobLog::Dead {
                task,
                name,
                id,
                attempts: job.attempts,
                error: error.to_string(),
            }
        } else {
            JobLog::Retry {
                task,
                name,
                id,
                attempts: job.attempts,
                max_attempts: job.retry.max_attempts,
                next_at: job.sched_at,
                error: error.to_string(),
            }
        };
        self.log(l);
    }
}
