//! Every operation and decision through the real aws-sdk-swf client.

mod common;

use aws_sdk_swf::types::*;
use common::*;

#[tokio::test]
async fn domains_and_types_register_describe_list_deprecate_delete() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d1", ["60", "120", "60", "30"]).await;
    register_domain(c, "d2", "3")
        .description("second")
        .send()
        .await
        .unwrap();

    let err = register_domain(c, "d1", "1").send().await.unwrap_err();
    assert!(err.into_service_error().is_domain_already_exists_fault());

    let d = c.describe_domain().name("d2").send().await.unwrap();
    let info = d.domain_info.unwrap();
    assert_eq!(info.name, "d2");
    assert_eq!(info.status, RegistrationStatus::Registered);
    assert_eq!(info.description.as_deref(), Some("second"));
    assert_eq!(
        d.configuration
            .unwrap()
            .workflow_execution_retention_period_in_days,
        "3"
    );

    // Paging of ListDomains: one per page.
    let p1 = list_domains(c, RegistrationStatus::Registered)
        .maximum_page_size(1)
        .send()
        .await
        .unwrap();
    assert_eq!(p1.domain_infos.len(), 1);
    let token = p1.next_page_token.expect("a second page");
    let p2 = list_domains(c, RegistrationStatus::Registered)
        .maximum_page_size(1)
        .next_page_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(p2.domain_infos.len(), 1);
    assert!(p2.next_page_token.is_none());
    assert_ne!(p1.domain_infos[0].name, p2.domain_infos[0].name);

    c.deprecate_domain().name("d2").send().await.unwrap();
    let err = c.deprecate_domain().name("d2").send().await.unwrap_err();
    assert!(err.into_service_error().is_domain_deprecated_fault());
    let dep = list_domains(c, RegistrationStatus::Deprecated)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dep.domain_infos
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        vec!["d2"]
    );
    c.undeprecate_domain().name("d2").send().await.unwrap();
    let err = c.describe_domain().name("nope").send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    // Activity types.
    let err = register_activity(c, "d1", "act").send().await.unwrap_err();
    assert!(err.into_service_error().is_type_already_exists_fault());
    let at = describe_activity(c, "d1", "act").send().await.unwrap();
    let conf = at.configuration.unwrap();
    assert_eq!(conf.default_task_heartbeat_timeout.as_deref(), Some("30"));
    assert_eq!(conf.default_task_list.unwrap().name, ACTIVITY_TL);
    assert_eq!(at.type_info.unwrap().status, RegistrationStatus::Registered);
    register_activity(c, "d1", "other").send().await.unwrap();
    let list = c
        .list_activity_types()
        .domain("d1")
        .registration_status(RegistrationStatus::Registered)
        .send()
        .await
        .unwrap();
    assert_eq!(list.type_infos.len(), 2);
    let named = c
        .list_activity_types()
        .domain("d1")
        .name("other")
        .registration_status(RegistrationStatus::Registered)
        .send()
        .await
        .unwrap();
    assert_eq!(named.type_infos.len(), 1);
    // SWF: TypeNotDeprecatedFault, the fault the model lists for a type still registered.
    let err = delete_activity(c, "d1", "other").send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_type_not_deprecated_fault()),
        "{err:?}"
    );
    deprecate_activity(c, "d1", "other").send().await.unwrap();
    let err = deprecate_activity(c, "d1", "other")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_type_deprecated_fault());
    let info = describe_activity(c, "d1", "other")
        .send()
        .await
        .unwrap()
        .type_info
        .unwrap();
    assert_eq!(info.status, RegistrationStatus::Deprecated);
    assert!(info.deprecation_date.is_some());
    c.undeprecate_activity_type()
        .domain("d1")
        .activity_type(atype("other"))
        .send()
        .await
        .unwrap();
    deprecate_activity(c, "d1", "other").send().await.unwrap();
    delete_activity(c, "d1", "other").send().await.unwrap();
    let err = describe_activity(c, "d1", "other")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    // Workflow types.
    let wt = c
        .describe_workflow_type()
        .domain("d1")
        .workflow_type(wtype("wf"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wt.configuration.unwrap().default_child_policy,
        Some(ChildPolicy::Terminate)
    );
    let list = c
        .list_workflow_types()
        .domain("d1")
        .registration_status(RegistrationStatus::Registered)
        .send()
        .await
        .unwrap();
    assert_eq!(list.type_infos.len(), 1);
    deprecate_workflow(c, "d1", "wf").send().await.unwrap();
    let err = start_workflow(c, "d1", "w").send().await.unwrap_err();
    assert!(err.into_service_error().is_type_deprecated_fault());
    undeprecate_workflow(c, "d1", "wf").send().await.unwrap();
    let err = undeprecate_workflow(c, "d1", "wf")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_type_already_exists_fault());
    register_workflow(c, "d1", "bare").send().await.unwrap();
    let err = c
        .start_workflow_execution()
        .domain("d1")
        .workflow_id("w")
        .workflow_type(wtype("bare"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_default_undefined_fault());
    let err = c
        .delete_workflow_type()
        .domain("d1")
        .workflow_type(wtype("bare"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_type_not_deprecated_fault()),
        "{err:?}"
    );
    deprecate_workflow(c, "d1", "bare").send().await.unwrap();
    c.delete_workflow_type()
        .domain("d1")
        .workflow_type(wtype("bare"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn happy_path_workflow_with_every_activity_outcome() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "wf-1").await;
    let err = start_workflow(c, "d", "wf-1").send().await.unwrap_err();
    assert!(
        err.into_service_error()
            .is_workflow_execution_already_started_fault()
    );

    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref().unwrap().run_id, exec.run_id);
    assert_eq!(dt.workflow_type.as_ref().unwrap().name, "wf");
    assert_eq!(dt.previous_started_event_id, 0);
    let types: Vec<_> = dt.events.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(
        types,
        vec![
            EventType::WorkflowExecutionStarted,
            EventType::DecisionTaskScheduled,
            EventType::DecisionTaskStarted
        ]
    );
    assert_eq!(dt.started_event_id, 3);
    decide(c, &dt.task_token, schedules(["a1", "a2", "a3"])).await;

    assert_eq!(pending_activities(c, "d").await, 3);
    let t1 = next_activity(c, "d").await;
    let t2 = next_activity(c, "d").await;
    let t3 = next_activity(c, "d").await;
    assert_eq!(
        [
            t1.activity_id.as_str(),
            t2.activity_id.as_str(),
            t3.activity_id.as_str()
        ],
        ["a1", "a2", "a3"]
    );
    assert_eq!(t1.input.as_deref(), Some("in-a1"));
    assert_eq!(t1.activity_type.as_ref().unwrap().name, "act");
    assert_eq!(t1.workflow_execution.as_ref().unwrap().workflow_id, "wf-1");

    activity_completed(c, &t1.task_token)
        .result("r1")
        .send()
        .await
        .unwrap();
    activity_failed(c, &t2.task_token)
        .reason("bad")
        .details("why")
        .send()
        .await
        .unwrap();
    let hb = heartbeat(c, &t3.task_token)
        .details("50%")
        .send()
        .await
        .unwrap();
    assert!(!hb.cancel_requested);
    activity_completed(c, &t3.task_token)
        .result("r3")
        .send()
        .await
        .unwrap();

    // A closed task's token is unknown from now on.
    let err = activity_completed(c, &t1.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    let desc = describe_execution(c, "d", &exec).send().await.unwrap();
    assert_eq!(
        desc.execution_info.unwrap().execution_status,
        ExecutionStatus::Open
    );
    assert_eq!(desc.open_counts.unwrap().open_activity_tasks, 0);
    assert_eq!(
        desc.execution_configuration
            .unwrap()
            .task_list
            .unwrap()
            .name,
        TL
    );

    let dt = next_decision(c, "d").await;
    assert_eq!(dt.previous_started_event_id, 3);
    let completed = dt
        .events
        .iter()
        .find(|e| e.event_type == EventType::ActivityTaskCompleted)
        .unwrap();
    assert_eq!(
        completed
            .activity_task_completed_event_attributes
            .as_ref()
            .unwrap()
            .result
            .as_deref(),
        Some("r1")
    );
    let failed = dt
        .events
        .iter()
        .find(|e| e.event_type == EventType::ActivityTaskFailed)
        .unwrap();
    assert_eq!(
        failed
            .activity_task_failed_event_attributes
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("bad")
    );
    decide(c, &dt.task_token, vec![complete_wf("done")]).await;
    let err = decision_completed(c, &dt.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    let types = event_types(c, "d", &exec).await;
    assert_eq!(
        types.first().map(String::as_str),
        Some("WorkflowExecutionStarted")
    );
    assert_eq!(
        types.last().map(String::as_str),
        Some("WorkflowExecutionCompleted")
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "ActivityTaskScheduled")
            .count(),
        3
    );
    assert_eq!(
        types.iter().filter(|t| *t == "ActivityTaskStarted").count(),
        3
    );

    let desc = describe_execution(c, "d", &exec).send().await.unwrap();
    let info = desc.execution_info.unwrap();
    assert_eq!(info.execution_status, ExecutionStatus::Closed);
    assert_eq!(info.close_status, Some(CloseStatus::Completed));

    let filter = ExecutionTimeFilter::builder()
        .oldest_date(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap();
    let open = c
        .list_open_workflow_executions()
        .domain("d")
        .start_time_filter(filter.clone())
        .send()
        .await
        .unwrap();
    assert!(open.execution_infos.is_empty());
    let closed = c
        .list_closed_workflow_executions()
        .domain("d")
        .start_time_filter(filter.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(closed.execution_infos.len(), 1);
    let by_status = c
        .list_closed_workflow_executions()
        .domain("d")
        .close_time_filter(filter.clone())
        .close_status_filter(
            CloseStatusFilter::builder()
                .status(CloseStatus::Failed)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(by_status.execution_infos.is_empty());
    let n = c
        .count_closed_workflow_executions()
        .domain("d")
        .start_time_filter(filter.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(n.count, 1);
    let n = c
        .count_open_workflow_executions()
        .domain("d")
        .start_time_filter(filter)
        .send()
        .await
        .unwrap();
    assert_eq!(n.count, 0);
    // The workflow id is free again.
    start_wf(c, "d", "wf-1").await;
}

#[tokio::test]
async fn signal_cancel_terminate_and_close_decisions() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;

    // Signal, then RequestCancelWorkflowExecution -> CancelWorkflowExecution.
    let exec = start_and_decide(c, "d", "sig", vec![]).await;
    signal(c, "d", "sig", "go")
        .input("payload")
        .send()
        .await
        .unwrap();
    let dt = next_decision(c, "d").await;
    let sig = dt
        .events
        .iter()
        .find(|e| e.event_type == EventType::WorkflowExecutionSignaled)
        .expect("signal event");
    let attrs = sig
        .workflow_execution_signaled_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(
        (attrs.signal_name.as_str(), attrs.input.as_deref()),
        ("go", Some("payload"))
    );
    decide(c, &dt.task_token, vec![]).await;
    c.request_cancel_workflow_execution()
        .domain("d")
        .workflow_id("sig")
        .run_id(&exec.run_id)
        .send()
        .await
        .unwrap();
    let dt = next_decision(c, "d").await;
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::WorkflowExecutionCancelRequested)
    );
    decide(c, &dt.task_token, vec![cancel_wf("bye")]).await;
    let info = execution_info(c, "d", &exec).await;
    assert_eq!(info.close_status, Some(CloseStatus::Canceled));
    assert!(info.cancel_requested);

    // FailWorkflowExecution.
    let exec = start_and_decide(c, "d", "fail", vec![fail_wf("r", "d")]).await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionFailed).await;
    assert_eq!(
        ev.workflow_execution_failed_event_attributes
            .unwrap()
            .reason
            .as_deref(),
        Some("r")
    );

    // Terminate: open tasks' tokens become unknown.
    let exec = start_and_decide(c, "d", "term", vec![schedule("x", "act")]).await;
    let task = next_activity(c, "d").await;
    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id("term")
        .reason("stop")
        .send()
        .await
        .unwrap();
    let err = heartbeat(c, &task.task_token).send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionTerminated).await;
    assert_eq!(
        ev.workflow_execution_terminated_event_attributes
            .unwrap()
            .reason
            .as_deref(),
        Some("stop")
    );
    let err = signal(c, "d", "term", "x").send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    // ContinueAsNew: a new run with the same workflow id.
    let can = Decision::builder()
        .decision_type(DecisionType::ContinueAsNewWorkflowExecution)
        .continue_as_new_workflow_execution_decision_attributes(
            ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
                .input("again")
                .build(),
        )
        .build()
        .unwrap();
    let exec = start_and_decide(c, "d", "can", vec![can]).await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionContinuedAsNew).await;
    let new_run = ev
        .workflow_execution_continued_as_new_event_attributes
        .unwrap()
        .new_execution_run_id;
    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref().unwrap().run_id, new_run);
    let started = dt.events[0]
        .workflow_execution_started_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(started.input.as_deref(), Some("again"));
    assert_eq!(
        started.continued_execution_run_id.as_deref(),
        Some(exec.run_id.as_str())
    );
    let info = execution_info(c, "d", &exec).await;
    assert_eq!(info.close_status, Some(CloseStatus::ContinuedAsNew));
    decide(c, &dt.task_token, vec![complete_wf("")]).await;
}

