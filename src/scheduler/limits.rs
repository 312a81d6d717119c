//! Flow control: a task's limits — how many of its jobs may be leased at once and how fast
//! they may start, for the task as a whole and for each job key — set at run time and
//! validated once here. The core enforces them at dispatch (`core/limits.rs`); a cluster's
//! claims enforce them across nodes (`cluster/limits.rs`). Both use [`Gcra`].

use std::fmt;

use super::error::Error;

/// Longest job key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// Checks a job key: empty (no key) or at most 255 bytes.
pub(crate) fn check_key(v: &str) -> Result<(), Error> {
    if v.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(
            "key",
            format!("is {} bytes; at most {MAX_KEY_BYTES} allowed", v.len()),
        ));
    }
    Ok(())
}

/// A start rate: `n` starts per `per_ms` milliseconds (`100/s`, `5000/h`, `10/5m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Starts per period (> 0).
    pub n: u32,
    /// The period, ms (> 0).
    pub per_ms: u64,
}

impl Rate {
    /// Parses `N/UNIT` or `N/KUNIT` with UNIT one of `s`, `m`, `h`, `d` (`ms` too); errors
    /// name `field`.
    pub fn parse(field: &'static str, text: &str) -> Result<Rate, Error> {
        let bad = |why: String| Error::invalid(field, format!("{text:?}: {why}"));
        let (n, per) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("expected N/UNIT, e.g. 100/s or 5000/h".into()))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("the count must be a whole number".into()))?;
        let per = per.trim();
        let digits = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
        let (k, unit) = per.split_at(digits);
        let k: u64 = if k.is_empty() {
            1
        } else {
            k.parse()
                .map_err(|_| bad("the period's multiple is too large".into()))?
        };
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" | "sec" => 1_000,
            "m" | "min" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return Err(bad(format!("unknown unit {unit:?}: use ms, s, m, h or d"))),
        };
        Rate::new(field, n, k.saturating_mul(unit_ms)).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => bad(reason),
            e => e,
        })
    }

    /// `n` starts per `per_ms`, checked: both positive, at most one start per microsecond.
    pub fn new(field: &'static str, n: u32, per_ms: u64) -> Result<Rate, Error> {
        if n == 0 {
            return Err(Error::invalid(field, "the count must be > 0"));
        }
        if per_ms == 0 || per_ms > 366 * 86_400_000 {
            return Err(Error::invalid(field, "the period must be 1 ms to 366 days"));
        }
        let r = Rate { n, per_ms };
        if r.interval_us() == 0 {
            return Err(Error::invalid(field, "at most 1,000,000 starts per second"));
        }
        Ok(r)
    }

    /// Time between two starts at this rate, µs.
    pub(crate) fn interval_us(&self) -> i64 {
        (self.per_ms as i64 * 1_000) / self.n as i64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        let (ms, unit) = units
            .iter()
            .find(|(ms, _)| self.per_ms.is_multiple_of(*ms))
            .copied()
            .unwrap_or((1, "ms"));
        match self.per_ms / ms {
            1 => write!(f, "{}/{unit}", self.n),
            k => write!(f, "{}/{k}{unit}", self.n),
        }
    }
}

/// A task's limits; every field is optional (None = no limit of that kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// At most this many of the task's jobs leased at once.
    pub max_running: Option<u32>,
    /// At most this many starts per period.
    pub rate: Option<Rate>,
    /// Starts that may go at once after an idle spell (the bucket's size; default 1).
    pub burst: Option<u32>,
    /// At most this many jobs of one key leased at once.
    pub max_running_per_key: Option<u32>,
    /// At most this many starts of one key per period (its bucket holds `burst` too).
    pub rate_per_key: Option<Rate>,
}

/// Limits as a face received them: numbers not yet checked, rates as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsRequest {
    /// `max_running` (0 or absent = none).
    pub max_running: Option<i64>,
    /// `rate`, e.g. `100/s` (empty or absent = none).
    pub rate: Option<String>,
    /// `burst` (absent = 1).
    pub burst: Option<i64>,
    /// `max_running_per_key`.
    pub max_running_per_key: Option<i64>,
    /// `rate_per_key`.
    pub rate_per_key: Option<String>,
}

