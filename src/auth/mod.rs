//! Optional token authentication: the tokens file, the one method → role table, and the
//! tower layer that checks every gRPC and HTTP request on the shared port.
//!
//! The tokens file holds one `ROLE SHA256-HEX [NAME]` per line (`#` starts a comment):
//! only hashes are stored, so reading the file does not reveal a usable token. `admin`
//! implies `client` and `worker`. Health checks and reflection stay open so load balancers
//! and `grpcurl list` work without a token.

use crate::status::{is_grpc, refusal};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderMap, Method, Request, Response};
use sha2::{Digest, Sha256};
use tonic::Code;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Submits, runs, removes and reads jobs; reads load jobs and reports.
    Client,
    /// Registers, grabs, reports, heartbeats (worker streams, locks, work data).
    Worker,
    /// Everything, including drop, dead-set changes, dump/load, config, load jobs, quit.
    Admin,
}

impl Role {
    /// The name used in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Worker => "worker",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "client" => Some(Role::Client),
            "worker" => Some(Role::Worker),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a token with this role may call something that needs `need`.
    pub fn grants(self, need: Role) -> bool {
        self == Role::Admin || self == need
    }
}

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One accepted token.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its role.
    pub role: Role,
    /// A label for logs (never the token).
    pub name: String,
}

/// The accepted tokens, by SHA-256 of the token.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Entry>,
}

/// SHA-256 of a token, as stored in the tokens file.
pub fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: 32 bytes of OS randomness, hex-encoded.
pub(crate) fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl Tokens {
    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Tokens::parse(&path.display().to_string(), &text)
    }

    /// Parses the tokens file format; `path` only names the source in errors.
    pub fn parse(path: &str, text: &str) -> Result<Tokens, Error> {
        let mut by_hash = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| Error::Syntax {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let mut words = line.split_whitespace();
            let role = words.next().unwrap_or_default();
            let role = Role::parse(role).ok_or_else(|| {
                err(format!(
                    "role {role:?}: expected client, worker or admin (line format: ROLE SHA256-HEX [NAME])"
                ))
            })?;
            let hash = words
                .next()
                .ok_or_else(|| err("missing the token's SHA-256 (hex)".into()))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hash, &mut digest).map_err(|_| {
                err(format!(
                    "{hash:?} is not a SHA-256 in hex (64 characters); `taskhive auth hash TOKEN` prints one"
                ))
            })?;
            let name = words.collect::<Vec<_>>().join(" ");
            let name = if name.is_empty() {
                format!("line {}", i + 1)
            } else {
                name
            };
            if by_hash.insert(digest, Entry { role, name }).is_some() {
                return Err(err("the same token appears twice".into()));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when the file held no token.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The entry of a presented token.
    pub fn lookup(&self, token: &str) -> Option<&Entry> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&digest)
    }
}

/// Who may call something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Open,
    /// A token whose role grants this one.
    Needs(Role),
}

/// The method → role table for every route on the shared port: gRPC methods and their JSON
/// twins share paths; the Beetle and Periodic HTTP routes are listed by method and path.
/// Anything not listed needs admin, so a new route is closed until someone places it here.
pub fn required(method: &Method, path: &str) -> Access {
    use Role::*;
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Access::Open;
    }
    if let Some(m) = path.strip_prefix("/taskhive.v1.Scheduler/") {
        return Access::Needs(match m {
            "RegisterTask" | "GrabJob" | "ReportResult" | "Heartbeat" | "SendData"
            | "AcquireLock" | "ReleaseLock" | "Work" => Worker,
            "SubmitJob" | "SubmitJobs" | "SubmitStream" | "RunJob" | "RunJobStream"
            | "WatchJob" | "RemoveJob" | "GetJob" | "ListJobs" | "Status" | "ListDead"
            | "GetConfig" | "GetTaskLimits" => Client,
            // Schedules are read by clients; creating, pausing and deleting them is admin's.
            "ListSchedules" | "GetSchedule" => Client,
            _ => Admin,
        });
    }
    if let Some(m) = path.strip_prefix("/taskhive.v1.LoadRunner/") {
        return Access::Needs(match m {
            "ListLoadJobs" | "ListTasks" | "GetLoadStatus" | "ListExecs" | "GetExec" => Client,
            _ => Admin,
        });
    }
    // An execution's report is the archived JobExec, readable as GetExec is.
    if method == Method::GET && path.starts_with("/ui/report/") {
        return Access::Needs(Client);
    }
    // The dashboard's page and scripts hold no data; what they fetch is checked as usual.
    if method == Method::GET && (path == "/ui" || path.starts_with("/ui/")) {
        return Access::Open;
    }
    let is_delete = method == Method::DELETE;
    Access::Needs(match path {
        "/job" | "/exec" | "/ui/exec" | "/quit" => Admin,
        "/tasks" | "/jobs" | "/status" | "/metrics" | "/periodic/status/" => Client,
        p if p.starts_with("/periodic/drop/") => Admin,
        p if p.starts_with("/periodic/") => Client,
        // Periodic 0.1.7's curl API: GET status, POST submit/remove, DELETE drops a func.
        _ if is_delete => Admin,
        "/" => Client,
        p if p.starts_with("/sched/") && !p["/sched/".len()..].contains('/') => Client,
        p if !p[1..].contains('/') => Client,
        _ => Admin,
    })
}

