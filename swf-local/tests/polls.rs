//! Long polls, exactly-once delivery, history paging (both APIs), page token expiry (24
//! hours, 60 s for a decision task's pages).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_swf::types::*;
use common::*;

#[tokio::test]
async fn empty_poll_is_held_for_the_poll_timeout_and_returns_an_empty_token() {
    let env = Env::start(700).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let t0 = Instant::now();
    let out = poll_activity(c, "d", "idle").send().await.unwrap();
    assert_eq!(out.task_token, "");
    assert!(
        t0.elapsed() >= Duration::from_millis(690),
        "returned after {:?}, before the poll timeout",
        t0.elapsed()
    );
    let out = poll_decision(c, "d", "idle").send().await.unwrap();
    assert_eq!(out.task_token, "");
    assert!(out.events.is_empty());
    let err = poll_activity(c, "nope", "x").send().await.unwrap_err();
    assert!(err.into_service_error().is_unknown_resource_fault());
}

/// Keeps the raw JSON body of every response the client deserializes, to see what is on the
/// wire (the SDK fills a missing required `taskToken` with "" itself).
#[derive(Debug, Default, Clone)]
struct RawBodies(Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl aws_sdk_swf::config::Intercept for RawBodies {
    fn name(&self) -> &'static str {
        "RawBodies"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_swf::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_swf::config::RuntimeComponents,
        _: &mut aws_sdk_swf::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let bytes = context.response().body().bytes().unwrap_or_default();
        let body = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
        self.0.lock().unwrap().push(body);
        Ok(())
    }
}

/// SWF-LIMITS.md and the PollFor*Task docs: with no task "an ActivityTask [DecisionTask] is
/// returned, but the value of taskToken is an empty string". That is the SDKs' view: on the
/// wire SWF leaves the member out (boto3 workers test `'taskToken' not in task`, and moto
/// answers so), and aws-sdk-swf fills the missing required string with "".
#[tokio::test]
async fn an_empty_poll_result_has_no_task_token() {
    let env = Env::start(200).await;
    setup(&env.client, "d", ["60", "120", "60", "30"]).await;
    let bodies = RawBodies::default();
    let c = aws_sdk_swf::Client::from_conf(
        env.client
            .config()
            .to_builder()
            .interceptor(bodies.clone())
            .build(),
    );
    let task = poll_activity(&c, "d", "idle").send().await.unwrap();
    assert!(task.task_token.is_empty());
    let task = poll_decision(&c, "d", "idle").send().await.unwrap();
    assert!(task.task_token.is_empty());
    let bodies = bodies.0.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        assert!(body.get("taskToken").is_none(), "{body}");
        assert_eq!(body["startedEventId"], serde_json::json!(0), "{body}");
    }
}

#[tokio::test]
async fn held_poll_wakes_up_when_a_task_arrives() {
    // A 30 s poll timeout: the poll can only return the task if the wake-up works.
    let env = Env::start(30_000).await;
    let c = env.client.clone();
    setup(&c, "d", ["60", "120", "60", "30"]).await;
    let activity_poll = {
        let c = c.clone();
        tokio::spawn(async move { poll_activity(&c, "d", ACTIVITY_TL).send().await.unwrap() })
    };
    let decision_poll = {
        let c = c.clone();
        tokio::spawn(async move { poll_decision(&c, "d", TL).send().await.unwrap() })
    };
    // Wait until both polls are held (their calls were counted), then feed them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.state.calls("PollForActivityTask") < 1 || env.state.calls("PollForDecisionTask") < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start_wf(&c, "d", "w").await;
    let dt = decision_poll.await.unwrap();
    assert!(!dt.task_token.is_empty());
    decide(&c, &dt.task_token, vec![schedule("a", "act")]).await;
    let task = activity_poll.await.unwrap();
    assert_eq!(task.activity_id, "a");
}

