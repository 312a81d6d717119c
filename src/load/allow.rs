//! The load-target allow-list (`--load-allow`): where built-in HTTP tasks and webhooks may
//! send traffic, so a client cannot turn the server into an open proxy.
//!
//! Checked twice: when a job is saved or executed (a clear PERMISSION_DENIED naming the task
//! and host) and at every connect, where the name is resolved once and the connection goes
//! to an address that passed the check; a name that later resolves elsewhere (DNS
//! rebinding), or a URL whose templated path moves the authority, gains nothing.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use ipnet::IpNet;

/// One allowed target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A host name (any address it resolves to), optionally on one port only.
    Name(String, Option<u16>),
    /// An address range (a single address is a /32 or /128), optionally on one port only.
    Net(IpNet, Option<u16>),
}

/// Where load traffic may go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Allow {
    /// Anywhere (the default while auth is off).
    #[default]
    Any,
    /// Only targets matching one of these rules.
    Only(Vec<Rule>),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (host, port) = match self {
            Rule::Name(n, p) => (n.clone(), p),
            Rule::Net(n, p) => (n.to_string(), p),
        };
        match port {
            Some(p) => write!(f, "{host}:{p}"),
            None => write!(f, "{host}"),
        }
    }
}

impl Allow {
    /// Loopback only (the default while auth is on).
    pub fn loopback() -> Allow {
        Allow::Only(vec![
            Rule::Net("127.0.0.0/8".parse().expect("valid net"), None),
            Rule::Net("::1/128".parse().expect("valid net"), None),
            Rule::Name("localhost".into(), None),
        ])
    }

    /// Parses `--load-allow`: a comma list of `host`, `host:port`, `addr`, `[v6]:port`,
    /// `cidr`; `*` allows anything.
    pub fn parse(s: &str) -> Result<Allow, String> {
        let mut rules = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                return Ok(Allow::Any);
            }
            rules.push(parse_rule(item)?);
        }
        if rules.is_empty() {
            return Err("--load-allow: empty list (use * to allow any host)".into());
        }
        Ok(Allow::Only(rules))
    }

    fn allows_addr(&self, addr: SocketAddr) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(rules) => rules.iter().any(|r| match r {
                Rule::Net(net, port) => {
                    net.contains(&canonical(addr.ip())) && port.is_none_or(|p| p == addr.port())
                }
                Rule::Name(..) => false,
            }),
        }
    }

    fn allows_name(&self, host: &str, port: u16) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(rules) => rules.iter().any(|r| match r {
                Rule::Name(n, p) => n.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port),
                Rule::Net(..) => false,
            }),
        }
    }

    /// Resolves `uri`'s host and returns its addresses, in the resolver's order; refuses when
    /// the host is not listed by name and any address it resolves to is outside the list.
    pub(crate) async fn resolve(&self, uri: &http::Uri) -> Result<Vec<SocketAddr>, String> {
        let host = uri
            .host()
            .ok_or_else(|| format!("{uri}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let port = uri.port_u16().unwrap_or(default_port);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{host}: cannot resolve: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host}: resolves to no address"));
        }
        if self.allows_name(host, port) {
            return Ok(addrs);
        }
        // Every address must pass: a name with one allowed and one forbidden address could
        // otherwise reach the forbidden one through another resolver.
        match addrs.iter().find(|a| !self.allows_addr(**a)) {
            None => Ok(addrs),
            Some(bad) if host.parse::<IpAddr>().is_ok() => {
                Err(format!("{bad} is not in the load-target allow-list ({self})"))
            }
            Some(bad) => Err(format!(
                "{host}:{port} resolves to {bad}, which is not in the load-target allow-list ({self})"
            )),
        }
    }

    /// Checks a URL as written in a job (`host` of a task, a webhook URL).
    pub async fn check(&self, url: &str) -> Result<(), String> {
        if *self == Allow::Any {
            return Ok(());
        }
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        self.resolve(&uri).await.map(|_| ())
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Any => write!(f, "*"),
            Allow::Only(rules) => {
                let items: Vec<String> = rules.iter().map(Rule::to_string).collect();
                write!(f, "{}", items.join(","))
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_rule(item: &str) -> Result<Rule, String> {
    let bad = |why: &str| format!("--load-allow: {item:?}: {why}");
    if item.contains('/') {
        return item
            .parse::<IpNet>()
            .map(|n| Rule::Net(n.trunc(), None))
            .map_err(|e| bad(&e.to_string()));
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Ok(Rule::Net(IpNet::from(canonical(ip)), None));
    }
    if let Ok(sa) = item.parse::<SocketAddr>() {
        return Ok(Rule::Net(IpNet::from(canonical(sa.ip())), Some(sa.port())));
    }
    let (host, port) = match item.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(p.parse::<u16>().map_err(|_| bad("port is not a number"))?),
        ),
        None => (item, None),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(bad("expected host, host:port, address or CIDR"));
    }
    Ok(Rule::Name(host.to_ascii_lowercase(), port))
}

