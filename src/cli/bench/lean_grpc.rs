//! A lean unary gRPC client for the scenarios whose client shares the machine with the
//! server (submit and e2e in-process, dispatch's RunJob round trips):
//! one HTTP/2 connection driven by `h2` itself, a call being a HEADERS frame, one DATA
//! frame with the prost message behind gRPC's 5-byte prefix, and a read of the answer's
//! DATA and trailers.
//!
//! Why: in-process, the driver's CPU and the server's share the machine, so the rate of
//! one-job-per-call scenarios is bounded by both. tonic's generated client over `Channel`
//! adds, per call, a tower `Buffer` hop, hyper's client dispatch task and tonic's
//! streaming codec; the Gearman driver it is compared with (`bench/peers/gearman.rs`) is a
//! hand-written protocol client. This one is the gRPC counterpart, so that the comparison
//! weighs the servers rather than the clients. To the server it is one more gRPC client;
//! every test calls with tonic's, and `--grpc-client tonic` makes the bench call with it too.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Uri};
use prost::Message;
use tonic::{Code, Status};

use super::BoxError;
use crate::pb;

/// One HTTP/2 connection; clones share it (each clone may keep a call in flight).
#[derive(Clone)]
pub(crate) struct LeanClient {
    send: h2::client::SendRequest<Bytes>,
    submit_job: Uri,
    submit_jobs: Uri,
    run_job: Uri,
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
        let mut b = h2::client::Builder::new();
        // Far above one answer, so no call waits for a WINDOW_UPDATE.
        b.initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 22);
        let send = if coalesce {
            let (send, conn) = b
                .handshake(crate::net::coalesce::Coalesced::h2(tcp))
                .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            send
        } else {
            let (send, conn) = b.handshake(tcp).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            send
        };
        let uri = |m: &str| format!("http://{addr}/taskhive.v1.Scheduler/{m}").parse::<Uri>();
        Ok(LeanClient {
            send,
            submit_job: uri("SubmitJob")?,
            submit_jobs: uri("SubmitJobs")?,
            run_job: uri("RunJob")?,
        })
    }

    /// Unary `RunJob`: submits and waits for the job's result.
    pub(crate) async fn run_job(
        &mut self,
        req: pb::SubmitJobRequest,
    ) -> Result<pb::RunJobResponse, Status> {
        let uri = self.run_job.clone();
        self.unary(uri, &req).await
    }

    /// Unary `SubmitJob`.
    pub(crate) async fn submit_job(
        &mut self,
        req: pb::SubmitJobRequest,
    ) -> Result<pb::SubmitJobResponse, Status> {
        let uri = self.submit_job.clone();
        self.unary(uri, &req).await
    }

    /// Unary `SubmitJobs`.
    pub(crate) async fn submit_jobs(
        &mut self,
        req: pb::SubmitJobsRequest,
    ) -> Result<pb::SubmitJobsResponse, Status> {
        let uri = self.submit_jobs.clone();
        self.unary(uri, &req).await
    }

    async fn unary<Q: Message, R: Message + Default>(
        &mut self,
        uri: Uri,
        msg: &Q,
    ) -> Result<R, Status> {
        let mut body = BytesMut::with_capacity(5 + msg.encoded_len());
        body.put_u8(0);
        body.put_u32(msg.encoded_len() as u32);
        msg.encode(&mut body)
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut req = Request::new(());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("te", HeaderValue::from_static("trailers"));

        let mut send = self.send.clone().ready().await.map_err(unavailable)?;
        let (answer, mut stream) = send.send_request(req, false).map_err(unavailable)?;
        stream.send_data(body.freeze(), true).map_err(unavailable)?;
        let answer = answer.await.map_err(unavailable)?;
        if let Some(s) = status_of(answer.headers()) {
            // A trailers-only answer: an error before any message.
            return Err(s);
        }
        let mut recv = answer.into_body();
        let mut got = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await.map_err(unavailable)?;
        let trailers = trailers.ok_or_else(|| Status::internal("no trailers"))?;
        if let Some(s) = status_of(&trailers) {
            return Err(s);
        }
        if got.len() < 5 || got[0] != 0 {
            return Err(Status::internal("malformed gRPC message"));
        }
        let mut got = got.freeze();
        got.advance(1);
        let len = got.get_u32() as usize;
        if got.len() != len {
            return Err(Status::internal("gRPC message length mismatch"));
        }
        R::decode(got).map_err(|e| Status::internal(e.to_string()))
    }
}

/// The call's status from `grpc-status` (and `grpc-message`) when it is not OK; `None` for OK
/// or absent.
fn status_of(h: &http::HeaderMap) -> Option<Status> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    if code == 0 {
        return None;
    }
    let msg = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    Some(Status::new(Code::from_i32(code), msg.to_string()))
}

fn unavailable(e: h2::Error) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client against a real in-process server: an answer decodes, and an error's
    /// status comes back from the trailers with its code and message.
    #[tokio::test]
    async fn calls_a_real_server_and_reads_errors_from_the_trailers() {
        let dir = super::super::tempfile_dir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::run(
            listener,
            crate::config::Config::new(&dir),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut c = LeanClient::connect(&addr).await.unwrap();
        let job = |name: &str| pb::SubmitJobRequest {
            task: "lean".into(),
            name: name.into(),
            args: Bytes::from_static(b"x"),
            ..Default::default()
        };
        let a = c.submit_job(job("a")).await.unwrap();
        let b = c.submit_job(job("b")).await.unwrap();
        assert!(a.job_id > 0 && b.job_id > a.job_id, "{a:?} then {b:?}");
        let many = c
            .submit_jobs(pb::SubmitJobsRequest {
                jobs: vec![job("c"), job("d")],
            })
            .await
            .unwrap();
        assert_eq!(many.jobs.len(), 2);

        let bad = c.submit_job(job("")).await.unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().contains("name"), "names the field: {bad:?}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}
