//! The client side of a connection: the address, TLS with a CA file, and the bearer token
//! added to every call.

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use super::Conn;

/// A channel that sends `authorization: Bearer <token>` with every call when a token is set.
#[derive(Clone, Debug)]
pub struct AuthChannel {
    inner: Channel,
    token: Option<http::HeaderValue>,
}

impl AuthChannel {
    /// Wraps a channel; `token` is sent with every call.
    pub fn new(inner: Channel, token: Option<&str>) -> Result<Self, String> {
        let token = token
            .map(|t| {
                let mut v = http::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| "--token: not a valid header value".to_string())?;
                v.set_sensitive(true);
                Ok::<_, String>(v)
            })
            .transpose()?;
        Ok(AuthChannel { inner, token })
    }
}

impl tower::Service<http::Request<Body>> for AuthChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as tower::Service<http::Request<Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, t.clone());
        }
        tower::Service::call(&mut self.inner, req)
    }
}

/// A channel to the server named by `--addr`, over TLS when `--ca` is given (or the address
/// says https://), carrying `--token`.
pub async fn channel(conn: &Conn) -> Result<AuthChannel, Box<dyn std::error::Error + Send + Sync>> {
    let url = if conn.addr.contains("://") {
        conn.addr.clone()
    } else if conn.ca.is_some() {
        format!("https://{}", conn.addr)
    } else {
        format!("http://{}", conn.addr)
    };
    let mut endpoint =
        Channel::from_shared(url.clone()).map_err(|e| format!("--addr {:?}: {e}", conn.addr))?;
    if url.starts_with("https://") {
        let ca = conn.ca.as_ref().ok_or(
            "--addr https://...: --ca FILE (the server's CA certificate, PEM) is required",
        )?;
        let pem = std::fs::read(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let ch = endpoint
        .connect()
        .await
        .map_err(|e| super::error::ConnectError {
            addr: conn.addr.clone(),
            tls: url.starts_with("https://"),
            source: Box::new(e),
        })?;
    Ok(AuthChannel::new(ch, conn.token.as_deref())?)
}
