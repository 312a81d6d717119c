//! Dense job storage for the core: a slab of jobs with an id-ordered index, and per-task
//! name indexes that hold slot numbers instead of copies of the names.
//!
//! Why not a `BTreeMap<JobId, Job>`: ids only grow, so every leaf split of such a map leaves
//! the left leaf about half full, and each job paid for a second, empty job-sized place
//! (≈230 bytes a job at 1M). Here only the 12-byte (id, slot) pairs of the index pay that,
//! and a name index entry is 4 bytes plus hashbrown's control byte, not a 24-byte
//! `(Arc<str>, JobId)`.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::ops::Index;

use hashbrown::HashTable;

use super::job::JobId;

/// Position of a job in the slab; stable while the job lives (until [`JobTable::compact`]).
pub type Slot = u32;

/// Something with a name, for [`NameIndex`].
pub trait Named {
    /// The job's name within its task.
    fn name(&self) -> &str;
}

/// Jobs by id: slab plus ordered index.
#[derive(Debug)]
pub struct JobTable<J> {
    index: BTreeMap<JobId, Slot>,
    slots: Vec<Option<(JobId, J)>>,
    free: Vec<Slot>,
}

impl<J> Default for JobTable<J> {
    fn default() -> Self {
        JobTable {
            index: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<J> JobTable<J> {
    /// Builds a table from jobs in strictly increasing id order (a restore): the index is
    /// bulk-built, so its nodes are full.
    pub(crate) fn from_sorted(jobs: Vec<(JobId, J)>) -> Self {
        debug_assert!(jobs.windows(2).all(|w| w[0].0 < w[1].0));
        let index = jobs
            .iter()
            .enumerate()
            .map(|(slot, (id, _))| (*id, slot as Slot))
            .collect();
        JobTable {
            index,
            slots: jobs.into_iter().map(Some).collect(),
            free: Vec::new(),
        }
    }

    /// Jobs held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when the job is held.
    pub(crate) fn contains_key(&self, id: &JobId) -> bool {
        self.index.contains_key(id)
    }

    /// The job's slot.
    pub fn slot(&self, id: &JobId) -> Option<Slot> {
        self.index.get(id).copied()
    }

    /// The job in a slot; panics on a free slot (a stale index is a bug).
    pub fn at(&self, slot: Slot) -> (JobId, &J) {
        let (id, job) = self.slots[slot as usize].as_ref().expect("slot is live");
        (*id, job)
    }

    /// The job with this id.
    pub fn get(&self, id: &JobId) -> Option<&J> {
        let slot = *self.index.get(id)?;
        self.slots[slot as usize].as_ref().map(|(_, j)| j)
    }

    /// The job with this id, mutably.
    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut J> {
        let slot = *self.index.get(id)?;
        self.slots[slot as usize].as_mut().map(|(_, j)| j)
    }

    /// Stores a job under `id` (replacing one with the same id in place) and returns its slot.
    pub fn insert(&mut self, id: JobId, job: J) -> Slot {
        if let Some(&slot) = self.index.get(&id) {
            self.slots[slot as usize] = Some((id, job));
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((id, job));
                slot
            }
            None => {
                self.slots.push(Some((id, job)));
                (self.slots.len() - 1) as Slot
            }
        };
        self.index.insert(id, slot);
        slot
    }

    /// Takes a job out; its slot is reused by a later insert.
    pub fn remove(&mut self, id: &JobId) -> Option<J> {
        let slot = self.index.remove(id)?;
        let (_, job) = self.slots[slot as usize]
            .take()
            .expect("indexed slot is live");
        self.free.push(slot);
        Some(job)
    }

    /// Every job in id order.
    pub fn iter(&self) -> impl Iterator<Item = (JobId, &J)> + '_ {
        self.index.iter().map(|(_, &slot)| self.at(slot))
    }

    /// Jobs with an id above `after`, in id order.
    pub fn after(&self, after: JobId) -> impl Iterator<Item = (JobId, &J)> + '_ {
        self.index
            .range(after.saturating_add(1)..)
            .map(|(_, &slot)| self.at(slot))
    }

    /// True when most slots are free: worth a [`JobTable::compact`] so that a drained burst
    /// gives its memory back.
    pub(crate) fn sparse(&self) -> bool {
        self.slots.len() > 4096 && self.index.len() * 4 < self.slots.len()
    }

    /// Moves every job to the front of a new, right-sized slab. Slots change: every
    /// [`NameIndex`] over this table must be rebuilt after.
    pub(crate) fn compact(&mut self) {
        let mut slots = Vec::with_capacity(self.index.len());
        for (_, slot) in self.index.iter_mut() {
            slots.push(self.slots[*slot as usize].take());
            *slot = (slots.len() - 1) as Slot;
        }
        self.slots = slots;
        self.free = Vec::new();
    }
}

