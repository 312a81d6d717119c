//! Kept results (`serve --keep-results`): a finished job's outcome stays readable for a
//! while after the job left the core. Pure; the actor owns one and purges it as time passes.
//!
//! Cost: the result bytes plus one slab entry, two 4-byte hash slots and a FIFO entry
//! (BENCHMARKS.md); purging pops the FIFO, O(expired), never a scan.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use super::job::{JobId, JobKey, JobRecord, JobState, JobView, Millis};

struct Kept {
    id: JobId,
    task: Arc<str>,
    name: Arc<str>,
    result: Bytes,
    attempts: u32,
    finished_at: Millis,
}

/// Finished jobs' outcomes until they expire: a dense slab of entries, two hash indexes of
/// slab slots (by id, by (task, name)), and a FIFO of (expiry, id): every outcome is kept
/// for the same time, so expiry order is finish order.
#[derive(Default)]
pub struct KeptResults {
    slab: Vec<Kept>,
    by_id: HashTable<u32>,
    by_name: HashTable<u32>,
    expiry: VecDeque<(Millis, JobId)>,
    keep_ms: Millis,
    hasher: foldhash::fast::RandomState,
    /// Bytes of results kept.
    bytes: usize,
}

impl KeptResults {
    fn id_hash(&self, id: JobId) -> u64 {
        self.hasher.hash_one(id)
    }

    fn name_hash(&self, task: &str, name: &str) -> u64 {
        self.hasher.hash_one((task, name))
    }

    fn slot_by_id(&self, id: JobId) -> Option<usize> {
        let slab = &self.slab;
        self.by_id
            .find(self.id_hash(id), |&i| slab[i as usize].id == id)
            .map(|&i| i as usize)
    }

    fn slot_by_name(&self, task: &str, name: &str) -> Option<usize> {
        let slab = &self.slab;
        self.by_name
            .find(self.name_hash(task, name), |&i| {
                let k = &slab[i as usize];
                &*k.task == task && &*k.name == name
            })
            .map(|&i| i as usize)
    }

    /// Keeps a done job's result until `finished_at + keep_ms`, replacing an older outcome
    /// of the same (task, name). `keep_ms` is the server's one setting.
    pub fn insert(
        &mut self,
        id: JobId,
        (task, name): (Arc<str>, Arc<str>),
        result: Bytes,
        attempts: u32,
        finished_at: Millis,
        keep_ms: Millis,
    ) {
        self.keep_ms = keep_ms;
        if let Some(i) = self.slot_by_name(&task, &name) {
            self.remove_slot(i);
        }
        if let Some(i) = self.slot_by_id(id) {
            self.remove_slot(i);
        }
        let slot = self.slab.len() as u32;
        self.bytes += result.len();
        let (ih, nh) = (self.id_hash(id), self.name_hash(&task, &name));
        self.slab.push(Kept {
            id,
            task,
            name,
            result,
            attempts,
            finished_at,
        });
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.by_id
            .insert_unique(ih, slot, |&i| hasher.hash_one(slab[i as usize].id));
        self.by_name.insert_unique(nh, slot, |&i| {
            let k = &slab[i as usize];
            hasher.hash_one((&*k.task, &*k.name))
        });
        self.expiry
            .push_back((finished_at.saturating_add(keep_ms), id));
    }

    /// Removes slab slot `i`, moving the last entry into it.
    fn remove_slot(&mut self, i: usize) {
        let (ih, nh) = {
            let k = &self.slab[i];
            (self.id_hash(k.id), self.name_hash(&k.task, &k.name))
        };
        let ix = i as u32;
        self.bytes -= self.slab[i].result.len();
        if let Ok(e) = self.by_id.find_entry(ih, |&s| s == ix) {
            e.remove();
        }
        if let Ok(e) = self.by_name.find_entry(nh, |&s| s == ix) {
            e.remove();
        }
        let last = self.slab.len() - 1;
        if i != last {
            let (ih, nh) = {
                let k = &self.slab[last];
                (self.id_hash(k.id), self.name_hash(&k.task, &k.name))
            };
            let lx = last as u32;
            if let Some(s) = self.by_id.find_mut(ih, |&s| s == lx) {
                *s = ix;
            }
            if let Some(s) = self.by_name.find_mut(nh, |&s| s == lx) {
                *s = ix;
            }
        }
        self.slab.swap_remove(i);
    }

    /// Drops every outcome expired at `now`; how many.
    pub fn purge(&mut self, now: Millis) -> usize {
        let mut n = 0;
        while let Some(&(at, id)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            // An outcome replaced meanwhile has a later entry of its own.
            if let Some(i) = self.slot_by_id(id) {
                if self.slab[i].finished_at.saturating_add(self.keep_ms) <= now {
                    self.remove_slot(i);
                    n += 1;
                }
            }
        }
        n
    }

    /// Lets the oldest outcomes go before their time until the results kept hold at most
    /// `max_bytes` (the payload budget, `serve --payload-memory`); how many went.
    pub fn trim(&mut self, max_bytes: usize) -> usize {
        let mut n = 0;
        while self.bytes > max_bytes {
            let Some((at, id)) = self.expiry.pop_front() else {
                break;
            };
            // An entry of an outcome replaced since is stale: the outcome has a later one.
            if let Some(i) = self.slot_by_id(id) {
                if self.slab[i].finished_at.saturating_add(self.keep_ms) == at {
                    self.remove_slot(i);
                    n += 1;
                }
            }
        }
        n
    }

