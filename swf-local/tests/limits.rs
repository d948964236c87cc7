//! SWF's limits: the values SWF refuses (run, activity and decision task time over one
//! year, retention over 90 days, request size) and the quotas it counts (types per domain, pollers per task list,
//! domains, open executions per domain, events per history).

mod common;

use aws_sdk_swf::types::*;
use common::*;

const ONE_YEAR: &str = "31536000";
const OVER_ONE_YEAR: &str = "31536001";

fn continue_as_new(execution_timeout: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::ContinueAsNewWorkflowExecution)
        .continue_as_new_workflow_execution_decision_attributes(
            ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
                .execution_start_to_close_timeout(execution_timeout)
                .build(),
        )
        .build()
        .unwrap()
}

/// StartWorkflowExecution: "you cannot specify a value of NONE for this timeout; there is a
/// one-year max limit on the time that a workflow execution can run" (likewise the
/// registered default). ContinueAsNew's member says "You can use NONE", so only the one-year
/// limit applies there.
#[tokio::test]
async fn execution_start_to_close_timeout_is_at_most_one_year_and_not_none() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    for bad in ["NONE", OVER_ONE_YEAR] {
        let err = start_workflow(c, "d", "w")
            .execution_start_to_close_timeout(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{bad}: {err:?}");
        assert!(
            message(&err).contains("executionStartToCloseTimeout"),
            "{}",
            message(&err)
        );
        let err = register_workflow(c, "d", &format!("wf-{bad}"))
            .default_execution_start_to_close_timeout(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{bad}: {err:?}");
        assert!(
            message(&err).contains("defaultExecutionStartToCloseTimeout"),
            "{}",
            message(&err)
        );
    }
    assert!(
        c.list_open_workflow_executions()
            .domain("d")
            .start_time_filter(
                ExecutionTimeFilter::builder()
                    .oldest_date(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap()
            )
            .send()
            .await
            .unwrap()
            .execution_infos
            .is_empty()
    );
    let exec =
        started(start_workflow(c, "d", "w").execution_start_to_close_timeout(ONE_YEAR)).await;

    // ContinueAsNew over one year: the batch is refused and the token stays usable.
    let dt = next_decision(c, "d").await;
    let err = decision_completed(c, &dt.task_token)
        .decisions(continue_as_new(OVER_ONE_YEAR))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    decide(c, &dt.task_token, vec![continue_as_new("NONE")]).await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionContinuedAsNew).await;
    let attrs = ev
        .workflow_execution_continued_as_new_event_attributes
        .unwrap();
    assert_eq!(
        attrs.execution_start_to_close_timeout.as_deref(),
        Some("NONE")
    );
}

/// RegisterDomain: "The maximum workflow execution retention period is 90 days" (a service
/// limit, so LimitExceededFault, which RegisterDomain lists).
#[tokio::test]
async fn retention_is_at_most_90_days() {
    let env = Env::start(300).await;
    let c = &env.client;
    for days in ["0", "NONE", "90"] {
        register_domain(c, &format!("ok-{days}"), days)
            .send()
            .await
            .unwrap();
    }
    for days in ["91", "99999999"] {
        let err = register_domain(c, &format!("bad-{days}"), days)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_limit_exceeded_fault(), "{days}: {err:?}");
        assert!(
            c.describe_domain()
                .name(format!("bad-{days}"))
                .send()
                .await
                .is_err()
        );
    }
}

