//! CPU that other processes took while the bench ran. A run that shares the machine with a
//! build or a test suite reports low figures as if they were the machine's (BENCHMARKS.md:
//! timer runs that overlapped a release build gave a p99 three to eight times the quiet
//! runs'); this makes such a run say so.
//!
//! Counted: the machine's user-mode CPU time (`/proc/stat`: user, nice) and its steal time
//! (a hypervisor gave these CPUs to someone else), less this process's own user time and
//! its reaped children's (the servers the `-ext`, timers and restart scenarios start and
//! stop), less the servers it drives (the processes listening on the `--gearman` addresses
//! and on `--addr`). A setup of several processes the bench does not know of, such as
//! `bench/cluster`'s other nodes, PostgreSQL and the other bench processes, shows as others'
//! CPU: the figure is then the shared machine's, not a mistake. Kernel
//! time is left out on purpose: the kernel's own threads work for the bench too (the
//! journal's commit after each fsync, the softirqs of loopback traffic), and a compiler or a
//! test suite spends most of its time in user mode.
//!
//! The counters tick 100 times a second per CPU: over half a second the figure is good to
//! about ±0.08 of a core on two CPUs, over less it says little. A scenario gets its figure
//! only when it ran at least [`MIN_WINDOW`]; the whole run always gets one.

use std::time::{Duration, Instant};

use super::unary_ext::ProcCpu;
use super::BenchResult;

/// The `extra` figure of a scenario: other processes' CPU during it, in cores.
pub const OTHERS_CORES: &str = "others_cpu_cores";

/// Other processes' CPU above this many cores makes a window's figures suspect. A quiet
/// machine gives a few hundredths; a release build beside the bench takes one to two.
pub const BUSY_ABOVE: f64 = 0.15;

/// Windows shorter than this get no figure of their own (a tick is 10 ms per CPU).
pub const MIN_WINDOW: Duration = Duration::from_millis(500);

/// The counters at one moment.
pub struct Mark {
    at: Instant,
    /// The machine's user + nice + steal time.
    machine: Duration,
    /// This process's user time and its reaped children's.
    ours: Duration,
    /// The peers' user time.
    peers: Duration,
}

/// Watches the machine and the peers a run drives.
pub struct Watch {
    peers: Vec<ProcCpu>,
}

impl Watch {
    /// A watch that also counts `peers` (processes the bench loads) as its own.
    pub fn new(peers: Vec<ProcCpu>) -> Watch {
        Watch { peers }
    }

    /// The counters now; `None` where `/proc` cannot be read (not Linux).
    pub fn mark(&self) -> Option<Mark> {
        let machine = machine_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let ours = ProcCpu::own().user_with_children().ok()?;
        // A peer gone meanwhile counts as nothing: its CPU then shows as others', which errs
        // towards warning.
        let peers = self.peers.iter().filter_map(|p| p.user().ok()).sum();
        Some(Mark {
            at: Instant::now(),
            machine,
            ours,
            peers,
        })
    }

    /// Other processes' CPU since `m`, in cores, and the window it was measured over.
    pub fn since(&self, m: &Mark) -> Option<(f64, Duration)> {
        let now = self.mark()?;
        let window = now.at.duration_since(m.at);
        let others = (now.machine.saturating_sub(m.machine))
            .saturating_sub(now.ours.saturating_sub(m.ours))
            .saturating_sub(now.peers.saturating_sub(m.peers));
        Some((
            others.as_secs_f64() / window.as_secs_f64().max(1e-9),
            window,
        ))
    }
}

/// A scenario's figure of other processes' CPU, when over [`BUSY_ABOVE`] (it has one only
/// when its window was long enough to tell).
pub fn busy_cores(r: &BenchResult) -> Option<f64> {
    r.extra
        .get(OTHERS_CORES)
        .copied()
        .filter(|&cores| cores > BUSY_ABOVE)
}

/// Whether `cores` of other processes' CPU over `window` make its figures suspect.
pub fn busy(cores: f64, window: Duration) -> bool {
    window >= MIN_WINDOW && cores > BUSY_ABOVE
}

/// The warning for a window whose figures are suspect.
pub fn warning(what: &str, cores: f64, window: Duration) -> String {
    format!(
        "! other processes took {cores:.2} of a core during {what} ({:.1} s): its figures are \
         low by up to that share; run again on a quiet machine",
        window.as_secs_f64()
    )
}

/// user + nice + steal of the first line of `/proc/stat` (`cpu  user nice system idle
/// iowait irq softirq steal ...`, in clock ticks).
fn machine_time(stat: &str) -> Option<Duration> {
    let line = stat.lines().next()?;
    let mut f = line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
    let ticks = v.first()? + v.get(1)? + v.get(7).copied().unwrap_or(0);
    Some(super::unary_ext::ticks(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_time_is_user_nice_and_steal() {
        // user 100, nice 20, system 300, idle 4000, iowait 5, irq 0, softirq 7, steal 3.
        let stat = "cpu  100 20 300 4000 5 0 7 3 0 0\ncpu0 50 10 150 2000 2 0 3 1 0 0\n";
        assert_eq!(
            machine_time(stat),
            Some(super::super::unary_ext::ticks(123))
        );
        assert_eq!(machine_time("intr 1 2 3\n"), None);
        assert_eq!(machine_time(""), None);
    }

    #[test]
    fn only_long_windows_over_the_threshold_are_busy() {
        assert!(busy(0.5, Duration::from_secs(2)));
        assert!(!busy(0.1, Duration::from_secs(2)));
        assert!(
            !busy(0.9, Duration::from_millis(300)),
            "too short a window to judge"
        );
    }

    /// A process spinning beside this one shows as others' CPU; this process's own spinning
    /// does not.
    #[test]
    fn counts_another_process_and_not_this_one() {
        let watch = Watch::new(vec![]);
        let m = watch.mark().expect("/proc is readable");
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh starts");
        // CPU is what is measured: spin here for the window rather than wait for a state.
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            std::hint::black_box(0u64);
        }
        let (others, window) = watch.since(&m).expect("/proc is readable");
        // Measured before the spinner is reaped: its time is not ours yet.
        spinner.kill().ok();
        spinner.wait().ok();
        assert!(window >= Duration::from_millis(1500));
        // The spinner had a core for most of the window (two cores, two spinners); this
        // thread's spinning, counted as others', would add about one more.
        assert!(
            others > 0.3,
            "a process spinning beside the bench shows: {others:.2} cores"
        );
        assert!(
            others < 1.4,
            "this process's own spinning must not show: {others:.2} cores"
        );
    }
}
