//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in the store URL, read as libpq reads them.
//!
//! The store's sync connections and the cluster's async ones both start from [`pg_config`],
//! so one URL means the same thing to both. rustls with the ring provider does the TLS
//! (the same stack as the server's own port).
//!
//! | `sslmode`     | encrypted           | certificate checked                    |
//! |---------------|---------------------|----------------------------------------|
//! | `disable`     | no                  | -                                      |
//! | `prefer`      | if the server can   | no                                     |
//! | `require`     | yes                 | no (yes, as `verify-ca`, with `sslrootcert`) |
//! | `verify-ca`   | yes                 | chain to a trusted root                |
//! | `verify-full` | yes                 | chain, and the host name in the URL    |
//!
//! `prefer` (libpq's default, and ours) and `require` accept any certificate: they still
//! check the handshake's signatures, but they protect only against a passive eavesdropper,
//! not against someone who can intercept the connection. Roots: the PEM file
//! `sslrootcert=FILE`, else (or with `sslrootcert=system`) the system's trust store plus
//! Mozilla's roots (webpki-roots). As in libpq, `require` with an `sslrootcert` file
//! verifies the chain like `verify-ca`.
//!
//! `tokio-postgres`'s own URL parser knows only `disable`, `prefer` and `require`, so both
//! parameters are taken out of the URL here before it parses the rest.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::StoreError;

/// `sslmode` of a store URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, any certificate (the default).
    Prefer,
    /// TLS, any certificate: protects only against passive eavesdropping.
    Require,
    /// TLS, the chain verified against the roots; any host name.
    VerifyCa,
    /// TLS, the chain verified and the host name matched.
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<Self, StoreError> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(url_err(format!(
                    "sslmode={other:?} is not supported \
                     (disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted roots come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// The system's trust store plus webpki-roots (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The TLS connector of every PostgreSQL connection (with `sslmode=disable` it is never used).
pub type Tls = MakeRustlsConnect;

/// The stream of an async connection made with [`Tls`].
pub type TlsStream = <Tls as MakeTlsConnect<Socket>>::Stream;

/// An async connection's driver, to be polled (spawned) beside its client.
pub type Connection = tokio_postgres::Connection<Socket, TlsStream>;

/// A parsed store URL: the driver's configuration and the TLS connector for it.
#[derive(Clone)]
pub struct PgConnect {
    /// Connection parameters; `ssl_mode` already set from `sslmode`.
    pub config: tokio_postgres::Config,
    /// The rustls connector `sslmode` and `sslrootcert` call for.
    pub tls: Tls,
    /// The mode in force (`require` with a root file verifies as `verify-ca`).
    mode: SslMode,
    /// The mode the URL asked for, for messages.
    asked: SslMode,
    root: RootCert,
}

impl fmt::Debug for PgConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnect")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .field("asked", &self.asked)
            .field("root", &self.root)
            .finish()
    }
}

fn url_err(msg: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("store url: {msg}"))
}

/// Checks a store URL's syntax, `sslmode` and `sslrootcert` included, without reading any
/// certificate (for the command line).
pub(crate) fn check_url(url: &str) -> Result<(), StoreError> {
    let (rest, _, _) = split_tls_params(url)?;
    rest.parse::<tokio_postgres::Config>().map_err(url_err)?;
    Ok(())
}

/// Parses a store URL (`postgres://user@host:port/db?sslmode=verify-full&sslrootcert=ca.pem`)
/// and builds the TLS connector its `sslmode` asks for. Also sets a 10 s connect timeout and
/// `application_name=taskhive` unless the URL sets them.
pub fn pg_config(url: &str) -> Result<PgConnect, StoreError> {
    let (rest, asked, root) = split_tls_params(url)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(url_err)?;
    // libpq: with a root file, `require` verifies the chain as `verify-ca` does.
    let mode = match (asked, &root) {
        (SslMode::Require, Some(RootCert::File(_))) => SslMode::VerifyCa,
        (m, _) => m,
    };
    let root = root.unwrap_or(RootCert::System);
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("taskhive");
    }
    let tls = MakeRustlsConnect::new(client_config(mode, &root)?);
    Ok(PgConnect {
        config,
        tls,
        mode,
        asked,
        root,
    })
}

impl PgConnect {
    /// Opens a sync (`postgres`) connection.
    pub fn connect_sync(&self) -> Result<postgres::Client, StoreError> {
        postgres::Config::from(self.config.clone())
            .connect(self.tls.clone())
            .map_err(|e| self.connect_error(&e))
    }

