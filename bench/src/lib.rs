//! swasm-bench: measures swasm against the workers users would pick instead, on loopback,
//! with swf-local in this process and each worker under test as a separate process.
//!
//! # Layout
//! - [`endpoint`]: a fresh in-process swf-local per measurement, its call counts.
//! - [`swf`]: the aws-sdk-swf client, registration and the driver's own decisions.
//! - [`proc`]: worker processes (spawn, liveness, peak RSS, kill).
//! - [`workers`]: the workers compared: `swasm run`, the native Rust worker, boto3.
//! - [`benches`]: throughput, memory, heartbeat traffic, hot swap, start-up, and the soak.
//! - [`report`]: the raw results written for `bench/report.py`.

pub mod benches;
pub mod endpoint;
pub mod proc;
pub mod report;
pub mod swf;
pub mod workers;

use std::path::PathBuf;
use std::time::Duration;

/// Paths and sizes every benchmark needs.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The `swasm` release binary under test.
    pub swasm: PathBuf,
    /// The native Rust worker (the throughput limit).
    pub native_worker: PathBuf,
    /// A Python with boto3 (the venv's) and the boto3 worker script.
    pub python: PathBuf,
    pub boto3_worker: PathBuf,
    /// `plugins/dist` (example components) and `tests/guests/dist` (echo-b).
    pub plugins: PathBuf,
    pub guests: PathBuf,
    /// Scratch space: configs, plugin dirs and caches of each run (deleted by bench/run).
    pub work: PathBuf,
    /// Worker logs, for post-mortems.
    pub logs: PathBuf,
    /// Counts and repetitions.
    pub sizes: Sizes,
}

/// How much each benchmark does; `--quick` shrinks everything to a smoke run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sizes {
    pub reps: usize,
    /// Throughput repetitions of the pair the goal compares (native, swasm-rust): single
    /// pairs spread from 0.6x to 1.0x on this VM, so the goal is judged on more of them.
    pub pair_reps: usize,
    pub throughput_tasks: usize,
    /// The boto3 worker runs ~8x slower than native: fewer tasks keep its runs to ~20 s
    /// (the row says how many).
    pub boto3_tasks: usize,
    /// Hot swap repetitions: a cold Python or JavaScript load compiles for 10-40 s.
    pub hotswap_reps: usize,
    pub memory_tasks: usize,
    pub memory_steps: u32,
    pub heartbeat_window: Duration,
    pub startup_reps: usize,
    /// How long the soak runs (only with `--only soak`), and its tasks per wave; its
    /// records say both, so the full run's header leaves them out.
    #[serde(skip)]
    pub soak: Duration,
    #[serde(skip)]
    pub soak_wave: usize,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            reps: 3,
            pair_reps: 9,
            throughput_tasks: 20_000,
            boto3_tasks: 5_000,
            hotswap_reps: 2,
            memory_tasks: 1000,
            memory_steps: 15,
            heartbeat_window: Duration::from_secs(10),
            startup_reps: 2,
            soak: Duration::from_secs(600),
            soak_wave: 2000,
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            reps: 1,
            pair_reps: 1,
            throughput_tasks: 500,
            boto3_tasks: 500,
            hotswap_reps: 1,
            memory_tasks: 200,
            memory_steps: 5,
            heartbeat_window: Duration::from_secs(3),
            startup_reps: 1,
            soak: Duration::from_secs(60),
            soak_wave: 300,
        }
    }
}

/// The median of a non-empty sample (mean of the middle two for even sizes).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Wall-clock seconds since the epoch (comparable with swf-local's event timestamps).
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
