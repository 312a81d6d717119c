//! Starts everything: store, scheduler actor, gRPC services (with health and reflection).

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::load::catalog::Catalog;
use crate::load::runner::Parts;
use crate::load::LoadRunner;
use crate::pb;
use crate::rpc::load::LoadRunnerService;
use crate::rpc::scheduler::SchedulerService;
use crate::scheduler::clock::Clock;
use crate::scheduler::core::{Core, CoreConfig};
use crate::scheduler::{actor, SchedulerHandle};
use crate::store::sqlite::SqliteStore;
use crate::store::writer::Writer;
use crate::store::{Store, StoreReader};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// gRPC transport failure.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection service set-up failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// Socket failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Load runner set-up failed (tasks file, archive directory).
    #[error("load runner: {0}")]
    Load(#[from] crate::load::Error),
}

/// What start-up hands to the faces: the scheduler, and the store's parts the load runner uses.
pub struct Started {
    /// The scheduler actor.
    pub handle: SchedulerHandle,
    /// The actor task.
    pub actor_join: tokio::task::JoinHandle<()>,
    /// The store writer thread.
    pub writer_join: std::thread::JoinHandle<()>,
    /// Another handle to the store writer (load jobs and archived executions).
    pub writer: Writer,
    /// Reads archived executions beside the writer.
    pub reader: Box<dyn StoreReader>,
    /// Saved load jobs: `(name, json)`.
    pub load_jobs: Vec<(String, String)>,
}

/// Opens the store and starts the scheduler actor; returns its handle, the store parts the
/// load runner needs, and what to join at shutdown.
pub async fn start_scheduler(config: &Config) -> Result<Started, ServerError> {
    let dir = config.data_dir.clone();
    let sync = config.sync;
    let (store, records, load_jobs, reader) = tokio::task::spawn_blocking(move || {
        let mut store = SqliteStore::open(&dir, sync)?;
        let records = store.load_jobs()?;
        let load_jobs = store.load_load_jobs()?;
        let reader = store.reader()?;
        Ok::<_, crate::store::StoreError>((store, records, load_jobs, reader))
    })
    .await
    .expect("store open task")?;
    let clock = Clock::system();
    let now = clock.now_ms();
    let n = records.len();
    // Lease ids start from the clock in microseconds: a report for a lease handed out
    // before a restart can never match a lease handed out after it.
    let first_lease = (now as u64).saturating_mul(1000);
    let mut core = Core::new(
        CoreConfig {
            max_dead: config.max_dead,
            ..CoreConfig::default()
        },
        now as u64,
        first_lease,
    );
    core.restore(records, now);
    tracing::info!(jobs = n, dir = %config.data_dir.display(), "store loaded");
    let (writer, writer_join) = Writer::spawn(store);
    let (handle, actor_join) = actor::spawn(core, writer.clone(), clock);
    Ok(Started {
        handle,
        actor_join,
        writer_join,
        writer,
        reader,
        load_jobs,
    })
}

/// The load runner over the started scheduler and store.
fn start_load_runner(
    config: &Config,
    sched: SchedulerHandle,
    writer: Writer,
    reader: Box<dyn StoreReader>,
    stored_jobs: Vec<(String, String)>,
) -> Result<LoadRunner, ServerError> {
    let defs = match &config.load.tasks_file {
        Some(path) => crate::load::tasks_file::load(path)?,
        None => Vec::new(),
    };
    if let Some(dir) = &config.load.archive_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            crate::load::Error::invalid("archive-dir", format!("{}: {e}", dir.display()))
        })?;
    }
    tracing::info!(
        http_tasks = defs.len() + 1,
        jobs = stored_jobs.len(),
        "load runner ready"
    );
    Ok(LoadRunner::new(Parts {
        cfg: config.load.clone(),
        catalog: Catalog::new(defs),
        sched,
        writer,
        reader,
        stored_jobs,
    }))
}

/// Accepted connections with Nagle off: replies are small and latency-bound. (The builder's
/// `tcp_nodelay` only applies to listeners it binds itself.)
fn incoming(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures_util::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Serves every face on `listener` until `shutdown` resolves, then flushes the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr: SocketAddr = listener.local_addr()?;
    let Started {
        handle,
        actor_join,
        writer_join,
        writer,
        reader,
        load_jobs,
    } = start_scheduler(&config).await?;
    let runner = start_load_runner(&config, handle.clone(), writer, reader, load_jobs)?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::scheduler_server::SchedulerServer<SchedulerService>>()
        .await;
    health_reporter
        .set_serving::<pb::load_runner_server::LoadRunnerServer<LoadRunnerService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let scheduler = pb::scheduler_server::SchedulerServer::new(SchedulerService::new(
        handle.clone(),
        config.limits.clone(),
    ))
    .max_decoding_message_size(config.limits.max_args_bytes + 64 * 1024);
    let load_runner =
        pb::load_runner_server::LoadRunnerServer::new(LoadRunnerService::new(runner.clone()))
            .max_decoding_message_size(config.limits.max_args_bytes + 64 * 1024);

    tracing::info!(%addr, "taskhive serving");
    // On shutdown: stop accepting, end worker streams (their jobs go back to pending), let
    // in-flight calls finish within the grace period, then stop regardless.
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let grace = config.shutdown_grace;
    let signal = {
        let h = handle.clone();
        let stopping = stopping.clone();
        let runner = runner.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            // A running load execution stops starting tasks and is archived before the
            // workers its remote tasks wait on are closed (bounded by the grace period).
            runner.stop();
            runner.wait_idle(grace / 2).await;
            h.close_workers();
            stopping.notify_one();
        }
    };
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(scheduler)
        .add_service(load_runner)
        .serve_with_incoming_shutdown(incoming(listener), signal);
    tokio::select! {
        r = serve => r?,
        _ = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "calls still open after the grace period; stopping anyway");
        }
    }

    // Everything acknowledged is already committed; this waits for internal writes too.
    let _ = handle.flush().await;
    drop((handle, runner, actor_join, writer_join));
    tracing::info!("taskhive stopped");
    Ok(())
}
