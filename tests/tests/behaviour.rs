//! Issue 3's Behaviour, end to end: `swasm local-swf` and `swasm run` as processes, a decider
//! on aws-sdk-swf, assertions on workflow histories.

use std::time::Duration;

use aws_sdk_swf::types::EventType;
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Completed, failed by the guest, unknown type, trap, local timeout, oversized result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_reach_the_history() {
    let scenario = Scenario::start(
        "behaviour",
        &[
            ("echo@1", None),
            ("validate@1", None),
            ("nope@1", None),
            ("trap@1", None),
            ("bigresult@1", None),
            ("spin@1", None),
        ],
    )
    .await;
    let swf = &scenario.swf;
    let mut config = scenario.host_config(vec![TaskListSpec::new(
        "main",
        &[
            "echo@1.wasm",
            "validate@1.wasm",
            "trap@1.wasm",
            "bigresult@1.wasm",
            "spin@1.wasm",
        ],
    )]);
    config.extra = "[activity.\"spin@1\"]\ntimeout_s = 2\n".into();
    let _host = Host::start(&config.write(), &[]);

    let acts = vec![
        Activity::new("echo", "echo@1", "main", Some("hello")),
        Activity::new("bad", "validate@1", "main", Some("{\"email\": 3}")),
        Activity::new("unknown", "nope@1", "main", None),
        Activity::new("trap", "trap@1", "main", None),
        Activity::new("big", "bigresult@1", "main", None),
        Activity::new("spin", "spin@1", "main", None),
    ];
    swf.start("w-outcomes", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-outcomes", acts.len(), MINUTE).await;

    assert_eq!(
        closed["echo"],
        vec![Closed::Completed(Some("hello".into()))]
    );
    let failed = |id: &str| match &closed[id][..] {
        [Closed::Failed { reason, details }] => (reason.clone(), details.clone()),
        other => panic!("{id}: expected one failure, got {other:?}"),
    };
    let (reason, details) = failed("bad");
    assert_eq!(reason, "BadInput");
    assert!(details.contains("email"), "{details}");
    let (reason, details) = failed("unknown");
    assert_eq!(reason, "swasm.UnknownActivityType");
    for served in ["echo@1", "validate@1", "trap@1", "bigresult@1", "spin@1"] {
        assert!(
            details.contains(served),
            "details should list {served}: {details}"
        );
    }
    let (reason, details) = failed("trap");
    assert_eq!(reason, "swasm.Trap");
    assert!(details.contains("wasm backtrace"), "{details}");
    assert_eq!(failed("big").0, "swasm.ResultTooLarge");
    assert_eq!(failed("spin").0, "swasm.Timeout");
}

/// RequestCancelActivityTask -> heartbeat() true -> RespondActivityTaskCanceled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_reaches_the_guest() {
    let scenario = Scenario::start("cancel", &[("countdown@1", None)]).await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["countdown@1.wasm"])]);
    // Heartbeats at most every second, so the cancel flag arrives quickly.
    config.extra = "[defaults]\nheartbeat_interval_s = 1\n".into();
    let host = Host::start(&config.write(), &[]);

    let mut act = Activity::new(
        "long",
        "countdown@1",
        "main",
        Some(r#"{"steps":600,"step_ms":50}"#),
    );
    act.heartbeat = "30".into();
    swf.start("w-cancel", &[act], false).await.unwrap();
    wait_until("the countdown to heartbeat", MINUTE, || async {
        (swf_local.calls("RecordActivityTaskHeartbeat").await > 0).then_some(())
    })
    .await;
    swf.signal_cancel("w-cancel", "long").await.unwrap();
    let closed = swf.wait_closed("w-cancel", 1, MINUTE).await;
    match &closed["long"][..] {
        [Closed::Canceled(Some(details))] => assert!(details.contains("\"of\":600"), "{details}"),
        other => panic!("expected canceled, got {other:?}"),
    }
    let history = swf.history("w-cancel").await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.event_type == EventType::ActivityTaskCancelRequested)
    );
    // The heartbeat pump logs in the task's span: an operator can tell which task was asked.
    let logs = host.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("SWF requested cancellation"))
        .unwrap_or_else(|| panic!("no cancellation line in the host's log:\n{logs}"));
    assert!(
        line.contains("activity_id=long") && line.contains("workflow_id=w-cancel"),
        "{line}"
    );
}

