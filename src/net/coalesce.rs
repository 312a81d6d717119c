//! Write coalescing for HTTP/2 connections: one socket write for the responses that become
//! ready together, not one per response.
//!
//! A group commit acknowledges many unary calls at once, and each call's task hands its
//! response to the connection. Tokio runs the connection task right after the first of
//! them (the woken task takes the worker's LIFO slot), and h2 flushes at the end of every
//! connection poll: one `writev` per response, each costing the loopback or NIC path in
//! the kernel. Measured before this: 56,207 `writev` for 60,000 unary submits.
//!
//! [`Coalesced`] answers h2's first flush of a poll with "done" while keeping the bytes,
//! and wakes its own task. Tokio queues a task that woke itself behind every task already
//! runnable, so the other calls' tasks queue their responses first; the next poll's flush
//! writes them all at once. h2 flushes at the end of every poll of an open connection and
//! on shutdown (`h2::proto::connection`, `Streams::poll_complete`), so kept bytes are
//! always written on the next poll, which the wake guarantees.
//!
//! Only connections whose client opened with the HTTP/2 preface are coalesced (`Counted`
//! in `net.rs` tells, from the bytes it counts for the watchdog): hyper's HTTP/1 path
//! does not promise a flush on every poll, and carries one request at a time anyway. And a
//! server's flush is held only while two or more requests are still open on the connection
//! (one may be a worker's long-lived Work stream): a lone call's answer, or a job pushed to
//! an otherwise idle worker, goes out at once instead of one poll later.
//!
//! `taskhive bench` wraps its own gRPC connections the same way ([`Coalesced::h2`]): its
//! calls' requests become ready together too, and its CPU shares the machine with the server.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many kept bytes a write goes to the socket at once.
const MAX_KEPT: usize = 64 * 1024;

/// When a flush may be held for a poll.
enum Hold {
    /// Always: a client's HTTP/2 connection, whose calls' requests become ready together.
    Always,
    /// On a server connection whose client opened with the HTTP/2 preface, while two or
    /// more requests are open on it.
    WhileBusy(Arc<super::Activity>),
}

/// A connection's stream that holds HTTP/2 writes until the next poll of its task.
pub(crate) struct Coalesced<S> {
    inner: S,
    hold: Hold,
    kept: Vec<u8>,
    /// Written out of `kept` so far (a short write leaves the rest).
    sent: usize,
    /// A flush was already answered without writing `kept`: the next one writes.
    deferred: bool,
}

impl<S> Coalesced<S> {
    /// A server's connection, whose protocol and open requests `act` follows.
    pub(super) fn new(inner: S, act: Arc<super::Activity>) -> Self {
        Self::with(inner, Hold::WhileBusy(act))
    }

    /// A client's HTTP/2 connection (h2's client also flushes at the end of every poll).
    pub(crate) fn h2(inner: S) -> Self {
        Self::with(inner, Hold::Always)
    }

    fn with(inner: S, hold: Hold) -> Self {
        Coalesced {
            inner,
            hold,
            kept: Vec::new(),
            sent: 0,
            deferred: false,
        }
    }

    /// Whether a flush now may wait for the next poll.
    fn may_hold(&self) -> bool {
        match &self.hold {
            Hold::Always => true,
            Hold::WhileBusy(act) => {
                act.h2.load(Ordering::Relaxed) && act.open.load(Ordering::Relaxed) >= 2
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes every kept byte to the socket.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.kept.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.kept[self.sent..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.kept.clear();
        self.sent = 0;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // Nothing kept and nothing to wait for: straight through (HTTP/1, a lone call).
        if self.kept.is_empty() && !self.may_hold() {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.kept.len() + len > MAX_KEPT {
            std::task::ready!(self.drain(cx))?;
            if len > MAX_KEPT {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            self.kept.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.kept.is_empty() {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        if !self.deferred && self.may_hold() {
            // Written on the next poll of this task, after the tasks already runnable.
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Activity, Counted};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    type Server = Coalesced<Counted<DuplexStream>>;

    /// A server's stream as `net` stacks it, and the client's end; `open` requests open.
    fn server(open: usize) -> (Server, DuplexStream) {
        let (near, far) = tokio::io::duplex(1 << 20);
        let act = Arc::new(Activity::new());
        act.open.store(open, Ordering::Relaxed);
        (Coalesced::new(Counted::new(near, act.clone()), act), far)
    }

    /// The client sends `first` and the server reads it.
    async fn opens_with(c: &mut Server, far: &mut DuplexStream, first: &[u8]) {
        far.write_all(first).await.unwrap();
        let mut got = vec![0u8; first.len()];
        c.read_exact(&mut got).await.unwrap();
    }

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[tokio::test]
    async fn tells_the_http2_preface_from_http1_even_in_pieces() {
        let (mut c, mut far) = server(2);
        opens_with(&mut c, &mut far, b"PRI * HT").await;
        assert!(!c.may_hold(), "not yet the whole preface");
        opens_with(&mut c, &mut far, b"TP/2.0\r\n\r\nSM\r\n\r\n").await;
        assert!(c.may_hold());
        let (mut c, mut far) = server(2);
        opens_with(&mut c, &mut far, b"PR").await;
        opens_with(&mut c, &mut far, b"OPFIND / HTTP/1.1\r\n").await;
        assert!(!c.may_hold());
    }

    #[tokio::test]
    async fn an_http2_flush_is_held_for_one_poll_and_written_by_the_next() {
        let (mut c, mut far) = server(2);
        opens_with(&mut c, &mut far, PREFACE).await;

        // The first flush keeps the bytes and wakes the task; the second writes them.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut pc = Pin::new(&mut c);
        assert!(matches!(
            pc.as_mut().poll_write(&mut cx, b"one"),
            Poll::Ready(Ok(3))
        ));
        assert!(matches!(
            pc.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(pc.kept, b"one");
        assert!(matches!(
            pc.as_mut().poll_write(&mut cx, b"two"),
            Poll::Ready(Ok(3))
        ));
        assert!(matches!(
            pc.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(pc.kept.is_empty());
        let mut got = [0u8; 6];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"onetwo");

        // Shutting down writes what is kept.
        c.write_all(b"bye").await.unwrap();
        let mut pc = Pin::new(&mut c);
        assert!(matches!(
            pc.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(c.kept, b"bye");
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
    }

    #[tokio::test]
    async fn a_flush_with_fewer_than_two_requests_open_writes_at_once() {
        let (mut c, mut far) = server(1);
        opens_with(&mut c, &mut far, PREFACE).await;
        c.write_all(b"alone").await.unwrap();
        assert!(c.kept.is_empty());
        let mut got = [0u8; 5];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"alone");
    }

    #[tokio::test]
    async fn http1_writes_go_straight_through() {
        let (mut c, mut far) = server(2);
        opens_with(&mut c, &mut far, b"GET / HTTP/1.1\r\n\r\n").await;
        c.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(c.kept.is_empty());
        let mut got = [0u8; 19];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
    }
}
