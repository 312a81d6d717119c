//! ListJobs' domain types: the validated query, the page, and the page token (the sort key
//! of the last job listed). Both backends walk the same order, so a token from one node is
//! good on any other node of a cluster.
//!
//! Order: with no state given, running, then pending, then scheduled, then dead (what is
//! happening now first, then what happens next, then what is over). Within a state:
//! pending in run order (priority descending, sched_at, id), scheduled by (sched_at, id),
//! running and dead by id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::Error;
use super::job::{JobId, JobState, JobView, Millis};

/// Jobs per page when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page a request may ask for.
pub const MAX_PAGE_SIZE: usize = 1_000;
/// Index entries one page may walk past (entries whose name does not match the prefix
/// count too): bounds the time one call holds the actor. A page cut short this way comes
/// with a token, so the caller goes on from there.
pub const MAX_SCAN: usize = 100_000;

/// The states in listing order.
pub const STATE_ORDER: [JobState; 4] = [
    JobState::Running,
    JobState::Pending,
    JobState::Scheduled,
    JobState::Dead,
];

fn rank(s: JobState) -> u8 {
    match s {
        JobState::Running => 0,
        JobState::Pending => 1,
        JobState::Scheduled => 2,
        JobState::Dead => 3,
        JobState::Done => 4,
    }
}

/// A position in the listing order: the sort key of a job (the fields its state does not
/// sort by are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The state being walked.
    pub state: JobState,
    /// Pending only.
    pub priority: i32,
    /// Pending and scheduled only.
    pub sched_at: Millis,
    /// The job id.
    pub id: JobId,
}

impl Cursor {
    /// The sort key of a job listed in `state`.
    pub fn new(state: JobState, priority: i32, sched_at: Millis, id: JobId) -> Cursor {
        let (priority, sched_at) = match state {
            JobState::Pending => (priority, sched_at),
            JobState::Scheduled => (0, sched_at),
            JobState::Running | JobState::Dead | JobState::Done => (0, 0),
        };
        Cursor {
            state,
            priority,
            sched_at,
            id,
        }
    }

    /// The sort key of a listed job.
    pub fn of(v: &JobView) -> Cursor {
        Cursor::new(v.state, v.record.priority, v.record.sched_at, v.record.id)
    }

    /// The opaque page token.
    pub fn encode(&self) -> String {
        let text = format!(
            "1.{}.{}.{}.{}",
            rank(self.state),
            self.priority,
            self.sched_at,
            self.id
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a page token.
    pub fn decode(token: &str) -> Result<Cursor, Error> {
        let bad = || Error::invalid("page_token", "not a token this server handed out");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split('.').collect();
        let [version, state, priority, sched_at, id] = parts[..] else {
            return Err(bad());
        };
        if version != "1" {
            return Err(bad());
        }
        let state = match state {
            "0" => JobState::Running,
            "1" => JobState::Pending,
            "2" => JobState::Scheduled,
            "3" => JobState::Dead,
            _ => return Err(bad()),
        };
        let c = Cursor::new(
            state,
            priority.parse().map_err(|_| bad())?,
            sched_at.parse().map_err(|_| bad())?,
            id.parse().map_err(|_| bad())?,
        );
        Ok(c)
    }
}

/// A validated ListJobs request.
#[derive(Clone, Debug)]
pub struct ListQuery {
    /// The task.
    pub task: String,
    /// One state, or every state.
    pub state: Option<JobState>,
    /// Names starting with this.
    pub name_prefix: String,
    /// Jobs per page, 1..=[`MAX_PAGE_SIZE`].
    pub page_size: usize,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

impl ListQuery {
    /// Validates a request: `page_size` 0 means [`DEFAULT_PAGE_SIZE`]; `page_token` empty
    /// means the first page, else it must be a token of the same state filter.
    pub fn new(
        task: String,
        state: Option<JobState>,
        name_prefix: String,
        page_size: u32,
        page_token: &str,
    ) -> Result<ListQuery, Error> {
        if task.is_empty() {
            return Err(Error::invalid("task", "must not be empty"));
        }
        if task.len() > 255 {
            return Err(Error::invalid("task", "longer than 255 bytes"));
        }
        if name_prefix.len() > 255 {
            return Err(Error::invalid("name_prefix", "longer than 255 bytes"));
        }
        if state == Some(JobState::Done) {
            // Kept results are found by id or name (GetJob, WatchJob); they have no per-task
            // order to page through.
            return Err(Error::invalid(
                "state",
                "done jobs are not listed; read a kept result with GetJob",
            ));
        }
        let page_size = match page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Error::invalid(
                    "page_size",
                    format!("{n} is more than {MAX_PAGE_SIZE}"),
                ))
            }
            n => n,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let c = Cursor::decode(page_token)?;
            if state.is_some_and(|s| s != c.state) {
                return Err(Error::invalid(
                    "page_token",
                    "from a listing of another state",
                ));
            }
            Some(c)
        };
        Ok(ListQuery {
            task,
            state,
            name_prefix,
            page_size,
            after,
        })
    }

    /// The states left to walk, in order, from the token's state on.
    pub fn states(&self) -> impl Iterator<Item = JobState> + '_ {
        STATE_ORDER.into_iter().filter(move |&s| {
            self.state.is_none_or(|only| only == s)
                && self.after.is_none_or(|c| rank(s) >= rank(c.state))
        })
    }

    /// Where to start in `state`: after the token's key when the token is in that state.
    pub(crate) fn after_in(&self, state: JobState) -> Option<Cursor> {
        self.after.filter(|c| c.state == state)
    }
}

/// One page of jobs.
#[derive(Clone, Debug, Default)]
pub struct JobPage {
    /// The jobs, in listing order.
    pub jobs: Vec<JobView>,
    /// Where the next page starts; `None` when there is nothing more.
    pub next: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_name_page_token() {
        let c = Cursor::new(JobState::Pending, -5, 1_700_000_000_000, 42);
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["x", "", "!!!!", &URL_SAFE_NO_PAD.encode("1.9.0.0.1")] {
            let e = Cursor::decode(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        field: "page_token",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn page_size_is_checked_and_defaulted() {
        let q = ListQuery::new("t".into(), None, String::new(), 0, "").unwrap();
        assert_eq!(q.page_size, DEFAULT_PAGE_SIZE);
        let e = ListQuery::new("t".into(), None, String::new(), 1001, "").unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidArgument {
                field: "page_size",
                ..
            }
        ));
        let dead = Cursor::new(JobState::Dead, 0, 0, 1).encode();
        let e = ListQuery::new("t".into(), Some(JobState::Pending), String::new(), 1, &dead)
            .unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidArgument {
                field: "page_token",
                ..
            }
        ));
        let q = ListQuery::new("t".into(), None, String::new(), 1, &dead).unwrap();
        assert_eq!(q.states().collect::<Vec<_>>(), vec![JobState::Dead]);
    }
}