#[tokio::test]
async fn each_task_goes_to_exactly_one_of_8_concurrent_pollers() {
    let env = Env::start(500).await;
    let c = env.client.clone();
    setup(&c, "d", ["60", "120", "60", "30"]).await;
    const WORKFLOWS: usize = 4;
    const PER: usize = 50;
    let done = Arc::new(AtomicUsize::new(0));
    // The pollers are held before the tasks exist, then compete for them.
    let pollers: Vec<_> = (0..8)
        .map(|_| {
            let (c, done) = (c.clone(), done.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                while done.load(Ordering::SeqCst) < WORKFLOWS * PER {
                    let t = poll_activity(&c, "d", ACTIVITY_TL).send().await.unwrap();
                    if t.task_token.is_empty() {
                        continue;
                    }
                    activity_completed(&c, &t.task_token).send().await.unwrap();
                    got.push(format!(
                        "{}/{}",
                        t.workflow_execution.unwrap().workflow_id,
                        t.activity_id
                    ));
                    done.fetch_add(1, Ordering::SeqCst);
                }
                got
            })
        })
        .collect();
    for w in 0..WORKFLOWS {
        start_wf(&c, "d", &format!("w{w}")).await;
    }
    // Completions schedule more decision tasks; fill each workflow once, ack the rest.
    let mut filled = HashSet::new();
    while filled.len() < WORKFLOWS {
        let dt = next_decision(&c, "d").await;
        let wf = dt.workflow_execution.as_ref().unwrap().workflow_id.clone();
        let decisions = if filled.insert(wf) {
            schedules((0..PER).map(|i| format!("a{i}")))
        } else {
            vec![]
        };
        decide(&c, &dt.task_token, decisions).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let all = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(pollers))
        .await
        .expect("all tasks delivered within 60 s");
    for p in all {
        for id in p.unwrap() {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), WORKFLOWS * PER, "every task delivered");
    assert!(
        seen.values().all(|n| *n == 1),
        "a task was delivered twice: {seen:?}"
    );
    assert_eq!(done.load(Ordering::SeqCst), WORKFLOWS * PER);
}

/// Starts a workflow whose first decision schedules `n` activities and completes them, so
/// the next decision task has a long history.
async fn long_history(c: &aws_sdk_swf::Client, n: usize) -> WorkflowExecution {
    let exec = start_and_decide(c, "d", "paged", schedules((0..n).map(|i| format!("a{i}")))).await;
    for _ in 0..n {
        let t = next_activity(c, "d").await;
        activity_completed(c, &t.task_token).send().await.unwrap();
    }
    exec
}

