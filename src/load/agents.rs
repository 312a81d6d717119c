//! Load agents, server side: the agents connected to this server, how an execution's swarms
//! (or arrival rate) are split across them, and the run that merges their reports.
//!
//! An agent (`taskhive agent`, see `agent_client.rs`) holds one `LoadRunner/Agent` stream;
//! `rpc/load.rs` turns that stream into an [`AgentLink`] here. The server runs no share
//! itself when agents are asked for: it merges, judges and reports (see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::engine::Live;
use super::error::Error;
use super::exec_request::Agents;
use super::http::HttpTaskDef;
use super::job::LoadJob;
use super::report::ExecAgent;
use super::stats::Part;

/// How long past the run's time limit the server waits for an agent's last report before
/// counting it lost (its tasks in flight finish first; an HTTP task's default limit is 30 s).
const DONE_GRACE: Duration = Duration::from_secs(60);

/// An agent sends a report every second while its share runs (empty when nothing
/// finished), so one that sends nothing for this long is stopped or cut off (a SIGSTOP, a
/// partition that TCP has not noticed yet): it is counted lost, and the run does not wait.
pub const SILENT_LOST: Duration = Duration::from_secs(10);

/// How far ahead of the server's run clock an agent's timeline second may be (clock rates
/// differ a little; reports take time to arrive).
const CLOCK_SLACK_SEC: u64 = 10;

/// One agent's share of an execution: what its `AgentStart` carries.
#[derive(Clone, Debug)]
pub struct Share {
    /// Execution id.
    pub exec_id: String,
    /// The job with this agent's n_swarm (and, in arrival-rate mode, its rate).
    pub job: LoadJob,
    /// Exec params.
    pub params: BTreeMap<String, String>,
    /// Per task of the job: its built-in HTTP class.
    pub classes: Vec<Arc<HttpTaskDef>>,
    /// Its first swarm's number across the execution.
    pub first_swarm: u64,
    /// Most executions it sends per task.
    pub max_executions: u64,
    /// Log each failure on the agent.
    pub report_failures: bool,
}

/// What the server tells an agent.
#[derive(Clone, Debug)]
pub enum Command {
    /// Run a share.
    Start(Box<Share>),
    /// Stop starting tasks; finish, report, say done.
    Abort {
        /// Execution id.
        exec_id: String,
        /// Why.
        reason: String,
    },
}

/// What an agent's stream brings to the run it serves.
#[derive(Debug)]
pub enum Event {
    /// What finished since its previous report.
    Report(Part),
    /// Its share is over and fully reported.
    Done,
    /// The stream ended or broke before `Done`.
    Lost(String),
}

type Sink = (usize, String, mpsc::UnboundedSender<(usize, Event)>);

/// Where an agent's events go, and whether its stream is over (so a run that attaches to an
/// agent gone since the pick counts it lost at once instead of waiting for it).
#[derive(Default)]
struct Attach {
    sink: Option<Sink>,
    gone: bool,
}

/// One connected agent.
pub struct AgentLink {
    /// Its id on this server (`a1`, `a2`, ... in connection order).
    pub id: String,
    /// Where it connected from.
    pub addr: String,
    /// Its label (e.g. a host name).
    pub name: String,
    /// Most swarms it takes (`u64::MAX` = no limit).
    pub capacity: u64,
    commands: mpsc::UnboundedSender<Command>,
    // The run it serves now: its index there, the execution id, and where events go.
    attach: Mutex<Attach>,
}

impl AgentLink {
    /// Hands an event from the agent's stream to the run it serves, if any. Reports of
    /// another execution (a late one of a finished run) are dropped.
    pub(crate) fn deliver(&self, exec_id: Option<&str>, ev: Event) {
        let a = self.attach.lock().expect("poisoned");
        if let Some((i, exec, tx)) = a.sink.as_ref() {
            if exec_id.is_none_or(|e| e == exec) {
                let _ = tx.send((*i, ev));
            }
        }
    }

    fn send(&self, c: Command) -> bool {
        self.commands.send(c).is_ok()
    }
}

/// The agents connected to this server.
#[derive(Default)]
pub struct AgentPool {
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    next: u64,
    agents: Vec<Arc<AgentLink>>,
}

