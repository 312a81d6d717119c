//! One Periodic connection: handshake, then requests converted to scheduler calls.
//!
//! Like the gRPC face it holds no scheduling logic. What it does keep is per-connection
//! bookkeeping Periodic needs and gRPC does not: a worker's grab slots (each `GRAB_JOB`
//! msgid is one job in flight, so their count is the worker's capacity) and the map from a
//! job handle (func, name) to the lease the scheduler gave it.
//!
//! Timeouts (`serve --header-read-timeout`, `--idle-timeout`): the client-type frame must
//! arrive within the header-read timeout after accept. After that, a connection that sends
//! nothing for the idle timeout is closed, unless it is a registered worker (it sent
//! CAN_DO or BROADCAST: a worker waiting for jobs may be quiet for hours, and Periodic
//! workers ping on their own) or it waits on a RUN_JOB result or a RECV_DATA watch. A
//! worker whose host vanished without closing is found by TCP keepalive (probes after
//! `--keepalive-interval` of silence, dropped after 3 unanswered 10 s apart; TCP only).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::command::{code, encode_job, parse, reply, Handle, PJob, Request};
use super::frame;
use crate::admission::{Gate, Timeout};
use crate::face_limits::Limits;
use crate::scheduler::actor::{worker_channel, JobEvent, ToWorker, WorkerTx};
use crate::scheduler::durable::Demand;
use crate::scheduler::job::{JobKey, JobView, LeaseId, Outcome, WorkerId};
use crate::scheduler::submit::SubmitRequest;
use crate::scheduler::{Error, SchedulerHandle, Stale};

/// What every connection shares.
#[derive(Clone)]
pub struct Face {
    /// The scheduler.
    pub h: SchedulerHandle,
    /// Submission limits (same as gRPC).
    pub limits: Limits,
    /// The client-type frame must arrive within this after accept.
    pub header_timeout: Duration,
    /// A connection that sends nothing for this long is closed, unless it is a registered
    /// worker or waits on a RUN_JOB result or a RECV_DATA watch.
    pub idle_timeout: Duration,
    /// TCP connections: keepalive probes start after this much silence.
    pub keepalive: Duration,
    /// Counts closes for a timeout (and admitted the connection).
    pub gate: Arc<Gate>,
}

type Msgid = [u8; 4];

struct Session {
    face: Face,
    out: mpsc::UnboundedSender<Bytes>,
    worker: Option<WorkerId>,
    jobs_tx: WorkerTx,
    slots: HashSet<Msgid>,
    free: VecDeque<Msgid>,
    waiting: VecDeque<JobView>,
    handles: HashMap<Handle, LeaseId>,
    /// RUN_JOB results and RECV_DATA watches still to be answered.
    waits: Arc<AtomicUsize>,
    /// One permit per SUBMIT_JOB in flight (queued, not yet answered), at most
    /// [`SUBMITS_IN_FLIGHT`]: a client that pipelines more waits while its reads stop. Any
    /// other request takes them all first, so it sees every earlier submit committed.
    submits: Arc<Semaphore>,
}