#[tokio::test]
async fn decision_task_history_pages_belong_to_the_same_task() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = long_history(c, 5).await;
    let full = history(c, "d", &exec).await;

    let first = poll_decision(c, "d", TL)
        .maximum_page_size(4)
        .send()
        .await
        .unwrap();
    assert!(!first.task_token.is_empty());
    assert_eq!(first.events.len(), 4);
    let mut events = first.events.clone();
    let mut token = first.next_page_token.clone();
    while let Some(t) = token {
        let page = poll_decision(c, "d", TL)
            .maximum_page_size(4)
            .next_page_token(t)
            .send()
            .await
            .unwrap();
        assert_eq!(
            page.task_token, first.task_token,
            "a next page is the same task"
        );
        assert_eq!(page.started_event_id, first.started_event_id);
        events.extend(page.events);
        token = page.next_page_token;
    }
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..=first.started_event_id).collect::<Vec<_>>());
    // The snapshot ends at DecisionTaskStarted; the live history says the same.
    assert_eq!(full.len() as i64 + 1, first.started_event_id);

    // A decision page token is not valid for GetWorkflowExecutionHistory.
    let first_page_token = first.next_page_token.clone().unwrap();
    let err = history_of(c, "d", &exec)
        .next_page_token(first_page_token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    decide(c, &first.task_token, vec![]).await;
    signal(c, "d", "paged", "s").send().await.unwrap();
    // Reverse order and startAtPreviousStartedEvent.
    let rev = poll_decision(c, "d", TL)
        .reverse_order(true)
        .start_at_previous_started_event(true)
        .send()
        .await
        .unwrap();
    assert_eq!(rev.previous_started_event_id, first.started_event_id);
    let ids: Vec<i64> = rev.events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        (first.started_event_id..=rev.started_event_id)
            .rev()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn get_workflow_execution_history_pages_and_tokens_expire() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    let exec = long_history(c, 3).await;
    let full = history(c, "d", &exec).await;
    let mut got = Vec::new();
    let mut token = None;
    loop {
        let mut req = history_of(c, "d", &exec).maximum_page_size(2);
        if let Some(t) = token {
            req = req.next_page_token(t);
        }
        let page = req.send().await.unwrap();
        assert!(page.events.len() <= 2);
        got.extend(page.events);
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        got.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        full.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
    let rev = history_of(c, "d", &exec)
        .reverse_order(true)
        .send()
        .await
        .unwrap();
    assert_eq!(rev.events.first().unwrap().event_id, full.len() as i64);

    // Expiry: a token 24 hours old is refused with SWF's text.
    let page = history_of(c, "d", &exec)
        .maximum_page_size(1)
        .send()
        .await
        .unwrap();
    let t = page.next_page_token.unwrap();
    env.state.age_page_tokens(DAY + Duration::from_secs(1));
    let err = history_of(c, "d", &exec)
        .next_page_token(&t)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert_eq!(
        message(&err),
        "Specified token has exceeded its maximum lifetime"
    );
    let err = poll_decision(c, "d", TL)
        .next_page_token("never-issued")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "Specified token has exceeded its maximum lifetime"
    );
}

