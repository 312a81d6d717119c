//! What the cluster layer tells a node's actor: claimed rows adopted, broadcast parts run
//! and reported, nodes found live or gone, claims given back. A single node never sends these.

use super::*;

/// A command of the cluster layer.
pub(in crate::scheduler) enum NodeCmd {
    Adopt {
        records: Vec<JobRecord>,
    },
    RemoteBroadcast {
        task: String,
        nodes: Vec<String>,
    },
    RunPart {
        record: JobRecord,
        origin: String,
        run: u64,
    },
    NodesLive {
        nodes: Vec<String>,
    },
    DropPart {
        job: JobId,
    },
    PartReported {
        job: JobId,
        run: u64,
        node: String,
        outcome: Result<Outcome, String>,
    },
    Forget {
        ids: Vec<JobId>,
    },
    ReleaseUnserved,
    IdleSlots {
        reply: Reply<Vec<(String, u64)>>,
    },
}

impl Actor {
    pub(super) fn handle_node(&mut self, cmd: NodeCmd, now: Millis) {
        match cmd {
            NodeCmd::Adopt { mut records } => {
                self.settings.fill_stored_timeouts(&mut records);
                self.core.adopt(records, now)
            }
            NodeCmd::RemoteBroadcast { task, nodes } => {
                self.core.set_remote_broadcast(&task, nodes)
            }
            NodeCmd::RunPart {
                mut record,
                origin,
                run,
            } => {
                self.settings.fill_stored_timeouts([&mut record]);
                self.core.run_part(record, &origin, run, now)
            }
            NodeCmd::NodesLive { nodes } => {
                self.core.nodes_live(&nodes, now);
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            NodeCmd::DropPart { job } => {
                self.core.drop_part(job);
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            NodeCmd::PartReported {
                job,
                run,
                node,
                outcome,
            } => {
                self.core.part_reported(job, run, &node, outcome, now);
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            NodeCmd::Forget { ids } => {
                self.core.forget(&ids);
                let ops = self.effects();
                self.writer.write_detached(ops);
            }
            NodeCmd::ReleaseUnserved => {
                let ids = self.core.unserved();
                let ids = self.core.release(&ids);
                if !ids.is_empty() {
                    tracing::info!(
                        jobs = ids.len(),
                        "claims given back: no worker here serves them"
                    );
                    self.writer.write_detached(vec![Write::Release(ids)]);
                }
            }
            NodeCmd::IdleSlots { reply } => {
                let _ = reply.send(self.core.idle_slots());
            }
        }
    }
}
