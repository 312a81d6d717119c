//! Which task classes exist: built-in HTTP classes, and remote classes that have a worker now.

use std::sync::Arc;

use indexmap::IndexMap;

use super::error::Error;
use super::http::HttpTaskDef;
use crate::scheduler::SchedulerHandle;

/// How a task class runs.
#[derive(Clone, Debug)]
pub enum TaskClass {
    /// Inside the server.
    Http(Arc<HttpTaskDef>),
    /// On a worker that registered the class as a scheduler task.
    Remote(String),
}

/// The built-in classes; remote ones are asked of the scheduler when needed.
pub struct Catalog {
    http: IndexMap<String, Arc<HttpTaskDef>>,
}

impl Catalog {
    /// `http.get` plus the tasks file's classes.
    pub fn new(defs: Vec<HttpTaskDef>) -> Self {
        let http = std::iter::once(HttpTaskDef::get())
            .chain(defs)
            .map(|d| (d.name.clone(), Arc::new(d)))
            .collect();
        Catalog { http }
    }

    /// Whether `class` is built in.
    pub fn is_http(&self, class: &str) -> bool {
        self.http.contains_key(class)
    }

    /// How `class` runs: built-in classes win over a remote task of the same name.
    pub(crate) fn resolve(&self, class: &str) -> TaskClass {
        match self.http.get(class) {
            Some(d) => TaskClass::Http(d.clone()),
            None => TaskClass::Remote(class.to_string()),
        }
    }

    /// Remote classes with at least one registered worker now.
    pub async fn remote(&self, sched: &SchedulerHandle) -> Result<Vec<String>, Error> {
        let (tasks, _) = sched.status(None).await?;
        Ok(tasks
            .into_iter()
            .filter(|t| t.workers > 0 && !self.is_http(&t.task))
            .map(|t| t.task)
            .collect())
    }

    /// Every class a job may use now: built-in first, then remote.
    pub async fn classes(&self, sched: &SchedulerHandle) -> Result<Vec<String>, Error> {
        let mut all: Vec<String> = self.http.keys().cloned().collect();
        all.extend(self.remote(sched).await?);
        Ok(all)
    }
}
