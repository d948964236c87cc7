//! RespondDecisionTaskCompleted as a whole: a batch is checked completely before any decision
//! is applied, and the members of the call itself (taskList, ...) take effect.

mod common;

use aws_sdk_swf::types::*;
use common::*;

fn start_timer(id: &str, fire: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::StartTimer)
        .start_timer_decision_attributes(
            StartTimerDecisionAttributes::builder()
                .timer_id(id)
                .start_to_fire_timeout(fire)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// SWF refuses a batch with an invalid decision as a whole: nothing is recorded and the task
/// token still works. A StartTimer with `startToFireTimeout` NONE is such a decision (the
/// member is "an integer greater than or equal to 0"; NONE passes the shape's pattern only).
#[tokio::test]
async fn a_batch_with_an_invalid_decision_is_refused_before_any_is_applied() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let (exec, dt, before) = refused_batch(
        c,
        start_timer("t1", "NONE"),
        "startTimerDecisionAttributes.startToFireTimeout",
    )
    .await;

    // The same token completes the task once the decider fixes its decisions.
    decide(
        &env.client,
        &dt.task_token,
        vec![schedule("ok", "act"), start_timer("t1", "5")],
    )
    .await;
    let types = event_types(c, "d", &exec).await;
    assert_eq!(
        &types[before.len()..],
        [
            "DecisionTaskCompleted",
            "ActivityTaskScheduled",
            "TimerStarted"
        ]
    );
    assert_eq!(next_activity(c, "d").await.activity_id, "ok");
}

fn continue_as_new(attrs: ContinueAsNewWorkflowExecutionDecisionAttributes) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::ContinueAsNewWorkflowExecution)
        .continue_as_new_workflow_execution_decision_attributes(attrs)
        .build()
        .unwrap()
}

/// A decision that closes the run (Complete, Fail, Cancel, ContinueAsNew) anywhere but last
/// refuses the whole batch, as SWF does (moto, whose authors tested against SWF, answers
/// "Close must be last decision in list"): a ValidationException naming the decision,
/// nothing recorded, and the decision task still started, so the same token answers again.
#[tokio::test]
async fn a_close_decision_that_is_not_the_last_refuses_the_batch() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let before = event_types(c, "d", &exec).await;
    let closes = [
        ("CompleteWorkflowExecution", complete_wf("done")),
        ("FailWorkflowExecution", fail_wf("why", "details")),
        ("CancelWorkflowExecution", cancel_wf("details")),
        (
            "ContinueAsNewWorkflowExecution",
            continue_as_new(ContinueAsNewWorkflowExecutionDecisionAttributes::builder().build()),
        ),
    ];
    for (ty, close) in closes {
        let batches = [
            (
                1,
                vec![close.clone(), schedule("a", "act"), start_timer("t", "5")],
            ),
            (
                2,
                vec![schedule("a", "act"), close.clone(), start_timer("t", "5")],
            ),
            (1, vec![close.clone(), complete_wf("again")]),
        ];
        for (at, batch) in batches {
            let n = batch.len();
            let err = decision_completed(c, &dt.task_token)
                .set_decisions(Some(batch))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "ValidationException", "{err:?}");
            assert_eq!(
                message(&err),
                format!(
                    "decisions.{at}: {ty} closes the workflow execution, so it must be the last decision in the list (it is {at} of {n})"
                )
            );
        }
    }
    assert_eq!(event_types(c, "d", &exec).await, before);
    assert_eq!(pending_activities(c, "d").await, 0);

    // Last, it closes the run after the decisions before it.
    decide(
        c,
        &dt.task_token,
        vec![
            schedule("a", "act"),
            start_timer("t", "5"),
            complete_wf("done"),
        ],
    )
    .await;
    let types = event_types(c, "d", &exec).await;
    assert_eq!(
        &types[before.len()..],
        [
            "DecisionTaskCompleted",
            "ActivityTaskScheduled",
            "TimerStarted",
            "WorkflowExecutionCompleted"
        ]
    );
}

