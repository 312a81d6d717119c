//! The actor's wake-up timer.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline up to the next
//! tick, so a job due at `t` was handed out 1–2 ms after `t` before anything else happened.
//! In real time on Linux the actor waits on a `timerfd` instead: a kernel high-resolution
//! timer registered with tokio's reactor, so the worker thread parked in `epoll_wait` wakes
//! at the deadline and runs the actor itself. (An earlier version slept on a thread of its
//! own, which then had to wake a tokio worker: two thread wake-ups per deadline instead of
//! one, and a condition-variable signal each time the deadline moved.) Under a test's
//! paused clock, and off Linux, it uses tokio's timer.

use tokio::time::Instant;

/// Wakes the actor at its next deadline.
pub enum WakeTimer {
    /// tokio's timer (paused-clock tests; other systems).
    Tokio,
    /// A timerfd in tokio's reactor (production on Linux).
    #[cfg(target_os = "linux")]
    Fd(fd::Precise),
}

impl WakeTimer {
    /// A precise timer when `precise` (and the system has one), else tokio's. Needs a tokio
    /// runtime with I/O enabled.
    pub fn new(precise: bool) -> Self {
        #[cfg(target_os = "linux")]
        if precise {
            return WakeTimer::Fd(fd::Precise::new());
        }
        let _ = precise;
        WakeTimer::Tokio
    }

    /// Resolves at `at` or before, never after; never when nothing is asked for and nothing
    /// was asked for since the last wake-up. The caller must take an early wake-up in its
    /// stride (look at its clock, ask again): the timerfd may keep an earlier deadline
    /// rather than re-arm (see `fd::Precise::sleep_until`). Cancel-safe: dropping it leaves
    /// the deadline set, and a wake-up that finds nobody waiting is kept for the next call.
    pub async fn sleep_until(&self, at: Option<Instant>) {
        match self {
            WakeTimer::Tokio => super::clock::sleep_until_opt(at).await,
            #[cfg(target_os = "linux")]
            WakeTimer::Fd(p) => p.sleep_until(at.map(Instant::into_std)).await,
        }
    }
}

