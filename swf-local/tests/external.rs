//! Decisions that reach other executions: SignalExternalWorkflowExecution and
//! RequestCancelExternalWorkflowExecution, and ScheduleLambdaFunction, which has no Lambda
//! to reach.

mod common;

use aws_sdk_swf::Client;
use aws_sdk_swf::types::*;
use common::*;

/// Starts the target `b` (decision tasks on task list "b") and the sender `a` (on `TL`);
/// returns them with the sender's first decision task token.
async fn sender_and_target(c: &Client) -> (WorkflowExecution, WorkflowExecution, String) {
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let target = started(start_workflow(c, "d", "b").task_list(tl("b"))).await;
    let dt = next_decision_on(c, "d", "b").await;
    decide(c, &dt.task_token, vec![]).await;
    let sender = start_wf(c, "d", "a").await;
    let token = next_decision(c, "d").await.task_token;
    (sender, target, token)
}

#[tokio::test]
async fn a_signal_to_another_execution_reaches_it_and_the_sender_learns_it() {
    let env = Env::start(300).await;
    let c = &env.client;
    let (sender, target, token) = sender_and_target(c).await;
    decide(
        c,
        &token,
        vec![
            signal_external("b", None, "ping"),
            signal_external("b", Some(&target.run_id), "pong"),
        ],
    )
    .await;

    let events = history(c, "d", &sender).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types[types.len() - 6..],
        [
            "DecisionTaskCompleted",
            "SignalExternalWorkflowExecutionInitiated",
            "SignalExternalWorkflowExecutionInitiated",
            "ExternalWorkflowExecutionSignaled",
            "ExternalWorkflowExecutionSignaled",
            "DecisionTaskScheduled"
        ]
    );
    let completed = last_of(&events, EventType::DecisionTaskCompleted).event_id;
    let initiated = events
        .iter()
        .find(|e| e.event_type == EventType::SignalExternalWorkflowExecutionInitiated)
        .unwrap();
    let init = initiated
        .signal_external_workflow_execution_initiated_event_attributes
        .clone()
        .unwrap();
    assert_eq!(init.workflow_id, "b");
    assert_eq!(init.run_id, None);
    assert_eq!(init.signal_name, "ping");
    assert_eq!(init.input.as_deref(), Some("in-ping"));
    assert_eq!(init.control.as_deref(), Some("ctl-ping"));
    assert_eq!(init.decision_task_completed_event_id, completed);
    let signaled = events
        .iter()
        .find_map(|e| {
            e.external_workflow_execution_signaled_event_attributes
                .clone()
        })
        .unwrap();
    assert_eq!(signaled.initiated_event_id, initiated.event_id);
    assert_eq!(signaled.workflow_execution.as_ref(), Some(&target));

    // The target gets both signals, in order, in one decision task.
    let dt = next_decision_on(c, "d", "b").await;
    let got: Vec<_> = dt
        .events
        .iter()
        .filter_map(|e| e.workflow_execution_signaled_event_attributes.clone())
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].signal_name, "ping");
    assert_eq!(got[0].input.as_deref(), Some("in-ping"));
    assert_eq!(got[0].external_workflow_execution.as_ref(), Some(&sender));
    assert_eq!(got[0].external_initiated_event_id, initiated.event_id);
    assert_eq!(got[1].signal_name, "pong");

    // And the sender has a decision task showing the outcome.
    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref(), Some(&sender));
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::ExternalWorkflowExecutionSignaled)
    );
}

/// An execution may signal itself: both sides are in its history, and the batch gets one
/// decision task afterwards.
#[tokio::test]
async fn a_signal_to_itself_gives_one_decision_task_after_the_batch() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "a").await;
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![signal_external("a", None, "me"), schedule("a1", "act")],
    )
    .await;
    let types = event_types(c, "d", &exec).await;
    assert_eq!(
        types[types.len() - 6..],
        [
            "DecisionTaskCompleted",
            "SignalExternalWorkflowExecutionInitiated",
            "ActivityTaskScheduled",
            "WorkflowExecutionSignaled",
            "ExternalWorkflowExecutionSignaled",
            "DecisionTaskScheduled"
        ]
    );
}

#[tokio::test]
async fn a_signal_to_no_open_execution_fails_with_unknown_external_workflow_execution() {
    let env = Env::start(300).await;
    let c = &env.client;
    let (sender, target, token) = sender_and_target(c).await;
    c.terminate_workflow_execution()
        .domain("d")
        .workflow_id("b")
        .send()
        .await
        .unwrap();
    decide(
        c,
        &token,
        vec![
            signal_external("ghost", None, "ping"),
            // b's run exists but is closed.
            signal_external("b", Some(&target.run_id), "pong"),
        ],
    )
    .await;
    let events = history(c, "d", &sender).await;
    let failures: Vec<_> = events
        .iter()
        .filter_map(|e| {
            e.signal_external_workflow_execution_failed_event_attributes
                .clone()
        })
        .collect();
    assert_eq!(failures.len(), 2);
    let initiated: Vec<i64> = events
        .iter()
        .filter(|e| e.event_type == EventType::SignalExternalWorkflowExecutionInitiated)
        .map(|e| e.event_id)
        .collect();
    for (f, init) in failures.iter().zip(&initiated) {
        assert_eq!(
            f.cause,
            SignalExternalWorkflowExecutionFailedCause::UnknownExternalWorkflowExecution
        );
        assert_eq!(f.initiated_event_id, *init);
    }
    assert_eq!(failures[0].workflow_id, "ghost");
    assert_eq!(failures[0].control.as_deref(), Some("ctl-ping"));
    assert_eq!(failures[1].run_id.as_deref(), Some(target.run_id.as_str()));
    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref(), Some(&sender));
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::SignalExternalWorkflowExecutionFailed)
    );
}

