//! Shared test harness: a real server on 127.0.0.1:0 and real gRPC clients and workers.
#![allow(dead_code)]

pub mod beetle;
pub mod child;
pub mod cluster;
pub mod otlp;
pub mod periodic;
pub mod pg;
pub mod stores;
pub mod target;
pub mod tls_target;

// Not every test binary uses it.
#[allow(unused_imports)]
pub use pg::free_port;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use taskhive::config::Config;
use taskhive::pb::{self, scheduler_client::SchedulerClient};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// `/metrics` over a fresh HTTP/1 connection from `from` (None: the default source).
pub async fn metrics_from(addr: SocketAddr, from: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = match from {
        None => tokio::net::TcpStream::connect(addr).await.unwrap(),
        Some(ip) => {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            sock.connect(addr).await.unwrap()
        }
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    within(10, s.read_to_end(&mut out)).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of one series in a `/metrics` text (0 when absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Fails the test when `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out waiting for an event")
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tweak).await
    }

    /// Starts a server over an existing data directory (restart tests).
    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::new(dir.path());
        config.shutdown_grace = Duration::from_millis(500);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            taskhive::server::run(listener, config, async move {
                let _ = rx.await;
            })
            .await
            .expect("server run");
        });
        TestServer {
            addr,
            dir,
            stop: Some(stop),
            join: Some(join),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        within(10, async {
            loop {
                if let Ok(c) = Channel::from_shared(self.url()).unwrap().connect().await {
                    return c;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
    }

    pub async fn client(&self) -> SchedulerClient<Channel> {
        SchedulerClient::new(self.channel().await)
    }

    /// Graceful stop; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        let _ = self.stop.take().unwrap().send(());
        within(10, self.join.take().unwrap()).await.unwrap();
        self.dir
    }

    /// Waits for the server to stop by itself (e.g. after `/quit`); returns its data directory.
    pub async fn wait_stopped(mut self) -> TempDir {
        within(15, self.join.take().unwrap()).await.unwrap();
        self.dir
    }

    pub async fn worker(&self, tasks: &[&str], capacity: u32) -> Worker {
        Worker::connect(self.channel().await, tasks, capacity).await
    }
}

/// A submission with defaults.
pub fn job(task: &str, name: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        task: task.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// A worker on the bidirectional Work stream.
pub struct Worker {
    pub id: String,
    tx: mpsc::Sender<pb::WorkerMessage>,
    inbound: tonic::Streaming<pb::ServerMessage>,
    jobs: VecDeque<pb::Job>,
    acks: VecDeque<pb::ResultAck>,
    locks: VecDeque<pb::AcquireLockResponse>,
    cancels: VecDeque<pb::CancelJob>,
}

impl Worker {
    pub async fn connect(channel: Channel, tasks: &[&str], capacity: u32) -> Worker {
        Self::connect_with(channel, tasks, &[], capacity).await
    }

    pub async fn connect_with(
        channel: Channel,
        tasks: &[&str],
        broadcast: &[&str],
        capacity: u32,
    ) -> Worker {
        let (tx, rx) = mpsc::channel(1024);
        tx.send(pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Hello(pb::WorkerHello {
                tasks: tasks.iter().map(|s| s.to_string()).collect(),
                capacity,
                name: "test".into(),
                broadcast_tasks: broadcast.iter().map(|s| s.to_string()).collect(),
            })),
        })
        .await
        .unwrap();
        let mut inbound = SchedulerClient::new(channel)
            .work(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let welcome = within(10, inbound.message()).await.unwrap().unwrap();
        let id = match welcome.msg {
            Some(pb::server_message::Msg::Welcome(w)) => w.worker_id,
            other => panic!("expected welcome, got {other:?}"),
        };
        Worker {
            id,
            tx,
            inbound,
            jobs: VecDeque::new(),
            acks: VecDeque::new(),
            locks: VecDeque::new(),
            cancels: VecDeque::new(),
        }
    }

    async fn pump(&mut self) {
        let m = self
            .inbound
            .message()
            .await
            .expect("stream error")
            .expect("stream ended");
        match m.msg {
            Some(pb::server_message::Msg::Job(j)) => self.jobs.push_back(j),
            Some(pb::server_message::Msg::Ack(a)) => self.acks.push_back(a),
            Some(pb::server_message::Msg::Lock(l)) => self.locks.push_back(l),
            Some(pb::server_message::Msg::Cancel(c)) => self.cancels.push_back(c),
            _ => {}
        }
    }

    /// The next job pushed to this worker.
    pub async fn next_job(&mut self) -> pb::Job {
        within(20, async {
            loop {
                if let Some(j) = self.jobs.pop_front() {
                    return j;
                }
                self.pump().await;
            }
        })
        .await
    }

    /// The next cancel of a lease this worker holds.
    pub async fn next_cancel(&mut self) -> pb::CancelJob {
        within(20, async {
            loop {
                if let Some(c) = self.cancels.pop_front() {
                    return c;
                }
                self.pump().await;
            }
        })
        .await
    }

    /// The next ack of a result.
    pub async fn next_ack(&mut self) -> pb::ResultAck {
        within(20, async {
            loop {
                if let Some(a) = self.acks.pop_front() {
                    return a;
                }
                self.pump().await;
            }
        })
        .await
    }

    pub async fn send(&self, lease_id: u64, o: pb::outcome::Outcome) {
        self.tx
            .send(pb::WorkerMessage {
                msg: Some(pb::worker_message::Msg::Result(pb::WorkerResult {
                    lease_id,
                    outcome: Some(pb::Outcome { outcome: Some(o) }),
                })),
            })
            .await
            .unwrap();
    }

    /// Reports done and waits for the ack; panics when it is rejected.
    pub async fn done(&mut self, lease_id: u64, result: &[u8]) {
        self.send(
            lease_id,
            pb::outcome::Outcome::Done(pb::Done {
                result: result.to_vec().into(),
            }),
        )
        .await;
        let a = self.next_ack().await;
        assert_eq!(a.lease_id, lease_id);
        assert_eq!(a.error, "", "done rejected");
    }

    /// Takes every job that comes for `secs` and reports each done; their names, in order.
    /// Only the wait for a job is cut short at the deadline, never a report's wait for its
    /// ack: an ack left behind would be taken for the next report's.
    pub async fn run_for(&mut self, secs: u64) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut names = Vec::new();
        while let Ok(j) = tokio::time::timeout_at(deadline, self.next_job()).await {
            names.push(j.name.clone());
            self.done(j.lease_id, b"ok").await;
        }
        names
    }

    pub async fn fail(&mut self, lease_id: u64, error: &str) {
        self.send(
            lease_id,
            pb::outcome::Outcome::Fail(pb::Fail {
                error: error.into(),
                retry: None,
            }),
        )
        .await;
        let a = self.next_ack().await;
        assert_eq!(a.error, "", "fail rejected");
    }

    pub async fn sched_later(&mut self, lease_id: u64, delay_ms: i64, count_step: u32) {
        self.send(
            lease_id,
            pb::outcome::Outcome::SchedLater(pb::SchedLater {
                delay_ms,
                count_step,
            }),
        )
        .await;
        let a = self.next_ack().await;
        assert_eq!(a.error, "", "sched_later rejected");
    }

    /// Sends any worker message.
    pub async fn send_msg(&self, m: pb::worker_message::Msg) {
        self.tx
            .send(pb::WorkerMessage { msg: Some(m) })
            .await
            .unwrap();
    }

    /// Asks for a lock slot and waits for the answer.
    pub async fn acquire(&mut self, lease_id: u64, name: &str, count: u32) -> bool {
        self.send_msg(pb::worker_message::Msg::Acquire(pb::AcquireLockRequest {
            lease_id,
            name: name.into(),
            count,
        }))
        .await;
        within(20, async {
            loop {
                if let Some(l) = self.locks.pop_front() {
                    assert_eq!(l.lease_id, lease_id);
                    return l.acquired;
                }
                self.pump().await;
            }
        })
        .await
    }

    /// Puts a job back so the next `next_job` returns it.
    pub fn jobs_push_front(&mut self, j: pb::Job) {
        self.jobs.push_front(j);
    }

    /// Jobs already received but not yet taken.
    pub fn buffered(&self) -> usize {
        self.jobs.len()
    }
}

/// Status of one task.
pub async fn task_status(c: &mut SchedulerClient<Channel>, task: &str) -> pb::TaskStatus {
    c.status(pb::StatusRequest { task: task.into() })
        .await
        .unwrap()
        .into_inner()
        .tasks
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Setting `key` as the server `c` talks to holds it (GetConfig).
pub async fn setting(c: &mut SchedulerClient<Channel>, key: &str) -> Option<i64> {
    c.get_config(pb::GetConfigRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .values
        .get(key)
        .copied()
}

/// The reference to the job named `name` of `task`.
pub fn job_ref(task: &str, name: &str) -> pb::JobRef {
    pb::JobRef {
        job_id: 0,
        task: task.into(),
        name: name.into(),
    }
}

/// Asserts that GetJob of (task, name) answers NOT_FOUND.
pub async fn assert_no_job(c: &mut SchedulerClient<Channel>, task: &str, name: &str) {
    let err = c
        .get_job(job_ref(task, name))
        .await
        .expect_err("the job should be gone");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
}

/// An upload of `len` bytes in both HTTP/1 framings, as (its framing header line, the body's
/// bytes on the wire): a declared length (a server can refuse it before reading), and one
/// chunk (refused part-way, once the limit is passed).
pub fn both_framings(len: usize) -> [(String, Vec<u8>); 2] {
    let data = vec![b'x'; len];
    let chunked = [
        format!("{len:x}\r\n").into_bytes(),
        data.clone(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    [
        (format!("content-length: {len}"), data),
        ("transfer-encoding: chunked".to_string(), chunked),
    ]
}

/// Asserts that `answer` (all a connection read) is the JSON face's 413 and says the
/// connection closes: hyper closes a connection whose body it did not read, and a client
/// that pooled it would lose its next request.
pub fn assert_closing_413(answer: &[u8], what: &str) {
    let answer = String::from_utf8_lossy(answer);
    assert!(
        answer.starts_with("HTTP/1.1 413 ")
            && answer.to_lowercase().contains("\r\nconnection: close\r\n")
            && answer.contains("body: over the size limit"),
        "{what}: {answer}"
    );
}

/// The `date` an HTTP/2 (prior knowledge) `method` to `http://{addr}{path}` with a JSON
/// `body` is answered with, after checking the answer came over HTTP/2.
pub async fn h2_answer_date(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Option<http::HeaderValue> {
    use http_body_util::{BodyExt, Full};
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let r = within(10, h2.request(req)).await.unwrap();
    assert_eq!(r.version(), http::Version::HTTP_2, "{method} {path}");
    let date = r.headers().get(http::header::DATE).cloned();
    r.into_body().collect().await.unwrap();
    date
}

/// Whether `v` is an HTTP date (RFC 1123, in GMT).
pub fn is_http_date(v: &http::HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|v| chrono::DateTime::parse_from_rfc2822(v).is_ok() && v.ends_with(" GMT"))
}
