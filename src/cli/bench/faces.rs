//! One-job submits through the server's other faces, for `submit-json-ext` and
//! `submit-periodic-ext`: the JSON face (`POST /taskhive.v1.Scheduler/SubmitJob`, HTTP/1.1
//! keep-alive, one request per connection at a time, as curl or a web app's HTTP client
//! sends it) and the Periodic protocol's SUBMIT_JOB (requests multiplexed by message id on
//! one connection, as aio-periodic sends them). Both submit the same jobs as `submit`: task
//! `bench-submit`, `a.payload` bytes, due an hour ahead.

use std::collections::HashMap;
use std::time::Instant;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::{hist, result, share, unix_ms, BenchArgs, BenchResult, BoxError};
use crate::periodic::command::{code, encode_request, PJob, Request};
use crate::periodic::frame;

const TASK: &str = "bench-submit";

/// Sums the lanes' histograms into the scenario's result.
async fn gather(
    name: &str,
    n: u64,
    start: Instant,
    lanes: Vec<tokio::task::JoinHandle<Result<Histogram<u64>, BoxError>>>,
) -> Result<BenchResult, BoxError> {
    let mut h = hist();
    for l in lanes {
        h.add(l.await??).ok();
    }
    Ok(result(name, n, start.elapsed(), &h))
}

/// `a.jobs` JSON-face submits from `a.clients × a.pipeline` keep-alive connections.
pub(crate) async fn json_submit_load(a: &BenchArgs, addr: &str) -> Result<BenchResult, BoxError> {
    let lanes = (a.clients * a.pipeline.max(1)) as u64;
    let per = a.jobs / lanes;
    let args = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; a.payload]);
    let sched_at_ms = unix_ms() + 3_600_000;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(lanes as usize)
        .build_http();
    let uri: hyper::Uri = format!("http://{addr}/taskhive.v1.Scheduler/SubmitJob").parse()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (client, uri, args) = (client.clone(), uri.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            for i in 0..per {
                let body = serde_json::json!({
                    "task": TASK,
                    "name": format!("{lane}-{i}"),
                    "args": args,
                    "schedAtMs": sched_at_ms,
                })
                .to_string();
                let req = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let t = Instant::now();
                let resp = client.request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    return Err(format!("JSON SubmitJob: {status} {body:?}").into());
                }
                h.record(t.elapsed().as_micros().max(1) as u64).ok();
            }
            Ok::<_, BoxError>(h)
        }));
    }
    gather("submit-json", per * lanes, start, tasks).await
}

/// `a.jobs` Periodic SUBMIT_JOBs from `a.clients` connections, `a.pipeline` in flight each.
pub(crate) async fn periodic_submit_load(
    a: &BenchArgs,
    addr: &str,
) -> Result<BenchResult, BoxError> {
    let per = a.jobs / a.clients as u64;
    let sched_at = unix_ms() / 1000 + 3_600;
    let workload = Bytes::from(vec![b'x'; a.payload]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..a.clients {
        let conn = PeriodicConn::connect(addr).await?;
        for p in 0..a.pipeline.max(1) as u64 {
            let conn = conn.clone();
            let workload = workload.clone();
            let (i0, n) = share(per, a.pipeline.max(1) as u64, p);
            tasks.push(tokio::spawn(async move {
                let mut h = hist();
                for i in i0..i0 + n {
                    let job = PJob {
                        func: TASK.into(),
                        name: format!("{k}-{i}"),
                        workload: workload.clone(),
                        sched_at,
                        count: 0,
                        timeout: 0,
                    };
                    let t = Instant::now();
                    let reply = conn.call(Request::SubmitJob(job)).await?;
                    if reply.first() != Some(&code::SUCCESS) {
                        return Err(format!("SUBMIT_JOB answered {reply:?}").into());
                    }
                    h.record(t.elapsed().as_micros().max(1) as u64).ok();
                }
                Ok::<_, BoxError>(h)
            }));
        }
    }
    gather("submit-periodic", per * a.clients as u64, start, tasks).await
}

type Waiters = std::sync::Arc<std::sync::Mutex<HashMap<u32, oneshot::Sender<Bytes>>>>;

/// A Periodic client connection: requests are written by the caller's task under a lock,
/// replies are matched to callers by message id by a reader task.
#[derive(Clone)]
struct PeriodicConn {
    write: std::sync::Arc<tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>>,
    waiters: Waiters,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl PeriodicConn {
    async fn connect(addr: &str) -> Result<PeriodicConn, BoxError> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (mut read, mut write) = s.into_split();
        // The client-type byte (1 = client); the server answers with the connection id.
        write.write_all(&frame::encode_request(&[1])).await?;
        let waiters: Waiters = Default::default();
        let w = waiters.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut first = true;
            loop {
                while buf.len() >= 12 {
                    let len = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
                    if buf.len() < 12 + len {
                        break;
                    }
                    let payload = buf.split_to(12 + len).split_off(12).freeze();
                    if std::mem::take(&mut first) || payload.len() < 4 {
                        continue;
                    }
                    let id = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
                    if let Some(tx) = w.lock().expect("poisoned").remove(&id) {
                        let _ = tx.send(payload.slice(4..));
                    }
                }
                match read.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    // Closed: the waiters' senders drop, so their calls fail.
                    _ => {
                        w.lock().expect("poisoned").clear();
                        return;
                    }
                }
            }
        });
        Ok(PeriodicConn {
            write: std::sync::Arc::new(tokio::sync::Mutex::new(write)),
            waiters,
            next_id: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1)),
        })
    }

    /// Sends `req`; its reply's payload after the message id (command byte first).
    async fn call(&self, req: Request) -> Result<Bytes, BoxError> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("poisoned").insert(id, tx);
        let f = frame::encode_request(&encode_request(id, &req));
        self.write.lock().await.write_all(&f).await?;
        Ok(rx.await.map_err(|_| "Periodic connection closed")?)
    }
}
