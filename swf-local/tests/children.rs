//! Child workflows: the StartChildWorkflowExecution decision, what the parent learns of its
//! children, and the parent's child policy when it closes.

mod common;

use aws_sdk_swf::Client;
use aws_sdk_swf::types::*;
use common::*;

/// The history of the child run a ChildWorkflowExecutionStarted (or a close) event names.
fn child_of(attrs: &ChildWorkflowExecutionStartedEventAttributes) -> WorkflowExecution {
    attrs.workflow_execution.clone().unwrap()
}

/// DescribeWorkflowExecution's openCounts.openChildWorkflowExecutions of `exec`.
async fn open_children(c: &Client, exec: &WorkflowExecution) -> i32 {
    describe_execution(c, "d", exec)
        .send()
        .await
        .unwrap()
        .open_counts
        .unwrap()
        .open_child_workflow_executions
}

/// Starts parent `id` (child policy `policy`) and has it start child `{id}-child`; returns
/// the parent and the child.
async fn parent_with_child(
    c: &Client,
    id: &str,
    policy: ChildPolicy,
) -> (WorkflowExecution, WorkflowExecution) {
    started_parent_with_child(c, start_workflow(c, "d", id).child_policy(policy)).await
}

/// Starts the parent `start` makes and has it start child `{its workflowId}-child`.
async fn started_parent_with_child(
    c: &Client,
    start: aws_sdk_swf::operation::start_workflow_execution::builders::StartWorkflowExecutionFluentBuilder,
) -> (WorkflowExecution, WorkflowExecution) {
    let id = start.get_workflow_id().clone().unwrap();
    let parent = started(start).await;
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![start_child(&format!("{id}-child"))]).await;
    let ev = last_of(
        &history(c, "d", &parent).await,
        EventType::ChildWorkflowExecutionStarted,
    );
    let child = child_of(
        ev.child_workflow_execution_started_event_attributes
            .as_ref()
            .unwrap(),
    );
    (parent, child)
}

#[tokio::test]
async fn a_child_that_completes_is_reported_to_its_parent() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let parent = start_wf(c, "d", "p").await;
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![
            start_child_with(
                StartChildWorkflowExecutionDecisionAttributes::builder()
                    .workflow_type(wtype("wf"))
                    .workflow_id("c")
                    .task_list(tl("c"))
                    .input("hello")
                    .control("ctl")
                    .task_priority("4")
                    .tag_list("t1")
                    .build()
                    .unwrap(),
            ),
            schedule("a1", "act"),
        ],
    )
    .await;

    // The parent's batch, then the child's start and a decision task for it.
    let events = history(c, "d", &parent).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types[types.len() - 5..],
        [
            "DecisionTaskCompleted",
            "StartChildWorkflowExecutionInitiated",
            "ActivityTaskScheduled",
            "ChildWorkflowExecutionStarted",
            "DecisionTaskScheduled"
        ]
    );
    let init_ev = last_of(&events, EventType::StartChildWorkflowExecutionInitiated);
    let init = init_ev
        .start_child_workflow_execution_initiated_event_attributes
        .unwrap();
    assert_eq!(init.workflow_id, "c");
    assert_eq!(init.task_list.unwrap().name, "c");
    // Defaults of wf@1 resolved into the event; childPolicy is required there.
    assert_eq!(init.child_policy, ChildPolicy::Terminate);
    assert_eq!(
        init.execution_start_to_close_timeout.as_deref(),
        Some("3600")
    );
    assert_eq!(init.task_start_to_close_timeout.as_deref(), Some("30"));
    assert_eq!(init.control.as_deref(), Some("ctl"));
    assert_eq!(init.input.as_deref(), Some("hello"));
    assert_eq!(init.task_priority.as_deref(), Some("4"));
    let completed_id = last_of(&events, EventType::DecisionTaskCompleted).event_id;
    assert_eq!(init.decision_task_completed_event_id, completed_id);
    let started_ev = last_of(&events, EventType::ChildWorkflowExecutionStarted);
    let started_attrs = started_ev
        .child_workflow_execution_started_event_attributes
        .unwrap();
    assert_eq!(started_attrs.initiated_event_id, init_ev.event_id);
    let child = child_of(&started_attrs);
    assert_eq!(child.workflow_id, "c");

    // The child knows its parent.
    let child_dt = next_decision_on(c, "d", "c").await;
    assert_eq!(child_dt.workflow_execution.as_ref(), Some(&child));
    let start = child_dt.events[0]
        .workflow_execution_started_event_attributes
        .clone()
        .unwrap();
    assert_eq!(start.parent_workflow_execution.as_ref(), Some(&parent));
    assert_eq!(start.parent_initiated_event_id, init_ev.event_id);
    assert_eq!(start.input.as_deref(), Some("hello"));
    assert_eq!(start.tag_list.unwrap_or_default(), ["t1"]);
    let info = execution_info(c, "d", &child).await;
    assert_eq!(info.parent.as_ref(), Some(&parent));
    assert_eq!(open_children(c, &parent).await, 1);

    // The parent's decision task shows the start.
    let dt = next_decision(c, "d").await;
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::ChildWorkflowExecutionStarted)
    );
    decide(c, &dt.task_token, vec![]).await;

    decide(c, &child_dt.task_token, vec![complete_wf("done")]).await;
    let dt = next_decision(c, "d").await;
    let done = last_of(&dt.events, EventType::ChildWorkflowExecutionCompleted)
        .child_workflow_execution_completed_event_attributes
        .unwrap();
    assert_eq!(done.result.as_deref(), Some("done"));
    assert_eq!(done.workflow_execution.as_ref(), Some(&child));
    assert_eq!(done.workflow_type, Some(wtype("wf")));
    assert_eq!(done.initiated_event_id, init_ev.event_id);
    assert_eq!(done.started_event_id, started_ev.event_id);
    assert_eq!(open_children(c, &parent).await, 0);
}

