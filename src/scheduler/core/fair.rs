//! Fairness between job keys: within a task and a priority level, ready jobs of different
//! keys are handed out round-robin by key, so a key with a million queued jobs does not
//! delay a key with ten. A task's `ready` set keeps the global order (priority, sched_at,
//! id) for listing and status; this index exists only while the task has keyed ready jobs
//! or per-key limits, so tasks without keys pay nothing.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::keys::KeyId;
use super::ReadyKey;

/// A key's place in the rotation: its head job's priority, then its turn.
type Turn = (Reverse<i32>, u64, KeyId);

/// Per-key queues of one task's ready jobs and the rotation between them.
#[derive(Debug, Default)]
pub(super) struct Fair {
    queues: HashMap<KeyId, BTreeSet<ReadyKey>>,
    /// Keys with ready jobs that may be served, in the order they will be.
    turns: BTreeSet<Turn>,
    /// Each key's entry in `turns`; absent for a parked key.
    turn_of: HashMap<KeyId, Turn>,
    /// Keys held back by a per-key limit (they keep their queue, not their turn).
    parked: HashSet<KeyId>,
    next_turn: u64,
}

/// What the dispatcher thinks of a key it is about to serve.
pub(super) enum Verdict {
    /// Serve it.
    Go,
    /// Hold it back until it is unparked (a per-key limit).
    Park,
}

impl Fair {
    /// Adds a ready job of `key`.
    pub fn insert(&mut self, key: KeyId, rk: ReadyKey) {
        let q = self.queues.entry(key).or_default();
        let was_first = q.first().copied();
        q.insert(rk);
        if self.parked.contains(&key) {
            return;
        }
        match self.turn_of.get(&key).copied() {
            None => {
                let turn = (rk.0, self.next_turn, key);
                self.next_turn += 1;
                self.turns.insert(turn);
                self.turn_of.insert(key, turn);
            }
            Some(turn) if was_first.is_some_and(|f| rk < f) && rk.0 != turn.0 => {
                self.retarget(key, turn, rk.0);
            }
            Some(_) => {}
        }
    }

    /// Takes a ready job of `key` out (removed, or handed out by the caller).
    pub fn remove(&mut self, key: KeyId, rk: ReadyKey) {
        let Some(q) = self.queues.get_mut(&key) else {
            return;
        };
        q.remove(&rk);
        match q.first().copied() {
            None => {
                self.queues.remove(&key);
                self.parked.remove(&key);
                if let Some(turn) = self.turn_of.remove(&key) {
                    self.turns.remove(&turn);
                }
            }
            Some(first) => {
                if let Some(turn) = self.turn_of.get(&key).copied() {
                    if turn.0 != first.0 {
                        self.retarget(key, turn, first.0);
                    }
                }
            }
        }
    }

    fn retarget(&mut self, key: KeyId, turn: Turn, priority: Reverse<i32>) {
        self.turns.remove(&turn);
        let new = (priority, turn.1, key);
        self.turns.insert(new);
        self.turn_of.insert(key, new);
    }

    /// The next job to hand out: the head of the first key in the rotation that `verdict`
    /// lets go (keys it refuses are parked on the way). The key moves to the back of its
    /// priority level. The job is still queued; the caller removes it.
    pub fn next(&mut self, mut verdict: impl FnMut(KeyId) -> Verdict) -> Option<(KeyId, ReadyKey)> {
        while let Some(turn) = self.turns.first().copied() {
            let key = turn.2;
            match verdict(key) {
                Verdict::Park => {
                    self.turns.remove(&turn);
                    self.turn_of.remove(&key);
                    self.parked.insert(key);
                }
                Verdict::Go => {
                    let rk = *self.queues[&key].first().expect("a key in turns has jobs");
                    self.turns.remove(&turn);
                    let back = (turn.0, self.next_turn, key);
                    self.next_turn += 1;
                    self.turns.insert(back);
                    self.turn_of.insert(key, back);
                    return Some((key, rk));
                }
            }
        }
        None
    }

