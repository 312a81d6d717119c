//! ListJobs over the core's indexes: each state is walked with `range` from the page
//! token's key, so a page costs O(log n + page + skipped names), never a scan of the task.

use std::cmp::Reverse;
use std::ops::Bound::{Excluded, Unbounded};

use super::{Core, Phase};
use crate::scheduler::job::{JobId, JobState};
use crate::scheduler::list::{Cursor, JobPage, ListQuery, MAX_SCAN};

type Keys<'a> = Box<dyn Iterator<Item = (Cursor, JobId)> + 'a>;

impl Core {
    /// One page of a task's jobs in listing order (see [`crate::scheduler::list`]).
    /// Pending jobs waiting for a named lock are not in any index walked here, so they are
    /// not listed. Running jobs are collected from the lease table (one entry per open
    /// lease, bounded by worker capacity) and sorted.
    pub fn list_jobs(&self, q: &ListQuery) -> JobPage {
        let Some(&tid) = self.task_ids.get(q.task.as_str()) else {
            return JobPage::default();
        };
        let t = &self.tasks[tid as usize];
        let mut keys: Keys<'_> = Box::new(std::iter::empty());
        for state in q.states() {
            let after = q.after_in(state);
            let walk: Keys<'_> = match state {
                JobState::Running => {
                    let mut ids: Vec<JobId> = self
                        .leases
                        .values()
                        .filter_map(|l| l.job)
                        .filter(|id| {
                            self.jobs.get(id).is_some_and(|j| {
                                j.task == tid && matches!(j.phase, Phase::Running(_))
                            })
                        })
                        .filter(|&id| after.is_none_or(|c| id > c.id))
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Box::new(
                        ids.into_iter()
                            .map(|id| (Cursor::new(JobState::Running, 0, 0, id), id)),
                    )
                }
                JobState::Pending => {
                    let from = match after {
                        Some(c) => Excluded((Reverse(c.priority), c.sched_at, c.id)),
                        None => Unbounded,
                    };
                    Box::new(
                        t.ready
                            .range((from, Unbounded))
                            .map(|&(Reverse(p), s, id)| {
                                (Cursor::new(JobState::Pending, p, s, id), id)
                            }),
                    )
                }
                JobState::Scheduled => {
                    let from = match after {
                        Some(c) => Excluded((c.sched_at, c.id)),
                        None => Unbounded,
                    };
                    Box::new(
                        t.scheduled
                            .range((from, Unbounded))
                            .map(|&(s, id)| (Cursor::new(JobState::Scheduled, 0, s, id), id)),
                    )
                }
                // Refused by `ListQuery::new`; kept results live outside the core.
                JobState::Done => Box::new(std::iter::empty()),
                JobState::Dead => {
                    let from = match after {
                        Some(c) => Excluded(c.id),
                        None => Unbounded,
                    };
                    Box::new(
                        t.dead
                            .range((from, Unbounded))
                            .map(|&id| (Cursor::new(JobState::Dead, 0, 0, id), id)),
                    )
                }
            };
            keys = Box::new(keys.chain(walk));
        }
        let mut page = JobPage::default();
        let mut last = None;
        for (scanned, (key, id)) in keys.enumerate() {
            if scanned == MAX_SCAN {
                // Cut short: go on from the last key looked at.
                page.next = last;
                return page;
            }
            if !self.jobs[&id].name.starts_with(q.name_prefix.as_str()) {
                last = Some(key);
                continue;
            }
            if page.jobs.len() == q.page_size {
                // One more matches: the next page starts after the last one listed.
                page.next = page.jobs.last().map(Cursor::of);
                return page;
            }
            page.jobs.push(self.view(id));
            last = Some(key);
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::core::CoreConfig;
    use crate::scheduler::job::{JobSpec, RetryPolicy};

    fn spec(name: String) -> JobSpec {
        JobSpec {
            task: "t".into(),
            name,
            args: Default::default(),
            sched_at: 0,
            timeout_ms: 1_000,
            priority: 0,
            retry: RetryPolicy::default(),
            trace: None,
            key: String::new(),
        }
    }

    #[test]
    fn a_rare_name_prefix_stops_the_walk_and_hands_back_a_token() {
        let mut core = Core::new(CoreConfig::default(), 1, 1);
        for i in 0..MAX_SCAN + 10 {
            core.submit(spec(format!("a{i}")), 0).unwrap();
        }
        core.submit(spec("zz".into()), 0).unwrap();
        let q = |token: &str| ListQuery::new("t".into(), None, "zz".into(), 10, token).unwrap();
        let first = core.list_jobs(&q(""));
        assert!(first.jobs.is_empty());
        let token = first.next.expect("cut short: a token to go on").encode();
        let second = core.list_jobs(&q(&token));
        let names: Vec<&str> = second.jobs.iter().map(|v| v.record.name.as_str()).collect();
        assert_eq!(names, ["zz"]);
        assert!(second.next.is_none());
    }
}