fn count(field: &'static str, v: Option<i64>) -> Result<Option<u32>, Error> {
    match v {
        None | Some(0) => Ok(None),
        Some(n) if n < 0 => Err(Error::invalid(field, format!("{n} must be > 0"))),
        Some(n) if n > 1_000_000 => Err(Error::invalid(
            field,
            format!("{n} is over the limit of 1000000"),
        )),
        Some(n) => Ok(Some(n as u32)),
    }
}

fn rate(field: &'static str, v: Option<&str>) -> Result<Option<Rate>, Error> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => Rate::parse(field, t).map(Some),
    }
}

impl LimitsRequest {
    /// Checks every field; errors name it. A burst without a rate is refused (it would do
    /// nothing, which is likely a mistake).
    pub fn validate(&self) -> Result<TaskLimits, Error> {
        let l = TaskLimits {
            max_running: count("max_running", self.max_running)?,
            rate: rate("rate", self.rate.as_deref())?,
            burst: count("burst", self.burst)?,
            max_running_per_key: count("max_running_per_key", self.max_running_per_key)?,
            rate_per_key: rate("rate_per_key", self.rate_per_key.as_deref())?,
        };
        if l.burst.is_some() && l.rate.is_none() && l.rate_per_key.is_none() {
            return Err(Error::invalid("burst", "needs a rate or rate_per_key"));
        }
        Ok(l)
    }
}

impl TaskLimits {
    /// No limit at all (clearing a task's limits stores nothing).
    pub fn is_none(&self) -> bool {
        *self == TaskLimits::default()
    }

    /// Whether any limit applies per key.
    pub fn per_key(&self) -> bool {
        self.max_running_per_key.is_some() || self.rate_per_key.is_some()
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(1)
    }

    /// As stored: one line of `name=value` pairs (the store keeps one text per task, so a
    /// new kind of limit needs no migration).
    pub(crate) fn to_stored(self) -> String {
        let mut out = Vec::new();
        if let Some(n) = self.max_running {
            out.push(format!("max_running={n}"));
        }
        if let Some(r) = self.rate {
            out.push(format!("rate={}/{}ms", r.n, r.per_ms));
        }
        if let Some(n) = self.burst {
            out.push(format!("burst={n}"));
        }
        if let Some(n) = self.max_running_per_key {
            out.push(format!("max_running_per_key={n}"));
        }
        if let Some(r) = self.rate_per_key {
            out.push(format!("rate_per_key={}/{}ms", r.n, r.per_ms));
        }
        out.join(" ")
    }

    /// Reads [`TaskLimits::to_stored`]'s text; unknown names are errors (a newer server's
    /// row is not silently half-applied).
    pub(crate) fn from_stored(text: &str) -> Result<TaskLimits, Error> {
        let mut req = LimitsRequest::default();
        for pair in text.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| Error::invalid("limits", format!("stored pair {pair:?}")))?;
            let num = || {
                v.parse::<i64>()
                    .map_err(|_| Error::invalid("limits", format!("stored {pair:?}")))
            };
            match k {
                "max_running" => req.max_running = Some(num()?),
                "rate" => req.rate = Some(v.to_string()),
                "burst" => req.burst = Some(num()?),
                "max_running_per_key" => req.max_running_per_key = Some(num()?),
                "rate_per_key" => req.rate_per_key = Some(v.to_string()),
                _ => return Err(Error::invalid("limits", format!("unknown stored {k:?}"))),
            }
        }
        req.validate()
    }
}

/// The generic cell rate algorithm: a token bucket kept as one number, the theoretical
/// arrival time of the next start. Pure (time is passed in, µs), so the core's virtual clock
/// and the cluster's database clock drive the same code.
///
/// Not `governor`: its limiters read a clock of their own, and the core must stay a pure
/// function of the times it is given (property tests replay it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gcra {
    /// Theoretical arrival time of the next start, µs.
    pub tat_us: i64,
}

/// The core's clock ticks in ms: rates of more than one start per ms let up to a ms's worth
/// go at once (the long-run rate is unchanged).
const TICK_US: i64 = 1_000;