#[tokio::test]
async fn timers_markers_and_failed_decisions() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    register_activity(c, "d", "nodefaults")
        .send()
        .await
        .unwrap();
    register_activity(c, "d", "old").send().await.unwrap();
    deprecate_activity(c, "d", "old").send().await.unwrap();
    let exec = start_wf(c, "d", "t").await;
    let dt = next_decision(c, "d").await;
    let timer = |id: &str, secs: &str| {
        Decision::builder()
            .decision_type(DecisionType::StartTimer)
            .start_timer_decision_attributes(
                StartTimerDecisionAttributes::builder()
                    .timer_id(id)
                    .start_to_fire_timeout(secs)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let cancel_timer = |id: &str| {
        Decision::builder()
            .decision_type(DecisionType::CancelTimer)
            .cancel_timer_decision_attributes(
                CancelTimerDecisionAttributes::builder()
                    .timer_id(id)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let marker = marker("m", Some("md"));
    decide(
        c,
        &dt.task_token,
        vec![
            timer("fire", "1"),
            timer("long", "3600"),
            timer("long", "5"),
            cancel_timer("long"),
            cancel_timer("nope"),
            marker,
            schedule("a", "missing"),
            schedule("b", "nodefaults"),
            schedule("c", "old"),
            schedule("d1", "act"),
            schedule("d1", "act"),
            cancel_activity("unknown"),
        ],
    )
    .await;
    let h = history(c, "d", &exec).await;
    let find = |ty: EventType| h.iter().filter(move |e| e.event_type == ty);
    assert_eq!(find(EventType::TimerStarted).count(), 2);
    let failed: Vec<_> = find(EventType::StartTimerFailed).collect();
    assert_eq!(
        failed[0]
            .start_timer_failed_event_attributes
            .as_ref()
            .unwrap()
            .cause,
        StartTimerFailedCause::TimerIdAlreadyInUse
    );
    assert_eq!(find(EventType::TimerCanceled).count(), 1);
    let ctf = find(EventType::CancelTimerFailed).next().unwrap();
    assert_eq!(
        ctf.cancel_timer_failed_event_attributes
            .as_ref()
            .unwrap()
            .cause,
        CancelTimerFailedCause::TimerIdUnknown
    );
    let m = find(EventType::MarkerRecorded)
        .next()
        .unwrap()
        .marker_recorded_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(
        (m.marker_name.as_str(), m.details.as_deref()),
        ("m", Some("md"))
    );
    let causes: Vec<_> = find(EventType::ScheduleActivityTaskFailed)
        .map(|e| {
            e.schedule_activity_task_failed_event_attributes
                .as_ref()
                .unwrap()
                .cause
                .clone()
        })
        .collect();
    assert_eq!(
        causes,
        vec![
            ScheduleActivityTaskFailedCause::ActivityTypeDoesNotExist,
            ScheduleActivityTaskFailedCause::DefaultScheduleToStartTimeoutUndefined,
            ScheduleActivityTaskFailedCause::ActivityTypeDeprecated,
            ScheduleActivityTaskFailedCause::ActivityIdAlreadyInUse,
        ]
    );
    let rc = find(EventType::RequestCancelActivityTaskFailed)
        .next()
        .unwrap();
    assert_eq!(
        rc.request_cancel_activity_task_failed_event_attributes
            .as_ref()
            .unwrap()
            .cause,
        RequestCancelActivityTaskFailedCause::ActivityIdUnknown
    );
    // The failures scheduled a decision task; the timer fires later.
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![]).await;
    let fired = wait_event(c, "d", &exec, EventType::TimerFired).await;
    assert_eq!(fired.timer_fired_event_attributes.unwrap().timer_id, "fire");
    let desc = describe_execution(c, "d", &exec).send().await.unwrap();
    assert_eq!(desc.open_counts.unwrap().open_timers, 0);

    // A close decision while unseen events exist fails with UNHANDLED_DECISION.
    let dt = next_decision(c, "d").await;
    signal(c, "d", "t", "late").send().await.unwrap();
    decide(c, &dt.task_token, vec![complete_wf("x")]).await;
    let ev = wait_event(c, "d", &exec, EventType::CompleteWorkflowExecutionFailed).await;
    assert_eq!(
        ev.complete_workflow_execution_failed_event_attributes
            .unwrap()
            .cause,
        CompleteWorkflowExecutionFailedCause::UnhandledDecision
    );
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![complete_wf("x")]).await;
    wait_event(c, "d", &exec, EventType::WorkflowExecutionCompleted).await;
}

#[tokio::test]
async fn cancel_of_started_and_of_scheduled_tasks() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_and_decide(c, "d", "c", vec![schedule("started", "act")]).await;
    let task = next_activity(c, "d").await;
    let dt = next_decision_or_none(c).await;
    assert!(
        dt.is_none(),
        "ActivityTaskStarted schedules no decision task"
    );
    // A second decision: needs an event. Signal, then cancel both a started and a scheduled one.
    signal(c, "d", "c", "s").send().await.unwrap();
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![
            schedule("queued", "act"),
            cancel_activity("queued"),
            cancel_activity("started"),
        ],
    )
    .await;
    let h = history(c, "d", &exec).await;
    let canceled = h
        .iter()
        .find(|e| e.event_type == EventType::ActivityTaskCanceled)
        .expect("scheduled task canceled at once");
    let attrs = canceled
        .activity_task_canceled_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(attrs.started_event_id, 0);
    assert_eq!(
        h.iter()
            .filter(|e| e.event_type == EventType::ActivityTaskCancelRequested)
            .count(),
        2
    );
    let hb = heartbeat(c, &task.task_token).send().await.unwrap();
    assert!(hb.cancel_requested);
    activity_canceled(c, &task.task_token)
        .details("stopped")
        .send()
        .await
        .unwrap();
    let h = history(c, "d", &exec).await;
    let last = h
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::ActivityTaskCanceled)
        .unwrap();
    let attrs = last
        .activity_task_canceled_event_attributes
        .as_ref()
        .unwrap();
    assert_eq!(attrs.details.as_deref(), Some("stopped"));
    assert!(attrs.latest_cancel_requested_event_id > 0);
    let err = heartbeat(c, &task.task_token).send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    assert_eq!(pending_activities(c, "d").await, 0);
}

