//! In-memory store: for tests of the actor and as the reference the conformance suite holds
//! every other store to. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Op, Store, StoreError};
use crate::scheduler::job::{JobId, JobRecord};

/// A [`Store`] over a shared map; clones see the same jobs.
#[derive(Clone, Default)]
pub struct MemoryStore {
    jobs: Arc<Mutex<BTreeMap<JobId, JobRecord>>>,
    config: Arc<Mutex<BTreeMap<String, i64>>>,
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
                Op::Upsert(r) => {
                    // Same rule as SQLite's INSERT OR REPLACE: a row with the same task and name goes.
                    jobs.retain(|&id, j| id == r.id || j.task != r.task || j.name != r.name);
                    jobs.insert(r.id, r.clone());
                }
                Op::Reschedule {
                    id,
                    sched_at,
                    attempts,
                    run_count,
                    dead,
                    last_error,
                } => {
                    if let Some(j) = jobs.get_mut(id) {
                        j.sched_at = *sched_at;
                        j.attempts = *attempts;
                        j.run_count = *run_count;
                        j.dead = *dead;
                        j.last_error = last_error.clone();
                    }
                }
                Op::Delete(id) => {
                    jobs.remove(id);
                }
                Op::DeleteTask(task) => jobs.retain(|_, j| &j.task != task),
                Op::SetConfig { key, value } => {
                    self.config
                        .lock()
                        .expect("poisoned")
                        .insert(key.clone(), *value);
                }
            }
        }
        Ok(())
    }

    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.snapshot())
    }

    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.config.lock().expect("poisoned");
        Ok(c.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }
}
