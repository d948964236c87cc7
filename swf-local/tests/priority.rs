//! Task priority: a task list hands out its highest-priority task first ("higher numbers
//! indicate higher priority", absent = 0), the oldest first among equal priorities.

mod common;

use aws_sdk_swf::types::*;
use common::*;

/// ScheduleActivityTask of `act@1` as activity `id` with `taskPriority` `priority`.
fn schedule_at(id: &str, priority: Option<&str>) -> Decision {
    schedule_with(
        ScheduleActivityTaskDecisionAttributes::builder()
            .activity_type(atype("act"))
            .activity_id(id)
            .set_task_priority(priority.map(str::to_owned))
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn activity_tasks_go_out_by_priority_then_in_schedule_order() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    // `hi@1` schedules at its registered default priority, 7.
    register_activity(c, "d", "hi")
        .default_task_list(tl(ACTIVITY_TL))
        .default_task_schedule_to_start_timeout("60")
        .default_task_schedule_to_close_timeout("120")
        .default_task_start_to_close_timeout("60")
        .default_task_heartbeat_timeout("30")
        .default_task_priority("7")
        .send()
        .await
        .unwrap();
    start_and_decide(
        c,
        "d",
        "w",
        vec![
            schedule_at("none-1", None),
            schedule_at("five-1", Some("5")),
            schedule_at("low", Some("-3")),
            schedule_at("five-2", Some("5")),
            schedule_at("zero", Some("0")),
            schedule("default-7", "hi"),
            schedule_at("max", Some("2147483647")),
            schedule_at("min", Some("-2147483648")),
            schedule_at("five-3", Some("5")),
        ],
    )
    .await;
    // A plain count, whatever the priorities.
    assert_eq!(pending_activities(c, "d").await, 9);
    let mut order = Vec::new();
    for _ in 0..9 {
        order.push(next_activity(c, "d").await.activity_id);
    }
    assert_eq!(
        order,
        [
            "max",
            "default-7",
            "five-1",
            "five-2",
            "five-3",
            "none-1",
            "zero",
            "low",
            "min"
        ]
    );
}

#[tokio::test]
async fn decision_tasks_go_out_by_the_executions_priority_then_in_order() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    for (id, priority) in [
        ("none", None),
        ("ten-1", Some("10")),
        ("low", Some("-1")),
        ("ten-2", Some("10")),
        ("zero", Some("0")),
    ] {
        started(start_workflow(c, "d", id).set_task_priority(priority.map(str::to_owned))).await;
    }
    let pending = c
        .count_pending_decision_tasks()
        .domain("d")
        .task_list(tl(TL))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.count, 5);
    let mut order = Vec::new();
    for _ in 0..5 {
        let dt = next_decision(c, "d").await;
        order.push(dt.workflow_execution.unwrap().workflow_id);
    }
    assert_eq!(order, ["ten-1", "ten-2", "none", "zero", "low"]);
}

/// A later decision task of an execution keeps its priority: a signal to a high-priority
/// run is decided before older decision tasks of lower priority.
#[tokio::test]
async fn a_signalled_high_priority_run_overtakes_older_decision_tasks() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    started(start_workflow(c, "d", "hi").task_priority("3")).await;
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![]).await;
    start_wf(c, "d", "plain-1").await;
    start_wf(c, "d", "plain-2").await;
    signal(c, "d", "hi", "wake").send().await.unwrap();
    let first = next_decision(c, "d").await;
    assert_eq!(first.workflow_execution.unwrap().workflow_id, "hi");
    let second = next_decision(c, "d").await;
    assert_eq!(second.workflow_execution.unwrap().workflow_id, "plain-1");
}
