//! Fault injection (Rust API and `POST /_faults`), `GET /_stats`, restarts with state kept,
//! and an endpoint that is down at start.

mod common;

use std::time::Duration;

use aws_sdk_swf::error::SdkError;
use aws_sdk_swf::types::RegistrationStatus;
use common::*;
use swf_local::{FaultKind, Faults, State};

#[tokio::test]
async fn each_fault_kind_maps_to_the_sdk_error_a_worker_sees() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let f = &env.faults;
    let list = || list_domains(c, RegistrationStatus::Registered).send();

    f.inject(Some("ListDomains"), FaultKind::Status500, Some(1));
    let err = list().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(code(&err), "InternalFailure");
    list().await.expect("count 1: only the first call is hit");

    f.inject(Some("ListDomains"), FaultKind::Status503, Some(1));
    let err = list().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));

    f.inject(Some("ListDomains"), FaultKind::Throttle, Some(1));
    let err = list().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(code(&err), "ThrottlingException");

    f.inject(
        Some("PollForActivityTask"),
        FaultKind::OperationNotPermitted,
        Some(1),
    );
    let err = poll_activity(c, "d", "x").send().await.unwrap_err();
    assert!(err.into_service_error().is_operation_not_permitted_fault());

    f.inject(
        Some("PollForActivityTask"),
        FaultKind::UnknownResource,
        Some(1),
    );
    let err = poll_activity(c, "d", "x").send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());

    f.inject(Some("ListDomains"), FaultKind::ExpiredToken, Some(1));
    let err = list().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(code(&err), "ExpiredTokenException");

    f.inject(Some("ListDomains"), FaultKind::Reset, Some(1));
    let err = list().await.unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    list()
        .await
        .expect("a new connection works after the reset");

    // Hang: longer than the client's attempt timeout -> the client times out.
    f.inject(
        Some("ListDomains"),
        FaultKind::hang(Duration::from_secs(3)),
        Some(1),
    );
    let impatient = client(&env.url, Duration::from_millis(500));
    let err = impatient
        .list_domains()
        .registration_status(RegistrationStatus::Registered)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    // Hang shorter than the timeout: served normally after the delay.
    f.inject(
        Some("ListDomains"),
        FaultKind::hang(Duration::from_millis(200)),
        Some(1),
    );
    assert_eq!(list().await.unwrap().domain_infos.len(), 1);

    // Late response: the answer is taken at once, the client times out waiting for the
    // reply, and a retry finds the task gone; the history has the one completion.
    let exec = start_and_decide(c, "d", "late", vec![schedule("a", "act")]).await;
    let task = next_activity(c, "d").await;
    f.inject(
        Some("RespondActivityTaskCompleted"),
        FaultKind::LateResponse { ms: 3000 },
        Some(1),
    );
    let err = activity_completed(&impatient, &task.task_token)
        .result("first")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    let err = activity_completed(c, &task.task_token)
        .result("retry")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
    let completed: Vec<_> = history(c, "d", &exec)
        .await
        .into_iter()
        .filter_map(|e| e.activity_task_completed_event_attributes)
        .map(|a| a.result)
        .collect();
    assert_eq!(completed, [Some("first".to_string())]);

    // All operations, until cleared.
    f.inject(None, FaultKind::Status503, None);
    assert!(list().await.is_err());
    assert!(c.describe_domain().name("d").send().await.is_err());
    assert!(list().await.is_err());
    f.clear();
    list().await.unwrap();
    assert!(f.rules().is_empty());
}

#[tokio::test]
async fn control_endpoints_set_faults_and_count_calls() {
    let env = Env::start(300).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    start_and_decide(c, "d", "w", vec![schedule("a", "act")]).await;
    let task = next_activity(c, "d").await;
    for _ in 0..3 {
        heartbeat(c, &task.task_token).send().await.unwrap();
    }
    let (status, stats) = raw_http(env.addr, "GET", "/_stats", "", "").await;
    assert_eq!(status, 200);
    assert_eq!(stats["calls"]["RecordActivityTaskHeartbeat"], 3, "{stats}");
    assert_eq!(stats["calls"]["RegisterDomain"], 1, "{stats}");

    let rules = r#"{"rules":[{"kind":"throttle","operation":"RecordActivityTaskHeartbeat","count":2},{"kind":"hang","ms":10,"operation":"DescribeDomain"}]}"#;
    let (status, body) = raw_http(env.addr, "POST", "/_faults", "", rules).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"].as_array().unwrap().len(), 2);
    for _ in 0..2 {
        let err = heartbeat(c, &task.task_token).send().await.unwrap_err();
        assert_eq!(code(&err), "ThrottlingException");
    }
    heartbeat(c, &task.task_token).send().await.unwrap();
    assert_eq!(
        env.state.calls("RecordActivityTaskHeartbeat"),
        6,
        "faulted calls are counted too"
    );
    let (_, body) = raw_http(env.addr, "POST", "/_faults", "", r#"{"clear":true}"#).await;
    assert_eq!(body["rules"].as_array().unwrap().len(), 0);
    let (status, body) = raw_http(
        env.addr,
        "POST",
        "/_faults",
        "",
        r#"{"rules":[{"kind":"explode"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("/_faults"), "{body}");
    // A misspelt operation would never fire: refused, naming it, and nothing is added.
    let (status, body) = raw_http(
        env.addr,
        "POST",
        "/_faults",
        "",
        r#"{"rules":[{"kind":"throttle","operation":"PollForActivityTasks"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.as_str()
            .unwrap()
            .contains("\"PollForActivityTasks\" is not an SWF operation"),
        "{body}"
    );
    let (_, body) = raw_http(env.addr, "GET", "/_faults", "", "").await;
    assert_eq!(body["rules"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn restart_on_the_same_port_keeps_the_state() {
    let env = Env::start(300).await;
    let c = env.client.clone();
    setup(&c, "d", ["60", "120", "60", "30"]).await;
    let exec = start_wf(&c, "d", "w").await;
    let addr = env.addr;
    let state = env.stop().await;
    let err = list_domains(&c, RegistrationStatus::Registered)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "server is down: {err:?}"
    );

    let env = Env::start_at(addr, 300, state, Faults::default()).await;
    assert_eq!(env.addr, addr);
    let dt = next_decision(&c, "d").await;
    assert_eq!(dt.workflow_execution.unwrap().run_id, exec.run_id);
    decide(&c, &dt.task_token, vec![complete_wf("ok")]).await;
}

#[tokio::test]
async fn endpoint_down_at_start_then_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = client(&format!("http://{port}"), Duration::from_secs(5));
    let err = list_domains(&c, RegistrationStatus::Registered)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let _env = Env::start_at(port, 300, State::new(), Faults::default()).await;
    list_domains(&c, RegistrationStatus::Registered)
        .send()
        .await
        .unwrap();
}