    /// Bytes of results kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many outcomes are kept.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// A kept outcome still valid at `now`, as a done job.
    pub fn get(&self, key: &JobKey, now: Millis) -> Option<JobView> {
        let i = match key {
            JobKey::Id(id) => self.slot_by_id(*id)?,
            JobKey::Name { task, name } => self.slot_by_name(task, name)?,
        };
        let k = &self.slab[i];
        if k.finished_at.saturating_add(self.keep_ms) <= now {
            return None;
        }
        Some(JobView {
            record: JobRecord {
                id: k.id,
                task: k.task.to_string(),
                name: k.name.to_string(),
                attempts: k.attempts,
                ..JobRecord::default()
            },
            state: JobState::Done,
            lease: None,
            result: Some(k.result.clone()),
            finished_at: Some(k.finished_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> JobKey {
        JobKey::Name {
            task: "t".into(),
            name: n.into(),
        }
    }

    #[test]
    fn past_the_byte_cap_the_oldest_go_first() {
        let mut k = KeptResults::default();
        let t = |n: &str| (Arc::<str>::from("t"), Arc::<str>::from(n));
        for (i, n) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let r = Bytes::from(vec![b'x'; 100]);
            k.insert(i as JobId + 1, t(n), r, 0, 1_000 + i as Millis, 60_000);
        }
        // "a" again: a newer outcome, its old FIFO entry stale.
        k.insert(5, t("a"), Bytes::from(vec![b'y'; 100]), 0, 2_000, 60_000);
        assert_eq!(k.bytes(), 400);
        assert_eq!(k.trim(250), 2, "b and c go; a's stale entry is skipped");
        assert_eq!(k.bytes(), 200);
        assert!(k.get(&key("b"), 2_000).is_none() && k.get(&key("c"), 2_000).is_none());
        assert!(k.get(&key("d"), 2_000).is_some() && k.get(&key("a"), 2_000).is_some());
        assert_eq!(k.trim(1_000), 0);
        k.purge(100_000);
        assert_eq!((k.len(), k.bytes()), (0, 0));
    }

    #[test]
    fn kept_until_expiry_then_purged_and_replaced_by_a_later_run() {
        let mut k = KeptResults::default();
        k.insert(
            1,
            ("t".into(), "a".into()),
            Bytes::from_static(b"r1"),
            2,
            100,
            50,
        );
        let v = k.get(&key("a"), 120).unwrap();
        assert_eq!((v.state, v.record.attempts), (JobState::Done, 2));
        assert_eq!(v.result.as_deref(), Some(&b"r1"[..]));
        assert_eq!(k.get(&JobKey::Id(1), 149).unwrap().finished_at, Some(100));
        k.insert(
            2,
            ("t".into(), "a".into()),
            Bytes::from_static(b"r2"),
            0,
            140,
            50,
        );
        assert_eq!(k.len(), 1);
        assert!(k.get(&JobKey::Id(1), 141).is_none());
        assert_eq!(k.purge(189), 0);
        assert!(k.get(&key("a"), 190).is_none());
        assert_eq!(k.purge(190), 1);
        assert!(k.is_empty());
    }

    #[test]
    fn indexes_follow_entries_moved_by_removals() {
        let mut k = KeptResults::default();
        for i in 0..100u64 {
            let name: Arc<str> = format!("n{i}").into();
            let r = Bytes::from(i.to_string());
            k.insert(i, ("t".into(), name), r, 0, i as Millis, 1000);
        }
        // Replace every third (moves slots around), then expire the first half.
        for i in (0..100u64).step_by(3) {
            let name: Arc<str> = format!("n{i}").into();
            k.insert(
                1000 + i,
                ("t".into(), name),
                Bytes::from("new"),
                1,
                2000,
                1000,
            );
        }
        assert_eq!(k.purge(1049), 33);
        for i in 0..100u64 {
            let v = k.get(&key(&format!("n{i}")), 1049);
            match (i % 3, i < 50) {
                (0, _) => {
                    let v = v.unwrap();
                    assert_eq!(
                        (v.record.id, v.result.unwrap()),
                        (1000 + i, Bytes::from("new"))
                    );
                    assert!(k.get(&JobKey::Id(1000 + i), 1049).is_some());
                }
                (_, true) => assert!(v.is_none(), "{i} expired"),
                (_, false) => {
                    assert_eq!(v.unwrap().result.unwrap(), Bytes::from(i.to_string()));
                    assert_eq!(k.get(&JobKey::Id(i), 1049).unwrap().record.id, i);
                }
            }
        }
        assert_eq!(k.len(), 100 - 33);
    }

    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: usize = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    /// `cargo test --release --lib kept::tests::memory -- --ignored --nocapture`: the RSS
    /// 100,000 kept results of 64-byte results and 10-byte names cost beyond their bytes.
    #[test]
    #[ignore]
    fn memory_per_kept_result() {
        const N: usize = 100_000;
        const RESULT: usize = 64;
        let task: Arc<str> = "task".into();
        let results: Vec<Bytes> = (0..N).map(|_| Bytes::from(vec![7u8; RESULT])).collect();
        let before = rss_bytes();
        let mut k = KeptResults::default();
        for (i, r) in results.into_iter().enumerate() {
            let name: Arc<str> = format!("job-{i:06}").into();
            k.insert(i as JobId, (task.clone(), name), r, 0, 1, 3_600_000);
        }
        let after = rss_bytes();
        let per = (after - before) as f64 / N as f64;
        println!(
            "{N} kept results: {per:.0} B each beyond the {RESULT} B results (names of 10 B included)"
        );
        assert_eq!(k.len(), N);
    }
}