#[cfg(target_os = "linux")]
mod fd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant as StdInstant};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A one-shot `CLOCK_MONOTONIC` timerfd (the clock `Instant` reads on Linux).
    pub struct Precise {
        fd: AsyncFd<OwnedFd>,
        /// The deadline the fd is armed for; `None` once it fired or when disarmed.
        armed: Mutex<Option<StdInstant>>,
        /// `timerfd_settime` calls so far (tests count them).
        arms: AtomicU64,
    }

    impl Precise {
        pub(super) fn new() -> Self {
            // SAFETY: timerfd_create takes no pointers; the result is checked below.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            assert!(raw >= 0, "timerfd_create: {}", io::Error::last_os_error());
            // SAFETY: `raw` is a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: the `OwnedFd` moves into the `AsyncFd` and stays open, the same
            // descriptor, until the `AsyncFd` drops it.
            let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
                .expect("register the timerfd with tokio's reactor");
            Precise {
                fd,
                armed: Mutex::new(None),
                arms: AtomicU64::new(0),
            }
        }

        /// Arms the fd for `at` (at once when it has passed) or disarms it. Re-arming drops
        /// an expiry not yet read.
        fn arm(&self, at: Option<StdInstant>) {
            let left = at.map(|d| {
                // A zero value would disarm: a deadline already passed fires in 1 ns.
                d.saturating_duration_since(StdInstant::now())
                    .max(Duration::from_nanos(1))
            });
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let value = left.map_or(zero, |l| libc::timespec {
                tv_sec: l.as_secs() as libc::time_t,
                tv_nsec: l.subsec_nanos() as libc::c_long,
            });
            let spec = libc::itimerspec {
                it_interval: zero,
                it_value: value,
            };
            // SAFETY: `spec` lives across the call; a null old value is allowed.
            let r = unsafe {
                libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            assert!(r == 0, "timerfd_settime: {}", io::Error::last_os_error());
            self.arms.fetch_add(1, Ordering::Relaxed);
        }

        /// `timerfd_settime` calls so far.
        #[cfg(test)]
        pub(super) fn arms(&self) -> u64 {
            self.arms.load(Ordering::Relaxed)
        }

        pub(super) async fn sleep_until(&self, at: Option<StdInstant>) {
            let waiting = {
                let mut armed = self.armed.lock().expect("timer state");
                match (*armed, at) {
                    // Re-armed only to fire sooner. A later deadline, or none, keeps the
                    // armed one: most moves are of that kind (a RunJob's lease deadline
                    // set, then gone when it ends; the next one later still), and each
                    // re-arm is a syscall on the actor's path. The price is one early
                    // wake-up, when the old deadline passes, after which the fd is armed
                    // for what is due then.
                    (None, Some(t)) => {
                        *armed = Some(t);
                        self.arm(Some(t));
                    }
                    (Some(a), Some(t)) if t < a => {
                        *armed = Some(t);
                        self.arm(Some(t));
                    }
                    _ => {}
                }
                armed.is_some()
            };
            if !waiting {
                return std::future::pending().await;
            }
            loop {
                let mut ready = self.fd.readable().await.expect("timerfd in the reactor");
                let read = ready.try_io(|fd| {
                    let mut expiries = [0u8; 8];
                    // SAFETY: reads at most 8 bytes into the 8-byte buffer.
                    let n = unsafe {
                        libc::read(fd.as_raw_fd(), expiries.as_mut_ptr().cast(), expiries.len())
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                });
                match read {
                    Ok(Ok(())) => {
                        // Fired: the same deadline asked for again re-arms (and fires at once).
                        *self.armed.lock().expect("timer state") = None;
                        return;
                    }
                    Ok(Err(e)) => panic!("timerfd read: {e}"),
                    // Readiness left from an expiry that a re-arm dropped: wait on.
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_the_deadline_not_before_and_not_a_millisecond_late() {
        let t = WakeTimer::new(true);
        let mut late = Vec::new();
        for _ in 0..50 {
            let at = Instant::now() + Duration::from_micros(700);
            t.sleep_until(Some(at)).await;
            let now = Instant::now();
            assert!(now >= at, "woke early");
            late.push(now - at);
        }
        late.sort();
        // The median: one tokio tick would be ~1 ms.
        assert!(
            late[25] < Duration::from_micros(900),
            "median lateness {:?}",
            late[25]
        );
    }

    #[tokio::test]
    async fn a_nearer_deadline_replaces_a_farther_one_and_none_waits() {
        let t = WakeTimer::new(true);
        let start = Instant::now();
        let far = start + Duration::from_secs(3600);
        let waited =
            tokio::time::timeout(Duration::from_millis(20), t.sleep_until(Some(far))).await;
        assert!(waited.is_err(), "an hour-away deadline does not fire");
        let near = Instant::now() + Duration::from_millis(2);
        t.sleep_until(Some(near)).await;
        assert!(Instant::now() >= near);
        let none = tokio::time::timeout(Duration::from_millis(20), t.sleep_until(None)).await;
        assert!(none.is_err(), "no deadline, no wake-up");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn later_deadlines_keep_the_armed_one_and_wake_early_once() {
        let t = WakeTimer::new(true);
        let WakeTimer::Fd(p) = &t else {
            panic!("a timerfd on Linux");
        };
        let start = Instant::now();
        // Far enough that the loop below ends before it, however slow the build.
        let near = start + Duration::from_secs(1);
        // The actor waits for `near`, is interrupted, and then asks for ever later
        // deadlines, or none: none of that touches the fd.
        let _ = tokio::time::timeout(Duration::from_millis(1), t.sleep_until(Some(near))).await;
        let armed = p.arms();
        for k in 1..=50u64 {
            let later = near + Duration::from_secs(k);
            let _ = tokio::time::timeout(Duration::ZERO, t.sleep_until(Some(later))).await;
            let _ = tokio::time::timeout(Duration::ZERO, t.sleep_until(None)).await;
        }
        assert_eq!(p.arms(), armed, "later deadlines and none re-arm nothing");
        // The armed deadline still fires, early for what is asked now (and never late).
        let far = start + Duration::from_secs(3600);
        tokio::time::timeout(Duration::from_secs(5), t.sleep_until(Some(far)))
            .await
            .expect("the kept deadline wakes the waiter");
        assert!(Instant::now() >= near, "not before the armed deadline");
        // After that one early wake-up the fd holds the deadline asked for.
        let woke = tokio::time::timeout(Duration::from_millis(50), t.sleep_until(Some(far))).await;
        assert!(woke.is_err(), "an hour-away deadline does not fire");
        assert_eq!(p.arms(), armed + 1, "re-armed once, for the later deadline");
        // An earlier deadline re-arms at once and fires on time.
        let soon = Instant::now() + Duration::from_millis(2);
        t.sleep_until(Some(soon)).await;
        assert!(Instant::now() >= soon);
    }

    #[tokio::test]
    async fn an_expiry_nobody_awaited_is_kept_and_the_same_deadline_again_fires_at_once() {
        let t = WakeTimer::new(true);
        let at = Instant::now() + Duration::from_millis(1);
        // The actor starts waiting, then a command arrives and it drops the wait.
        tokio::select! {
            biased;
            _ = t.sleep_until(Some(at)) => panic!("fired before its deadline"),
            _ = std::future::ready(()) => {}
        }
        while Instant::now() < at + Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        let kept = tokio::time::timeout(Duration::from_secs(5), t.sleep_until(Some(at))).await;
        assert!(kept.is_ok(), "the expiry that fired unwatched is kept");
        let again = tokio::time::timeout(Duration::from_secs(5), t.sleep_until(Some(at))).await;
        assert!(
            again.is_ok(),
            "a passed deadline asked for again fires at once"
        );
    }
}