    /// Opens an async connection; the caller spawns (polls) the returned [`Connection`].
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), StoreError> {
        self.config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))
    }

    /// `postgres: <every error of the chain>`; a TLS failure is named as one, with the
    /// `sslmode` and `sslrootcert` in force.
    fn connect_error(&self, e: &tokio_postgres::Error) -> StoreError {
        let chain = error_chain(e);
        match tls_error(e) {
            Some(tls) => StoreError::Backend(format!(
                "postgres: TLS handshake failed: {tls} ({})",
                self.describe_tls()
            )),
            None if matches!(
                self.mode,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
            ) =>
            {
                StoreError::Backend(format!("postgres: {chain} ({})", self.describe_tls()))
            }
            None => StoreError::Backend(format!("postgres: {chain}")),
        }
    }

    /// `sslmode=verify-full, sslrootcert=/x/ca.pem`.
    fn describe_tls(&self) -> String {
        match &self.root {
            RootCert::File(p) => format!(
                "sslmode={}, sslrootcert={}",
                self.asked.as_str(),
                p.display()
            ),
            RootCert::System if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                format!("sslmode={}, system roots", self.asked.as_str())
            }
            RootCert::System => format!("sslmode={}", self.asked.as_str()),
        }
    }
}

/// The error and its sources, `: `-separated, a source left out when the message before it
/// already ends with it.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !m.is_empty() && !out.ends_with(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

/// The rustls error in `e`'s chain, if the connection failed in the TLS handshake. (rustls
/// errors reach the driver wrapped in an `io::Error`, whose `source` skips them.)
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        cur = err.source();
    }
    None
}

/// Takes `sslmode` and `sslrootcert` out of the URL's query; returns the rest of the URL.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<RootCert>), StoreError> {
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), mode, root));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k)?.as_str() {
            "sslmode" => mode = SslMode::parse(&percent_decode(v)?)?,
            "sslrootcert" => {
                let v = percent_decode(v)?;
                root = Some(match v.as_str() {
                    "" => return Err(url_err("sslrootcert is empty")),
                    "system" => RootCert::System,
                    _ => RootCert::File(PathBuf::from(v)),
                });
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

fn percent_decode(s: &str) -> Result<String, StoreError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| url_err(format!("bad percent-encoding in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| url_err(format!("{s:?} is not UTF-8 once decoded")))
}

fn client_config(mode: SslMode, root: &RootCert) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("postgres TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            Arc::new(crate::tls_verify::AnyCertificate::new(provider))
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root)?);
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| StoreError::Backend(format!("postgres TLS: {e}")))?;
            if mode == SslMode::VerifyCa {
                Arc::new(AnyHostName { inner: webpki })
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn roots(root: &RootCert) -> Result<rustls::RootCertStore, StoreError> {
    let mut store = rustls::RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            use rustls::pki_types::pem::PemObject;
            let bad = |e: &dyn fmt::Display| {
                StoreError::Backend(format!("store url: sslrootcert={}: {e}", path.display()))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(&e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"no CERTIFICATE block"));
            }
            for c in certs {
                store.add(c).map_err(|e| bad(&e))?;
            }
        }
        RootCert::System => return Ok(system_roots().clone()),
    }
    Ok(store)
}

/// The system's trust store plus webpki-roots, read once per process (a cluster node opens
/// about ten connections at start-up).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "reading the system's trust store");
        }
        store.add_parsable_certificates(native.certs);
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        store
    })
}

/// `verify-ca`: the webpki verifier, except that a certificate for another name passes.
/// webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct AnyHostName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_are_taken_out_of_the_url() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u@h:5/db?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Fx%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?connect_timeout=3");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root, Some(RootCert::File("/x/ca.pem".into())));
        let (rest, mode, root) = split_tls_params("postgres://u@h/db").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgres://u@h/db", SslMode::Prefer, None)
        );
        let (rest, _, root) = split_tls_params("postgres://u@h/db?sslrootcert=system").unwrap();
        assert_eq!(
            (rest.as_str(), root),
            ("postgres://u@h/db", Some(RootCert::System))
        );
    }

    #[test]
    fn unknown_sslmode_is_refused() {
        let e = pg_config("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.to_string().contains("sslmode=\"allow\""), "{e}");
    }

    #[test]
    fn require_with_a_root_file_verifies_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let url = format!(
            "postgres://u@h/db?sslmode=require&sslrootcert={}",
            path.display()
        );
        let c = pg_config(&url).unwrap();
        assert_eq!(c.mode, SslMode::VerifyCa);
        assert_eq!(
            c.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(c.config.get_application_name(), Some("taskhive"));
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let e = pg_config("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
