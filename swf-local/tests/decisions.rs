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
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let before = event_types(c, "d", &exec).await;

    let err = decision_completed(c, &dt.task_token)
        .decisions(schedule("ok", "act"))
        .decisions(start_timer("t1", "NONE"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    assert!(
        message(&err)
            .contains("decisions.2.member.startTimerDecisionAttributes.startToFireTimeout"),
        "{}",
        message(&err)
    );
    assert_eq!(event_types(c, "d", &exec).await, before);
    assert_eq!(pending_activities(c, "d").await, 0);

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