/// One decision poll (held for the poll timeout); None when it came back empty.
async fn next_decision_or_none(c: &aws_sdk_swf::Client) -> Option<String> {
    let out = poll_decision(c, "d", TL).send().await.unwrap();
    (!out.task_token.is_empty()).then_some(out.task_token)
}

#[tokio::test]
async fn retention_zero_drops_closed_executions_and_unknown_operations_are_named() {
    let env = Env::start(500).await;
    let c = &env.client;
    register_domain(c, "r", "0").send().await.unwrap();
    register_workflow(c, "r", "wf")
        .default_task_list(tl(TL))
        .default_child_policy(ChildPolicy::Terminate)
        .default_execution_start_to_close_timeout("60")
        .default_task_start_to_close_timeout("10")
        .send()
        .await
        .unwrap();
    let exec = start_wf(c, "r", "gone").await;
    c.terminate_workflow_execution()
        .domain("r")
        .workflow_id("gone")
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match describe_execution(c, "r", &exec).send().await {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_unknown_resource_fault()) =>
            {
                break;
            }
            _ => assert!(
                std::time::Instant::now() < deadline,
                "closed execution not dropped"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (status, body) = raw_call(env.addr, Some("FlyToTheMoon"), "{}").await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("FlyToTheMoon"),
        "{body}"
    );
    assert!(
        body["__type"]
            .as_str()
            .unwrap()
            .ends_with("UnknownOperationException")
    );
    let (status, body) = raw_call(env.addr, None, "{}").await;
    assert_eq!(status, 400, "{body}");
    // A body that is not JSON cannot be deserialized (see validation.rs for the rest).
    let (status, body) = raw_call(env.addr, Some("ListDomains"), "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["__type"], "com.amazon.coral.service#SerializationException",
        "{body}"
    );
}