/// A RUN_JOB or RECV_DATA the connection waits on; the idle timeout spares it meanwhile.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(n: &Arc<AtomicUsize>) -> Waiting {
        n.fetch_add(1, Ordering::Relaxed);
        Waiting(n.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// SUBMIT_JOBs one connection may have in flight (the same bound as a SubmitStream's).
const SUBMITS_IN_FLIGHT: u32 = 64;

/// SUCCESS, or UNKNOWN for a refusal (Periodic has no error codes; the reason is logged).
fn answer(msgid: Msgid, r: Result<(), Error>) -> Bytes {
    match r {
        Ok(()) => reply(msgid, code::SUCCESS, &[]),
        Err(e) => {
            tracing::debug!(reason = e.reason(), error = %e, "periodic request refused");
            reply(msgid, code::UNKNOWN, &[])
        }
    }
}

/// Serves one connection until it closes or sends something unreadable.
pub async fn serve<S>(face: Face, stream: S, conn_id: u64)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(p) = out_rx.recv().await {
            let mut buf = BytesMut::from(&frame::encode(&p)[..]);
            while let Ok(more) = out_rx.try_recv() {
                buf.extend_from_slice(&frame::encode(&more));
            }
            if wr.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let (jobs_tx, mut jobs_rx) = worker_channel();
    let max_len = face.limits.message_limit();
    let mut s = Session {
        face,
        out,
        worker: None,
        jobs_tx,
        slots: HashSet::new(),
        free: VecDeque::new(),
        waiting: VecDeque::new(),
        handles: HashMap::new(),
        waits: Arc::new(AtomicUsize::new(0)),
        submits: Arc::new(Semaphore::new(SUBMITS_IN_FLIGHT as usize)),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut greeted = false;
    // One timer, reset lazily: a read only notes its time; when the timer fires it either
    // closes the connection or moves itself to the new deadline.
    let mut last_read = Instant::now();
    let timer = tokio::time::sleep_until(last_read + s.face.header_timeout);
    tokio::pin!(timer);
    'conn: loop {
        tokio::select! {
            () = &mut timer => {
                let now = Instant::now();
                let idle = s.face.idle_timeout;
                let (timeout, next) = if !greeted {
                    (Some(Timeout::Header), now)
                } else if s.worker.is_some() || s.waits.load(Ordering::Relaxed) > 0 {
                    (None, now + idle)
                } else if now >= last_read + idle {
                    (Some(Timeout::Idle), now)
                } else {
                    (None, last_read + idle)
                };
                if let Some(t) = timeout {
                    s.face.gate.timed_out(t);
                    tracing::debug!(conn_id, reason = t.label(), "periodic: closing connection on timeout");
                    break 'conn;
                }
                timer.as_mut().reset(next);
            }
            n = rd.read_buf(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(_) => {}
                }
                last_read = Instant::now();
                loop {
                    let payload = match frame::decode(&mut buf, max_len) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(conn_id, error = %e, "periodic: closing connection");
                            break 'conn;
                        }
                    };
                    if !greeted {
                        // The first frame is the client type (1 client, 2 worker; 3/4 with auth).
                        if payload.len() != 1 || !(1..=4).contains(&payload[0]) {
                            break 'conn;
                        }
                        greeted = true;
                        timer.as_mut().reset(last_read + s.face.idle_timeout);
                        let _ = s.out.send(Bytes::copy_from_slice(&(conn_id as u32).to_be_bytes()));
                        continue;
                    }
                    s.request(&payload).await;
                }
            }
            // Periodic has no cancel: a cancelled job's late report is answered as for a
            // removed job.
            Some(m) = jobs_rx.recv() => if let ToWorker::Job(job) = m { s.assign(job) },
        }
    }
    if let Some(w) = s.worker {
        s.face.h.worker_gone(w);
    }
    drop(s);
    let _ = writer.await;
}

impl Session {
    fn send(&self, msgid: Msgid, cmd: u8, body: &[u8]) {
        let _ = self.out.send(reply(msgid, cmd, body));
    }

    fn ok(&self, msgid: Msgid, r: Result<(), Error>) {
        let _ = self.out.send(answer(msgid, r));
    }