/// Each way a child closes has its own event in the parent, carrying what the child's close
/// event says.
#[tokio::test]
async fn a_child_that_fails_is_canceled_terminated_or_times_out_is_reported() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let parent = start_wf(c, "d", "p").await;
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![
            start_child("fails"),
            start_child("cancels"),
            start_child("terminated"),
            start_child_with(
                StartChildWorkflowExecutionDecisionAttributes::builder()
                    .workflow_type(wtype("wf"))
                    .workflow_id("times-out")
                    .task_list(tl("times-out"))
                    .execution_start_to_close_timeout("1")
                    .build()
                    .unwrap(),
            ),
        ],
    )
    .await;
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![]).await;

    let fails = next_decision_on(c, "d", "fails").await;
    decide(c, &fails.task_token, vec![fail_wf("broken", "all of it")]).await;
    let dt = next_decision(c, "d").await;
    let failed = last_of(&dt.events, EventType::ChildWorkflowExecutionFailed)
        .child_workflow_execution_failed_event_attributes
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("broken"));
    assert_eq!(failed.details.as_deref(), Some("all of it"));
    assert_eq!(failed.workflow_execution.unwrap().workflow_id, "fails");
    decide(c, &dt.task_token, vec![]).await;

    let cancels = next_decision_on(c, "d", "cancels").await;
    decide(c, &cancels.task_token, vec![cancel_wf("bye")]).await;
    let dt = next_decision(c, "d").await;
    let canceled = last_of(&dt.events, EventType::ChildWorkflowExecutionCanceled)
        .child_workflow_execution_canceled_event_attributes
        .unwrap();
    assert_eq!(canceled.details.as_deref(), Some("bye"));
    decide(c, &dt.task_token, vec![]).await;

    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id("terminated")
        .send()
        .await
        .unwrap();
    let dt = next_decision(c, "d").await;
    let terminated = last_of(&dt.events, EventType::ChildWorkflowExecutionTerminated)
        .child_workflow_execution_terminated_event_attributes
        .unwrap();
    assert_eq!(
        terminated.workflow_execution.unwrap().workflow_id,
        "terminated"
    );
    decide(c, &dt.task_token, vec![]).await;

    // The 1 s execution timeout: the parent's next decision task is the child's timeout.
    let dt = next_decision(c, "d").await;
    let timed_out = last_of(&dt.events, EventType::ChildWorkflowExecutionTimedOut)
        .child_workflow_execution_timed_out_event_attributes
        .unwrap();
    assert_eq!(
        timed_out.timeout_type,
        WorkflowExecutionTimeoutType::StartToClose
    );
    assert_eq!(
        timed_out.workflow_execution.unwrap().workflow_id,
        "times-out"
    );
    assert_eq!(open_children(c, &parent).await, 0);
}

