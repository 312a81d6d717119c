//! The jobs a store reads back at start-up, in the shape the core restores from.

use super::job::JobRecord;

/// Jobs read at start-up, in id order, with each task's name held once: a restart of 1M
/// jobs allocates no task name per row (those freed strings were 32 bytes of heap a job).
#[derive(Debug, Default)]
pub struct StoredJobs {
    /// Task names, indexed by the number beside each record.
    pub tasks: Vec<String>,
    /// Each job with the index of its task name; its `JobRecord::task` is left empty.
    pub jobs: Vec<(u32, JobRecord)>,
    /// Task name → index, for [`StoredJobs::push`].
    index: std::collections::HashMap<String, u32>,
    /// The last task pushed: rows of one task tend to come together.
    last: Option<u32>,
}

impl StoredJobs {
    /// Empty, with room for `jobs` jobs.
    pub fn with_capacity(jobs: usize) -> Self {
        StoredJobs {
            jobs: Vec::with_capacity(jobs),
            ..StoredJobs::default()
        }
    }

    /// Adds a job (after those already here) of task `task`; its own `task` field is cleared.
    pub fn push(&mut self, task: &str, mut record: JobRecord) {
        let t = match self.last {
            Some(t) if self.tasks[t as usize] == task => t,
            _ => match self.index.get(task) {
                Some(&t) => t,
                None => {
                    let t = self.tasks.len() as u32;
                    self.tasks.push(task.to_string());
                    self.index.insert(task.to_string(), t);
                    t
                }
            },
        };
        self.last = Some(t);
        record.task = String::new();
        self.jobs.push((t, record));
    }

    /// Takes full records apart (for stores without a leaner read).
    pub(crate) fn from_records(records: Vec<JobRecord>) -> Self {
        let mut out = StoredJobs::with_capacity(records.len());
        for mut r in records {
            let task = std::mem::take(&mut r.task);
            out.push(&task, r);
        }
        out
    }

    /// Adds `later` (jobs with higher ids) after these.
    pub fn append(&mut self, later: StoredJobs) {
        self.jobs.reserve(later.jobs.len());
        for (t, r) in later.jobs {
            self.push(&later.tasks[t as usize], r);
        }
    }

    /// Full records again, each with its task name.
    pub fn into_records(self) -> Vec<JobRecord> {
        let tasks = self.tasks;
        self.jobs
            .into_iter()
            .map(|(t, mut r)| {
                r.task = tasks[t as usize].clone();
                r
            })
            .collect()
    }
}
