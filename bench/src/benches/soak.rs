//! Soak: one `swasm run` serving a mixed load for many minutes while its Rust echo is
//! hot-swapped every 20 s. Every 2 s it samples the host's RSS, open file descriptors and
//! threads, and this process's RSS (swf-local runs here). A leak shows as growth after the
//! warm-up; a lost or misrouted task shows as an outcome other than the one its kind must
//! end with. Figures only, like every benchmark: nothing fails on them.
//!
//! The load comes in waves of `soak_wave` activity tasks: mostly Rust echoes, and in every
//! wave a few of each other kind (Python, JavaScript and C echoes, a guest-reported
//! failure, heartbeating countdowns, traps, a stack overflow, an oversized result, a
//! memory hog, a guest that loops until its deadline, and countdowns canceled while they
//! run). A wave ends when its executions have no open activity; its histories are checked,
//! then its executions are terminated, and with the domain's retention of 0 days the
//! endpoint forgets them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_swf::Client;
use aws_sdk_swf::types::{EventType, WorkflowExecution};
use serde::Serialize;

use crate::Ctx;
use crate::benches::heartbeat::history;
use crate::endpoint::Endpoint;
use crate::proc::{Worker, proc_status_kb};
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers;

const TASK_LIST: &str = "soak";
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const SWAP_EVERY: Duration = Duration::from_secs(20);
/// The first half of the run is warm-up: code is compiled, and the instance pool's slots
/// fill up to what each keeps resident between tasks (2 MiB of memory, 256 KiB of table),
/// which the rare Python and JavaScript tasks reach slowly. Growth is measured after it.
const WARM_UP_SHARE: f64 = 0.5;
/// A wave that has not drained by then is reported as stuck (its slowest task takes ~1 s).
const WAVE_DEADLINE: Duration = Duration::from_secs(120);
/// Examples of unexpected outcomes kept for the report.
const EXAMPLES: usize = 5;

