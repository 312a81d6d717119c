//! The one-job-per-call path's unary methods (`Scheduler/SubmitJob`, `SubmitJobs`,
//! `RunJob`) served without tonic's generic unary machinery: the request's one message read
//! whole from the body and decoded, the same `SchedulerService` method called, and the
//! answer written as one DATA frame and the `grpc-status` trailer.
//!
//! Why: tonic serves a unary call through its streaming codec both ways (a `Streaming`
//! decoder with its own buffer and state machine, a boxed service future, an `EncodeBody`
//! stream), which `bench/profile-unary` counted at about 8 % of the server's instructions
//! per SubmitJob. What the service sees is the same `tonic::Request` (metadata from the
//! headers and any trailers, the connection's extensions), and what the client reads is
//! what tonic writes: the answer's headers, its message, `grpc-status: 0`; an error as a
//! trailers-only response from [`Status::into_http`]. Only plain calls come here
//! ([`UnaryCalls::takes`]): a compressed one, or anything but HTTP/2 with gRPC's protobuf
//! content type, goes to tonic's service as before, which answers or refuses it as it
//! always did.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use prost::Message;
use tonic::Status;

use crate::net::ReqBody;
use crate::pb::scheduler_server::Scheduler;
use crate::rpc::scheduler::SchedulerService;
use crate::rpc::wire;

/// A method served here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    SubmitJob,
    SubmitJobs,
    RunJob,
}

impl Method {
    fn of(path: &str) -> Option<Method> {
        match path {
            "/taskhive.v1.Scheduler/SubmitJob" => Some(Method::SubmitJob),
            "/taskhive.v1.Scheduler/SubmitJobs" => Some(Method::SubmitJobs),
            "/taskhive.v1.Scheduler/RunJob" => Some(Method::RunJob),
            _ => None,
        }
    }
}

/// The unary methods served by hand over the Scheduler's service; cheap to clone.
#[derive(Clone)]
pub(super) struct UnaryCalls {
    service: Arc<SchedulerService>,
    /// The largest request message accepted (tonic's `max_decoding_message_size`).
    limit: usize,
}

impl UnaryCalls {
    pub(super) fn new(service: SchedulerService, limit: usize) -> Self {
        UnaryCalls {
            service: Arc::new(service),
            limit,
        }
    }

    /// The method `req` calls when this serves it: HTTP/2, gRPC's protobuf content type, no
    /// compression. (The caller has already told gRPC from HTTP by content type.)
    pub(super) fn takes<B>(req: &Request<B>) -> Option<Method> {
        let h = req.headers();
        let plain = req.version() == http::Version::HTTP_2
            && h.get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/grpc" || v == "application/grpc+proto")
            && h.get("grpc-encoding").is_none_or(|v| v == "identity");
        Method::of(req.uri().path()).filter(|_| plain)
    }

    /// Serves one call of `method`; every failure is the call's gRPC status.
    pub(super) async fn call(
        self,
        method: Method,
        req: Request<ReqBody>,
    ) -> Result<Response<Body>, Infallible> {
        let s = &*self.service;
        Ok(match method {
            Method::SubmitJob => answer(serve(req, self.limit, |r| s.submit_job(r)).await),
            Method::SubmitJobs => answer(serve(req, self.limit, |r| s.submit_jobs(r)).await),
            Method::RunJob => answer(serve(req, self.limit, |r| s.run_job(r)).await),
        })
    }
}

/// Reads `req`'s message and hands it, as tonic would, to `method`.
async fn serve<Q, R, F>(
    req: Request<ReqBody>,
    limit: usize,
    method: impl FnOnce(tonic::Request<Q>) -> F,
) -> Result<tonic::Response<R>, Status>
where
    Q: Message + Default,
    F: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
{
    let (mut parts, body) = req.into_parts();
    let (msg, trailers) = read_message::<Q, _>(body, limit).await?;
    // As tonic does: the request's trailers are metadata too.
    parts.headers.extend(trailers.unwrap_or_default());
    method(tonic::Request::from_http(Request::from_parts(parts, msg))).await
}

