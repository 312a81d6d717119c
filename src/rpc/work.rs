//! The `Work` stream: one bidirectional stream per worker. Jobs and cancels go out as the
//! actor hands them over; results are applied in order at once and acknowledged as their
//! commits land; heartbeats, data chunks, lock requests and later hellos come in on it too.

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Status, Streaming};

use super::convert::*;
use super::scheduler::{
    check_broadcast, check_lease, check_some, check_tasks, BoxStream, WorkerGuard,
};
use crate::pb;
use crate::scheduler::actor::{worker_channel, ToWorker};
use crate::scheduler::job::LeaseId;
use crate::scheduler::{Error, SchedulerHandle};
use crate::telemetry;

/// Serves one worker's stream, from its hello to its end.
pub(super) async fn serve(
    h: SchedulerHandle,
    mut inbound: Streaming<pb::WorkerMessage>,
) -> Result<BoxStream<pb::ServerMessage>, Status> {
    use pb::server_message::Msg as Out;
    use pb::worker_message::Msg as In;
    let hello = match inbound.message().await?.and_then(|m| m.msg) {
        Some(In::Hello(h)) => h,
        _ => return Err(Error::invalid("msg", "the first message must be hello").into()),
    };
    check_some(&hello.tasks, &hello.broadcast_tasks)?;
    let (jobs_tx, mut jobs) = worker_channel();
    let worker = h
        .register(
            None,
            hello.tasks,
            hello.broadcast_tasks,
            hello.capacity.max(1),
            Some(jobs_tx),
        )
        .await?;
    let (out, out_rx) = mpsc::unbounded_channel::<Result<pb::ServerMessage, Status>>();
    let out_err = out.clone();
    let send = move |m: Out| out.send(Ok(pb::ServerMessage { msg: Some(m) })).is_ok();
    send(Out::Welcome(pb::Welcome {
        worker_id: worker.to_string(),
    }));
    tokio::spawn(async move {
        let _guard = WorkerGuard {
            h: h.clone(),
            worker,
        };
        // Results are applied in order at once; their acks follow as their commits land.
        let mut acks = FuturesUnordered::new();
        // Open `taskhive.run` spans by lease (traced jobs only, with tracing on).
        let mut runs = Runs::default();
        let ack = |lease_id: LeaseId, r: Result<(), Error>| {
            let (error, reason) = match r {
                Ok(()) => (String::new(), String::new()),
                Err(e) => (e.to_string(), e.reason().to_string()),
            };
            Out::Ack(pb::ResultAck {
                lease_id,
                error,
                reason,
            })
        };
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(ToWorker::Job(v)) => {
                        let (job, run) = handed_pb(v);
                        if let Some(run) = run {
                            runs.open(job.lease_id, run);
                        }
                        if !send(Out::Job(job)) { break }
                    }
                    Some(ToWorker::Cancel { lease, job, reason }) => {
                        if let Some(run) = runs.take(lease) {
                            run.end("cancelled", Some(&reason));
                        }
                        if !send(Out::Cancel(pb::CancelJob { lease_id: lease, job_id: job, reason })) { break }
                    }
                    None => break,
                },
                Some((lease, r)) = acks.next(), if !acks.is_empty() => {
                    if !send(ack(lease, r)) { break }
                }
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => match m.msg {
                        Some(In::Result(r)) => {
                            let lease = r.lease_id;
                            match check_lease(lease).and_then(|_| outcome(r.outcome)) {
                                Ok(o) => {
                                    if let Some(run) = runs.take(lease) {
                                        end_run(run, &o);
                                    }
                                    let applied = h.report_queued(lease, o);
                                    acks.push(Box::pin(async move {
                                        let r = match applied.await {
                                            Ok(commit) => commit.wait().await.map_err(Error::from),
                                            Err(e) => Err(e),
                                        };
                                        (lease, r)
                                    }));
                                }
                                Err(e) => if !send(ack(lease, Err(e))) { break },
                            }
                        }
                        Some(In::Heartbeat(hb)) => {
                            let Ok(lost) = h.heartbeat(hb.lease_ids).await else { break };
                            for l in &lost {
                                if let Some(run) = runs.take(*l) {
                                    run.end("lost", Some("the lease was lost"));
                                }
                            }
                            if !send(Out::Heartbeat(pb::HeartbeatResponse { lost_lease_ids: lost })) { break }
                        }
                        // A later hello adds tasks and sets the capacity; 0 pauses the worker
                        // (no new jobs) so it can finish what it holds and close cleanly.
                        Some(In::Hello(more)) => {
                            if let Err(e) = check_tasks(&more.tasks).and_then(|_| check_broadcast(&more.broadcast_tasks)) {
                                let _ = out_err.send(Err(e.into()));
                                break;
                            }
                            let _ = h.register(Some(worker), more.tasks, more.broadcast_tasks, more.capacity, None).await;
                        }
                        Some(In::Data(d)) => {
                            // Data of a lease that is gone is dropped: nobody can watch it any more.
                            let _ = h.work_data(d.lease_id, d.data).await;
                        }
                        Some(In::Acquire(a)) => {
                            let acquired = h.acquire_lock(a.lease_id, a.name.clone(), a.count).await.unwrap_or(false);
                            if !send(Out::Lock(pb::AcquireLockResponse { lease_id: a.lease_id, name: a.name, acquired })) { break }
                        }
                        Some(In::Release(r)) => {
                            let _ = h.release_lock(r.lease_id, r.name).await;
                        }
                        None => {}
                    },
                    // The worker closed its side: flush outstanding acks, then end.
                    Ok(None) | Err(_) => {
                        while let Some((lease, r)) = acks.next().await {
                            if !send(ack(lease, r)) { break }
                        }
                        break;
                    }
                },
            }
        }
    });
    Ok(Box::pin(UnboundedReceiverStream::new(out_rx)))
}

/// A leased job as sent to its worker: with tracing on and a trace kept, the job's
/// `traceparent` names the dispatch span, and the run span comes back to end on the report.
pub(super) fn handed_pb(v: crate::scheduler::job::JobView) -> (pb::Job, Option<telemetry::Run>) {
    let r = &v.record;
    let (handed, run) =
        telemetry::dispatch(r.trace, &r.task, r.id, v.lease.unwrap_or(0), r.attempts);
    let mut job = view_pb(v);
    if let Some(t) = handed {
        job.traceparent = t.to_string();
    }
    (job, run)
}

/// Ends a run span with the worker's report.
fn end_run(run: telemetry::Run, o: &crate::scheduler::job::Outcome) {
    use crate::scheduler::job::Outcome;
    match o {
        Outcome::Done { .. } => run.end("done", None),
        Outcome::Fail { error, .. } => run.end("fail", Some(error)),
        Outcome::SchedLater { .. } => run.end("sched_later", None),
    }
}

/// The open `taskhive.run` spans of one worker's jobs, by lease. Empty unless tracing is on,
/// yet asked about every finished job: an empty map is not hashed into.
#[derive(Default)]
struct Runs(std::collections::HashMap<LeaseId, telemetry::Run, foldhash::fast::RandomState>);

impl Runs {
    fn open(&mut self, lease: LeaseId, run: telemetry::Run) {
        self.0.insert(lease, run);
    }

    fn take(&mut self, lease: LeaseId) -> Option<telemetry::Run> {
        if self.0.is_empty() {
            return None;
        }
        self.0.remove(&lease)
    }
}
