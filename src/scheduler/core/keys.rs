//! Job keys (a tenant, an account, a host), interned: a job holds a 4-byte id, and each
//! distinct key's text is kept once, for as long as a job holds it.

use std::collections::HashMap;
use std::sync::Arc;

/// An interned key; [`KeyId::NONE`] is a job without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// No key.
    pub const NONE: KeyId = KeyId(0);
}

/// The interner: reference-counted so a key nobody holds any more is forgotten.
#[derive(Debug, Default)]
pub(super) struct Keys {
    ids: HashMap<Arc<str>, KeyId>,
    /// By id - 1: the text and how many jobs hold it.
    held: Vec<Option<(Arc<str>, u32)>>,
    free: Vec<u32>,
}

impl Keys {
    /// The id of `key` (empty = none), counted as held once more.
    pub fn hold(&mut self, key: &str) -> KeyId {
        if key.is_empty() {
            return KeyId::NONE;
        }
        if let Some(&id) = self.ids.get(key) {
            self.held[id.0 as usize - 1].as_mut().expect("interned").1 += 1;
            return id;
        }
        let text: Arc<str> = Arc::from(key);
        let id = match self.free.pop() {
            Some(i) => {
                self.held[i as usize - 1] = Some((text.clone(), 1));
                KeyId(i)
            }
            None => {
                self.held.push(Some((text.clone(), 1)));
                KeyId(self.held.len() as u32)
            }
        };
        self.ids.insert(text, id);
        id
    }

    /// One holder of `id` is gone.
    pub fn release(&mut self, id: KeyId) {
        if id == KeyId::NONE {
            return;
        }
        let slot = &mut self.held[id.0 as usize - 1];
        let (text, n) = slot.as_mut().expect("released key is held");
        *n -= 1;
        if *n == 0 {
            self.ids.remove(&**text);
            *slot = None;
            self.free.push(id.0);
        }
    }

    /// The key's text ("" for none).
    pub fn name(&self, id: KeyId) -> &str {
        if id == KeyId::NONE {
            return "";
        }
        self.held[id.0 as usize - 1].as_ref().map_or("", |(t, _)| t)
    }

    /// How many jobs hold `id` (invariant checks).
    pub fn holders(&self, id: KeyId) -> u32 {
        if id == KeyId::NONE {
            return 0;
        }
        self.held[id.0 as usize - 1].as_ref().map_or(0, |(_, n)| *n)
    }

    /// Distinct keys held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shared_and_forgotten() {
        let mut k = Keys::default();
        assert_eq!(k.hold(""), KeyId::NONE);
        let a = k.hold("acct-1");
        assert_eq!(k.hold("acct-1"), a);
        let b = k.hold("acct-2");
        assert_ne!(a, b);
        k.release(a);
        assert_eq!(k.name(a), "acct-1");
        k.release(a);
        assert_eq!(k.len(), 1);
        // The slot is reused.
        assert_eq!(k.hold("acct-3"), a);
        assert_eq!(k.name(a), "acct-3");
    }
}