impl<J> Index<&JobId> for JobTable<J> {
    type Output = J;

    fn index(&self, id: &JobId) -> &J {
        self.get(id).expect("job exists")
    }
}

/// The names of one task's jobs: slots hashed by the name stored in the job itself.
#[derive(Debug, Default)]
pub struct NameIndex {
    table: HashTable<Slot>,
    hasher: foldhash::fast::RandomState,
}

impl NameIndex {
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The id of the job with this name.
    pub fn get<J: Named>(&self, jobs: &JobTable<J>, name: &str) -> Option<JobId> {
        let slot = self
            .table
            .find(self.hash(name), |&s| jobs.at(s).1.name() == name)?;
        Some(jobs.at(*slot).0)
    }

    /// True when a job has this name.
    pub fn contains<J: Named>(&self, jobs: &JobTable<J>, name: &str) -> bool {
        self.get(jobs, name).is_some()
    }

    /// Indexes the job in `slot` by its name, replacing another job of the same name.
    pub fn insert<J: Named>(&mut self, jobs: &JobTable<J>, slot: Slot) {
        let name = jobs.at(slot).1.name();
        let hash = self.hash(name);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |&s| jobs.at(s).1.name() == name,
            |&s| hasher.hash_one(jobs.at(s).1.name()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = slot,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    /// Drops the job in `slot` from the index (call before the job leaves the table).
    pub fn remove<J: Named>(&mut self, jobs: &JobTable<J>, slot: Slot) {
        let hash = self.hash(jobs.at(slot).1.name());
        if let Ok(e) = self.table.find_entry(hash, |&s| s == slot) {
            e.remove();
        }
    }

    /// Room for `more` names without rehashing.
    pub(crate) fn reserve<J: Named>(&mut self, jobs: &JobTable<J>, more: usize) {
        let hasher = &self.hasher;
        self.table
            .reserve(more, |&s| hasher.hash_one(jobs.at(s).1.name()));
    }

    /// Names indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no name is indexed.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Ids of every indexed job, in no particular order.
    pub fn ids<J>(&self, jobs: &JobTable<J>) -> Vec<JobId> {
        self.table.iter().map(|&s| jobs.at(s).0).collect()
    }

    /// Forgets every name (before a rebuild after [`JobTable::compact`]).
    pub fn clear(&mut self) {
        self.table = HashTable::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct J(String);
    impl Named for J {
        fn name(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn slots_are_reused_and_compaction_keeps_order() {
        let mut t = JobTable::default();
        let mut names = NameIndex::default();
        for id in 1..=10_000u64 {
            let s = t.insert(id, J(format!("n{id}")));
            names.insert(&t, s);
        }
        for id in 1..=9_000u64 {
            let s = t.slot(&id).unwrap();
            names.remove(&t, s);
            t.remove(&id).unwrap();
        }
        assert_eq!(t.len(), 1_000);
        assert_eq!(names.len(), 1_000);
        let s = t.insert(20_000, J("late".into()));
        assert!(s < 9_000, "a freed slot is reused");
        names.insert(&t, s);
        assert!(t.sparse());
        t.compact();
        names.clear();
        for (id, _) in t.iter().collect::<Vec<_>>() {
            names.insert(&t, t.slot(&id).unwrap());
        }
        assert!(!t.sparse());
        let ids: Vec<JobId> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids.first(), Some(&9_001));
        assert_eq!(ids.last(), Some(&20_000));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(names.get(&t, "n9500"), Some(9_500));
        assert_eq!(names.get(&t, "late"), Some(20_000));
        assert_eq!(names.get(&t, "n5"), None);
        assert_eq!(
            t.after(9_998).map(|(id, _)| id).collect::<Vec<_>>(),
            vec![9_999, 10_000, 20_000]
        );
    }

    #[test]
    fn same_name_replaces_the_index_entry() {
        let mut t = JobTable::default();
        let mut names = NameIndex::default();
        let a = t.insert(1, J("x".into()));
        names.insert(&t, a);
        let b = t.insert(2, J("x".into()));
        names.insert(&t, b);
        assert_eq!(names.len(), 1);
        assert_eq!(names.get(&t, "x"), Some(2));
        let from_sorted = JobTable::from_sorted(vec![(3, J("a".into())), (7, J("b".into()))]);
        assert_eq!(from_sorted[&7].0, "b");
        assert_eq!(from_sorted.len(), 2);
    }
}