/// SWF-LIMITS.md: "Activity types per domain: 10000" (SWF's quota counts workflow types the
/// same way): the next registration is a LimitExceededFault until a type is deleted.
#[tokio::test]
async fn at_most_10000_types_of_each_kind_per_domain() {
    use futures::StreamExt;
    let env = Env::start(300).await;
    // RegisterActivityType's rate quota (60 a second) would make this take minutes.
    env.quotas.set(swf_local::QuotaSet::none());
    let c = &env.client;
    register_domain(c, "d", "1").send().await.unwrap();
    for workflow in [false, true] {
        let names: Vec<String> = (0..10_000).map(|i| format!("t{i}")).collect();
        futures::stream::iter(names.iter())
            .map(|name| async move {
                if workflow {
                    register_workflow(c, "d", name)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                } else {
                    register_activity(c, "d", name)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}"))
                }
            })
            .buffer_unordered(16)
            .for_each(|r| async move { r.unwrap() })
            .await;
        let over = if workflow {
            register_workflow(c, "d", "one-more")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.into_service_error().is_limit_exceeded_fault())
        } else {
            register_activity(c, "d", "one-more")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.into_service_error().is_limit_exceeded_fault())
        };
        assert_eq!(over, Err(true), "workflow types: {workflow}");
    }
    // Deleting one (deprecated types count too) frees a place.
    deprecate_activity(c, "d", "t0").send().await.unwrap();
    let err = register_activity(c, "d", "one-more")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_limit_exceeded_fault(), "{err:?}");
    delete_activity(c, "d", "t0").send().await.unwrap();
    register_activity(c, "d", "one-more").send().await.unwrap();
}

