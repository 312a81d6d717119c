//! How a node stops, in the mini-redis manner: one `Shutdown` carries the signal every part
//! waits on, and its steps run in one order.
//!
//! On shutdown (signal or `/quit`): stop accepting, stop handing out jobs, let results of
//! jobs already out arrive within the grace period (on open Work streams and Periodic
//! connections), then end worker streams (what is still held goes back to pending) and stop;
//! calls still open a second after the grace period are cut. Then the background tasks stop,
//! internal writes are flushed and, in a cluster, this node's claims are given back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::load::LoadRunner;
use crate::scheduler::SchedulerHandle;

/// The stop signal and the grace period; cloned receivers tell each part when to stop.
pub struct Shutdown {
    stopping: watch::Sender<bool>,
    grace: Duration,
}

impl Shutdown {
    /// A shutdown with `grace` for jobs already out to report.
    pub fn new(grace: Duration) -> Self {
        Shutdown {
            stopping: watch::channel(false).0,
            grace,
        }
    }

    /// Resolves when `external` (a signal) or `quit` (`/quit`) fires, after telling every
    /// part to stop. The HTTP server stops accepting when it resolves.
    pub fn signal(
        &self,
        external: impl Future<Output = ()> + Send + 'static,
        quit: Arc<Notify>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let stopping = self.stopping.clone();
        let grace = self.grace;
        async move {
            tokio::select! {
                _ = external => {}
                _ = quit.notified() => {}
            }
            tracing::info!(?grace, "shutting down");
            let _ = stopping.send(true);
        }
    }

    /// Resolves once stopping began.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|&s| s).await;
        }
    }

    /// Spawns the drain: once stopping, Periodic connections stop reading requests, a running
    /// load execution is stopped and archived (within half the grace period) before the
    /// workers its remote tasks wait on are closed, open leases may report until the grace
    /// period ends, then worker streams end.
    pub fn drain(
        &self,
        h: SchedulerHandle,
        runner: LoadRunner,
        periodic_stop: watch::Sender<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let stopped = self.stopped();
        let grace = self.grace;
        tokio::spawn(async move {
            stopped.await;
            let deadline = tokio::time::Instant::now() + grace;
            let _ = periodic_stop.send(true);
            runner.stop();
            runner.wait_idle(grace / 2).await;
            if tokio::time::timeout_at(deadline, h.drain()).await.is_err() {
                tracing::warn!("jobs still held at the end of the grace period go back to pending");
            }
            h.close_workers();
        })
    }

    /// Resolves a second after the grace period once stopping began: calls still open then
    /// are cut.
    pub(crate) fn hard_stop(&self) -> impl Future<Output = ()> + Send + 'static {
        let stopped = self.stopped();
        let cut = self.grace + Duration::from_secs(1);
        async move {
            stopped.await;
            tokio::time::sleep(cut).await;
        }
    }

    /// How long to wait for the drain after the HTTP server stopped (Periodic connections are
    /// not the HTTP server's: their results may still come).
    pub(crate) fn drain_wait(&self) -> Duration {
        self.grace + Duration::from_secs(1)
    }
}

/// The last steps, after serving ended: background tasks stop, every internal write is
/// flushed (everything acknowledged is already committed) and a cluster node gives its
/// claims back.
pub async fn finish(
    config: &Config,
    h: &SchedulerHandle,
    schedules: tokio::task::JoinHandle<()>,
    claimer: Option<tokio::task::JoinHandle<()>>,
) {
    schedules.abort();
    if let Some(c) = claimer {
        c.abort();
    }
    let _ = h.flush().await;
    if let (Some(url), Some(cc)) = (&config.postgres_url, &config.cluster) {
        match crate::cluster::Cluster::release(url, cc).await {
            Ok(n) => tracing::info!(jobs = n, "cluster claims released"),
            Err(e) => tracing::warn!(error = %e, "cluster claims not released; they expire"),
        }
    }
}