/// The model's nextPageToken docs: "Each pagination token expires after 24 hours".
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The nextPageToken of each paging operation but PollForDecisionTask lives 24 hours, as
/// the model's docs say; a decision task's history pages live 60 s (SWF-LIMITS.md). The
/// tokens are aged by the test hook rather than by waiting.
#[tokio::test]
async fn page_tokens_live_24_hours_and_decision_task_pages_60_s() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;
    register_domain(c, "d2", "1").send().await.unwrap();
    register_activity(c, "d", "act2").send().await.unwrap();
    register_workflow(c, "d", "wf2").send().await.unwrap();
    for id in ["closed1", "closed2"] {
        start_wf(c, "d", id).await;
        c.terminate_workflow_execution()
            .domain("d")
            .workflow_id(id)
            .send()
            .await
            .unwrap();
    }
    let exec = long_history(c, 3).await;
    start_wf(c, "d", "open2").await;
    let since = ExecutionTimeFilter::builder()
        .oldest_date(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap();

    // The first page of each operation, one item long, and its token.
    let decision = poll_decision(c, "d", TL)
        .maximum_page_size(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        decision.workflow_execution.as_ref().unwrap().workflow_id,
        "paged"
    );
    let mut tokens = vec![
        (
            "PollForDecisionTask",
            decision.next_page_token.clone().unwrap(),
        ),
        (
            "ListDomains",
            list_domains(c, RegistrationStatus::Registered)
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
        (
            "ListActivityTypes",
            c.list_activity_types()
                .domain("d")
                .registration_status(RegistrationStatus::Registered)
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
        (
            "ListWorkflowTypes",
            c.list_workflow_types()
                .domain("d")
                .registration_status(RegistrationStatus::Registered)
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
        (
            "ListOpenWorkflowExecutions",
            c.list_open_workflow_executions()
                .domain("d")
                .start_time_filter(since.clone())
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
        (
            "ListClosedWorkflowExecutions",
            c.list_closed_workflow_executions()
                .domain("d")
                .start_time_filter(since.clone())
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
        (
            "GetWorkflowExecutionHistory",
            history_of(c, "d", &exec)
                .maximum_page_size(1)
                .send()
                .await
                .unwrap()
                .next_page_token
                .unwrap(),
        ),
    ];
    // Each token continues its listing; the error code and message of those refused.
    let next_pages = |tokens: Vec<(&'static str, String)>| {
        let since = since.clone();
        let exec = exec.clone();
        async move {
            let mut refused = Vec::new();
            for (op, t) in tokens {
                let err = match op {
                    "PollForDecisionTask" => poll_decision(c, "d", TL)
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    "ListDomains" => list_domains(c, RegistrationStatus::Registered)
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    "ListActivityTypes" => c
                        .list_activity_types()
                        .domain("d")
                        .registration_status(RegistrationStatus::Registered)
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    "ListWorkflowTypes" => c
                        .list_workflow_types()
                        .domain("d")
                        .registration_status(RegistrationStatus::Registered)
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    "ListOpenWorkflowExecutions" => c
                        .list_open_workflow_executions()
                        .domain("d")
                        .start_time_filter(since.clone())
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    "ListClosedWorkflowExecutions" => c
                        .list_closed_workflow_executions()
                        .domain("d")
                        .start_time_filter(since.clone())
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                    _ => history_of(c, "d", &exec)
                        .next_page_token(t)
                        .send()
                        .await
                        .err()
                        .map(|e| (code(&e), message(&e))),
                };
                if let Some(err) = err {
                    refused.push((op, err.0, err.1));
                }
            }
            refused
        }
    };
    let expired = |op| {
        (
            op,
            "ValidationException".to_owned(),
            "Specified token has exceeded its maximum lifetime".to_owned(),
        )
    };
    assert_eq!(next_pages(tokens.clone()).await, vec![]);

    // 61 s on: only the decision task's token is gone.
    env.state.age_page_tokens(Duration::from_secs(61));
    assert_eq!(
        next_pages(tokens.clone()).await,
        vec![expired("PollForDecisionTask")]
    );
    tokens.remove(0);

    // Just under 24 hours on, the others still page; just over, they are gone too.
    env.state
        .age_page_tokens(DAY - Duration::from_secs(61 + 10));
    assert_eq!(next_pages(tokens.clone()).await, vec![]);
    env.state.age_page_tokens(Duration::from_secs(11));
    let ops: Vec<&str> = tokens.iter().map(|(op, _)| *op).collect();
    assert_eq!(
        next_pages(tokens).await,
        ops.into_iter().map(expired).collect::<Vec<_>>()
    );
}

/// Pages GetWorkflowExecutionHistory two events at a time, with a signal (one more event)
/// after every page; returns the event ids collected and the history length at the start.
async fn page_while_growing(c: &aws_sdk_swf::Client, id: &str, reverse: bool) -> (Vec<i64>, i64) {
    let exec = start_wf(c, "d", id).await;
    for _ in 0..3 {
        signal(c, "d", id, "s").send().await.unwrap();
    }
    let at_start = history(c, "d", &exec).await.len() as i64;
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let mut req = history_of(c, "d", &exec)
            .maximum_page_size(2)
            .reverse_order(reverse);
        if let Some(t) = token {
            req = req.next_page_token(t);
        }
        let page = req.send().await.unwrap();
        ids.extend(page.events.iter().map(|e| e.event_id));
        signal(c, "d", id, "s").send().await.unwrap();
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
        assert!(ids.len() < 100, "paging does not end: {ids:?}");
    }
    (ids, at_start)
}

/// A nextPageToken continues the same listing: events appended between two pages make no
/// page repeat or skip events, in either order.
#[tokio::test]
async fn history_pages_neither_repeat_nor_skip_while_the_history_grows() {
    let env = Env::start(500).await;
    let c = &env.client;
    setup(c, "d", ["60", "120", "60", "30"]).await;

    let (ids, at_start) = page_while_growing(c, "rev", true).await;
    assert_eq!(ids, (1..=at_start).rev().collect::<Vec<_>>());

    let (ids, at_start) = page_while_growing(c, "fwd", false).await;
    let last = *ids.last().unwrap();
    assert!(last >= at_start, "{ids:?}");
    assert_eq!(ids, (1..=last).collect::<Vec<_>>());
}