/// SWF-LIMITS.md: one request is at most 1 MB. A bigger one is answered with an SWF error
/// body (ValidationException), whatever its size, and changes nothing.
#[tokio::test]
async fn requests_over_1_mb_get_an_swf_error() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let input = "x".repeat(32_768);
    let decisions = |n: usize| {
        (0..n)
            .map(|i| {
                schedule_with(
                    ScheduleActivityTaskDecisionAttributes::builder()
                        .activity_type(atype("act"))
                        .activity_id(format!("a{i}"))
                        .input(&input)
                        .build()
                        .unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    // 40 x 32 KB is over 1 MB; 80 x 32 KB is over 2 MB (where a plain-text 413 used to be).
    for n in [40, 80] {
        let err = decision_completed(c, &dt.task_token)
            .set_decisions(Some(decisions(n)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{n}: {err:?}");
        assert!(message(&err).contains("1 MB"), "{}", message(&err));
    }
    assert_eq!(pending_activities(c, "d").await, 0);
    // 30 x 32 KB is under 1 MB, and the token is still good.
    decide(c, &dt.task_token, decisions(30)).await;
    assert_eq!(pending_activities(c, "d").await, 30);
    assert!(execution_info(c, "d", &exec).await.close_status.is_none());
}

/// Waits (up to 10 s) until `cond` holds; the server's state changes on its own tasks.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// SWF-LIMITS.md: "Pollers per task list: 1000"; PollForActivityTask and PollForDecisionTask
/// list LimitExceededFault. A poll beyond the limit held on one task list is refused; a poll
/// that returns, or whose client goes away, frees its place. (The limit is lowered to 2 here.)
#[tokio::test]
async fn at_most_1000_pollers_per_task_list() {
    use futures::future::select_all;
    use std::time::Duration;
    assert_eq!(
        swf_local::Options::default().max_pollers_per_task_list,
        1000
    );
    let opts = swf_local::Options {
        poll_timeout: Duration::from_secs(30),
        max_pollers_per_task_list: 2,
        ..swf_local::Options::default()
    };
    let env = Env::start_with(
        "127.0.0.1:0".parse().unwrap(),
        opts,
        swf_local::State::new(),
    )
    .await;
    let c = env.client.clone();
    setup(&c, "d", ["60", "120", "60", "30"]).await;
    let held = |list: &str| env.state.pollers("d", list);
    let spawn_activity_poll = || {
        let c = c.clone();
        tokio::spawn(async move { poll_activity(&c, "d", ACTIVITY_TL).send().await })
    };
    let spawn_decision_poll = || {
        let c = c.clone();
        tokio::spawn(async move { poll_decision(&c, "d", TL).send().await })
    };
    let mut activity_polls = vec![spawn_activity_poll(), spawn_activity_poll()];
    let decision_polls = vec![spawn_decision_poll(), spawn_decision_poll()];
    wait_until("2 activity and 2 decision polls held", || {
        held(ACTIVITY_TL) == (2, 0) && held(TL) == (0, 2)
    })
    .await;

    // The third poll of either kind is refused at once and holds nothing.
    let err = poll_activity(&c, "d", ACTIVITY_TL)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_limit_exceeded_fault(), "{err:?}");
    let err = poll_decision(&c, "d", TL)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_limit_exceeded_fault(), "{err:?}");
    assert_eq!((held(ACTIVITY_TL), held(TL)), ((2, 0), (0, 2)));

    // A poll that returns with a task frees its place.
    start_wf(&c, "d", "w").await;
    let (returned, _, mut decision_polls) = select_all(decision_polls).await;
    let dt = returned.unwrap().unwrap();
    assert!(!dt.task_token.is_empty());
    wait_until("the returned decision poll let go", || held(TL) == (0, 1)).await;
    decision_polls.push(spawn_decision_poll());
    wait_until("a new decision poll held", || held(TL) == (0, 2)).await;

    // A poll whose client goes away (the SDK call dropped: its connection closes) frees
    // its place, and the task goes to a live poller.
    activity_polls.remove(0).abort();
    wait_until("the dropped activity poll let go", || {
        held(ACTIVITY_TL) == (1, 0)
    })
    .await;
    activity_polls.push(spawn_activity_poll());
    wait_until("a new activity poll held", || held(ACTIVITY_TL) == (2, 0)).await;
    decide(&c, &dt.task_token, vec![schedule("a", "act")]).await;
    let (got, _, _rest) = select_all(activity_polls).await;
    assert_eq!(got.unwrap().unwrap().activity_id, "a");
    wait_until("the returned activity poll let go", || {
        held(ACTIVITY_TL) == (1, 0)
    })
    .await;
}

/// ScheduleActivityTask of `act@1` as `id` with `timeouts` as [scheduleToStart,
/// scheduleToClose, startToClose, heartbeat] (None: the type's default).
fn schedule_timeouts(id: &str, timeouts: [Option<&str>; 4]) -> Decision {
    let [to_start, to_close, start_to_close, heartbeat] = timeouts.map(|t| t.map(str::to_owned));
    schedule_with(
        ScheduleActivityTaskDecisionAttributes::builder()
            .activity_type(atype("act"))
            .activity_id(id)
            .set_schedule_to_start_timeout(to_start)
            .set_schedule_to_close_timeout(to_close)
            .set_start_to_close_timeout(start_to_close)
            .set_heartbeat_timeout(heartbeat)
            .build()
            .unwrap(),
    )
}

/// SWF-LIMITS.md: "Maximum task run time: 1 year". Each timeout of an activity task (the
/// ScheduleActivityTask members and the RegisterActivityType defaults) is refused over one
/// year, like Start's executionStartToCloseTimeout (ValidationException naming the member);
/// NONE stays allowed, as each of these members documents ("You can use NONE"). A decision
/// batch holding such a decision is refused as a whole and its token stays usable.
#[tokio::test]
async fn activity_task_timeouts_are_at_most_one_year() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let defaults = [
        "defaultTaskScheduleToStartTimeout",
        "defaultTaskScheduleToCloseTimeout",
        "defaultTaskStartToCloseTimeout",
        "defaultTaskHeartbeatTimeout",
    ];
    for (i, member) in defaults.into_iter().enumerate() {
        let req = register_activity(c, "d", &format!("long{i}"));
        let req = match i {
            0 => req.default_task_schedule_to_start_timeout(OVER_ONE_YEAR),
            1 => req.default_task_schedule_to_close_timeout(OVER_ONE_YEAR),
            2 => req.default_task_start_to_close_timeout(OVER_ONE_YEAR),
            _ => req.default_task_heartbeat_timeout(OVER_ONE_YEAR),
        };
        let err = req.send().await.unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{member}: {err:?}");
        assert!(message(&err).contains(member), "{}", message(&err));
    }
    for (name, value) in [("year", ONE_YEAR), ("unlimited", "NONE")] {
        register_activity(c, "d", name)
            .default_task_schedule_to_start_timeout(value)
            .default_task_schedule_to_close_timeout(value)
            .default_task_start_to_close_timeout(value)
            .default_task_heartbeat_timeout(value)
            .send()
            .await
            .unwrap();
    }

    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let members = [
        "scheduleToStartTimeout",
        "scheduleToCloseTimeout",
        "startToCloseTimeout",
        "heartbeatTimeout",
    ];
    for (i, member) in members.into_iter().enumerate() {
        let mut timeouts = [None; 4];
        timeouts[i] = Some(OVER_ONE_YEAR);
        let err = decision_completed(c, &dt.task_token)
            .decisions(schedule("ok", "act"))
            .decisions(schedule_timeouts("long", timeouts))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{member}: {err:?}");
        assert!(message(&err).contains(member), "{}", message(&err));
    }
    let types = event_types(c, "d", &exec).await;
    assert!(
        !types
            .iter()
            .any(|t| t == "DecisionTaskCompleted" || t == "ActivityTaskScheduled"),
        "{types:?}"
    );

    decide(
        c,
        &dt.task_token,
        vec![
            schedule_timeouts("year", [Some(ONE_YEAR); 4]),
            schedule_timeouts("unlimited", [Some("NONE"); 4]),
        ],
    )
    .await;
    let scheduled: Vec<_> = history(c, "d", &exec)
        .await
        .into_iter()
        .filter_map(|e| e.activity_task_scheduled_event_attributes)
        .map(|a| {
            (
                a.activity_id,
                [
                    a.schedule_to_start_timeout,
                    a.schedule_to_close_timeout,
                    a.start_to_close_timeout,
                    a.heartbeat_timeout,
                ],
            )
        })
        .collect();
    let all = |v: &str| {
        [
            Some(v.to_owned()),
            Some(v.to_owned()),
            Some(v.to_owned()),
            Some(v.to_owned()),
        ]
    };
    assert_eq!(
        scheduled,
        vec![
            ("year".to_owned(), all(ONE_YEAR)),
            ("unlimited".to_owned(), all("NONE")),
        ]
    );
}

/// A decision task's timeout is at most one year as well ("Timeout values ... can be set to
/// any number of seconds up to a year (31536000 seconds) - the maximum execution limit for
/// any workflow or activity"): `taskStartToCloseTimeout` of StartWorkflowExecution,
/// ContinueAsNew and StartChildWorkflowExecution, and RegisterWorkflowType's
/// `defaultTaskStartToCloseTimeout`, each refused over one year with a ValidationException
/// naming it; NONE stays allowed, as each of these members documents ("You can use NONE").
#[tokio::test]
async fn decision_task_timeouts_are_at_most_one_year() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let err = register_workflow(c, "d", "long")
        .default_task_start_to_close_timeout(OVER_ONE_YEAR)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert_eq!(
        message(&err),
        "1 validation error detected: Value '31536001' at 'defaultTaskStartToCloseTimeout' failed to satisfy constraint: Member must be at most 31536000 seconds: a decision task runs at most one year"
    );
    for (name, value) in [("year", ONE_YEAR), ("unlimited", "NONE")] {
        register_workflow(c, "d", name)
            .default_task_start_to_close_timeout(value)
            .send()
            .await
            .unwrap();
    }
    let err = start_workflow(c, "d", "w")
        .task_start_to_close_timeout(OVER_ONE_YEAR)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert!(
        message(&err).contains("at 'taskStartToCloseTimeout'"),
        "{}",
        message(&err)
    );
    let exec = started(start_workflow(c, "d", "w").task_start_to_close_timeout(ONE_YEAR)).await;

    let dt = next_decision(c, "d").await;
    let continue_as_new = |timeout: &str| {
        Decision::builder()
            .decision_type(DecisionType::ContinueAsNewWorkflowExecution)
            .continue_as_new_workflow_execution_decision_attributes(
                ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
                    .task_start_to_close_timeout(timeout)
                    .build(),
            )
            .build()
            .unwrap()
    };
    let child = start_child_with(
        StartChildWorkflowExecutionDecisionAttributes::builder()
            .workflow_type(wtype("wf"))
            .workflow_id("child")
            .task_start_to_close_timeout(OVER_ONE_YEAR)
            .build()
            .unwrap(),
    );
    for (bad, member) in [
        (
            continue_as_new(OVER_ONE_YEAR),
            "decisions.1.member.continueAsNewWorkflowExecutionDecisionAttributes.taskStartToCloseTimeout",
        ),
        (
            child,
            "decisions.1.member.startChildWorkflowExecutionDecisionAttributes.taskStartToCloseTimeout",
        ),
    ] {
        let err = decision_completed(c, &dt.task_token)
            .decisions(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{err:?}");
        assert!(
            message(&err).contains(&format!("at '{member}'"))
                && message(&err).contains("at most 31536000 seconds"),
            "{}",
            message(&err)
        );
    }
    decide(c, &dt.task_token, vec![continue_as_new("NONE")]).await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionContinuedAsNew).await;
    let attrs = ev
        .workflow_execution_continued_as_new_event_attributes
        .unwrap();
    assert_eq!(attrs.task_start_to_close_timeout.as_deref(), Some("NONE"));
}

/// SWF's hard limit of 25,000 events per history ("a hard quota"). The decision batch that
/// fills the history stops there: the decisions left are not applied, and the run is
/// terminated in the same call (which still succeeds: its DecisionTaskCompleted was
/// recorded), with WorkflowExecutionTerminated (cause EVENT_LIMIT_EXCEEDED) as the
/// 25,000th and last event. What anyone sends the run afterwards finds it closed.
#[tokio::test]
async fn a_decision_batch_that_fills_the_history_stops_and_terminates_its_run() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let markers: Vec<Decision> = (0..1000).map(|_| marker("m", None)).collect();
    // Each round: a decision task recording 1,000 markers, then a signal for the next one:
    // 2 + 24 x 1,004 = 24,098 events.
    for _ in 0..24 {
        let dt = next_decision(c, "d").await;
        decide(c, &dt.task_token, markers.clone()).await;
        signal(c, "d", "w", "more").send().await.unwrap();
    }
    // The 25th batch: DecisionTaskStarted and DecisionTaskCompleted are events 24,099 and
    // 24,100, so 899 markers fit before the termination.
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, markers.clone()).await;
    let err = signal(c, "d", "w", "more")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");

    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = history_of(c, "d", &exec)
            .set_next_page_token(token)
            .send()
            .await
            .unwrap();
        events.extend(page.events);
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(events.len(), 25_000);
    assert_eq!(
        events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        (1..=25_000).collect::<Vec<_>>()
    );
    let markers = events
        .iter()
        .filter(|e| e.event_type == EventType::MarkerRecorded)
        .count();
    assert_eq!(markers, 24 * 1000 + 899);
    assert_eq!(events[24_998].event_type, EventType::MarkerRecorded);
    let last = &events[24_999];
    assert_eq!(last.event_type, EventType::WorkflowExecutionTerminated);
    let attrs = last
        .workflow_execution_terminated_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(
        attrs.cause,
        Some(WorkflowExecutionTerminatedCause::EventLimitExceeded)
    );
    let info = execution_info(c, "d", &exec).await;
    assert_eq!(info.close_status, Some(CloseStatus::Terminated));
}

