//! Hot swap: echo tasks flow through `swasm run` while the benchmark atomically renames
//! other code over the served file; the latency is from the rename to the swf-local
//! timestamp of the first ActivityTaskCompleted whose result comes from the new code.
//!
//! Per repetition and language, with an empty compiled-code cache at start: A serves,
//! A -> B (B never compiled: cold), B -> A and A -> B again (both compiled before: warm).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_swf::Client;
use aws_sdk_swf::types::EventType;

use crate::endpoint::Endpoint;
use crate::proc::Worker;
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Kind};
use crate::{Ctx, now_secs};

/// Tasks kept in flight by the flow (each completion schedules a new task).
const IN_FLIGHT: usize = 8;

/// Tells the code serving a result apart from the other.
#[derive(Clone, Copy)]
enum Signature {
    /// The echo: the result is the input.
    Echo,
    /// `echo-b`: `"B:" + input`.
    PrefixB,
    /// A countdown given `{"steps":0,...}`: `{"done":0}`.
    Done,
}

impl Signature {
    fn matches(self, input: &str, result: &str) -> bool {
        match self {
            Signature::Echo => result == input,
            Signature::PrefixB => result.starts_with("B:"),
            Signature::Done => result.contains("done"),
        }
    }
}

/// One language's pair of components served under the same file name.
struct Lang {
    label: &'static str,
    /// The served file name, `<activity>@1.wasm`.
    activity: &'static str,
    a: PathBuf,
    b: PathBuf,
    b_sig: Signature,
    input: &'static str,
}

fn langs(ctx: &Ctx) -> Vec<Lang> {
    let steps0 = r#"{"steps":0,"step_ms":0}"#;
    vec![
        Lang {
            label: "rust",
            activity: "echo",
            a: ctx.plugins.join("echo@1.wasm"),
            b: ctx.guests.join("echo-b.wasm"),
            b_sig: Signature::PrefixB,
            input: "hello",
        },
        // Python and JavaScript have no echo-b: B is the same language's countdown, whose
        // result for zero steps tells it apart from the echo.
        Lang {
            label: "python",
            activity: "echo-py",
            a: ctx.plugins.join("echo-py@1.wasm"),
            b: ctx.plugins.join("countdown-py@1.wasm"),
            b_sig: Signature::Done,
            input: steps0,
        },
        Lang {
            label: "js",
            activity: "echo-js",
            a: ctx.plugins.join("echo-js@1.wasm"),
            b: ctx.plugins.join("countdown-js@1.wasm"),
            b_sig: Signature::Done,
            input: steps0,
        },
    ]
}

pub async fn run(ctx: &Ctx, only: &[String]) -> Vec<Record> {
    let mut records = Vec::new();
    for lang in langs(ctx) {
        if !only.is_empty() && !only.iter().any(|o| o == lang.label) {
            continue;
        }
        let mut cold = Record::new("hotswap", &format!("{} cold", lang.label), "ms");
        let mut warm = Record::new("hotswap", &format!("{} warm", lang.label), "ms");
        cold.note("empty cache: A -> B, B never compiled");
        warm.note("B -> A and A -> B again, both compiled before");
        for rep in 0..ctx.sizes.hotswap_reps {
            match once(ctx, &lang).await {
                Ok(m) => {
                    cold.values.push(m[0]);
                    warm.values.extend_from_slice(&m[1..]);
                }
                Err(e) => cold.note(format!("rep {rep} failed: {e:#}")),
            }
        }
        cold.print();
        warm.print();
        records.push(cold);
        records.push(warm);
    }
    records
}

/// What the flow has seen: `(event timestamp, result)` of every completed task.
#[derive(Default)]
struct Seen {
    completed: Mutex<Vec<(f64, String)>>,
    failed: AtomicU64,
}

