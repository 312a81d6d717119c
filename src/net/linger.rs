//! Lingering close: after the server has answered and closed a connection whose client may
//! still be sending (a body refused part-way, 413 over the size limit), the rest of what the
//! client sends is read and thrown away for a while before the socket is closed.
//!
//! Why: closing a TCP socket with unread bytes in its receive buffer sends a reset, not a
//! FIN. A client still writing its body then gets "broken pipe" or "connection reset" and
//! may never read the 413 the server sent before it (Python `requests` and Rust `reqwest`
//! report the write error). nginx does the same (`lingering_close`).
//!
//! How: hyper (and rustls over it) get the socket inside a [`GiveBack`], which hands the
//! socket back to the connection's task when they drop it, instead of closing it. The task
//! then [`drain`]s it when the connection ended on its own, or drops it. No second
//! descriptor: a connection still costs one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// How long a closed connection's input is drained at most.
const TIME: Duration = Duration::from_secs(2);

/// How many bytes are thrown away at most.
const BYTES: usize = 64 << 20;

/// An accepted socket that goes back to its connection's task when dropped.
pub(super) struct GiveBack {
    /// Some until dropped.
    tcp: Option<TcpStream>,
    to: Option<oneshot::Sender<TcpStream>>,
}

impl GiveBack {
    /// `tcp`, and where it arrives once hyper (or a failed TLS handshake) drops it.
    pub(super) fn new(tcp: TcpStream) -> (GiveBack, oneshot::Receiver<TcpStream>) {
        let (to, back) = oneshot::channel();
        let io = GiveBack {
            tcp: Some(tcp),
            to: Some(to),
        };
        (io, back)
    }

    fn tcp(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        // `tcp` is taken only by `drop`.
        Pin::new(
            self.get_mut()
                .tcp
                .as_mut()
                .expect("a GiveBack's socket, until dropped"),
        )
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let (Some(tcp), Some(to)) = (self.tcp.take(), self.to.take()) {
            // The task may be gone (a cancelled connection): the socket then closes here.
            let _ = to.send(tcp);
        }
    }
}

impl AsyncRead for GiveBack {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for GiveBack {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}

/// Once the socket is back (hyper dropped it: at once when the connection has ended), shuts
/// its write side (a FIN after the answer) and reads until the client closes, or for
/// [`TIME`] and [`BYTES`] at most; the socket closes when this returns.
pub(super) async fn drain(back: oneshot::Receiver<TcpStream>) {
    let deadline = tokio::time::Instant::now() + TIME;
    let Ok(Ok(mut tcp)) = tokio::time::timeout_at(deadline, back).await else {
        return;
    };
    let _ = tcp.shutdown().await;
    let mut buf = vec![0u8; 16 << 10];
    let mut thrown = 0;
    while thrown < BYTES {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => thrown += n,
            // The client closed, the socket failed, or the time is up.
            _ => return,
        }
    }
}