    /// Lets a parked key be served again (at the back of its level).
    pub(crate) fn unpark(&mut self, key: KeyId) {
        if !self.parked.remove(&key) {
            return;
        }
        let first = *self.queues[&key].first().expect("a parked key has jobs");
        let turn = (first.0, self.next_turn, key);
        self.next_turn += 1;
        self.turns.insert(turn);
        self.turn_of.insert(key, turn);
    }

    /// Unparks every key (limits changed).
    pub(crate) fn unpark_all(&mut self) {
        let keys: Vec<KeyId> = self.parked.iter().copied().collect();
        for k in keys {
            self.unpark(k);
        }
    }

    /// Jobs of parked keys: ready but held back by a per-key limit.
    pub(crate) fn parked_jobs(&self) -> u64 {
        self.parked
            .iter()
            .map(|k| self.queues[k].len() as u64)
            .sum()
    }

    /// Ready jobs indexed.
    pub fn len(&self) -> usize {
        self.queues.values().map(BTreeSet::len).sum()
    }

    /// Whether `rk` is queued under `key`.
    pub fn contains(&self, key: KeyId, rk: &ReadyKey) -> bool {
        self.queues.get(&key).is_some_and(|q| q.contains(rk))
    }

    /// Every key with jobs is either in the rotation (at its head's priority) or parked.
    pub fn check(&self) -> Result<(), String> {
        for (key, q) in &self.queues {
            let first = q
                .first()
                .ok_or_else(|| format!("key {key:?}: empty queue kept"))?;
            match (self.turn_of.get(key), self.parked.contains(key)) {
                (Some(t), false) if t.0 == first.0 && self.turns.contains(t) => {}
                (None, true) => {}
                other => return Err(format!("key {key:?}: rotation entry {other:?}")),
            }
        }
        if self.turns.len() != self.turn_of.len() {
            return Err("turns and turn_of differ".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rk(prio: i32, at: i64, id: u64) -> ReadyKey {
        (Reverse(prio), at, id)
    }

    #[test]
    fn keys_take_turns_within_a_priority_level() {
        let mut f = Fair::default();
        let (a, b) = (KeyId(1), KeyId(2));
        for i in 0..100 {
            f.insert(a, rk(0, i, i as u64));
        }
        for i in 0..3 {
            f.insert(b, rk(0, 1_000 + i, 1_000 + i as u64));
        }
        let mut order = Vec::new();
        while let Some((k, r)) = f.next(|_| Verdict::Go) {
            f.remove(k, r);
            order.push(k);
            f.check().unwrap();
        }
        assert_eq!(&order[..6], &[a, b, a, b, a, b]);
        assert_eq!(order.len(), 103);
    }

    #[test]
    fn higher_priority_first_and_parked_keys_wait() {
        let mut f = Fair::default();
        let (a, b) = (KeyId(1), KeyId(2));
        f.insert(a, rk(0, 0, 1));
        f.insert(b, rk(5, 10, 2));
        f.insert(b, rk(0, 11, 3));
        let (k, r) = f.next(|_| Verdict::Go).unwrap();
        assert_eq!((k, r.2), (b, 2));
        f.remove(k, r);
        // b is held back: a goes, then nothing (b parked on the way).
        let hold_b = |k| if k == b { Verdict::Park } else { Verdict::Go };
        let (k, r) = f.next(hold_b).unwrap();
        assert_eq!(k, a);
        f.remove(k, r);
        assert!(f.next(hold_b).is_none());
        assert!(
            f.next(|_| Verdict::Go).is_none(),
            "a parked key is not served"
        );
        assert_eq!(f.parked_jobs(), 1);
        f.unpark(b);
        f.check().unwrap();
        assert_eq!(f.next(|_| Verdict::Go).unwrap().1 .2, 3);
    }
}
