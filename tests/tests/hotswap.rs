//! Issue 4, end to end: the plugin directory of a running `swasm run` is live. Files are
//! swapped the way deploy tools do it (write a hidden temp file in the dir, then rename it
//! over the old one), while tasks flow through swf-local.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_swf::types::{EventType, HistoryEvent};
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Atomically puts `bytes` at `dir/name`: a hidden temp file in the same dir, then rename.
fn drop_in(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn read(guest: &str) -> Vec<u8> {
    std::fs::read(plugin(guest)).unwrap()
}

fn plugin_dir(config: &HostConfig, task_list: &str) -> PathBuf {
    config.dir.join("plugins").join(task_list)
}

fn secs(e: &HistoryEvent) -> f64 {
    e.event_timestamp.as_secs_f64()
}

/// Waits for the `n`-th host log line containing all of `parts`.
async fn wait_log(host: &Host, parts: &[&str], n: usize) {
    wait_until(
        &format!("host log line #{n} with {parts:?}"),
        MINUTE,
        || async {
            let logs = host.logs();
            let count = logs
                .lines()
                .filter(|l| parts.iter().all(|p| l.contains(p)))
                .count();
            (count >= n).then_some(())
        },
    )
    .await
}

/// Per activity: (input, started timestamp, closing events), over all of a workflow's history.
struct Run {
    input: Option<String>,
    started: Option<f64>,
    /// When its (last) ActivityTaskCompleted was recorded.
    completed_at: Option<f64>,
    closed: Vec<Closed>,
}

fn runs(history: &[HistoryEvent]) -> BTreeMap<String, Run> {
    let closed = closed_activities(history);
    let mut by_sched: BTreeMap<i64, String> = BTreeMap::new();
    let mut out: BTreeMap<String, Run> = BTreeMap::new();
    for e in history {
        if let Some(a) = &e.activity_task_scheduled_event_attributes {
            by_sched.insert(e.event_id, a.activity_id.clone());
            out.insert(
                a.activity_id.clone(),
                Run {
                    input: a.input.clone(),
                    started: None,
                    completed_at: None,
                    closed: closed.get(&a.activity_id).cloned().unwrap_or_default(),
                },
            );
        }
        if let Some(a) = &e.activity_task_started_event_attributes {
            let id = &by_sched[&a.scheduled_event_id];
            out.get_mut(id).unwrap().started = Some(secs(e));
        }
        if let Some(a) = &e.activity_task_completed_event_attributes {
            let id = &by_sched[&a.scheduled_event_id];
            out.get_mut(id).unwrap().completed_at = Some(secs(e));
        }
    }
    out
}

/// 500 echo tasks flow (10 workflows, each keeping 5 open) while echo@1.wasm is replaced by
/// code B and echo@2.wasm appears: nothing fails or times out, every task started after the
/// first B result ran B, echo@2 serves once its load is logged, and 100 more tasks started
/// once the swap is logged all run B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_while_500_tasks_flow() {
    let scenario = Scenario::start("swap", &[("echo@1", None), ("echo@2", None)]).await;
    let swf = &scenario.swf;
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm"]);
    tl.pollers = 4;
    let config = scenario.host_config(vec![tl]);
    let host = Host::start(&config.write(), &[]);
    let dir = plugin_dir(&config, "main");

    const WORKFLOWS: usize = 10;
    const PER: usize = 50;
    for w in 0..WORKFLOWS {
        let acts: Vec<_> = (0..PER)
            .map(|i| {
                Activity::new(
                    &format!("t{i}"),
                    "echo@1",
                    "main",
                    Some(&format!("w{w}-t{i}")),
                )
            })
            .collect();
        swf.start_batched(&format!("w-swap-{w}"), &acts, 5)
            .await
            .unwrap();
    }
    let completed = || async {
        let mut n = 0;
        for w in 0..WORKFLOWS {
            n += swf.closed(&format!("w-swap-{w}")).await.ok()?.len();
        }
        Some(n)
    };
    wait_until("150 tasks to close before the swap", 2 * MINUTE, || async {
        (completed().await? >= 150).then_some(())
    })
    .await;

    drop_in(&dir, "echo@1.wasm", &read("echo-b.wasm"));
    drop_in(&dir, "echo@2.wasm", &read("echo@1.wasm"));
    wait_log(&host, &["plugin swapped", "echo@1"], 1).await;
    wait_log(&host, &["plugin loaded", "echo@2"], 1).await;
    let acts2: Vec<_> = (0..20)
        .map(|i| {
            Activity::new(
                &format!("v2-{i}"),
                "echo@2",
                "main",
                Some(&format!("v2-{i}")),
            )
        })
        .collect();
    swf.start("w-swap-v2", &acts2, false).await.unwrap();
    let closed2 = swf.wait_closed("w-swap-v2", acts2.len(), MINUTE).await;
    for a in &acts2 {
        assert_eq!(
            closed2[&a.id],
            vec![Closed::Completed(a.input.clone())],
            "echo@2/{}",
            a.id
        );
    }

    // Tasks scheduled once the swap is logged: they must run B however far the first 500
    // got meanwhile (throughput decides how many of those ran after the swap).
    const AFTER: usize = 10;
    for w in 0..WORKFLOWS {
        let acts: Vec<_> = (0..AFTER)
            .map(|i| {
                Activity::new(
                    &format!("t{i}"),
                    "echo@1",
                    "main",
                    Some(&format!("after{w}-t{i}")),
                )
            })
            .collect();
        swf.start_batched(&format!("w-after-{w}"), &acts, 5)
            .await
            .unwrap();
    }

    let mut all = Vec::new();
    let mut after_swap = Vec::new();
    for (wf, n) in (0..WORKFLOWS)
        .map(|w| (format!("w-swap-{w}"), PER))
        .chain((0..WORKFLOWS).map(|w| (format!("w-after-{w}"), AFTER)))
    {
        swf.wait_closed(&wf, n, 2 * MINUTE).await;
        let history = swf.history(&wf).await.unwrap();
        assert!(
            !history.iter().any(|e| matches!(
                e.event_type,
                EventType::ActivityTaskFailed | EventType::ActivityTaskTimedOut
            )),
            "{wf}: a task failed or timed out"
        );
        for (id, run) in runs(&history) {
            if wf.starts_with("w-after-") {
                after_swap.push(format!("{wf}/{id}"));
            }
            all.push((format!("{wf}/{id}"), run));
        }
    }
    assert_eq!(all.len(), WORKFLOWS * (PER + AFTER));

    // The first B result, by the time SWF recorded it.
    let b_of = |run: &Run| format!("B:{}", run.input.clone().unwrap_or_default());
    let mut first_b = f64::INFINITY;
    let (mut a_results, mut b_results) = (0, 0);
    for (name, run) in &all {
        let [Closed::Completed(Some(result))] = &run.closed[..] else {
            panic!("{name}: expected one completion, got {:?}", run.closed);
        };
        if Some(result) == run.input.as_ref() {
            a_results += 1;
        } else {
            assert_eq!(
                result,
                &b_of(run),
                "{name}: neither code A's nor B's result"
            );
            b_results += 1;
            first_b = first_b.min(run.completed_at.unwrap());
        }
    }
    assert!(
        a_results > 0 && b_results > 0,
        "A {a_results}, B {b_results}"
    );
    // Every task polled after the first B result was recorded must have run B (its lookup
    // came after that B task's lookup, which already saw the swapped table), and so must
    // every task scheduled after the swap was logged.
    for (name, run) in &all {
        if run.started.unwrap() > first_b || after_swap.contains(name) {
            assert_eq!(
                run.closed,
                vec![Closed::Completed(Some(b_of(run)))],
                "{name} started after the first B result or the swap"
            );
        }
    }
}

