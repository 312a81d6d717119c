//! Built-in HTTP task classes and the pooled HTTP(S) client they (and webhooks) use.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::allow::{Allow, GuardedConnector};
use super::engine::Attempt;
use super::template::Template;
use super::tls::Trust;

/// The generic class: GET the task's host.
pub const HTTP_GET: &str = "http.get";

/// Default time limit of one HTTP task.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of a failed response's body kept in its request_context.
const BODY_HEAD: usize = 200;

/// A built-in HTTP task class: `http.get`, or one declared in the tasks file.
#[derive(Clone, Debug)]
pub struct HttpTaskDef {
    /// The task_class jobs name it by.
    pub name: String,
    /// Request method.
    pub method: Method,
    /// Appended to the task's host.
    pub path: Template,
    /// Request headers.
    pub headers: Vec<(HeaderName, Template)>,
    /// Request body (empty = none).
    pub body: Template,
    /// Statuses that count as success; empty = any 2xx.
    pub expect_status: Vec<u16>,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Accept any certificate (tasks file; needs `serve --load-insecure-tls`).
    pub insecure_skip_verify: bool,
}

impl HttpTaskDef {
    /// `http.get`: GET the host, 2xx is success.
    pub fn get() -> Self {
        HttpTaskDef {
            name: HTTP_GET.into(),
            method: Method::GET,
            path: Template::parse(""),
            headers: Vec::new(),
            body: Template::parse(""),
            expect_status: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            insecure_skip_verify: false,
        }
    }

    /// Every param its templates use.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.path
            .params()
            .chain(self.headers.iter().flat_map(|(_, t)| t.params()))
            .chain(self.body.params())
    }

    fn succeeded(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    /// Runs one request against `host` with `params` substituted.
    pub async fn run(
        &self,
        client: &HttpClient,
        host: &str,
        params: &BTreeMap<String, String>,
    ) -> Attempt {
        let path = self.path.render(params);
        let url = join_url(host, &path);
        let fail = |why: String| Attempt {
            is_success: false,
            request_context: format!("{} {url}: {why}", self.method),
            elapsed_usec: None,
        };
        let mut req = Request::builder().method(self.method.clone()).uri(&url);
        for (name, value) in &self.headers {
            match HeaderValue::from_str(&value.render(params)) {
                Ok(v) => req = req.header(name, v),
                Err(_) => return fail(format!("header {name}: not a valid header value")),
            }
        }
        let req = match req.body(Full::new(Bytes::from(self.body.render(params)))) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let sent = if self.insecure_skip_verify {
            client.send_unverified(req, self.timeout).await
        } else {
            client.send(req, self.timeout).await
        };
        match sent {
            Ok(reply) if self.succeeded(reply.status) => Attempt {
                is_success: true,
                request_context: format!("{} {} {url}", reply.status, self.method),
                elapsed_usec: None,
            },
            Ok(reply) => Attempt {
                is_success: false,
                request_context: format!(
                    "{} {} {url}: {}",
                    reply.status, self.method, reply.body_head
                ),
                elapsed_usec: None,
            },
            Err(e) => fail(e),
        }
    }
}

/// `host` + `path` without a doubled slash.
pub(crate) fn join_url(host: &str, path: &str) -> String {
    if path.is_empty() {
        host.to_string()
    } else if host.ends_with('/') && path.starts_with('/') {
        format!("{host}{}", &path[1..])
    } else {
        format!("{host}{path}")
    }
}

/// What came back.
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// The first bytes of the body, lossily decoded.
    pub body_head: String,
}

type Pool = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// A cloneable HTTP and HTTPS client over one connection pool (one more, unverified, for
/// classes with `insecure_skip_verify`). HTTPS connections offer ALPN h2 and http/1.1, so a
/// target that speaks HTTP/2 gets it; connections are kept, so a TLS handshake is paid once
/// per connection, not per task.
#[derive(Clone)]
pub struct HttpClient {
    verified: Pool,
    unverified: Option<Pool>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new(std::sync::Arc::new(Allow::Any))
    }
}

impl HttpClient {
    /// A client trusting the web PKI and system roots, connecting only where `allow` permits.
    pub fn new(allow: std::sync::Arc<Allow>) -> Self {
        Self::with_trust(allow, Trust::system())
    }

    /// A client with keep-alive connections and Nagle off (latency is what is measured),
    /// connecting only where `allow` permits, trusting what `trust` says.
    pub fn with_trust(allow: std::sync::Arc<Allow>, trust: Trust) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        // The TLS layer hands https:// URIs down; the guarded connector dials plain TCP.
        connector.enforce_http(false);
        // TLS sits on top of the guard: the allow-list judges the address dialled, while
        // SNI and certificate checks use the URL's host name.
        let guarded = GuardedConnector::new(connector, allow);
        let pool = |tls| {
            let https = HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_all_versions()
                .wrap_connector(guarded.clone());
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https)
        };
        HttpClient {
            verified: pool(trust.verified),
            unverified: trust.insecure.map(pool),
        }
    }

    /// Sends `req` and reads the whole response within `timeout`; the body is drained so the
    /// connection goes back to the pool.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<HttpReply, String> {
        Self::exchange(&self.verified, req, timeout).await
    }

    /// Like `send`, accepting any server certificate; refused unless the server permits it.
    async fn send_unverified(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<HttpReply, String> {
        match &self.unverified {
            Some(pool) => Self::exchange(pool, req, timeout).await,
            None => Err("insecure_skip_verify needs serve --load-insecure-tls".into()),
        }
    }

    async fn exchange(
        pool: &Pool,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<HttpReply, String> {
        let exchange = async {
            let resp = pool.request(req).await.map_err(describe)?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut head = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("reading body: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    let room = BODY_HEAD.saturating_sub(head.len());
                    head.extend_from_slice(&data[..room.min(data.len())]);
                }
            }
            Ok(HttpReply {
                status,
                body_head: String::from_utf8_lossy(&head).into_owned(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no response within {timeout:?}")))
    }

    /// POSTs a JSON document (webhooks).
    pub(crate) async fn post_json(
        &self,
        url: &http::Uri,
        json: String,
        timeout: Duration,
    ) -> Result<HttpReply, String> {
        let req = Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        self.send(req, timeout).await
    }
}

/// The error with its causes: hyper's top-level message alone is often just "client error",
/// and a TLS failure ("invalid peer certificate: UnknownIssuer") is a few causes down.
fn describe(e: impl std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_without_double_slash() {
        assert_eq!(join_url("http://h:1", ""), "http://h:1");
        assert_eq!(join_url("http://h:1/", "/a"), "http://h:1/a");
        assert_eq!(join_url("http://h:1/api", "/a?x=1"), "http://h:1/api/a?x=1");
    }
}
