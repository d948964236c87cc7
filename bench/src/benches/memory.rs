//! Memory: many long activities in flight at once, each heartbeating every second; the
//! figure is the worker's peak RSS (VmHWM of /proc/PID/status) once all have finished.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::proc::{Worker, mem_available};
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Boto3Mode, Kind};

/// Stop a run before it starves the machine (other helpers build on it).
const MIN_AVAILABLE: u64 = 2 << 30;

pub async fn run(ctx: &Ctx, only: &[String]) -> Vec<Record> {
    let n = ctx.sizes.memory_tasks;
    let cache = ctx.work.join("memory-cache");
    let swasm = |file: &str| Kind::Swasm {
        plugins: vec![ctx.plugins.join(file)],
        max_concurrent: n,
        pollers: 10,
        heartbeat_interval_s: 1,
        cache_dir: cache.clone(),
    };
    let variants = [
        ("swasm-rust", swasm("countdown@1.wasm"), "countdown"),
        ("swasm-python", swasm("countdown-py@1.wasm"), "countdown-py"),
        ("swasm-js", swasm("countdown-js@1.wasm"), "countdown-js"),
        (
            "boto3",
            Kind::Boto3 {
                threads: n,
                mode: Boto3Mode::Countdown,
            },
            "countdown",
        ),
    ];
    let mut records = Vec::new();
    for (label, kind, activity) in variants {
        if !only.is_empty() && !only.iter().any(|o| o == label) {
            continue;
        }
        let mut rec = Record::new("memory", label, "MB");
        rec.note(format!(
            "{n} tasks in flight, {} x 1 s steps",
            ctx.sizes.memory_steps
        ));
        // One repetition: peak RSS barely varies and each run holds tasks for 15+ s.
        match once(ctx, label, &kind, activity).await {
            Ok((mb, secs)) => {
                rec.values.push(mb);
                rec.note(format!("all done in {secs:.1} s"));
            }
            Err(e) => rec.note(format!("failed: {e:#}")),
        }
        rec.print();
        records.push(rec);
    }
    records
}

async fn once(ctx: &Ctx, label: &str, kind: &Kind, activity: &str) -> Result<(f64, f64)> {
    let n = ctx.sizes.memory_tasks;
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[(activity, "1")]).await?;
    let task_list = format!("memory-{label}");
    let input = format!(r#"{{"steps":{},"step_ms":1000}}"#, ctx.sizes.memory_steps);
    let activities: Vec<Activity> = (0..n)
        .map(|i| Activity {
            id: format!("m{i}"),
            name: activity.into(),
            version: "1".into(),
            task_list: task_list.clone(),
            input: input.clone(),
        })
        .collect();
    swf::preschedule(&client, &format!("memory-{label}"), &activities).await?;
    let dir = workers::run_dir(ctx, &format!("memory-{label}"))?;
    let mut worker = workers::start(ctx, label, kind, &ep.url, &task_list, &dir)?;
    let result = watch_all(&ep, &mut worker, n as u64, ctx.sizes.memory_steps).await;
    worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Waits for every task to be answered, guarding the machine's memory; returns the peak
/// RSS in MB (read while the process is still alive) and the time taken.
async fn watch_all(ep: &Endpoint, worker: &mut Worker, n: u64, steps: u32) -> Result<(f64, f64)> {
    let start = Instant::now();
    let deadline = Duration::from_secs(120 + 4 * steps as u64);
    let mut peak = 0;
    loop {
        worker.check_alive()?;
        peak = peak.max(worker.peak_rss()?);
        if ep.answered() >= n {
            break;
        }
        let available = mem_available()?;
        if available < MIN_AVAILABLE {
            bail!(
                "stopped: machine down to {} MB available with {} MB peak RSS and {} of {n} answered",
                available >> 20,
                peak >> 20,
                ep.answered()
            );
        }
        if start.elapsed() > deadline {
            bail!(
                "{} of {n} answered after {:.0} s (peak RSS so far {} MB)",
                ep.answered(),
                deadline.as_secs_f64(),
                peak >> 20
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = ep.calls("RespondActivityTaskFailed");
    if failed > 0 {
        bail!(
            "{failed} of {n} tasks failed (see {}); peak RSS {} MB",
            worker.log.display(),
            peak >> 20
        );
    }
    Ok((
        peak as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64(),
    ))
}
