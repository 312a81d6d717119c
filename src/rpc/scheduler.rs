//! `taskhive.v1.Scheduler`: converts and forwards to the scheduler actor.

use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::*;
use crate::face_limits::Limits;
use crate::pb::{self, scheduler_server::Scheduler};
use crate::scheduler::actor::{worker_channel, ToWorker};
use crate::scheduler::job::{JobState, LeaseId, WorkerId};
use crate::scheduler::{Error, SchedulerHandle};
use crate::telemetry;

/// The gRPC scheduler service.
#[derive(Clone)]
pub struct SchedulerService {
    h: SchedulerHandle,
    limits: Limits,
}

impl SchedulerService {
    /// A service over the scheduler behind `h`.
    pub fn new(h: SchedulerHandle, limits: Limits) -> Self {
        SchedulerService { h, limits }
    }

    /// Pauses or resumes a task; its counts after.
    async fn pause_reply(
        &self,
        task: String,
        paused: bool,
    ) -> Result<Response<pb::PauseTaskResponse>, Status> {
        check_name("task", &task)?;
        self.h.pause_task(task.clone(), paused).await?;
        let (tasks, _) = self.h.status(Some(task.clone())).await?;
        let status = tasks
            .into_iter()
            .find(|t| t.task == task)
            .map(status_pb)
            .unwrap_or(pb::TaskStatus {
                task,
                paused,
                ..Default::default()
            });
        Ok(Response::new(pb::PauseTaskResponse {
            status: Some(status),
        }))
    }

    /// A schedule with its next 5 fire times and its last job's id.
    async fn schedule_reply(&self, name: String) -> Result<Response<pb::Schedule>, Status> {
        let (s, next, last_id) = self.h.get_schedule(name, 5).await?;
        Ok(Response::new(schedule_pb(s, next, last_id)))
    }
}

/// Jobs one SubmitJobs call may carry.
const MAX_BATCH: usize = 10_000;

pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Tells the scheduler a worker is gone when its stream is dropped, however that happens.
pub(super) struct WorkerGuard {
    pub(super) h: SchedulerHandle,
    pub(super) worker: WorkerId,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.h.worker_gone(self.worker);
    }
}

fn worker_id(s: &str) -> Result<WorkerId, Error> {
    s.parse()
        .map_err(|_| Error::invalid("worker_id", format!("{s:?} is not a worker id")))
}

pub(super) fn check_tasks(tasks: &[String]) -> Result<(), Error> {
    tasks.iter().try_for_each(|t| check_name("tasks", t))
}

pub(super) fn check_broadcast(tasks: &[String]) -> Result<(), Error> {
    tasks
        .iter()
        .try_for_each(|t| check_name("broadcast_tasks", t))
}

pub(super) fn check_some(tasks: &[String], broadcast: &[String]) -> Result<(), Error> {
    if tasks.is_empty() && broadcast.is_empty() {
        return Err(Error::invalid("tasks", "must name at least one task"));
    }
    check_tasks(tasks)?;
    check_broadcast(broadcast)
}

/// Forwards a watched job's events as protobuf until it ends.
fn job_events(mut rx: crate::scheduler::actor::EventRx, job_id: u64) -> BoxStream<pb::JobEvent> {
    use crate::scheduler::actor::JobEvent;
    use pb::job_event::Event;
    let stream = async_stream_events(move |tx| async move {
        while let Some(ev) = rx.recv().await {
            let (event, end) = match ev {
                JobEvent::Data(d) => (Event::Data(d), false),
                JobEvent::Finished(Ok(result)) => {
                    (Event::Result(pb::RunJobResponse { job_id, result }), true)
                }
                JobEvent::Finished(Err(e)) => (Event::Error(e), true),
            };
            if tx.send(Ok(pb::JobEvent { event: Some(event) })).is_err() || end {
                return;
            }
        }
    });
    Box::pin(stream)
}

/// A stream fed by a spawned task through a channel.
fn async_stream_events<T, F, Fut>(f: F) -> UnboundedReceiverStream<Result<T, Status>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::UnboundedSender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(f(tx));
    UnboundedReceiverStream::new(rx)
}