    async fn request(&mut self, payload: &[u8]) {
        let (msgid, req) = match parse(payload) {
            Ok(x) => x,
            Err((msgid, e)) => {
                tracing::debug!(error = %e, "periodic: unreadable request");
                self.send(msgid, code::UNKNOWN, &[]);
                return;
            }
        };
        let h = self.face.h.clone();
        if !matches!(
            req,
            Request::SubmitJob(_)
                | Request::Noop
                | Request::JobAssigned
                | Request::Ping
                | Request::Sleep
        ) {
            // Requests are applied in the order the connection sent them: whatever follows
            // a pipelined SUBMIT_JOB waits for its commit.
            drop(self.submits.acquire_many(SUBMITS_IN_FLIGHT).await);
        }
        match req {
            Request::Noop | Request::JobAssigned => {}
            Request::Ping => self.send(msgid, code::PONG, &[]),
            Request::Sleep => self.send(msgid, code::NOOP, &[]),
            Request::SubmitJob(j) => match self.spec(j) {
                Err(e) => self.ok(msgid, Err(e)),
                Ok(spec) => {
                    // Queued now, in order; answered once committed. A client that pipelines
                    // submits (aio-periodic does, by message id) gets them group-committed
                    // together instead of one commit per round trip.
                    // Held until its commit resolves (the store's bounded backlog).
                    let admitted = h.admit(Demand::of([&spec])).await;
                    let submitted = h.submit_each(vec![spec]);
                    let held = self.submits.clone().acquire_owned().await;
                    let out = self.out.clone();
                    tokio::spawn(async move {
                        let r = match submitted.await {
                            Ok((mut replies, commit)) => match replies.pop() {
                                Some(Ok(_)) => {
                                    commit.wait().await.map_err(|e| Error::Store(e.to_string()))
                                }
                                Some(Err(e)) => Err(e),
                                None => Err(Error::ShuttingDown),
                            },
                            Err(e) => Err(e),
                        };
                        let _ = out.send(answer(msgid, r));
                        drop((held, admitted));
                    });
                }
            },
            Request::RunJob(j) => {
                let spec = self.run_spec(j);
                let out = self.out.clone();
                let waiting = Waiting::new(&self.waits);
                tokio::spawn(async move {
                    let _waiting = waiting;
                    let payload = match spec {
                        Err(_) => reply(msgid, code::UNKNOWN, &[]),
                        Ok(spec) => match h.run_job(spec).await {
                            Ok((_, result)) => reply(msgid, code::DATA, &result),
                            Err(Error::NoWorker { .. }) => reply(msgid, code::NO_WORKER, &[]),
                            Err(_) => reply(msgid, code::DATA, b"failed"),
                        },
                    };
                    let _ = out.send(payload);
                });
            }
            Request::RecvData(j) => {
                let mut rx = match h.watch(j.func, j.name).await {
                    Ok(rx) => rx,
                    Err(e) => {
                        tracing::warn!(error = %e, "RecvData: cannot watch the job");
                        self.send(msgid, code::UNKNOWN, &[]);
                        return;
                    }
                };
                self.send(msgid, code::SUCCESS, &[]);
                let out = self.out.clone();
                let waiting = Waiting::new(&self.waits);
                tokio::spawn(async move {
                    let _waiting = waiting;
                    while let Some(ev) = rx.recv().await {
                        let (body, end) = match &ev {
                            JobEvent::Data(b) => (&b[..], false),
                            JobEvent::Finished(_) => (&b"EOF"[..], true),
                        };
                        if out.send(reply(msgid, code::DATA, body)).is_err() || end {
                            return;
                        }
                    }
                });
            }
            Request::RemoveJob { func, name } => {
                // Periodic answers success whether or not the job existed.
                let _ = h.remove(JobKey::Name { task: func, name }).await;
                self.send(msgid, code::SUCCESS, &[]);
            }
            Request::DropFunc(func) => {
                // As Periodic: dropped only when no worker serves it, answered success either way.
                let _ = h.drop_task(func).await;
                self.send(msgid, code::SUCCESS, &[]);
            }
            Request::Status => {
                let body = status_lines(&h).await;
                self.send(msgid, code::DATA, body.as_bytes());
            }
            Request::ConfigGet(key) => {
                let v = h
                    .get_config(key.clone())
                    .await
                    .ok()
                    .and_then(|m| m.get(&key).copied());
                self.send(msgid, code::CONFIG, &(v.unwrap_or(0) as i32).to_be_bytes());
            }
            Request::ConfigSet(key, v) => {
                let r = h.set_config(key, v as i64).await;
                self.ok(msgid, r);
            }
            Request::CanDo(func) => {
                let r = self.register(vec![func], Vec::new()).await;
                self.ok(msgid, r);
            }
            Request::Broadcast(func) => {
                let r = self.register(Vec::new(), vec![func]).await;
                self.ok(msgid, r);
            }
            Request::CantDo(func) => {
                if let Some(w) = self.worker {
                    h.unregister_task(w, func);
                }
                self.send(msgid, code::SUCCESS, &[]);
            }
            Request::GrabJob => {
                // A new msgid is one more job this worker runs at once.
                if self.slots.insert(msgid) && self.worker.is_some() {
                    let _ = self.register(Vec::new(), Vec::new()).await;
                }
                if !self.free.contains(&msgid) {
                    self.free.push_back(msgid);
                }
                self.send(msgid, code::SUCCESS, &[]);
                while !self.free.is_empty() {
                    let Some(job) = self.waiting.pop_front() else {
                        break;
                    };
                    self.assign(job);
                }
            }
            Request::WorkDone { handle, data } => {
                let r = self.report(&handle, Outcome::Done { result: data }).await;
                self.ok(msgid, r);
            }
            Request::WorkFail { handle } => {
                let o = Outcome::Fail {
                    error: "worker sent WORK_FAIL".into(),
                    retry: true,
                };
                let r = self.report(&handle, o).await;
                self.ok(msgid, r);
            }
            Request::SchedLater {
                handle,
                delay,
                step,
            } => {
                let o = Outcome::SchedLater {
                    delay_ms: delay.saturating_mul(1000),
                    count_step: step as u32,
                };
                let r = self.report(&handle, o).await;
                self.ok(msgid, r);
            }
            Request::WorkData { handle, data } => {
                let r = match self.handles.get(&handle) {
                    Some(&lease) => h.work_data(lease, data).await,
                    None => Err(stale(&handle)),
                };
                self.ok(msgid, r);
            }
            Request::Acquire {
                name,
                count,
                handle,
            } => {
                let got = match self.handles.get(&handle) {
                    Some(&lease) => h
                        .acquire_lock(lease, name, count as u32)
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                if !got {
                    // The job now waits for the lock; the worker treats it as finished.
                    self.handles.remove(&handle);
                }
                self.send(msgid, code::ACQUIRED, &[u8::from(got)]);
            }
            Request::Release { name, handle } => {
                let r = match self.handles.get(&handle) {
                    Some(&lease) => h.release_lock(lease, name).await,
                    None => Err(stale(&handle)),
                };
                self.ok(msgid, r);
            }
        }
    }

    /// Registers this connection as a worker (first CAN_DO) or updates its tasks and capacity.
    async fn register(&mut self, tasks: Vec<String>, broadcast: Vec<String>) -> Result<(), Error> {
        let capacity = self.slots.len() as u32;
        let tx = self.worker.is_none().then(|| self.jobs_tx.clone());
        let w = self
            .face
            .h
            .register(self.worker, tasks, broadcast, capacity, tx)
            .await?;
        self.worker = Some(w);
        Ok(())
    }

    async fn report(&mut self, handle: &Handle, o: Outcome) -> Result<(), Error> {
        let lease = self.handles.remove(handle).ok_or_else(|| stale(handle))?;
        self.face.h.report(lease, o).await
    }

    /// Hands a leased job to a free grab slot, or holds it until the worker asks again.
    fn assign(&mut self, job: JobView) {
        let Some(msgid) = self.free.pop_front() else {
            self.waiting.push_back(job);
            return;
        };
        let r = &job.record;
        let pj = PJob {
            func: r.task.clone(),
            name: r.name.clone(),
            workload: r.args.clone(),
            sched_at: r.sched_at.div_euclid(1000),
            count: r.run_count as i32,
            timeout: (r.timeout_ms / 1000) as i32,
        };
        self.handles.insert(
            Handle {
                func: pj.func.clone(),
                name: pj.name.clone(),
            },
            job.lease.expect("assigned jobs carry a lease"),
        );
        let mut body = BytesMut::new();
        encode_job(&mut body, &pj);
        self.send(msgid, code::JOB_ASSIGN, &body);
    }

    fn spec(&self, j: PJob) -> Result<crate::scheduler::job::JobSpec, Error> {
        self.spec_for(j, false)
    }

    fn run_spec(&self, j: PJob) -> Result<crate::scheduler::job::JobSpec, Error> {
        self.spec_for(j, true)
    }

    fn spec_for(&self, j: PJob, run: bool) -> Result<crate::scheduler::job::JobSpec, Error> {
        // 0 = the server's "timeout" setting, applied by the scheduler.
        let timeout_s = j.timeout;
        let req = SubmitRequest {
            task: j.func,
            name: j.name,
            // A copy: a view would pin the whole received frame buffer.
            args: bytes::Bytes::copy_from_slice(&j.workload),
            sched_at_ms: j.sched_at.saturating_mul(1000),
            timeout_ms: (timeout_s > 0).then_some(timeout_s as i64 * 1000),
            ..SubmitRequest::default()
        };
        let now = self.face.h.clock().now_ms();
        req.validate(&self.face.limits.submit(), now, run)
    }
}

fn stale(h: &Handle) -> Error {
    Error::StaleLease(Stale::NotHeldByWorker {
        task: h.func.clone(),
        name: h.name.clone(),
    })
}

/// STATUS body: `func,workers,jobs,processing,locked,sched_at` per line.
pub(crate) async fn status_lines(h: &SchedulerHandle) -> String {
    let Ok((tasks, _)) = h.status(None).await else {
        return String::new();
    };
    tasks
        .iter()
        .map(|t| {
            format!(
                "{},{},{},{},{},{}",
                t.task,
                t.workers,
                t.pending + t.scheduled + t.running + t.locked,
                t.running,
                t.locked,
                t.next_sched_at.map_or(0, |ms| ms.div_euclid(1000))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
