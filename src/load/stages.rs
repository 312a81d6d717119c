//! Stages of a load job (`stages: [{"duration_sec": D, "target": N}, ...]`): a piecewise
//! linear ramp of active swarms (closed model) or of the arrival rate (arrival-rate mode),
//! like k6's ramping executors. Pure: times are offsets from the run's start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One stage: over `duration_sec`, move linearly from where the previous stage ended (or the
/// start value) to `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Length of the stage, seconds (> 0).
    pub duration_sec: u64,
    /// Active swarms (closed model) or tasks started per second (arrival-rate mode) at the
    /// stage's end.
    pub target: u64,
}

/// The ramp the stages describe, from a start value.
#[derive(Clone, Debug, PartialEq)]
pub struct Ramp {
    /// (start offset, end offset, value at start, value at end), seconds.
    segments: Vec<(f64, f64, f64, f64)>,
}

impl Ramp {
    /// The ramp from `start` through `stages`.
    pub fn new(start: f64, stages: &[Stage]) -> Ramp {
        let (mut t, mut v) = (0.0, start);
        let segments = stages
            .iter()
            .map(|s| {
                let seg = (t, t + s.duration_sec as f64, v, s.target as f64);
                (t, v) = (seg.1, seg.3);
                seg
            })
            .collect();
        Ramp { segments }
    }

    /// The stages' total length.
    pub fn total(&self) -> Duration {
        Duration::from_secs_f64(self.segments.last().map_or(0.0, |s| s.1))
    }

    /// The value `t` after the start (the last target once the stages are over).
    pub(crate) fn value_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        for &(a, b, v0, v1) in &self.segments {
            if t < b {
                return v0 + (v1 - v0) * ((t - a) / (b - a)).max(0.0);
            }
        }
        self.segments.last().map_or(0.0, |s| s.3)
    }

    /// Closed model: swarms active at `t` (swarm ids 1..=n run).
    pub(crate) fn active_at(&self, t: Duration) -> u64 {
        // The epsilon keeps a value computed as 2.9999999 from dropping a swarm.
        (self.value_at(t) + 1e-9).floor().max(0.0) as u64
    }

    /// Closed model: the first moment from `from` on when at least `n` swarms are active;
    /// None when the ramp never gets there again.
    pub(crate) fn first_time_active(&self, n: u64, from: Duration) -> Option<Duration> {
        let (n, from) = (n as f64, from.as_secs_f64());
        for &(a, b, v0, v1) in &self.segments {
            if b <= from {
                continue;
            }
            let start = a.max(from);
            let v_start = v0 + (v1 - v0) * (start - a) / (b - a);
            if v_start + 1e-9 >= n {
                return Some(Duration::from_secs_f64(start));
            }
            if v1 + 1e-9 >= n && v1 > v0 {
                return Some(Duration::from_secs_f64(a + (n - v0) / (v1 - v0) * (b - a)));
            }
        }
        None
    }

    /// Arrival-rate mode: when task `k` (from 0) is due, so that the tasks started by time t
    /// are the integral of the rate up to t; None when the stages end first.
    pub fn due(&self, k: u64) -> Option<Duration> {
        // Task k is due when k + 1/2 tasks' worth of rate has passed (the middle of its share),
        // so a constant rate r puts task k at (k + 1/2) / r and a ramp from 0 starts at once.
        let mut want = k as f64 + 0.5;
        for &(a, b, r0, r1) in &self.segments {
            let d = b - a;
            let area = (r0 + r1) / 2.0 * d;
            if want > area {
                want -= area;
                continue;
            }
            // want = r0·τ + (r1 - r0)·τ² / 2d; solved in the form that stays exact when
            // r1 = r0 and when r0 = 0.
            let acc = (r1 - r0) / d;
            let disc = (r0 * r0 + 2.0 * acc * want).max(0.0);
            let tau = 2.0 * want / (r0 + disc.sqrt());
            return tau
                .is_finite()
                .then(|| Duration::from_secs_f64(a + tau.min(d)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(duration_sec: u64, target: u64) -> Stage {
        Stage {
            duration_sec,
            target,
        }
    }

    #[test]
    fn values_ramp_linearly_between_targets() {
        let r = Ramp::new(1.0, &[s(4, 5), s(2, 5), s(2, 1)]);
        assert_eq!(r.total(), Duration::from_secs(8));
        let at = |ms| r.value_at(Duration::from_millis(ms));
        assert_eq!(at(0), 1.0);
        assert_eq!(at(2000), 3.0);
        assert_eq!(at(5000), 5.0);
        assert_eq!(at(7000), 3.0);
        assert_eq!(at(9000), 1.0);
        assert_eq!(r.active_at(Duration::from_millis(2999)), 3);
        assert_eq!(r.active_at(Duration::from_millis(3000)), 4);
    }

    #[test]
    fn a_swarm_waits_for_the_ramp_to_reach_it() {
        let r = Ramp::new(1.0, &[s(4, 5), s(2, 5), s(2, 1)]);
        let first = |n, from_ms| r.first_time_active(n, Duration::from_millis(from_ms));
        assert_eq!(first(1, 0), Some(Duration::ZERO));
        assert_eq!(first(3, 0), Some(Duration::from_secs(2)));
        assert_eq!(first(5, 0), Some(Duration::from_secs(4)));
        // Ramping down: swarm 5 is past its time and never comes back.
        assert_eq!(first(5, 6500), None);
        assert_eq!(first(2, 6500), Some(Duration::from_millis(6500)));
    }

    #[test]
    fn arrivals_follow_the_integral_of_the_rate() {
        // Constant 10/s for 2 s: tasks at 0.05, 0.15, ... 1.95 s, 20 in all.
        let flat = Ramp::new(10.0, &[s(2, 10)]);
        assert_eq!(flat.due(0), Some(Duration::from_millis(50)));
        assert!(flat.due(19).is_some() && flat.due(20).is_none());
        // 0 → 2000/s over 5 s: 400·t²/2 tasks by time t, so 200·(2i + 1) in second i.
        let ramp = Ramp::new(0.0, &[s(5, 2000)]);
        let in_second = |i: u64| {
            (0..5000)
                .filter_map(|k| ramp.due(k))
                .filter(|d| d.as_secs() == i)
                .count()
        };
        for i in 0..5 {
            let want = 200 * (2 * i as usize + 1);
            // A task due exactly on a second boundary may round to either side.
            assert!(
                in_second(i).abs_diff(want) <= 1,
                "second {i}: {}",
                in_second(i)
            );
        }
        assert!(ramp.due(4999).is_some() && ramp.due(5000).is_none());
    }
}
