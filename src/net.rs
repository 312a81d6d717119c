//! The shared port's connection handling: admission through the connection caps, optional
//! TLS (rustls), HTTP/1 and HTTP/2 with a cap on concurrent streams and server keepalive
//! pings, a per-connection rate limit, the header-read and idle timeouts, and graceful
//! shutdown.
//!
//! This replaces `axum::serve` because TLS and per-connection state (the rate limiter's
//! bucket) live at the connection, which `axum::serve` does not expose.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use http::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tonic::Code;
use tower::ServiceExt;

use crate::admission::{Gate, Permit, Timeout};

pub(crate) mod coalesce;
mod conn_tasks;
mod linger;
mod req_body;
use coalesce::Coalesced;
use conn_tasks::{ConnTasks, Running};
use linger::GiveBack;
use req_body::BodyRead;
pub use req_body::ReqBody;

/// Certificate files for TLS on the shared port.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// Connection-level settings of the shared port; the connection caps and timeouts also
/// apply to the Periodic listeners.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// TLS; plaintext when unset.
    pub tls: Option<TlsFiles>,
    /// Most concurrent HTTP/2 streams (calls) on one connection.
    pub max_concurrent_streams: u32,
    /// Requests (gRPC calls or HTTP requests) per second per connection; 0 = no limit.
    pub rate_per_sec: u32,
    /// Requests a connection may make in a burst above the rate.
    pub rate_burst: u32,
    /// From accept: the TLS handshake, then the HTTP/2 preface and first frame or a whole
    /// HTTP/1 request head (every later HTTP/1 head too, from its first byte), or the
    /// Periodic client-type frame, must arrive within this; else the connection is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request or stream open (Periodic: that sent nothing, and is not
    /// a worker nor waiting on a RUN_JOB or RECV_DATA) is closed after this.
    pub idle_timeout: Duration,
    /// HTTP/2 keepalive: the server pings a connection silent this long...
    pub keepalive_interval: Duration,
    /// ...and closes it when the ping is not answered within this.
    pub keepalive_timeout: Duration,
    /// Open connections at most, every listener together; past it new ones are closed at
    /// accept. 0 = no cap.
    pub max_connections: usize,
    /// Open connections from one IP address at most; 0 = no cap.
    pub max_connections_per_ip: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            tls: None,
            max_concurrent_streams: 1024,
            rate_per_sec: 0,
            rate_burst: 0,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
        }
    }
}

