//! The payload budget (`serve --payload-memory`, an `impl Core` of its own): how many bytes of
//! payloads the core holds in memory, and which payloads stay in the store only.
//!
//! The store holds every payload already, so memory need not: past the budget the payloads
//! of the jobs due last are let go ("spilled") and read back from the store when the job is
//! handed out or shown (the actor does that, off its thread, see `scheduler::spilled`). The
//! jobs due soonest keep theirs, so a queue that drains in order mostly reads nothing.
//!
//! Only payloads of at least [`SPILL_MIN`] bytes count: a smaller one costs less than the
//! index entry that would track it, and the job around it (≈235 bytes) stays in memory
//! anyway. Jobs that live in memory only (transient jobs, parts) are never spilled: the store
//! has no copy of them.
//!
//! **Invariant:** a job is tracked (in `resident`, its bytes in `held`) exactly when the
//! budget is on, the job is written to the store, and it holds a payload of at least
//! [`SPILL_MIN`] bytes in memory. A spilled job holds an empty payload and its length in
//! its extras. After every public operation `held <= limit`.

use super::*;
use crate::scheduler::table::Slot;

/// Payloads smaller than this are always held in memory (see the module docs).
pub const SPILL_MIN: usize = 1024;

/// The budget's state.
#[derive(Debug, Default)]
pub(super) struct Payloads {
    /// Bytes of payloads held at most; None = no budget.
    limit: Option<usize>,
    /// Bytes of tracked payloads held now.
    held: usize,
    /// Tracked jobs by due time when tracked: the last are spilled first.
    resident: BTreeSet<(Millis, JobId)>,
    /// Jobs whose payload is in the store only.
    spilled_jobs: usize,
}

/// What the budget holds now (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayloadMemory {
    /// Bytes of payloads (of at least [`SPILL_MIN`] bytes) held in memory.
    pub held: usize,
    /// Jobs whose payload is in the store only.
    pub spilled_jobs: usize,
}

impl Payloads {
    pub(super) fn new(limit: Option<usize>) -> Self {
        Payloads {
            limit,
            ..Payloads::default()
        }
    }
}

impl Job {
    /// The length of the payload held in the store only, when spilled.
    pub(super) fn spilled(&self) -> Option<u32> {
        self.extras
            .as_ref()
            .and_then(|e| (e.spilled > 0).then_some(e.spilled))
    }

    /// Lets the payload go (it stays in the store).
    fn spill(&mut self) {
        let len = self.args.len() as u32;
        self.args = Bytes::new();
        let e = self.extras.get_or_insert_with(|| {
            Box::new(Extras {
                trace: None,
                key: KeyId::NONE,
                spilled: 0,
            })
        });
        e.spilled = len;
    }

    /// Holds `args` as the payload again (a replace, or the payload read back).
    pub(super) fn set_args(&mut self, args: Bytes) {
        self.args = args;
        if let Some(e) = &mut self.extras {
            e.spilled = 0;
            if e.trace.is_none() && e.key == KeyId::NONE {
                self.extras = None;
            }
        }
    }
}

impl Core {
    /// The payload budget in bytes, if any.
    pub fn payload_budget(&self) -> Option<usize> {
        self.payloads.limit
    }

    fn tracks(&self, id: JobId, job: &Job) -> bool {
        self.payloads.limit.is_some() && !in_memory_only(id) && job.args.len() >= SPILL_MIN
    }

    /// Starts counting a job's payload (after it was inserted or its payload or due time set).
    pub(super) fn payload_track(&mut self, id: JobId) {
        let slot = self.jobs.slot(&id).expect("job exists");
        self.payload_count(slot, true);
    }

    /// Stops counting a job's payload (before it is removed or its payload or due time change).
    pub(super) fn payload_untrack(&mut self, id: JobId) {
        let slot = self.jobs.slot(&id).expect("job exists");
        self.payload_count(slot, false);
    }