/// The HTTP answer to a call: its message and `grpc-status: 0`, or its status alone.
fn answer<R: Message>(r: Result<tonic::Response<R>, Status>) -> Response<Body> {
    match r {
        Ok(r) => {
            let (metadata, msg, extensions) = r.into_parts();
            let mut res = Response::new(Body::new(OneMessage::new(&msg)));
            *res.headers_mut() = metadata.into_headers();
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            *res.extensions_mut() = extensions;
            res
        }
        Err(s) => s.into_http(),
    }
}

/// Reads a unary request's one message (and any trailers) from `body`, refusing what tonic
/// refuses, with its words.
async fn read_message<M: Message + Default, B>(
    mut body: B,
    limit: usize,
) -> Result<(M, Option<HeaderMap>), Status>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Most calls arrive as one DATA frame, kept as it came; a body of more is joined.
    let mut whole: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::from_error(e.into()))?;
        let data = match frame.into_data() {
            Ok(d) => d,
            Err(f) => {
                trailers = f.into_trailers().ok();
                continue;
            }
        };
        if whole.is_none() && joined.is_empty() {
            whole = Some(data);
        } else {
            joined.extend_from_slice(&whole.take().unwrap_or_default());
            joined.extend_from_slice(&data);
        }
        // Refused as it arrives, not once all of it has.
        let so_far = whole.as_deref().unwrap_or(&joined);
        if so_far.len() > wire::PREFIX + limit {
            return Err(too_large(so_far, limit));
        }
    }
    let buf = whole.unwrap_or_else(|| joined.freeze());
    if wire::declared_len(&buf).is_some_and(|n| n > limit) {
        return Err(too_large(&buf, limit));
    }
    let msg = M::decode(wire::one(buf)?).map_err(|e| Status::internal(e.to_string()))?;
    Ok((msg, trailers))
}

/// tonic's refusal of a message above the limit (its length from the prefix).
fn too_large(prefix: &[u8], limit: usize) -> Status {
    let len = wire::declared_len(prefix).unwrap_or(0);
    Status::out_of_range(format!(
        "Error, decoded message length too large: found {len} bytes, the limit is: {limit} bytes"
    ))
}

/// An answer's body: one gRPC message, then the `grpc-status: 0` trailer.
struct OneMessage {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl OneMessage {
    fn new(msg: &impl Message) -> Self {
        let mut data = BytesMut::new();
        wire::put(&mut data, msg);
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
        OneMessage {
            data: Some(data.freeze()),
            trailers: Some(trailers),
        }
    }
}

impl HttpBody for OneMessage {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(d) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{SubmitJobRequest, SubmitJobResponse};
    use futures_util::stream;
    use http_body_util::StreamBody;

    /// A request body of these frames.
    type Frames = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    fn body(frames: Vec<Frame<Bytes>>) -> Frames {
        StreamBody::new(stream::iter(frames.into_iter().map(Ok).collect::<Vec<_>>()))
    }

    fn framed(msg: &impl Message) -> Bytes {
        let mut b = BytesMut::new();
        wire::put(&mut b, msg);
        b.freeze()
    }

    fn job() -> SubmitJobRequest {
        SubmitJobRequest {
            task: "t".into(),
            name: "n".into(),
            args: Bytes::from_static(b"payload"),
            ..Default::default()
        }
    }

    async fn read(
        frames: Vec<Frame<Bytes>>,
        limit: usize,
    ) -> Result<(SubmitJobRequest, Option<HeaderMap>), Status> {
        read_message::<SubmitJobRequest, _>(body(frames), limit).await
    }

    #[tokio::test]
    async fn reads_one_message_whole_or_split_with_its_trailers() {
        let whole = framed(&job());
        let (m, t) = read(vec![Frame::data(whole.clone())], 1024).await.unwrap();
        assert_eq!(m, job());
        assert!(t.is_none());

        let mut trailers = HeaderMap::new();
        trailers.insert("x-k", HeaderValue::from_static("v"));
        let split = vec![
            Frame::data(whole.slice(..3)),
            Frame::data(whole.slice(3..9)),
            Frame::data(whole.slice(9..)),
            Frame::trailers(trailers),
        ];
        let (m, t) = read(split, 1024).await.unwrap();
        assert_eq!(m, job());
        assert_eq!(t.unwrap()["x-k"], "v");
    }

