//! SWF's limits: the values SWF refuses (run time over one year, retention over 90 days,
//! request size) and the quotas it counts (types per domain, pollers per task list).

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