/// How a task of one kind must end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Completed with this result (`None`: any result).
    Completed(Option<&'static str>),
    Failed(&'static str),
    Canceled,
}

/// One kind of task in every wave.
struct Kind {
    /// The activity id's prefix, which names the kind in histories.
    id: &'static str,
    activity: &'static str,
    input: &'static str,
    per_wave: usize,
    expect: Expect,
}

/// The canceled countdowns run long (60 s) so they are running, heartbeating, when the
/// wave cancels them.
const CANCELED: &str = "cancel";

/// A wave's kinds for `wave` tasks: the rare kinds scale with the wave (their counts are
/// for 2,000), the Rust echo fills the rest.
fn kinds(wave: usize) -> Vec<Kind> {
    use Expect::*;
    let scale = |n: usize| (n * wave / 2000).max(1);
    let mut kinds = vec![
        Kind {
            // The C echo: the Rust echo's swapped-in build does not fail on "fail".
            id: "fail",
            activity: "echo-c",
            input: "fail",
            per_wave: scale(10),
            expect: Failed("BadInput"),
        },
        Kind {
            id: "py",
            activity: "echo-py",
            input: "soak",
            per_wave: scale(10),
            expect: Completed(Some("soak")),
        },
        Kind {
            id: "js",
            activity: "echo-js",
            input: "soak",
            per_wave: scale(10),
            expect: Completed(Some("soak")),
        },
        Kind {
            id: "c",
            activity: "echo-c",
            input: "soak",
            per_wave: scale(10),
            expect: Completed(Some("soak")),
        },
        Kind {
            id: "countdown",
            activity: "countdown",
            input: r#"{"steps":4,"step_ms":250}"#,
            per_wave: scale(10),
            expect: Completed(Some(r#"{"done":4}"#)),
        },
        Kind {
            id: "trap",
            activity: "trap",
            input: "soak",
            per_wave: scale(10),
            expect: Failed("swasm.Trap"),
        },
        Kind {
            id: "recurse",
            activity: "recurse",
            input: "unbounded",
            per_wave: scale(5),
            expect: Failed("swasm.Trap"),
        },
        Kind {
            id: "bigresult",
            activity: "bigresult",
            input: "soak",
            per_wave: scale(5),
            expect: Failed("swasm.ResultTooLarge"),
        },
        Kind {
            id: "hog",
            activity: "hog",
            input: "soak",
            per_wave: 1,
            expect: Failed("swasm.MemoryLimit"),
        },
        Kind {
            id: "spin",
            activity: "spin",
            input: "soak",
            per_wave: 1,
            expect: Failed("swasm.Timeout"),
        },
        Kind {
            id: CANCELED,
            activity: "countdown",
            input: r#"{"steps":600,"step_ms":100}"#,
            per_wave: scale(10),
            expect: Canceled,
        },
    ];
    let rare: usize = kinds.iter().map(|k| k.per_wave).sum();
    kinds.insert(
        0,
        Kind {
            id: "echo",
            activity: "echo",
            input: "soak",
            per_wave: wave.saturating_sub(rare).max(1),
            // "soak" from echo@1.wasm as shipped, "B:soak" from the swapped-in echo-b.
            expect: Completed(None),
        },
    );
    kinds
}

/// One reading of the processes, every [`SAMPLE_EVERY`].
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Since the worker started.
    pub secs: f64,
    /// Activity tasks answered so far (completed, failed or canceled by the worker).
    pub tasks: u64,
    pub host_rss_mb: f64,
    /// The part of it in the instance pool's reservations (mappings of 1 GiB or more):
    /// what the pool's slots keep resident between tasks.
    pub host_pool_rss_mb: f64,
    pub host_fds: u64,
    pub host_threads: u64,
    /// This process: swf-local, the driver and its client.
    pub endpoint_rss_mb: f64,
}

/// What a soak run measured; `error` says why it stopped early, if it did.
#[derive(Default)]
pub struct Soak {
    pub samples: Vec<Sample>,
    waves: u64,
    swaps: u64,
    tally: Tally,
    peak_rss_mb: f64,
    error: Option<String>,
}

/// Outcomes checked against each kind's [`Expect`].
#[derive(Default)]
struct Tally {
    checked: u64,
    unexpected: u64,
    examples: Vec<String>,
    /// Rust echo results from each version: the swaps must show in both.
    echo_a: u64,
    echo_b: u64,
}

/// Runs the soak for `ctx.sizes.soak`; the records say what it measured, and the samples
/// are plotted by bench/report.py.
pub async fn run(ctx: &Ctx) -> (Vec<Record>, Vec<Sample>) {
    let mut soak = Soak::default();
    if let Err(e) = drive(ctx, &mut soak).await {
        soak.error = Some(format!("{e:#}"));
    }
    let records = records(ctx, &soak);
    for r in &records {
        r.print();
    }
    (records, soak.samples)
}

async fn drive(ctx: &Ctx, soak: &mut Soak) -> Result<()> {
    let kinds = kinds(ctx.sizes.soak_wave);
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    let mut types: Vec<(&str, &str)> = kinds.iter().map(|k| (k.activity, "1")).collect();
    types.sort();
    types.dedup();
    swf::register_with_retention(&client, &types, "0").await?;

    let dir = workers::run_dir(ctx, "soak")?;
    let plugin_dir = dir.join("plugins");
    let config = workers::swasm_config(
        &dir,
        &ep.url,
        TASK_LIST,
        64,
        workers::THROUGHPUT_POLLERS,
        1,
        &ctx.work.join("soak-cache"),
    )?;
    // The hog fails at 32 MiB instead of the default limit; the spin at 1 s.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&config)
        .and_then(|mut f| {
            f.write_all(
                b"\n[activity.\"hog@1\"]\nmemory_mb = 32\n\n[activity.\"spin@1\"]\ntimeout_s = 1\n",
            )
        })
        .with_context(|| format!("appending to {}", config.display()))?;
    let echo_a = ctx.plugins.join("echo@1.wasm");
    let echo_b = ctx.guests.join("echo-b.wasm");
    for file in ["echo", "echo-py", "echo-js", "echo-c", "countdown"] {
        workers::install_plugin(&plugin_dir, &ctx.plugins.join(format!("{file}@1.wasm")))?;
    }
    for file in ["trap", "recurse", "bigresult", "hog", "spin"] {
        workers::install_plugin(&plugin_dir, &ctx.guests.join(format!("{file}@1.wasm")))?;
    }
    let args = vec![
        "run".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    let log = ctx.logs.join("soak.log");
    let worker = workers::swasm_process(ctx, "soak", &args, &ep.url, &log)?;
    let mut run = Running {
        ep: &ep,
        client: &client,
        worker,
        started: Instant::now(),
        last_sample: None,
        last_swap: Instant::now(),
        swap: [echo_a, echo_b],
        plugin_dir,
        soak,
    };
    let result = run.waves(ctx, &kinds).await;
    run.sample()?;
    run.soak.peak_rss_mb = run.worker.peak_rss()? as f64 / (1024.0 * 1024.0);
    run.worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A soak in progress: the worker, and the sampling and swapping done while waiting.
struct Running<'a> {
    ep: &'a Endpoint,
    client: &'a Client,
    worker: Worker,
    started: Instant,
    last_sample: Option<Instant>,
    last_swap: Instant,
    /// The two echo builds served as `echo@1.wasm` in turn: as shipped, then echo-b.
    swap: [PathBuf; 2],
    plugin_dir: PathBuf,
    soak: &'a mut Soak,
}

impl Running<'_> {
    async fn waves(&mut self, ctx: &Ctx, kinds: &[Kind]) -> Result<()> {
        while self.started.elapsed() < ctx.sizes.soak {
            self.wave(kinds).await?;
            self.soak.waves += 1;
        }
        Ok(())
    }

    /// Schedules one wave, cancels its long countdowns once the rest has drained, checks
    /// every outcome and terminates the wave's executions.
    async fn wave(&mut self, kinds: &[Kind]) -> Result<()> {
        let n = self.soak.waves;
        let (canceled, main): (Vec<&Kind>, Vec<&Kind>) =
            kinds.iter().partition(|k| k.id == CANCELED);
        let main = interleave(&main, n);
        let canceled = interleave(&canceled, n);
        let mut executions = swf::preschedule(self.client, &format!("w{n}"), &main).await?;
        let cancel_execution = swf::preschedule(self.client, &format!("w{n}-cancel"), &canceled)
            .await?
            .remove(0);
        self.drain(&executions).await?;
        self.cancel(&cancel_execution.workflow_id, &canceled)
            .await?;
        executions.push(cancel_execution);
        self.drain(&executions).await?;
        for execution in &executions {
            self.check(kinds, execution).await?;
            self.client
                .terminate_workflow_execution()
                .domain(swf::DOMAIN)
                .workflow_id(&execution.workflow_id)
                .run_id(&execution.run_id)
                .send()
                .await
                .context("TerminateWorkflowExecution")?;
        }
        Ok(())
    }

    /// Waits until no execution in `executions` has an open activity, sampling and
    /// swapping meanwhile.
    async fn drain(&mut self, executions: &[WorkflowExecution]) -> Result<()> {
        let deadline = Instant::now() + WAVE_DEADLINE;
        loop {
            self.tick()?;
            let open = super::open_activities(self.client, executions).await?;
            if open == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "wave {}: {open} activities still open after {} s ({} tasks answered in all)",
                    self.soak.waves,
                    WAVE_DEADLINE.as_secs(),
                    self.ep.answered()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signals `workflow_id` and answers its decision task with a cancel request for each
    /// of `activities`; other executions' decision tasks are answered with no decisions.
    async fn cancel(&mut self, workflow_id: &str, activities: &[Activity]) -> Result<()> {
        self.client
            .signal_workflow_execution()
            .domain(swf::DOMAIN)
            .workflow_id(workflow_id)
            .signal_name("cancel")
            .send()
            .await
            .context("SignalWorkflowExecution")?;
        let task = swf::next_decision_of(self.client, |id| id == workflow_id).await?;
        let decisions = activities
            .iter()
            .map(|a| swf::request_cancel(&a.id))
            .collect::<Result<Vec<_>>>()?;
        swf::respond(self.client, &task.token, decisions).await
    }

    /// Reads `execution`'s history and checks each activity's outcome against its kind.
    async fn check(&mut self, kinds: &[Kind], execution: &WorkflowExecution) -> Result<()> {
        let events = history(self.client, execution).await?;
        let mut ids = BTreeMap::new();
        let mut outcomes = BTreeMap::new();
        for e in &events {
            let (scheduled, outcome) = match e.event_type {
                EventType::ActivityTaskScheduled => {
                    let a = e.activity_task_scheduled_event_attributes.as_ref();
                    ids.insert(
                        e.event_id,
                        a.map(|a| a.activity_id.clone()).unwrap_or_default(),
                    );
                    continue;
                }
                EventType::ActivityTaskCompleted => {
                    let a = e.activity_task_completed_event_attributes.as_ref();
                    let result = a.and_then(|a| a.result.clone()).unwrap_or_default();
                    (a.map(|a| a.scheduled_event_id), Outcome::Completed(result))
                }
                EventType::ActivityTaskFailed => {
                    let a = e.activity_task_failed_event_attributes.as_ref();
                    let reason = a.and_then(|a| a.reason.clone()).unwrap_or_default();
                    (a.map(|a| a.scheduled_event_id), Outcome::Failed(reason))
                }
                EventType::ActivityTaskCanceled => {
                    let a = e.activity_task_canceled_event_attributes.as_ref();
                    (a.map(|a| a.scheduled_event_id), Outcome::Canceled)
                }
                EventType::ActivityTaskTimedOut => {
                    let a = e.activity_task_timed_out_event_attributes.as_ref();
                    let kind = a.map(|a| a.timeout_type.as_str().to_owned());
                    (
                        a.map(|a| a.scheduled_event_id),
                        Outcome::TimedOut(kind.unwrap_or_default()),
                    )
                }
                _ => continue,
            };
            if let Some(id) = scheduled {
                outcomes.insert(id, outcome);
            }
        }
        for (event_id, activity_id) in &ids {
            let kind = activity_id.split('-').next().unwrap_or_default();
            let Some(kind) = kinds.iter().find(|k| k.id == kind) else {
                bail!(
                    "{}: activity {activity_id} of no known kind",
                    execution.workflow_id
                );
            };
            let outcome = outcomes.get(event_id).cloned().unwrap_or(Outcome::Open);
            let t = &mut self.soak.tally;
            t.checked += 1;
            let expected = match (&kind.expect, &outcome) {
                (Expect::Completed(None), Outcome::Completed(r)) if r == "soak" => {
                    t.echo_a += 1;
                    true
                }
                (Expect::Completed(None), Outcome::Completed(r)) if r == "B:soak" => {
                    t.echo_b += 1;
                    true
                }
                (Expect::Completed(Some(want)), Outcome::Completed(r)) => r == want,
                (Expect::Failed(want), Outcome::Failed(r)) => r == want,
                (Expect::Canceled, Outcome::Canceled) => true,
                _ => false,
            };
            if !expected {
                t.unexpected += 1;
                if t.examples.len() < EXAMPLES {
                    t.examples.push(format!(
                        "{activity_id}: {outcome}, expected {:?}",
                        kind.expect
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every wait's step: the worker must be alive; sample and swap when due.
    fn tick(&mut self) -> Result<()> {
        self.worker.check_alive()?;
        if self.last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
            self.sample()?;
        }
        if self.last_swap.elapsed() >= SWAP_EVERY {
            self.hot_swap()?;
        }
        Ok(())
    }

    fn sample(&mut self) -> Result<()> {
        let pid = self.worker.pid();
        let mb = |pid: u32| -> Result<f64> { Ok(proc_status_kb(pid, "VmRSS")? as f64 / 1024.0) };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count() as u64;
        self.soak.samples.push(Sample {
            secs: self.started.elapsed().as_secs_f64(),
            tasks: self.ep.answered(),
            host_rss_mb: mb(pid)?,
            host_pool_rss_mb: pool_rss_kb(pid)? as f64 / 1024.0,
            host_fds: fds,
            // "Threads:" is a count, not kB; the parser only strips the unit.
            host_threads: proc_status_kb(pid, "Threads")?,
            endpoint_rss_mb: mb(std::process::id())?,
        });
        self.last_sample = Some(Instant::now());
        Ok(())
    }

    /// Renames the other echo build over `echo@1.wasm`, as a deploy does.
    fn hot_swap(&mut self) -> Result<()> {
        self.soak.swaps += 1;
        let from = &self.swap[(self.soak.swaps % 2) as usize];
        let staged = self.plugin_dir.join(".echo@1.wasm.new");
        std::fs::copy(from, &staged)
            .with_context(|| format!("copying {} to {}", from.display(), staged.display()))?;
        std::fs::rename(&staged, self.plugin_dir.join("echo@1.wasm"))
            .context("renaming the new echo@1.wasm into place")?;
        self.last_swap = Instant::now();
        Ok(())
    }
}

/// The resident kB of `pid`'s mappings of 1 GiB or more (`/proc/PID/smaps`): wasmtime's
/// pooling allocator reserves its memories and tables that way, nothing else in the host
/// maps as much.
fn pool_rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kb = |line: &str, field: &str| -> Option<u64> {
        line.strip_prefix(field)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let (mut total, mut large) = (0, false);
    for line in text.lines() {
        if let Some(size) = kb(line, "Size:") {
            large = size >= 1 << 20;
        } else if let Some(rss) = kb(line, "Rss:")
            && large
        {
            total += rss;
        }
    }
    Ok(total)
}

/// Wave `wave`'s activities of `kinds`, spread so that each kind's tasks are spaced
/// across the wave instead of arriving in one block. Ids are `<kind>-<wave>-<i>`.
fn interleave(kinds: &[&Kind], wave: u64) -> Vec<Activity> {
    let activity = |k: &Kind, i: usize| Activity {
        id: format!("{}-{wave}-{i}", k.id),
        name: k.activity.into(),
        version: "1".into(),
        task_list: TASK_LIST.into(),
        input: k.input.into(),
    };
    let most = kinds.iter().map(|k| k.per_wave).max().unwrap_or(0);
    let mut made = vec![0; kinds.len()];
    let mut out = Vec::new();
    for slot in 0..most {
        for (k, made) in kinds.iter().zip(&mut made) {
            // Kind k places its tasks at evenly spaced slots of the largest kind's range.
            if (slot * k.per_wave) / most != ((slot + 1) * k.per_wave) / most {
                out.push(activity(k, *made));
                *made += 1;
            }
        }
    }
    out
}

/// How an activity ended, as its history says.
#[derive(Clone, Debug)]
enum Outcome {
    Completed(String),
    Failed(String),
    Canceled,
    TimedOut(String),
    /// No closing event: the wave drained without it (a lost task).
    Open,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Completed(result) => write!(f, "completed with {result:?}"),
            Outcome::Failed(reason) => write!(f, "failed {reason}"),
            Outcome::Canceled => write!(f, "canceled"),
            Outcome::TimedOut(kind) => write!(f, "timed out ({kind})"),
            Outcome::Open => write!(f, "never closed"),
        }
    }
}

/// The rows: tasks and unexpected outcomes, then each process figure after the warm-up
/// against its value at the end, and its growth per 100,000 tasks after the warm-up.
fn records(ctx: &Ctx, soak: &Soak) -> Vec<Record> {
    let mut out = Vec::new();
    let minutes = ctx.sizes.soak.as_secs_f64() / 60.0;
    let mut tasks = Record::new("soak", "tasks answered", "tasks");
    let last = soak.samples.last();
    if let Some(last) = last {
        tasks.values.push(last.tasks as f64);
        tasks.note(format!(
            "{} waves of {} in {:.1} min ({:.0} tasks/s), {} hot swaps of echo@1",
            soak.waves,
            ctx.sizes.soak_wave,
            last.secs / 60.0,
            last.tasks as f64 / last.secs.max(1.0),
            soak.swaps
        ));
    }
    tasks.note(format!("asked for {minutes:.1} min"));
    if let Some(e) = &soak.error {
        tasks.note(format!("stopped early: {e}"));
    }
    out.push(tasks);

    let t = &soak.tally;
    let mut unexpected = Record::new("soak", "unexpected outcomes", "tasks");
    unexpected.values.push(t.unexpected as f64);
    unexpected.note(format!(
        "of {} checked in the histories; Rust echo answered by the shipped build {} times, by the swapped-in build {} times",
        t.checked, t.echo_a, t.echo_b
    ));
    for e in &t.examples {
        unexpected.note(e.clone());
    }
    out.push(unexpected);

    let Some(end) = last else { return out };
    let warm_secs = end.secs * WARM_UP_SHARE;
    let after: Vec<&Sample> = soak
        .samples
        .iter()
        .filter(|s| s.secs >= warm_secs)
        .collect();
    let Some(warm) = after.first() else {
        return out;
    };
    let figure = |name: &str, unit: &str, f: &dyn Fn(&Sample) -> f64| {
        let mut r = Record::new("soak", name, unit);
        r.values = vec![f(warm), f(end)];
        r.note(format!(
            "after the warm-up ({:.0} s, {} tasks), then at the end ({:.0} s, {} tasks)",
            warm.secs, warm.tasks, end.secs, end.tasks
        ));
        r
    };
    let growth = |name: &str, note: String, f: &dyn Fn(&Sample) -> f64| {
        let mut r = Record::new("soak", name, "MB per 100k tasks");
        r.values.push(slope(&after, f) * 100_000.0);
        r.note(note);
        r
    };
    out.push(figure("host RSS", "MB", &|s| s.host_rss_mb));
    out.push(figure("of it, the instance pool's", "MB", &|s| {
        s.host_pool_rss_mb
    }));
    out.push(growth(
        "host RSS growth",
        format!(
            "least-squares slope over the {} samples after the warm-up; peak RSS {:.0} MB",
            after.len(),
            soak.peak_rss_mb
        ),
        &|s| s.host_rss_mb,
    ));
    out.push(growth(
        "host RSS outside the pool, growth",
        "the same slope without the pool's part: the host's own heap, code and stacks".into(),
        &|s| s.host_rss_mb - s.host_pool_rss_mb,
    ));
    out.push(figure("host open fds", "fds", &|s| s.host_fds as f64));
    out.push(figure("host threads", "threads", &|s| {
        s.host_threads as f64
    }));
    out.push(figure("swf-local + driver RSS", "MB", &|s| {
        s.endpoint_rss_mb
    }));
    out.push(growth(
        "swf-local + driver RSS growth",
        "least-squares slope over the same samples".into(),
        &|s| s.endpoint_rss_mb,
    ));
    out
}

/// The least-squares slope of `y` over tasks answered.
fn slope(samples: &[&Sample], y: impl Fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.tasks as f64).sum::<f64>() / n;
    let my = samples.iter().map(|s| y(s)).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        let dx = s.tasks as f64 - mx;
        num += dx * (y(s) - my);
        den += dx * dx;
    }
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_holds_every_kind_and_adds_up() {
        for wave in [300, 2000] {
            let kinds = kinds(wave);
            assert_eq!(kinds.iter().map(|k| k.per_wave).sum::<usize>(), wave);
            let refs: Vec<&Kind> = kinds.iter().collect();
            let all = interleave(&refs, 0);
            assert_eq!(all.len(), wave);
            let mut ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), wave, "activity ids are unique");
        }
    }

    #[test]
    fn the_slope_is_per_task() {
        let s = |tasks, mb| Sample {
            secs: 0.0,
            tasks,
            host_rss_mb: mb,
            host_pool_rss_mb: 0.0,
            host_fds: 0,
            host_threads: 0,
            endpoint_rss_mb: 0.0,
        };
        let samples = [s(0, 10.0), s(100_000, 11.0), s(200_000, 12.0)];
        let refs: Vec<&Sample> = samples.iter().collect();
        assert!((slope(&refs, |s| s.host_rss_mb) * 100_000.0 - 1.0).abs() < 1e-9);
    }
}
