//! Deprecating a domain: what happens to its types, its open executions, and the calls that
//! use it afterwards. Tagging a domain.

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
/// turns an unlisted fault into an unhandled error, so the refusals use a fault each
/// operation lists: UnknownResourceFault, naming the domain, which "is no longer available
/// for this operation", for a start (of a registered type or of one that never was) and
/// for a registration. TypeDeprecatedFault is for a deprecated type of a registered domain.
#[tokio::test]
async fn a_deprecated_domain_is_refused_with_faults_the_operation_lists() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    setup(c, "e", ["60", "120", "60", "30"]).await;
    c.deprecate_domain().name("d").send().await.unwrap();

    for ty in ["wf", "no-such-type"] {
        let err = c
            .start_workflow_execution()
            .domain("d")
            .workflow_id("w")
            .workflow_type(wtype(ty))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_unknown_resource_fault(), "{ty}: {err:?}");
        assert_eq!(
            message(&err),
            "Domain is deprecated, no workflow executions can be started in it: d"
        );
    }
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

    deprecate_workflow(c, "e", "wf").send().await.unwrap();
    let err = start_workflow(c, "e", "w")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_type_deprecated_fault(), "{err:?}");
}

fn tag(key: &str, value: &str) -> ResourceTag {
    ResourceTag::builder()
        .key(key)
        .value(value)
        .build()
        .unwrap()
}

/// The tags of the resource `arn`, as (key, value) pairs in key order.
async fn tags_of(c: &aws_sdk_swf::Client, arn: &str) -> Vec<(String, String)> {
    let out = c
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    out.tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value.unwrap_or_default()))
        .collect()
}

/// Domains are SWF's taggable resources, named by the ARN DescribeDomain shows: tags come
/// with RegisterDomain or TagResource (a key given again takes the new value), UntagResource
/// removes keys, and a domain has at most 50 (TooManyTagsFault, nothing changed).
#[tokio::test]
async fn domains_carry_up_to_50_tags() {
    let env = Env::start(300).await;
    let c = &env.client;
    register_domain(c, "d", "1")
        .tags(tag("team", "media"))
        .send()
        .await
        .unwrap();
    let arn = c
        .describe_domain()
        .name("d")
        .send()
        .await
        .unwrap()
        .domain_info
        .unwrap()
        .arn
        .unwrap();
    assert_eq!(tags_of(c, &arn).await, [("team".into(), "media".into())]);

    c.tag_resource()
        .resource_arn(&arn)
        .tags(tag("team", "video"))
        .tags(tag("env", "dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(c, &arn).await,
        [
            ("env".into(), "dev".into()),
            ("team".into(), "video".into())
        ]
    );
    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("env")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(c, &arn).await, [("team".into(), "video".into())]);

    let many = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    let err = c
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TooManyTagsFault", "{err:?}");
    assert_eq!(tags_of(c, &arn).await.len(), 1, "a refused call adds none");

    let unknown = arn.replace("/domain/d", "/domain/nope");
    let err = c
        .list_tags_for_resource()
        .resource_arn(&unknown)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_unknown_resource_fault(), "{err:?}");
}
