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

use anyhow::{Context, Result, bail};
use aws_sdk_swf::types::{EventType, WorkflowExecution};

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
                "{what}: not reached within {:.0} s ({} answers received, {} of them failures)",
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

/// How many activities of `executions` are open (DescribeWorkflowExecution's counts).
pub async fn open_activities(
    client: &aws_sdk_swf::Client,
    executions: &[WorkflowExecution],
) -> Result<i32> {
    let mut open = 0;
    for execution in executions {
        let out = client
            .describe_workflow_execution()
            .domain(swf::DOMAIN)
            .execution(execution.clone())
            .send()
            .await
            .context("DescribeWorkflowExecution")?;
        open += out.open_counts.map_or(0, |c| c.open_activity_tasks);
    }
    Ok(open)
}

/// When the activities of a run were all closed, and how many answers arrived for them.
pub struct Closed {
    /// The first look at which none was open.
    pub at: Instant,
    /// RespondActivityTask* requests received by then.
    pub requests: u64,
}

/// Waits until none of `executions`' activities is open (DescribeWorkflowExecution's open
/// counts), checking that `worker` is alive. The call counters that gate a run count
/// RespondActivityTask* requests as they arrive, rejected or retried ones included, so a
/// run is over once its activities are closed, not once the counters say so.
pub async fn all_closed(
    ep: &Endpoint,
    client: &aws_sdk_swf::Client,
    executions: &[WorkflowExecution],
    worker: &mut Worker,
    deadline: Duration,
) -> Result<Closed> {
    let start = Instant::now();
    loop {
        let open = open_activities(client, executions).await?;
        if open == 0 {
            return Ok(Closed {
                at: Instant::now(),
                requests: ep.answered(),
            });
        }
        worker.check_alive()?;
        if start.elapsed() > deadline {
            bail!(
                "{open} activities still open {:.0} s after {} answers arrived",
                deadline.as_secs_f64(),
                ep.answered()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How the activities of some executions closed, from their histories.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcomes {
    pub completed: u64,
    pub failed: u64,
    pub canceled: u64,
    pub timed_out: u64,
}

impl Outcomes {
    /// Reads the histories of `executions` (unmeasured: after the run).
    pub async fn of(
        client: &aws_sdk_swf::Client,
        executions: &[WorkflowExecution],
    ) -> Result<Outcomes> {
        let mut o = Outcomes::default();
        for execution in executions {
            for e in heartbeat::history(client, execution).await? {
                match e.event_type {
                    EventType::ActivityTaskCompleted => o.completed += 1,
                    EventType::ActivityTaskFailed => o.failed += 1,
                    EventType::ActivityTaskCanceled => o.canceled += 1,
                    EventType::ActivityTaskTimedOut => o.timed_out += 1,
                    _ => {}
                }
            }
        }
        Ok(o)
    }

    /// Errors unless all `n` activities completed; names what happened instead and how
    /// many answers (`requests`) arrived for them.
    pub fn all_completed(&self, n: u64, requests: u64, log: &Path) -> Result<()> {
        if self.completed != n {
            bail!(
                "{} of {n} tasks completed ({} failed, {} canceled, {} timed out) from {requests} RespondActivityTask* requests (see {})",
                self.completed,
                self.failed,
                self.canceled,
                self.timed_out,
                log.display()
            );
        }
        Ok(())
    }
}
