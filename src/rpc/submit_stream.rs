//! `SubmitStream`: one job per request message, each acknowledged once, in order, after its
//! commit. Whatever has already arrived is coalesced into one scheduler command, one store
//! commit and one response, so a client gets pipelining without building batches itself.

use futures_util::future::{self, BoxFuture, FutureExt};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::code_of;
use super::convert::submit_spec;
use crate::face_limits::Limits;
use crate::pb;
use crate::scheduler::backend::SubmittedEach;
use crate::scheduler::core::SubmitReply;
use crate::scheduler::durable::{Commit, Demand};
use crate::scheduler::job::TraceParent;
use crate::scheduler::{Error, SchedulerHandle};
use crate::status::code_name;

/// Requests coalesced into one command, commit and response at most.
const MAX_BATCH: usize = 1024;
/// Payload bytes coalesced into one batch at most (the batch closes once it reaches this).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Batches submitted but not yet acknowledged, per stream. It bounds what a client that stops
/// reading its acks can pile up; commits land in order, so acks are sent as they come.
const IN_FLIGHT: usize = 64;

type BoxStream<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

/// A batch handed from the reader to the acker, or the inbound stream's failure.
enum Pending {
    Batch {
        first_seq: u64,
        len: usize,
        /// Requests refused by validation: (index in the batch, why), in order.
        invalid: Vec<(usize, Error)>,
        submitted: BoxFuture<'static, SubmittedEach>,
    },
    Failed(Status),
}

/// Serves one SubmitStream: a reader task submits batches as they arrive, an acker task waits
/// for their commits in order and answers.
pub fn serve(
    h: SchedulerHandle,
    limits: Limits,
    inbound: Streaming<pb::SubmitJobRequest>,
    trace: Option<TraceParent>,
) -> BoxStream<pb::SubmitStreamResponse> {
    let (pending_tx, pending_rx) = mpsc::channel(IN_FLIGHT);
    let (out_tx, out_rx) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(read(h, limits, inbound, pending_tx, trace));
    tokio::spawn(ack(pending_rx, out_tx));
    Box::pin(ReceiverStream::new(out_rx))
}

async fn read(
    h: SchedulerHandle,
    limits: Limits,
    mut inbound: Streaming<pb::SubmitJobRequest>,
    pending: mpsc::Sender<Pending>,
    trace: Option<TraceParent>,
) {
    let mut seq = 0u64;
    let mut batch = Vec::new();
    loop {
        let first = match inbound.next().await {
            None => return,
            Some(Err(s)) => {
                let _ = pending.send(Pending::Failed(s)).await;
                return;
            }
            Some(Ok(m)) => m,
        };
        let mut bytes = first.args.len();
        batch.push(first);
        // Take what has already arrived, without waiting for more.
        let mut end = None;
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match inbound.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    bytes += m.args.len();
                    batch.push(m);
                }
                Some(Some(Err(s))) => {
                    end = Some(Some(s));
                    break;
                }
                Some(None) => {
                    end = Some(None);
                    break;
                }
                None => break,
            }
        }
        let now = h.clock().now_ms();
        let len = batch.len();
        let mut specs = Vec::with_capacity(len);
        let mut invalid = Vec::new();
        for (i, m) in batch.drain(..).enumerate() {
            match submit_spec(m, &limits, now, false) {
                Ok(mut s) => {
                    s.trace = trace;
                    specs.push(s)
                }
                Err(e) => invalid.push((i, e)),
            }
        }
        let submitted = if specs.is_empty() {
            future::ready(Ok((Vec::new(), Commit::done()))).boxed()
        } else {
            // A store far behind holds the stream here (its client's sends then wait on
            // HTTP/2 flow control) instead of queueing more writes.
            let admitted = h.admit(Demand::of(&specs)).await;
            let submitted = h.submit_each(specs);
            async move {
                let (replies, commit) = submitted.await?;
                Ok((replies, commit.holding(admitted)))
            }
            .boxed()
        };
        let b = Pending::Batch {
            first_seq: seq,
            len,
            invalid,
            submitted,
        };
        if pending.send(b).await.is_err() {
            return;
        }
        seq += len as u64;
        match end {
            None => {}
            Some(None) => return,
            Some(Some(s)) => {
                let _ = pending.send(Pending::Failed(s)).await;
                return;
            }
        }
    }
}

async fn ack(
    mut pending: mpsc::Receiver<Pending>,
    out: mpsc::Sender<Result<pb::SubmitStreamResponse, Status>>,
) {
    while let Some(p) = pending.recv().await {
        let (first_seq, len, invalid, submitted) = match p {
            Pending::Batch {
                first_seq,
                len,
                invalid,
                submitted,
            } => (first_seq, len, invalid, submitted),
            Pending::Failed(s) => {
                let _ = out.send(Err(s)).await;
                return;
            }
        };
        // A batch-wide failure (commit refused, scheduler gone) answers each submitted job.
        let (results, failed) = match submitted.await {
            Ok((results, commit)) => {
                let failed = commit
                    .wait()
                    .await
                    .err()
                    .map(|e| Error::Store(e.to_string()));
                (results, failed)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        let mut results = results.into_iter();
        let mut invalid = invalid.into_iter().peekable();
        let mut acks = Vec::with_capacity(len);
        for i in 0..len {
            let seq = first_seq + i as u64;
            let r = match invalid.next_if(|(at, _)| *at == i) {
                Some((_, e)) => Err(e),
                None => match (&failed, results.next()) {
                    (_, Some(Err(e))) => Err(e),
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(Ok(r))) => Ok(r),
                    (None, None) => Err(Error::ShuttingDown),
                },
            };
            acks.push(ack_of(seq, r));
        }
        if out
            .send(Ok(pb::SubmitStreamResponse { acks }))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn ack_of(seq: u64, r: Result<SubmitReply, Error>) -> pb::SubmitAck {
    match r {
        Ok(r) => pb::SubmitAck {
            seq,
            job_id: r.id,
            replaced: r.replaced,
            running: r.running,
            ..Default::default()
        },
        Err(e) => {
            let code = code_of(&e);
            pb::SubmitAck {
                seq,
                error_code: code_name(code).to_string(),
                error: e.to_string(),
                // ErrorCode is numbered as the gRPC codes are.
                code: code as i32,
                reason: e.reason().to_string(),
                ..Default::default()
            }
        }
    }
}
