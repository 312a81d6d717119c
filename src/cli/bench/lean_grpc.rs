//! A lean gRPC client for the bench's Work-stream workers (e2e, dispatch) and dispatch's
//! RunJob round trips: one HTTP/2 connection driven by `h2` itself, a call being a HEADERS
//! frame, one DATA frame with the prost message behind gRPC's 5-byte prefix, and a read of
//! the answer's DATA and trailers. (The pipelined SubmitJob and SubmitJobs calls go through
//! `pipelined_grpc.rs`, which writes its frames itself.)
//!
//! Why: in-process, the driver's CPU and the server's share the machine, so the rate of
//! one-job-per-call scenarios is bounded by both. tonic's generated client over `Channel`
//! adds, per call, a tower `Buffer` hop, hyper's client dispatch task and tonic's
//! streaming codec; the Gearman driver it is compared with (`bench/peers/gearman.rs`) is a
//! hand-written protocol client. This one is the gRPC counterpart, so that the comparison
//! weighs the servers rather than the clients. To the server it is one more gRPC client;
//! every test calls with tonic's, and `--grpc-client tonic` makes the bench call with it too.

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Uri};
use prost::Message;
use tonic::Status;

use super::BoxError;
use crate::pb;
use crate::rpc::wire;

/// One HTTP/2 connection; clones share it (each clone may keep a call in flight).
#[derive(Clone)]
pub(crate) struct LeanClient {
    send: h2::client::SendRequest<Bytes>,
    uris: std::sync::Arc<Uris>,
}

/// The methods' URIs, built once per connection.
struct Uris {
    run_job: Uri,
    work: Uri,
}

impl LeanClient {
    /// Connects to `addr`, writes coalesced like the bench's other connections (for many
    /// calls in flight).
    pub(crate) async fn connect(addr: &str) -> Result<LeanClient, BoxError> {
        Self::connect_with(addr, true).await
    }

    /// Connects to `addr` with every flush written at once: for one call in flight at a
    /// time, where a held flush would only add a poll to each call.
    pub(crate) async fn connect_plain(addr: &str) -> Result<LeanClient, BoxError> {
        Self::connect_with(addr, false).await
    }

    async fn connect_with(addr: &str, coalesce: bool) -> Result<LeanClient, BoxError> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let send = if coalesce {
            handshake(crate::net::coalesce::Coalesced::h2(tcp)).await?
        } else {
            handshake(tcp).await?
        };
        let uri = |m: &str| format!("http://{addr}/taskhive.v1.Scheduler/{m}").parse::<Uri>();
        let uris = Uris {
            run_job: uri("RunJob")?,
            work: uri("Work")?,
        };
        Ok(LeanClient {
            send,
            uris: std::sync::Arc::new(uris),
        })
    }

    /// Unary `RunJob`: submits and waits for the job's result.
    pub(crate) async fn run_job(
        &mut self,
        req: pb::SubmitJobRequest,
    ) -> Result<pb::RunJobResponse, Status> {
        let uri = self.uris.run_job.clone();
        let mut body = BytesMut::new();
        wire::put(&mut body, &req);
        let (_, mut recv) = self.open(uri, body.freeze(), true).await?;
        let mut got = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await.map_err(unavailable)?;
        wire::status(&trailers.unwrap_or_default())?;
        pb::RunJobResponse::decode(wire::one(got.freeze())?)
            .map_err(|e| Status::internal(e.to_string()))
    }

    /// Opens a call of `uri`, sends `first` (ending the request when `end`), and waits for the
    /// answer's head; a trailers-only answer is the call's status.
    async fn open(
        &mut self,
        uri: Uri,
        first: Bytes,
        end: bool,
    ) -> Result<(h2::SendStream<Bytes>, h2::RecvStream), Status> {
        let mut send = self.send.clone().ready().await.map_err(unavailable)?;
        let (answer, mut out) = send
            .send_request(grpc_request(uri), false)
            .map_err(unavailable)?;
        out.send_data(first, end).map_err(unavailable)?;
        let answer = answer.await.map_err(unavailable)?;
        if wire::has_status(answer.headers()) {
            // An answer before any message: an error, or OK with nothing to read.
            wire::status(answer.headers())?;
            return Err(Status::internal("an answer without its message"));
        }
        Ok((out, answer.into_body()))
    }
}

