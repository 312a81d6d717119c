//! Kept results (`serve --keep-results`): a finished job's outcome stays readable for a
//! while after the job left the core. Pure; the actor owns one and purges it as time passes.
//!
//! Cost: the result bytes plus one entry in each of three maps (by id, by (task, name),
//! by expiry); expiry is an ordered set, so purging costs O(expired), never a scan.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::job::{JobId, JobKey, JobRecord, JobState, JobView, Millis};

struct Kept {
    task: Arc<str>,
    name: Arc<str>,
    result: Bytes,
    attempts: u32,
    finished_at: Millis,
    expires_at: Millis,
}

/// Finished jobs' outcomes until they expire.
#[derive(Default)]
pub struct KeptResults {
    by_id: HashMap<JobId, Kept>,
    by_name: HashMap<(Arc<str>, Arc<str>), JobId>,
    by_expiry: BTreeSet<(Millis, JobId)>,
}

impl KeptResults {
    /// Keeps a done job's result until `finished_at + keep_ms`, replacing an older outcome
    /// of the same (task, name).
    pub fn insert(
        &mut self,
        id: JobId,
        (task, name): (Arc<str>, Arc<str>),
        result: Bytes,
        attempts: u32,
        finished_at: Millis,
        keep_ms: Millis,
    ) {
        if let Some(old) = self.by_name.get(&(task.clone(), name.clone())).copied() {
            self.remove(old);
        }
        let expires_at = finished_at.saturating_add(keep_ms);
        self.by_name.insert((task.clone(), name.clone()), id);
        self.by_expiry.insert((expires_at, id));
        self.by_id.insert(
            id,
            Kept {
                task,
                name,
                result,
                attempts,
                finished_at,
                expires_at,
            },
        );
    }

    fn remove(&mut self, id: JobId) {
        if let Some(k) = self.by_id.remove(&id) {
            self.by_name.remove(&(k.task, k.name));
            self.by_expiry.remove(&(k.expires_at, id));
        }
    }

    /// Drops every outcome expired at `now`; how many.
    pub fn purge(&mut self, now: Millis) -> usize {
        let mut n = 0;
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.remove(id);
            n += 1;
        }
        n
    }

    /// How many outcomes are kept.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// A kept outcome still valid at `now`, as a done job.
    pub fn get(&self, key: &JobKey, now: Millis) -> Option<JobView> {
        let id = match key {
            JobKey::Id(id) => *id,
            JobKey::Name { task, name } => *self
                .by_name
                .get(&(Arc::from(task.as_str()), Arc::from(name.as_str())))?,
        };
        let k = self.by_id.get(&id).filter(|k| k.expires_at > now)?;
        Some(JobView {
            record: JobRecord {
                id,
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
