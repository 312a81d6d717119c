//! An HTTPS load target (axum over tokio-rustls on 127.0.0.1:0) with a throwaway CA from
//! rcgen; it records the HTTP version of every request and hands `/hook` bodies over.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri, Version};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc;
use tokio_rustls::rustls;

/// A CA and a leaf for `localhost` and 127.0.0.1 it signed, written as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    leaf_pem: String,
    key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_pem = p.signed_by(&key, &ca).unwrap().pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            leaf_pem,
            key_pem: key.serialize_pem(),
        }
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

struct Seen {
    handshakes: std::sync::atomic::AtomicU64,
    versions: Mutex<Vec<Version>>,
    hooks: mpsc::UnboundedSender<String>,
}

/// A running HTTPS target.
pub struct TlsTarget {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    hooks: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl TlsTarget {
    /// Serves with `pki`'s leaf; ALPN offers h2 and http/1.1 when `h2`, else http/1.1 only.
    pub async fn start(pki: &Pki, h2: bool) -> TlsTarget {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.leaf_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let (tx, rx) = mpsc::unbounded_channel();
        let seen = Arc::new(Seen {
            handshakes: Default::default(),
            versions: Mutex::new(Vec::new()),
            hooks: tx,
        });
        let app = Router::new().fallback(handle).with_state(seen.clone());
        let counter = seen.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app, counter) = (acceptor.clone(), app.clone(), counter.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: not an error here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counter
                        .handshakes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        TlsTarget {
            addr,
            seen,
            hooks: tokio::sync::Mutex::new(rx),
        }
    }

    /// `https://localhost:PORT` + `path` (the certificate is checked against `localhost`).
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// TLS handshakes completed so far (one per connection).
    pub fn handshakes(&self) -> u64 {
        self.seen
            .handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The HTTP version of every request so far.
    pub fn versions(&self) -> Vec<Version> {
        self.seen.versions.lock().unwrap().clone()
    }

    /// The next webhook body (fails the test after `secs`).
    pub async fn next_hook(&self, secs: u64) -> String {
        super::within(secs, async {
            self.hooks.lock().await.recv().await.unwrap()
        })
        .await
    }
}

async fn handle(
    State(s): State<Arc<Seen>>,
    method: Method,
    uri: Uri,
    version: Version,
    body: Bytes,
) -> &'static str {
    s.versions.lock().unwrap().push(version);
    if method == Method::POST && uri.path() == "/hook" {
        let _ = s.hooks.send(String::from_utf8_lossy(&body).into_owned());
    }
    "ok"
}
