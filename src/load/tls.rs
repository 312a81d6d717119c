//! What the load runner's HTTPS client trusts: the web PKI roots, the system's store, and
//! `serve --load-ca` (a private CA); and the one opt-out, certificates left unverified for the
//! classes that ask with `insecure_skip_verify` when `serve --load-insecure-tls` permits it.
//!
//! The system store is read by `rustls-native-certs`, which, like OpenSSL, reads
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` instead of the platform store when they are set.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::error::Error;

/// The client TLS settings of one server: verified, and (when permitted) unverified.
#[derive(Clone)]
pub struct Trust {
    /// Certificates checked against the roots.
    pub(crate) verified: ClientConfig,
    /// Certificates accepted unchecked; None unless `--load-insecure-tls`.
    pub(crate) insecure: Option<ClientConfig>,
}

impl Trust {
    /// Web PKI and system roots, no private CA, no unverified connections.
    pub fn system() -> Trust {
        Trust {
            verified: verified_config(system_roots()),
            insecure: None,
        }
    }

    /// Adds the PEM certificates in `ca` to the system roots; `allow_insecure` builds the
    /// unverified configuration too.
    pub fn load(ca: Option<&Path>, allow_insecure: bool) -> Result<Trust, Error> {
        let mut roots = system_roots();
        if let Some(path) = ca {
            // The operator named this file: a certificate in it that cannot be a root stops
            // the start rather than being skipped in silence.
            for (i, cert) in read_pem(path)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    Error::invalid(
                        "--load-ca",
                        format!("{}: certificate {}: {e}", path.display(), i + 1),
                    )
                })?;
            }
        }
        Ok(Trust {
            verified: verified_config(roots),
            insecure: allow_insecure.then(insecure_config),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    use rustls_pki_types::pem::PemObject;
    let bad = |why: String| Error::invalid("--load-ca", format!("{}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // A broken system store is not fatal: the web PKI roots and --load-ca still apply.
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "load runner: reading the system's trusted certificates");
    }
    let (_, skipped) = roots.add_parsable_certificates(native.certs);
    if skipped > 0 {
        tracing::warn!(skipped, "load runner: unusable system certificates skipped");
    }
    roots
}

fn base() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

fn verified_config(roots: RootCertStore) -> ClientConfig {
    base().with_root_certificates(roots).with_no_client_auth()
}

fn insecure_config() -> ClientConfig {
    base()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::tls_verify::AnyCertificate::new(
            provider(),
        )))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_names_the_flag() {
        let e = Trust::load(Some(Path::new("/nonexistent/ca.pem")), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("--load-ca: /nonexistent/ca.pem"), "{e}");
        let empty = std::env::temp_dir().join(format!("taskhive-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not pem\n").unwrap();
        let e = Trust::load(Some(&empty), false).err().unwrap().to_string();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        // A PEM block that is not a certificate a root store can hold.
        std::fs::write(
            &empty,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Trust::load(Some(&empty), false).err().unwrap().to_string();
        std::fs::remove_file(&empty).unwrap();
        assert!(e.contains("certificate 1:"), "{e}");
    }

    #[test]
    fn unverified_connections_exist_only_when_permitted() {
        assert!(Trust::load(None, false).unwrap().insecure.is_none());
        assert!(Trust::load(None, true).unwrap().insecure.is_some());
    }
}