/// A child start SWF refuses records StartChildWorkflowExecutionFailed: without an
/// Initiated event (initiatedEventId 0) for an unknown type or a missing default; after
/// it when the workflowId is in use. Each gives the parent a decision task.
#[tokio::test]
async fn a_child_of_an_unknown_type_or_a_running_workflow_id_fails_to_start() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    register_workflow(c, "d", "bare").send().await.unwrap();
    let parent = start_wf(c, "d", "p").await;
    let dt = next_decision(c, "d").await;
    let of_type = |name: &str, id: &str| {
        start_child_with(
            StartChildWorkflowExecutionDecisionAttributes::builder()
                .workflow_type(wtype(name))
                .workflow_id(id)
                .control(format!("ctl-{id}"))
                .build()
                .unwrap(),
        )
    };
    decide(
        c,
        &dt.task_token,
        vec![
            of_type("nope", "c1"),
            of_type("bare", "c2"),
            // The parent's own workflowId is in use.
            of_type("wf", "p"),
        ],
    )
    .await;
    let events = history(c, "d", &parent).await;
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| {
            e.start_child_workflow_execution_failed_event_attributes
                .clone()
        })
        .collect();
    assert_eq!(failures.len(), 3, "{events:#?}");
    assert_eq!(
        failures[0].cause,
        StartChildWorkflowExecutionFailedCause::WorkflowTypeDoesNotExist
    );
    assert_eq!(failures[0].initiated_event_id, 0);
    assert_eq!(failures[0].workflow_id, "c1");
    assert_eq!(failures[0].control.as_deref(), Some("ctl-c1"));
    assert_eq!(
        failures[1].cause,
        StartChildWorkflowExecutionFailedCause::DefaultTaskListUndefined
    );
    assert_eq!(
        failures[2].cause,
        StartChildWorkflowExecutionFailedCause::WorkflowAlreadyRunning
    );
    let initiated = last_of(&events, EventType::StartChildWorkflowExecutionInitiated);
    assert_eq!(failures[2].initiated_event_id, initiated.event_id);
    let completed = last_of(&events, EventType::DecisionTaskCompleted).event_id;
    assert!(
        failures
            .iter()
            .all(|f| f.decision_task_completed_event_id == completed)
    );
    let dt = next_decision(c, "d").await;
    assert_eq!(
        dt.events
            .iter()
            .filter(|e| e.event_type == EventType::StartChildWorkflowExecutionFailed)
            .count(),
        3
    );
    assert_eq!(open_children(c, &parent).await, 0);
}

/// The parent's child policy, applied to its open children when it is terminated or times
/// out, and only then.
#[tokio::test]
async fn the_child_policy_applies_when_the_parent_closes() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;

    // TERMINATE: the parent is terminated, so is its child.
    let (parent, child) = parent_with_child(c, "term", ChildPolicy::Terminate).await;
    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id(&parent.workflow_id)
        .send()
        .await
        .unwrap();
    let info = execution_info(c, "d", &child).await;
    assert_eq!(info.close_status, Some(CloseStatus::Terminated));
    let terminated = last_of(
        &history(c, "d", &child).await,
        EventType::WorkflowExecutionTerminated,
    )
    .workflow_execution_terminated_event_attributes
    .unwrap();
    assert_eq!(
        terminated.cause,
        Some(WorkflowExecutionTerminatedCause::ChildPolicyApplied)
    );

    // REQUEST_CANCEL: the parent times out; its child is asked to cancel and gets a
    // decision task for it.
    let (parent, child) = started_parent_with_child(
        c,
        start_workflow(c, "d", "cancel")
            .child_policy(ChildPolicy::RequestCancel)
            .execution_start_to_close_timeout("1"),
    )
    .await;
    let child_list = child.workflow_id.clone();
    let first = next_decision_on(c, "d", &child_list).await;
    decide(c, &first.task_token, vec![]).await;
    let dt = next_decision_on(c, "d", &child_list).await;
    assert_eq!(
        execution_info(c, "d", &parent).await.close_status,
        Some(CloseStatus::TimedOut)
    );
    let info = execution_info(c, "d", &child).await;
    assert_eq!(info.execution_status, ExecutionStatus::Open);
    assert!(info.cancel_requested);
    let requested = last_of(&dt.events, EventType::WorkflowExecutionCancelRequested)
        .workflow_execution_cancel_requested_event_attributes
        .unwrap();
    assert_eq!(
        requested.cause,
        Some(WorkflowExecutionCancelRequestedCause::ChildPolicyApplied)
    );

    // ABANDON, given by TerminateWorkflowExecution over the parent's TERMINATE: the child
    // runs on, untouched, and still names its parent.
    let (parent, child) = parent_with_child(c, "abandon", ChildPolicy::Terminate).await;
    let before = event_types(c, "d", &child).await;
    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id(&parent.workflow_id)
        .child_policy(ChildPolicy::Abandon)
        .send()
        .await
        .unwrap();
    let info = execution_info(c, "d", &child).await;
    assert_eq!(info.execution_status, ExecutionStatus::Open);
    assert!(!info.cancel_requested);
    assert_eq!(info.parent.as_ref(), Some(&parent));
    assert_eq!(event_types(c, "d", &child).await, before);

    // A parent its decider completes applies no policy, TERMINATE or not: SWF applies it
    // when a run is terminated or times out.
    let (parent, child) = parent_with_child(c, "done", ChildPolicy::Terminate).await;
    let before = event_types(c, "d", &child).await;
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![complete_wf("ok")]).await;
    assert_eq!(
        execution_info(c, "d", &parent).await.close_status,
        Some(CloseStatus::Completed)
    );
    let info = execution_info(c, "d", &child).await;
    assert_eq!(info.execution_status, ExecutionStatus::Open);
    assert_eq!(event_types(c, "d", &child).await, before);
}

