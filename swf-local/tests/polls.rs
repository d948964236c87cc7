//! Long polls, exactly-once delivery, history paging (both APIs), page token expiry.

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
/// returned, but the value of taskToken is an empty string" — the member is there, empty,
/// and clients (the host, the bench worker) read that as "no task".
#[tokio::test]
async fn empty_poll_result_carries_an_empty_task_token() {
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
        assert_eq!(body["taskToken"], serde_json::json!(""), "{body}");
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

    // Expiry: shorten the lifetime, then wait until the token is refused with SWF's text.
    env.state
        .set_page_token_lifetime(Duration::from_millis(200));
    let page = history_of(c, "d", &exec)
        .maximum_page_size(1)
        .send()
        .await
        .unwrap();
    let t = page.next_page_token.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match history_of(c, "d", &exec).next_page_token(&t).send().await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "token never expired"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
