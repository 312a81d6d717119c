//! `taskhive agent`: a load agent. It holds one `LoadRunner/Agent` stream to the server, runs
//! the shares of executions it is given (`load::agent_client`) and streams their reports;
//! when the stream ends it reconnects (unless `--once`), since the server counts an agent
//! that went away lost and takes it back as a new agent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::commands::{channel, CliResult};
use super::Conn;
use crate::load::agent_client::{self, Out};
use crate::load::allow::Allow;
use crate::load::engine::Live;
use crate::load::http::HttpClient;
use crate::pb::{self, load_runner_client::LoadRunnerClient};
use crate::rpc::load_convert::{report_pb, share_of};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `taskhive agent` flags.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The server to take load from (host:port or http(s)://host:port). In a cluster,
    /// name every node (repeat the flag, or separate with commas): the agent holds one
    /// stream per node, so an Exec sent to any node finds it.
    #[arg(
        long = "server",
        env = "TASKHIVE_ADDR",
        default_value = "127.0.0.1:5000",
        value_delimiter = ','
    )]
    pub servers: Vec<String>,
    /// Bearer token, for a server started with --auth (a token that may run load
    /// executions: admin).
    #[arg(long, env = "TASKHIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify a TLS server with; implies https.
    #[arg(long, env = "TASKHIVE_CA")]
    pub ca: Option<PathBuf>,
    /// Most swarms this agent runs at once (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub capacity: u64,
    /// A label for the server's logs.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Also trust these PEM certificates (a private CA) for https:// load targets.
    #[arg(long, value_name = "FILE")]
    pub load_ca: Option<PathBuf>,
    /// A param for the tasks this agent runs, over the Exec's (repeatable): what differs
    /// per load machine, such as a region label or a credential of its own.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = super::load::parse_param)]
    pub params: Vec<(String, String)>,
    /// Exit when the stream to the server ends instead of reconnecting.
    #[arg(long)]
    pub once: bool,
}

/// Runs the agent until it is stopped (or, with `--once`, until its streams end): one
/// stream per server, sharing one connection pool to the targets.
pub async fn run(a: AgentArgs) -> CliResult {
    let trust = crate::load::tls::Trust::load(a.load_ca.as_deref(), false)?;
    // The server checked the job's targets against its allow-list when it took the Exec;
    // the agent dials what it is given.
    let http = HttpClient::with_trust(Arc::new(Allow::Any), trust);
    let a = Arc::new(a);
    let mut streams = tokio::task::JoinSet::new();
    for server in &a.servers {
        let conn = Conn {
            addr: server.clone(),
            token: a.token.clone(),
            ca: a.ca.clone(),
        };
        streams.spawn(serve(conn, a.clone(), http.clone()));
    }
    while let Some(r) = streams.join_next().await {
        // A refused token ends the agent: it is refused by every node alike.
        r.map_err(|e| format!("agent stream task: {e}"))??;
    }
    Ok(())
}

