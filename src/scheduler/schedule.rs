//! Schedules: a named cron expression that enqueues a job of a task on every tick.
//!
//! Pure parts only (validation, tick arithmetic, the job of a tick); where schedules are
//! stored is the [`super::backend::Backend`]'s business and when they fire is
//! [`super::schedule_driver`]'s.
//!
//! **Invariant:** a tick is fired at most once. Every schedule keeps the last tick it fired
//! (`last_tick`); firing advances it with a compare-and-set in the same commit as the tick's
//! job (one actor command locally, one SQL statement in a cluster), so a restart mid-tick or
//! several nodes racing for one tick enqueue its job once.

use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::error::Error;
use super::job::{JobSpec, Millis, RetryPolicy};

/// At most this many jobs for missed ticks under [`Missed::All`].
pub const MISSED_CAP: usize = 100;
/// A tick fired this late still counts as on time under [`Missed::Skip`].
pub const GRACE_MS: Millis = 5_000;

/// What happens to ticks that passed while no node was firing (downtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Missed {
    /// Missed ticks are dropped; only a tick at most [`GRACE_MS`] old still fires.
    #[default]
    Skip,
    /// One job for the newest missed tick.
    One,
    /// A job for every missed tick, the newest [`MISSED_CAP`] of them.
    All,
}

impl Missed {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::One => "one",
            Missed::All => "all",
        }
    }
}

impl FromStr for Missed {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "" | "skip" => Ok(Missed::Skip),
            "one" => Ok(Missed::One),
            "all" => Ok(Missed::All),
            other => Err(Error::InvalidArgument {
                field: "missed",
                reason: format!("{other:?} is not one of skip, one, all"),
            }),
        }
    }
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Schedule name (1..=200 bytes, no `@`).
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in (empty = UTC).
    pub tz: String,
    /// Task of the jobs it enqueues.
    pub task: String,
    /// Their payload.
    pub args: Bytes,
    /// Their priority.
    pub priority: i32,
    /// Their lease length (0 = the server's default).
    pub timeout_ms: u32,
    /// Their retry policy.
    pub retry: RetryPolicy,
    /// What to do with ticks missed during downtime.
    pub missed: Missed,
}

/// A stored schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// What was asked for.
    pub spec: ScheduleSpec,
    /// Paused: no tick fires.
    pub paused: bool,
    /// The last tick fired (unix ms); at creation and resume, the time of it.
    pub last_tick: Millis,
    /// The name of the job the last tick enqueued (empty before the first).
    pub last_job: String,
}

/// A parsed expression in its zone.
#[derive(Clone, Debug)]
pub struct Plan {
    cron: Cron,
    tz: Tz,
}

impl ScheduleSpec {
    /// Checks every field; the parsed expression on success.
    pub fn validate(&self) -> Result<Plan, Error> {
        let bad = |field, reason: String| Err(Error::InvalidArgument { field, reason });
        if self.name.is_empty() || self.name.len() > 200 || self.name.contains('@') {
            return bad("name", "must be 1..=200 bytes without '@'".into());
        }
        if self.task.is_empty() || self.task.len() > 255 {
            return bad("task", "must be 1..=255 bytes".into());
        }
        Plan::parse(&self.cron, &self.tz)
    }
}

/// Parsed expressions by `(cron, tz)`, for the readers that want next fire times of every
/// schedule (ListSchedules, polled by the dashboard): parsing costs ≈13 µs, so 10,000
/// schedules cost ≈140 ms a call without it. Emptied when it passes [`PlanCache::MAX`]
/// entries (expressions of deleted schedules are not tracked).
#[derive(Default)]
pub struct PlanCache {
    plans: std::sync::Mutex<std::collections::HashMap<(String, String), std::sync::Arc<Plan>>>,
}

impl PlanCache {
    /// Entries kept at most.
    pub const MAX: usize = 100_000;

    /// The parsed `(cron, tz)`; None when it does not parse (a stored schedule always does).
    pub fn get(&self, cron: &str, tz: &str) -> Option<std::sync::Arc<Plan>> {
        let key = (cron.to_string(), tz.to_string());
        if let Some(p) = self.plans.lock().expect("poisoned").get(&key) {
            return Some(p.clone());
        }
        let plan = std::sync::Arc::new(Plan::parse(cron, tz).ok()?);
        let mut plans = self.plans.lock().expect("poisoned");
        if plans.len() >= Self::MAX {
            plans.clear();
        }
        plans.insert(key, plan.clone());
        Some(plan)
    }
}

