//! The `swasm` binary: parse the command line, set up logs, run the command.

use std::process::ExitCode;

use clap::Parser;
use swasm::cli::{Cli, run};

/// mimalloc rather than glibc's malloc: the SDK's and wasmtime's many small, short-lived
/// allocations per task cost less, and freed memory goes back to the OS sooner.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    swasm::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait on stray background tasks (file watchers, the metrics server).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
