//! Fires schedules: one task per node keeps every unpaused schedule's next fire time in an
//! ordered set, sleeps (on the scheduler's [`Clock`](super::clock::Clock), so tests can
//! pause time) until the first is due, and asks the backend to fire it
//! ([`Backend::fire_schedule`](super::backend::Backend::fire_schedule)): a compare-and-set
//! of the schedule's last tick together with the tick's job. In a cluster every node's
//! driver tries; one wins each tick, the others reload that schedule.
//!
//! The set is rebuilt from the backend when a schedule changes through this node and, in a
//! cluster (where other nodes change them too), when `news` says another node changed one. A wake-up costs O(log n) per
//! due schedule; nothing is scanned per tick.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use tokio::time::Instant;

use super::actor::SchedulerHandle;
use super::error::Error;
use super::job::Millis;
use super::schedule::{Plan, Schedule};

/// A failed fire (store down, shutting down) is tried again this much later.
const RETRY_MS: Millis = 1000;

struct Entry {
    schedule: Schedule,
    plan: Plan,
    next: Millis,
}

struct Driver {
    handle: SchedulerHandle,
    entries: HashMap<String, Entry>,
    due: BTreeSet<(Millis, String)>,
}

/// Starts the node's schedule driver; `news` wakes it when another node changed a schedule
/// (`None` when only this node changes them). Abort the task at shutdown: it holds a handle.
pub fn spawn(handle: SchedulerHandle, news: Option<Arc<Notify>>) -> tokio::task::JoinHandle<()> {
    let driver = Driver {
        handle,
        entries: HashMap::new(),
        due: BTreeSet::new(),
    };
    tokio::spawn(driver.run(news.unwrap_or_default()))
}

impl Driver {
    async fn run(mut self, news: Arc<Notify>) {
        let changed = self.handle.schedules_changed();
        let clock = self.handle.clock();
        self.reload().await;
        loop {
            let wake = self.due.first().map(|(t, _)| clock.instant_at(*t));
            tokio::select! {
                _ = changed.notified() => {
                    self.reload().await;
                    continue;
                }
                _ = news.notified() => {
                    self.reload().await;
                    continue;
                }
                _ = sleep_until(wake) => {}
            }
            self.fire_due().await;
        }
    }

    /// Rebuilds the set from the backend, keeping parsed expressions that did not change.
    async fn reload(&mut self) {
        let schedules = match self.handle.list_schedules().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list schedules; keeping the ones known");
                return;
            }
        };
        let mut old = std::mem::take(&mut self.entries);
        self.due.clear();
        for s in schedules {
            let name = s.spec.name.clone();
            let plan = match old.remove(&name) {
                Some(e)
                    if e.schedule.spec.cron == s.spec.cron && e.schedule.spec.tz == s.spec.tz =>
                {
                    e.plan
                }
                _ => match Plan::parse(&s.spec.cron, &s.spec.tz) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(schedule = %name, error = %e, "stored schedule does not parse");
                        continue;
                    }
                },
            };
            self.insert(s, plan, None);
        }
    }

    /// Files a schedule under its next tick after its last one (or after `not_before`).
    fn insert(&mut self, schedule: Schedule, plan: Plan, not_before: Option<Millis>) {
        let name = schedule.spec.name.clone();
        if let Some(e) = self.entries.remove(&name) {
            self.due.remove(&(e.next, name.clone()));
        }
        let from = schedule.last_tick.max(not_before.unwrap_or(Millis::MIN));
        let next = match plan.next_after(from) {
            Some(t) if !schedule.paused => t,
            _ => Millis::MAX,
        };
        if next != Millis::MAX {
            self.due.insert((next, name.clone()));
        }
        self.entries.insert(
            name,
            Entry {
                schedule,
                plan,
                next,
            },
        );
    }

    async fn fire_due(&mut self) {
        let now = self.handle.clock().now_ms();
        while let Some((t, name)) = self.due.first().cloned() {
            if t > now {
                break;
            }
            self.due.pop_first();
            let Some(e) = self.entries.remove(&name) else {
                continue;
            };
            let s = &e.schedule;
            let ticks = e.plan.due(s.last_tick, now, s.spec.missed);
            if ticks.is_empty() {
                // Missed and skipped (or not quite due yet): wait for the next tick.
                self.insert(e.schedule, e.plan, Some(now.max(t - 1)));
                continue;
            }
            let jobs = ticks.iter().map(|&t| s.job(t)).collect();
            match self
                .handle
                .fire_schedule(name.clone(), s.last_tick, jobs)
                .await
            {
                Ok(true) => {
                    let mut schedule = e.schedule;
                    let newest = *ticks.last().expect("not empty");
                    schedule.last_tick = newest;
                    schedule.last_job = schedule.job(newest).name;
                    self.insert(schedule, e.plan, None);
                }
                Ok(false) => {
                    // Fired elsewhere, paused, replaced or deleted meanwhile.
                    match self.handle.schedule(name.clone()).await {
                        Ok(fresh) => {
                            let plan = if fresh.spec.cron == e.schedule.spec.cron
                                && fresh.spec.tz == e.schedule.spec.tz
                            {
                                e.plan
                            } else {
                                match Plan::parse(&fresh.spec.cron, &fresh.spec.tz) {
                                    Ok(p) => p,
                                    Err(_) => continue,
                                }
                            };
                            self.insert(fresh, plan, None);
                        }
                        Err(Error::NotFound(_)) => {}
                        Err(_) => self.retry_later(e, now),
                    }
                }
                Err(err) => {
                    tracing::warn!(schedule = %name, error = %err, "schedule tick not fired; trying again");
                    self.retry_later(e, now);
                }
            }
        }
    }

    fn retry_later(&mut self, mut e: Entry, now: Millis) {
        e.next = now + RETRY_MS;
        self.due.insert((e.next, e.schedule.spec.name.clone()));
        self.entries.insert(e.schedule.spec.name.clone(), e);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
