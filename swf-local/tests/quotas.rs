//! SWF's API rate quotas (SWF-LIMITS.md, "Quotas"): token buckets per operation and per
//! execution for heartbeats, ThrottlingException over them, `GET`/`POST /_quotas`.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::json;
use swf_local::{QuotaSet, Rate};

fn only(op: &str, rate: Rate) -> QuotaSet {
    QuotaSet {
        operations: BTreeMap::from([(op.to_owned(), rate)]),
        ..QuotaSet::none()
    }
}

/// Starts a workflow whose first decision schedules activity `id`, and polls that task:
/// the run and the task's token.
async fn started_activity(
    c: &aws_sdk_swf::Client,
    wf: &str,
    id: &str,
) -> (aws_sdk_swf::types::WorkflowExecution, String) {
    let exec = start_and_decide(c, "d", wf, vec![schedule(id, "act")]).await;
    (exec, next_activity(c, "d").await.task_token)
}

#[tokio::test]
async fn a_new_endpoint_applies_swfs_quotas() {
    let env = Env::start(300).await;
    let (status, body) = raw_http(env.addr, "GET", "/_quotas", "", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["operations"]["PollForActivityTask"],
        json!({"bucket": 2000, "refill_per_s": 200.0})
    );
    assert_eq!(
        body["heartbeats_per_execution"],
        json!({"bucket": 1000, "refill_per_s": 1000.0})
    );

    // RegisterActivityType: a bucket of 200 refilled at 60 a second. A burst gets at least
    // the bucket through, then ThrottlingException, and the throttled type is not registered.
    let c = &env.client;
    register_domain(c, "d", "1").send().await.unwrap();
    let mut registered = 0;
    let throttled = loop {
        assert!(
            registered < 5000,
            "no throttle in {registered} registrations"
        );
        match register_activity(c, "d", &format!("t{registered}"))
            .send()
            .await
        {
            Ok(_) => registered += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(code(&throttled), "ThrottlingException", "{throttled:?}");
    assert!(registered >= 200, "throttled after {registered}");
    let err = describe_activity(c, "d", &format!("t{registered}"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
    let (_, stats) = raw_http(env.addr, "GET", "/_stats", "", "").await;
    assert_eq!(stats["throttled"]["RegisterActivityType"], json!(1));
}

#[tokio::test]
async fn an_answer_over_its_quota_is_throttled_and_changes_nothing() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    env.quotas
        .set(only("RespondActivityTaskCompleted", Rate::new(1, 0.0)));
    let (_, first) = started_activity(c, "w1", "a1").await;
    let (w2, second) = started_activity(c, "w2", "a2").await;
    activity_completed(c, &first)
        .result("one")
        .send()
        .await
        .unwrap();

    let err = activity_completed(c, &second)
        .result("two")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ThrottlingException", "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    // Still open: its token still works, and no completion was recorded.
    let beat = heartbeat(c, &second).send().await.unwrap();
    assert!(!beat.cancel_requested);
    assert!(
        !event_types(c, "d", &w2)
            .await
            .contains(&"ActivityTaskCompleted".to_owned())
    );

    // New quotas apply at once, with full buckets.
    let (status, _) = raw_http(env.addr, "POST", "/_quotas", "", "{}").await;
    assert_eq!(status, 200);
    activity_completed(c, &second)
        .result("two")
        .send()
        .await
        .unwrap();
    let (_, stats) = raw_http(env.addr, "GET", "/_stats", "", "").await;
    assert_eq!(stats["throttled"]["RespondActivityTaskCompleted"], json!(1));
}

#[tokio::test]
async fn heartbeats_have_a_quota_per_execution() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    env.quotas.set(QuotaSet {
        heartbeats_per_execution: Some(Rate::new(2, 0.0)),
        ..QuotaSet::none()
    });
    let (_, a) = started_activity(c, "w1", "a1").await;
    let (_, b) = started_activity(c, "w2", "a2").await;
    for details in ["1", "2"] {
        heartbeat(c, &a).details(details).send().await.unwrap();
    }
    let err = heartbeat(c, &a).details("3").send().await.unwrap_err();
    assert_eq!(code(&err), "ThrottlingException", "{err:?}");
    assert!(message(&err).contains("workflow execution"), "{err:?}");
    heartbeat(c, &b)
        .details("b")
        .send()
        .await
        .expect("another execution has a bucket of its own");

    // The throttled heartbeat recorded nothing: the details are still the second's.
    let (_, acts) = raw_http(env.addr, "GET", "/_activities?domain=d", "", "").await;
    let a1 = acts["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["activityId"] == "a1")
        .expect("a1 open");
    assert_eq!(a1["details"], json!("2"), "{acts}");
    // A token that names no task is still UnknownResourceFault, not a throttle.
    let err = heartbeat(c, "no-such-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
}

#[tokio::test]
async fn post_quotas_refuses_what_is_not_a_quota_and_keeps_the_old_ones() {
    let env = Env::start(300).await;
    let before = env.quotas.get();
    for (body, names) in [
        (
            r#"{"operations":{"PollForTask":{"bucket":1,"refill_per_s":1}}}"#,
            "operations.PollForTask",
        ),
        (
            r#"{"operations":{"PollForActivityTask":{"bucket":1,"refill_per_s":-2}}}"#,
            "refill_per_s",
        ),
        (r#"{"operation":{}}"#, "operation"),
        ("not json", "POST /_quotas"),
    ] {
        let (status, msg) = raw_http(env.addr, "POST", "/_quotas", "", body).await;
        assert_eq!(status, 400, "{body}");
        assert!(msg.to_string().contains(names), "{body}: {msg}");
    }
    assert_eq!(env.quotas.get(), before);
}

/// SWF schedules at most 2,000 activity tasks a second on one task list; a
/// ScheduleActivityTask decision over that fails with ACTIVITY_CREATION_RATE_EXCEEDED, and
/// the decider gets a decision task to see it. Other task lists have their own rate.
#[tokio::test]
async fn scheduling_over_a_task_lists_rate_fails_the_decision() {
    use aws_sdk_swf::types::{EventType, ScheduleActivityTaskFailedCause};
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    assert_eq!(
        env.quotas.get().activities_scheduled_per_task_list,
        Some(Rate::new(2000, 2000.0)),
        "SWF's rate by default"
    );
    env.quotas.set(QuotaSet {
        activities_scheduled_per_task_list: Some(Rate::new(2, 0.0)),
        ..QuotaSet::none()
    });
    let on_other_list = schedule_with(
        aws_sdk_swf::types::ScheduleActivityTaskDecisionAttributes::builder()
            .activity_type(atype("act"))
            .activity_id("other")
            .task_list(tl("other-list"))
            .build()
            .unwrap(),
    );
    let exec = start_and_decide(
        c,
        "d",
        "w",
        vec![
            schedule("a1", "act"),
            schedule("a2", "act"),
            schedule("a3", "act"),
            on_other_list,
        ],
    )
    .await;
    let h = history(c, "d", &exec).await;
    let scheduled: Vec<_> = h
        .iter()
        .filter_map(|e| e.activity_task_scheduled_event_attributes.as_ref())
        .map(|a| a.activity_id.as_str())
        .collect();
    assert_eq!(scheduled, ["a1", "a2", "other"]);
    let failed: Vec<_> = h
        .iter()
        .filter_map(|e| e.schedule_activity_task_failed_event_attributes.as_ref())
        .map(|a| (a.activity_id.as_str(), a.cause.clone()))
        .collect();
    assert_eq!(
        failed,
        [(
            "a3",
            ScheduleActivityTaskFailedCause::ActivityCreationRateExceeded
        )]
    );
    assert_eq!(pending_activities(c, "d").await, 2);
    // The failure asks the decider to decide again.
    let dt = next_decision(c, "d").await;
    assert!(
        dt.events
            .iter()
            .any(|e| e.event_type == EventType::ScheduleActivityTaskFailed)
    );
}
