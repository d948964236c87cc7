//! Issue 5: faults of the SWF side and graceful shutdown, each with zero lost tasks: every
//! scheduled activity ends completed, failed or canceled in the history, none times out
//! waiting for an answer the host had.

use std::time::Duration;

use serde_json::json;
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

fn echoes(n: usize, prefix: &str) -> Vec<Activity> {
    (0..n)
        .map(|i| {
            Activity::new(
                &format!("{prefix}{i}"),
                "echo@1",
                "main",
                Some(&format!("{prefix}{i}")),
            )
        })
        .collect()
}

/// Every activity completed exactly once with its own input echoed.
fn assert_all_echoed(closed: &std::collections::BTreeMap<String, Vec<Closed>>, acts: &[Activity]) {
    for a in acts {
        assert_eq!(
            closed.get(&a.id).map(Vec::as_slice),
            Some(&[Closed::Completed(a.input.clone())][..]),
            "activity {} should have completed exactly once",
            a.id
        );
    }
}

/// No activity of `workflow_id` timed out: the host answered every task it was given
/// (a fault may cost time, never a task left to its timeout).
async fn assert_no_timeouts(swf: &Swf, workflow_id: &str) {
    let history = swf.history(workflow_id).await.unwrap();
    let timed_out: Vec<_> = history
        .iter()
        .filter_map(|e| e.activity_task_timed_out_event_attributes.as_ref())
        .collect();
    assert!(
        timed_out.is_empty(),
        "{workflow_id}: activities timed out: {timed_out:?}"
    );
}

/// Endpoint down at start: the host keeps retrying, is not ready, then serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_down_at_start() {
    // The endpoint's port, held bound but not listening: connections to it are refused
    // (the endpoint is down), and no other process can bind it before swf-local does.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = reserved.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    // One poller: the streak is shared by the list's pollers, so with two, one poller's
    // success could reset it between the other's failure and its log line, and log the
    // same cause twice.
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm"]);
    tl.pollers = 1;
    let mut config = HostConfig::new(&url, "down", vec![tl]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &[]);
    let metrics = host.metrics_base().await;
    let readyz = format!("{metrics}/readyz");
    // Up (healthz answers) but not ready while nothing listens on the endpoint.
    assert_eq!(http::status(&readyz).await.unwrap(), 503);
    assert_eq!(
        http::status(&format!("{metrics}/healthz")).await.unwrap(),
        200
    );
    // The first failed poll is logged some time after the metrics server is up.
    wait_until("a failed poll in the host's log", MINUTE, || async {
        host.logs()
            .contains("PollForActivityTask failed")
            .then_some(())
    })
    .await;
    assert_eq!(
        http::status(&readyz).await.unwrap(),
        503,
        "ready with the endpoint still down"
    );

    let port_s = format!("127.0.0.1:{port}");
    drop(reserved);
    let scenario = Scenario::start_with(
        &["--listen", &port_s, "--poll-timeout-ms", "1000"],
        "down",
        &[("echo@1", None)],
    )
    .await;
    let swf = &scenario.swf;
    let acts = echoes(5, "e");
    swf.start("w-down", &acts, false).await.unwrap();
    // Backoff tops out at 60 s; the first retries come much sooner.
    let closed = swf.wait_closed("w-down", acts.len(), 2 * MINUTE).await;
    assert_all_echoed(&closed, &acts);
    assert_no_timeouts(swf, "w-down").await;
    assert_eq!(http::status(&readyz).await.unwrap(), 200);
    // The streak was logged once per cause, not per retry: once for the outage, and once
    // more if a poll reached the endpoint before the scenario registered the domain.
    let logs = host.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("PollForActivityTask failed"))
        .collect();
    assert!(
        matches!(lines.len(), 1 | 2) && lines[0].contains("cannot be reached"),
        "{logs}"
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("the domain does not exist")),
        "{logs}"
    );
}

