//! Throughput: N echo tasks queued before the worker starts; tasks/s from the first answer
//! to the last (so process start-up and plugin loading are not counted; start-up has its
//! own benchmark).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::{Outcomes, all_closed, fill_cache, watch};
use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::proc::MachineCpu;
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Boto3Mode, Kind, THROUGHPUT_POLLERS};

/// One worker of the comparison.
pub struct Variant {
    pub label: &'static str,
    pub kind: Kind,
    /// The activity type the worker serves (`echo`, `echo-py`, ...), version `1`.
    pub activity: &'static str,
    pub tasks: usize,
}

/// The five workers of issue 8, native first (the others are compared with it). Each
/// swasm worker has a cache dir of its own under `cache_root`.
pub fn variants(ctx: &Ctx, cache_root: PathBuf) -> Vec<Variant> {
    let n = ctx.sizes.throughput_tasks;
    let swasm = |file: &str| Kind::Swasm {
        plugins: vec![ctx.plugins.join(file)],
        max_concurrent: 64,
        pollers: THROUGHPUT_POLLERS,
        heartbeat_interval_s: 30,
        cache_dir: cache_root.join(file),
    };
    vec![
        Variant {
            label: "native",
            kind: Kind::Native {
                slots: 64,
                pollers: THROUGHPUT_POLLERS,
            },
            activity: "echo",
            tasks: n,
        },
        Variant {
            label: "swasm-rust",
            kind: swasm("echo@1.wasm"),
            activity: "echo",
            tasks: n,
        },
        Variant {
            label: "boto3",
            kind: Kind::Boto3 {
                threads: 64,
                mode: Boto3Mode::Echo,
            },
            activity: "echo",
            tasks: ctx.sizes.boto3_tasks,
        },
        Variant {
            label: "swasm-python",
            kind: swasm("echo-py@1.wasm"),
            activity: "echo-py",
            tasks: n,
        },
        Variant {
            label: "swasm-js",
            kind: swasm("echo-js@1.wasm"),
            activity: "echo-js",
            tasks: n,
        },
    ]
}

/// The two workers the goal compares; they run `pair_reps` times, the others `reps`.
const PAIR: [&str; 2] = ["native", "swasm-rust"];

