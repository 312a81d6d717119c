//! The shared port's connection handling: optional TLS (rustls), HTTP/1 and HTTP/2 with a
//! cap on concurrent streams, a per-connection rate limit, and graceful shutdown.
//!
//! This replaces `axum::serve` because TLS and per-connection state (the rate limiter's
//! bucket) live at the connection, which `axum::serve` does not expose.

use std::future::Future;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use http::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tonic::Code;
use tower::ServiceExt;

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

/// Connection-level settings of the shared port.
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
    /// A TLS handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            tls: None,
            max_concurrent_streams: 1024,
            rate_per_sec: 0,
            rate_burst: 0,
            handshake_timeout: Duration::from_secs(10),
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
    let mut resp = crate::auth::refusal(grpc, Code::ResourceExhausted, message);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = secs.max(1).to_string().parse() {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting and waits for
/// open connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    cfg: NetConfig,
    tls: Option<TlsAcceptor>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(cfg.max_concurrent_streams);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
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
        // Replies are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        let limiter = limiter(&cfg);
        let app = app.clone();
        let handshake_timeout = cfg.handshake_timeout;
        tokio::spawn(async move {
            let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let refused = limiter.as_ref().and_then(|l| {
                    l.check()
                        .err()
                        .map(|nu| nu.wait_time_from(DefaultClock::default().now()))
                });
                async move {
                    match refused {
                        Some(wait) => Ok(over_rate(crate::auth::is_grpc(&req), wait)),
                        None => app.oneshot(req).await,
                    }
                }
            });
            let svc = TowerToHyperService::new(svc);
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