/// An HTTP connector that connects only to allowed addresses: it resolves the name itself,
/// checks the result and hands the inner connector the checked address.
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector,
    allow: Arc<Allow>,
}

impl GuardedConnector {
    /// Wraps `inner`.
    pub fn new(inner: HttpConnector, allow: Arc<Allow>) -> Self {
        GuardedConnector { inner, allow }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for GuardedConnector {
    type Response = <HttpConnector as tower::Service<http::Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<http::Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let allow = self.allow.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            if *allow == Allow::Any {
                return tower::Service::call(&mut inner, uri)
                    .await
                    .map_err(Into::into);
            }
            // Like the plain connector, try each address in turn (localhost may list ::1
            // first while the target listens on 127.0.0.1 only).
            let mut last: Option<BoxError> = None;
            for addr in allow.resolve(&uri).await? {
                let checked: http::Uri = format!("http://{addr}").parse()?;
                match tower::Service::call(&mut inner, checked).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) => last = Some(e.into()),
                }
            }
            Err(last.unwrap_or_else(|| "no address to connect to".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_match_addresses_names_and_ports() {
        let a = Allow::parse("10.1.0.0/16, api.test:8080, 192.168.1.5:81, ::1").unwrap();
        assert!(a.check("http://10.1.2.3/x").await.is_ok());
        assert!(a.check("http://10.2.0.1/").await.is_err());
        assert!(a.check("http://192.168.1.5:81/").await.is_ok());
        assert!(a.check("http://192.168.1.5/").await.is_err());
        assert!(a.check("http://[::1]:9/").await.is_ok());
        // https:// without a port is port 443, not 80.
        let tls = Allow::parse("10.9.0.1:443").unwrap();
        assert!(tls.check("https://10.9.0.1/").await.is_ok());
        assert!(tls.check("http://10.9.0.1/").await.is_err());
        assert!(a.allows_name("API.test", 8080));
        assert!(!a.allows_name("api.test", 80));
        let e = a.check("http://127.0.0.1:9/").await.unwrap_err();
        assert!(
            e.contains("127.0.0.1:9 is not in the load-target allow-list"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_name_is_judged_by_its_addresses() {
        // localhost resolves to loopback: allowed by a loopback range, refused by another.
        let lo = Allow::parse("127.0.0.0/8,::1").unwrap();
        assert!(lo.check("http://localhost:1/").await.is_ok());
        let other = Allow::parse("10.0.0.0/8").unwrap();
        let e = other.check("http://localhost:1/").await.unwrap_err();
        assert!(e.contains("localhost:1 resolves to"), "{e}");
    }

    #[test]
    fn bad_items_are_named() {
        assert!(Allow::parse("a b").unwrap_err().contains("\"a b\""));
        assert!(Allow::parse("10.0.0.0/99").is_err());
        assert!(Allow::parse("h:x").unwrap_err().contains("port"));
        assert_eq!(Allow::parse("*,x").unwrap(), Allow::Any);
    }
}