impl AgentPool {
    /// Registers an agent; returns its link and the commands to send down its stream.
    pub fn join(
        &self,
        addr: String,
        name: String,
        capacity: u64,
    ) -> (Arc<AgentLink>, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.state.lock().expect("poisoned");
        st.next += 1;
        let link = Arc::new(AgentLink {
            id: format!("a{}", st.next),
            addr,
            name,
            capacity: if capacity == 0 { u64::MAX } else { capacity },
            commands: tx,
            attach: Mutex::new(Attach::default()),
        });
        st.agents.push(link.clone());
        (link, rx)
    }

    /// The agent's stream ended: it takes no new share, and the run it served counts it lost.
    pub fn leave(&self, link: &Arc<AgentLink>, why: String) {
        self.state
            .lock()
            .expect("poisoned")
            .agents
            .retain(|a| !Arc::ptr_eq(a, link));
        let mut a = link.attach.lock().expect("poisoned");
        a.gone = true;
        if let Some((i, _, tx)) = a.sink.take() {
            let _ = tx.send((i, Event::Lost(why)));
        }
    }

    /// The agents an Exec asked for, in connection order (the oldest first), and each one's
    /// swarms; agents that would get none are left out.
    pub fn pick(&self, asked: Agents, n_swarm: u64) -> Result<Vec<(Arc<AgentLink>, u64)>, Error> {
        let all = self.state.lock().expect("poisoned").agents.clone();
        let chosen: Vec<_> = match asked {
            Agents::All if all.is_empty() => {
                return Err(Error::TooFewAgents {
                    asked,
                    connected: 0,
                })
            }
            Agents::All => all,
            Agents::Count(n) if (n as usize) > all.len() => {
                return Err(Error::TooFewAgents {
                    asked,
                    connected: all.len(),
                })
            }
            Agents::Count(n) => all.into_iter().take(n as usize).collect(),
        };
        let caps: Vec<u64> = chosen.iter().map(|a| a.capacity).collect();
        let swarms = split_swarms(n_swarm, &caps).ok_or_else(|| {
            let total: u64 = caps.iter().fold(0u64, |s, c| s.saturating_add(*c));
            Error::FailedPrecondition(format!(
                "agents: the {} agents asked take at most {total} swarms (--capacity); the job has n_swarm {n_swarm}",
                chosen.len()
            ))
        })?;
        Ok(chosen
            .into_iter()
            .zip(swarms)
            .filter(|(_, s)| *s > 0)
            .collect())
    }
}

/// Splits `n_swarm` swarms across agents of the given capacities (`u64::MAX` = no limit)
/// as evenly as the capacities allow: the agents of least capacity are filled first, each
/// to its fair share of what is left, so the rest spread evenly over the larger ones.
/// Earlier agents get the remainder. `None` when the capacities add up to less than
/// `n_swarm` (or no agent is given).
pub(crate) fn split_swarms(n_swarm: u64, capacities: &[u64]) -> Option<Vec<u64>> {
    let total = capacities.iter().fold(0u64, |s, c| s.saturating_add(*c));
    if capacities.is_empty() || total < n_swarm {
        return None;
    }
    let mut order: Vec<usize> = (0..capacities.len()).collect();
    order.sort_by_key(|&i| capacities[i]);
    let mut out = vec![0; capacities.len()];
    let mut left = n_swarm;
    for (k, &i) in order.iter().enumerate() {
        let agents_left = (capacities.len() - k) as u64;
        let fair = left.div_ceil(agents_left);
        out[i] = fair.min(capacities[i]);
        left -= out[i];
    }
    debug_assert_eq!(out.iter().sum::<u64>(), n_swarm);
    Some(out)
}

/// Each agent's part of an arrival rate: proportional to its swarms, so every swarm carries
/// the same rate wherever it runs and the parts add up to `rate` (up to float rounding).
pub(crate) fn split_rate(rate: f64, swarms: &[u64]) -> Vec<f64> {
    let n: u64 = swarms.iter().sum();
    if n == 0 {
        return vec![0.0; swarms.len()];
    }
    swarms.iter().map(|&s| rate * s as f64 / n as f64).collect()
}