/// 5xx, throttling, connection resets and hung requests on every operation the host makes:
/// polls back off, heartbeats and responses retry, no task is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_lose_nothing() {
    let scenario = Scenario::start("faults", &[("echo@1", None), ("countdown@1", None)]).await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let mut config = scenario.host_config(vec![TaskListSpec::new(
        "main",
        &["echo@1.wasm", "countdown@1.wasm"],
    )]);
    // The shortest throttle, so heartbeats meet the faults too.
    config.extra = "[defaults]\nheartbeat_interval_s = 1\n".into();
    let host = Host::start(&config.write(), &[]);

    let mut round = 0;
    for (op, kinds) in [
        (
            "PollForActivityTask",
            vec![
                json!({"kind":"status503"}),
                json!({"kind":"throttle"}),
                json!({"kind":"reset"}),
                json!({"kind":"status500"}),
            ],
        ),
        (
            "RespondActivityTaskCompleted",
            vec![
                json!({"kind":"status503"}),
                json!({"kind":"throttle"}),
                json!({"kind":"reset"}),
                json!({"kind":"hang","ms":12000}),
            ],
        ),
        (
            "RecordActivityTaskHeartbeat",
            vec![
                json!({"kind":"status500"}),
                json!({"kind":"throttle"}),
                json!({"kind":"reset"}),
            ],
        ),
    ] {
        round += 1;
        let rules: Vec<_> = kinds
            .into_iter()
            .map(|mut k| {
                k["operation"] = json!(op);
                k["count"] = json!(2);
                k
            })
            .collect();
        swf_local.set_faults(json!(rules)).await;
        let mut acts = echoes(4, &format!("r{round}-"));
        acts.push(Activity::new(
            &format!("r{round}-count"),
            "countdown@1",
            "main",
            Some(r#"{"steps":5,"step_ms":20}"#),
        ));
        let wf = format!("w-faults-{round}");
        swf.start(&wf, &acts, false).await.unwrap();
        let closed = swf.wait_closed(&wf, acts.len(), 2 * MINUTE).await;
        assert_all_echoed(&closed, &acts[..4]);
        assert!(
            matches!(closed[&acts[4].id][..], [Closed::Completed(_)]),
            "{closed:?}"
        );
        assert_no_timeouts(swf, &wf).await;
    }
    // Logged before the answer that closed the workflow; the test reads the host's output
    // through a pipe, so the line may still be on its way.
    wait_until("a retry in the host's log", MINUTE, || async {
        host.logs().contains("retrying").then_some(())
    })
    .await;
}

/// SWF's rate quotas, shrunk so a few tasks exceed them: first on polls, then on answers.
/// Throttled polls back off, throttled answers are retried, and every task completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_quotas_slow_the_host_down_but_lose_nothing() {
    let quota = |op: &str| json!({"operations": {op: {"bucket": 2, "refill_per_s": 4.0}}});
    let polls = quota("PollForActivityTask").to_string();
    let scenario = Scenario::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--poll-timeout-ms",
            "1000",
            "--quotas",
            &polls,
        ],
        "quotas",
        &[("echo@1", None)],
    )
    .await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm"]);
    tl.max_concurrent = 8;
    let host = Host::start(&scenario.host_config(vec![tl]).write(), &[]);

    for (round, op) in ["PollForActivityTask", "RespondActivityTaskCompleted"]
        .into_iter()
        .enumerate()
    {
        swf_local.set_quotas(quota(op)).await;
        let acts = echoes(10, &format!("r{round}-"));
        let wf = format!("w-quotas-{round}");
        swf.start(&wf, &acts, false).await.unwrap();
        let closed = swf.wait_closed(&wf, acts.len(), 2 * MINUTE).await;
        assert_all_echoed(&closed, &acts);
        assert_no_timeouts(swf, &wf).await;
        let throttled = swf_local.throttled().await;
        assert!(
            throttled.get(op).copied().unwrap_or(0) > 0,
            "{op} was never throttled: {throttled:?}\n{}",
            host.logs()
        );
    }
}