impl Plan {
    /// Parses `cron` (5 or 6 fields) read in zone `tz` (empty = UTC).
    pub fn parse(cron: &str, tz: &str) -> Result<Plan, Error> {
        let fields = cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(Error::InvalidArgument {
                field: "cron",
                reason: format!("{cron:?} has {fields} fields; want 5, or 6 with seconds"),
            });
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(cron).map_err(|e| Error::InvalidArgument {
            field: "cron",
            reason: format!("{cron:?}: {e}"),
        })?;
        let tz = if tz.is_empty() {
            Tz::UTC
        } else {
            tz.parse::<Tz>().map_err(|_| Error::InvalidArgument {
                field: "tz",
                reason: format!("{tz:?} is not an IANA time zone"),
            })?
        };
        Ok(Plan { cron, tz })
    }

    fn at(&self, ms: Millis) -> DateTime<Tz> {
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(|| {
                Utc.timestamp_millis_opt(0)
                    .single()
                    .expect("epoch")
                    .with_timezone(&self.tz)
            })
    }

    /// The first tick strictly after `ms`.
    pub(crate) fn next_after(&self, ms: Millis) -> Option<Millis> {
        self.cron
            .find_next_occurrence(&self.at(ms), false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The next `n` ticks strictly after `ms`.
    pub(crate) fn upcoming(&self, ms: Millis, n: usize) -> Vec<Millis> {
        self.cron
            .iter_after(self.at(ms))
            .take(n)
            .map(|t| t.timestamp_millis())
            .collect()
    }

    /// The ticks to fire at `now` for a schedule whose last fired tick is `last`, oldest
    /// first: the due ticks in `(last, now]` as `missed` allows.
    pub fn due(&self, last: Millis, now: Millis, missed: Missed) -> Vec<Millis> {
        let newest = match self.cron.find_previous_occurrence(&self.at(now), true) {
            Ok(t) => t.timestamp_millis(),
            Err(_) => return Vec::new(),
        };
        if newest <= last {
            return Vec::new();
        }
        match missed {
            Missed::Skip if now - newest <= GRACE_MS => vec![newest],
            Missed::Skip => Vec::new(),
            Missed::One => vec![newest],
            Missed::All => {
                let mut ticks: Vec<Millis> = std::iter::once(newest)
                    .chain(
                        self.cron
                            .iter_before(self.at(newest))
                            .map(|t| t.timestamp_millis())
                            .take_while(|&t| t > last),
                    )
                    .take(MISSED_CAP)
                    .collect();
                ticks.reverse();
                ticks
            }
        }
    }
}

impl Schedule {
    /// The job a tick enqueues: named after the schedule and the tick's time.
    pub fn job(&self, tick: Millis) -> JobSpec {
        let s = &self.spec;
        JobSpec {
            task: s.task.clone(),
            name: job_name(&s.name, tick),
            args: s.args.clone(),
            sched_at: tick,
            timeout_ms: s.timeout_ms,
            priority: s.priority,
            retry: s.retry,
            trace: None,
            key: String::new(),
        }
    }
}

impl Schedule {
    /// The store's row.
    pub fn row(&self) -> ScheduleRow {
        let s = &self.spec;
        let spec = serde_json::json!({
            "cron": s.cron,
            "tz": s.tz,
            "task": s.task,
            "args": hex::encode(&s.args),
            "priority": s.priority,
            "timeout_ms": s.timeout_ms,
            "max_attempts": s.retry.max_attempts,
            "backoff_base_ms": s.retry.backoff_base_ms,
            "backoff_max_ms": s.retry.backoff_max_ms,
            "missed": s.missed.as_str(),
        });
        ScheduleRow {
            name: s.name.clone(),
            spec: spec.to_string(),
            paused: self.paused,
            last_tick: self.last_tick,
            last_job: self.last_job.clone(),
        }
    }

    /// Back from the store's row; `None` when the row is not one this server wrote.
    pub(crate) fn from_row(r: ScheduleRow) -> Option<Schedule> {
        let v: serde_json::Value = serde_json::from_str(&r.spec).ok()?;
        let str_of = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let num = |k: &str| v.get(k).and_then(|x| x.as_i64());
        let spec = ScheduleSpec {
            name: r.name,
            cron: str_of("cron")?,
            tz: str_of("tz")?,
            task: str_of("task")?,
            args: Bytes::from(hex::decode(str_of("args")?).ok()?),
            priority: num("priority")? as i32,
            timeout_ms: num("timeout_ms")? as u32,
            retry: RetryPolicy {
                max_attempts: num("max_attempts")? as u32,
                backoff_base_ms: num("backoff_base_ms")? as u32,
                backoff_max_ms: num("backoff_max_ms")? as u32,
            },
            missed: str_of("missed")?.parse().ok()?,
        };
        Some(Schedule {
            spec,
            paused: r.paused,
            last_tick: r.last_tick,
            last_job: r.last_job,
        })
    }
}

/// `NAME@2026-12-03T09:00:00Z` (milliseconds shown only when the tick has them).
pub fn job_name(schedule: &str, tick: Millis) -> String {
    let t = Utc
        .timestamp_millis_opt(tick)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true);
    format!("{schedule}@{t}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plan_cache_parses_each_expression_once() {
        let c = PlanCache::default();
        let a = c.get("*/5 * * * *", "Europe/Paris").unwrap();
        let b = c.get("*/5 * * * *", "Europe/Paris").unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let utc = c.get("*/5 * * * *", "").unwrap();
        assert!(!std::sync::Arc::ptr_eq(&a, &utc));
        assert!(c.get("* * *", "").is_none());
    }

    use super::*;

    const SEC: Millis = 1000;
    // 2026-12-03T09:00:00Z
    const T0: Millis = 1_796_288_400_000;

    #[test]
    fn five_and_six_fields_parse_seven_do_not() {
        assert!(Plan::parse("*/5 * * * *", "").is_ok());
        assert!(Plan::parse("*/2 * * * * *", "Europe/Paris").is_ok());
        let e = Plan::parse("* * * * * * 2027", "").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { field: "cron", .. }));
        let e = Plan::parse("61 * * * *", "").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { field: "cron", .. }));
        let e = Plan::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { field: "tz", .. }));
    }

    #[test]
    fn every_two_seconds_ticks_on_even_seconds() {
        let p = Plan::parse("*/2 * * * * *", "").unwrap();
        assert_eq!(p.next_after(T0), Some(T0 + 2 * SEC));
        assert_eq!(p.next_after(T0 + 1), Some(T0 + 2 * SEC));
        assert_eq!(
            p.upcoming(T0, 3),
            vec![T0 + 2 * SEC, T0 + 4 * SEC, T0 + 6 * SEC]
        );
    }

    #[test]
    fn missed_ticks_follow_the_policy() {
        let p = Plan::parse("* * * * * *", "").unwrap();
        let now = T0 + 5 * SEC + 300;
        assert_eq!(p.due(T0, now, Missed::Skip), vec![T0 + 5 * SEC]);
        assert_eq!(p.due(T0, now, Missed::One), vec![T0 + 5 * SEC]);
        assert_eq!(
            p.due(T0, now, Missed::All),
            (1..=5).map(|i| T0 + i * SEC).collect::<Vec<_>>()
        );
        // Long downtime: skip fires nothing, one fires the newest, all is capped.
        let later = T0 + 1000 * SEC + 300;
        assert!(p.due(T0, later - 10 * SEC, Missed::Skip).len() <= 1);
        let hourly = Plan::parse("0 * * * *", "").unwrap();
        let hours = T0 + 3 * 3600 * SEC + 60 * SEC;
        assert!(hourly.due(T0, hours, Missed::Skip).is_empty());
        assert_eq!(
            hourly.due(T0, hours, Missed::One),
            vec![T0 + 3 * 3600 * SEC]
        );
        assert_eq!(p.due(T0, later, Missed::All).len(), MISSED_CAP);
        assert_eq!(
            *p.due(T0, later, Missed::All).last().unwrap(),
            T0 + 1000 * SEC
        );
        // Nothing due twice.
        assert!(p.due(T0 + 5 * SEC, now, Missed::All).is_empty());
    }

    #[test]
    fn zones_move_ticks() {
        let utc = Plan::parse("0 9 * * *", "").unwrap();
        let paris = Plan::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(utc.next_after(T0 - 1), Some(T0));
        assert_eq!(paris.next_after(T0 - 3600 * SEC - 1), Some(T0 - 3600 * SEC));
    }

    #[test]
    fn rows_round_trip() {
        let s = Schedule {
            spec: ScheduleSpec {
                name: "n".into(),
                cron: "* * * * *".into(),
                tz: "Europe/Paris".into(),
                task: "t".into(),
                args: Bytes::from_static(b"\x00hi"),
                priority: -3,
                timeout_ms: 500,
                retry: RetryPolicy::default(),
                missed: Missed::All,
            },
            paused: true,
            last_tick: T0,
            last_job: "n@x".into(),
        };
        assert_eq!(Schedule::from_row(s.row()), Some(s));
    }

    #[test]
    fn job_names_carry_the_tick() {
        assert_eq!(job_name("daily", T0), "daily@2026-12-03T09:00:00Z");
        assert_eq!(job_name("x", T0 + 5), "x@2026-12-03T09:00:00.005Z");
    }
}

/// A stored schedule: what was asked for as a JSON document, and its firing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    /// Schedule name.
    pub name: String,
    /// The spec (cron, zone, task, job fields, missed policy) as JSON.
    pub spec: String,
    /// Paused.
    pub paused: bool,
    /// The last tick fired (unix ms).
    pub last_tick: i64,
    /// The name of the job the last tick enqueued.
    pub last_job: String,
}
