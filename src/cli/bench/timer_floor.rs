//! `timer-floor`: how late this machine wakes a thread whose timer has fallen due, with no
//! server running. The `timers` scenario's lateness sits on this floor: the actor waits on a
//! timerfd too, and nothing on top of the kernel can run before its own thread does. On a
//! VM whose idle vCPU halts, the host may run that vCPU again milliseconds after its timer
//! fired (BENCHMARKS.md, "Timer maxima are the machine's"), which no server can take out.

use std::time::Duration;

use super::{hist, result, BenchArgs, BenchResult, BoxError};

/// How often the timer is armed. Due times are whole milliseconds, and the `timers`
/// scenario's 16.7k jobs a second put about 17 in each, so its actor too sleeps from one
/// millisecond to the next.
const PERIOD: Duration = Duration::from_millis(1);

/// Arms a timerfd every [`PERIOD`] for `timer_window` seconds on a thread of its own and
/// records how late each expiry was read.
pub(crate) async fn timer_floor(a: &BenchArgs) -> Result<BenchResult, BoxError> {
    // `--timer-window` is above 0 and at most a day (`parse_window`).
    let window = Duration::from_secs_f64(a.timer_window);
    tokio::task::spawn_blocking(move || floor(window)).await?
}

#[cfg(target_os = "linux")]
fn floor(window: Duration) -> Result<BenchResult, BoxError> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    // SAFETY: timerfd_create takes no pointers; the result is checked before use.
    let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if raw < 0 {
        return Err(format!("timerfd_create: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut h = hist();
    let start = monotonic_ns()?;
    let end = start + window.as_nanos() as i64;
    let period = PERIOD.as_nanos() as i64;
    let mut due = start;
    let mut n = 0u64;
    while due < end {
        due += period;
        // An absolute deadline: a preemption between reading the clock and arming the
        // timer cannot move it.
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (due / 1_000_000_000) as libc::time_t,
                tv_nsec: (due % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` lives across the call; a null old value is allowed.
        let r = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r != 0 {
            return Err(format!("timerfd_settime: {}", std::io::Error::last_os_error()).into());
        }
        let mut expiries = [0u8; 8];
        // SAFETY: reads at most 8 bytes into the 8-byte buffer; the fd blocks until expiry.
        let got = unsafe { libc::read(fd.as_raw_fd(), expiries.as_mut_ptr().cast(), 8) };
        if got != 8 {
            return Err(format!("timerfd read: {}", std::io::Error::last_os_error()).into());
        }
        let now = monotonic_ns()?;
        h.record(((now - due) / 1_000).max(1) as u64)?;
        n += 1;
        // The next deadline is a period after this wake-up, as the actor's next sleep
        // starts when it is done: a late wake-up counts once, not again for each deadline
        // it passed.
        due = due.max(now);
    }
    let took = Duration::from_nanos((monotonic_ns()? - start) as u64);
    let mut r = result("timer-floor", n, took, &h);
    r.extra
        .insert("period_us".into(), PERIOD.as_micros() as f64);
    r.extra.insert("over_2ms".into(), super::over_2ms(&h));
    Ok(r)
}

#[cfg(target_os = "linux")]
fn monotonic_ns() -> Result<i64, BoxError> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } != 0 {
        return Err(format!("clock_gettime: {}", std::io::Error::last_os_error()).into());
    }
    // CLOCK_MONOTONIC is never negative.
    Ok(Duration::new(t.tv_sec as u64, t.tv_nsec as u32).as_nanos() as i64)
}

#[cfg(not(target_os = "linux"))]
fn floor(_window: Duration) -> Result<BenchResult, BoxError> {
    Err("timer-floor reads a timerfd: it runs on Linux only".into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn one_reading_per_period_for_the_window() {
        let r = floor(Duration::from_millis(50)).unwrap();
        assert_eq!(r.scenario, "timer-floor");
        // A deadline every millisecond; each late wake-up moves the next one later.
        assert!((1..=50).contains(&r.ops), "{} readings", r.ops);
        assert!(r.seconds >= 0.05, "stopped after {} s", r.seconds);
        assert!(r.p50_us >= 1 && r.p50_us <= r.max_us, "{r:?}");
        assert_eq!(r.extra["period_us"], 1000.0);
    }
}