/// `GET /ui/whoami`: the caller's role, so the dashboard shows only what the role may call.
/// Answered here (with auth on) so the token's role is read in this module only; without
/// auth, `http::ui::whoami` answers that everything is allowed.
pub const WHOAMI: &str = "/ui/whoami";

/// The role of the request's token as `{"auth": true, "role": ..., "name": ...}`, or 401.
pub fn whoami(tokens: &Tokens, headers: &HeaderMap) -> Response<Body> {
    use axum::response::IntoResponse;
    let Some(token) = bearer(headers) else {
        return refusal(
            false,
            Code::Unauthenticated,
            "authorization: missing; send `authorization: Bearer <token>`".into(),
        );
    };
    match tokens.lookup(token) {
        Some(e) => axum::Json(serde_json::json!({
            "auth": true,
            "role": e.role.name(),
            "name": e.name,
        }))
        .into_response(),
        None => refusal(
            false,
            Code::Unauthenticated,
            "authorization: unknown token".into(),
        ),
    }
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Decides one request: `Ok` to pass it on, or the refusal's code and message.
pub fn check(
    tokens: &Tokens,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), (Code, String)> {
    let need = match required(method, path) {
        Access::Open => return Ok(()),
        Access::Needs(r) => r,
    };
    let Some(token) = bearer(headers) else {
        return Err((
            Code::Unauthenticated,
            "authorization: missing; send `authorization: Bearer <token>`".into(),
        ));
    };
    let Some(entry) = tokens.lookup(token) else {
        return Err((Code::Unauthenticated, "authorization: unknown token".into()));
    };
    if entry.role.grants(need) {
        Ok(())
    } else {
        Err((
            Code::PermissionDenied,
            format!(
                "{path}: needs the {} role; token {:?} has {}",
                need.name(),
                entry.name,
                entry.role.name()
            ),
        ))
    }
}

/// The tower layer that checks tokens before routing.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Arc<Tokens>,
}

impl AuthLayer {
    /// A layer accepting `tokens`.
    pub fn new(tokens: Arc<Tokens>) -> Self {
        AuthLayer { tokens }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Arc<Tokens>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for Auth<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.uri().path() == WHOAMI {
            let resp = whoami(&self.tokens, req.headers());
            return Box::pin(async move { Ok(resp) });
        }
        match check(&self.tokens, req.method(), req.uri().path(), req.headers()) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err((code, message)) => {
                tracing::debug!(path = req.uri().path(), %message, "request refused");
                let resp = refusal(is_grpc(&req), code, message);
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_checks_roles() {
        let text = format!(
            "# comment\nclient {} ci bot\n\nworker {}\nadmin {} # ops\n",
            hash_hex("c"),
            hash_hex("w"),
            hash_hex("a")
        );
        let t = Tokens::parse("f", &text).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup("c").unwrap().name, "ci bot");
        assert_eq!(t.lookup("w").unwrap().role, Role::Worker);
        assert!(t.lookup("x").is_none());
        let mut h = HeaderMap::new();
        let path = "/taskhive.v1.Scheduler/SubmitJob";
        assert_eq!(
            check(&t, &Method::POST, path, &h).unwrap_err().0,
            Code::Unauthenticated
        );
        h.insert("authorization", "Bearer w".parse().unwrap());
        assert_eq!(
            check(&t, &Method::POST, path, &h).unwrap_err().0,
            Code::PermissionDenied
        );
        h.insert("authorization", "bearer a".parse().unwrap());
        assert!(check(&t, &Method::POST, path, &h).is_ok());
        assert!(check(
            &t,
            &Method::POST,
            "/grpc.health.v1.Health/Check",
            &HeaderMap::new()
        )
        .is_ok());
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = Tokens::parse("f", "client abc\n").unwrap_err().to_string();
        assert!(e.starts_with("f:1:"), "{e}");
        let e = Tokens::parse("f", "\nroot 00\n").unwrap_err().to_string();
        assert!(e.starts_with("f:2: role \"root\""), "{e}");
    }

    #[test]
    fn table_places_http_routes() {
        use Access::*;
        let g = Method::GET;
        assert_eq!(required(&g, "/status"), Needs(Role::Client));
        assert_eq!(required(&Method::POST, "/job"), Needs(Role::Admin));
        assert_eq!(required(&Method::POST, "/exec"), Needs(Role::Admin));
        assert_eq!(required(&Method::DELETE, "/mail"), Needs(Role::Admin));
        assert_eq!(required(&Method::POST, "/mail"), Needs(Role::Client));
        assert_eq!(required(&g, "/"), Needs(Role::Client));
        assert_eq!(
            required(&Method::POST, "/periodic/drop/x/"),
            Needs(Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/periodic/submit/x/y/"),
            Needs(Role::Client)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.Scheduler/Work"),
            Needs(Role::Worker)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.Scheduler/DropTask"),
            Needs(Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.Scheduler/SubmitJobs"),
            Needs(Role::Client)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.Scheduler/SubmitStream"),
            Needs(Role::Client)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.LoadRunner/Exec"),
            Needs(Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/taskhive.v1.Scheduler/Nope"),
            Needs(Role::Admin)
        );
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(required(&Method::POST, reflection), Open);
        assert_eq!(required(&g, "/ui/app.js"), Open);
        assert_eq!(required(&Method::POST, "/ui/exec"), Needs(Role::Admin));
        assert_eq!(required(&g, "/ui/report/some-id"), Needs(Role::Client));
    }
}
