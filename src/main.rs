//! The `taskhive` binary: parses the command line and hands over to the library.

use clap::Parser;
use taskhive::cli::{self, Cli, Command};

/// jemalloc, not glibc's malloc: the request path allocates and frees many small short-lived
/// objects across threads (frames, futures, messages); with jemalloc the server spends 5–7 %
/// less CPU per unary submit and about 15 bytes less per pending job (BENCHMARKS.md,
/// "jemalloc"). Set here, in the binaries, not in the library: tests and fuzz targets keep
/// the system allocator (the fuzzers' sanitizers hook it). SQLite, being C, still allocates
/// from glibc.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = cli::runtime(&cli).expect("tokio runtime");
    let (format, otlp) = match &cli.command {
        Command::Serve(args) => (
            args.log_format,
            args.otlp_endpoint
                .as_deref()
                .map(|e| (e, args.node_id.as_deref().unwrap_or(""))),
        ),
        _ => (cli::LogFormat::Text, None),
    };
    // The trace exporter's gRPC client lives on the runtime; it flushes when dropped at exit.
    let _exporter = match rt.block_on(async { cli::init_logging(format, otlp) }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("taskhive: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = cli::run_on_workers(&rt, async move {
        match cli.command {
            Command::Serve(args) => {
                // Connections, not descriptors, should be what --max-connections refuses.
                taskhive::admission::raise_nofile_limit_logged();
                let listener = tokio::net::TcpListener::bind(args.listen).await?;
                let mut announce = vec![format!("listening on {}", listener.local_addr()?)];
                let mut config = cli::serve_config(&args);
                for addr in &args.periodic_listen {
                    let l = taskhive::periodic::Listener::bind(addr).await?;
                    announce.push(format!("periodic listening on {}", l.describe()));
                    config.periodic.push(l);
                }
                // The ports are bound first (a taken port fails at once), but announced only
                // once the store is open and the node can answer: scripts and tests that pass
                // port 0 read the real address from these lines and take them as "ready",
                // and a node whose store cannot open exits without ever printing them.
                let node = taskhive::server::Node::start(listener, config).await?;
                for line in announce {
                    println!("{line}");
                }
                node.serve(cli::shutdown_signal()).await?;
                Ok(std::process::ExitCode::SUCCESS)
            }
            Command::Run(args) => cli::exec_worker::run(args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Auth { action } => {
                cli::auth_command(action).map(|()| std::process::ExitCode::SUCCESS)
            }
            Command::Bench(args) => cli::bench::run(args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            // Its exit code says whether a threshold was exceeded.
            Command::Load {
                runner: Some(cmd), ..
            } => cli::load::run(cmd).await,
            other => cli::commands::run(other)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        // Exit codes: 0 ok, 1 a failure (one line on stderr), 2 a usage error (clap).
        Err(e) => {
            eprintln!("taskhive: {}", cli::error::render(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}
