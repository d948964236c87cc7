//! Issue 7: register, metrics, status.

use std::time::Duration;

use aws_sdk_swf::types::{ActivityType, RegistrationStatus};
use serde_json::json;
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// `swasm register`: the domain and every plugin's type appear with the configured
/// defaults; running it again changes nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_is_idempotent() {
    let swf_local = LocalSwf::start();
    let mut config = HostConfig::new(
        &swf_local.url,
        "reg",
        vec![TaskListSpec::new(
            "main",
            &["echo@1.wasm", "countdown@1.wasm"],
        )],
    );
    config.register_domain = true;
    config.extra = "[defaults]\nstart_to_close_timeout_s = 120\nheartbeat_timeout_s = 30\n\n[activity.\"countdown@1\"]\nheartbeat_timeout_s = 10\ndescription = \"counts\"\n".into();
    let path = config.write();
    let path_s = path.to_str().unwrap();

    let (status, out, err) = swasm(&["register", "--config", path_s]);
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("domain: registered"), "{out}");
    assert!(out.contains("echo@1 (task list main): registered"), "{out}");
    assert!(
        out.contains("countdown@1 (task list main): registered"),
        "{out}"
    );

    let swf = Swf::new(&swf_local.url, "reg").await;
    let d = swf
        .client
        .describe_activity_type()
        .domain("reg")
        .activity_type(activity_type("countdown", "1"))
        .send()
        .await
        .unwrap();
    let c = d.configuration.unwrap();
    assert_eq!(c.default_task_heartbeat_timeout(), Some("10"));
    assert_eq!(c.default_task_start_to_close_timeout(), Some("120"));
    assert_eq!(c.default_task_list().map(|t| t.name()), Some("main"));
    assert_eq!(
        d.type_info.as_ref().unwrap().status,
        RegistrationStatus::Registered
    );
    assert_eq!(d.type_info.unwrap().description.as_deref(), Some("counts"));

    let (status, out, err) = swasm(&["register", "--config", path_s]);
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("domain: already registered"), "{out}");
    assert!(
        out.contains("echo@1 (task list main): already registered"),
        "{out}"
    );
    assert!(
        out.contains("countdown@1 (task list main): already registered"),
        "{out}"
    );

    // Other defaults for an existing type are reported, not silently ignored.
    config.extra = config
        .extra
        .replace("heartbeat_timeout_s = 10", "heartbeat_timeout_s = 20");
    let path = config.write();
    let (status, out, _) = swasm(&["register", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("countdown@1 (task list main): already registered with different defaults: heartbeat_timeout_s: registered 10, configured 20"), "{out}");

    // A type deprecated since (deciders can no longer schedule it) is not "already
    // registered" as if all were well.
    swf.client
        .deprecate_activity_type()
        .domain("reg")
        .activity_type(activity_type("echo", "1"))
        .send()
        .await
        .unwrap();
    let (status, out, _) = swasm(&["register", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("echo@1 (task list main): already registered with different defaults: status: registered DEPRECATED"), "{out}");
}

fn activity_type(name: &str, version: &str) -> ActivityType {
    ActivityType::builder()
        .name(name)
        .version(version)
        .build()
        .unwrap()
}

/// Writes files that do not load beside the good plugins of `dir`: garbage, a truncated
/// copy of a real plugin, and a good plugin whose name has no `@version`.
fn add_bad_files(dir: &std::path::Path) {
    std::fs::write(dir.join("bad@1.wasm"), b"not a WebAssembly file").unwrap();
    let echo = std::fs::read(plugin("echo@1.wasm")).unwrap();
    std::fs::write(dir.join("trunc@1.wasm"), &echo[..echo.len() / 2]).unwrap();
    std::fs::write(dir.join("noversion.wasm"), &echo).unwrap();
}

/// `swasm register` registers the types of the files that load and nothing else (SWF
/// never forgets a type): a file that does not load is named with why, and makes it exit
/// 1, also when a type conflicts (which alone exits 2); so is a file whose name gives a
/// type SWF would refuse, without stopping the others; a file without `@version` is said
/// to be skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_registers_only_files_that_load() {
    let swf_local = LocalSwf::start();
    let mut config = HostConfig::new(
        &swf_local.url,
        "regbad",
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    config.register_domain = true;
    let path = config.write();
    let dir = config.dir.join("plugins/main");
    add_bad_files(&dir);
    // A good component whose name gives a version SWF refuses (a timestamp with ':').
    std::fs::copy(
        plugin("echo@1.wasm"),
        dir.join("echo@2024-01-01T10:00.wasm"),
    )
    .unwrap();
    let dir = dir.canonicalize().unwrap();

    let (status, out, err) = swasm(&["register", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("domain: registered"), "{out}");
    assert!(out.contains("echo@1 (task list main): registered"), "{out}");
    let line = |file: &str| {
        let path = dir.join(file).display().to_string();
        out.lines()
            .find(|l| l.starts_with(&path))
            .unwrap_or_else(|| panic!("no line names {path}:\n{out}\n{err}"))
            .to_string()
    };
    let bad = line("bad@1.wasm");
    assert!(
        bad.contains("bad@1 not registered, the file does not load: not a WebAssembly file"),
        "{bad}"
    );
    let trunc = line("trunc@1.wasm");
    assert!(
        trunc.contains("trunc@1 not registered, the file does not load: ")
            && trunc.contains("truncated"),
        "{trunc}"
    );
    let timestamp = line("echo@2024-01-01T10:00.wasm");
    assert!(
        timestamp.contains("echo@2024-01-01T10:00 not registered, the file does not load: echo@2024-01-01T10:00 is not an activity type SWF accepts: activity type version \"2024-01-01T10:00\" must not contain ':'"),
        "{timestamp}"
    );
    let skipped = line("noversion.wasm");
    assert!(
        skipped.contains("(task list main): skipped: the file name must be <name>@<version>.wasm"),
        "{skipped}"
    );

    let swf = Swf::new(&swf_local.url, "regbad").await;
    assert!(swf.activity_type_registered("echo@1").await);
    assert!(!swf.activity_type_registered("bad@1").await);
    assert!(!swf.activity_type_registered("trunc@1").await);

    // A conflict alone exits 2; with a file that does not load as well, 1.
    config.extra = "[defaults]\nheartbeat_timeout_s = 20\n".into();
    let path = config.write();
    let (status, out, err) = swasm(&["register", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("echo@1 (task list main): already registered with different defaults"),
        "{out}"
    );
    for file in ["bad@1.wasm", "trunc@1.wasm", "echo@2024-01-01T10:00.wasm"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let (status, out, err) = swasm(&["register", "--config", path.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{out}\n{err}");
    assert!(!swf.activity_type_registered("bad@1").await);
    assert!(!swf.activity_type_registered("trunc@1").await);
}

/// `swasm run --register` registers at start-up only the types its registry serves: a
/// garbage file and a truncated copy beside a good plugin are rejected and never
/// registered, while the good type is registered before the host is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_register_registers_only_files_that_load() {
    let swf_local = LocalSwf::start();
    let mut config = HostConfig::new(
        &swf_local.url,
        "runregbad",
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    config.register_domain = true;
    config.serve_metrics();
    let path = config.write();
    add_bad_files(&config.dir.join("plugins/main"));
    let host = Host::start(&path, &["--register"]);
    let base = host.metrics_base().await;
    // Ready comes after the start-up registration.
    wait_ready(&base).await;
    let swf = Swf::new(&swf_local.url, "runregbad").await;
    assert!(
        swf.activity_type_registered("echo@1").await,
        "{}",
        host.logs()
    );
    // Both bad files (and the one without a version) are rejected for good: a file just
    // written, or one that ends in the middle of a component, is looked at again first.
    // The registry counts a reject before it logs it: wait for the lines too.
    let rejected = |logs: &str, file: &str| {
        logs.lines()
            .any(|l| l.contains("plugin rejected") && l.contains(file))
    };
    wait_until("the three bad files to be rejected", MINUTE, || async {
        let text = http::get(&format!("{base}/metrics")).await.ok()?;
        let n = metric(&text, "swasm_plugin_rejects_total")?;
        let logs = host.logs();
        (n >= 3.0 && rejected(&logs, "bad@1.wasm") && rejected(&logs, "trunc@1.wasm")).then_some(())
    })
    .await;
    let logs = host.logs();
    assert!(!swf.activity_type_registered("bad@1").await, "{logs}");
    assert!(!swf.activity_type_registered("trunc@1").await, "{logs}");
    assert!(
        !logs.contains("activity_type=bad@1") && !logs.contains("activity_type=trunc@1"),
        "{logs}"
    );
}

/// `swasm run --register` in a fleet that starts at once: a type that already exists costs
/// one DescribeActivityType and no RegisterActivityType (SWF's smallest quota), and after
/// SWF throttles a registration the retry goes on from that type instead of sending every
/// call again, so the host still becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_register_describes_first_and_resumes_after_throttling() {
    let swf_local = LocalSwf::start();
    let swf = Swf::new(&swf_local.url, "regfleet").await;
    // Another host registered countdown@1 already.
    swf.setup(&[("countdown@1", None)]).await.unwrap();
    let mut config = HostConfig::new(
        &swf_local.url,
        "regfleet",
        vec![TaskListSpec::new(
            "main",
            &["countdown@1.wasm", "echo@1.wasm", "validate@1.wasm"],
        )],
    );
    config.serve_metrics();
    let path = config.write();
    // The types go in name order: countdown (exists), echo (throttled on both of the
    // SDK's attempts, so the host retries), validate.
    swf_local
        .set_faults(json!([{"kind": "throttle", "operation": "RegisterActivityType", "count": 2}]))
        .await;
    let host = Host::start(&path, &["--register"]);
    wait_ready(&host.metrics_base().await).await;
    // Read before this test's own calls below; one RegisterActivityType was the set-up's.
    let calls = swf_local.stats().await;
    let logs = host.logs();
    for ty in ["echo@1", "validate@1"] {
        assert!(swf.activity_type_registered(ty).await, "{ty}\n{logs}");
    }
    assert!(logs.contains("registration failed; retrying in"), "{logs}");
    let n = |op: &str| calls.get(op).copied().unwrap_or(0);
    assert_eq!(
        n("RegisterActivityType"),
        1 + 4,
        "echo three times (two attempts throttled), validate once, countdown never: {calls:?}"
    );
    assert_eq!(
        n("DescribeActivityType"),
        4,
        "countdown once (not again after echo's throttling), echo twice, validate once: {calls:?}"
    );
}

/// A type registered with no start-to-close, schedule-to-close or heartbeat timeout keeps
/// the tasks of a host that died open for ever, and SWF never lets that change: `swasm
/// register` and `swasm run --register` warn as they register one, naming it. A type with
/// a heartbeat timeout (a dead host stops heartbeating), and a type already registered,
/// are not warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_type_that_never_times_out_is_warned_about() {
    const WARNING: &str =
        "registered with no start-to-close, schedule-to-close or heartbeat timeout";
    let swf_local = LocalSwf::start();
    let mut config = HostConfig::new(
        &swf_local.url,
        "notimeout",
        vec![TaskListSpec::new(
            "main",
            &["echo@1.wasm", "countdown@1.wasm"],
        )],
    );
    config.register_domain = true;
    config.extra = "[activity.\"countdown@1\"]\nheartbeat_timeout_s = 30\n".into();
    let path = config.write();
    let path_s = path.to_str().unwrap();

    let (status, out, err) = swasm(&["register", "--config", path_s]);
    assert!(status.success(), "{out}\n{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains("echo@1") && warned[0].contains("start_to_close_timeout_s"),
        "{err}"
    );
    let (status, out, err) = swasm(&["register", "--config", path_s]);
    assert!(status.success(), "{out}\n{err}");
    assert!(!err.contains(WARNING), "already registered: {err}");

    // `run --register`, in another domain, warns the same way.
    config.domain = "notimeout-run".into();
    config.serve_metrics();
    let path = config.write();
    let host = Host::start(&path, &["--register"]);
    wait_ready(&host.metrics_base().await).await;
    let logs = host.logs();
    let warned: Vec<&str> = logs.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warned.len(), 1, "{logs}");
    assert!(warned[0].contains("echo@1"), "{logs}");
}

/// After a scripted run, `/metrics` and `/status` agree with the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_match_the_history() {
    let scenario = Scenario::start("metrics", &[("countdown@1", None)]).await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let mut config = scenario.host_config(vec![TaskListSpec::new(
        "main",
        &["echo@1.wasm", "validate@1.wasm", "countdown@1.wasm"],
    )]);
    config.serve_metrics();
    config.register_domain = false;
    config.extra = "[defaults]\nheartbeat_interval_s = 1\n".into();
    let host = Host::start(&config.write(), &["--register"]);
    let base = host.metrics_base().await;
    wait_ready(&base).await;
    // Each served type has its series at 0 before its first task.
    let text = http::get(&format!("{base}/metrics")).await.unwrap();
    for ty in ["echo@1", "validate@1", "countdown@1"] {
        for outcome in ["completed", "failed", "canceled"] {
            let series = format!(
                r#"swasm_activity_tasks_total{{task_list="main",activity_type="{ty}",outcome="{outcome}"}}"#
            );
            assert_eq!(metric(&text, &series), Some(0.0), "{series} in {text}");
        }
    }

    let mut acts: Vec<_> = (0..3)
        .map(|i| Activity::new(&format!("e{i}"), "echo@1", "main", Some("x")))
        .collect();
    acts.push(Activity::new("bad1", "validate@1", "main", Some("{}")));
    acts.push(Activity::new("bad2", "validate@1", "main", Some("[]")));
    acts.push(Activity::new(
        "long",
        "countdown@1",
        "main",
        Some(r#"{"steps":600,"step_ms":50}"#),
    ));
    swf.start("w-metrics", &acts, false).await.unwrap();
    // While the countdown runs, /status lists it with its heartbeat.
    let status = wait_until("/status to show the running countdown", MINUTE, || async {
        let s: serde_json::Value =
            serde_json::from_str(&http::get(&format!("{base}/status")).await.ok()?).ok()?;
        let running = s["in_flight"]
            .as_array()?
            .iter()
            .find(|t| t["activity_id"] == "long")?
            .clone();
        running["last_heartbeat_unix_ms"]
            .as_u64()
            .map(|_| (s, running))
    })
    .await;
    assert_eq!(status.1["type"], "countdown@1");
    let plugins = status.0["plugins"].as_array().unwrap();
    for ty in ["echo", "validate", "countdown"] {
        let p = plugins
            .iter()
            .find(|p| p["type"] == ty)
            .unwrap_or_else(|| panic!("{ty} missing from /status: {plugins:?}"));
        assert_eq!(p["version"], "1");
        assert_eq!(p["hash"].as_str().unwrap().len(), 64);
    }
    swf.signal_cancel("w-metrics", "long").await.unwrap();
    let closed = swf.wait_closed("w-metrics", acts.len(), MINUTE).await;

    let count = |f: fn(&Closed) -> bool| closed.values().flatten().filter(|c| f(c)).count() as f64;
    let (completed, failed, canceled) = (
        count(|c| matches!(c, Closed::Completed(_))),
        count(|c| matches!(c, Closed::Failed { .. })),
        count(|c| matches!(c, Closed::Canceled(_))),
    );
    assert_eq!((completed, failed, canceled), (3.0, 2.0, 1.0));
    // The host counts a task, and frees its slot, only once SWF has taken its answer: the
    // history can show the last close a moment before. Wait until every task is counted.
    let text = wait_until("every task counted and its slot freed", MINUTE, || async {
        let text = http::get(&format!("{base}/metrics")).await.ok()?;
        let counted = metric(
            &text,
            r#"swasm_task_duration_seconds_count{task_list="main"}"#,
        ) == Some(6.0)
            && metric(&text, r#"swasm_slots_in_use{task_list="main"}"#) == Some(0.0);
        counted.then_some(text)
    })
    .await;
    assert_eq!(
        metric(&text, r#"swasm_tasks_started_total{task_list="main"}"#),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"swasm_tasks_completed_total{task_list="main"}"#),
        Some(completed),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"swasm_tasks_failed_total{task_list="main",reason="BadInput"}"#
        ),
        Some(failed),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"swasm_tasks_canceled_total{task_list="main"}"#),
        Some(canceled),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"swasm_polls_total{task_list="main",result="task"}"#
        ),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"swasm_task_duration_seconds_count{task_list="main"}"#
        ),
        Some(6.0),
        "{text}"
    );
    // The same, by activity type.
    for (ty, outcome, n) in [
        ("echo@1", "completed", completed),
        ("validate@1", "failed", failed),
        ("countdown@1", "canceled", canceled),
        ("echo@1", "failed", 0.0),
    ] {
        let series = format!(
            r#"swasm_activity_tasks_total{{task_list="main",activity_type="{ty}",outcome="{outcome}"}}"#
        );
        assert_eq!(metric(&text, &series), Some(n), "{series} in {text}");
    }
    assert_eq!(
        metric(
            &text,
            r#"swasm_activity_task_duration_seconds_count{task_list="main",activity_type="validate@1"}"#
        ),
        Some(failed),
        "{text}"
    );
    let beats = swf_local.calls("RecordActivityTaskHeartbeat").await as f64;
    assert_eq!(
        metric(&text, "swasm_heartbeats_sent_total"),
        Some(beats),
        "{text}"
    );
    assert!(
        metric(&text, "swasm_plugin_loads_total").unwrap_or(0.0) >= 3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"swasm_slots_in_use{task_list="main"}"#),
        Some(0.0),
        "{text}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&http::get(&format!("{base}/status")).await.unwrap()).unwrap();
    assert_eq!(status["in_flight"].as_array().map(Vec::len), Some(0));
    // Every file of the plugin dir loaded: none listed as rejected.
    assert_eq!(
        status["rejected"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}

/// Voluntary context switches of every thread of process `pid` so far: one per time a
/// thread went to sleep and was woken again.
fn wakeups(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// An idle host sleeps: with no task to run, its threads wait in the kernel (long polls,
/// the plugin dir watcher) instead of waking on timers. Before, the dir watcher reacted to
/// the re-scan's own reads of the dir (about 80 re-scans a second, forever), its debouncer
/// ticked every 2.5 ms and the epoch ticker every 10 ms: over 1,000 wake-ups a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_host_sleeps() {
    // Polls are held for 60 s, as SWF holds them, so they wake nobody during the window.
    let scenario = Scenario::start_with(
        &["--listen", "127.0.0.1:0", "--poll-timeout-ms", "60000"],
        "idle",
        &[("echo@1", None)],
    )
    .await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &[]);
    let base = host.metrics_base().await;
    wait_ready(&base).await;
    // One task first, so guest code has run and the epoch ticker has been woken.
    let closed = swf
        .run_one(
            "w-idle",
            Activity::new("e", "echo@1", "main", Some("x")),
            MINUTE,
        )
        .await;
    assert!(matches!(closed[..], [Closed::Completed(_)]), "{closed:?}");

    // The window is a measurement, not a synchronisation: count what the host's threads
    // do in 2 s with nothing to do. The ticker's last ticks after the task (two at most)
    // and the pollers' new long polls fit well under the bound.
    let before = wakeups(host.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let woken = wakeups(host.pid()) - before;
    assert!(
        woken < 40,
        "an idle host woke {woken} times in 2 s\n{}",
        host.logs()
    );
}

/// A host whose stderr goes to a file (as under systemd, or `2> host.log`) logs plain text:
/// no terminal colour codes between a field's name and its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_file_are_plain_text() {
    let scenario = Scenario::start("plainlog", &[("echo@1", None)]).await;
    let config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    let host = Host::start(&config.write(), &[]);
    let closed = scenario
        .swf
        .run_one(
            "w-plain",
            Activity::new("e", "echo@1", "main", Some("x")),
            MINUTE,
        )
        .await;
    assert!(matches!(closed[..], [Closed::Completed(_)]), "{closed:?}");
    // `task started` is written before the guest runs, so it is in the file by now.
    let logs = host.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("task started"))
        .unwrap_or_else(|| panic!("no `task started` line:\n{logs}"));
    assert!(
        !logs.contains('\x1b'),
        "colour codes in a log file:\n{logs}"
    );
    assert!(
        line.contains("activity_type=echo@1") && line.contains("workflow_id=w-plain"),
        "{line}"
    );
}

/// The `expr` strings of a Prometheus rules file: one-line ones and `|`/`>` blocks (the
/// lines indented deeper than their `expr:`).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let indent = line.len() - line.trim_start().len();
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if !rest.starts_with(['|', '>']) {
            exprs.push(rest.trim_matches(['"', '\'']).to_string());
            continue;
        }
        let mut block = String::new();
        while let Some(next) = lines.peek() {
            let deeper = next.len() - next.trim_start().len() > indent;
            if !(deeper || next.trim().is_empty()) {
                break;
            }
            block.push_str(next.trim());
            block.push('\n');
            lines.next();
        }
        exprs.push(block);
    }
    exprs
}

/// The metric names an expression uses: `swasm_[a-z_]+`, not part of a longer word.
fn swasm_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("swasm_") {
        let starts_word = !rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        if starts_word {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Every `swasm_*` metric the example alerting rules use is one a host exports from its
/// start, with a series (a rule on a name that does not exist never fires, silently). A
/// histogram's `_bucket`, `_sum` and `_count` are series of their own in the scrape, so
/// they are matched as they are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_alerts_use_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/alerts.yml");
    let yaml = std::fs::read_to_string(path).unwrap();
    let exprs = rule_exprs(&yaml);
    let used: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| swasm_names(e)).collect();
    // The parse found the rules README promises: a regex that found nothing would pass.
    for name in [
        "swasm_tasks_failed_total",
        "swasm_tasks_unconfirmed_total",
        "swasm_tasks_dropped_total",
        "swasm_swf_errors_total",
        "swasm_plugin_files_rejected",
        "swasm_ready",
        "swasm_slots_in_use",
        "swasm_slots_max",
        "swasm_activity_tasks_total",
        "swasm_poller_panics_total",
    ] {
        assert!(used.contains(name), "{name} not used by {path}: {exprs:#?}");
    }

    let scenario = Scenario::start("alerts", &[("echo@1", None)]).await;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &[]);
    let base = host.metrics_base().await;
    wait_ready(&base).await;
    let text = http::get(&format!("{base}/metrics")).await.unwrap();
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{path} uses {missing:?}, which the host does not export:\n{text}"
    );
}
