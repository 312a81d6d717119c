//! In-memory store: for tests of the actor and as the reference the conformance suite holds
//! every other store to. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{ExecRow, Op, ScheduleRow, Store, StoreError, StoreReader};
use super::{JobWrite, Write};
use crate::scheduler::job::{JobId, JobRecord};

/// A [`Store`] over shared maps; clones see the same jobs.
#[derive(Clone, Default)]
pub struct MemoryStore {
    jobs: Arc<Mutex<BTreeMap<JobId, JobRecord>>>,
    config: Arc<Mutex<BTreeMap<String, i64>>>,
    load: Arc<Mutex<LoadTables>>,
    schedules: Arc<Mutex<BTreeMap<String, ScheduleRow>>>,
    paused_tasks: Arc<Mutex<std::collections::BTreeSet<String>>>,
    task_limits: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

#[derive(Default)]
struct LoadTables {
    jobs: BTreeMap<String, String>,
    execs: BTreeMap<String, ExecRow>,
}

impl LoadTables {
    /// Newest first, the same order as SQLite's `ORDER BY t_start DESC, id DESC`.
    fn newest_first(&self) -> Vec<&ExecRow> {
        let mut v: Vec<&ExecRow> = self.execs.values().collect();
        v.sort_by(|a, b| (&b.t_start, &b.id).cmp(&(&a.t_start, &a.id)));
        v
    }
}

impl MemoryStore {
    /// A copy of what is stored now.
    pub fn snapshot(&self) -> Vec<JobRecord> {
        self.jobs
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect()
    }
}

impl Store for MemoryStore {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let mut jobs = self.jobs.lock().expect("poisoned");
        for op in ops {
            match op {
                Op::Scheduler(Write::Job(JobWrite::Upsert(r))) => {
                    // By id only, like SQLite: a core that left two rows with one (task, name)
                    // would make this mirror differ from it, and the core tests compare them.
                    jobs.insert(r.id, r.clone());
                }
                Op::Scheduler(Write::Job(JobWrite::Reschedule {
                    id,
                    sched_at,
                    attempts,
                    run_count,
                    dead,
                    last_error,
                })) => {
                    if let Some(j) = jobs.get_mut(id) {
                        j.sched_at = *sched_at;
                        j.attempts = *attempts;
                        j.run_count = *run_count;
                        j.dead = *dead;
                        j.last_error = last_error.clone();
                    }
                }
                Op::Scheduler(Write::Job(JobWrite::Delete(id))) => {
                    jobs.remove(id);
                }
                Op::Scheduler(Write::Job(JobWrite::DeleteTask(task))) => {
                    jobs.retain(|_, j| &j.task != task)
                }
                // No claims here.
                Op::Scheduler(Write::Release(_)) => {}
                Op::Scheduler(Write::SetConfig { key, value }) => {
                    self.config
                        .lock()
                        .expect("poisoned")
                        .insert(key.clone(), *value);
                }
                Op::Scheduler(Write::PutSchedule(r)) => {
                    let mut s = self.schedules.lock().expect("poisoned");
                    s.insert(r.name.clone(), r.clone());
                }
                Op::Scheduler(Write::SetTaskPaused { task, paused }) => {
                    let mut p = self.paused_tasks.lock().expect("poisoned");
                    if *paused {
                        p.insert(task.clone());
                    } else {
                        p.remove(task);
                    }
                }
                Op::Scheduler(Write::DeleteSchedule(name)) => {
                    self.schedules.lock().expect("poisoned").remove(name);
                }
                Op::Scheduler(Write::SetTaskLimits { task, limits }) => {
                    let mut l = self.task_limits.lock().expect("poisoned");
                    match limits {
                        Some(text) => l.insert(task.clone(), text.clone()),
                        None => l.remove(task),
                    };
                }
                Op::SaveLoadJob { name, json } => {
                    let mut load = self.load.lock().expect("poisoned");
                    load.jobs.insert(name.clone(), json.clone());
                }
                Op::ArchiveExec(row) => {
                    let mut load = self.load.lock().expect("poisoned");
                    load.execs.insert(row.id.clone(), row.clone());
                }
                Op::TrimExecs(keep) => {
                    let mut load = self.load.lock().expect("poisoned");
                    let gone: Vec<String> = load
                        .newest_first()
                        .into_iter()
                        .skip(*keep)
                        .map(|r| r.id.clone())
                        .collect();
                    for id in gone {
                        load.execs.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }

    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.snapshot())
    }

    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, bytes::Bytes)>, StoreError> {
        let jobs = self.jobs.lock().expect("poisoned");
        Ok(ids
            .iter()
            .filter_map(|id| jobs.get(id).map(|r| (*id, r.args.clone())))
            .collect())
    }

    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.config.lock().expect("poisoned");
        Ok(c.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }

    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let load = self.load.lock().expect("poisoned");
        Ok(load
            .jobs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let l = self.task_limits.lock().expect("poisoned");
        Ok(l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .paused_tasks
            .lock()
            .expect("poisoned")
            .iter()
            .cloned()
            .collect())
    }

    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        Ok(self
            .schedules
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect())
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError> {
        Ok(Box::new(self.clone()))
    }
}

impl StoreReader for MemoryStore {
    fn list_execs(&self, name: Option<&str>, limit: usize) -> Result<Vec<ExecRow>, StoreError> {
        let load = self.load.lock().expect("poisoned");
        Ok(load
            .newest_first()
            .into_iter()
            .filter(|r| name.is_none_or(|n| r.name == n))
            .take(limit)
            .map(|r| ExecRow {
                json: String::new(),
                ..r.clone()
            })
            .collect())
    }

    fn get_exec(&self, id: &str) -> Result<Option<ExecRow>, StoreError> {
        Ok(self.load.lock().expect("poisoned").execs.get(id).cloned())
    }

    fn get_load_job(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.load.lock().expect("poisoned").jobs.get(name).cloned())
    }
}