/// How far ahead of its theoretical arrival time a start may go: `burst - 1` intervals, and
/// at least a tick's worth.
pub(crate) fn tolerance_us(rate: Rate, burst: u32) -> i64 {
    let t = rate.interval_us();
    (t * (burst.max(1) as i64 - 1)).max(TICK_US - 1)
}

impl Gcra {
    /// How many starts the bucket allows at `now_us` (at most `want`).
    pub(crate) fn allowance(&self, rate: Rate, burst: u32, now_us: i64, want: u64) -> u64 {
        let t = rate.interval_us();
        let from = self.tat_us.max(now_us);
        let room = now_us + tolerance_us(rate, burst) - from;
        if room < 0 {
            0
        } else {
            ((room / t) as u64 + 1).min(want)
        }
    }

    /// Takes `n` starts at `now_us` (after [`Gcra::allowance`] allowed them).
    pub fn take(&mut self, rate: Rate, now_us: i64, n: u64) {
        self.tat_us = self.tat_us.max(now_us) + rate.interval_us() * n as i64;
    }

    /// When the next start is allowed, µs.
    pub(crate) fn next_at_us(&self, rate: Rate, burst: u32) -> i64 {
        self.tat_us - tolerance_us(rate, burst)
    }

    /// Whether the bucket is full at `now_us` (forgetting it loses nothing).
    pub(crate) fn is_idle(&self, now_us: i64) -> bool {
        self.tat_us <= now_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r = Rate::parse("rate", "100/s").unwrap();
        assert_eq!((r.n, r.per_ms, r.interval_us()), (100, 1_000, 10_000));
        assert_eq!(
            Rate::parse("rate", "5000/h").unwrap().interval_us(),
            720_000
        );
        assert_eq!(Rate::parse("rate", "10/5m").unwrap().to_string(), "10/5m");
        assert_eq!(Rate::parse("rate", "3/d").unwrap().to_string(), "3/d");
        for bad in ["0/s", "-1/s", "10", "10/w", "x/s", "10/0s", "2000000/s"] {
            match Rate::parse("rate", bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "rate"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn limits_validate_and_round_trip() {
        let l = LimitsRequest {
            max_running: Some(3),
            rate: Some("50/s".into()),
            burst: Some(2),
            max_running_per_key: Some(1),
            rate_per_key: Some("10/m".into()),
        }
        .validate()
        .unwrap();
        assert_eq!(TaskLimits::from_stored(&l.to_stored()).unwrap(), l);
        let bad = LimitsRequest {
            max_running: Some(-1),
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidArgument {
                field: "max_running",
                ..
            })
        ));
        let bad = LimitsRequest {
            burst: Some(5),
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidArgument { field: "burst", .. })
        ));
        assert!(LimitsRequest::default().validate().unwrap().is_none());
    }

    #[test]
    fn gcra_spaces_starts_and_allows_a_burst() {
        let r = Rate::new("rate", 50, 1_000).unwrap();
        let mut g = Gcra::default();
        let now = 1_000_000;
        // Burst 1: one now, the next 20 ms later.
        assert_eq!(g.allowance(r, 1, now, 10), 1);
        g.take(r, now, 1);
        assert_eq!(g.allowance(r, 1, now + 19_000, 10), 0);
        assert_eq!(g.next_at_us(r, 1), now + 20_000 - 999);
        assert_eq!(g.allowance(r, 1, now + 20_000, 10), 1);
        // Burst 5 after an idle spell: five at once, then one per 20 ms.
        let mut g = Gcra::default();
        assert_eq!(g.allowance(r, 5, now, 10), 5);
        g.take(r, now, 5);
        assert_eq!(g.allowance(r, 5, now, 10), 0);
        assert_eq!(g.allowance(r, 5, now + 20_000, 10), 1);
        // Above one start per ms, a ms's worth goes at once and the long-run rate holds.
        let r = Rate::new("rate", 2_000, 1_000).unwrap();
        let mut g = Gcra::default();
        let mut started = 0;
        for ms in 0..1_000 {
            let now = ms * 1_000;
            let n = g.allowance(r, 1, now, u64::MAX);
            g.take(r, now, n);
            started += n;
        }
        assert!((1_999..=2_001).contains(&started), "{started}");
    }
}
