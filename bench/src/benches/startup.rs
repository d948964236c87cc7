//! Start-up: one echo task is already queued; the time from spawning `swasm run` to the
//! endpoint receiving its answer. Cold: an empty compiled-code cache; warm: the cache the
//! cold run's host filled, left running after its answer until its compiles finished (a
//! big component's Cranelift compile runs in the background after Winch code served), so
//! warm is a host started again after one that ran long enough, loading Cranelift code.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Outcomes, all_closed, until_cranelift_cached, watch};
use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Kind};

pub async fn run(ctx: &Ctx, only: &[String]) -> Vec<Record> {
    let langs = [("rust", "echo"), ("python", "echo-py"), ("js", "echo-js")];
    let mut records = Vec::new();
    for (label, activity) in langs {
        if !only.is_empty() && !only.iter().any(|o| o == label) {
            continue;
        }
        let mut cold = Record::new("startup", &format!("{label} cold"), "ms");
        let mut warm = Record::new("startup", &format!("{label} warm"), "ms");
        cold.note("spawn -> first task answered, empty cache");
        warm.note(
            "spawn -> first task answered, cache filled by the cold run (Cranelift code included)",
        );
        for rep in 0..ctx.sizes.startup_reps {
            let cache = ctx.work.join(format!("startup-cache-{label}-{rep}"));
            for (rec, what) in [(&mut cold, "cold"), (&mut warm, "warm")] {
                match once(ctx, label, activity, &cache, what == "cold").await {
                    Ok(ms) => rec.values.push(ms),
                    Err(e) => rec.note(format!("rep {rep} {what} failed: {e:#}")),
                }
            }
            let _ = std::fs::remove_dir_all(&cache);
        }
        cold.print();
        warm.print();
        records.push(cold);
        records.push(warm);
    }
    records
}

/// One start-up; with `finish_compiles`, the host runs on after its answer until the cache
/// holds its Cranelift code (not timed).
async fn once(
    ctx: &Ctx,
    label: &str,
    activity: &str,
    cache: &std::path::Path,
    finish_compiles: bool,
) -> Result<f64> {
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[(activity, "1")]).await?;
    let task_list = format!("startup-{label}");
    let task = Activity {
        id: "first".into(),
        name: activity.into(),
        version: "1".into(),
        task_list: task_list.clone(),
        input: "\"hello\"".into(),
    };
    let executions = swf::preschedule(&client, "startup", &[task]).await?;
    let dir = workers::run_dir(ctx, &format!("startup-{label}"))?;
    // The plugin is in place before the clock starts: copying an 18 MB file is not start-up.
    std::fs::create_dir_all(dir.join("plugins"))?;
    workers::install_plugin(
        &dir.join("plugins"),
        &ctx.plugins.join(format!("{activity}@1.wasm")),
    )?;
    let kind = Kind::Swasm {
        plugins: vec![],
        max_concurrent: 8,
        pollers: 2,
        heartbeat_interval_s: 30,
        cache_dir: cache.to_path_buf(),
    };
    let spawned = Instant::now();
    let mut worker = workers::start(
        ctx,
        &format!("startup-{label}"),
        &kind,
        &ep.url,
        &task_list,
        &dir,
    )?;
    let worker_log = worker.log.clone();
    let result = async {
        let gate = watch(
            &ep,
            &mut worker,
            "first task answered",
            Duration::from_millis(1),
            Duration::from_secs(180),
            |ep| ep.answered() >= 1,
        )
        .await?;
        // The counters count answers as they arrive, rejected or retried ones too: with one
        // answer and the task completed, the answer was the success; otherwise the task
        // was done once it was closed.
        let closed = all_closed(
            &ep,
            &client,
            &executions,
            &mut worker,
            Duration::from_secs(60),
        )
        .await?;
        let answered = if closed.requests == 1 {
            gate
        } else {
            closed.at
        };
        if finish_compiles {
            until_cranelift_cached(&mut worker, cache, 1).await?;
        }
        anyhow::Ok((answered, closed.requests))
    }
    .await;
    worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (answered, requests) = result?;
    Outcomes::of(&client, &executions)
        .await?
        .all_completed(1, requests, &worker_log)?;
    Ok((answered - spawned).as_secs_f64() * 1000.0)
}