/// A countdown is running when countdown@1.wasm is replaced by other code: it goes on on
/// the old code (canceled after the swap, it answers with the old code's progress), while a
/// task started after the swap runs the new code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_task_finishes_on_the_old_code() {
    let scenario = Scenario::start("long", &[("countdown@1", None)]).await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["countdown@1.wasm"])]);
    // Heartbeats at most every second, so the cancel flag reaches the old code quickly.
    config.extra = "[defaults]\nheartbeat_interval_s = 1\n".into();
    let host = Host::start(&config.write(), &[]);
    // Far longer than the test: it ends by cancellation, not by running out.
    let input = r#"{"steps":6000,"step_ms":50}"#;
    let mut old = Activity::new("old", "countdown@1", "main", Some(input));
    old.start_to_close = "600".into();

    swf.start("w-long", &[old], false).await.unwrap();
    wait_until("the countdown to start", MINUTE, || async {
        let h = swf.history("w-long").await.ok()?;
        h.iter()
            .any(|e| e.event_type == EventType::ActivityTaskStarted)
            .then_some(())
    })
    .await;
    drop_in(
        &plugin_dir(&config, "main"),
        "countdown@1.wasm",
        &read("echo-b.wasm"),
    );
    wait_log(&host, &["plugin swapped", "countdown@1"], 1).await;

    let new = swf
        .run_one(
            "w-new",
            Activity::new("new", "countdown@1", "main", Some(input)),
            MINUTE,
        )
        .await;
    assert_eq!(new, vec![Closed::Completed(Some(format!("B:{input}")))]);
    assert!(
        swf.closed("w-long").await.unwrap().is_empty(),
        "the countdown ended before it was canceled"
    );
    swf.signal_cancel("w-long", "old").await.unwrap();
    let old = swf.wait_closed("w-long", 1, MINUTE).await;
    // Only the countdown's code heartbeats and answers a cancel with its progress.
    match &old["old"][..] {
        [Closed::Canceled(Some(details))] => {
            assert!(details.contains(r#""of":6000"#), "{details}")
        }
        other => panic!("expected the old code's cancel, got {other:?}"),
    }
    // Each task's lines name the build that served it.
    let build = |file: &str| {
        use sha2::Digest;
        format!(
            "plugin_sha256={}",
            &hex::encode(sha2::Sha256::digest(read(file)))[..12]
        )
    };
    let line = |activity: &str, what: &str| {
        let logs = host.logs();
        logs.lines()
            .find(|l| l.contains(&format!("activity_id={activity} ")) && l.contains(what))
            .unwrap_or_else(|| panic!("no '{what}' line for {activity}:\n{logs}"))
            .to_string()
    };
    wait_log(&host, &["task canceled"], 1).await;
    for (activity, what, file) in [
        ("old", "task canceled", "countdown@1.wasm"),
        ("new", "task completed", "echo-b.wasm"),
    ] {
        let line = line(activity, what);
        assert!(line.contains(&build(file)), "{file}: {line}");
    }
}

async fn plugin_counter(metrics_url: &str, name: &str) -> Option<f64> {
    let text = http::get(metrics_url).await.ok()?;
    metric(&text, &format!("swasm_plugin_{name}_total"))
}

/// A host with metrics serving `echo@1.wasm` on task list "main" of `domain`, and the
/// scenario it polls.
struct Serving {
    // Fields drop in this order: the host before the endpoint it polls.
    host: Host,
    metrics_url: String,
    /// The live plugin dir of "main".
    dir: PathBuf,
    scenario: Scenario,
}

/// Starts a [`Scenario`] (with `types` registered in `domain`) and a host serving echo@1,
/// and returns once the host has completed a first echo task: what these tests change is
/// the dir of a host that already watches it.
async fn serving_echo(domain: &str, types: &[(&str, Option<u64>)]) -> Serving {
    let scenario = Scenario::start(domain, types).await;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &[]);
    let metrics_url = format!("{}/metrics", host.metrics_base().await);
    let first = scenario
        .swf
        .run_one(
            &format!("w-{domain}-first"),
            Activity::new("e", "echo@1", "main", Some("first")),
            MINUTE,
        )
        .await;
    assert_eq!(first, vec![Closed::Completed(Some("first".into()))]);
    Serving {
        host,
        metrics_url,
        dir: plugin_dir(&config, "main"),
        scenario,
    }
}

