//! Every request message of the API through the server's own handling: the `Scheduler`
//! service over an in-memory store (unary calls for real; streaming calls and RunJob, which
//! wait on workers, through the checks their handlers run first), and the LoadRunner's
//! requests through their conversions. Decoded from protobuf bytes or from proto3 JSON.

use prost::Message;
use serde::de::DeserializeOwned;
use taskhive::config::Limits;
use taskhive::load::job::{parse_job, parse_job_json, Rules};
use taskhive::pb::{self, scheduler_server::Scheduler};
use taskhive::rpc::convert;
use taskhive::rpc::load_convert;
use taskhive::rpc::scheduler::SchedulerService;
use taskhive::scheduler::actor;
use taskhive::scheduler::clock::Clock;
use taskhive::scheduler::core::{Core, CoreConfig};
use taskhive::scheduler::settings::Settings;
use taskhive::store::memory::MemoryStore;
use taskhive::store::writer::Writer;
use tonic::Request;

/// The service and a runtime to drive it, started once per fuzzing process.
pub struct Server {
    rt: tokio::runtime::Runtime,
    svc: SchedulerService,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let svc = rt.block_on(async {
            let (writer, _join) = Writer::spawn(MemoryStore::default());
            let clock = Clock::system();
            let (h, _actor) = actor::spawn(
                Core::new(CoreConfig::default(), 1, 1),
                Settings::new(600, Vec::new()),
                writer,
                clock,
                std::sync::Arc::new(taskhive::metrics::Metrics::new()),
            );
            SchedulerService::new(h, Limits::default())
        });
        Server { rt, svc }
    }

    /// The process-wide server.
    pub fn get() -> &'static Server {
        static S: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
        S.get_or_init(Server::start)
    }
}

/// How a message is decoded (each target uses one).
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub enum Wire {
    /// Protobuf binary (gRPC).
    Proto,
    /// Proto3 JSON (the HTTP face's `POST /taskhive.v1.Scheduler/{Method}`).
    Json,
}

fn decode<T: Message + Default + DeserializeOwned>(wire: Wire, b: &[u8]) -> Option<T> {
    match wire {
        Wire::Proto => T::decode(b).ok(),
        Wire::Json => taskhive::http::rpc_json::decode_json::<T>(b).ok(),
    }
}

/// Checks an error never hides behind an empty message.
fn status<T>(r: Result<tonic::Response<T>, tonic::Status>) {
    if let Err(s) = r {
        assert!(!s.message().is_empty(), "{s:?} has no message");
    }
}

const NOW: i64 = 1_700_000_000_000;

/// Decodes `b` as request type number `kind` and handles it.
pub fn handle(kind: u8, wire: Wire, b: &[u8]) {
    let s = Server::get();
    let svc = &s.svc;
    macro_rules! unary {
        ($t:ty, $m:ident) => {
            if let Some(r) = decode::<$t>(wire, b) {
                s.rt.block_on(async { status(svc.$m(Request::new(r)).await) });
            }
        };
    }
    match kind % 29 {
        // SubmitStream's messages are SubmitJobRequests judged by the same `submit_spec`.
        0 => unary!(pb::SubmitJobRequest, submit_job),
        1 => {
            // RunJob and RunJobStream wait for a worker's result: only their checks run.
            if let Some(r) = decode::<pb::SubmitJobRequest>(wire, b) {
                let _ = convert::submit_spec(r, &Limits::default(), NOW, true);
            }
        }
        2 => unary!(pb::JobRef, remove_job),
        3 => unary!(pb::JobRef, get_job),
        4 => {
            if let Some(r) = decode::<pb::JobRef>(wire, b) {
                let _ = convert::job_key(r);
            }
        }
        5 => unary!(pb::DropTaskRequest, drop_task),
        6 => unary!(pb::StatusRequest, status),
        7 => unary!(pb::ListDeadRequest, list_dead),
        8 => unary!(pb::DeadRef, retry_dead),
        9 => unary!(pb::DeadRef, purge_dead),
        10 => unary!(pb::RegisterTaskRequest, register_task),
        11 => {
            let _ = decode::<pb::GrabJobRequest>(wire, b);
        }
        12 => unary!(pb::ReportResultRequest, report_result),
        13 => unary!(pb::HeartbeatRequest, heartbeat),
        14 => unary!(pb::WorkData, send_data),
        15 => unary!(pb::AcquireLockRequest, acquire_lock),
        16 => unary!(pb::ReleaseLockRequest, release_lock),
        17 => {
            // The Work stream's messages: a result goes through the same outcome check.
            if let Some(m) = decode::<pb::WorkerMessage>(wire, b) {
                if let Some(pb::worker_message::Msg::Result(r)) = m.msg {
                    let _ = convert::outcome(r.outcome);
                }
            }
        }
        18 => unary!(pb::GetConfigRequest, get_config),
        19 => unary!(pb::SetConfigRequest, set_config),
        20 => {
            let _ = decode::<pb::DumpRequest>(wire, b);
        }
        21 => {
            // Load's stream items.
            if let Some(j) = decode::<pb::DumpedJob>(wire, b) {
                if let Some(job) = j.job {
                    let _ = convert::record_from_pb(job, &Limits::default());
                }
            }
        }
        22 => {
            // SaveLoadJob: the same validation the runner applies before saving.
            if let Some(r) = decode::<pb::SaveLoadJobRequest>(wire, b) {
                use pb::save_load_job_request::Input;
                let known = vec!["http.get".to_string(), "remote.echo".to_string()];
                let is_http = |c: &str| c.starts_with("http.");
                let rules = Rules {
                    known: &known,
                    is_http: &is_http,
                    max_swarms: 100,
                };
                let _ = match r.input {
                    Some(Input::JobJson(text)) => parse_job_json(&text, &rules),
                    Some(Input::Job(j)) => parse_job(&load_convert::job_value(j), &rules),
                    None => return,
                };
            }
        }
        23 => {
            if let Some(r) = decode::<pb::ExecRequest>(wire, b) {
                let _ = load_convert::raw_exec(r).check();
            }
        }
        24 => {
            let _ = decode::<pb::ListExecsRequest>(wire, b);
        }
        25 => {
            let _ = decode::<pb::GetExecRequest>(wire, b);
        }
        26 => {
            let _ = decode::<pb::ListLoadJobsRequest>(wire, b);
            let _ = decode::<pb::ListTasksRequest>(wire, b);
        }
        27 => {
            let _ = decode::<pb::GetLoadStatusRequest>(wire, b);
        }
        _ => unary!(pb::ListJobsRequest, list_jobs),
    }
}
