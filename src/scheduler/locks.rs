//! Named locks (Periodic's ACQUIRE/RELEASE): at most `count` jobs hold a lock at once.
//!
//! A job that cannot get a slot waits in the lock's queue; when a holder lets go, the first
//! waiter is given the slot *before* it runs again, so its next acquire succeeds. Entries
//! older than the lock timeout are dropped (a worker that vanished with a lock cannot block
//! the others for ever).
//!
//! On a cluster node the locks are *external*: the database decides who holds a slot
//! (`taskhive_lock_acquire`, see `cluster::locks`), and this table only records what the
//! node's jobs hold or wait for ([`Locks::record`]); it never promotes a waiter itself (the
//! database does, and the node hears of it: [`Locks::grant`]).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::job::{JobId, Millis};

/// Looked up on every finished job: foldhash, not SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Lock {
    max: u32,
    /// Holder → the time its entry goes stale.
    holders: HashMap<JobId, Millis>,
    /// Waiters in arrival order, with the time their entry goes stale.
    waiting: VecDeque<(JobId, Millis)>,
}

/// Every named lock, with an index from jobs to the locks they hold or wait for.
#[derive(Debug, Default)]
pub struct Locks {
    /// Slots are granted elsewhere (a cluster's database); see the module docs.
    external: bool,
    locks: HashMap<Arc<str>, Lock>,
    by_job: HashMap<JobId, Vec<Arc<str>>>,
    expiry: BTreeSet<(Millis, JobId, Arc<str>)>,
}