pub(super) fn check_lease(lease: LeaseId) -> Result<(), Error> {
    if lease == 0 {
        return Err(Error::invalid("lease_id", "must be set"));
    }
    Ok(())
}

/// The caller's deadline from the `grpc-timeout` header, if any.
fn grpc_timeout<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn state_of(r: &crate::scheduler::job::JobRecord, now: i64) -> JobState {
    if r.dead {
        JobState::Dead
    } else if r.sched_at > now {
        JobState::Scheduled
    } else {
        JobState::Pending
    }
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    async fn submit_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let now = self.h.clock().now_ms();
        let incoming = telemetry::incoming_grpc(req.metadata());
        let mut spec = submit_spec(req.into_inner(), &self.limits, now, false)?;
        let span = telemetry::Submit::start(incoming, &spec.task, &spec.name, 1);
        spec.trace = span.trace();
        let r = self.h.submit(spec).await;
        span.end(&r);
        let r = r?;
        Ok(Response::new(pb::SubmitJobResponse {
            job_id: r.id,
            replaced: r.replaced,
            running: r.running,
        }))
    }

    async fn submit_jobs(
        &self,
        req: Request<pb::SubmitJobsRequest>,
    ) -> Result<Response<pb::SubmitJobsResponse>, Status> {
        let incoming = telemetry::incoming_grpc(req.metadata());
        let jobs = req.into_inner().jobs;
        if jobs.is_empty() || jobs.len() > MAX_BATCH {
            return Err(Error::invalid(
                "jobs",
                format!("holds {}; 1..={MAX_BATCH} allowed", jobs.len()),
            )
            .into());
        }
        let now = self.h.clock().now_ms();
        let specs = jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| {
                submit_spec(j, &self.limits, now, false).map_err(|e| match e {
                    Error::InvalidArgument { field, reason } => {
                        Error::invalid("jobs", format!("[{i}].{field}: {reason}"))
                    }
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One trace context for the batch: the call's.
        let span = telemetry::Submit::start(incoming, &specs[0].task, &specs[0].name, specs.len());
        let mut specs = specs;
        for s in &mut specs {
            s.trace = span.trace();
        }
        let replies = self.h.submit_many(specs).await;
        span.end(&replies);
        let replies = replies?;
        Ok(Response::new(pb::SubmitJobsResponse {
            jobs: replies
                .into_iter()
                .map(|r| pb::SubmitJobResponse {
                    job_id: r.id,
                    replaced: r.replaced,
                    running: r.running,
                })
                .collect(),
        }))
    }

    type SubmitStreamStream = BoxStream<pb::SubmitStreamResponse>;

    async fn submit_stream(
        &self,
        req: Request<Streaming<pb::SubmitJobRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        // Every job of the stream keeps the stream's trace context (no server span per job).
        let trace = telemetry::incoming_grpc(req.metadata());
        Ok(Response::new(super::submit_stream::serve(
            self.h.clone(),
            self.limits.clone(),
            req.into_inner(),
            trace,
        )))
    }

    async fn run_job(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::RunJobResponse>, Status> {
        let deadline = grpc_timeout(&req);
        let now = self.h.clock().now_ms();
        let incoming = telemetry::incoming_grpc(req.metadata());
        let mut spec = submit_spec(req.into_inner(), &self.limits, now, true)?;
        // The submit span covers the whole call: it answers with the job's result.
        let span = telemetry::Submit::start(incoming, &spec.task, &spec.name, 1);
        spec.trace = span.trace();
        let run = self.h.run_job(spec);
        let r = match deadline {
            Some(d) => tokio::time::timeout(d, run)
                .await
                .map_err(|_| Status::deadline_exceeded("no result before the call's deadline"))
                .and_then(|r| r.map_err(Status::from)),
            None => run.await.map_err(Status::from),
        };
        span.end(&r.as_ref().map_err(|s| s.message()));
        let (job_id, result) = r?;
        Ok(Response::new(pb::RunJobResponse { job_id, result }))
    }

    type RunJobStreamStream = BoxStream<pb::JobEvent>;

    async fn run_job_stream(
        &self,
        req: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<Self::RunJobStreamStream>, Status> {
        let now = self.h.clock().now_ms();
        let incoming = telemetry::incoming_grpc(req.metadata());
        let mut spec = submit_spec(req.into_inner(), &self.limits, now, true)?;
        spec.trace = incoming;
        if !self.h.has_worker(spec.task.clone()).await? {
            return Err(Error::NoWorker { task: spec.task }.into());
        }
        // Watch first, so no chunk sent before the submit lands can be missed.
        let rx = self.h.watch(spec.task.clone(), spec.name.clone()).await?;
        let r = self.h.submit(spec).await?;
        Ok(Response::new(job_events(rx, r.id)))
    }

    type WatchJobStream = BoxStream<pb::JobEvent>;

    async fn watch_job(
        &self,
        req: Request<pb::JobRef>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let r = req.into_inner();
        check_name("task", &r.task)?;
        check_name("name", &r.name)?;
        let rx = self.h.watch(r.task, r.name).await?;
        Ok(Response::new(job_events(rx, r.job_id)))
    }

    async fn send_data(
        &self,
        req: Request<pb::WorkData>,
    ) -> Result<Response<pb::SendDataResponse>, Status> {
        let r = req.into_inner();
        check_lease(r.lease_id)?;
        self.h.work_data(r.lease_id, r.data).await?;
        Ok(Response::new(pb::SendDataResponse {}))
    }

    async fn acquire_lock(
        &self,
        req: Request<pb::AcquireLockRequest>,
    ) -> Result<Response<pb::AcquireLockResponse>, Status> {
        let r = req.into_inner();
        check_lease(r.lease_id)?;
        check_name("name", &r.name)?;
        let acquired = self
            .h
            .acquire_lock(r.lease_id, r.name.clone(), r.count)
            .await?;
        Ok(Response::new(pb::AcquireLockResponse {
            lease_id: r.lease_id,
            name: r.name,
            acquired,
        }))
    }

    async fn release_lock(
        &self,
        req: Request<pb::ReleaseLockRequest>,
    ) -> Result<Response<pb::ReleaseLockResponse>, Status> {
        let r = req.into_inner();
        check_lease(r.lease_id)?;
        self.h.release_lock(r.lease_id, r.name).await?;
        Ok(Response::new(pb::ReleaseLockResponse {}))
    }

    async fn get_config(
        &self,
        req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let values = self.h.get_config(req.into_inner().key).await?;
        Ok(Response::new(pb::ConfigResponse {
            values: values.into_iter().collect(),
        }))
    }

    async fn set_config(
        &self,
        req: Request<pb::SetConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let r = req.into_inner();
        self.h.set_config(r.key.clone(), r.value).await?;
        let values = self.h.get_config(r.key).await?;
        Ok(Response::new(pb::ConfigResponse {
            values: values.into_iter().collect(),
        }))
    }

    async fn set_task_limits(
        &self,
        req: Request<pb::SetTaskLimitsRequest>,
    ) -> Result<Response<pb::TaskLimitsResponse>, Status> {
        let r = req.into_inner();
        let limits = limits_request(r.limits).validate()?;
        self.h.set_task_limits(r.task.clone(), limits).await?;
        Ok(Response::new(pb::TaskLimitsResponse {
            task: r.task,
            limits: limits_pb(limits),
        }))
    }

    async fn get_task_limits(
        &self,
        req: Request<pb::TaskRef>,
    ) -> Result<Response<pb::TaskLimitsResponse>, Status> {
        let task = req.into_inner().task;
        let limits = self.h.get_task_limits(task.clone()).await?;
        Ok(Response::new(pb::TaskLimitsResponse {
            task,
            limits: limits_pb(limits),
        }))
    }

    async fn pause_task(
        &self,
        req: Request<pb::TaskRef>,
    ) -> Result<Response<pb::PauseTaskResponse>, Status> {
        self.pause_reply(req.into_inner().task, true).await
    }

    async fn resume_task(
        &self,
        req: Request<pb::TaskRef>,
    ) -> Result<Response<pb::PauseTaskResponse>, Status> {
        self.pause_reply(req.into_inner().task, false).await
    }

    async fn create_schedule(
        &self,
        req: Request<pb::CreateScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let spec = schedule_spec(req.into_inner(), &self.limits, self.h.clock().now_ms())?;
        let name = spec.name.clone();
        self.h.create_schedule(spec).await?;
        self.schedule_reply(name).await
    }

    async fn list_schedules(
        &self,
        _req: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let schedules = self.h.list_schedules().await?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: schedules
                .into_iter()
                .map(|s| {
                    let next = self.h.upcoming(&s, 1);
                    schedule_pb(s, next, None)
                })
                .collect(),
        }))
    }

    async fn get_schedule(
        &self,
        req: Request<pb::ScheduleRef>,
    ) -> Result<Response<pb::Schedule>, Status> {
        self.schedule_reply(req.into_inner().name).await
    }

    async fn pause_schedule(
        &self,
        req: Request<pb::ScheduleRef>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let name = req.into_inner().name;
        self.h.pause_schedule(name.clone(), true).await?;
        self.schedule_reply(name).await
    }

    async fn resume_schedule(
        &self,
        req: Request<pb::ScheduleRef>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let name = req.into_inner().name;
        self.h.pause_schedule(name.clone(), false).await?;
        self.schedule_reply(name).await
    }

    async fn delete_schedule(
        &self,
        req: Request<pb::ScheduleRef>,
    ) -> Result<Response<pb::DeleteScheduleResponse>, Status> {
        self.h.delete_schedule(req.into_inner().name).await?;
        Ok(Response::new(pb::DeleteScheduleResponse {}))
    }

    async fn remove_job(
        &self,
        req: Request<pb::JobRef>,
    ) -> Result<Response<pb::RemoveJobResponse>, Status> {
        let key = job_key(req.into_inner())?;
        let job_id = self.h.remove(key).await?;
        Ok(Response::new(pb::RemoveJobResponse { job_id }))
    }

    async fn get_job(&self, req: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let key = job_key(req.into_inner())?;
        Ok(Response::new(view_pb(self.h.get(key).await?)))
    }

    async fn list_jobs(
        &self,
        req: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let query = list_query(req.into_inner())?;
        Ok(Response::new(page_pb(self.h.list_jobs(query).await?)))
    }

    async fn drop_task(
        &self,
        req: Request<pb::DropTaskRequest>,
    ) -> Result<Response<pb::DropTaskResponse>, Status> {
        let task = req.into_inner().task;
        check_name("task", &task)?;
        let removed = self.h.drop_task(task).await?;
        Ok(Response::new(pb::DropTaskResponse { removed }))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (tasks, totals) = self.h.status(opt(req.into_inner().task)).await?;
        Ok(Response::new(pb::StatusResponse {
            tasks: tasks.into_iter().map(status_pb).collect(),
            totals: Some(status_pb(totals)),
        }))
    }

    async fn list_dead(
        &self,
        req: Request<pb::ListDeadRequest>,
    ) -> Result<Response<pb::ListDeadResponse>, Status> {
        let r = req.into_inner();
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        let jobs = self.h.list_dead(opt(r.task), limit).await?;
        Ok(Response::new(pb::ListDeadResponse {
            jobs: jobs.into_iter().map(view_pb).collect(),
        }))
    }

    async fn retry_dead(
        &self,
        req: Request<pb::DeadRef>,
    ) -> Result<Response<pb::DeadOpResponse>, Status> {
        let r = req.into_inner();
        let count = self.h.retry_dead(opt(r.task), opt(r.name)).await?;
        Ok(Response::new(pb::DeadOpResponse { count }))
    }

    async fn purge_dead(
        &self,
        req: Request<pb::DeadRef>,
    ) -> Result<Response<pb::DeadOpResponse>, Status> {
        let r = req.into_inner();
        let count = self.h.purge_dead(opt(r.task), opt(r.name)).await?;
        Ok(Response::new(pb::DeadOpResponse { count }))
    }

    async fn register_task(
        &self,
        req: Request<pb::RegisterTaskRequest>,
    ) -> Result<Response<pb::RegisterTaskResponse>, Status> {
        let r = req.into_inner();
        check_some(&r.tasks, &r.broadcast_tasks)?;
        let existing = match r.worker_id.as_str() {
            "" => None,
            s => Some(worker_id(s)?),
        };
        check_broadcast(&r.broadcast_tasks)?;
        let w = self
            .h
            .register(
                existing,
                r.tasks,
                r.broadcast_tasks,
                r.capacity.max(1),
                None,
            )
            .await?;
        Ok(Response::new(pb::RegisterTaskResponse {
            worker_id: w.to_string(),
        }))
    }

    type GrabJobStream = BoxStream<pb::Job>;

    async fn grab_job(
        &self,
        req: Request<pb::GrabJobRequest>,
    ) -> Result<Response<Self::GrabJobStream>, Status> {
        let worker = worker_id(&req.into_inner().worker_id)?;
        let (tx, rx) = worker_channel();
        self.h.connect(worker, tx).await?;
        let guard = WorkerGuard {
            h: self.h.clone(),
            worker,
        };
        // GrabJob streams jobs only: a cancelled lease's report is refused, which is all
        // this older stream can be told.
        let stream = rx.into_stream().filter_map(move |m| {
            let _held = &guard;
            std::future::ready(match m {
                // Its report comes by ReportResult, on another call: no run span here.
                ToWorker::Job(v) => Some(Ok(super::work::handed_pb(v).0)),
                ToWorker::Cancel { .. } => None,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_result(
        &self,
        req: Request<pb::ReportResultRequest>,
    ) -> Result<Response<pb::ReportResultResponse>, Status> {
        let r = req.into_inner();
        check_lease(r.lease_id)?;
        let o = outcome(r.outcome)?;
        self.h.report(r.lease_id, o).await?;
        Ok(Response::new(pb::ReportResultResponse {}))
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let lost_lease_ids = self.h.heartbeat(req.into_inner().lease_ids).await?;
        Ok(Response::new(pb::HeartbeatResponse { lost_lease_ids }))
    }

    type WorkStream = BoxStream<pb::ServerMessage>;

    async fn work(
        &self,
        req: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        super::work::serve(self.h.clone(), req.into_inner())
            .await
            .map(Response::new)
    }

    type DumpStream = BoxStream<pb::DumpedJob>;

    async fn dump(
        &self,
        _req: Request<pb::DumpRequest>,
    ) -> Result<Response<Self::DumpStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let h = self.h.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = match h.dump_page(after, 1000).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = last.id;
                let now = h.clock().now_ms();
                for r in page {
                    let state = state_of(&r, now);
                    let job = job_pb(r, state, None);
                    if tx.send(Ok(pb::DumpedJob { job: Some(job) })).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn load(
        &self,
        req: Request<Streaming<pb::DumpedJob>>,
    ) -> Result<Response<pb::LoadResponse>, Status> {
        let mut inbound = req.into_inner();
        let mut pending = FuturesUnordered::new();
        let mut loaded = 0u64;
        while let Some(d) = inbound.message().await? {
            let job = d.job.ok_or_else(|| Error::invalid("job", "must be set"))?;
            let record = record_from_pb(job, &self.limits)?;
            let h = self.h.clone();
            pending.push(async move { h.load(record).await });
            // Keep a window of commits in flight so a large load is not one fsync per job.
            if pending.len() >= 256 {
                pending.next().await.expect("non-empty")?;
                loaded += 1;
            }
        }
        while let Some(r) = pending.next().await {
            r?;
            loaded += 1;
        }
        Ok(Response::new(pb::LoadResponse { loaded }))
    }
}
