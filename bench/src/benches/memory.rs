//! Memory: many long activities in flight at once, each heartbeating every second; the
//! figure is the worker's peak RSS (VmHWM of /proc/PID/status) once all have finished, in
//! MB (10^6 bytes). A swasm worker's compiled-code cache is filled first, so the peak is
//! that of the tasks in flight, not of compiling (for Python and JavaScript, two compilers).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Outcomes, all_closed, fill_cache};
use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::proc::{Worker, mem_available, proc_status_kb};
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Boto3Mode, Kind};

/// Stop a run before it starves the machine (other helpers build on it).
const MIN_AVAILABLE: u64 = 2 << 30;

/// Bytes per MB: the figures are MB of 10^6 bytes, as the goal (256 MB) is.
const MB: f64 = 1e6;

pub async fn run(ctx: &Ctx, only: &[String]) -> Vec<Record> {
    let n = ctx.sizes.memory_tasks;
    let cache = ctx.work.join("memory-cache");
    let swasm = |file: &str| Kind::Swasm {
        plugins: vec![ctx.plugins.join(file)],
        max_concurrent: n,
        pollers: 10,
        heartbeat_interval_s: 1,
        cache_dir: cache.join(file),
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
        let measured = match fill_cache(ctx, &format!("memory-{label}"), &kind, activity).await {
            Ok(()) => once(ctx, label, &kind, activity).await,
            Err(e) => Err(e.context("filling the cache")),
        };
        match measured {
            Ok(m) => {
                rec.values.push(m.peak as f64 / MB);
                rec.note(format!(
                    "all done in {:.1} s; highest VmRSS sampled while tasks were in flight {:.0} MB",
                    m.secs,
                    m.in_flight as f64 / MB
                ));
            }
            Err(e) => rec.note(format!("failed: {e:#}")),
        }
        rec.print();
        records.push(rec);
    }
    records
}

/// What one run found.
struct Measured {
    /// VmHWM once all tasks are answered, in bytes.
    peak: u64,
    /// The highest VmRSS sampled (every 100 ms) from the first heartbeat to the last
    /// answer, in bytes.
    in_flight: u64,
    /// Seconds from the worker's start to the last answer (to all activities closed, if
    /// more answers than tasks arrived).
    secs: f64,
}

async fn once(ctx: &Ctx, label: &str, kind: &Kind, activity: &str) -> Result<Measured> {
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
    let executions = swf::preschedule(&client, &format!("memory-{label}"), &activities).await?;
    let dir = workers::run_dir(ctx, &format!("memory-{label}"))?;
    let mut worker = workers::start(ctx, label, kind, &ep.url, &task_list, &dir)?;
    let result = async {
        let started = Instant::now();
        let mut m = watch_all(&ep, &mut worker, n as u64).await?;
        // The counters count answers as they arrive, rejected or retried ones too: the
        // tasks are done once their activities are closed.
        let closed = all_closed(
            &ep,
            &client,
            &executions,
            &mut worker,
            Duration::from_secs(60),
        )
        .await?;
        m.peak = m.peak.max(worker.peak_rss()?);
        if closed.requests > n as u64 {
            m.secs = (closed.at - started).as_secs_f64();
        }
        Outcomes::of(&client, &executions).await?.all_completed(
            n as u64,
            closed.requests,
            &worker.log,
        )?;
        Ok(m)
    }
    .await;
    match &result {
        Ok(_) => worker.stop().await,
        Err(_) => worker.stop_after_failure().await,
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A run fails once its worker has made no progress (heartbeats or answers) for this
/// long: every task in flight heartbeats each second, so 30 s without one is stuck, not
/// slow (boto3 with 1,000 threads takes 3x the tasks' 15 s, and keeps heartbeating).
const STALL: Duration = Duration::from_secs(30);
/// And in any case after this long: far beyond any run seen (50 s).
const CAP: Duration = Duration::from_secs(600);

/// The SWF calls the worker made so far, for errors: what it did tells stuck from slow.
fn calls(ep: &Endpoint) -> String {
    [
        ("polls", "PollForActivityTask"),
        ("heartbeats", "RecordActivityTaskHeartbeat"),
        ("completed", "RespondActivityTaskCompleted"),
        ("failed", "RespondActivityTaskFailed"),
        ("canceled", "RespondActivityTaskCanceled"),
    ]
    .iter()
    .map(|(name, op)| format!("{name} {}", ep.calls(op)))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Waits for every task to be answered, guarding the machine's memory; returns the peak
/// RSS (read while the process is still alive), the highest RSS sampled meanwhile, and
/// the time taken. Fails when the worker dies, stops making progress for [`STALL`], or
/// takes longer than [`CAP`] in all, naming the calls it made.
async fn watch_all(ep: &Endpoint, worker: &mut Worker, n: u64) -> Result<Measured> {
    let start = Instant::now();
    let mut peak = 0;
    let mut in_flight = 0;
    let mut progress = 0;
    let mut progressed = start;
    loop {
        worker
            .check_alive()
            .with_context(|| format!("calls so far: {}", calls(ep)))?;
        peak = peak.max(worker.peak_rss()?);
        if ep.answered() >= n {
            break;
        }
        let heartbeats = ep.calls("RecordActivityTaskHeartbeat");
        // In flight: from the first heartbeat (a task has run a step) to the last answer.
        if heartbeats > 0 {
            in_flight = in_flight.max(proc_status_kb(worker.pid(), "VmRSS")? * 1024);
        }
        let now = heartbeats + ep.answered();
        if now > progress {
            (progress, progressed) = (now, Instant::now());
        }
        let available = mem_available()?;
        if available < MIN_AVAILABLE {
            bail!(
                "stopped: machine down to {:.0} MB available with {:.0} MB peak RSS after {:.0} s ({})",
                available as f64 / MB,
                peak as f64 / MB,
                start.elapsed().as_secs_f64(),
                calls(ep)
            );
        }
        if progressed.elapsed() > STALL {
            bail!(
                "stuck: no heartbeat or answer for {:.0} s, {:.0} s into the run ({}; peak RSS so far {:.0} MB; see {})",
                progressed.elapsed().as_secs_f64(),
                start.elapsed().as_secs_f64(),
                calls(ep),
                peak as f64 / MB,
                worker.log.display()
            );
        }
        if start.elapsed() > CAP {
            bail!(
                "too slow: not done after {:.0} s, still progressing ({}; peak RSS so far {:.0} MB; see {})",
                CAP.as_secs_f64(),
                calls(ep),
                peak as f64 / MB,
                worker.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Measured {
        peak,
        in_flight,
        secs: start.elapsed().as_secs_f64(),
    })
}