/// The job one agent runs: its swarms, and in arrival-rate mode its part of the rate. run_n
/// stays per swarm, so the total count (run_n × n_swarm) splits in proportion too.
pub(crate) fn share_job(job: &LoadJob, swarms: u64, rate: Option<f64>) -> LoadJob {
    LoadJob {
        n_swarm: swarms,
        rate_per_sec: rate,
        ..job.clone()
    }
}

/// Runs an execution on agents: starts each share, merges every report into `live` (so
/// progress, thresholds and max_failure_count see the merged figures), aborts the agents
/// when `live` is aborted, and returns each agent's entry once every agent is done or lost.
pub async fn drive(
    agents: Vec<(Arc<AgentLink>, Share)>,
    live: Arc<Live>,
    run_for: Option<Duration>,
) -> Vec<ExecAgent> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut entries: Vec<ExecAgent> = Vec::with_capacity(agents.len());
    let mut over = vec![false; agents.len()];
    let exec_id = agents
        .first()
        .map(|(_, s)| s.exec_id.clone())
        .unwrap_or_default();
    let mut offsets = Vec::with_capacity(agents.len());
    for (i, (link, share)) in agents.iter().enumerate() {
        offsets.push(live.elapsed().as_micros() as u64);
        entries.push(ExecAgent {
            id: link.id.clone(),
            addr: link.addr.clone(),
            swarms: share.job.n_swarm,
            n_task: 0,
            lost: false,
        });
        let attached = {
            let mut a = link.attach.lock().expect("poisoned");
            if !a.gone {
                a.sink = Some((i, exec_id.clone(), tx.clone()));
            }
            !a.gone
        };
        if !attached || !link.send(Command::Start(Box::new(share.clone()))) {
            // Gone between the pick and now: nothing of it will come.
            entries[i].lost = true;
            over[i] = true;
        }
    }
    drop(tx);
    let mut aborted = live.abort_watch();
    let mut abort_sent = false;
    // Armed once: a run with a time limit cannot wait forever on an agent that still
    // reports but never finishes.
    let give_up = tokio::time::sleep(run_for.map_or(Duration::MAX / 4, |d| d + DONE_GRACE));
    tokio::pin!(give_up);
    let mut heard = vec![tokio::time::Instant::now(); agents.len()];
    let mut silence = tokio::time::interval(Duration::from_secs(1));
    while over.iter().any(|o| !o) {
        tokio::select! {
            ev = rx.recv() => {
                let Some((i, ev)) = ev else { break };
                heard[i] = tokio::time::Instant::now();
                match ev {
                    Event::Report(mut part) => {
                        let n = part.n_task();
                        part.shift(offsets[i]);
                        // A second far past the run's clock would grow the timeline unbounded.
                        let latest = live.elapsed().as_secs() + CLOCK_SLACK_SEC;
                        let merged = match part.last_second() {
                            Some(s) if s > latest => Err(format!(
                                "timeline second {s} is past the run's clock ({latest} s with slack)"
                            )),
                            _ => live.merge(part),
                        };
                        match merged {
                            Ok(()) => entries[i].n_task += n,
                            Err(e) => tracing::warn!(
                                exec = %exec_id, agent = %agents[i].0.id, error = %e,
                                "agent report refused"
                            ),
                        }
                    }
                    Event::Done => over[i] = true,
                    Event::Lost(why) => {
                        if !over[i] {
                            tracing::warn!(
                                exec = %exec_id, agent = %agents[i].0.id, addr = %agents[i].0.addr,
                                reason = %why, n_task = entries[i].n_task,
                                "load agent lost mid-run; its reports so far are kept"
                            );
                            entries[i].lost = true;
                            over[i] = true;
                        }
                    }
                }
            }
            r = aborted.wait_for(Option::is_some), if !abort_sent => {
                abort_sent = true;
                let reason = r.map(|r| r.clone().unwrap_or_default()).unwrap_or_default();
                for (i, (link, _)) in agents.iter().enumerate() {
                    if !over[i] {
                        link.send(Command::Abort { exec_id: exec_id.clone(), reason: reason.clone() });
                    }
                }
            }
            now = silence.tick() => {
                for (i, (link, _)) in agents.iter().enumerate() {
                    if !over[i] && now.duration_since(heard[i]) >= SILENT_LOST {
                        tracing::warn!(
                            exec = %exec_id, agent = %link.id, addr = %link.addr,
                            silent_s = SILENT_LOST.as_secs(), n_task = entries[i].n_task,
                            "load agent silent; counted lost, its reports so far are kept"
                        );
                        entries[i].lost = true;
                        over[i] = true;
                    }
                }
            }
            _ = &mut give_up => {
                for (i, (link, _)) in agents.iter().enumerate() {
                    if !over[i] {
                        tracing::warn!(exec = %exec_id, agent = %link.id, "load agent did not finish in time; counted lost");
                        entries[i].lost = true;
                        over[i] = true;
                    }
                }
            }
        }
    }
    for (link, _) in &agents {
        let mut a = link.attach.lock().expect("poisoned");
        if a.sink.as_ref().is_some_and(|(_, e, _)| *e == exec_id) {
            a.sink = None;
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: u64 = u64::MAX;

    #[test]
    fn swarms_split_evenly_with_the_remainder_first() {
        assert_eq!(split_swarms(30, &[ANY, ANY, ANY]), Some(vec![10, 10, 10]));
        assert_eq!(split_swarms(10, &[ANY, ANY, ANY]), Some(vec![4, 3, 3]));
        assert_eq!(split_swarms(2, &[ANY, ANY, ANY]), Some(vec![1, 1, 0]));
        assert_eq!(split_swarms(1, &[ANY]), Some(vec![1]));
    }

    #[test]
    fn swarms_respect_capacities() {
        // The small agent is filled; the rest spread over the others.
        assert_eq!(split_swarms(10, &[ANY, 2, ANY]), Some(vec![4, 2, 4]));
        assert_eq!(split_swarms(9, &[5, 3, 1]), Some(vec![5, 3, 1]));
        assert_eq!(split_swarms(6, &[5, 3, 1]), Some(vec![2, 3, 1]));
        assert_eq!(split_swarms(10, &[5, 3, 1]), None);
        assert_eq!(split_swarms(1, &[]), None);
        for n in 0..50 {
            let caps = [7, ANY, 3, 12];
            let s = split_swarms(n, &caps).unwrap();
            assert_eq!(s.iter().sum::<u64>(), n);
            assert!(s.iter().zip(caps).all(|(s, c)| *s <= c));
            // Agents below their capacity differ by at most one swarm.
            let free: Vec<u64> = s
                .iter()
                .zip(caps)
                .filter(|(s, c)| **s < *c)
                .map(|(s, _)| *s)
                .collect();
            if let (Some(lo), Some(hi)) = (free.iter().min(), free.iter().max()) {
                assert!(hi - lo <= 1, "{n}: {s:?}");
            }
        }
    }

    #[test]
    fn rate_splits_in_proportion_to_swarms() {
        let r = split_rate(300.0, &[10, 10, 10]);
        assert_eq!(r, vec![100.0, 100.0, 100.0]);
        let r = split_rate(100.0, &[4, 3, 3]);
        assert_eq!(r, vec![40.0, 30.0, 30.0]);
        let r = split_rate(1000.0, &[7, 5, 1]);
        assert!((r.iter().sum::<f64>() - 1000.0).abs() < 1e-9);
        assert_eq!(split_rate(5.0, &[0, 0]), vec![0.0, 0.0]);
    }

    #[test]
    fn a_share_keeps_the_limits_per_swarm() {
        let job = LoadJob {
            name: "j".into(),
            host: None,
            tasks: Vec::new(),
            run_for_sec: 5,
            run_n: 20,
            n_swarm: 30,
            rate_per_sec: Some(300.0),
            stages: None,
        };
        let s = share_job(&job, 10, Some(100.0));
        assert_eq!((s.n_swarm, s.run_n, s.run_for_sec), (10, 20, 5));
        assert_eq!(s.rate_per_sec, Some(100.0));
        assert_eq!(s.planned_n() * 3, job.planned_n());
    }
}
