//! Validation from the service model: required members, lengths, ranges, enums, SWF's name
//! rule, durations, and bodies that cannot be deserialized (SerializationException). The
//! SDK checks required members and JSON types itself, so those go over raw HTTP.

mod common;

use aws_sdk_swf::types::*;
use common::*;

fn is_validation<E: aws_sdk_swf::error::ProvideErrorMetadata + std::fmt::Debug>(e: &E) -> bool {
    code(e) == "ValidationException"
}

#[tokio::test]
async fn required_members_and_enums_are_checked_by_the_server() {
    let env = Env::start(300).await;
    setup(&env.client, "d", ["60", "120", "60", "30"]).await;
    for (op, body, path) in [
        ("PollForActivityTask", r#"{"domain":"d"}"#, "taskList"),
        (
            "PollForActivityTask",
            r#"{"domain":"d","taskList":{}}"#,
            "taskList.name",
        ),
        (
            "RegisterDomain",
            r#"{"name":"x"}"#,
            "workflowExecutionRetentionPeriodInDays",
        ),
        ("RespondActivityTaskCompleted", r#"{}"#, "taskToken"),
        (
            "StartWorkflowExecution",
            r#"{"domain":"d","workflowId":"w","workflowType":{"name":"wf"}}"#,
            "workflowType.version",
        ),
        (
            "RespondDecisionTaskCompleted",
            r#"{"taskToken":"t","decisions":[{"decisionType":"ScheduleActivityTask","scheduleActivityTaskDecisionAttributes":{"activityId":"a"}}]}"#,
            "decisions.1.member.scheduleActivityTaskDecisionAttributes.activityType",
        ),
    ] {
        let (status, body) = raw_call(env.addr, Some(op), body).await;
        assert_eq!(status, 400, "{op}: {body}");
        assert_eq!(
            body["__type"], "com.amazon.coral.validate#ValidationException",
            "{op}: {body}"
        );
        let msg = body["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("at '{path}'")) && msg.contains("must not be null"),
            "{op}: {msg}"
        );
    }
    let (status, body) = raw_call(
        env.addr,
        Some("ListDomains"),
        r#"{"registrationStatus":"BOGUS"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("enum value set"),
        "{body}"
    );
    let (status, body) = raw_call(
        env.addr,
        Some("ListDomains"),
        r#"{"registrationStatus":"REGISTERED","maximumPageSize":"x"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A decision without the attributes its type requires is refused, naming the type.
    let (status, body) = raw_call(
        env.addr,
        Some("RespondDecisionTaskCompleted"),
        r#"{"taskToken":"t","decisions":[{"decisionType":"ScheduleLambdaFunction"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("ScheduleLambdaFunction"),
        "{body}"
    );
}

/// A body that cannot be deserialized (not JSON, not a JSON object, or a member whose JSON
/// type is not its shape's) is a SerializationException (HTTP 400, `__type`
/// com.amazon.coral.service#SerializationException), as awsJson services answer; the
/// constraints on well-typed values stay ValidationException.
#[tokio::test]
async fn undeserializable_bodies_are_serialization_exceptions() {
    let env = Env::start(300).await;
    setup(&env.client, "d", ["60", "120", "60", "30"]).await;
    for (op, body, names) in [
        (
            "ListDomains",
            r#"{"registrationStatus":"REGISTERED""#,
            "not valid JSON",
        ),
        ("ListDomains", r#"["REGISTERED"]"#, "not an array"),
        ("ListDomains", r#""REGISTERED""#, "not a string"),
        (
            "ListDomains",
            r#"{"registrationStatus":"REGISTERED","maximumPageSize":"5"}"#,
            "'maximumPageSize' is a string",
        ),
        (
            "ListDomains",
            r#"{"registrationStatus":"REGISTERED","maximumPageSize":1.5}"#,
            "'maximumPageSize' is a number",
        ),
        (
            "ListDomains",
            r#"{"registrationStatus":"REGISTERED","reverseOrder":"true"}"#,
            "'reverseOrder' is a string",
        ),
        (
            "ListDomains",
            r#"{"registrationStatus":5}"#,
            "'registrationStatus' is a number",
        ),
        (
            "PollForActivityTask",
            r#"{"domain":"d","taskList":"atl"}"#,
            "'taskList' is a string",
        ),
        (
            "RespondDecisionTaskCompleted",
            r#"{"taskToken":"t","decisions":{"decisionType":"RecordMarker"}}"#,
            "'decisions' is an object",
        ),
        (
            "ListOpenWorkflowExecutions",
            r#"{"domain":"d","startTimeFilter":{"oldestDate":"yesterday"}}"#,
            "'startTimeFilter.oldestDate' is a string",
        ),
    ] {
        let (status, body) = raw_call(env.addr, Some(op), body).await;
        assert_eq!(status, 400, "{op}: {body}");
        assert_eq!(
            body["__type"], "com.amazon.coral.service#SerializationException",
            "{op}: {body}"
        );
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(names), "{op}: {msg}");
    }
    // Well-typed values that break a constraint.
    for body in [
        r#"{"registrationStatus":"REGISTERED","maximumPageSize":1001}"#,
        r#"{"registrationStatus":"BOGUS"}"#,
        r#"{}"#,
    ] {
        let (status, body) = raw_call(env.addr, Some("ListDomains"), body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["__type"], "com.amazon.coral.validate#ValidationException",
            "{body}"
        );
    }

    // aws-sdk-swf, which models no SerializationException, surfaces it as an error with
    // that code and the message. (The SDK sends only well-typed members, so its body is
    // replaced on the way.)
    let err = list_domains(&env.client, RegistrationStatus::Registered)
        .customize()
        .mutate_request(|req| {
            let body = r#"{"registrationStatus":"REGISTERED","maximumPageSize":"5"}"#;
            *req.body_mut() = aws_smithy_types::body::SdkBody::from(body);
            req.headers_mut()
                .insert("content-length", body.len().to_string());
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SerializationException", "{err:?}");
    assert_eq!(
        message(&err),
        "Cannot deserialize the ListDomains request: 'maximumPageSize' is a string (5), where the model's PageSize is an integer"
    );
}

#[tokio::test]
async fn lengths_and_ranges() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let long_id = "a".repeat(257);
    // A bad decision is refused as a whole, before any is applied.
    let err = decision_completed(c, &dt.task_token)
        .decisions(schedule("ok", "act"))
        .decisions(schedule(&long_id, "act"))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err), "{err:?}");
    assert!(
        message(&err)
            .contains("decisions.2.member.scheduleActivityTaskDecisionAttributes.activityId"),
        "{}",
        message(&err)
    );
    assert!(
        !event_types(c, "d", &exec)
            .await
            .contains(&"ActivityTaskScheduled".to_owned())
    );
    decide(c, &dt.task_token, vec![schedule("ok", "act")]).await;
    let task = next_activity(c, "d").await;

    let err = heartbeat(c, &task.task_token)
        .details("x".repeat(2049))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    assert!(
        message(&err).contains("less than or equal to 2048"),
        "{}",
        message(&err)
    );
    heartbeat(c, &task.task_token)
        .details("x".repeat(2048))
        .send()
        .await
        .unwrap();
    // Lengths count characters, not bytes.
    heartbeat(c, &task.task_token)
        .details("é".repeat(2048))
        .send()
        .await
        .unwrap();

    let err = activity_failed(c, &task.task_token)
        .reason("r".repeat(257))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = activity_failed(c, &task.task_token)
        .details("d".repeat(32769))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = activity_completed(c, &task.task_token)
        .result("r".repeat(32769))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = activity_completed(c, &"t".repeat(1025))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = poll_activity(c, "d", "x")
        .identity("i".repeat(257))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = register_domain(c, "", "1").send().await.unwrap_err();
    assert!(is_validation(&err));
    let err = c
        .register_activity_type()
        .domain("d")
        .name("n")
        .version("v".repeat(65))
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    let err = list_domains(c, RegistrationStatus::Registered)
        .maximum_page_size(1001)
        .send()
        .await
        .unwrap_err();
    assert!(is_validation(&err));
    activity_completed(c, &task.task_token)
        .result("r".repeat(32768))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn swf_name_rule_and_durations() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    for bad in [
        " lead", "trail ", "a:b", "a/b", "a|b", "a\u{1}b", "a\u{7f}b", "a\u{85}b", "arn",
    ] {
        let err = poll_activity(c, "d", bad).send().await.unwrap_err();
        assert!(is_validation(&err), "task list {bad:?} accepted");
        let err = start_workflow(c, "d", bad).send().await.unwrap_err();
        assert!(is_validation(&err), "workflowId {bad:?} accepted");
        let err = register_activity(c, "d", bad).send().await.unwrap_err();
        assert!(is_validation(&err), "type name {bad:?} accepted");
    }
    // Not the name rule: 'arnold' and inner spaces are fine.
    register_activity(c, "d", "arnold has spaces")
        .send()
        .await
        .unwrap();
    for bad in ["abc", "-1", "1.5", ""] {
        let err = start_workflow(c, "d", "w")
            .task_start_to_close_timeout(bad)
            .send()
            .await
            .unwrap_err();
        assert!(is_validation(&err), "duration {bad:?} accepted");
    }
    start_workflow(c, "d", "w")
        .task_start_to_close_timeout("NONE")
        .send()
        .await
        .unwrap();
    let err = register_domain(c, "e", "ten").send().await.unwrap_err();
    assert!(is_validation(&err));
}

#[tokio::test]
async fn unknown_and_closed_tokens_are_unknown_resources() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let err = heartbeat(c, "no-such-token").send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    let err = decision_completed(c, "no-such-token")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    // A decision token is not an activity token.
    let err = activity_completed(c, &dt.task_token)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    decide(c, &dt.task_token, vec![schedule("a", "act")]).await;
    let task = next_activity(c, "d").await;
    activity_failed(c, &task.task_token).send().await.unwrap();
    for e in [
        activity_failed(c, &task.task_token)
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_unknown_resource_fault(),
        activity_canceled(c, &task.task_token)
            .send()
            .await
            .unwrap_err()
            .into_service_error()
            .is_unknown_resource_fault(),
    ] {
        assert!(e);
    }
}