impl NetConfig {
    /// The admission limits of every listener.
    pub fn admission(&self) -> crate::admission::Limits {
        crate::admission::Limits {
            max_connections: self.max_connections,
            max_per_ip: self.max_connections_per_ip,
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{flag} {path}: {reason}")]
    File {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("tls: {0}")]
    Tls(String),
}

fn file_err(flag: &'static str, path: &Path, reason: impl ToString) -> Error {
    Error::File {
        flag,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, Error> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(flag, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(flag, path, e))?;
    if certs.is_empty() {
        return Err(file_err(flag, path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Builds the TLS acceptor: ring provider, TLS 1.2 and 1.3, ALPN h2 and http/1.1 (tonic
/// clients insist on h2), and client-certificate verification when a client CA is given.
pub fn acceptor(t: &TlsFiles) -> Result<TlsAcceptor, Error> {
    use rustls_pki_types::pem::PemObject;
    let certs = read_certs("--tls-cert", &t.cert)?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| file_err("--tls-key", &t.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs("--tls-client-ca", ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_err("--tls-client-ca", ca, e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// A token bucket for one connection, or none when the rate limit is off.
fn limiter(cfg: &NetConfig) -> Option<Arc<Limiter>> {
    let rate = NonZeroU32::new(cfg.rate_per_sec)?;
    let burst = NonZeroU32::new(cfg.rate_burst).unwrap_or(rate);
    Some(Arc::new(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

/// Answers a request over the rate: RESOURCE_EXHAUSTED for gRPC, 429 with `Retry-After`
/// (whole seconds, at least 1) for HTTP.
fn over_rate(grpc: bool, wait: Duration) -> Response<Body> {
    let message = format!(
        "rate limit: too many requests on this connection; retry in {} ms",
        wait.as_millis().max(1)
    );
    let mut resp = crate::status::refusal(grpc, Code::ResourceExhausted, message);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = secs.max(1).to_string().parse() {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// Bytes of an HTTP/2 client's preface plus its first frame header: a connection that has
/// sent fewer, and no whole request, when the header-read timeout runs out is closed.
const PREFACE_BYTES: u64 = 24 + 9;

/// The HTTP/2 client preface opens with these bytes; no HTTP/1 method does.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What a connection's watchdog reads: bytes received until [`PREFACE_BYTES`], requests
/// started and open, and when one last started or ended.
struct Activity {
    born: Instant,
    preface_bytes: AtomicU64,
    started: AtomicU64,
    open: AtomicUsize,
    /// The client's first bytes were the HTTP/2 preface (its writes may be coalesced).
    h2: AtomicBool,
    /// Milliseconds after `born` of the last request start or end.
    last_ms: AtomicU64,
    first_request: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            preface_bytes: AtomicU64::new(0),
            started: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
            first_request: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        if self.started.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_request.notify_one();
        }
        self.open.fetch_add(1, Ordering::Release);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed, and why.
    async fn expired(&self, header: Duration, idle: Duration) -> Timeout {
        loop {
            let now = Instant::now();
            if self.started.load(Ordering::Relaxed) == 0
                && self.preface_bytes.load(Ordering::Relaxed) < PREFACE_BYTES
            {
                let due = self.born + header;
                if now >= due {
                    return Timeout::Header;
                }
                // Woken early by the first request, whose end starts the idle clock.
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.first_request.notified() => {}
                }
                continue;
            }
            if self.open.load(Ordering::Acquire) > 0 {
                // An open request or stream (a worker's Work stream) is never idle.
                tokio::time::sleep_until(now + idle).await;
                continue;
            }
            let due =
                self.born + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle;
            if now >= due {
                return Timeout::Idle;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// One open request; dropped with its response body (or its handler, when cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        // Release: a watchdog that sees the count drop also sees the time touched above.
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request counted as open until it is dropped.
struct Tracked {
    inner: Body,
    _req: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's stream that counts received bytes into [`Activity`] until the preface
/// is in, and tells from the first of them whether the client speaks HTTP/2; then it only
/// passes through.
struct Counted<S> {
    inner: S,
    act: Arc<Activity>,
    counting: bool,
    /// Bytes of [`H2_PREFACE`] matched so far; `None` once they differ or all matched.
    matched: Option<usize>,
}

impl<S> Counted<S> {
    fn new(inner: S, act: Arc<Activity>) -> Self {
        Counted {
            inner,
            act,
            counting: true,
            matched: Some(0),
        }
    }

    /// Follows the preface through `bytes`, the next ones read.
    fn saw(&mut self, bytes: &[u8]) {
        let Some(m) = self.matched else { return };
        let want = &H2_PREFACE[m..];
        let n = want.len().min(bytes.len());
        self.matched = if bytes[..n] != want[..n] {
            None
        } else if m + n == H2_PREFACE.len() {
            self.act.h2.store(true, Ordering::Relaxed);
            None
        } else {
            Some(m + n)
        };
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.counting {
            let read = &buf.filled()[before..];
            let n = read.len() as u64;
            self.saw(read);
            if n > 0 && self.act.preface_bytes.fetch_add(n, Ordering::Relaxed) + n >= PREFACE_BYTES
            {
                self.counting = false;
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An HTTP/2 answer other than gRPC's gets the `date` header HTTP asks of an origin server
/// (RFC 9110, 6.6.1). hyper's own is off on HTTP/2 (see [`builder`]); HTTP/1 keeps hyper's.
fn dated_unless_grpc(resp: &mut Response<Body>) {
    if crate::status::is_grpc_content(resp.headers()) {
        return;
    }
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    if let Ok(v) = http::HeaderValue::from_str(&now) {
        resp.headers_mut().insert(http::header::DATE, v);
    }
}

/// The HTTP/1 + HTTP/2 connection builder with the configured limits, timeouts and pings;
/// one per connection, whose HTTP/2 requests run on `tasks`.
fn builder(cfg: &NetConfig, tasks: ConnTasks) -> auto::Builder<ConnTasks> {
    let mut b = auto::Builder::new(tasks);
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.max_concurrent_streams)
        // gRPC answers go without `date`, as grpc-go's and grpc-java's do: encoding it cost
        // about 1,100 instructions per unary call (2 % of a SubmitJob's, `bench/profile-unary`).
        // Other HTTP/2 answers get theirs from `dated_unless_grpc`.
        .auto_date_header(false)
        .keep_alive_interval(cfg.keepalive_interval)
        .keep_alive_timeout(cfg.keepalive_timeout);
    b
}

/// What the shared port serves: a cloneable service answering every request (the server's
/// `one_port::App`: gRPC or HTTP by content type, behind auth when it is on).
pub trait App:
    tower::Service<Request<ReqBody>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<
            Request<ReqBody>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// What every connection of the shared port shares.
struct Shared<A> {
    cfg: NetConfig,
    tls: Option<TlsAcceptor>,
    gate: Arc<Gate>,
    app: A,
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting and waits for
/// open connections to finish (the caller bounds that wait). Connections are admitted
/// through `gate`, shared with the Periodic listeners.
pub async fn serve<A: App>(
    listener: TcpListener,
    app: A,
    cfg: NetConfig,
    tls: Option<TlsAcceptor>,
    gate: Arc<Gate>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        cfg,
        tls,
        gate,
        app,
    });
    // Every connection holds a receiver; stopping sends `true` and waits for all to go.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut signal => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over the caps: closed at once, before TLS or any read.
        let Some(permit) = shared.gate.admit(Some(peer.ip())) else {
            drop(tcp);
            continue;
        };
        // Replies are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            shared.clone(),
            tcp,
            peer,
            permit,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// One connection: TLS within the header-read timeout, then HTTP until the peer closes,
/// the watchdog finds it too slow or idle, or the server stops.
async fn connection<A: App>(
    shared: Arc<Shared<A>>,
    tcp: TcpStream,
    peer: SocketAddr,
    _permit: Permit,
    mut stop: watch::Receiver<bool>,
) {
    let act = Arc::new(Activity::new());
    let limiter = limiter(&shared.cfg);
    let body_read = BodyRead::default();
    let svc = {
        let act = act.clone();
        let app = shared.app.clone();
        tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            // HTTP/1 bodies only: an HTTP/2 answer before the body's end resets one stream.
            let watch = (req.version() <= http::Version::HTTP_11).then(|| body_read.clone());
            let mut req = req.map(|b| match &watch {
                Some(w) => w.watch(b),
                None => ReqBody::unwatched(b),
            });
            // What tonic's `Request::remote_addr` reads (a load agent's entry names it).
            req.extensions_mut()
                .insert(tonic::transport::server::TcpConnectInfo {
                    local_addr: None,
                    remote_addr: Some(peer),
                });
            let req_guard = act.begin();
            let app = app.clone();
            let refused = limiter.as_ref().and_then(|l| {
                l.check()
                    .err()
                    .map(|nu| nu.wait_time_from(DefaultClock::default().now()))
            });
            async move {
                let mut resp = match refused {
                    Some(wait) => over_rate(crate::status::is_grpc(&req), wait),
                    None => match app.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    },
                };
                // The body watch is there exactly for HTTP/1 requests (see above), so this
                // one match sorts the answer by protocol as well as by the body's state.
                match watch {
                    // HTTP/1, answered before the body's end (a 404 or 401 to an upload, a
                    // 413 part-way through one): hyper closes the connection after it, so
                    // say so, or the client puts it back in its pool and loses its next
                    // request on it (`req_body`).
                    Some(w) if !w.done() => {
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    // HTTP/1, body read: hyper has dated the answer.
                    Some(_) => {}
                    // HTTP/2: hyper's date is off, so every answer but gRPC's gets ours.
                    None => dated_unless_grpc(&mut resp),
                }
                Ok::<_, Infallible>(resp.map(|inner| Tracked {
                    inner,
                    _req: req_guard,
                }))
            }
        })
    };
    let svc = TowerToHyperService::new(svc);
    let (tcp, given_back) = GiveBack::new(tcp);
    let ended = match &shared.tls {
        None => {
            let io = Coalesced::new(Counted::new(tcp, act.clone()), act.clone());
            drive(&shared, io, svc, &act, stop).await
        }
        Some(acceptor) => {
            let deadline = act.born + shared.cfg.header_read_timeout;
            let handshake = tokio::select! {
                r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
                // A server stopping does not wait for handshakes.
                _ = stop.wait_for(|&s| s) => return,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    let io = Coalesced::new(Counted::new(stream, act.clone()), act.clone());
                    drive(&shared, io, svc, &act, stop).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    Ended::Cut
                }
                Err(_) => {
                    shared.gate.timed_out(Timeout::Header);
                    tracing::debug!(%peer, "tls handshake timed out");
                    Ended::Cut
                }
            }
        }
    };
    // Still holding the connection's permit: a lingering socket counts against the caps.
    if ended == Ended::Served {
        linger::drain(given_back).await;
    }
}

/// How [`drive`] ended a connection.
#[derive(Clone, Copy, PartialEq)]
enum Ended {
    /// The client closed it, or hyper did after a response (the client may still be
    /// sending): what it sends is drained before the socket closes ([`linger`]).
    Served,
    /// A timeout, a failed handshake or the server stopping: closed at once.
    Cut,
}

/// Serves HTTP on `io` until it ends; on a header timeout the connection is dropped, on an
/// idle timeout or server stop it is shut down gracefully (HTTP/2 GOAWAY). `io` is dropped
/// when this returns.
async fn drive<I, S, A>(
    shared: &Shared<A>,
    io: I,
    svc: S,
    act: &Activity,
    mut stop: watch::Receiver<bool>,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<Tracked>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tasks = ConnTasks::default();
    let builder = builder(&shared.cfg, tasks.clone());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut running = Running::default();
    let dog = act.expired(shared.cfg.header_read_timeout, shared.cfg.idle_timeout);
    tokio::pin!(dog);
    let mut closing = false;
    loop {
        tokio::select! {
            r = tasks.serve(conn.as_mut(), &mut running) => {
                // hyper's own HTTP/1 header-read timer may fire first.
                if let Err(e) = r {
                    if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                        shared.gate.timed_out(Timeout::Header);
                        return Ended::Cut;
                    }
                }
                return if closing { Ended::Cut } else { Ended::Served };
            }
            _ = stop.wait_for(|&s| s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            t = &mut dog, if !closing => {
                shared.gate.timed_out(t);
                match t {
                    Timeout::Header => return Ended::Cut,
                    Timeout::Idle => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}
