//! How a client command's failure reads: one line saying what failed and what to check.
//!
//! - A refused call: `invalid argument: tasks[1].task_class: unknown task class ...` (the gRPC
//!   code in words, then the server's message), with a hint for UNAUTHENTICATED and
//!   PERMISSION_DENIED.
//! - No connection: `cannot connect to ADDR: connection refused; is 'taskhive serve' running?
//!   (--addr / TASKHIVE_ADDR)`, or the TLS variant naming `--ca`.
//!
//! Exit codes: 0 success, 1 any failure, 2 a usage error (clap); `load exec` adds its own
//! (see `cli::load`).

use std::error::Error as StdError;
use std::fmt;

/// A connection to the server could not be made.
#[derive(Debug)]
pub struct ConnectError {
    /// The address tried, as given (`--addr`).
    pub addr: String,
    /// Whether TLS was used.
    pub tls: bool,
    /// The underlying failure.
    pub source: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = &self.addr;
        if let Some(tls) = tls_cause(&*self.source) {
            return write!(
                f,
                "cannot connect to {addr}: TLS handshake failed: {tls}; check --ca / TASKHIVE_CA \
                 (the CA that signed the server's certificate) and that the server runs with --tls-cert"
            );
        }
        let cause = io_cause(&*self.source).unwrap_or_else(|| deepest(&*self.source));
        write!(
            f,
            "cannot connect to {addr}: {cause}; is 'taskhive serve' running? (--addr / TASKHIVE_ADDR)"
        )?;
        let reset = find::<std::io::Error>(&*self.source)
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
        if !self.tls && reset {
            write!(f, "; if the server uses TLS, pass --ca")?;
        }
        Ok(())
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The one line `main` prints after `taskhive: ` for a failed command.
pub fn render(e: &(dyn StdError + 'static)) -> String {
    if let Some(s) = find::<tonic::Status>(e) {
        return render_status(s);
    }
    e.to_string()
}

/// A refused call: the code in lowercase words, the server's message, and what to check.
pub(crate) fn render_status(s: &tonic::Status) -> String {
    let words = crate::status::code_name(s.code())
        .to_ascii_lowercase()
        .replace('_', " ");
    let msg = s.message();
    let mut out = if msg.is_empty() {
        words
    } else {
        format!("{words}: {msg}")
    };
    // A status with a source was made on this side from a transport failure (a server's
    // refusal arrives as headers, without one): the connection broke, not the request.
    if s.source().is_some() {
        out.push_str(
            "; the connection failed: check --addr / TASKHIVE_ADDR, and --ca / TASKHIVE_CA if \
             the server uses TLS",
        );
        return out;
    }
    match s.code() {
        tonic::Code::Unauthenticated => {
            out.push_str("; check --token / TASKHIVE_TOKEN (the server runs with --auth)")
        }
        tonic::Code::PermissionDenied => out.push_str(
            "; the token's role may not do this: check --token / TASKHIVE_TOKEN and its role",
        ),
        _ => {}
    }
    out
}

fn find<'a, T: StdError + 'static>(mut e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    loop {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        e = e.source()?;
    }
}

/// The I/O failure under a transport error, in words (`connection refused`).
fn io_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let io = find::<std::io::Error>(e)?;
    use std::io::ErrorKind as K;
    Some(match io.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::TimedOut => "timed out".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => deepest(io),
    })
}

/// A rustls error anywhere in the chain (also inside an `io::Error`).
fn tls_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            if let Some(t) = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
            {
                return Some(t.to_string());
            }
        }
        cur = x.source();
    }
    None
}

fn deepest(e: &(dyn StdError + 'static)) -> String {
    let mut e = e;
    while let Some(s) = e.source() {
        e = s;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_reads_code_in_words_then_message() {
        let s = tonic::Status::invalid_argument("tasks[1].task_class: unknown task class");
        let e: Box<dyn StdError + Send + Sync> = Box::new(s);
        assert_eq!(
            render(&*e),
            "invalid argument: tasks[1].task_class: unknown task class"
        );
        let s = tonic::Status::unauthenticated("missing token");
        assert!(render_status(&s).starts_with("unauthenticated: missing token; check --token"));
        // Made here from a broken connection (plain HTTP/2 to a TLS port, say): not a refusal.
        let s = tonic::Status::from_error(Box::new(std::io::Error::other("h2 protocol error")));
        assert!(
            render_status(&s).contains("; the connection failed: check --addr"),
            "{}",
            render_status(&s)
        );
    }

    #[test]
    fn a_refused_connection_says_what_to_do() {
        let e = ConnectError {
            addr: "127.0.0.1:1".into(),
            tls: false,
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            e.to_string(),
            "cannot connect to 127.0.0.1:1: connection refused; is 'taskhive serve' running? \
             (--addr / TASKHIVE_ADDR)"
        );
    }
}
