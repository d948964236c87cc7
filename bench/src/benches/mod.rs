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

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::endpoint::Endpoint;
use crate::proc::Worker;

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