/// An event from elsewhere than a decision (here a signal) that fills a history is its last
/// but one: the run records nothing more (not even the decision task the signal asks for)
/// and is terminated (cause EVENT_LIMIT_EXCEEDED) before the call returns, so its parent
/// learns of it at once: a held poll of the parent's decider returns the parent's decision
/// task. (The limit is lowered to 20 events here.)
#[tokio::test]
async fn an_event_that_fills_the_history_terminates_the_run_at_once() {
    let env = Env::start(30_000).await;
    let c = env.client.clone();
    setup(&c, "d", ["60", "120", "60", "30"]).await;
    env.state.set_max_history_events(20);
    // The parent: 1 started, 2 scheduled, 3 started, 4 completed, 5 initiated, 6 child
    // started, 7 scheduled, 8 started, 9 completed.
    let parent = start_and_decide(&c, "d", "parent", vec![start_child("child")]).await;
    let dt = next_decision(&c, "d").await;
    decide(&c, &dt.task_token, vec![]).await;
    // The child: 1 started, 2 scheduled, 3 started, 4 completed, 5..=18 markers.
    let child = next_decision_on(&c, "d", "child").await;
    let markers = (0..14).map(|i| marker(&format!("m{i}"), None)).collect();
    decide(&c, &child.task_token, markers).await;

    let held = {
        let c = c.clone();
        tokio::spawn(async move { poll_decision(&c, "d", TL).send().await.unwrap() })
    };
    wait_until("the parent's decider poll held", || {
        env.state.pollers("d", TL) == (0, 1)
    })
    .await;
    signal(&c, "d", "child", "last").send().await.unwrap();
    // Nothing else touches the state before the held poll returns: the signal's own call
    // terminated the child and told the parent.
    let task = tokio::time::timeout(std::time::Duration::from_secs(10), held)
        .await
        .expect("the held poll returns at once")
        .unwrap();
    assert_eq!(task.workflow_execution.as_ref(), Some(&parent));
    assert!(
        task.events
            .iter()
            .any(|e| e.event_type == EventType::ChildWorkflowExecutionTerminated),
        "{:?}",
        task.events
    );

    let child_exec = child.workflow_execution.unwrap();
    let types = event_types(&c, "d", &child_exec).await;
    assert_eq!(types.len(), 20, "{types:?}");
    assert_eq!(
        &types[17..],
        [
            "MarkerRecorded",
            "WorkflowExecutionSignaled",
            "WorkflowExecutionTerminated"
        ]
    );
    let last = history(&c, "d", &child_exec).await.pop().unwrap();
    assert_eq!(
        last.workflow_execution_terminated_event_attributes
            .unwrap()
            .cause,
        Some(WorkflowExecutionTerminatedCause::EventLimitExceeded)
    );
    let err = signal(&c, "d", "child", "more")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
}

