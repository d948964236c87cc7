//! Each timeout kind fires on its own (timers, not the next call), with the events SWF
//! records, and the task's token is unknown afterwards.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_swf::types::*;
use common::*;

/// A server whose `act@1` has the given [s2s, s2c, stc, heartbeat] defaults; returns the
/// env and a started workflow whose first decision scheduled activity "a".
async fn scheduled(timeouts: [&str; 4]) -> (Env, WorkflowExecution) {
    let env = Env::start(500).await;
    setup(&env.client, "d", timeouts).await;
    let exec = start_and_decide(&env.client, "d", "w", vec![schedule("a", "act")]).await;
    (env, exec)
}

fn timeout_of(e: &HistoryEvent) -> &ActivityTaskTimedOutEventAttributes {
    e.activity_task_timed_out_event_attributes.as_ref().unwrap()
}

#[tokio::test]
async fn schedule_to_start_timeout() {
    let (env, exec) = scheduled(["1", "NONE", "NONE", "NONE"]).await;
    let ev = wait_event(&env.client, "d", &exec, EventType::ActivityTaskTimedOut).await;
    assert_eq!(
        timeout_of(&ev).timeout_type,
        ActivityTaskTimeoutType::ScheduleToStart
    );
    assert_eq!(timeout_of(&ev).started_event_id, 0);
    // The timed-out task is no longer handed out, and the decider hears about it.
    let out = poll_activity(&env.client, "d", ACTIVITY_TL)
        .send()
        .await
        .unwrap();
    assert_eq!(out.task_token, "");
    let dt = next_decision(&env.client, "d").await;
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::ActivityTaskTimedOut)
    );
}

#[tokio::test]
async fn start_to_close_timeout() {
    let (env, exec) = scheduled(["NONE", "NONE", "1", "NONE"]).await;
    let task = next_activity(&env.client, "d").await;
    let ev = wait_event(&env.client, "d", &exec, EventType::ActivityTaskTimedOut).await;
    assert_eq!(
        timeout_of(&ev).timeout_type,
        ActivityTaskTimeoutType::StartToClose
    );
    assert_eq!(timeout_of(&ev).started_event_id, task.started_event_id);
    let err = activity_completed(&env.client, &task.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
}

#[tokio::test]
async fn schedule_to_close_timeout() {
    let (env, exec) = scheduled(["NONE", "1", "NONE", "NONE"]).await;
    let task = next_activity(&env.client, "d").await;
    let ev = wait_event(&env.client, "d", &exec, EventType::ActivityTaskTimedOut).await;
    assert_eq!(
        timeout_of(&ev).timeout_type,
        ActivityTaskTimeoutType::ScheduleToClose
    );
    let err = heartbeat(&env.client, &task.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
}

#[tokio::test]
async fn heartbeats_reset_the_heartbeat_timeout_which_carries_the_last_details() {
    let (env, exec) = scheduled(["NONE", "NONE", "NONE", "2"]).await;
    let c = &env.client;
    let task = next_activity(c, "d").await;
    // Beat for 3 s (longer than the 2 s timeout): the task stays alive.
    let until = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while Instant::now() < until {
        let out = heartbeat(c, &task.task_token)
            .details(format!("beat {n}"))
            .send()
            .await;
        assert!(
            out.is_ok(),
            "heartbeat {n} refused: the heartbeat timeout was not reset"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ev = wait_event(c, "d", &exec, EventType::ActivityTaskTimedOut).await;
    assert_eq!(
        timeout_of(&ev).timeout_type,
        ActivityTaskTimeoutType::Heartbeat
    );
    assert_eq!(
        timeout_of(&ev).details.as_deref(),
        Some(format!("beat {}", n - 1).as_str())
    );
}

/// The timeout carries the details of the *last* heartbeat call: one without details
/// leaves none, not an earlier call's.
#[tokio::test]
async fn a_last_heartbeat_without_details_leaves_the_timeout_without_details() {
    let (env, exec) = scheduled(["NONE", "NONE", "NONE", "1"]).await;
    let c = &env.client;
    let task = next_activity(c, "d").await;
    heartbeat(c, &task.task_token)
        .details("50%")
        .send()
        .await
        .unwrap();
    heartbeat(c, &task.task_token).send().await.unwrap();
    let ev = wait_event(c, "d", &exec, EventType::ActivityTaskTimedOut).await;
    assert_eq!(
        timeout_of(&ev).timeout_type,
        ActivityTaskTimeoutType::Heartbeat
    );
    assert_eq!(timeout_of(&ev).details, None);
}

#[tokio::test]
async fn decision_task_start_to_close_timeout_reschedules_the_decision() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = started(start_workflow(c, "d", "w").task_start_to_close_timeout("1")).await;
    let dt = next_decision(c, "d").await;
    let ev = wait_event(c, "d", &exec, EventType::DecisionTaskTimedOut).await;
    let attrs = ev.decision_task_timed_out_event_attributes.unwrap();
    assert_eq!(attrs.timeout_type, DecisionTaskTimeoutType::StartToClose);
    assert_eq!(attrs.started_event_id, dt.started_event_id);
    let err = decision_completed(c, &dt.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    let again = next_decision(c, "d").await;
    assert_ne!(again.task_token, dt.task_token);
    assert_eq!(
        again
            .events
            .iter()
            .filter(|e| e.event_type == EventType::DecisionTaskScheduled)
            .count(),
        2
    );
}

#[tokio::test]
async fn workflow_execution_start_to_close_timeout() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = started(start_workflow(c, "d", "w").execution_start_to_close_timeout("1")).await;
    let ev = wait_event(c, "d", &exec, EventType::WorkflowExecutionTimedOut).await;
    assert_eq!(
        ev.workflow_execution_timed_out_event_attributes
            .unwrap()
            .timeout_type,
        WorkflowExecutionTimeoutType::StartToClose
    );
    let info = execution_info(c, "d", &exec).await;
    assert_eq!(info.close_status, Some(CloseStatus::TimedOut));
}
