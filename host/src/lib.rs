//! swasm runs AWS Simple Workflow Service activities as sandboxed WebAssembly components.
//!
//! # Layout
//! The SWF side and the WebAssembly side share only the plain Rust types of [`activity`];
//! for one task, [`dispatch`] joins them. The commands built on top use both sides:
//! [`worker`] and [`dev`] wire a whole host, [`register`] registers with SWF the types of the
//! plugins that load, and [`tools`] runs a plugin locally and cuts its answer to SWF's sizes.
//!
//! - [`activity`]: activity type, task, outcome, the `Heartbeat` trait. No wasmtime, no AWS types.
//! - [`config`]: `swasm.toml`, parsed and checked.
//! - [`runtime`]: wasmtime: the engine, the only `bindgen!`, WASI grants, limits, the epoch ticker.
//! - [`registry`]: plugin dir -> compiled components, swapped atomically; hot-swap watcher, cache.
//! - [`swf`]: the SWF client trait and its aws-sdk-swf implementation.
//! - [`heartbeat`]: throttles guest heartbeats per task and turns cancel/gone into a flag.
//! - [`dispatch`]: one task: look up the plugin, run it, answer SWF (with retries).
//! - [`guests`]: the threads guest code runs on, apart from the SWF traffic.
//! - [`poller`]: per task list: slot permit -> long poll -> dispatch.
//! - [`shutdown`]: the two-phase shutdown signal.
//! - [`metrics`]: Prometheus counters and the `/metrics`, `/healthz`, `/readyz`, `/status` server.
//! - [`worker`]: `swasm run`: wires the registry, the SWF client, the pollers and the metrics
//!   server together, and runs the two-phase shutdown.
//! - [`register`]: `swasm register` and `run --register`: the domain and the activity type of
//!   every plugin that loads.
//! - [`tools`]: `swasm invoke`, `check` and `plugins`: trying plugins locally, without SWF.
//! - [`dev`]: `swasm dev`: swf-local + the worker + the demo decider in one process.
//! - [`logging`]: `tracing` to stderr, as text or JSON lines.
//! - [`cli`]: the `swasm` command line.

/// `println!` for what a command prints to stdout. A reader that stops reading
/// (`swasm invoke ... | head -1`) ends the output, not the command, so the exit code still
/// says how the command went; `println!` would panic instead.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(format_args!($($arg)*))
    };
}

/// Writes one line of [`say!`] output. A closed pipe is not an error; other write errors are
/// reported on stderr.
fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write to stdout: {e}");
    }
}

pub mod activity;
pub mod cli;
pub mod config;
pub mod dev;
pub mod dispatch;
pub mod guests;
pub mod heartbeat;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod register;
pub mod registry;
pub mod runtime;
pub mod shutdown;
pub mod swf;
#[cfg(test)]
mod testing;
pub mod tools;
pub mod worker;
