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
