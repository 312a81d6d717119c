//! An HTTP/2 connection's requests run on the connection's own task, not one task each.
//!
//! hyper hands every HTTP/2 request (the service call, then piping its response body into
//! the stream) to an executor. With Tokio's, each unary call is a task of its own: spawned
//! into the runtime's task list, woken by the commit that answers it, and then waking the
//! connection's task to write the answer, which another poll of that task does. [`ConnTasks`]
//! is a connection's executor instead: it queues the request futures, and the connection's
//! task ([`ConnTasks::serve`]) polls them beside the connection. An answer that becomes ready
//! is queued in h2 in the same poll that writes it, and the answers of one group commit go
//! out together (one wake-up of one task for all of them).
//!
//! What this gives up: a connection's requests share one thread. Every request still does
//! its real work elsewhere (the actor, the store writer, tasks its handler spawns for long
//! streams), and h2's framing of a connection was on one task already.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

/// A connection's executor: what hyper hands it waits in `queued` until the connection's
/// task takes it into [`Running`].
#[derive(Clone, Default)]
pub(crate) struct ConnTasks {
    queued: Arc<Mutex<Vec<BoxFuture<'static, ()>>>>,
}

impl<F> hyper::rt::Executor<F> for ConnTasks
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        // hyper calls this from the connection's own poll (a request accepted), so the
        // task that takes it is running and looks at the queue before it returns.
        self.queued
            .lock()
            .expect("no panic while holding the queue")
            .push(Box::pin(fut));
    }
}

/// The request futures a connection's task is running.
#[derive(Default)]
pub(crate) struct Running {
    set: FuturesUnordered<BoxFuture<'static, ()>>,
}

impl ConnTasks {
    /// Polls `conn` and the requests it started until `conn` ends. Dropping the future
    /// drops the requests still running (the connection is gone: nothing can carry their
    /// answers; hyper drops a request's service future when its stream is reset too).
    pub(crate) fn serve<'a, C: Future + 'a>(
        &'a self,
        mut conn: Pin<&'a mut C>,
        running: &'a mut Running,
    ) -> impl Future<Output = C::Output> + 'a {
        std::future::poll_fn(move |cx| {
            // Requests first: answers that became ready are queued in h2 before the
            // connection's poll writes.
            self.poll_running(running, cx);
            let r = conn.as_mut().poll(cx);
            if r.is_pending() && self.take_queued(running) {
                // Requests the connection just accepted start now: decoding, validation
                // and handing the job to the actor do not wait for another wake-up.
                self.poll_running(running, cx);
            }
            r
        })
    }

    /// Moves newly queued requests into `running`; true when there were any.
    fn take_queued(&self, running: &mut Running) -> bool {
        let mut q = self
            .queued
            .lock()
            .expect("no panic while holding the queue");
        if q.is_empty() {
            return false;
        }
        running.set.extend(q.drain(..));
        true
    }

    fn poll_running(&self, running: &mut Running, cx: &mut Context<'_>) {
        self.take_queued(running);
        // Ends on Pending (every request waits; the set wakes this task when one can go
        // on) or Ready(None) (none left).
        while let Poll::Ready(Some(())) = running.set.poll_next_unpin(cx) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// A stand-in for hyper's connection: starts one request on `tasks`, which answers what
    /// `req` brings plus one, and ends with that answer.
    fn conn_starting_one(
        tasks: &ConnTasks,
        req: oneshot::Receiver<u32>,
    ) -> impl Future<Output = u32> {
        let exec = tasks.clone();
        async move {
            let (done_tx, done_rx) = oneshot::channel();
            hyper::rt::Executor::execute(&exec, async move {
                let v = req.await.expect("request sent");
                done_tx.send(v + 1).expect("connection waiting");
            });
            done_rx.await.expect("request answered")
        }
    }

    #[tokio::test]
    async fn the_connections_task_runs_the_requests_it_starts() {
        // Nothing else polls the request: `serve` must, or this times out.
        let tasks = ConnTasks::default();
        let (req_tx, req_rx) = oneshot::channel();
        let conn = conn_starting_one(&tasks, req_rx);
        tokio::pin!(conn);
        let mut running = Running::default();
        {
            let serving = tasks.serve(conn.as_mut(), &mut running);
            tokio::pin!(serving);
            assert!(futures_util::poll!(serving.as_mut()).is_pending());
            req_tx.send(41).unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), serving)
                .await
                .expect("the request ran and the connection ended");
            assert_eq!(got, 42);
        }
        assert!(running.set.is_empty());
    }

    #[tokio::test]
    async fn requests_still_running_are_dropped_with_the_connection() {
        let tasks = ConnTasks::default();
        let (held_tx, mut held_rx) = oneshot::channel::<()>();
        let exec = tasks.clone();
        let conn = async move {
            hyper::rt::Executor::execute(&exec, async move {
                let _held = held_tx;
                std::future::pending::<()>().await
            });
            std::future::pending::<()>().await
        };
        tokio::pin!(conn);
        let mut running = Running::default();
        {
            let serving = tasks.serve(conn.as_mut(), &mut running);
            tokio::pin!(serving);
            assert!(futures_util::poll!(serving.as_mut()).is_pending());
        }
        assert_eq!(running.set.len(), 1);
        assert_eq!(held_rx.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        drop(running);
        assert_eq!(
            held_rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        );
    }
}