    #[tokio::test]
    async fn refuses_what_tonic_refuses_with_its_codes() {
        let whole = framed(&job());
        let code = |r: Result<_, Status>| r.unwrap_err().code();
        assert_eq!(
            code(read(vec![], 1024).await),
            tonic::Code::Internal,
            "no message"
        );
        assert_eq!(
            code(read(vec![Frame::data(whole.slice(..4))], 1024).await),
            tonic::Code::Internal,
            "a short prefix"
        );
        assert_eq!(
            code(read(vec![Frame::data(whole.slice(..whole.len() - 1))], 1024).await),
            tonic::Code::Internal,
            "a short message"
        );
        let mut compressed = whole.to_vec();
        compressed[0] = 1;
        assert_eq!(
            code(read(vec![Frame::data(compressed.into())], 1024).await),
            tonic::Code::Internal,
            "compressed"
        );
        let two = [whole.clone(), whole.clone()].concat();
        assert_eq!(
            code(read(vec![Frame::data(two.into())], 1024).await),
            tonic::Code::Internal,
            "two messages"
        );

        let limit = whole.len() - 6;
        let e = read(vec![Frame::data(whole.clone())], limit)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
        assert!(
            e.message()
                .contains(&format!("found {} bytes", whole.len() - 5)),
            "{e:?}"
        );
        // Refused as it arrives, not once all of it has.
        let e = read(
            vec![
                Frame::data(whole.slice(..8)),
                Frame::data(Bytes::from(vec![0; 64])),
            ],
            4,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    }

    #[tokio::test]
    async fn answers_one_message_then_grpc_status_0() {
        let answer = SubmitJobResponse {
            job_id: 7,
            replaced: false,
            running: false,
        };
        let mut b = OneMessage::new(&answer);
        let data = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, framed(&answer));
        let t = b.frame().await.unwrap().unwrap().into_trailers().unwrap();
        assert_eq!(t["grpc-status"], "0");
        assert!(b.is_end_stream());
        assert!(b.frame().await.is_none());
    }

    #[test]
    fn takes_only_plain_http2_grpc_calls_of_its_methods() {
        let req = |path: &str, ct: &str, enc: Option<&str>, v: http::Version| {
            let mut b = Request::builder()
                .uri(path)
                .version(v)
                .header("content-type", ct);
            if let Some(e) = enc {
                b = b.header("grpc-encoding", e);
            }
            b.body(()).unwrap()
        };
        let h2 = http::Version::HTTP_2;
        const PATH: &str = "/taskhive.v1.Scheduler/SubmitJob";
        let takes = |r: Request<()>| UnaryCalls::takes(&r);
        assert_eq!(
            takes(req(PATH, "application/grpc", None, h2)),
            Some(Method::SubmitJob)
        );
        assert_eq!(
            takes(req(PATH, "application/grpc+proto", Some("identity"), h2)),
            Some(Method::SubmitJob)
        );
        assert_eq!(takes(req(PATH, "application/grpc", Some("gzip"), h2)), None);
        assert_eq!(takes(req(PATH, "application/grpc-web", None, h2)), None);
        let h1 = http::Version::HTTP_11;
        assert_eq!(takes(req(PATH, "application/grpc", None, h1)), None);
        let other = |m: &str| {
            let path = format!("/taskhive.v1.Scheduler/{m}");
            takes(req(&path, "application/grpc", None, h2))
        };
        assert_eq!(other("SubmitJobs"), Some(Method::SubmitJobs));
        assert_eq!(other("RunJob"), Some(Method::RunJob));
        assert_eq!(other("Work"), None, "streams stay with tonic");
        assert_eq!(other("SubmitJobX"), None);
    }

    /// A real server takes a plain call on this path, not tonic's: a SubmitJob of two
    /// messages is refused with this module's words (tonic would read the first and go on).
    #[tokio::test]
    async fn a_real_servers_plain_calls_come_here() {
        let server = super::super::TestServe::start().await;
        let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let req = Request::post(format!(
            "http://{}/taskhive.v1.Scheduler/SubmitJob",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (answer, mut out) = send.send_request(req, false).unwrap();
        let one = framed(&job());
        out.send_data([one.clone(), one].concat().into(), true)
            .unwrap();
        let answer = answer.await.unwrap();
        let e = wire::status(answer.headers()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
        assert!(e.message().contains("one message"), "{e:?}");
        server.stop().await;
    }
}