/// A child that continues as new is still the parent's child, under its new run: the
/// parent records nothing for the old run, and learns how the last run closes.
#[tokio::test]
async fn a_child_that_continues_as_new_stays_a_child() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let (parent, child) = parent_with_child(c, "p", ChildPolicy::Terminate).await;
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![]).await;
    let before = event_types(c, "d", &parent).await;
    let child_dt = next_decision_on(c, "d", &child.workflow_id).await;
    decide(
        c,
        &child_dt.task_token,
        vec![
            Decision::builder()
                .decision_type(DecisionType::ContinueAsNewWorkflowExecution)
                .continue_as_new_workflow_execution_decision_attributes(
                    ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
                        .task_list(tl(&child.workflow_id))
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    assert_eq!(event_types(c, "d", &parent).await, before);
    assert_eq!(open_children(c, &parent).await, 1);

    let new_dt = next_decision_on(c, "d", &child.workflow_id).await;
    let new_run = new_dt.workflow_execution.clone().unwrap();
    assert_ne!(new_run.run_id, child.run_id);
    let start = new_dt.events[0]
        .workflow_execution_started_event_attributes
        .clone()
        .unwrap();
    assert_eq!(start.parent_workflow_execution.as_ref(), Some(&parent));
    assert_eq!(start.continued_execution_run_id, Some(child.run_id.clone()));
    decide(c, &new_dt.task_token, vec![complete_wf("second")]).await;
    let dt = next_decision(c, "d").await;
    let done = last_of(&dt.events, EventType::ChildWorkflowExecutionCompleted)
        .child_workflow_execution_completed_event_attributes
        .unwrap();
    assert_eq!(done.workflow_execution, Some(new_run));
    assert_eq!(done.result.as_deref(), Some("second"));
}

/// A StartChildWorkflowExecution SWF refuses as invalid (a run of over a year) refuses the
/// whole batch before any decision is applied.
#[tokio::test]
async fn a_batch_with_an_invalid_child_start_is_refused_before_any_is_applied() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let (_, dt, _) = refused_batch(
        c,
        start_child_with(
            StartChildWorkflowExecutionDecisionAttributes::builder()
                .workflow_type(wtype("wf"))
                .workflow_id("c")
                .execution_start_to_close_timeout("31536001")
                .build()
                .unwrap(),
        ),
        "startChildWorkflowExecutionDecisionAttributes.executionStartToCloseTimeout",
    )
    .await;
    let none = c
        .list_open_workflow_executions()
        .domain("d")
        .start_time_filter(
            ExecutionTimeFilter::builder()
                .oldest_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .unwrap(),
        )
        .execution_filter(
            WorkflowExecutionFilter::builder()
                .workflow_id("c")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(none.execution_infos.is_empty());
    // The token still works.
    decide(c, &dt.task_token, vec![start_child("c")]).await;
    next_decision_on(c, "d", "c").await;
}

/// SWF allows 1,000 open children per execution: the 1,001st start in one batch records
/// StartChildWorkflowExecutionFailed (OPEN_CHILDREN_LIMIT_EXCEEDED) and starts nothing.
#[tokio::test]
async fn the_1001st_open_child_fails_to_start() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let parent = start_wf(c, "d", "p").await;
    let dt = next_decision(c, "d").await;
    let children = (0..1001).map(|i| start_child(&format!("c{i}"))).collect();
    decide(c, &dt.task_token, children).await;

    let mut events = Vec::new();
    let mut page = None;
    loop {
        let out = history_of(c, "d", &parent)
            .set_next_page_token(page)
            .send()
            .await
            .unwrap();
        events.extend(out.events);
        page = out.next_page_token;
        if page.is_none() {
            break;
        }
    }
    let count = |ty: EventType| events.iter().filter(|e| e.event_type == ty).count();
    assert_eq!(count(EventType::StartChildWorkflowExecutionInitiated), 1000);
    assert_eq!(count(EventType::ChildWorkflowExecutionStarted), 1000);
    let failed = last_of(&events, EventType::StartChildWorkflowExecutionFailed)
        .start_child_workflow_execution_failed_event_attributes
        .clone()
        .unwrap();
    assert_eq!(
        failed.cause,
        StartChildWorkflowExecutionFailedCause::OpenChildrenLimitExceeded
    );
    assert_eq!(failed.workflow_id, "c1000");
    assert_eq!(failed.initiated_event_id, 0);
    assert_eq!(open_children(c, &parent).await, 1000);
}