async fn once(ctx: &Ctx, lang: &Lang) -> Result<Vec<f64>> {
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[(lang.activity, "1")]).await?;
    let task_list = format!("hotswap-{}", lang.label);
    let dir = workers::run_dir(ctx, &format!("hotswap-{}", lang.label))?;
    let served = format!("{}@1.wasm", lang.activity);
    let plugins_dir = dir.join("plugins");
    std::fs::create_dir_all(&plugins_dir)?;
    std::fs::copy(&lang.a, plugins_dir.join(&served))
        .with_context(|| format!("copying {}", lang.a.display()))?;
    let cache = dir.join("cache");
    let kind = Kind::Swasm {
        plugins: vec![],
        max_concurrent: 64,
        pollers: 2,
        heartbeat_interval_s: 30,
        cache_dir: cache,
    };
    let mut worker = workers::start(
        ctx,
        &format!("hotswap-{}", lang.label),
        &kind,
        &ep.url,
        &task_list,
        &dir,
    )?;
    let seen = Arc::new(Seen::default());
    let template = Activity {
        id: String::new(),
        name: lang.activity.into(),
        version: "1".into(),
        task_list,
        input: lang.input.into(),
    };
    swf::start_workflow(&client, "hotswap").await?;
    let flow = tokio::spawn(flow(client.clone(), template, seen.clone()));
    let result = async {
        let a_sig = Signature::Echo;
        // A serves (first load, compile included) before anything is timed.
        wait_seen(
            &seen,
            &mut worker,
            0.0,
            a_sig,
            lang.input,
            20,
            Duration::from_secs(300),
        )
        .await?;
        let staging = dir.join("staging");
        std::fs::create_dir_all(&staging)?;
        let mut latencies = Vec::new();
        for (file, sig) in [
            (&lang.b, lang.b_sig),
            (&lang.a, a_sig),
            (&lang.b, lang.b_sig),
        ] {
            let staged = staging.join(&served);
            std::fs::copy(file, &staged).with_context(|| format!("copying {}", file.display()))?;
            let at = now_secs();
            std::fs::rename(&staged, plugins_dir.join(&served))
                .context("renaming into the plugin dir")?;
            let first = wait_seen(
                &seen,
                &mut worker,
                at,
                sig,
                lang.input,
                1,
                Duration::from_secs(180),
            )
            .await?;
            latencies.push((first - at) * 1000.0);
            // Let the new code serve a while, so no task of the old code is still in flight
            // when the next swap starts looking for the old code's results.
            wait_seen(
                &seen,
                &mut worker,
                first,
                sig,
                lang.input,
                50,
                Duration::from_secs(60),
            )
            .await?;
        }
        let failed = seen.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} tasks failed or timed out during the swaps (see {})",
                worker.log.display()
            );
        }
        Ok(latencies)
    }
    .await;
    flow.abort();
    worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    drop(ep);
    result
}

/// Waits until `count` results matching `sig` have timestamps at or after `since`;
/// returns the timestamp of the first of them.
async fn wait_seen(
    seen: &Seen,
    worker: &mut Worker,
    since: f64,
    sig: Signature,
    input: &str,
    count: usize,
    deadline: Duration,
) -> Result<f64> {
    let start = Instant::now();
    loop {
        {
            let done = seen.completed.lock().expect("lock");
            let mut matching = done
                .iter()
                .filter(|(ts, r)| *ts >= since && sig.matches(input, r));
            if let Some(first) = matching.clone().map(|(ts, _)| *ts).reduce(f64::min)
                && matching.by_ref().count() >= count
            {
                return Ok(first);
            }
        }
        worker.check_alive()?;
        if start.elapsed() > deadline {
            let n = seen.completed.lock().expect("lock").len();
            bail!(
                "no result of the new code within {:.0} s ({n} tasks completed so far)",
                deadline.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The driver as decider: keeps [`IN_FLIGHT`] tasks scheduled, one new task per closed one,
/// recording every completion's timestamp and result.
async fn flow(client: Client, template: Activity, seen: Arc<Seen>) -> Result<()> {
    let mut next_id = 0u64;
    let mut make = |n: usize| -> Result<Vec<aws_sdk_swf::types::Decision>> {
        (0..n)
            .map(|_| {
                next_id += 1;
                swf::schedule(&Activity {
                    id: format!("h{next_id}"),
                    ..template.clone()
                })
            })
            .collect()
    };
    let first = swf::next_decision(&client).await?;
    swf::respond(&client, &first.token, make(IN_FLIGHT)?).await?;
    loop {
        let Some(task) = swf::poll_decision(&client).await? else {
            continue;
        };
        let mut closed = 0;
        for e in &task.new_events {
            match e.event_type {
                EventType::ActivityTaskCompleted => {
                    closed += 1;
                    let result = e
                        .activity_task_completed_event_attributes()
                        .and_then(|a| a.result.clone())
                        .unwrap_or_default();
                    seen.completed
                        .lock()
                        .expect("lock")
                        .push((swf::event_secs(e), result));
                }
                EventType::ActivityTaskFailed
                | EventType::ActivityTaskTimedOut
                | EventType::ActivityTaskCanceled => {
                    closed += 1;
                    seen.failed.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        swf::respond(&client, &task.token, make(closed)?).await?;
    }
}