/// WorkflowExecutionDetail.latestActivityTaskTimestamp: "The time when the last activity task
/// was scheduled for this workflow execution" — set before any worker polls, which is the
/// stuck case it is there to reveal.
#[tokio::test]
async fn latest_activity_task_timestamp_is_the_last_scheduling() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let before = describe_execution(c, "d", &exec).send().await.unwrap();
    assert!(before.latest_activity_task_timestamp.is_none());

    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![schedule("a1", "act")]).await;
    let scheduled = wait_event(c, "d", &exec, EventType::ActivityTaskScheduled)
        .await
        .event_timestamp;
    let d = describe_execution(c, "d", &exec).send().await.unwrap();
    assert_eq!(d.open_counts.unwrap().open_activity_tasks, 1);
    assert_eq!(d.latest_activity_task_timestamp, Some(scheduled));

    // Starting the task does not move it.
    next_activity(c, "d").await;
    let d = describe_execution(c, "d", &exec).send().await.unwrap();
    assert_eq!(d.latest_activity_task_timestamp, Some(scheduled));
}

/// List/Count*WorkflowExecutions: "executionFilter, typeFilter and tagFilter are mutually
/// exclusive. You can specify at most one of these in a request"; for closed executions
/// "closeStatusFilter, executionFilter, typeFilter and tagFilter" are. The operations model no
/// fault for it, so two of them are a ValidationException naming the filters given.
#[tokio::test]
async fn list_and_count_filters_are_mutually_exclusive() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    start_wf(c, "d", "w").await;
    let since = ExecutionTimeFilter::builder()
        .oldest_date(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap();
    let by_id = WorkflowExecutionFilter::builder()
        .workflow_id("w")
        .build()
        .unwrap();
    let by_type = WorkflowTypeFilter::builder().name("wf").build().unwrap();
    let by_tag = TagFilter::builder().tag("t").build().unwrap();
    let by_status = CloseStatusFilter::builder()
        .status(CloseStatus::Completed)
        .build()
        .unwrap();
    let refused = |code_: String, msg: String, given: &[&str]| {
        assert_eq!(code_, "ValidationException", "{msg}");
        assert!(msg.contains("mutually exclusive"), "{msg}");
        for f in given {
            assert!(msg.contains(f), "{msg} does not name {f}");
        }
    };

    let e = c
        .list_open_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .execution_filter(by_id.clone())
        .type_filter(by_type.clone())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    refused(code(&e), message(&e), &["executionFilter", "typeFilter"]);
    let e = c
        .count_open_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .type_filter(by_type.clone())
        .tag_filter(by_tag.clone())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    refused(code(&e), message(&e), &["typeFilter", "tagFilter"]);
    let e = c
        .list_closed_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .close_status_filter(by_status.clone())
        .execution_filter(by_id.clone())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    refused(
        code(&e),
        message(&e),
        &["closeStatusFilter", "executionFilter"],
    );
    let e = c
        .count_closed_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .close_status_filter(by_status.clone())
        .tag_filter(by_tag)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    refused(code(&e), message(&e), &["closeStatusFilter", "tagFilter"]);

    // One filter at a time is fine.
    let open = c
        .list_open_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .execution_filter(by_id)
        .send()
        .await
        .unwrap();
    assert_eq!(open.execution_infos.len(), 1);
    let n = c
        .count_open_workflow_executions()
        .domain("d")
        .start_time_filter(since.clone())
        .type_filter(by_type)
        .send()
        .await
        .unwrap();
    assert_eq!(n.count, 1);
    let n = c
        .count_closed_workflow_executions()
        .domain("d")
        .start_time_filter(since)
        .close_status_filter(by_status)
        .send()
        .await
        .unwrap();
    assert_eq!(n.count, 0);
}

