//! Starts a node — store, scheduler actor, load runner, Periodic listeners, the gRPC services
//! (with health and reflection) and the HTTP face on one port — and stops it
//! (`shutdown.rs`). `run` = [`Node::start`] then [`Node::serve`].

mod one_port;
mod shutdown;
#[cfg(test)]
mod test_serve;
mod unary_calls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::load::catalog::Catalog;
use crate::load::runner::Parts;
use crate::load::LoadRunner;
use crate::pb;
use crate::pb::scheduler_server::SchedulerServer;
use crate::rpc::load::LoadRunnerService;
use crate::rpc::scheduler::SchedulerService;
use crate::scheduler::clock::Clock;
use crate::scheduler::core::{Core, CoreConfig};
use crate::scheduler::settings::Settings;
use crate::scheduler::{actor, SchedulerHandle};
use crate::store::disk::{DiskGuarded, DiskWatch};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::writer::Writer;
use crate::store::{Store, StoreReader};
pub use shutdown::Shutdown;
#[cfg(test)]
pub(crate) use test_serve::TestServe;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Reflection service set-up failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// Socket failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Cluster set-up failed.
    #[error("{0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// Load runner set-up failed (tasks file, archive directory).
    #[error("load runner: {0}")]
    Load(#[from] crate::load::Error),
    /// The tokens file could not be read.
    #[error("--auth {0}")]
    Auth(#[from] crate::auth::Error),
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(#[from] crate::net::Error),
    /// The flags contradict each other.
    #[error("{0}")]
    Config(String),
}

/// What start-up hands to the faces: the scheduler, and the store's parts the load runner uses.
pub struct Started {
    /// The scheduler actor.
    pub handle: SchedulerHandle,
    /// The actor task.
    pub actor_join: tokio::task::JoinHandle<()>,
    /// Cluster mode: the task claiming jobs for this node.
    pub claimer: Option<tokio::task::JoinHandle<()>>,
    /// Cluster mode: names of load jobs saved on any node.
    pub load_job_news: Option<tokio::sync::broadcast::Receiver<String>>,
    /// The schedule driver (abort it at shutdown: it holds a handle).
    pub schedules: tokio::task::JoinHandle<()>,
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
pub(crate) async fn start_scheduler(
    config: &Config,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> Result<Started, ServerError> {
    let dir = config.data_dir.clone();
    let sync = config.sync;
    let pg = config.postgres_url.clone();
    // Cluster mode: claims of this node's previous run are released and the writer is
    // fenced by this node's claims; the core starts empty and fills by claiming.
    let cluster = match (&config.postgres_url, &config.cluster) {
        (Some(url), Some(cc)) => {
            Some((url.clone(), cc.clone(), crate::cluster::Cluster::fence(cc)))
        }
        (None, Some(_)) => {
            return Err(ServerError::Store(crate::store::StoreError::Backend(
                "cluster mode needs a postgres:// store".into(),
            )))
        }
        _ => None,
    };
    let fence = cluster.as_ref().map(|c| c.2.clone());
    let cluster_mode = cluster.is_some();
    // The payload budget: every job is in the store, so memory need not hold every payload.
    let payload_budget = (!cluster_mode && config.payload_memory > 0)
        .then(|| usize::try_from(config.payload_memory).unwrap_or(usize::MAX));
    let spill_from = payload_budget.map(|_| crate::scheduler::core::SPILL_MIN);
    let started = std::time::Instant::now();
    let (store, mut records, stored_config, load_jobs, reader, schedules, paused) =
        tokio::task::spawn_blocking(move || {
            let mut store: Box<dyn Store> = match pg {
                Some(url) => {
                    let mut s = PgStore::open(&url)?;
                    if let Some(f) = fence {
                        s.set_fence(f);
                    }
                    Box::new(s)
                }
                None => Box::new(SqliteStore::open(&dir, sync)?),
            };
            let records = if cluster_mode {
                crate::store::StoredJobs::default()
            } else {
                store.load_stored_jobs(spill_from)?
            };
            let config = store.load_config()?;
            let load_jobs = store.load_load_jobs()?;
            let reader = store.reader()?;
            let schedules = if cluster_mode {
                Vec::new()
            } else {
                store.load_schedules()?
            };
            let paused = store.load_paused_tasks()?;
            let limits = store.load_task_limits()?;
            Ok::<_, crate::store::StoreError>((
                store,
                records,
                config,
                load_jobs,
                reader,
                schedules,
                (paused, limits),
            ))
        })
        .await
        .expect("store open task")?;
    let clock = Clock::system();
    let now = clock.now_ms();
    let n = records.jobs.len();
    // Lease ids start from the clock in microseconds: a report for a lease handed out
    // before a restart can never match a lease handed out after it.
    let first_lease = (now as u64).saturating_mul(1000);
    let mut core = Core::new(
        CoreConfig {
            max_dead: config.max_dead,
            max_jobs: config.max_jobs,
            max_jobs_per_task: config.max_jobs_per_task,
            max_workers_per_task: config.max_workers_per_task,
            payload_budget,
            ..CoreConfig::default()
        },
        now as u64,
        first_lease,
    );
    let read_ms = started.elapsed().as_millis() as u64;
    let settings = Settings::new(
        (config.limits.default_timeout_ms / 1000).max(1) as i64,
        stored_config,
    );
    // Rows an earlier cluster version stored carry no timeout (a single server may open
    // its database).
    settings.fill_stored_timeouts(records.jobs.iter_mut().map(|(_, r)| r));
    core.restore_stored(records, now);
    // Large payloads were left in the store: read back those of the jobs due first, as many
    // as the budget holds.
    let (store, mut core) = tokio::task::spawn_blocking(move || {
        let (mut store, mut core) = (store, core);
        let ids = core.payloads_to_read();
        for chunk in ids.chunks(256) {
            let read = store.read_args(chunk)?;
            core.fill_payloads(read);
        }
        Ok::<_, crate::store::StoreError>((store, core))
    })
    .await
    .expect("payload read task")?;
    let (paused, limits) = paused;
    for task in paused {
        core.set_task_paused(&task, true);
    }
    for (task, text) in limits {
        match crate::scheduler::limits::TaskLimits::from_stored(&text) {
            Ok(l) => core.set_task_limits(&task, l),
            // Stored by a newer server, or damaged: not applied, said loudly.
            Err(e) => {
                tracing::error!(task, limits = %text, error = %e, "stored task limits unreadable; not applied")
            }
        }
    }
    // Reading and indexing the store leaves tens of MiB of freed scratch (row buffers, sort
    // runs, grown vectors). SQLite's is in glibc's heap (C code allocates there even when
    // the binary's Rust allocator is jemalloc): hand it back to the OS once, not per job.
    // jemalloc returns its own share as its decay purges freed pages.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
    let index_ms = started.elapsed().as_millis() as u64 - read_ms;
    match &config.postgres_url {
        Some(_) => tracing::info!(
            jobs = n,
            read_ms,
            index_ms,
            store = "postgres",
            "store loaded"
        ),
        None => {
            tracing::info!(jobs = n, read_ms, index_ms, dir = %config.data_dir.display(), "store loaded")
        }
    }
    let (writer, writer_join) =
        Writer::spawn_bounded(store, config.backlog_jobs, config.backlog_bytes);
    // The one place the client API's backend is chosen: this node's core, or the cluster.
    let (handle, actor_join, claimer, load_job_news, schedule_news) = match cluster {
        None => {
            let disk_gauge = metrics.disk_free();
            metrics.watch_backlog(crate::scheduler::durable::Durable::backlog(&writer));
            let (node, j) = actor::spawn_node(
                core,
                settings,
                writer.clone(),
                clock,
                metrics,
                actor::Holding::Everything,
                None,
            );
            let schedules = schedules
                .into_iter()
                .filter_map(|row| {
                    let name = row.name.clone();
                    let s = crate::scheduler::schedule::Schedule::from_row(row);
                    if s.is_none() {
                        tracing::warn!(schedule = %name, "stored schedule unreadable; ignored");
                    }
                    s
                })
                .collect();
            node.restore_schedules(schedules);
            node.keep_results(config.keep_results.as_millis() as crate::scheduler::job::Millis);
            let mut jobs: std::sync::Arc<dyn crate::scheduler::backend::Backend> =
                std::sync::Arc::new(node.local());
            // The free-disk watermark guards the SQLite store's submits; a PostgreSQL
            // store's disk is the database's concern.
            if config.postgres_url.is_none() && config.min_free_disk > 0 {
                let disk =
                    DiskWatch::start(&config.data_dir, config.min_free_disk, Some(disk_gauge))?;
                tracing::info!(
                    free = disk.free(),
                    min_free = config.min_free_disk,
                    "free-disk watermark on"
                );
                jobs = DiskGuarded::wrap(jobs, disk);
            }
            (node.with_jobs(jobs), j, None, None, None)
        }
        Some((url, cc, fence)) => {
            // The database grants lock slots across the cluster.
            core.set_locks_external();
            crate::cluster::Cluster::prepare(&url, &cc).await?;
            let (link, hook) = crate::cluster::Cluster::connect(&url, &cc, &fence).await?;
            let watch = metrics.clone();
            let (node, j) = actor::spawn_node(
                core,
                settings,
                writer.clone(),
                clock,
                metrics,
                actor::Holding::Claims,
                Some(hook),
            );
            let backlog = (config.backlog_jobs, config.backlog_bytes);
            let jobs = link.jobs(&url, node.clone(), backlog).await?;
            watch.watch_backlog(jobs.backlog());
            // Subscribed before the claimer starts: it announces every stored load job once
            // it listens (saves between the store's first read and then would be missed).
            let news = link.load_job_news();
            let claimer = link.spawn_claimer(&url, &cc, node.clone()).await?;
            tracing::info!(node = %cc.node_id, "cluster node started");
            (
                node.with_jobs(std::sync::Arc::new(jobs)),
                j,
                Some(claimer),
                Some(news),
                Some(link.schedule_news()),
            )
        }
    };
    // In a cluster other nodes change schedules too: they announce it (NOTIFY), and the
    // driver reloads then.
    let schedules = crate::scheduler::schedule_driver::spawn(handle.clone(), schedule_news);
    Ok(Started {
        handle,
        actor_join,
        claimer,
        load_job_news,
        schedules,
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
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    exec_lock: Option<std::sync::Arc<dyn crate::load::runner::ExecLock>>,
) -> Result<LoadRunner, ServerError> {
    let defs = match &config.load.tasks_file {
        Some(path) => {
            let defs = crate::load::tasks_file::load(path)?;
            crate::load::tasks_file::check_insecure(&defs, config.load.insecure_tls, path)?;
            defs
        }
        None => Vec::new(),
    };
    let trust =
        crate::load::tls::Trust::load(config.load.ca_file.as_deref(), config.load.insecure_tls)?;
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
        metrics,
        exec_lock,
        trust,
    }))
}

/// Runs a node until `shutdown` resolves (or `/quit`), then stops it gracefully.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Node::start(listener, config).await?.serve(shutdown).await
}

/// Fails on bad security settings before anything is opened or served: the tokens file is
/// read, and with auth on no Periodic TCP listener is allowed (the Periodic binary protocol
/// has no token field, so only unix sockets, guarded by file permissions, may carry it).
fn check_security(config: &Config) -> Result<Option<Arc<crate::auth::Tokens>>, ServerError> {
    let Some(path) = &config.auth else {
        return Ok(None);
    };
    let t = crate::auth::Tokens::load(path)?;
    tracing::info!(tokens = t.len(), file = %path.display(), "auth on");
    if let Some(l) = config
        .periodic
        .iter()
        .find(|l| matches!(l, crate::periodic::Listener::Tcp(_)))
    {
        return Err(ServerError::Config(format!(
            "--periodic-listen {}: the Periodic protocol carries no token, so with --auth only unix:// listeners are allowed",
            l.describe()
        )));
    }
    Ok(Some(Arc::new(t)))
}

/// The gRPC services on one router: health, reflection (v1 and v1alpha), the scheduler and
/// the load runner. Only what clients send is limited: replies (a JobExec with 10,000
/// executions per task, a page of dead jobs) are the server's own and may be larger.
async fn grpc_router(
    scheduler: SchedulerServer<SchedulerService>,
    load_service: LoadRunnerService,
    max_message: usize,
) -> Result<axum::Router, ServerError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SchedulerServer<SchedulerService>>()
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
    let load_runner = pb::load_runner_server::LoadRunnerServer::new(load_service)
        .max_decoding_message_size(max_message);
    Ok(tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(scheduler)
        .add_service(load_runner)
        .into_axum_router())
}

/// A started node: the store open, the scheduler and the load runner running, the Periodic
/// listeners serving, and the shared port's router built but not yet serving.
pub struct Node {
    config: Config,
    listener: TcpListener,
    app: one_port::App,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gate: Arc<crate::admission::Gate>,
    handle: SchedulerHandle,
    runner: LoadRunner,
    started: Background,
    quit: Arc<tokio::sync::Notify>,
    periodic_stop: tokio::sync::watch::Sender<bool>,
    shutdown: Shutdown,
}

/// What runs beside the faces and is stopped or joined at the end.
struct Background {
    actor_join: tokio::task::JoinHandle<()>,
    claimer: Option<tokio::task::JoinHandle<()>>,
    schedules: tokio::task::JoinHandle<()>,
    writer_join: std::thread::JoinHandle<()>,
}

impl Node {
    /// Starts everything but the shared port: checks the security settings, opens the store,
    /// starts the scheduler, the load runner and the Periodic listeners, and builds the
    /// gRPC + HTTP router.
    pub async fn start(listener: TcpListener, mut config: Config) -> Result<Node, ServerError> {
        let tokens = check_security(&config)?;
        let tls = config
            .net
            .tls
            .as_ref()
            .map(crate::net::acceptor)
            .transpose()?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // One set of connection caps for every listener.
        let gate = crate::admission::Gate::new(config.net.admission(), metrics.connections());
        let Started {
            handle,
            actor_join,
            claimer,
            load_job_news,
            schedules,
            writer_join,
            writer,
            reader,
            load_jobs,
        } = start_scheduler(&config, metrics.clone()).await?;
        // Cluster mode: one load execution at a time across every node.
        let exec_lock: Option<Arc<dyn crate::load::runner::ExecLock>> =
            match (&config.postgres_url, &config.cluster) {
                (Some(url), Some(_)) => {
                    Some(Arc::new(crate::cluster::PgExecLock::connect(url).await?))
                }
                _ => None,
            };
        let runner = start_load_runner(
            &config,
            handle.clone(),
            writer,
            reader,
            load_jobs,
            metrics.clone(),
            exec_lock,
        )?;
        if let Some(news) = load_job_news {
            runner.follow(news);
        }

        let service = SchedulerService::new(handle.clone(), config.limits.clone());
        let load_service = LoadRunnerService::new(runner.clone());
        // One Scheduler service, in the gRPC router and handed to the port directly.
        let unary_service = service.clone();
        let scheduler = SchedulerServer::new(service.clone())
            .max_decoding_message_size(config.limits.message_limit());
        let grpc = grpc_router(
            scheduler.clone(),
            load_service.clone(),
            config.limits.message_limit(),
        )
        .await?;

        let (periodic_stop, periodic_stopped) = tokio::sync::watch::channel(false);
        let face = crate::periodic::face(
            handle.clone(),
            config.limits.clone(),
            &config.net,
            gate.clone(),
        );
        for l in std::mem::take(&mut config.periodic) {
            tracing::info!(addr = %l.describe(), "periodic face listening");
            let mut stopped = periodic_stopped.clone();
            tokio::spawn(crate::periodic::serve(l, face.clone(), async move {
                let _ = stopped.wait_for(|&s| s).await;
            }));
        }

        let quit = Arc::new(tokio::sync::Notify::new());
        let json = crate::http::AppState::new(crate::http::AppParts {
            scheduler: service,
            h: handle.clone(),
            limits: config.limits.clone(),
            quit: quit.clone(),
            metrics,
            load: runner.clone(),
            load_service,
        });
        let http = crate::http::router(json.clone());
        let unary = unary_calls::UnaryCalls::new(unary_service, config.limits.message_limit());
        let port = one_port::OnePort::new(grpc, scheduler, unary, json, http);
        let app = match tokens {
            None => one_port::App::Open(port),
            Some(tokens) => {
                use tower::Layer as _;
                one_port::App::Guarded(crate::auth::AuthLayer::new(tokens).layer(port))
            }
        };
        let shutdown = Shutdown::new(config.shutdown_grace);
        Ok(Node {
            config,
            listener,
            app,
            tls,
            gate,
            handle,
            runner,
            started: Background {
                actor_join,
                claimer,
                schedules,
                writer_join,
            },
            quit,
            periodic_stop,
            shutdown,
        })
    }

    /// Serves the shared port until `signal` resolves (or `/quit`), then stops in
    /// [`Shutdown`]'s order.
    pub async fn serve(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Node {
            config,
            listener,
            app,
            tls,
            gate,
            handle,
            runner,
            started,
            quit,
            periodic_stop,
            shutdown,
        } = self;
        let addr: SocketAddr = listener.local_addr()?;
        tracing::info!(%addr, tls = tls.is_some(), "taskhive serving");
        let drain = shutdown.drain(handle.clone(), runner.clone(), periodic_stop);
        let serve = crate::net::serve(
            listener,
            app,
            config.net.clone(),
            tls,
            gate,
            shutdown.signal(signal, quit),
        );
        let hard_stop = shutdown.hard_stop();
        tokio::pin!(hard_stop);
        tokio::select! {
            r = serve => {
                r?;
                let _ = tokio::time::timeout(shutdown.drain_wait(), drain).await;
            }
            _ = &mut hard_stop => {
                tracing::warn!(grace = ?config.shutdown_grace, "calls still open after the grace period; stopping anyway");
            }
        }
        let Background {
            actor_join,
            claimer,
            schedules,
            writer_join,
        } = started;
        shutdown::finish(&config, &handle, schedules, claimer).await;
        drop((handle, runner, actor_join, writer_join));
        tracing::info!("taskhive stopped");
        Ok(())
    }
}
