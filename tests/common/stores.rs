//! A memory store whose commits pass through a hook first: to fail them (a full disk) or to
//! slow them down (a slow disk), for tests of the writer and the actor; and whose payload
//! reads may pass through one too (a read that fails); and whose commits may be made durable
//! apart, by a sync that passes through a hook (a slow or failing fdatasync).
#![allow(dead_code)]

use std::sync::Arc;

use taskhive::scheduler::job::{JobId, JobRecord};
use taskhive::store::memory::MemoryStore;
use taskhive::store::{Op, ScheduleRow, Store, StoreError, StoreReader, Syncer};

type Hook = Arc<dyn Fn(&[Op]) -> Result<(), StoreError> + Send + Sync>;
type ReadHook = Arc<dyn Fn(&[JobId]) -> Result<(), StoreError> + Send + Sync>;
type SyncHook = Arc<dyn Fn() -> Result<(), StoreError> + Send + Sync>;

/// A [`MemoryStore`] whose `apply` runs `before` first and commits only if it answers Ok;
/// with [`HookedStore::reads`], whose payload reads do the same.
#[derive(Clone)]
pub struct HookedStore {
    inner: MemoryStore,
    before: Hook,
    reads: Option<ReadHook>,
    syncs: Option<SyncHook>,
}

impl HookedStore {
    pub fn new(
        inner: MemoryStore,
        before: impl Fn(&[Op]) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> HookedStore {
        HookedStore {
            inner,
            before: Arc::new(before),
            reads: None,
            syncs: None,
        }
    }

    /// The same store, its commits made durable apart ([`Store::take_syncer`]) by a sync
    /// that answers what `hook` answers.
    pub fn syncs(
        mut self,
        hook: impl Fn() -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> HookedStore {
        self.syncs = Some(Arc::new(hook));
        self
    }

    /// The same store, its payload reads (`read_args`) answered only if `hook` answers Ok.
    pub fn reads(
        mut self,
        hook: impl Fn(&[JobId]) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> HookedStore {
        self.reads = Some(Arc::new(hook));
        self
    }
}

impl Store for HookedStore {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        (self.before)(ops)?;
        self.inner.apply(ops)
    }
    fn after_acks(&mut self) {
        self.inner.after_acks()
    }
    fn take_syncer(&mut self) -> Result<Option<Box<dyn Syncer>>, StoreError> {
        Ok(self
            .syncs
            .clone()
            .map(|hook| Box::new(HookedSync(hook)) as Box<dyn Syncer>))
    }
    fn load_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.load_jobs()
    }
    fn read_args(&mut self, ids: &[JobId]) -> Result<Vec<(JobId, bytes::Bytes)>, StoreError> {
        if let Some(hook) = &self.reads {
            hook(ids)?;
        }
        self.inner.read_args(ids)
    }
    fn load_config(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.load_config()
    }
    fn load_load_jobs(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.load_load_jobs()
    }
    fn load_schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        self.inner.load_schedules()
    }
    fn load_paused_tasks(&mut self) -> Result<Vec<String>, StoreError> {
        self.inner.load_paused_tasks()
    }
    fn load_task_limits(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.load_task_limits()
    }
    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError> {
        self.inner.reader()
    }
}

struct HookedSync(SyncHook);

impl Syncer for HookedSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        (self.0)()
    }
}
