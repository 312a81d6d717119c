//! `taskhive.v1.LoadRunner`: converts and forwards to the [`LoadRunner`].

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status};

use super::load_convert::*;
use crate::load::agents::Event as AgentEvent;
use crate::load::{Error, LoadRunner};
use crate::pb::{self, load_runner_server::LoadRunner as LoadRunnerApi};

/// The gRPC load runner service.
#[derive(Clone)]
pub struct LoadRunnerService {
    runner: LoadRunner,
}

impl LoadRunnerService {
    /// A service over `runner`.
    pub fn new(runner: LoadRunner) -> Self {
        LoadRunnerService { runner }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl LoadRunnerApi for LoadRunnerService {
    async fn save_load_job(
        &self,
        req: Request<pb::SaveLoadJobRequest>,
    ) -> Result<Response<pb::LoadJob>, Status> {
        use pb::save_load_job_request::Input;
        let job = match req.into_inner().input {
            Some(Input::JobJson(text)) => self.runner.save_json(&text).await?,
            Some(Input::Job(j)) => self.runner.save(&job_value(j)).await?,
            None => return Err(Error::invalid("job", "set job_json or job").into()),
        };
        Ok(Response::new(job_pb(&job)))
    }

    async fn list_load_jobs(
        &self,
        _req: Request<pb::ListLoadJobsRequest>,
    ) -> Result<Response<pb::ListLoadJobsResponse>, Status> {
        Ok(Response::new(pb::ListLoadJobsResponse {
            jobs: self.runner.jobs().iter().map(job_pb).collect(),
        }))
    }

    async fn list_tasks(
        &self,
        _req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        Ok(Response::new(pb::ListTasksResponse {
            tasks: self.runner.tasks().await?,
        }))
    }

    async fn get_load_status(
        &self,
        _req: Request<pb::GetLoadStatusRequest>,
    ) -> Result<Response<pb::LoadStatus>, Status> {
        Ok(Response::new(status_pb(self.runner.status())))
    }

    type ExecStream = BoxStream<pb::ExecEvent>;

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let opts = raw_exec(req.into_inner()).check()?;
        let events = self.runner.exec(opts).await?;
        let stream = ReceiverStream::new(events).map(|e| Ok(event_pb(e)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_execs(
        &self,
        req: Request<pb::ListExecsRequest>,
    ) -> Result<Response<pb::ListExecsResponse>, Status> {
        let r = req.into_inner();
        let name = (!r.name.is_empty()).then_some(r.name);
        let execs = self.runner.list_execs(name, r.limit as usize).await?;
        Ok(Response::new(pb::ListExecsResponse {
            execs: execs.into_iter().map(summary_pb).collect(),
        }))
    }

    type AgentStream = BoxStream<pb::AgentCommand>;

    async fn agent(
        &self,
        req: Request<tonic::Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::AgentStream>, Status> {
        use pb::agent_message::Msg;
        let addr = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::AgentMessage {
                msg: Some(Msg::Hello(h)),
            }) => h,
            _ => {
                return Err(
                    Error::invalid("hello", "an agent stream starts with AgentHello").into(),
                )
            }
        };
        let runner = self.runner.clone();
        let (link, commands) = runner
            .agents()
            .join(addr, hello.name.clone(), hello.capacity);
        tracing::info!(
            agent = %link.id, addr = %link.addr, name = %hello.name, capacity = hello.capacity,
            "load agent connected"
        );
        let welcome = pb::AgentCommand {
            cmd: Some(pb::agent_command::Cmd::Welcome(pb::AgentWelcome {
                agent_id: link.id.clone(),
            })),
        };
        // The agent's messages go to the run it serves; the end of the stream (a closed or
        // broken connection) makes it lost there.
        tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(m)) => match m.msg {
                        Some(Msg::Report(r)) => {
                            let exec = r.exec_id.clone();
                            match part_of(r) {
                                Ok(part) => link.deliver(Some(&exec), AgentEvent::Report(part)),
                                Err(e) => tracing::warn!(
                                    agent = %link.id, error = %e, "agent report unreadable; dropped"
                                ),
                            }
                        }
                        Some(Msg::Done(d)) => link.deliver(Some(&d.exec_id), AgentEvent::Done),
                        Some(Msg::Hello(_)) | None => {
                            tracing::warn!(agent = %link.id, "agent sent an unexpected message")
                        }
                    },
                    Ok(None) => break "the agent closed its stream".to_string(),
                    Err(e) => break format!("the agent's stream broke: {e}"),
                }
            };
            tracing::info!(agent = %link.id, addr = %link.addr, reason = %why, "load agent gone");
            runner.agents().leave(&link, why);
        });
        let stream = futures_util::stream::once(async move { welcome })
            .chain(UnboundedReceiverStream::new(commands).map(command_pb))
            .map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_exec(
        &self,
        req: Request<pb::GetExecRequest>,
    ) -> Result<Response<pb::JobExec>, Status> {
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(Error::invalid("id", "must not be empty").into());
        }
        let (exec, json) = self.runner.get_exec(id).await?;
        Ok(Response::new(exec_pb(&exec, json)))
    }
}
