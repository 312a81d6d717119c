//! The load runner's cluster-wide execution slot.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_postgres::Client;

use super::{connect, db_err, ClusterError};

/// Advisory lock key of the load runner's execution slot; any constant will do.
const EXEC_LOCK_KEY: i64 = 0x7468_6578_6563;

/// The load runner's cluster-wide slot: a session-level advisory lock on a connection of
/// its own, so a node that dies releases it with its session.
pub struct PgExecLock {
    client: Arc<Client>,
}

impl PgExecLock {
    /// Connects the lock's session.
    pub async fn connect(url: &str) -> Result<Self, ClusterError> {
        Ok(PgExecLock {
            client: Arc::new(connect(url).await?.0),
        })
    }
}

impl crate::load::runner::ExecLock for PgExecLock {
    fn try_lock(&self) -> BoxFuture<'static, Result<bool, String>> {
        let c = self.client.clone();
        Box::pin(async move {
            c.query_one("SELECT pg_try_advisory_lock($1)", &[&EXEC_LOCK_KEY])
                .await
                .map(|r| r.get(0))
                .map_err(|e| db_err(e).to_string())
        })
    }

    fn unlock(&self) -> BoxFuture<'static, ()> {
        let c = self.client.clone();
        Box::pin(async move {
            if let Err(e) = c
                .query_one("SELECT pg_advisory_unlock($1)", &[&EXEC_LOCK_KEY])
                .await
            {
                tracing::error!(error = %db_err(e), "releasing the cluster exec lock failed");
            }
        })
    }
}
