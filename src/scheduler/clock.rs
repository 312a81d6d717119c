//! Wall-clock milliseconds derived from tokio's monotonic clock.
//!
//! Reading time through tokio keeps the actor's timers testable with `tokio::time::pause`,
//! and a jump of the system clock cannot make due jobs fire early or late in a burst.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::job::Millis;

/// Maps tokio instants to unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_ms: Millis,
    base: Instant,
    /// Real time (not a test's paused clock): the actor may wake on a thread of its own.
    real: bool,
}

impl Clock {
    /// A clock anchored at the current system time.
    pub fn system() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = Instant::now();
        // Anchored on the millisecond boundary itself, so the clock reads `t` from the moment
        // the system clock does (not up to 1 ms after).
        let sub_ms = Duration::from_nanos(u64::from(since_epoch.subsec_nanos() % 1_000_000));
        Clock {
            base_ms: since_epoch.as_millis() as Millis,
            base: now.checked_sub(sub_ms).unwrap_or(now),
            real: true,
        }
    }

    /// A clock reading `ms` now (tests).
    pub fn anchored(ms: Millis) -> Self {
        Clock {
            base_ms: ms,
            base: Instant::now(),
            real: false,
        }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> Millis {
        self.base_ms + self.base.elapsed().as_millis() as Millis
    }

    /// True for [`Clock::system`]: time is not a test's to stop.
    pub(crate) fn is_real(&self) -> bool {
        self.real
    }

    /// The tokio instant at which the clock reads `ms`.
    pub(crate) fn instant_at(&self, ms: Millis) -> Instant {
        let delta = ms - self.base_ms;
        if delta <= 0 {
            self.base
        } else {
            self.base + Duration::from_millis(delta as u64)
        }
    }
}

/// Sleeps until `at`, or for ever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
