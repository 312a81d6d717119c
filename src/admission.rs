//! Connection admission shared by every listener (the gRPC/HTTP port and the Periodic
//! TCP and unix listeners): a cap on open connections and one per peer address, counted in
//! `/metrics` and logged at most once a second; and the start-up raise of the open-files limit.
//!
//! A connection is admitted or refused right after `accept`, before TLS or any read, so a
//! refused one costs one accept and one close. Admitted connections hold a [`Permit`]
//! until they close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::ConnMetrics;

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` connections were open.
    MaxConnections,
    /// `--max-connections-per-ip` connections from this address were open.
    PerIp,
}

impl Refusal {
    /// The `reason` label of `taskhive_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::PerIp => "per_ip",
        }
    }
}

/// Why the server closed a connection it had admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// TLS handshake, HTTP/2 preface, HTTP/1 header or Periodic client type too slow.
    Header,
    /// Nothing in flight and nothing received for the idle timeout.
    Idle,
}

impl Timeout {
    /// The `reason` label of `taskhive_connections_timed_out_total`.
    pub fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
        }
    }
}

/// Admission limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most, every listener together; 0 = no cap.
    pub max_connections: usize,
    /// Open connections from one IP address at most; 0 = no cap. Unix-socket peers have none.
    pub max_per_ip: usize,
}

struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

/// Counts open connections and admits or refuses new ones. One per server, shared by every
/// listener.
pub struct Gate {
    limits: Limits,
    open: Mutex<Open>,
    log: Mutex<RefusalLog>,
    metrics: ConnMetrics,
}

/// An admitted connection; dropping it frees its place.
pub struct Permit {
    gate: Arc<Gate>,
    ip: Option<IpAddr>,
}

impl Gate {
    /// A gate with nothing open.
    pub fn new(limits: Limits, metrics: ConnMetrics) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            open: Mutex::new(Open {
                total: 0,
                per_ip: HashMap::new(),
            }),
            log: Mutex::new(RefusalLog {
                last: None,
                unlogged: 0,
            }),
            metrics,
        })
    }

    /// Admits a connection from `ip` (None: a unix-socket peer), or counts and logs its
    /// refusal; the caller then closes it at once.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Permit> {
        let ip = ip.map(|a| a.to_canonical());
        let refusal = {
            let mut open = self.open.lock().expect("gate lock");
            let l = self.limits;
            let from_ip = ip.and_then(|a| open.per_ip.get(&a).copied()).unwrap_or(0);
            if l.max_connections > 0 && open.total >= l.max_connections {
                Some(Refusal::MaxConnections)
            } else if l.max_per_ip > 0 && ip.is_some() && from_ip >= l.max_per_ip {
                Some(Refusal::PerIp)
            } else {
                open.total += 1;
                if let Some(a) = ip {
                    *open.per_ip.entry(a).or_insert(0) += 1;
                }
                None
            }
        };
        match refusal {
            None => {
                self.metrics.open.inc();
                Some(Permit {
                    gate: self.clone(),
                    ip,
                })
            }
            Some(r) => {
                self.refused(r, ip);
                None
            }
        }
    }

    /// Counts a connection closed for a timeout.
    pub(crate) fn timed_out(&self, t: Timeout) {
        self.metrics.timed_out.with_label_values(&[t.label()]).inc();
    }

    fn refused(&self, r: Refusal, ip: Option<IpAddr>) {
        self.metrics.refused.with_label_values(&[r.label()]).inc();
        let mut log = self.log.lock().expect("gate log lock");
        log.unlogged += 1;
        let now = Instant::now();
        if log
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(
                refused = log.unlogged,
                reason = r.label(),
                peer = ?ip,
                max_connections = self.limits.max_connections,
                max_per_ip = self.limits.max_per_ip,
                "connections refused since the last report (open-connection limit)"
            );
            log.unlogged = 0;
            log.last = Some(now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().expect("gate lock");
        open.total -= 1;
        if let Some(a) = self.ip {
            if let Some(n) = open.per_ip.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    open.per_ip.remove(&a);
                }
            }
        }
        drop(open);
        self.gate.metrics.open.dec();
    }
}

/// Raises the soft limit of open files (`RLIMIT_NOFILE`) to the hard limit, so the
/// connection caps, not the descriptor limit, decide what is refused. Returns the soft and
/// hard limits in force afterwards.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every unix
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// [`raise_nofile_limit`], logging the limits before and after (or why it failed).
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every unix
pub fn raise_nofile_limit_logged() {
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) } == 0;
    match raise_nofile_limit() {
        Ok((soft, hard)) if read => tracing::info!(
            soft_before = before.rlim_cur as u64,
            soft,
            hard,
            "open-files limit (RLIMIT_NOFILE)"
        ),
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-files limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Gate, Limits};
    use std::net::IpAddr;

    fn gate(
        max_connections: usize,
        max_per_ip: usize,
    ) -> (std::sync::Arc<Gate>, crate::metrics::ConnMetrics) {
        let m = crate::metrics::Metrics::new().connections();
        let g = Gate::new(
            Limits {
                max_connections,
                max_per_ip,
            },
            m.clone(),
        );
        (g, m)
    }

    #[test]
    fn caps_count_open_connections_and_free_places_on_drop() {
        let (g, m) = gate(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = g.admit(Some(a)).unwrap();
        let _a2 = g.admit(Some(a)).unwrap();
        assert!(g.admit(Some(a)).is_none(), "third from one address");
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert!(g.admit(Some("::ffff:10.0.0.1".parse().unwrap())).is_none());
        let _b1 = g.admit(Some(b)).unwrap();
        assert!(g.admit(Some(b)).is_none(), "total cap");
        assert!(g.admit(None).is_none(), "unix peers count toward the total");
        assert_eq!(m.open.get(), 3);
        assert_eq!(m.refused.with_label_values(&["per_ip"]).get(), 2);
        assert_eq!(m.refused.with_label_values(&["max_connections"]).get(), 2);
        drop(a1);
        assert_eq!(m.open.get(), 2);
        let _a3 = g.admit(Some(a)).unwrap();
    }

    #[test]
    fn zero_means_no_cap() {
        let (g, m) = gate(0, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..100).map(|_| g.admit(Some(a)).unwrap()).collect();
        assert_eq!(m.open.get(), 100);
        drop(held);
        assert_eq!(m.open.get(), 0);
    }
}
