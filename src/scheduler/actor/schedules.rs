//! The actor's cron schedules (a single node's; a cluster's live in the database): stored,
//! listed, paused, deleted and fired, each tick's jobs submitted in one step with the
//! schedule's new position, so a tick is committed whole.

use super::*;

/// A command about schedules.
pub(in crate::scheduler) enum ScheduleCmd {
    Restore {
        schedules: Vec<Schedule>,
    },
    Put {
        schedule: Schedule,
        reply: Reply<Commit>,
    },
    List {
        reply: Reply<Vec<Schedule>>,
    },
    Get {
        name: String,
        reply: Reply<Result<Schedule, Error>>,
    },
    Pause {
        name: String,
        paused: bool,
        now: Millis,
        reply: Reply<Result<Commit, Error>>,
    },
    Delete {
        name: String,
        reply: Reply<Result<Commit, Error>>,
    },
    /// `None`: the schedule moved on; nothing done.
    Fire {
        name: String,
        last: Millis,
        jobs: Vec<JobSpec>,
        reply: Reply<Option<Commit>>,
    },
}

impl Actor {
    pub(super) fn handle_schedule(&mut self, cmd: ScheduleCmd, now: Millis) {
        match cmd {
            ScheduleCmd::Restore { schedules } => {
                self.schedules = schedules
                    .into_iter()
                    .map(|s| (s.spec.name.clone(), s))
                    .collect();
            }
            ScheduleCmd::Put { schedule, reply } => {
                let commit = self.writer.write(vec![Write::PutSchedule(schedule.row())]);
                self.schedules.insert(schedule.spec.name.clone(), schedule);
                let _ = reply.send(commit);
            }
            ScheduleCmd::List { reply } => {
                let _ = reply.send(self.schedules.values().cloned().collect());
            }
            ScheduleCmd::Get { name, reply } => {
                let r = self
                    .schedules
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| schedule_not_found(&name));
                let _ = reply.send(r);
            }
            ScheduleCmd::Pause {
                name,
                paused,
                now,
                reply,
            } => {
                let r = match self.schedules.get_mut(&name) {
                    None => Err(schedule_not_found(&name)),
                    Some(s) => {
                        if s.paused && !paused {
                            s.last_tick = s.last_tick.max(now);
                        }
                        s.paused = paused;
                        Ok(self.writer.write(vec![Write::PutSchedule(s.row())]))
                    }
                };
                let _ = reply.send(r);
            }
            ScheduleCmd::Delete { name, reply } => {
                let r = match self.schedules.remove(&name) {
                    None => Err(schedule_not_found(&name)),
                    Some(_) => Ok(self.writer.write(vec![Write::DeleteSchedule(name)])),
                };
                let _ = reply.send(r);
            }
            ScheduleCmd::Fire {
                name,
                last,
                jobs,
                reply,
            } => {
                let current = self
                    .schedules
                    .get(&name)
                    .is_some_and(|s| !s.paused && s.last_tick == last);
                let newest = jobs.iter().map(|j| j.sched_at).max();
                let (true, Some(newest)) = (current, newest) else {
                    let _ = reply.send(None);
                    return;
                };
                let mut last_job = String::new();
                for mut spec in jobs {
                    self.fill_timeout(&mut spec);
                    if spec.sched_at == newest {
                        last_job = spec.name.clone();
                    }
                    let job = spec.name.clone();
                    if let Err(e) = self.core.submit(spec, now) {
                        tracing::warn!(schedule = %name, job = %job, error = %e, "schedule tick's job refused");
                    }
                }
                let s = self.schedules.get_mut(&name).expect("checked above");
                s.last_tick = newest;
                s.last_job = last_job;
                let row = s.row();
                let mut ops = self.effects();
                ops.push(Write::PutSchedule(row));
                let _ = reply.send(Some(self.writer.write(ops)));
            }
        }
    }
}

fn schedule_not_found(name: &str) -> Error {
    Error::NotFound(format!("schedule {name} not found"))
}
