//! The Periodic face: existing Periodic clients and workers (aio-periodic 1.0.0, the
//! haskell-periodic protocol) talk to the same scheduler over TCP or a unix socket.

pub mod command;
pub mod frame;
pub mod session;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Accepts connections until `shutdown` resolves; each is served on its own task.
pub async fn serve(listener: Listener, face: Face, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = &mut shutdown => return,
            r = accept(&listener) => match r {
                Ok(Conn::Tcp(s)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(session::serve(face.clone(), s, id));
                }
                Ok(Conn::Unix(s)) => {
                    tokio::spawn(session::serve(face.clone(), s, id));
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
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    Ok(match l {
        Listener::Tcp(l) => Conn::Tcp(l.accept().await?.0),
        Listener::Unix(l, _) => Conn::Unix(l.accept().await?.0),
    })
}

/// Shared by every connection of every listener.
pub fn face(h: crate::scheduler::SchedulerHandle, limits: crate::config::Limits) -> Face {
    Face { h, limits }
}
