//! Lingering close: after the server has answered and closed a connection whose client may
//! still be sending (a body refused mid-way, 413 over the size limit), the rest of what the
//! client sends is read and thrown away for a while before the socket is closed.
//!
//! Why: closing a TCP socket with unread bytes in its receive buffer sends a reset, not a
//! FIN. A client still writing its body then gets "broken pipe" or "connection reset" and
//! may never read the 413 the server sent before it (Python `requests` and Rust `reqwest`
//! report the write error). nginx does the same (`lingering_close`).
//!
//! How: a duplicate of the socket's descriptor is taken when the connection is accepted, so
//! the socket outlives hyper's stream (and rustls' over it). Once hyper is done, the write
//! side is shut (FIN after the response), and the duplicate is read until the client closes,
//! [`TIME`] has passed or [`BYTES`] were thrown away; dropping it then closes the socket.
//! A client that already closed costs one read that returns at once.

use std::net::Shutdown;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a closed connection's input is drained at most.
pub(super) const TIME: Duration = Duration::from_secs(2);

/// How many bytes are thrown away at most.
pub(super) const BYTES: usize = 64 << 20;

/// A second descriptor of an accepted connection's socket, for [`Linger::drain`].
pub(super) struct Linger(socket2::Socket);

impl Linger {
    /// Duplicates `tcp`'s descriptor; None when the process is out of descriptors (the
    /// connection is then served as before and closed at once).
    pub(super) fn of(tcp: &TcpStream) -> Option<Linger> {
        socket2::SockRef::from(tcp).try_clone().ok().map(Linger)
    }

    /// Shuts the write side and reads until the client closes, or for [`TIME`] and
    /// [`BYTES`] at most. Call it once the connection's own stream is dropped.
    pub(super) async fn drain(self) {
        let _ = self.0.shutdown(Shutdown::Write);
        if self.0.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(mut tcp) = TcpStream::from_std(std::net::TcpStream::from(self.0)) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + TIME;
        let mut buf = vec![0u8; 16 << 10];
        let mut left = BYTES;
        while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            left = match left.checked_sub(n) {
                Some(l) if l > 0 => l,
                _ => return,
            };
        }
    }
}