/// A page token continues the listing of the request that got it: the same domain, status
/// and filters (another one is refused, not answered with the first query's items), at each
/// call's own `maximumPageSize`. A decision task's page token serves its own domain only.
#[tokio::test]
async fn page_tokens_continue_only_their_own_query() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "pa", ["60", "120", "60", "30"]).await;
    setup(c, "pb", ["60", "120", "60", "30"]).await;
    for name in ["a2", "a3", "a4"] {
        register_activity(c, "pa", name).send().await.unwrap();
    }
    let list = |domain: &str| {
        c.list_activity_types()
            .domain(domain)
            .registration_status(RegistrationStatus::Registered)
    };
    let first = list("pa").maximum_page_size(1).send().await.unwrap();
    let token = first.next_page_token.clone().expect("more types");
    let names = |out: &aws_sdk_swf::operation::list_activity_types::ListActivityTypesOutput| {
        out.type_infos
            .iter()
            .map(|t| t.activity_type.as_ref().unwrap().name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["a2"]);

    // Another domain's listing does not go on from this token.
    let err = list("pb").next_page_token(&token).send().await.unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(message(&err).contains("other parameters"), "{err:?}");
    // Nor does the same domain in reverse order.
    let err = list("pa")
        .reverse_order(true)
        .next_page_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    // The same query goes on, at this call's page size (none: up to 1,000).
    let rest = list("pa")
        .reverse_order(false)
        .next_page_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&rest), ["a3", "a4", "act"]);
    assert!(rest.next_page_token.is_none());

    // A decision task's history pages, at each call's page size, in its own domain only.
    start_wf(c, "pa", "paged").await;
    let decision = poll_decision(c, "pa", TL)
        .maximum_page_size(1)
        .send()
        .await
        .unwrap();
    assert_eq!(decision.events.len(), 1);
    let token = decision.next_page_token.clone().expect("more events");
    let err = poll_decision(c, "pb", TL)
        .next_page_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(message(&err).contains("another domain"), "{err:?}");
    let next = poll_decision(c, "pa", TL)
        .next_page_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.events.len(), 2, "the rest: started, then scheduled");
    assert!(next.next_page_token.is_none());
}
