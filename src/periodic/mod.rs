//! The Periodic face: existing Periodic clients and workers (aio-periodic 1.0.0, the
//! haskell-periodic protocol) talk to the same scheduler over TCP or a unix socket.

pub mod command;
pub mod frame;
pub mod session;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::admission::Gate;
use session::Face;

/// A bound Periodic listener.
#[derive(Debug)]
pub enum Listener {
    /// `tcp://host:port` or `host:port`.
    Tcp(tokio::net::TcpListener),
    /// `unix:///path/to.sock`.
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    /// Binds an address in Periodic's `-H` forms. A stale unix socket file is replaced.
    pub async fn bind(addr: &str) -> std::io::Result<Listener> {
        if let Some(path) = addr.strip_prefix("unix://") {
            let path = std::path::PathBuf::from(path);
            if path.exists() {
                std::fs::remove_file(&path)?;
            }
            return Ok(Listener::Unix(tokio::net::UnixListener::bind(&path)?, path));
        }
        let hostport = addr.strip_prefix("tcp://").unwrap_or(addr);
        Ok(Listener::Tcp(
            tokio::net::TcpListener::bind(hostport).await?,
        ))
    }

    /// The bound address in the same form (the real port when bound to port 0).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` resolves; each is admitted through the face's
/// [`Gate`] (closed at once when over a cap) and served on its own task.
pub async fn serve(listener: Listener, face: Face, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = &mut shutdown => return,
            r = accept(&listener) => match r {
                Ok(Conn::Tcp(s, peer)) => {
                    let Some(permit) = face.gate.admit(Some(peer.ip())) else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    let face = face.clone();
                    tokio::spawn(async move {
                        session::serve(face, s, id).await;
                        drop(permit);
                    });
                }
                Ok(Conn::Unix(s)) => {
                    let Some(permit) = face.gate.admit(None) else {
                        continue;
                    };
                    let face = face.clone();
                    tokio::spawn(async move {
                        session::serve(face, s, id).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "periodic accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    Ok(match l {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            Conn::Tcp(s, peer)
        }
        Listener::Unix(l, _) => Conn::Unix(l.accept().await?.0),
    })
}

/// Shared by every connection of every listener: the scheduler, the submission limits,
/// and the connection caps and timeouts of `net` (admitted through `gate`, which the
/// shared port uses too).
pub fn face(
    h: crate::scheduler::SchedulerHandle,
    limits: crate::config::Limits,
    net: &crate::net::NetConfig,
    gate: Arc<Gate>,
) -> Face {
    Face {
        h,
        limits,
        header_timeout: net.header_read_timeout,
        idle_timeout: net.idle_timeout,
        gate,
    }
}
