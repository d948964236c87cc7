//! Deprecating a domain: what happens to its types, its open executions, and the calls that
//! use it afterwards.

mod common;

use aws_sdk_swf::types::*;
use common::*;

/// DeprecateDomain: "Deprecating a domain also deprecates all activity and workflow types
/// registered in the domain. Executions that were started before the domain was deprecated
/// continues to run." UndeprecateDomain leaves the types deprecated (its docs say nothing
/// of them; Undeprecate*Type brings one back).
#[tokio::test]
async fn deprecating_a_domain_deprecates_its_types_and_open_runs_go_on() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;

    c.deprecate_domain().name("d").send().await.unwrap();
    let at = describe_activity(c, "d", "act")
        .send()
        .await
        .unwrap()
        .type_info
        .unwrap();
    assert_eq!(at.status, RegistrationStatus::Deprecated);
    assert!(at.deprecation_date.is_some());
    let wt = c
        .describe_workflow_type()
        .domain("d")
        .workflow_type(wtype("wf"))
        .send()
        .await
        .unwrap()
        .type_info
        .unwrap();
    assert_eq!(wt.status, RegistrationStatus::Deprecated);
    assert!(wt.deprecation_date.is_some());
    let listed = c
        .list_activity_types()
        .domain("d")
        .registration_status(RegistrationStatus::Deprecated)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.type_infos.len(), 1);

    // The open run goes on, and its decider cannot schedule the deprecated type.
    decide(c, &dt.task_token, vec![schedule("a1", "act")]).await;
    let failed = wait_event(c, "d", &exec, EventType::ScheduleActivityTaskFailed)
        .await
        .schedule_activity_task_failed_event_attributes
        .unwrap();
    assert_eq!(
        failed.cause,
        ScheduleActivityTaskFailedCause::ActivityTypeDeprecated
    );
    assert_eq!(pending_activities(c, "d").await, 0);
    signal(c, "d", "w", "still-open").send().await.unwrap();
    let dt = next_decision(c, "d").await;
    decide(c, &dt.task_token, vec![complete_wf("done")]).await;
    wait_event(c, "d", &exec, EventType::WorkflowExecutionCompleted).await;

    // A deprecated type can be deleted; undeprecating the domain leaves the rest deprecated.
    delete_activity(c, "d", "act").send().await.unwrap();
    c.undeprecate_domain().name("d").send().await.unwrap();
    let wt = c
        .describe_workflow_type()
        .domain("d")
        .workflow_type(wtype("wf"))
        .send()
        .await
        .unwrap()
        .type_info
        .unwrap();
    assert_eq!(wt.status, RegistrationStatus::Deprecated);
}

/// A deprecated domain "cannot be used to create new workflow executions or register new
/// types". SWF's model lists DomainDeprecatedFault only for DeprecateDomain, and aws-sdk-swf
/// turns an unlisted fault into an unhandled error, so the refusals use faults each
/// operation lists: TypeDeprecatedFault for a start (the domain's types are deprecated with
/// it), UnknownResourceFault for a registration (the domain "is no longer available for this
/// operation").
#[tokio::test]
async fn a_deprecated_domain_is_refused_with_faults_the_operation_lists() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    c.deprecate_domain().name("d").send().await.unwrap();

    let err = start_wf_err(c).await;
    assert!(err.is_type_deprecated_fault(), "{err:?}");
    let err = register_activity(c, "d", "new")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
    let err = register_workflow(c, "d", "new")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
}

async fn start_wf_err(
    c: &aws_sdk_swf::Client,
) -> aws_sdk_swf::operation::start_workflow_execution::StartWorkflowExecutionError {
    start_workflow(c, "d", "w")
        .send()
        .await
        .unwrap_err()
        .into_service_error()
}