/// Runs every variant `reps` times (the goal's pair `pair_reps` times), interleaved
/// (native, swasm, ..., native, swasm, ...) so a slow phase of the machine does not land
/// on one worker only. Also records swasm-rust's rate over native's per repetition: the
/// two run back to back, in the same phase of the machine.
///
/// Every swasm worker's cache is filled first, unmeasured ([`fill_cache`]): otherwise the
/// first repetition of a big component would run Winch code while Cranelift compiles it
/// in the background, inside the measured window, and only the later ones Cranelift code.
pub async fn run(ctx: &Ctx, only: &[String]) -> Vec<Record> {
    let cache = ctx.work.join("throughput-cache");
    let variants: Vec<Variant> = variants(ctx, cache)
        .into_iter()
        .filter(|v| only.is_empty() || only.iter().any(|o| o == v.label))
        .collect();
    let mut rows: Vec<Rows> = variants.iter().map(Rows::new).collect();
    // A worker whose cache could not be filled is not measured (its row says why).
    let mut filled = Vec::new();
    for (v, rows) in variants.iter().zip(rows.iter_mut()) {
        let label = format!("throughput-{}", v.label);
        let result = fill_cache(ctx, &label, &v.kind, v.activity).await;
        if let Err(e) = &result {
            eprintln!("throughput {}: {e:#}", v.label);
            rows.rate
                .note(format!("not measured: filling the cache failed: {e:#}"));
        }
        filled.push(result.is_ok());
    }
    let mut paired = Record::new("throughput", "swasm-rust / native", "×");
    paired.note("swasm-rust's rate over native's, per repetition (the two run back to back)");
    let reps = ctx.sizes.reps.max(ctx.sizes.pair_reps);
    for rep in 0..reps {
        let mut rates = [None; 2];
        for ((v, rows), _) in variants
            .iter()
            .zip(rows.iter_mut())
            .zip(&filled)
            .filter(|(_, filled)| **filled)
        {
            let in_pair = PAIR.iter().position(|p| *p == v.label);
            let runs = if in_pair.is_some() {
                reps
            } else {
                ctx.sizes.reps
            };
            if rep >= runs {
                continue;
            }
            match once(ctx, v, rep).await {
                Ok(run) => {
                    eprintln!(
                        "throughput {} rep {rep}: {:.0} tasks/s, {:.0} µs worker CPU per task, machine {:.0}% busy ({:.0}% stolen)",
                        v.label, run.rate, run.cpu_us, run.busy_pct, run.stolen_pct
                    );
                    rows.push(&run);
                    if run.extra > 0 {
                        rows.rate.note(format!(
                            "rep {rep}: {} answers beyond the tasks (rejected or retried); its end is when none was open any more",
                            run.extra
                        ));
                    }
                    if let Some(i) = in_pair {
                        rates[i] = Some(run.rate);
                    }
                }
                Err(e) => {
                    eprintln!("throughput {} rep {rep}: {e:#}", v.label);
                    rows.rate.note(format!("rep {rep} failed: {e:#}"));
                }
            }
        }
        if let [Some(native), Some(swasm)] = rates {
            paired.values.push(swasm / native);
        }
    }
    // The table groups rows by figure: every worker's rate, the goal's ratio, then each
    // CPU figure for every worker.
    let mut records: Vec<Record> = rows.iter().map(|r| r.rate.clone()).collect();
    if !paired.values.is_empty() {
        records.push(paired);
    }
    let figures: [fn(&Rows) -> &Record; 4] =
        [|r| &r.cpu, |r| &r.busy, |r| &r.stolen, |r| &r.machine];
    for figure in figures {
        records.extend(rows.iter().map(|r| figure(r).clone()));
    }
    for r in &records {
        r.print();
    }
    records
}

/// The rows of one worker, one value per run.
struct Rows {
    rate: Record,
    /// The worker's own CPU per task: on 2 shared cores the rate also depends on what the
    /// endpoint and the scheduler do; this does not.
    cpu: Record,
    /// How busy the whole machine was: at 100% the rate is bound by CPU (the worker's, the
    /// endpoint's and the driver's together); below it, by the workers' round trips.
    busy: Record,
    /// Of that, the share the hypervisor took: what makes a phase of this VM slow.
    stolen: Record,
    /// The CPU time the machine's processes used per task: what sets the rate once the
    /// machine is saturated.
    machine: Record,
}

impl Rows {
    fn new(v: &Variant) -> Rows {
        let row = |bench: &str, metric: &str, note: String| {
            let mut r = Record::new(bench, v.label, metric);
            r.note(note);
            r
        };
        Rows {
            rate: row("throughput", "tasks/s", format!("{} tasks", v.tasks)),
            cpu: row(
                "worker CPU",
                "µs/task",
                "user + system CPU of the worker process between the first and the last answer"
                    .into(),
            ),
            busy: row(
                "machine CPU busy",
                "%",
                "both cores running work of any process (worker, endpoint, driver) or stolen by the hypervisor while they had work, between the first and the last answer".into(),
            ),
            stolen: row(
                "machine CPU stolen",
                "%",
                "both cores' time the hypervisor gave to other guests, between the first and the last answer".into(),
            ),
            machine: row(
                "machine CPU",
                "µs/task",
                "CPU of all processes on both cores (worker, endpoint, driver) between the first and the last answer, per task".into(),
            ),
        }
    }

    fn push(&mut self, run: &Run) {
        self.rate.values.push(run.rate);
        self.cpu.values.push(run.cpu_us);
        self.busy.values.push(run.busy_pct);
        self.stolen.values.push(run.stolen_pct);
        self.machine.values.push(run.machine_us);
    }
}

