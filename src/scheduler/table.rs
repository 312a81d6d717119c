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

/// Position of a job in the slab; stable while the job lives, unless
/// [`JobTable::shrink_some`] moves it (and says so).
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
        let slot = match self.pop_free() {
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

    /// A free slot to fill. `free` may hold slots that [`JobTable::shrink_step`] cut off the
    /// end (perhaps pushed again and live by now): those are skipped here.
    fn pop_free(&mut self) -> Option<Slot> {
        while let Some(s) = self.free.pop() {
            if self.slots.get(s as usize).is_some_and(Option::is_none) {
                return Some(s);
            }
        }
        None
    }

    /// Call after each removal: while the slab is sparse, up to [`SHRINK_STEPS`]
    /// [`JobTable::shrink_step`]s, telling `moved` of each job moved (its name-index entry
    /// must follow it, [`NameIndex::relocate`]). A drained burst's slots go back while it
    /// drains, a few per removal, with no pause.
    pub(crate) fn shrink_some(&mut self, mut moved: impl FnMut(&Self, Moved)) {
        for _ in 0..SHRINK_STEPS {
            if !self.sparse() {
                break;
            }
            if let Some(m) = self.shrink_step() {
                moved(self, m);
            }
        }
    }

    /// True while free slots are worth giving back: a big slab with over a fifth of it free.
    fn sparse(&self) -> bool {
        self.slots.len() > 4096 && self.slots.len() > self.index.len() + self.index.len() / 4
    }

    /// One bounded step toward a dense slab, so that a drained burst gives its memory back
    /// without a pause: drops free slots at the end (at most [`TRIM_PER_STEP`]), else moves
    /// the last job into a free slot below it. Returns that move; the caller points the job's
    /// name-index entry at the new slot ([`NameIndex::relocate`]).
    ///
    /// (A compaction of the whole slab at once, and a rebuild of every name index after it,
    /// stopped the core for 170–230 ms with 250,000 jobs left of a million.)
    fn shrink_step(&mut self) -> Option<Moved> {
        if self.index.is_empty() {
            self.slots = Vec::new();
            self.free = Vec::new();
            return None;
        }
        let mut trimmed = 0;
        while trimmed < TRIM_PER_STEP && matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
            trimmed += 1;
        }
        if trimmed > 0 {
            self.give_back();
            return None;
        }
        // The last slot is live, so any free slot `pop_free` finds lies below it.
        let from = (self.slots.len() - 1) as Slot;
        let to = self.pop_free()?;
        let moved = self.slots.pop().expect("the last slot is live");
        let id = moved.as_ref().expect("the last slot is live").0;
        self.slots[to as usize] = moved;
        *self.index.get_mut(&id).expect("a live slot is indexed") = to;
        Some(Moved { from, to })
    }

    /// Shrinks the slab's and the free list's allocations once they are twice what they hold
    /// (jemalloc shrinks a large allocation in place).
    fn give_back(&mut self) {
        let len = self.slots.len();
        if self.slots.capacity() > 4096 && self.slots.capacity() > 2 * len {
            self.slots.shrink_to(len + len / 2);
        }
        let free = self.free.len();
        if self.free.capacity() > 4096 && self.free.capacity() > 4 * free {
            self.free.shrink_to(2 * free);
        }
    }

    /// Slots in the slab, live or free.
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.slots.len()
    }
}

/// [`JobTable::shrink_step`]s per removed job while the slab is sparse: enough that it
/// shrinks faster than a drain empties it, few enough that a removal stays O(1).
const SHRINK_STEPS: usize = 4;

/// Slots [`JobTable::shrink_step`] drops off the end of the slab in one step at most.
const TRIM_PER_STEP: usize = 64;

/// A job [`JobTable::shrink_step`] moved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Moved {
    /// Its old slot, now gone.
    pub from: Slot,
    /// Its slot now.
    pub to: Slot,
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

    /// Points the entry of the job that [`JobTable::shrink_step`] moved from `from` to `to`
    /// at its new slot (if the name still names it).
    pub(crate) fn relocate<J: Named>(&mut self, jobs: &JobTable<J>, from: Slot, to: Slot) {
        let hash = self.hash(jobs.at(to).1.name());
        if let Some(s) = self.table.find_mut(hash, |&s| s == from) {
            *s = to;
        }
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

    /// Jobs 1..=n named `n<id>`, indexed by name.
    fn filled(n: u64) -> (JobTable<J>, NameIndex) {
        let mut t = JobTable::default();
        let mut names = NameIndex::default();
        for id in 1..=n {
            let s = t.insert(id, J(format!("n{id}")));
            names.insert(&t, s);
        }
        (t, names)
    }

    /// Removes `id` as the core does: name entry first, then the job, then a few shrink
    /// steps, each move followed in the name index.
    fn remove_and_shrink(t: &mut JobTable<J>, names: &mut NameIndex, id: JobId) -> usize {
        let s = t.slot(&id).unwrap();
        names.remove(t, s);
        t.remove(&id).unwrap();
        let mut moves = 0;
        t.shrink_some(|t, m| {
            assert!(m.to < m.from);
            names.relocate(t, m.from, m.to);
            moves += 1;
        });
        moves
    }

    #[test]
    fn a_drain_gives_slots_back_step_by_step_and_every_name_still_resolves() {
        let (mut t, mut names) = filled(60_000);
        // Drain all but every tenth job, from the front, so that the survivors sit at the
        // end of the slab and must move. 6,000 survivors: above the 4,096 slots below which
        // nothing shrinks, so the slab must end within a quarter of them.
        let mut moves = 0;
        for id in (1..=60_000u64).filter(|id| id % 10 != 0) {
            moves += remove_and_shrink(&mut t, &mut names, id);
        }
        assert!(moves > 0, "survivors at the end were moved down");
        assert_eq!(t.len(), 6_000);
        assert!(
            t.slots() <= 6_000 + 6_000 / 4,
            "slab of {} slots for 6,000 jobs",
            t.slots()
        );
        for id in (10..=60_000u64).step_by(10) {
            assert_eq!(names.get(&t, &format!("n{id}")), Some(id), "n{id}");
            assert_eq!(t[&id].0, format!("n{id}"));
        }
        assert_eq!(names.get(&t, "n5"), None);
        let ids: Vec<JobId> = t.iter().map(|(id, _)| id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            t.after(59_980).map(|(id, _)| id).collect::<Vec<_>>(),
            vec![59_990, 60_000]
        );
        // Freed slots (some cut off the end, listed in `free` still) are reused safely.
        for id in 90_000..90_100u64 {
            let s = t.insert(id, J(format!("m{id}")));
            names.insert(&t, s);
        }
        for id in (10..=60_000u64).step_by(10).chain(90_000..90_100) {
            let want = if id >= 90_000 {
                format!("m{id}")
            } else {
                format!("n{id}")
            };
            assert_eq!(names.get(&t, &want), Some(id));
        }
        assert_eq!(t.len(), 6_100);
    }

    #[test]
    fn a_slab_drained_to_nothing_is_dropped() {
        let (mut t, mut names) = filled(10_000);
        for id in (1..=10_000u64).rev() {
            remove_and_shrink(&mut t, &mut names, id);
        }
        assert!(t.is_empty() && names.is_empty());
        assert!(t.slots() <= 4096, "{} slots left", t.slots());
        let s = t.insert(1, J("again".into()));
        names.insert(&t, s);
        assert_eq!(names.get(&t, "again"), Some(1));
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