impl LeanClient {
    /// Opens a `Work` stream as a worker of `task` with `capacity`, tells `welcomed` when the
    /// server has taken it on, and calls `on_job` with each job it is sent, answering Done at
    /// once; returns when the stream ends. The answers to the jobs of one read go out as one
    /// DATA frame, as a pipelining worker would write them.
    pub(crate) async fn work_done(
        &mut self,
        task: &str,
        capacity: u32,
        welcomed: tokio::sync::oneshot::Sender<()>,
        mut on_job: impl FnMut(&pb::Job),
    ) -> Result<(), Status> {
        let mut welcomed = Some(welcomed);
        use crate::pb::server_message::Msg as Out;
        use crate::pb::worker_message::Msg as In;
        let mut buf = BytesMut::new();
        let hello = In::Hello(pb::WorkerHello {
            tasks: vec![task.to_string()],
            capacity,
            name: "bench".into(),
            broadcast_tasks: vec![],
        });
        wire::put(&mut buf, &pb::WorkerMessage { msg: Some(hello) });
        let uri = self.uris.work.clone();
        let (mut out, mut recv) = self.open(uri, buf.split().freeze(), false).await?;
        let mut got = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
            // Every whole message read so far; a partial one waits for the next chunk.
            while let Some(len) = wire::declared_len(&got) {
                if got.len() < wire::PREFIX + len {
                    break;
                }
                let m = wire::one(got.split_to(wire::PREFIX + len).freeze())?;
                let m =
                    pb::ServerMessage::decode(m).map_err(|e| Status::internal(e.to_string()))?;
                if let Some(Out::Welcome(_)) = m.msg {
                    if let Some(w) = welcomed.take() {
                        let _ = w.send(());
                    }
                }
                if let Some(Out::Job(j)) = m.msg {
                    on_job(&j);
                    let done = pb::WorkerMessage {
                        msg: Some(In::Result(pb::WorkerResult {
                            lease_id: j.lease_id,
                            outcome: Some(pb::Outcome {
                                outcome: Some(pb::outcome::Outcome::Done(pb::Done::default())),
                            }),
                        })),
                    };
                    wire::put(&mut buf, &done);
                }
            }
            if !buf.is_empty() {
                out.send_data(buf.split().freeze(), false)
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }
}

/// An HTTP/2 client connection over `io`, windows far above one answer so that no call
/// waits for a WINDOW_UPDATE, driven by a task of its own.
async fn handshake<T>(io: T) -> Result<h2::client::SendRequest<Bytes>, h2::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 22)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A gRPC call's request head: POST to the method's `uri`.
fn grpc_request(uri: Uri) -> Request<()> {
    let mut req = Request::new(());
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("te", HeaderValue::from_static("trailers"));
    req
}

fn unavailable(e: h2::Error) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    /// The client against a real in-process server: a worker gets its job and its Done ends a
    /// RunJob whose answer decodes, and an error's status comes back from the trailers with
    /// its code and message.
    #[tokio::test]
    async fn runs_a_job_through_a_real_server_and_reads_errors_from_the_trailers() {
        let server = crate::server::TestServe::start().await;
        let addr = server.addr.clone();
        let job = |name: &str| pb::SubmitJobRequest {
            task: "lean".into(),
            name: name.into(),
            args: Bytes::from_static(b"x"),
            ..Default::default()
        };
        let mut caller = LeanClient::connect_plain(&addr).await.unwrap();
        let bad = caller.run_job(job("")).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().contains("name"), "names the field: {bad:?}");

        // A worker on its own connection: RunJob comes back only once its Done is taken.
        let mut w = LeanClient::connect(&addr).await.unwrap();
        let (welcomed, welcome) = tokio::sync::oneshot::channel();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let worker = tokio::spawn(async move {
            w.work_done("lean", 8, welcomed, move |j| {
                let _ = seen_tx.send(j.name.clone());
            })
            .await
        });
        welcome.await.expect("welcomed");
        let run =
            tokio::time::timeout(std::time::Duration::from_secs(30), caller.run_job(job("r")))
                .await
                .expect("RunJob answered")
                .unwrap();
        assert!(run.job_id > 0);
        let mut names = Vec::new();
        while let Ok(n) = seen.try_recv() {
            names.push(n);
        }
        assert_eq!(names, ["r"], "the worker saw the one valid job");

        worker.abort();
        server.stop().await;
    }
}