/// ContinueAsNew takes each setting from the decision, else from the (new) workflow type's
/// registered defaults, else fails with that setting's DEFAULT_*_UNDEFINED cause. The old
/// run's settings are not inherited.
#[tokio::test]
async fn continue_as_new_takes_the_decision_then_the_new_types_defaults() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    c.register_workflow_type()
        .domain("d")
        .name("wf")
        .version("2")
        .default_task_list(tl("main2"))
        .default_execution_start_to_close_timeout("7200")
        .default_task_start_to_close_timeout("20")
        .default_child_policy(ChildPolicy::Abandon)
        .send()
        .await
        .unwrap();
    c.register_workflow_type()
        .domain("d")
        .name("wf")
        .version("3")
        .send()
        .await
        .unwrap();
    let exec = started(start_workflow(c, "d", "w").execution_start_to_close_timeout("100")).await;
    let dt = next_decision(c, "d").await;
    decide(
        c,
        &dt.task_token,
        vec![continue_as_new(
            ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
                .workflow_type_version("2")
                .build(),
        )],
    )
    .await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionContinuedAsNew).await;
    let a = ev
        .workflow_execution_continued_as_new_event_attributes
        .unwrap();
    assert_eq!(a.workflow_type.unwrap().version, "2");
    assert_eq!(a.task_list.unwrap().name, "main2");
    assert_eq!(a.execution_start_to_close_timeout.as_deref(), Some("7200"));
    assert_eq!(a.task_start_to_close_timeout.as_deref(), Some("20"));
    assert_eq!(a.child_policy, ChildPolicy::Abandon);

    // The new run's decision tasks go to v2's default task list.
    let dt = next_decision_on(c, "d", "main2").await;
    assert_eq!(
        dt.workflow_execution.unwrap().run_id,
        a.new_execution_run_id
    );

    // v3 has no defaults: each setting left out fails with its own cause.
    let full = || {
        ContinueAsNewWorkflowExecutionDecisionAttributes::builder()
            .workflow_type_version("3")
            .task_list(tl("main3"))
            .execution_start_to_close_timeout("60")
            .task_start_to_close_timeout("10")
            .child_policy(ChildPolicy::Terminate)
    };
    let mut token = dt.task_token;
    let run = WorkflowExecution::builder()
        .workflow_id("w")
        .run_id(a.new_execution_run_id)
        .build()
        .unwrap();
    for (attrs, cause) in [
        (
            full().set_task_list(None),
            ContinueAsNewWorkflowExecutionFailedCause::DefaultTaskListUndefined,
        ),
        (
            full().set_execution_start_to_close_timeout(None),
            ContinueAsNewWorkflowExecutionFailedCause::DefaultExecutionStartToCloseTimeoutUndefined,
        ),
        (
            full().set_task_start_to_close_timeout(None),
            ContinueAsNewWorkflowExecutionFailedCause::DefaultTaskStartToCloseTimeoutUndefined,
        ),
        (
            full().set_child_policy(None),
            ContinueAsNewWorkflowExecutionFailedCause::DefaultChildPolicyUndefined,
        ),
    ] {
        decide(c, &token, vec![continue_as_new(attrs.build())]).await;
        let failed = history(c, "d", &run)
            .await
            .into_iter()
            .rev()
            .find_map(|e| e.continue_as_new_workflow_execution_failed_event_attributes)
            .expect("a ContinueAsNewWorkflowExecutionFailed event");
        assert_eq!(failed.cause, cause);
        token = next_decision_on(c, "d", "main2").await.task_token;
    }
    decide(c, &token, vec![continue_as_new(full().build())]).await;
    next_decision_on(c, "d", "main3").await;
}

async fn pending_decisions(c: &aws_sdk_swf::Client, list: &str) -> i32 {
    c.count_pending_decision_tasks()
        .domain("d")
        .task_list(tl(list))
        .send()
        .await
        .unwrap()
        .count
}

/// RespondDecisionTaskCompleted.taskList: "The task list to use for the future decision tasks
/// of this workflow execution." With taskListScheduleToStartTimeout the override is
/// temporary: a decision task not started in time times out (SCHEDULE_TO_START), and SWF
/// "will revert the override and schedule a new decision task to the original task list".
#[tokio::test]
async fn decision_task_list_override_permanent_and_temporary() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;

    // Permanent: every later decision task goes to "other".
    decision_completed(c, &dt.task_token)
        .task_list(tl("other"))
        .send()
        .await
        .unwrap();
    let completed = wait_event(c, "d", &exec, EventType::DecisionTaskCompleted)
        .await
        .decision_task_completed_event_attributes
        .unwrap();
    assert_eq!(completed.task_list.unwrap().name, "other");
    signal(c, "d", "w", "s1").send().await.unwrap();
    assert_eq!(pending_decisions(c, TL).await, 0);
    assert_eq!(pending_decisions(c, "other").await, 1);
    let dt = next_decision_on(c, "d", "other").await;
    let scheduled = history(c, "d", &exec)
        .await
        .into_iter()
        .filter_map(|e| e.decision_task_scheduled_event_attributes)
        .next_back()
        .unwrap();
    assert_eq!(scheduled.task_list.unwrap().name, "other");
    assert_eq!(scheduled.schedule_to_start_timeout, None);

    // Temporary: not started within 1 s on "temp", so it times out and goes back to "main".
    decision_completed(c, &dt.task_token)
        .task_list(tl("temp"))
        .task_list_schedule_to_start_timeout("1")
        .send()
        .await
        .unwrap();
    signal(c, "d", "w", "s2").send().await.unwrap();
    let scheduled = history(c, "d", &exec)
        .await
        .into_iter()
        .filter_map(|e| e.decision_task_scheduled_event_attributes)
        .next_back()
        .unwrap();
    assert_eq!(scheduled.task_list.unwrap().name, "temp");
    assert_eq!(scheduled.schedule_to_start_timeout.as_deref(), Some("1"));
    let timed_out = wait_event(c, "d", &exec, EventType::DecisionTaskTimedOut)
        .await
        .decision_task_timed_out_event_attributes
        .unwrap();
    assert_eq!(
        timed_out.timeout_type,
        DecisionTaskTimeoutType::ScheduleToStart
    );
    assert_eq!(timed_out.started_event_id, 0);
    assert_eq!(pending_decisions(c, "temp").await, 0);
    let dt = next_decision(c, "d").await;
    let last = dt.events.last().unwrap();
    assert_eq!(last.event_type, EventType::DecisionTaskStarted);
    let rescheduled = &dt.events[dt.events.len() - 2];
    assert_eq!(
        rescheduled
            .decision_task_scheduled_event_attributes
            .as_ref()
            .unwrap()
            .task_list
            .as_ref()
            .unwrap()
            .name,
        TL
    );
}
