//! Broadcast across cluster nodes.
//!
//! A broadcast job is claimed by one node, its **owner**, which leases it to its own
//! broadcast workers as on one node and also asks the other nodes with broadcast workers for
//! the task (the cluster layer tells the core which, per task, before it adopts claimed jobs)
//! to run a **part**: [`Effect::BroadcastParts`]. A node asked runs the part as a job of its
//! own core under the id `job | PART_BIT` ([`Core::run_part`]): leased to its broadcast
//! workers like any broadcast job, but never written to the store and never reported as
//! finished to waiters; when its leases are settled the combined outcome goes back to the
//! owner ([`Effect::PartDone`]). The owner's run ends once its own leases are settled and
//! every part has answered ([`Core::part_reported`]), or its deadline passed (the job's
//! lease length plus [`PART_GRACE_MS`]): a node that never answers counts as a failed lease.
//! The combined outcome is the one of a run on one node: done if any worker said done, else
//! later if any said later, else a failed attempt.

use std::sync::Arc;

use super::{BroadcastRun, Core, Effect, TaskId};
use crate::scheduler::job::{JobId, JobRecord, Millis, Outcome};

/// Marks a part's id in the core of the node running it (cluster job ids come from a
/// database sequence and never reach it).
pub const PART_BIT: JobId = 1 << 62;

/// How long after a part's lease length the owner still waits for its answer: the
/// notifications that carry requests and answers, and a part's wait for a free worker.
pub const PART_GRACE_MS: Millis = 5_000;

/// Whether `id` is a part run here for another node's job.
pub(crate) fn is_part(id: JobId) -> bool {
    id & PART_BIT != 0
}

/// A part run here: whose job, and which run of it.
#[derive(Debug)]
pub struct PartOf {
    origin: Arc<str>,
    run: u64,
}

impl Core {
    /// Cluster: the other nodes with broadcast workers for `task` (replaces the last list).
    pub fn set_remote_broadcast(&mut self, task: &str, nodes: Vec<String>) {
        let tid = self.task_id(task);
        if nodes.is_empty() {
            self.remote_broadcast.remove(&tid);
        } else {
            let nodes = nodes.into_iter().map(Arc::from).collect();
            self.remote_broadcast.insert(tid, nodes);
        }
    }

    /// Owner side, as a broadcast job of task `tid` is leased here: asks the other nodes for
    /// their parts (none for a part itself).
    pub(super) fn ask_parts(
        &mut self,
        tid: TaskId,
        id: JobId,
        run: &mut BroadcastRun,
        now: Millis,
    ) {
        if is_part(id) {
            return;
        }
        let Some(nodes) = self.remote_broadcast.get(&tid) else {
            return;
        };
        run.remote = nodes.iter().cloned().collect();
        let deadline = now + self.jobs[&id].timeout_ms as Millis + PART_GRACE_MS;
        self.part_deadlines.insert((deadline, id));
        self.effects.push(Effect::BroadcastParts {
            job: id,
            run: run.run,
            nodes: nodes.clone(),
        });
    }

    /// Owner side: node `node`'s part of run `run` of job `id` is over (`outcome`), or it
    /// cannot run it (`None`, with why). Stale or unknown answers are ignored.
    pub fn part_reported(
        &mut self,
        id: JobId,
        run: u64,
        node: &str,
        outcome: Result<Outcome, String>,
        now: Millis,
    ) {
        let Some(r) = self.broadcasts.get_mut(&id) else {
            return;
        };
        if r.run != run || !r.remote.remove(node) {
            return;
        }
        match outcome {
            // A result too large for the answer came empty: keep one of our own instead.
            Ok(Outcome::Done { result }) if result.is_empty() && r.done.is_some() => {}
            Ok(o) => r.record(Some(o), None),
            Err(why) => r.record(None, Some(format!("node {node}: {why}"))),
        }
        self.broadcast_finish(id, now);
    }

    /// Owner side: parts of nodes not in `live` (gone from the cluster) count as failed now,
    /// instead of at their deadline.
    pub fn nodes_live(&mut self, live: &[String], now: Millis) {
        let mut over = Vec::new();
        for (&id, r) in self.broadcasts.iter_mut() {
            let gone: Vec<Arc<str>> = r
                .remote
                .iter()
                .filter(|n| !live.iter().any(|l| l.as_str() == &***n))
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            for n in &gone {
                r.remote.remove(n);
            }
            let names: Vec<&str> = gone.iter().map(|n| &**n).collect();
            r.record(
                None,
                Some(format!("node {} left the cluster", names.join(", "))),
            );
            over.push(id);
        }
        for id in over {
            self.broadcast_finish(id, now);
        }
    }

    /// Owner side: runs whose parts did not all answer in time end without them.
    pub(super) fn expire_parts(&mut self, now: Millis) {
        while let Some(&(t, id)) = self.part_deadlines.first() {
            if t > now {
                break;
            }
            self.part_deadlines.pop_first();
            let Some(r) = self.broadcasts.get_mut(&id) else {
                continue;
            };
            if r.remote.is_empty() {
                continue;
            }
            let silent: Vec<&str> = r.remote.iter().map(|n| &**n).collect();
            let why = format!("no answer from node {} in time", silent.join(", "));
            r.remote.clear();
            r.record(None, Some(why));
            self.broadcast_finish(id, now);
        }
    }

    /// Part side: runs job `r` of node `origin` (run `run`) on this node's workers of its
    /// task. Nothing is written; a part already here, or a job of the same name held here,
    /// is left alone.
    pub fn run_part(&mut self, mut r: JobRecord, origin: &str, run: u64, now: Millis) {
        let id = r.id | PART_BIT;
        if self.jobs.contains_key(&id) {
            return;
        }
        let tid = self.task_id(&r.task);
        if self.tasks[tid as usize]
            .by_name
            .contains(&self.jobs, r.name.as_str())
        {
            return;
        }
        r.id = id;
        r.sched_at = now;
        r.dead = false;
        r.attempts = 0;
        self.parts.insert(
            id,
            PartOf {
                origin: Arc::from(origin),
                run,
            },
        );
        self.insert_record(id, r, now);
    }

    /// Part side: drops the part of job `id` if it is still here (its owner stopped waiting).
    pub fn drop_part(&mut self, id: JobId) {
        let id = id | PART_BIT;
        if self.jobs.contains_key(&id) {
            self.remove_job(id, "the broadcast's owner stopped waiting for this part");
        }
    }

    /// Part side: the part's leases are settled with `outcome`: it leaves the core and the
    /// owner is told.
    pub(super) fn part_over(&mut self, id: JobId, outcome: Outcome) {
        let Some(p) = self.parts.remove(&id) else {
            return;
        };
        self.release_locks(id, self.last_now);
        if matches!(self.jobs[&id].phase, super::Phase::Running(_)) {
            self.run_ended(id);
        }
        self.remove_job_silently(id);
        self.effects.push(Effect::PartDone {
            origin: p.origin,
            job: id & !PART_BIT,
            run: p.run,
            outcome,
        });
    }
}