/// A restart with the same `[cache] dir` loads from the cache: the compile counter stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_warm_cache_does_not_compile() {
    let scenario = Scenario::start("warm", &[("echo@1", None), ("countdown@1", None)]).await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new(
        "main",
        &["echo@1.wasm", "countdown@1.wasm"],
    )]);
    config.cache_dir = Some(temp_dir("cache"));
    config.serve_metrics();
    let path = config.write();

    for (round, (compiles, hits)) in [(2.0, 0.0), (0.0, 2.0)].into_iter().enumerate() {
        let mut host = Host::start(&path, &[]);
        let metrics_url = format!("{}/metrics", host.metrics_base().await);
        let loads = wait_until("both plugins to load", MINUTE, || async {
            let loads = plugin_counter(&metrics_url, "loads").await?;
            (loads >= 2.0).then_some(loads)
        })
        .await;
        assert_eq!(loads, 2.0);
        assert_eq!(
            plugin_counter(&metrics_url, "compiles").await,
            Some(compiles),
            "round {round}\n{}",
            host.logs()
        );
        assert_eq!(
            plugin_counter(&metrics_url, "cache_hits").await,
            Some(hits),
            "round {round}"
        );
        // The code loaded from the cache runs.
        let closed = swf
            .run_one(
                &format!("w-warm-{round}"),
                Activity::new("e", "echo@1", "main", Some("warm")),
                MINUTE,
            )
            .await;
        assert_eq!(closed, vec![Closed::Completed(Some("warm".into()))]);
        host.signal("TERM");
        let status = host.wait_exit(MINUTE).await.expect("the host should exit");
        assert!(status.success(), "{status:?}");
    }
}