    /// Counts the payload of the job in `slot` in (`add`) or out of the budget; by slot, so
    /// inserts and removals, which have it, pay no index lookup.
    pub(super) fn payload_count(&mut self, slot: Slot, add: bool) {
        let (id, job) = self.jobs.at(slot);
        let tracked = self.tracks(id, job);
        let p = &mut self.payloads;
        if job.spilled().is_some() {
            if add {
                p.spilled_jobs += 1;
            } else {
                p.spilled_jobs -= 1;
            }
        } else if tracked {
            let (len, key) = (job.args.len(), (job.sched_at, id));
            if add {
                p.held += len;
                p.resident.insert(key);
            } else {
                p.held -= len;
                p.resident.remove(&key);
            }
        }
    }

    /// Spills the payloads of the jobs due last until the held ones fit the budget. Called at
    /// the end of the public operations that add payloads, after their store writes were
    /// queued: a payload is only ever let go once the write holding it is ahead of any read.
    pub(super) fn payload_enforce(&mut self) {
        let Some(limit) = self.payloads.limit else {
            return;
        };
        while self.payloads.held > limit {
            let Some((_, id)) = self.payloads.resident.pop_last() else {
                break;
            };
            let job = self.jobs.get_mut(&id).expect("tracked job exists");
            self.payloads.held -= job.args.len();
            self.payloads.spilled_jobs += 1;
            job.spill();
        }
    }

    /// Spilled jobs due soonest whose payloads fit in the budget's free room, for a restart
    /// to read back (then [`Core::fill_payloads`]).
    pub fn payloads_to_read(&self) -> Vec<JobId> {
        let Some(limit) = self.payloads.limit else {
            return Vec::new();
        };
        if self.payloads.spilled_jobs == 0 {
            return Vec::new();
        }
        let mut spilled: Vec<(Millis, JobId, usize)> = self
            .jobs
            .iter()
            .filter_map(|(id, j)| j.spilled().map(|n| (j.sched_at, id, n as usize)))
            .collect();
        spilled.sort_unstable();
        let mut room = limit.saturating_sub(self.payloads.held);
        let mut out = Vec::new();
        for (_, id, n) in spilled {
            if n > room {
                break;
            }
            room -= n;
            out.push(id);
        }
        out
    }

    /// Holds payloads read back from the store (of spilled jobs still spilled), within the budget.
    pub fn fill_payloads(&mut self, read: Vec<(JobId, Bytes)>) {
        for (id, args) in read {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            if job.spilled() != Some(args.len() as u32) {
                continue;
            }
            self.payload_untrack(id);
            self.jobs.get_mut(&id).expect("checked").set_args(args);
            self.payload_track(id);
        }
        self.payload_enforce();
    }

    /// What the budget holds now.
    pub fn payload_memory(&self) -> PayloadMemory {
        PayloadMemory {
            held: self.payloads.held,
            spilled_jobs: self.payloads.spilled_jobs,
        }
    }

    /// [`Core::check_invariants`]' part: the tracked set and the held bytes agree with the jobs.
    pub(super) fn check_payloads(&self) -> Result<(), String> {
        let mut held = 0;
        let mut tracked = 0;
        let mut spilled_jobs = 0;
        for (id, job) in self.jobs.iter() {
            if job.spilled().is_some() {
                if !job.args.is_empty() || in_memory_only(id) {
                    return Err(format!("job {id} is spilled but holds a payload"));
                }
                spilled_jobs += 1;
            }
            if self.tracks(id, job) {
                held += job.args.len();
                tracked += 1;
                if !self.payloads.resident.contains(&(job.sched_at, id)) {
                    return Err(format!("job {id}'s payload is not tracked"));
                }
            }
        }
        if tracked != self.payloads.resident.len() || held != self.payloads.held {
            return Err(format!(
                "payload budget: {} tracked / {} bytes, the jobs say {tracked} / {held}",
                self.payloads.resident.len(),
                self.payloads.held
            ));
        }
        if spilled_jobs != self.payloads.spilled_jobs {
            return Err(format!(
                "payload budget: {} jobs spilled, the jobs say {spilled_jobs}",
                self.payloads.spilled_jobs
            ));
        }
        if let Some(limit) = self.payloads.limit {
            if held > limit {
                return Err(format!(
                    "payloads hold {held} bytes, over the budget of {limit}"
                ));
            }
        }
        Ok(())
    }
}