/// One server's stream, reconnected after it ends (unless `--once`).
async fn serve(conn: Conn, a: Arc<AgentArgs>, http: HttpClient) -> CliResult {
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = match session(&conn, &a, &http).await {
            Ok(()) => {
                eprintln!("taskhive agent: {} ended the stream", conn.addr);
                true
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry { connected, error }) => {
                if a.once {
                    return Err(error);
                }
                eprintln!(
                    "taskhive agent: {}: {}",
                    conn.addr,
                    super::error::render(&*error)
                );
                connected
            }
        };
        if a.once {
            return Ok(());
        }
        if connected {
            backoff = Duration::from_secs(1);
        }
        eprintln!(
            "taskhive agent: reconnecting to {} in {backoff:?}",
            conn.addr
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Failure {
    /// A token or a role that will not get better by retrying.
    Fatal(Box<dyn std::error::Error + Send + Sync>),
    /// Anything else; `connected` says whether the stream was up (resets the backoff).
    Retry {
        connected: bool,
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn classify(connected: bool, e: Box<dyn std::error::Error + Send + Sync>) -> Failure {
    let fatal = e.downcast_ref::<tonic::Status>().is_some_and(|s| {
        matches!(
            s.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        )
    });
    if fatal {
        Failure::Fatal(e)
    } else {
        Failure::Retry {
            connected,
            error: e,
        }
    }
}

/// Stops every share still running when the stream is gone: the server has counted this
/// agent lost, so what they would report has nowhere to go.
struct Shares(HashMap<String, Arc<Live>>);

impl Drop for Shares {
    fn drop(&mut self) {
        for live in self.0.values() {
            live.abort("the agent's stream to the server ended".into());
        }
    }
}

/// One stream: hello, welcome, then shares until the server or the network ends it.
async fn session(conn: &Conn, a: &AgentArgs, http: &HttpClient) -> Result<(), Failure> {
    let ch = channel(conn).await.map_err(|e| classify(false, e))?;
    let mut client = LoadRunnerClient::new(ch).max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<pb::AgentMessage>(64);
    let hello = pb::AgentMessage {
        msg: Some(pb::agent_message::Msg::Hello(pb::AgentHello {
            capacity: a.capacity,
            name: a.name.clone(),
        })),
    };
    tx.send(hello).await.expect("the receiver is held below");
    let mut inbound = client
        .agent(ReceiverStream::new(rx))
        .await
        .map_err(|e| classify(false, e.into()))?
        .into_inner();
    let id = match inbound
        .message()
        .await
        .map_err(|e| classify(false, e.into()))?
    {
        Some(pb::AgentCommand {
            cmd: Some(pb::agent_command::Cmd::Welcome(w)),
        }) => w.agent_id,
        _ => {
            return Err(classify(
                false,
                "the server did not answer the agent's hello".into(),
            ))
        }
    };
    // Scripts and tests wait for this line.
    println!("agent {id} connected to {}", conn.addr);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let mut shares = Shares(HashMap::new());
    let lost = |e: Box<dyn std::error::Error + Send + Sync>| classify(true, e);
    loop {
        tokio::select! {
            m = inbound.message() => {
                let Some(cmd) = m.map_err(|e| lost(e.into()))? else {
                    return Ok(());
                };
                match cmd.cmd {
                    Some(pb::agent_command::Cmd::Start(s)) => {
                        let exec_id = s.exec_id.clone();
                        match share_of(s) {
                            Ok(mut share) => {
                                share.params.extend(a.params.iter().cloned());
                                eprintln!(
                                    "taskhive agent: exec {exec_id}: running {} swarms of job {}",
                                    share.job.n_swarm, share.job.name
                                );
                                let live = agent_client::start(share, http.clone(), out_tx.clone());
                                shares.0.insert(exec_id, live);
                            }
                            Err(e) => {
                                // Said done at once, so the server does not wait on this share.
                                eprintln!("taskhive agent: exec {exec_id}: unreadable start: {e}");
                                let _ = out_tx.send(Out::Done { exec_id });
                            }
                        }
                    }
                    Some(pb::agent_command::Cmd::Abort(x)) => {
                        if let Some(live) = shares.0.get(&x.exec_id) {
                            live.abort(x.reason);
                        }
                    }
                    Some(pb::agent_command::Cmd::Welcome(_)) | None => {}
                }
            }
            Some(o) = out_rx.recv() => {
                let msg = match o {
                    Out::Report { exec_id, part, first_swarm } => {
                        pb::agent_message::Msg::Report(report_pb(&exec_id, part, first_swarm))
                    }
                    Out::Done { exec_id } => {
                        shares.0.remove(&exec_id);
                        eprintln!("taskhive agent: exec {exec_id}: done");
                        pb::agent_message::Msg::Done(pb::AgentDone { exec_id })
                    }
                };
                if tx.send(pb::AgentMessage { msg: Some(msg) }).await.is_err() {
                    return Err(lost("the stream to the server closed".into()));
                }
            }
        }
    }
}
