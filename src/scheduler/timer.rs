//! The actor's wake-up timer.
//!
//! tokio's timer wheel ticks in whole milliseconds and rounds a deadline up to the next
//! tick, so a job due at `t` was handed out 1–2 ms after `t` before anything else happened.
//! In real time the actor waits on a thread of its own instead, which sleeps to the
//! deadline with the kernel's high-resolution timers; under a test's paused clock it uses
//! tokio's timer, which that clock drives.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant as StdInstant;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Wakes the actor at its next deadline.
pub enum WakeTimer {
    /// tokio's timer (paused-clock tests).
    Tokio,
    /// A thread sleeping to the deadline (production).
    Thread(Precise),
}

impl WakeTimer {
    /// A precise timer when `precise`, else tokio's.
    pub fn new(precise: bool) -> Self {
        if precise {
            WakeTimer::Thread(Precise::start())
        } else {
            WakeTimer::Tokio
        }
    }

    /// Resolves at `at`, or never when there is nothing to wait for. Cancel-safe: dropping
    /// it leaves the deadline set, and a wake-up that finds nobody waiting is kept for the
    /// next call (the caller then just looks at its clock once more).
    pub async fn sleep_until(&self, at: Option<Instant>) {
        match self {
            WakeTimer::Tokio => super::clock::sleep_until_opt(at).await,
            WakeTimer::Thread(p) => p.sleep_until(at.map(Instant::into_std)).await,
        }
    }
}

struct State {
    deadline: Option<StdInstant>,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    fired: Notify,
}

/// A timer thread; stops when dropped.
pub struct Precise {
    shared: Arc<Shared>,
}

impl Precise {
    fn start() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                deadline: None,
                stop: false,
            }),
            changed: Condvar::new(),
            fired: Notify::new(),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("taskhive-timer".into())
            .spawn(move || run(&s))
            .expect("spawn the timer thread");
        Precise { shared }
    }

    async fn sleep_until(&self, at: Option<StdInstant>) {
        {
            let mut st = self.shared.state.lock().expect("timer state");
            if st.deadline != at {
                st.deadline = at;
                self.shared.changed.notify_one();
            }
        }
        self.shared.fired.notified().await;
    }
}

impl Drop for Precise {
    fn drop(&mut self) {
        self.shared.state.lock().expect("timer state").stop = true;
        self.shared.changed.notify_one();
    }
}

fn run(shared: &Shared) {
    // The kernel may fire a sleeping thread's timer up to its "timer slack" late (50 µs by
    // default) to batch wake-ups; this thread exists to be on time, so it asks for none.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only sets this thread's slack; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let mut st = shared.state.lock().expect("timer state");
    loop {
        if st.stop {
            return;
        }
        st = match st.deadline {
            None => shared.changed.wait(st).expect("timer state"),
            Some(d) => {
                let now = StdInstant::now();
                if now >= d {
                    st.deadline = None;
                    shared.fired.notify_one();
                    continue;
                }
                shared
                    .changed
                    .wait_timeout(st, d - now)
                    .expect("timer state")
                    .0
            }
        };
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
    async fn a_later_deadline_replaces_an_earlier_one_and_none_waits() {
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
}