/// SWF's quota of 100 domains per account, deprecated ones included.
#[tokio::test]
async fn at_most_100_domains() {
    let env = Env::start(300).await;
    let c = &env.client;
    for i in 0..100 {
        register_domain(c, &format!("d{i}"), "1")
            .send()
            .await
            .unwrap();
    }
    c.deprecate_domain().name("d0").send().await.unwrap();
    let err = register_domain(c, "one-more", "1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_limit_exceeded_fault(), "{err:?}");
    let err = c
        .describe_domain()
        .name("one-more")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
}

/// SWF's quota of open executions per domain (100,000, lowered here): one more start is a
/// LimitExceededFault, one more child fails with OPEN_WORKFLOWS_LIMIT_EXCEEDED, and a run
/// that closes makes room.
#[tokio::test]
async fn open_executions_per_domain_are_limited() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    env.state.set_open_executions_limit(2);
    let parent = start_wf(c, "d", "w1").await;
    start_wf(c, "d", "w2").await;
    let err = start_workflow(c, "d", "w3")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_limit_exceeded_fault(), "{err:?}");

    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref().unwrap().workflow_id, "w1");
    decide(c, &dt.task_token, vec![start_child("child")]).await;
    let failed = wait_event(
        c,
        "d",
        &parent,
        EventType::StartChildWorkflowExecutionFailed,
    )
    .await;
    assert_eq!(
        failed
            .start_child_workflow_execution_failed_event_attributes
            .unwrap()
            .cause,
        StartChildWorkflowExecutionFailedCause::OpenWorkflowsLimitExceeded
    );

    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id("w2")
        .send()
        .await
        .unwrap();
    start_wf(c, "d", "w3").await;
}