/// What one measurement found.
struct Run {
    /// Answers beyond the n that completed the tasks (rejected or retried requests).
    extra: u64,
    /// Tasks answered per second.
    rate: f64,
    /// The worker process's CPU per task, in µs.
    cpu_us: f64,
    /// The share of the machine's CPU time that was busy or stolen, in percent.
    busy_pct: f64,
    /// The share the hypervisor took, in percent.
    stolen_pct: f64,
    /// The CPU all the machine's processes used per task, in µs.
    machine_us: f64,
}

/// One measurement on a fresh endpoint.
async fn once(ctx: &Ctx, v: &Variant, rep: usize) -> Result<Run> {
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[(v.activity, "1")]).await?;
    let task_list = format!("throughput-{}", v.label);
    let activities: Vec<Activity> = (0..v.tasks)
        .map(|i| Activity {
            id: format!("t{i}"),
            name: v.activity.into(),
            version: "1".into(),
            task_list: task_list.clone(),
            input: format!("\"echo {i}\""),
        })
        .collect();
    let executions = swf::preschedule(
        &client,
        &format!("throughput-{}-{rep}", v.label),
        &activities,
    )
    .await?;
    let dir = workers::run_dir(ctx, &format!("throughput-{}", v.label))?;
    let mut worker = workers::start(ctx, v.label, &v.kind, &ep.url, &task_list, &dir)?;
    let n = v.tasks as u64;
    let result = async {
        // Start-up (including a first compile) is excluded: the clock starts at the first answer.
        let first = watch(
            &ep,
            &mut worker,
            "first answer",
            Duration::from_millis(1),
            Duration::from_secs(120),
            |ep| ep.answered() >= 1,
        )
        .await?;
        let at_first = ep.answered();
        let cpu_first = worker.cpu_seconds()?;
        let machine_first = MachineCpu::now()?;
        let deadline = Duration::from_secs(60 + v.tasks as u64 / 20);
        let gate = watch(
            &ep,
            &mut worker,
            "all answered",
            Duration::from_millis(2),
            deadline,
            |ep| ep.answered() >= n,
        )
        .await?;
        let (mut cpu_last, mut machine_last) = (worker.cpu_seconds()?, MachineCpu::now()?);
        // The counters count answers as they arrive, rejected or retried ones too. When
        // exactly n arrived and all n activities completed, each was a success and the
        // gate is the n-th success; otherwise the run ends when none is open any more.
        let closed = all_closed(&ep, &client, &executions, &mut worker, deadline).await?;
        let last = if closed.requests == n {
            gate
        } else {
            cpu_last = worker.cpu_seconds()?;
            machine_last = MachineCpu::now()?;
            closed.at
        };
        let machine = machine_last.since(machine_first);
        Outcomes::of(&client, &executions)
            .await?
            .all_completed(n, closed.requests, &worker.log)?;
        let extra = closed.requests - n;
        let secs = (last - first).as_secs_f64();
        // What each worker asked of SWF besides the answers (a worker making extra calls
        // per task would show here, not only as a lower rate).
        let calls: Vec<String> = [
            "PollForActivityTask",
            "RecordActivityTaskHeartbeat",
            "DescribeActivityType",
        ]
        .iter()
        .map(|op| format!("{op} {}", ep.calls(op)))
        .collect();
        eprintln!(
            "throughput {} rep {rep}: SWF calls for {n} tasks: {}",
            v.label,
            calls.join(", ")
        );
        let done = (n - at_first) as f64;
        let total = machine.total.max(1) as f64;
        Ok(Run {
            extra,
            rate: done / secs.max(1e-6),
            cpu_us: (cpu_last - cpu_first) * 1e6 / done.max(1.0),
            busy_pct: 100.0 * (machine.work + machine.steal) as f64 / total,
            stolen_pct: 100.0 * machine.steal as f64 / total,
            machine_us: machine.work_seconds() * 1e6 / done.max(1.0),
        })
    }
    .await;
    match &result {
        Ok(_) => worker.stop().await,
        Err(_) => worker.stop_after_failure().await,
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
