//! `taskhive-bench`: `taskhive bench` with the peers' protocol drivers plugged in, so the
//! product binary carries none. `bench/compare-gearmand` runs it; every scenario and flag is
//! `taskhive bench`'s (`taskhive-bench --help`).

use clap::Parser;
use futures_util::future::BoxFuture;
use taskhive::cli::bench::{self, BenchArgs, BenchResult, BoxError, PeerDriver};

mod gearman;

/// The allocator of the `taskhive` binary (see `src/main.rs`), so that in-process figures
/// are the product's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// taskhive's benchmarks, with gearmand loaded by a Gearman driver for the
/// gearman-submit and gearman-e2e scenarios.
#[derive(Parser)]
#[command(name = "taskhive-bench", version)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

struct Gearman;

impl PeerDriver for Gearman {
    fn submit<'a>(
        &'a self,
        a: &'a BenchArgs,
        addr: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<BenchResult, BoxError>> {
        Box::pin(gearman::submit(a, addr, label))
    }

    fn e2e<'a>(
        &'a self,
        a: &'a BenchArgs,
        addr: &'a str,
        label: &'a str,
    ) -> BoxFuture<'a, Result<BenchResult, BoxError>> {
        Box::pin(gearman::e2e(a, addr, label))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) =
        rt.block_on(async { taskhive::cli::init_logging(taskhive::cli::LogFormat::Text, None) })
    {
        eprintln!("taskhive-bench: {e}");
        return std::process::ExitCode::from(2);
    }
    match taskhive::cli::run_on_workers(&rt, bench::run_with(cli.args, Some(&Gearman))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskhive-bench: {}", taskhive::cli::error::render(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}