#[tokio::test]
async fn a_cancel_request_to_another_execution_reaches_it_and_the_sender_learns_it() {
    let env = Env::start(300).await;
    let c = &env.client;
    let (sender, target, token) = sender_and_target(c).await;
    decide(c, &token, vec![cancel_external("b", None)]).await;

    let events = history(c, "d", &sender).await;
    let initiated = last_of(
        &events,
        EventType::RequestCancelExternalWorkflowExecutionInitiated,
    );
    let init = initiated
        .request_cancel_external_workflow_execution_initiated_event_attributes
        .clone()
        .unwrap();
    assert_eq!(init.workflow_id, "b");
    assert_eq!(init.control.as_deref(), Some("ctl-cancel"));
    let requested = last_of(&events, EventType::ExternalWorkflowExecutionCancelRequested)
        .external_workflow_execution_cancel_requested_event_attributes
        .unwrap();
    assert_eq!(requested.initiated_event_id, initiated.event_id);
    assert_eq!(requested.workflow_execution.as_ref(), Some(&target));

    assert!(execution_info(c, "d", &target).await.cancel_requested);
    let dt = next_decision_on(c, "d", "b").await;
    let got = last_of(&dt.events, EventType::WorkflowExecutionCancelRequested)
        .workflow_execution_cancel_requested_event_attributes
        .unwrap();
    assert_eq!(got.external_workflow_execution.as_ref(), Some(&sender));
    assert_eq!(got.external_initiated_event_id, initiated.event_id);
    assert_eq!(got.cause, None);
    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref(), Some(&sender));
}

#[tokio::test]
async fn a_cancel_request_to_no_open_execution_fails_with_unknown_external_workflow_execution() {
    let env = Env::start(300).await;
    let c = &env.client;
    let (sender, _, token) = sender_and_target(c).await;
    decide(
        c,
        &token,
        vec![cancel_external("ghost", Some("no-such-run"))],
    )
    .await;
    let events = history(c, "d", &sender).await;
    let initiated = last_of(
        &events,
        EventType::RequestCancelExternalWorkflowExecutionInitiated,
    );
    let failed = last_of(
        &events,
        EventType::RequestCancelExternalWorkflowExecutionFailed,
    )
    .request_cancel_external_workflow_execution_failed_event_attributes
    .unwrap();
    assert_eq!(
        failed.cause,
        RequestCancelExternalWorkflowExecutionFailedCause::UnknownExternalWorkflowExecution
    );
    assert_eq!(failed.initiated_event_id, initiated.event_id);
    assert_eq!(failed.workflow_id, "ghost");
    assert_eq!(failed.run_id.as_deref(), Some("no-such-run"));
    assert_eq!(failed.control.as_deref(), Some("ctl-cancel"));
    let dt = next_decision(c, "d").await;
    assert_eq!(dt.workflow_execution.as_ref(), Some(&sender));
}

/// swf-local has no Lambda: ScheduleLambdaFunction fails the way SWF fails it where Lambda
/// cannot be used, and the decider gets a decision task to see it.
#[tokio::test]
async fn schedule_lambda_function_fails_as_lambda_is_not_available() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![
            Decision::builder()
                .decision_type(DecisionType::ScheduleLambdaFunction)
                .schedule_lambda_function_decision_attributes(
                    ScheduleLambdaFunctionDecisionAttributes::builder()
                        .id("l1")
                        .name("resize")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    let events = history(c, "d", &exec).await;
    let failed = last_of(&events, EventType::ScheduleLambdaFunctionFailed)
        .schedule_lambda_function_failed_event_attributes
        .unwrap();
    assert_eq!(
        failed.cause,
        ScheduleLambdaFunctionFailedCause::LambdaServiceNotAvailableInRegion
    );
    assert_eq!((failed.id.as_str(), failed.name.as_str()), ("l1", "resize"));
    assert_eq!(
        failed.decision_task_completed_event_id,
        last_of(&events, EventType::DecisionTaskCompleted).event_id
    );
    let dt = next_decision(c, "d").await;
    assert_eq!(
        dt.events.last().unwrap().event_type,
        EventType::DecisionTaskStarted
    );
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::ScheduleLambdaFunctionFailed)
    );
}