/// Each kind of bad file dropped into the live dir is rejected (one log line, the rejects
/// counter) while echo@1 keeps completing tasks with code A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_while_the_old_version_serves() {
    let Serving {
        host,
        metrics_url,
        dir,
        scenario: Scenario { swf, .. },
    } = &serving_echo("bad", &[("echo@1", None)]).await;
    let echo = read("echo@1.wasm");

    // (kind, file name, what its log line must say, bytes)
    let bad: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "not wasm",
            "echo@1.wasm",
            "not a WebAssembly file",
            b"#!/bin/sh\necho hi\n".to_vec(),
        ),
        // The smallest valid core module: magic + version 1.
        (
            "a core module",
            "echo@1.wasm",
            "a core WebAssembly module",
            b"\0asm\x01\0\0\0".to_vec(),
        ),
        // The smallest valid component (layer 1): it exports nothing of swasm:activity.
        (
            "the wrong world",
            "echo@1.wasm",
            "not built for world swasm:activity/plugin",
            b"\0asm\x0d\0\x01\0".to_vec(),
        ),
        // Exports swasm:activity/activity@0.1.0, but its `run` takes and returns a string.
        (
            "the wrong `run` signature",
            "echo@1.wasm",
            "does not have the signature of the host's wit/world.wit",
            read("wrongsig@1.wasm"),
        ),
        (
            "truncated",
            "echo@1.wasm",
            "truncated",
            echo[..echo.len() / 2].to_vec(),
        ),
        (
            "no @version",
            "echo.wasm",
            "the file name must be <name>@<version>.wasm",
            echo.clone(),
        ),
    ];
    for (i, (kind, name, why, bytes)) in bad.iter().enumerate() {
        drop_in(dir, name, bytes);
        // The registry counts a reject before it logs it: wait for both.
        let logs = wait_until(
            &format!("the {kind} file to be rejected"),
            MINUTE,
            || async {
                let n = plugin_counter(metrics_url, "rejects").await?;
                let logs = host.logs();
                let logged = logs
                    .lines()
                    .filter(|l| l.contains("plugin rejected"))
                    .count();
                (n >= (i + 1) as f64 && logged > i).then_some(logs)
            },
        )
        .await;
        let lines: Vec<_> = logs
            .lines()
            .filter(|l| l.contains("plugin rejected"))
            .collect();
        assert_eq!(
            lines.len(),
            i + 1,
            "one line per rejected file ({kind}):\n{logs}"
        );
        assert!(
            lines[i].contains(&format!("/{name}")) && lines[i].contains(why),
            "the line names the file and says what is wrong ({why}): {}",
            lines[i]
        );

        let wf = format!("w-bad-{i}");
        let acts: Vec<_> = (0..3)
            .map(|j| {
                Activity::new(
                    &format!("e{j}"),
                    "echo@1",
                    "main",
                    Some(&format!("{i}-{j}")),
                )
            })
            .collect();
        swf.start(&wf, &acts, false).await.unwrap();
        let closed = swf.wait_closed(&wf, acts.len(), MINUTE).await;
        for a in &acts {
            assert_eq!(
                closed[&a.id],
                vec![Closed::Completed(a.input.clone())],
                "after the {kind} file, {wf}/{}",
                a.id
            );
        }
    }
    assert_eq!(plugin_counter(metrics_url, "swaps").await, Some(0.0));
}