/// A guest that calls heartbeat() 40 times in 2 s costs at most 2 RecordActivityTaskHeartbeat
/// calls with a 30 s throttle (the first at once, the latest flushed before the response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_throttled() {
    // The type's registered heartbeat timeout is long: the throttle is heartbeat_interval_s.
    let scenario = Scenario::start("throttle", &[("countdown@1", Some(600))]).await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let config = scenario.host_config(vec![TaskListSpec::new("main", &["countdown@1.wasm"])]);
    let _host = Host::start(&config.write(), &[]);

    swf.start(
        "w-throttle",
        &[Activity::new(
            "c",
            "countdown@1",
            "main",
            Some(r#"{"steps":40,"step_ms":50}"#),
        )],
        false,
    )
    .await
    .unwrap();
    let closed = swf.wait_closed("w-throttle", 1, MINUTE).await;
    assert_eq!(
        closed["c"],
        vec![Closed::Completed(Some(r#"{"done":40}"#.into()))]
    );
    let beats = swf_local.calls("RecordActivityTaskHeartbeat").await;
    assert!(
        (1..=2).contains(&beats),
        "40 guest heartbeats in 2 s gave {beats} RecordActivityTaskHeartbeat calls"
    );
}

/// With max_concurrent = 2 (and 3 pollers), no third task is polled while two run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_cap_running_tasks() {
    let scenario = Scenario::start("slots", &[("countdown@1", None)]).await;
    let swf = &scenario.swf;
    let mut tl = TaskListSpec::new("main", &["countdown@1.wasm"]);
    tl.max_concurrent = 2;
    tl.pollers = 3;
    let config = scenario.host_config(vec![tl]);
    let _host = Host::start(&config.write(), &[]);

    let acts: Vec<_> = (0..5)
        .map(|i| {
            Activity::new(
                &format!("c{i}"),
                "countdown@1",
                "main",
                Some(r#"{"steps":10,"step_ms":100}"#),
            )
        })
        .collect();
    swf.start("w-slots", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-slots", 5, MINUTE).await;
    assert!(
        closed
            .values()
            .all(|c| matches!(c[..], [Closed::Completed(_)])),
        "{closed:?}"
    );

    // Replay the history: never more than two tasks started and not yet closed.
    let history = swf.history("w-slots").await.unwrap();
    let (mut open, mut max_open) = (0i32, 0i32);
    for e in &history {
        match e.event_type {
            EventType::ActivityTaskStarted => open += 1,
            EventType::ActivityTaskCompleted
            | EventType::ActivityTaskFailed
            | EventType::ActivityTaskCanceled => open -= 1,
            _ => {}
        }
        max_open = max_open.max(open);
    }
    assert_eq!(
        max_open, 2,
        "at most two tasks may run at once, and two should"
    );
}

/// SIGTERM while the host is still starting (here a plugin's load check blocks for its
/// whole 11 s bound) stops it there: it exits 0 without finishing start-up (the check never
/// reports) and never polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_start_up_stops_the_host_before_it_polls() {
    let swf_local = LocalSwf::start();
    let config = HostConfig::new(
        &swf_local.url,
        "startup-signal",
        vec![TaskListSpec::new("tl", &[])],
    );
    let path = config.write();
    let blocks = wat::parse_file(repo_root().join("host/tests/fixtures/wat/start-blocks.wat"))
        .expect("start-blocks.wat");
    std::fs::write(config.dir.join("plugins/tl/blocks@1.wasm"), blocks).unwrap();
    let mut host = Host::start(&path, &[]);
    // Logged once the signal handlers are in place, as start-up begins.
    wait_until("start-up under way", MINUTE, || async {
        host.logs()
            .contains("starting: loading the plugins")
            .then_some(())
    })
    .await;
    host.signal("TERM");
    let status = host.wait_exit(MINUTE).await.expect("exits");
    let logs = host.logs();
    assert!(status.success(), "{status:?}\n{logs}");
    assert!(logs.contains("stopped during start-up"), "{logs}");
    assert!(
        !logs.contains("plugin rejected"),
        "start-up ran to its end: {logs}"
    );
    assert_eq!(swf_local.calls("PollForActivityTask").await, 0);
}
