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
                    tcp_keepalive(&s, face.keepalive);
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

/// TCP keepalive on a Periodic connection: probes after `idle` of silence, then every 10 s,
/// the connection dropped after 3 unanswered. A worker may be quiet for hours (the idle
/// timeout spares it), so this is what finds one whose host vanished.
fn tcp_keepalive(s: &tokio::net::TcpStream, idle: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, v: libc::c_int| {
        // SAFETY: `fd` is an open socket owned by `s`; the value is a c_int we own.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    let idle = idle.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    #[cfg(target_os = "linux")]
    {
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = idle;
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
    limits: crate::face_limits::Limits,
    net: &crate::net::NetConfig,
    gate: Arc<Gate>,
) -> Face {
    Face {
        h,
        limits,
        header_timeout: net.header_read_timeout,
        idle_timeout: net.idle_timeout,
        keepalive: net.keepalive_interval,
        gate,
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn periodic_tcp_connections_get_keepalive_probes() {
        use std::os::fd::AsRawFd;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        super::tcp_keepalive(&c, std::time::Duration::from_secs(30));
        let get = |level, name| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: an open socket and buffers we own.
            let r = unsafe {
                libc::getsockopt(
                    c.as_raw_fd(),
                    level,
                    name,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0);
            v
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        #[cfg(target_os = "linux")]
        {
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 30);
            assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 3);
        }
    }
}