/// A plugin copied into the live dir slowly, in place (no temp file, no rename: what `cp`
/// over a network mount does), with pauses longer than the watcher's debounce between its
/// chunks: scans that see a part of the file do not reject it, and once the writer closes
/// the file the new version serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_in_place_is_loaded_once_complete() {
    use std::io::Write;

    let Serving {
        host,
        metrics_url,
        dir,
        scenario: Scenario { swf, .. },
    } = &serving_echo("slow", &[("echo@1", None), ("echo@2", None)]).await;

    let bytes = read("echo-b.wasm");
    let mut file = std::fs::File::create(dir.join("echo@2.wasm")).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(4)) {
        file.write_all(chunk).unwrap();
        file.sync_data().unwrap();
        // The slow writer, not synchronisation: each pause lets the debounce expire.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    drop(file);
    wait_log(host, &["plugin loaded", "echo@2"], 1).await;

    let closed = swf
        .run_one(
            "w-slow",
            Activity::new("e", "echo@2", "main", Some("whole")),
            MINUTE,
        )
        .await;
    assert_eq!(closed, vec![Closed::Completed(Some("B:whole".into()))]);
    assert_eq!(
        plugin_counter(metrics_url, "rejects").await,
        Some(0.0),
        "a part of the file was rejected:\n{}",
        host.logs()
    );
}

/// With `--register`, a version dropped into the live dir is registered as it loads, with
/// the task list it was found in: a decider can schedule it at once, with no restart and no
/// `swasm register`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_register_registers_a_version_dropped_in_later() {
    let scenario = Scenario::start("newver", &[]).await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &["--register"]);
    let base = host.metrics_base().await;
    // Ready comes after the start-up registration (of echo@1).
    wait_ready(&base).await;
    let first = swf
        .run_one(
            "w-newver-1",
            Activity::new("e", "echo@1", "main", Some("one")),
            MINUTE,
        )
        .await;
    assert_eq!(first, vec![Closed::Completed(Some("one".into()))]);

    drop_in(
        &plugin_dir(&config, "main"),
        "echo@2.wasm",
        &read("echo@1.wasm"),
    );
    let info = wait_until("echo@2 to be registered", MINUTE, || async {
        swf.client
            .describe_activity_type()
            .domain(&swf.domain)
            .activity_type(
                aws_sdk_swf::types::ActivityType::builder()
                    .name("echo")
                    .version("2")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .ok()
    })
    .await;
    let default_list = info
        .configuration
        .and_then(|c| c.default_task_list)
        .map(|t| t.name);
    assert_eq!(default_list.as_deref(), Some("main"), "{}", host.logs());

    let second = swf
        .run_one(
            "w-newver-2",
            Activity::new("e", "echo@2", "main", Some("two")),
            MINUTE,
        )
        .await;
    assert_eq!(second, vec![Closed::Completed(Some("two".into()))]);
}

/// A version dropped in while the host runs gets the grants of its name's
/// `[activity."name"]` table with no restart: envread@2 sees the variable the table grants
/// every version of envread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_dropped_in_gets_its_names_grants() {
    let scenario = Scenario::start("name-table", &[("envread@1", None), ("envread@2", None)]).await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["envread@1.wasm"])]);
    config.extra = "[activity.envread]\nenv = { GREETING = \"hello\" }\n".into();
    let host = Host::start(&config.write(), &[]);
    let first = swf
        .run_one(
            "w-v1",
            Activity::new("v1", "envread@1", "main", None),
            MINUTE,
        )
        .await;
    let [Closed::Completed(Some(result))] = &first[..] else {
        panic!("{first:?}\n{}", host.logs())
    };
    assert!(result.contains(r#""env":{"GREETING":"hello"}"#), "{result}");

    drop_in(
        &plugin_dir(&config, "main"),
        "envread@2.wasm",
        &read("envread@1.wasm"),
    );
    wait_log(&host, &["plugin loaded", "envread@2"], 1).await;
    let second = swf
        .run_one(
            "w-v2",
            Activity::new("v2", "envread@2", "main", None),
            MINUTE,
        )
        .await;
    assert_eq!(second, first, "{}", host.logs());
    assert!(
        !host.logs().contains("has no [activity."),
        "the name's table covers envread@2:\n{}",
        host.logs()
    );
}