/// OperationNotPermittedFault and UnknownResourceFault on poll are logged once per streak,
/// naming the domain and the task list, and polling resumes when they stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_permission_errors_are_logged_once_per_streak() {
    let swf_local = LocalSwf::start();
    let swf = Swf::new(&swf_local.url, "perm").await;
    swf.setup(&[("echo@1", None)]).await.unwrap();
    swf_local
        .set_faults(
            json!([{"kind":"operation_not_permitted","operation":"PollForActivityTask","count":6}]),
        )
        .await;
    let _decider = Decider::start(&swf);
    // One poller, so the 6 refusals and the first success come in order: with two, one
    // poller's success could reset the streak before the other's refusal is counted.
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm"]);
    tl.pollers = 1;
    let config = HostConfig::new(&swf_local.url, "perm", vec![tl]);
    let host = Host::start(&config.write(), &[]);
    let acts = echoes(2, "p");
    swf.start("w-perm", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-perm", 2, MINUTE).await;
    assert_all_echoed(&closed, &acts);
    assert_no_timeouts(&swf, "w-perm").await;
    let logs = host.logs();
    let lines: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("PollForActivityTask failed"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per streak:\n{logs}");
    assert!(
        lines[0].contains("\"perm\"")
            && lines[0].contains("\"main\"")
            && lines[0].contains("OperationNotPermitted"),
        "{}",
        lines[0]
    );
}

/// A streak of poll errors whose cause changes (the endpoint answers again, but refuses the
/// poll) is logged again with the new cause, not left at the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_error_streak_is_logged_again_when_its_cause_changes() {
    let swf_local = LocalSwf::start();
    let swf = Swf::new(&swf_local.url, "streak").await;
    swf.setup(&[("echo@1", None)]).await.unwrap();
    swf_local
        .set_faults(json!([
            {"kind":"status503","operation":"PollForActivityTask","count":3},
            {"kind":"operation_not_permitted","operation":"PollForActivityTask","count":3}
        ]))
        .await;
    let _decider = Decider::start(&swf);
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm"]);
    tl.pollers = 1;
    let config = HostConfig::new(&swf_local.url, "streak", vec![tl]);
    let host = Host::start(&config.write(), &[]);
    let acts = echoes(1, "s");
    swf.start("w-streak", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-streak", 1, MINUTE).await;
    assert_all_echoed(&closed, &acts);
    let logs = host.logs();
    let lines: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("PollForActivityTask failed"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per cause:\n{logs}");
    assert!(lines[0].contains("cannot be reached"), "{}", lines[0]);
    assert!(lines[1].contains("OperationNotPermitted"), "{}", lines[1]);
}

/// An answer SWF took but whose reply was lost (the host's attempt timed out): the retry
/// finds the task gone, and the host counts the answer unconfirmed, not dropped. The
/// workflow has the one completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_reply_is_lost_is_unconfirmed_not_dropped() {
    let scenario = Scenario::start("lost-reply", &[("echo@1", None)]).await;
    let Scenario { swf, swf_local, .. } = &scenario;
    // Held past the host's 10 s attempt timeout, after the answer was taken.
    swf_local
        .set_faults(json!([{"kind":"late_response","ms":11000,"operation":"RespondActivityTaskCompleted","count":1}]))
        .await;
    let mut config = scenario.host_config(vec![TaskListSpec::new("main", &["echo@1.wasm"])]);
    config.serve_metrics();
    let host = Host::start(&config.write(), &[]);
    let metrics = format!("{}/metrics", host.metrics_base().await);
    let acts = echoes(1, "lost");
    swf.start("w-lost-reply", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-lost-reply", 1, MINUTE).await;
    assert_all_echoed(&closed, &acts);
    let counted = |name: &str, text: &str| {
        metric(
            text,
            &format!("swasm_tasks_{name}_total{{task_list=\"main\"}}"),
        )
        .unwrap_or(0.0)
    };
    // The host's retry comes after its attempt timed out, well after the completion.
    let text = wait_until("the answer counted unconfirmed", MINUTE, || async {
        let text = http::get(&metrics).await.ok()?;
        (counted("unconfirmed", &text) == 1.0).then_some(text)
    })
    .await;
    assert_eq!(counted("dropped", &text), 0.0, "{text}");
    assert_eq!(counted("completed", &text), 0.0, "{text}");
    assert_eq!(swf_local.calls("RespondActivityTaskCompleted").await, 2);
    assert!(
        host.logs().contains("was probably taken"),
        "{}",
        host.logs()
    );
}

/// Runs 2 echo tasks while the endpoint refuses the first 3 answers with `fault`: the host
/// keeps each finished result and retries until SWF takes it, saying `logged` in its log.
async fn refused_answers_are_retried(fault: &str, domain: &str, logged: &str) {
    let swf_local = LocalSwf::start();
    let swf = Swf::new(&swf_local.url, domain).await;
    swf.setup(&[("echo@1", None)]).await.unwrap();
    swf_local
        .set_faults(json!([{"kind":fault,"operation":"RespondActivityTaskCompleted","count":3}]))
        .await;
    let _decider = Decider::start(&swf);
    let config = HostConfig::new(
        &swf_local.url,
        domain,
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    let host = Host::start(&config.write(), &[]);
    let acts = echoes(2, "a");
    let workflow = format!("w-{domain}");
    swf.start(&workflow, &acts, false).await.unwrap();
    let closed = swf.wait_closed(&workflow, 2, MINUTE).await;
    assert_all_echoed(&closed, &acts);
    assert_no_timeouts(&swf, &workflow).await;
    assert_eq!(
        swf_local.calls("RespondActivityTaskCompleted").await,
        5,
        "3 refused answers, then the 2 results:\n{}",
        host.logs()
    );
    assert!(host.logs().contains(logged), "{}", host.logs());
}

/// OperationNotPermittedFault on the answer (an IAM policy still propagating): the host keeps
/// the finished result and retries until SWF takes it, as for 5xx, instead of dropping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_is_retried_until_it_is_allowed() {
    refused_answers_are_retried(
        "operation_not_permitted",
        "perm-answer",
        "swf:RespondActivityTask",
    )
    .await;
}

/// Credentials SWF will not take (an expired session token, until the chain refreshes it)
/// refuse the answer, not the result: the host retries and the result arrives, as for 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_refused_for_expired_credentials_is_retried() {
    refused_answers_are_retried(
        "expired_token",
        "expired-answer",
        "credentials refused: ExpiredTokenException",
    )
    .await;
}

/// With no AWS credentials anywhere in the standard chain, the host says so, listing what
/// it tried, instead of calling it an unreachable endpoint; it keeps retrying, since an
/// instance role or a credentials file may appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named_not_called_an_outage() {
    // Not loopback, so no local dummy keys; nothing is sent without credentials anyway.
    let config = HostConfig::new(
        "http://swf.invalid:8700",
        "nocreds",
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    let path = config.write();
    let home = config.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = config.dir.join("nocreds.log");
    let child = KillOnDrop(
        std::process::Command::new(bin())
            .args(["run", "--config", path.to_str().unwrap()])
            .env_clear()
            .env("HOME", &home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let line = wait_until("the poll error", MINUTE, || async {
        logs()
            .lines()
            .find(|l| l.contains("PollForActivityTask failed"))
            .map(str::to_string)
    })
    .await;
    assert!(line.contains("found no credentials"), "{line}");
    assert!(
        line.contains("Environment") && line.contains("Ec2InstanceMetadata"),
        "{line}"
    );
    assert!(!line.contains("cannot be reached"), "{line}");
    drop(child);
    remove_temp_dirs();
}

/// With no region anywhere, only a loopback endpoint (swf-local, moto) is signed for a
/// default one: any other endpoint URL (a VPC endpoint of SWF) refuses a signature for
/// the wrong region, so the host says what is missing and exits instead of retrying
/// refused credentials for ever.
#[test]
fn no_region_for_an_endpoint_that_is_not_local_is_an_error() {
    let config = HostConfig::new(
        "https://vpce-0123.swf.eu-west-1.vpce.amazonaws.com",
        "noregion",
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    let path = config.write();
    let without = |key: &str| {
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(key))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(kept, text, "the config sets {key}");
        std::fs::write(&path, kept).unwrap();
    };
    without("region");
    let home = config.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // `swasm run` with keys but no region anywhere, and `env` besides.
    let run = |env: &[(&str, &str)]| {
        run_within(
            std::process::Command::new(bin())
                .args(["run", "--config", path.to_str().unwrap()])
                .env_clear()
                .env("HOME", &home)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .envs(env.iter().copied()),
            MINUTE,
        )
    };
    let (status, _, err) = run(&[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no AWS region"), "{err}");
    assert!(err.contains("is not a local one"), "{err}");

    // AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true drops the environment's endpoint URL, as
    // the SDKs do: no endpoint URL and no region is the plain error, not a local run.
    without("endpoint_url");
    let (status, _, err) = run(&[
        ("AWS_ENDPOINT_URL_SWF", "http://127.0.0.1:9"),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no AWS region"), "{err}");
    assert!(!err.contains("not a local one"), "{err}");
    remove_temp_dirs();
}

/// SIGTERM with 20 tasks in flight: the short ones complete, the long ones are answered
/// swasm.Shutdown after the grace period, with their latest heartbeat details, and the
/// process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_everything_in_flight() {
    let scenario = Scenario::start("sigterm", &[("countdown@1", None)]).await;
    let swf = &scenario.swf;
    let mut tl = TaskListSpec::new("main", &["countdown@1.wasm"]);
    tl.max_concurrent = 20;
    let mut config = scenario.host_config(vec![tl]);
    config.shutdown_grace_s = 4;
    let mut host = Host::start(&config.write(), &[]);

    let mut acts = Vec::new();
    for i in 0..10 {
        acts.push(Activity::new(
            &format!("short{i}"),
            "countdown@1",
            "main",
            Some(r#"{"steps":10,"step_ms":100}"#),
        ));
        acts.push(Activity::new(
            &format!("long{i}"),
            "countdown@1",
            "main",
            Some(r#"{"steps":1000,"step_ms":100}"#),
        ));
    }
    swf.start("w-sigterm", &acts, false).await.unwrap();
    wait_until("20 tasks to start", MINUTE, || async {
        let h = swf.history("w-sigterm").await.ok()?;
        (h.iter()
            .filter(|e| e.event_type == aws_sdk_swf::types::EventType::ActivityTaskStarted)
            .count()
            == 20)
            .then_some(())
    })
    .await;
    host.signal("TERM");
    let status = host
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the host should exit after the grace period");
    assert!(status.success(), "exit status {status:?}\n{}", host.logs());

    let closed = swf.wait_closed("w-sigterm", 20, MINUTE).await;
    for i in 0..10 {
        assert!(
            matches!(closed[&format!("short{i}")][..], [Closed::Completed(_)]),
            "{closed:?}"
        );
        match &closed[&format!("long{i}")][..] {
            // With the countdown's latest progress, its checkpoint.
            [Closed::Failed { reason, details }] => {
                assert_eq!(reason, "swasm.Shutdown");
                assert!(
                    details.starts_with("{\"step\":") && details.ends_with(",\"of\":1000}"),
                    "long{i}: {details}"
                );
            }
            other => panic!("long{i}: {other:?}"),
        }
    }
    assert_no_timeouts(swf, "w-sigterm").await;
}

/// SIGHUP (the terminal `swasm run` ran in closed) drains like SIGTERM: the task in flight
/// is answered and the process exits 0. So does a SIGTERM delivered twice at once, as
/// `timeout` sends it (to the process, then to its process group): one stop, not the
/// operator's "exit now" that a later second signal is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_or_a_stop_sent_twice_at_once_drains() {
    let scenario = Scenario::start("hangup", &[("countdown@1", None)]).await;
    let swf = &scenario.swf;
    for (round, (signal, times)) in [("-HUP", 1), ("-TERM", 2)].into_iter().enumerate() {
        let mut config =
            scenario.host_config(vec![TaskListSpec::new("main", &["countdown@1.wasm"])]);
        config.shutdown_grace_s = 30;
        let mut host = Host::start(&config.write(), &[]);
        let wf = format!("w-hangup-{round}");
        let act = Activity::new(
            &format!("count{round}"),
            "countdown@1",
            "main",
            Some(r#"{"steps":10,"step_ms":100}"#),
        );
        swf.start(&wf, std::slice::from_ref(&act), false)
            .await
            .unwrap();
        wait_until("the task to start", MINUTE, || async {
            let h = swf.history(&wf).await.ok()?;
            h.iter()
                .any(|e| e.event_type == aws_sdk_swf::types::EventType::ActivityTaskStarted)
                .then_some(())
        })
        .await;
        // One `kill` process, so both signals leave within microseconds, as `timeout`'s do.
        let pid = host.pid().to_string();
        let args: Vec<&str> = std::iter::once(signal)
            .chain(std::iter::repeat_n(pid.as_str(), times))
            .collect();
        assert!(
            std::process::Command::new("kill")
                .args(&args)
                .status()
                .unwrap()
                .success()
        );
        let status = host
            .wait_exit(Duration::from_secs(30))
            .await
            .expect("the host should exit once the task is answered");
        assert!(
            status.success(),
            "{args:?}: exit status {status:?}\n{}",
            host.logs()
        );
        let closed = swf.wait_closed(&wf, 1, MINUTE).await;
        assert!(
            matches!(closed[&act.id][..], [Closed::Completed(_)]),
            "{args:?}: {closed:?}\n{}",
            host.logs()
        );
    }
}

/// A task that arrives after the grace period, on a poll that was in flight at SIGTERM, runs
/// with a grace period of its own: the host has to wait for that poll anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_polled_during_shutdown_runs_with_its_own_grace() {
    // Polls are held long enough for the grace period to pass while one is in flight.
    let scenario = Scenario::start_with(
        &["--listen", "127.0.0.1:0", "--poll-timeout-ms", "30000"],
        "late",
        &[("countdown@1", None)],
    )
    .await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let mut tl = TaskListSpec::new("main", &["countdown@1.wasm"]);
    tl.pollers = 1;
    let mut config = scenario.host_config(vec![tl]);
    config.shutdown_grace_s = 2;
    let mut host = Host::start(&config.write(), &[]);
    // A task running at the signal: it is interrupted when the grace period since the
    // signal is over, which is how the test sees that moment.
    let running = Activity::new(
        "running",
        "countdown@1",
        "main",
        Some(r#"{"steps":600,"step_ms":100}"#),
    );
    swf.start("w-running", &[running], false).await.unwrap();
    // The one poller took it and sent its next poll, which is held.
    wait_until("the host's poll after the running task", MINUTE, || async {
        (swf_local.calls("PollForActivityTask").await >= 2).then_some(())
    })
    .await;
    host.signal("TERM");
    wait_until("the running task's grace to end", MINUTE, || async {
        host.logs()
            .contains("shutdown grace period over: interrupting the task")
            .then_some(())
    })
    .await;
    // The grace since the signal is over: schedule the task the held poll brings.
    let act = Activity::new(
        "late",
        "countdown@1",
        "main",
        Some(r#"{"steps":3,"step_ms":100}"#),
    );
    swf.start("w-late", &[act], false).await.unwrap();
    let status = host
        .wait_exit(MINUTE)
        .await
        .expect("the host should exit once the poll and its task are done");
    assert!(status.success(), "exit status {status:?}\n{}", host.logs());
    let closed = swf.wait_closed("w-late", 1, MINUTE).await;
    assert_eq!(
        closed["late"],
        vec![Closed::Completed(Some(r#"{"done":3}"#.into()))],
        "{}",
        host.logs()
    );
    let closed = swf.wait_closed("w-running", 1, MINUTE).await;
    assert!(
        matches!(&closed["running"][..], [Closed::Failed { reason, .. }] if reason == "swasm.Shutdown"),
        "{closed:?}"
    );
    assert_eq!(
        host.logs().matches("interrupting").count(),
        1,
        "only the task running at the signal should have been interrupted: {}",
        host.logs()
    );
}

/// Two hosts, 2,000 tasks (one in ten a 1.5 s countdown), one host SIGKILLed half-way while
/// it runs countdowns, then restarted: every task completes exactly once (the killed host's
/// in-flight tasks time out and the decider reschedules them), none is answered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sigkill_and_restart_exactly_once() {
    use aws_sdk_swf::types::{EventType, HistoryEvent};
    let scenario = Scenario::start("kill", &[("echo@1", None), ("countdown@1", None)]).await;
    let swf = &scenario.swf;
    let mut tl = TaskListSpec::new("main", &["echo@1.wasm", "countdown@1.wasm"]);
    tl.max_concurrent = 20;
    tl.pollers = 4;
    let config_a = scenario.host_config(vec![tl.clone()]).write();
    let config_b = scenario.host_config(vec![tl]).write();
    let mut host_a = Host::start(&config_a, &[]);
    let _host_b = Host::start(&config_b, &[]);
    // The host's default identity is `hostname:pid`.
    let identity_a = format!(":{}", host_a.pid());

    const WORKFLOWS: usize = 20;
    const PER: usize = 100;
    const COUNTDOWN: &str = r#"{"steps":15,"step_ms":100}"#;
    let mut all = Vec::new();
    for w in 0..WORKFLOWS {
        let acts: Vec<_> = (0..PER)
            .map(|i| {
                let mut a = if i % 10 == 0 {
                    Activity::new(&format!("t{i}"), "countdown@1", "main", Some(COUNTDOWN))
                } else {
                    Activity::new(
                        &format!("t{i}"),
                        "echo@1",
                        "main",
                        Some(&format!("w{w}-t{i}")),
                    )
                };
                a.start_to_close = "5".into();
                a
            })
            .collect();
        swf.start(&format!("w-kill-{w}"), &acts, true)
            .await
            .unwrap();
        all.push(acts);
    }
    let expected = |a: &Activity| {
        if a.name == "countdown" {
            Some(r#"{"done":15}"#.to_string())
        } else {
            a.input.clone()
        }
    };
    // Scheduled event ids of the attempts host A started and that have not closed yet.
    let running_on_a = |history: &[HistoryEvent]| {
        let mut open = std::collections::BTreeSet::new();
        for e in history {
            if let Some(a) = &e.activity_task_started_event_attributes
                && a.identity
                    .as_deref()
                    .is_some_and(|i| i.ends_with(&identity_a))
            {
                open.insert(a.scheduled_event_id);
            }
            let closed = [
                e.activity_task_completed_event_attributes
                    .as_ref()
                    .map(|a| a.scheduled_event_id),
                e.activity_task_failed_event_attributes
                    .as_ref()
                    .map(|a| a.scheduled_event_id),
                e.activity_task_timed_out_event_attributes
                    .as_ref()
                    .map(|a| a.scheduled_event_id),
                e.activity_task_canceled_event_attributes
                    .as_ref()
                    .map(|a| a.scheduled_event_id),
            ];
            for id in closed.into_iter().flatten() {
                open.remove(&id);
            }
        }
        open.len()
    };
    wait_until(
        "half the tasks to complete with host A running some",
        3 * MINUTE,
        || async {
            let (mut completed, mut on_a) = (0, 0);
            for w in 0..WORKFLOWS {
                let history = swf.history(&format!("w-kill-{w}")).await.ok()?;
                completed += closed_activities(&history)
                    .values()
                    .filter(|c| matches!(c.last(), Some(Closed::Completed(_))))
                    .count();
                on_a += running_on_a(&history);
            }
            (completed >= WORKFLOWS * PER / 2 && on_a > 0).then_some(())
        },
    )
    .await;
    host_a.child.kill().unwrap();
    host_a.child.wait().unwrap();
    let _host_a2 = Host::start(&config_a, &[]);

    let mut killed_in_flight = 0;
    for (w, acts) in all.iter().enumerate() {
        let wf = format!("w-kill-{w}");
        let closed = swf.wait_closed(&wf, PER, 3 * MINUTE).await;
        for a in acts {
            let c = &closed[&a.id];
            let completions = c
                .iter()
                .filter(|c| matches!(c, Closed::Completed(_)))
                .count();
            assert_eq!(completions, 1, "{wf}/{}: {c:?}", a.id);
            assert_eq!(
                c.last(),
                Some(&Closed::Completed(expected(a))),
                "{wf}/{}: {c:?}",
                a.id
            );
            assert!(
                c.iter()
                    .all(|c| matches!(c, Closed::Completed(_) | Closed::TimedOut(_))),
                "{wf}/{}: {c:?}",
                a.id
            );
        }
        // Attempts host A had started and never answered: they timed out.
        let history = swf.history(&wf).await.unwrap();
        let started_by_a: std::collections::BTreeSet<i64> = history
            .iter()
            .filter_map(|e| e.activity_task_started_event_attributes.as_ref())
            .filter(|a| {
                a.identity
                    .as_deref()
                    .is_some_and(|i| i.ends_with(&identity_a))
            })
            .map(|a| a.scheduled_event_id)
            .collect();
        killed_in_flight += history
            .iter()
            .filter(|e| e.event_type == EventType::ActivityTaskTimedOut)
            .filter_map(|e| e.activity_task_timed_out_event_attributes.as_ref())
            .filter(|a| started_by_a.contains(&a.scheduled_event_id))
            .count();
    }
    assert!(
        killed_in_flight > 0,
        "no task was in flight on the killed host: the kill tested nothing"
    );
}

/// The endpoint restarts mid-run (in-process swf-local stopped and started again on the same
/// port with its state): the host rides it out and every task completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_restart_mid_run() {
    use swf_local::{Options, Server};
    let opts = || Options {
        poll_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), opts())
        .await
        .unwrap();
    let (addr, url, state) = (server.local_addr(), server.url(), server.state());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));

    let swf = Swf::new(&url, "restart").await;
    swf.setup(&[("echo@1", None), ("countdown@1", None)])
        .await
        .unwrap();
    let _decider = Decider::start(&swf);
    let config = HostConfig::new(
        &url,
        "restart",
        vec![TaskListSpec::new(
            "main",
            &["echo@1.wasm", "countdown@1.wasm"],
        )],
    );
    let host = Host::start(&config.write(), &[]);

    let mut acts: Vec<_> = (0..10)
        .map(|i| {
            let mut a = Activity::new(
                &format!("c{i}"),
                "countdown@1",
                "main",
                Some(r#"{"steps":20,"step_ms":100}"#),
            );
            a.start_to_close = "10".into();
            a
        })
        .collect();
    acts.extend(echoes(10, "e"));
    swf.start("w-restart", &acts, true).await.unwrap();
    wait_until("the countdowns to run", MINUTE, || async {
        (swf.closed("w-restart").await.ok()?.len() >= 5).then_some(())
    })
    .await;
    stop_tx.send(()).unwrap();
    first.await.unwrap().unwrap();
    // Down for a moment: polls, heartbeats and responses fail meanwhile.
    wait_until("the host to notice", MINUTE, || async {
        host.logs()
            .contains("PollForActivityTask failed")
            .then_some(())
    })
    .await;
    let server = Server::bind_with_state(addr, opts(), state).await.unwrap();
    tokio::spawn(server.run(std::future::pending()));

    let closed = swf.wait_closed("w-restart", acts.len(), 2 * MINUTE).await;
    for a in &acts {
        let c = &closed[&a.id];
        assert_eq!(
            c.iter()
                .filter(|c| matches!(c, Closed::Completed(_)))
                .count(),
            1,
            "{}: {c:?}",
            a.id
        );
        assert!(
            matches!(c.last(), Some(Closed::Completed(_))),
            "{}: {c:?}",
            a.id
        );
    }
    assert_no_timeouts(&swf, "w-restart").await;
    // No LocalSwf here to remove the host's temp dir when the test passes.
    drop(host);
    remove_temp_dirs();
}