impl Locks {
    /// The lock's name as stored (shared by its entries), or a new one.
    fn key(&self, name: &str) -> Arc<str> {
        match self.locks.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => Arc::from(name),
        }
    }

    /// A table whose slots are granted elsewhere.
    pub fn external() -> Locks {
        Locks {
            external: true,
            ..Locks::default()
        }
    }

    /// Whether slots are granted elsewhere.
    pub(crate) fn is_external(&self) -> bool {
        self.external
    }

    /// External: records the decision made elsewhere: `job` holds a slot of `name` (true)
    /// or waits for one (false).
    pub fn record(&mut self, name: &str, held: bool, job: JobId, now: Millis, timeout_ms: Millis) {
        let key = self.key(name);
        let lock = self.locks.entry(key.clone()).or_default();
        if lock.holders.contains_key(&job) || lock.waiting.iter().any(|&(j, _)| j == job) {
            return;
        }
        let stale_at = now + timeout_ms;
        if held {
            lock.holders.insert(job, stale_at);
        } else {
            lock.waiting.push_back((job, stale_at));
        }
        self.expiry.insert((stale_at, job, key.clone()));
        self.by_job.entry(job).or_default().push(key);
    }

    /// External: `job`, waiting for `name`, was given a slot elsewhere; true when it was
    /// waiting here.
    pub fn grant(&mut self, name: &str, job: JobId, now: Millis, timeout_ms: Millis) -> bool {
        let Some((key, lock)) = self.locks.get_key_value(name) else {
            return false;
        };
        let key = key.clone();
        let Some(pos) = lock.waiting.iter().position(|&(j, _)| j == job) else {
            return false;
        };
        let lock = self.locks.get_mut(&key).expect("found above");
        let (_, stale_at) = lock.waiting.remove(pos).expect("position is valid");
        self.expiry.remove(&(stale_at, job, key.clone()));
        lock.holders.insert(job, now + timeout_ms);
        self.expiry.insert((now + timeout_ms, job, key));
        true
    }

    /// Whether `job` holds or waits for any lock.
    pub(crate) fn has_entries(&self, job: JobId) -> bool {
        !self.by_job.is_empty() && self.by_job.contains_key(&job)
    }

    /// Takes a slot of `name` for `job` (true) or queues it (false). `count` raises the lock's limit.
    pub fn acquire(
        &mut self,
        name: &str,
        count: u32,
        job: JobId,
        now: Millis,
        timeout_ms: Millis,
    ) -> bool {
        let key = self.key(name);
        let lock = self.locks.entry(key.clone()).or_default();
        lock.max = lock.max.max(count.max(1));
        if lock.holders.contains_key(&job) {
            return true;
        }
        if lock.waiting.iter().any(|&(j, _)| j == job) {
            return false;
        }
        let held = (lock.holders.len() as u32) < lock.max;
        let stale_at = now + timeout_ms;
        if held {
            lock.holders.insert(job, stale_at);
        } else {
            lock.waiting.push_back((job, stale_at));
        }
        self.expiry.insert((stale_at, job, key.clone()));
        self.by_job.entry(job).or_default().push(key);
        held
    }

    /// Lets go of one lock; returns the waiter that got the freed slot.
    pub fn release(
        &mut self,
        name: &str,
        job: JobId,
        now: Millis,
        timeout_ms: Millis,
    ) -> Option<JobId> {
        let key = self.locks.get_key_value(name)?.0.clone();
        if let Some(names) = self.by_job.get_mut(&job) {
            names.retain(|n| n != &key);
            if names.is_empty() {
                self.by_job.remove(&job);
            }
        }
        self.drop_entry(&key, job, now, timeout_ms)
    }

    /// Lets go of every lock `job` holds or waits for; returns the waiters that got slots.
    pub(crate) fn release_all(
        &mut self,
        job: JobId,
        now: Millis,
        timeout_ms: Millis,
    ) -> Vec<JobId> {
        // Most jobs take no lock: every finished job comes here, so skip the hashing then.
        if self.by_job.is_empty() {
            return Vec::new();
        }
        let names = self.by_job.remove(&job).unwrap_or_default();
        names
            .into_iter()
            .filter_map(|n| self.drop_entry(&n, job, now, timeout_ms))
            .collect()
    }

    fn drop_entry(
        &mut self,
        key: &Arc<str>,
        job: JobId,
        now: Millis,
        timeout_ms: Millis,
    ) -> Option<JobId> {
        let lock = self.locks.get_mut(key)?;
        let mut promoted = None;
        if let Some(stale_at) = lock.holders.remove(&job) {
            self.expiry.remove(&(stale_at, job, key.clone()));
            let next = if self.external {
                None
            } else {
                lock.waiting.pop_front()
            };
            if let Some((next, next_stale)) = next {
                self.expiry.remove(&(next_stale, next, key.clone()));
                lock.holders.insert(next, now + timeout_ms);
                self.expiry.insert((now + timeout_ms, next, key.clone()));
                promoted = Some(next);
            }
        } else if let Some(pos) = lock.waiting.iter().position(|&(j, _)| j == job) {
            let (_, stale_at) = lock.waiting.remove(pos).expect("position is valid");
            self.expiry.remove(&(stale_at, job, key.clone()));
        }
        if lock.holders.is_empty() && lock.waiting.is_empty() {
            self.locks.remove(key);
        }
        promoted
    }

    /// Drops entries older than the timeout. Returns (jobs whose entry expired, waiters promoted).
    pub fn expire(&mut self, now: Millis, timeout_ms: Millis) -> (Vec<JobId>, Vec<JobId>) {
        let mut expired = Vec::new();
        let mut promoted = Vec::new();
        while let Some((t, job, key)) = self.expiry.first().cloned() {
            if t > now {
                break;
            }
            self.expiry.pop_first();
            if let Some(p) = self.release(&key, job, now, timeout_ms) {
                promoted.push(p);
            }
            expired.push(job);
        }
        (expired, promoted)
    }

    /// When the oldest entry goes stale.
    pub(crate) fn next_expiry(&self) -> Option<Millis> {
        self.expiry.first().map(|(t, _, _)| *t)
    }

    /// Holders of `name` now.
    pub fn holders(&self, name: &str) -> usize {
        self.locks.get(name).map_or(0, |l| l.holders.len())
    }

    /// Whether `job` waits in some lock's queue.
    pub(crate) fn is_waiting(&self, job: JobId) -> bool {
        self.by_job.get(&job).is_some_and(|names| {
            names
                .iter()
                .any(|n| self.locks[n].waiting.iter().any(|&(j, _)| j == job))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limits_holders_and_release_promotes_in_order() {
        let mut l = Locks::default();
        assert!(l.acquire("db", 2, 1, 0, 1000));
        assert!(l.acquire("db", 2, 2, 0, 1000));
        assert!(!l.acquire("db", 2, 3, 0, 1000));
        assert!(!l.acquire("db", 2, 4, 0, 1000));
        assert_eq!(l.holders("db"), 2);
        assert_eq!(l.release_all(1, 10, 1000), vec![3]);
        assert!(
            l.acquire("db", 2, 3, 10, 1000),
            "promoted waiter holds its slot"
        );
        assert_eq!(l.release("db", 2, 20, 1000), Some(4));
        assert!(!l.is_waiting(4));
        assert!(l.release_all(3, 30, 1000).is_empty());
        assert!(l.release_all(4, 30, 1000).is_empty());
        assert_eq!(l.holders("db"), 0);
        assert_eq!(l.next_expiry(), None);
    }

    #[test]
    fn external_locks_record_decisions_and_never_promote_on_their_own() {
        let mut l = Locks::external();
        l.record("db", true, 1, 0, 1000);
        l.record("db", true, 2, 0, 1000);
        l.record("db", false, 3, 0, 1000);
        assert_eq!(
            l.holders("db"),
            2,
            "the database's decision, not a count here"
        );
        assert!(l.is_waiting(3));
        assert!(l.release_all(1, 10, 1000).is_empty(), "no promotion here");
        assert!(l.is_waiting(3));
        assert!(l.grant("db", 3, 20, 1000));
        assert!(!l.is_waiting(3));
        assert!(!l.grant("db", 3, 20, 1000), "granted once");
        assert!(l.has_entries(3));
        l.release_all(2, 30, 1000);
        l.release_all(3, 30, 1000);
        assert!(!l.has_entries(3));
        assert_eq!((l.holders("db"), l.next_expiry()), (0, None));
    }

    #[test]
    fn stale_entries_expire() {
        let mut l = Locks::default();
        assert!(l.acquire("x", 1, 1, 0, 100));
        assert!(!l.acquire("x", 1, 2, 50, 100));
        let (expired, promoted) = l.expire(100, 100);
        assert_eq!((expired, promoted), (vec![1], vec![2]));
        assert_eq!(l.holders("x"), 1);
        let (expired, _) = l.expire(200, 100);
        assert_eq!(expired, vec![2]);
        assert_eq!(l.holders("x"), 0);
    }
}
