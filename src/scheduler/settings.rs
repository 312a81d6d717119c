//! Run-time settings (Periodic's CONFIG_GET / CONFIG_SET keys), changed over any face and
//! persisted in the store. A value set at run time wins over the command-line default.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::Error;

/// Every key, its default and what it means. Values are integers (seconds unless noted).
pub const KEYS: &[(&str, i64, &str)] = &[
    ("timeout", 600, "lease length of jobs that set none"),
    (
        "lock-timeout",
        300,
        "lock entries older than this are dropped",
    ),
    (
        "assign-wait",
        2,
        "kept for Periodic compatibility; no effect",
    ),
    (
        "max-batch-size",
        500,
        "kept for Periodic compatibility; no effect",
    ),
    (
        "keepalive",
        300,
        "kept for Periodic compatibility; no effect",
    ),
    (
        "max-pool-size",
        10,
        "kept for Periodic compatibility; no effect",
    ),
    (
        "run-job-aggressive",
        0,
        "kept for Periodic compatibility; no effect",
    ),
];

/// Current values.
#[derive(Debug)]
pub struct Settings {
    values: BTreeMap<String, i64>,
    /// Values before anything stored: what a key not in the store goes back to on resync.
    defaults: BTreeMap<String, i64>,
    /// `timeout` in ms, kept beside `values` because every submit that sets no lease length
    /// reads it (a string-keyed map lookup cost ~350 instructions a submit), and shared with
    /// readers outside the actor.
    timeout: TimeoutSetting,
}

/// The `timeout` setting in ms as the actor last set it, readable without a round trip to
/// the actor, on the submit path where one would cost a wake-up: a cluster's submits and
/// loads pass it for the jobs that set no lease length, used while the database stores no
/// setting.
#[derive(Debug, Clone, Default)]
pub struct TimeoutSetting(Arc<AtomicU32>);

impl TimeoutSetting {
    /// The lease length, in ms, of a job that asks for `spec_ms`: its own, or the setting
    /// when it set none (0).
    pub(crate) fn or_setting(&self, spec_ms: u32) -> u32 {
        if spec_ms == 0 {
            self.ms()
        } else {
            spec_ms
        }
    }

    /// The setting itself, in ms.
    pub(crate) fn ms(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The lease length, in ms, that a `timeout` setting of `secs` seconds gives.
fn timeout_ms_of(secs: i64) -> u32 {
    secs.saturating_mul(1000).clamp(0, u32::MAX as i64) as u32
}

impl Settings {
    /// Defaults, with `timeout` from the server's flag, then values loaded from the store.
    pub fn new(default_timeout_s: i64, stored: Vec<(String, i64)>) -> Self {
        let mut values: BTreeMap<String, i64> =
            KEYS.iter().map(|(k, v, _)| (k.to_string(), *v)).collect();
        values.insert("timeout".into(), default_timeout_s);
        let mut s = Settings {
            defaults: values.clone(),
            values,
            timeout: TimeoutSetting::default(),
        };
        s.resync(stored);
        s
    }

    /// Makes the values those of the store (after a failed commit), defaults for keys it lacks.
    pub fn resync(&mut self, stored: Vec<(String, i64)>) {
        self.values = self.defaults.clone();
        for (k, v) in stored {
            if self.values.contains_key(&k) {
                self.values.insert(k, v);
            }
        }
        self.timeout_changed();
    }

    /// One value, or every value when `key` is empty.
    pub fn get(&self, key: &str) -> Result<BTreeMap<String, i64>, Error> {
        if key.is_empty() {
            return Ok(self.values.clone());
        }
        let v = self
            .values
            .get(key)
            .ok_or_else(|| Error::invalid("key", format!("{key:?} is not a setting")))?;
        Ok(BTreeMap::from([(key.to_string(), *v)]))
    }

    /// Checks and stores a value.
    pub fn set(&mut self, key: &str, value: i64) -> Result<(), Error> {
        if !self.values.contains_key(key) {
            return Err(Error::invalid("key", format!("{key:?} is not a setting")));
        }
        if value < 0 || (matches!(key, "timeout" | "lock-timeout") && value == 0) {
            return Err(Error::invalid(
                "value",
                format!("{value} is out of range for {key}"),
            ));
        }
        if value > i32::MAX as i64 {
            return Err(Error::invalid("value", format!("{value} is too large")));
        }
        self.values.insert(key.to_string(), value);
        self.timeout_changed();
        Ok(())
    }

    /// The lease length, in ms, of a job that asks for `spec_ms` (0: none of its own).
    pub(crate) fn lease_ms(&self, spec_ms: u32) -> u32 {
        self.timeout.or_setting(spec_ms)
    }

    /// Stored rows with no timeout of their own take this node's setting, whichever way they
    /// come into a core: read at start-up, claimed, run as a part, loaded from a dump, or
    /// reloaded after a failed commit. Every submit stores a lease length now, but rows an
    /// earlier version of a cluster node stored have none (it left that to the claiming
    /// node), and a job leased with none would expire at once: retried at once and expired
    /// again, it went dead within milliseconds after a resync (seen in
    /// `tests/cluster_faults.rs`), or after a single server opened a cluster's database.
    pub(crate) fn fill_stored_timeouts<'a>(
        &self,
        records: impl IntoIterator<Item = &'a mut crate::scheduler::job::JobRecord>,
    ) {
        for r in records {
            r.timeout_ms = self.lease_ms(r.timeout_ms);
        }
    }

    /// The `timeout` setting, published to readers outside the actor as it changes.
    pub(crate) fn timeout_setting(&self) -> TimeoutSetting {
        self.timeout.clone()
    }

    fn timeout_changed(&mut self) {
        let ms = timeout_ms_of(self.values["timeout"]);
        self.timeout.0.store(ms, Ordering::Relaxed);
    }

    /// Lock timeout in ms.
    pub fn lock_timeout_ms(&self) -> i64 {
        self.values["lock-timeout"] * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_lease_length_follows_every_change_of_timeout() {
        let mut s = Settings::new(600, vec![("timeout".into(), 30)]);
        // Read outside the actor (a cluster's submits), it follows the same changes.
        let published = s.timeout_setting();
        assert_eq!(s.lease_ms(0), 30_000, "the stored value wins");
        s.set("timeout", 45).unwrap();
        assert_eq!(s.lease_ms(0), 45_000);
        assert_eq!(published.or_setting(0), 45_000);
        assert!(s.set("timeout", 0).is_err());
        assert_eq!(s.lease_ms(0), 45_000, "a refused value changes nothing");
        s.resync(vec![]);
        assert_eq!(s.lease_ms(0), 600_000, "back to the flag's default");
        assert_eq!(published.or_setting(0), 600_000);
        s.set("lock-timeout", 7).unwrap();
        assert_eq!(s.lease_ms(0), 600_000);
        assert_eq!(s.lease_ms(5), 5, "a job's own lease length");
        assert_eq!(published.or_setting(5), 5);
    }
}
