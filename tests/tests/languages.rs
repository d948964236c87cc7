//! Issue 6, end to end: the echo and countdown examples of every language (Rust, Python,
//! JavaScript, C) served by one `swasm run` against swf-local. Echo completes with its input
//! and fails `BadInput` on "fail"; countdown fails `BadInput` on input that is not its JSON
//! object of integers, its heartbeat details show in the endpoint (`GET /_activities`) and it
//! ends canceled after the decider's RequestCancelActivityTask.

use std::time::Duration;

use aws_sdk_swf::types::EventType;
use serde_json::Value;
use swasm_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// (activity id, input) of countdown runs every language must fail with `BadInput` instead
/// of running the defaults or a rounded number of steps: the Rust countdown's rule (serde's,
/// `plugins/rust/countdown`), which the other three follow.
const BAD_COUNTDOWN_INPUTS: [(&str, &str); 10] = [
    ("bad-json", "not json"),
    ("bad-fraction", r#"{"steps":5.9}"#),
    ("bad-negative", r#"{"steps":-1}"#),
    ("bad-null", r#"{"steps":null}"#),
    ("bad-bool", r#"{"steps":true}"#),
    ("bad-float", r#"{"steps":1.0}"#),
    ("bad-too-big", r#"{"steps":4294967296}"#),
    ("bad-unknown-key", r#"{"steps":1,"stepms":1}"#),
    ("bad-repeated-key", r#"{"steps":1,"steps":2}"#),
    ("bad-array", "[1,1]"),
];

/// (language, suffix of its plugin names: `echo{suffix}@1`, `countdown{suffix}@1`)
const LANGUAGES: [(&str, &str); 4] = [
    ("rust", ""),
    ("python", "-py"),
    ("javascript", "-js"),
    ("c", "-c"),
];

/// The entry of `activity_id` of `workflow_id` in a `/_activities` list, if present.
fn entry<'a>(list: &'a Value, workflow_id: &str, activity_id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|a| {
        a["workflowId"].as_str() == Some(workflow_id)
            && a["activityId"].as_str() == Some(activity_id)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_echoes_fails_heartbeats_and_cancels() {
    let types: Vec<String> = LANGUAGES
        .iter()
        .flat_map(|(_, s)| [format!("echo{s}@1"), format!("countdown{s}@1")])
        .collect();
    let scenario = Scenario::start(
        "languages",
        &types.iter().map(|t| (t.as_str(), None)).collect::<Vec<_>>(),
    )
    .await;
    let Scenario { swf, swf_local, .. } = &scenario;
    let files: Vec<String> = types.iter().map(|t| format!("{t}.wasm")).collect();
    let mut tl = TaskListSpec::new(
        "main",
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    tl.max_concurrent = 12;
    let mut config = scenario.host_config(vec![tl]);
    // Python and JavaScript take seconds to compile: keep their code across runs.
    config.cache_dir = Some(
        std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(".cache/swasm/test-cache"),
    );
    config.extra = "[defaults]\nheartbeat_interval_s = 1\n".into();
    let _host = Host::start(&config.write(), &[]);

    let countdown_input = r#"{"steps":200,"step_ms":50}"#;
    for (lang, s) in LANGUAGES {
        let mut countdown = Activity::new(
            "countdown",
            &format!("countdown{s}@1"),
            "main",
            Some(countdown_input),
        );
        countdown.heartbeat = "30".into();
        let mut acts = vec![
            Activity::new(
                "echo",
                &format!("echo{s}@1"),
                "main",
                Some(&format!("hi {lang}")),
            ),
            Activity::new("fail", &format!("echo{s}@1"), "main", Some("fail")),
            countdown,
        ];
        for (id, input) in BAD_COUNTDOWN_INPUTS {
            acts.push(Activity::new(
                id,
                &format!("countdown{s}@1"),
                "main",
                Some(input),
            ));
        }
        swf.start(&format!("w-{lang}"), &acts, false).await.unwrap();
    }

    // Each countdown's heartbeat details reach the endpoint; then the decider cancels it.
    let mut seen_details = Vec::new();
    for (lang, _) in LANGUAGES {
        let wf = format!("w-{lang}");
        let details = wait_until(
            &format!("{lang}'s countdown heartbeat details in /_activities"),
            2 * MINUTE,
            || async {
                let all = swf_local.activities("languages").await;
                let d = entry(&all["open"], &wf, "countdown")?["details"].as_str()?;
                Some(d.to_string())
            },
        )
        .await;
        let progress: Value = serde_json::from_str(&details)
            .unwrap_or_else(|e| panic!("{lang}: details {details:?} are not JSON: {e}"));
        assert_eq!(progress["of"], 200, "{lang}: {details}");
        assert!(progress["step"].as_u64().is_some(), "{lang}: {details}");
        seen_details.push(details);
        swf.signal_cancel(&wf, "countdown").await.unwrap();
    }

    for (lang, s) in LANGUAGES {
        let wf = format!("w-{lang}");
        let closed = swf
            .wait_closed(&wf, 3 + BAD_COUNTDOWN_INPUTS.len(), MINUTE)
            .await;
        assert_eq!(
            closed["echo"],
            vec![Closed::Completed(Some(format!("hi {lang}")))],
            "echo{s}@1"
        );
        match &closed["fail"][..] {
            [Closed::Failed { reason, .. }] => assert_eq!(reason, "BadInput", "echo{s}@1"),
            other => panic!("echo{s}@1 on \"fail\": {other:?}"),
        }
        for (id, input) in BAD_COUNTDOWN_INPUTS {
            match &closed[id][..] {
                [Closed::Failed { reason, .. }] => {
                    assert_eq!(reason, "BadInput", "countdown{s}@1 on {input}")
                }
                other => panic!("countdown{s}@1 on {input}: {other:?}"),
            }
        }
        assert!(
            matches!(closed["countdown"][..], [Closed::Canceled(_)]),
            "countdown{s}@1: {:?}",
            closed["countdown"]
        );
        let history = swf.history(&wf).await.unwrap();
        let position = |t: EventType| history.iter().position(|e| e.event_type == t);
        let requested = position(EventType::ActivityTaskCancelRequested)
            .unwrap_or_else(|| panic!("{lang}: no ActivityTaskCancelRequested"));
        let canceled = position(EventType::ActivityTaskCanceled).unwrap();
        assert!(requested < canceled, "{lang}: canceled before it was asked");
        // The endpoint still shows the last heartbeat of the closed task.
        let all = swf_local.activities("languages").await;
        let last = entry(&all["closed"], &wf, "countdown")
            .unwrap_or_else(|| panic!("{lang}: closed countdown missing in {all}"));
        assert_eq!(last["status"], "canceled", "{lang}: {last}");
        assert!(
            last["details"]
                .as_str()
                .is_some_and(|d| d.contains("\"of\":200")),
            "{lang}: {last}"
        );
    }
    assert_eq!(seen_details.len(), 4);
}
