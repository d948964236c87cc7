//! The benchmarks. Each returns [`Record`]s and never fails on a goal miss: a run that
//! could not finish is recorded with a note saying why.
//!
//! [`Record`]: crate::report::Record

pub mod heartbeat;
pub mod hotswap;
pub mod memory;
pub mod soak;
pub mod startup;
pub mod throughput;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::proc::Worker;
use crate::swf;
use crate::workers::{self, Kind};

/// Polls `cond` every `every` until it holds, checking that `worker` is still alive;
/// errors after `deadline`, naming `what` and the progress made.
pub async fn watch(
    ep: &Endpoint,
    worker: &mut Worker,
    what: &str,
    every: Duration,
    deadline: Duration,
    mut cond: impl FnMut(&Endpoint) -> bool,
) -> Result<Instant> {
    let start = Instant::now();
    loop {
        if cond(ep) {
            return Ok(Instant::now());
        }
        worker.check_alive()?;
        if start.elapsed() > deadline {
            bail!(
                "{what}: not reached within {:.0} s ({} tasks answered, {} failed)",
                deadline.as_secs_f64(),
                ep.answered(),
                ep.calls("RespondActivityTaskFailed")
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// How long a host may take to finish its compiles (a Python or JavaScript component's
/// Cranelift compile takes 7-10 s on a quiet machine, on one background thread).
pub const COMPILE_DEADLINE: Duration = Duration::from_secs(300);

/// How many components `cache_dir` holds Cranelift code of: entries' checksum files (each
/// written after its code) in a Cranelift engine's directory
/// (`wasmtime-<version>-cranelift-<settings hash>/`, see host/src/registry/cache.rs).
pub fn cranelift_entries(cache_dir: &Path) -> usize {
    let Ok(engines) = std::fs::read_dir(cache_dir) else {
        return 0;
    };
    engines
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-cranelift-"))
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.path().extension().is_some_and(|x| x == "sum"))
        .count()
}

/// Waits until `cache_dir` holds Cranelift code of `plugins` components, checking that
/// `worker` (the host filling it) is still alive. A big component without cached Cranelift
/// code is served from Winch code first and compiled with Cranelift in the background;
/// this waits for that compile, so the cache is what a host that ran long enough leaves.
pub async fn until_cranelift_cached(
    worker: &mut Worker,
    cache_dir: &Path,
    plugins: usize,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if cranelift_entries(cache_dir) >= plugins {
            return Ok(start.elapsed());
        }
        worker.check_alive()?;
        if start.elapsed() > COMPILE_DEADLINE {
            bail!(
                "{}: Cranelift code of {plugins} component(s) not cached within {} s (see {})",
                worker.label,
                COMPILE_DEADLINE.as_secs(),
                worker.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fills the compiled-code cache of a `swasm run` worker before it is measured, as a host
/// that ran before would have left it: the same worker on a fresh endpoint with no tasks,
/// stopped once Cranelift code of each of its plugins is cached (the background compile
/// of a big component included). Other workers have no cache: nothing to do.
pub async fn fill_cache(ctx: &Ctx, label: &str, kind: &Kind, activity: &str) -> Result<()> {
    let Kind::Swasm {
        plugins, cache_dir, ..
    } = kind
    else {
        return Ok(());
    };
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[(activity, "1")]).await?;
    let dir = workers::run_dir(ctx, &format!("fill-cache-{label}"))?;
    let mut worker = workers::start(
        ctx,
        &format!("fill-cache-{label}"),
        kind,
        &ep.url,
        "fill-cache",
        &dir,
    )?;
    let filled = until_cranelift_cached(&mut worker, cache_dir, plugins.len()).await;
    worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let took = filled?;
    eprintln!(
        "{label}: compiled-code cache filled in {:.1} s",
        took.as_secs_f64()
    );
    Ok(())
}
