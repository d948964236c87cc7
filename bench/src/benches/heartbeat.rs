//! Heartbeat traffic: one countdown calling heartbeat() in a tight loop for a window, then
//! RequestCancelActivityTask. Counts RecordActivityTaskHeartbeat calls against "one per
//! throttle interval plus the final flush" and times cancel-requested -> canceled.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_swf::types::EventType;

use super::watch;
use crate::Ctx;
use crate::endpoint::Endpoint;
use crate::report::Record;
use crate::swf::{self, Activity};
use crate::workers::{self, Kind};

/// The throttle interval configured for the host (`heartbeat_interval_s`).
const INTERVAL_S: u64 = 1;

pub async fn run(ctx: &Ctx) -> Vec<Record> {
    let mut calls = Record::new("heartbeat", "heartbeat calls", "calls");
    let mut goal = Record::new("heartbeat", "heartbeat goal", "calls");
    let mut cancel = Record::new("heartbeat", "cancel to canceled", "ms");
    calls.note(format!(
        "tight heartbeat() loop for {} s, heartbeat_interval_s = {INTERVAL_S}",
        ctx.sizes.heartbeat_window.as_secs()
    ));
    goal.note("1 at once + 1 per elapsed interval + final flush");
    cancel.note("ActivityTaskCancelRequested -> ActivityTaskCanceled event timestamps");
    for rep in 0..ctx.sizes.reps {
        match once(ctx).await {
            Ok(m) => {
                calls.values.push(m.calls as f64);
                goal.values.push(m.goal as f64);
                cancel.values.push(m.cancel_ms);
            }
            Err(e) => calls.note(format!("rep {rep} failed: {e:#}")),
        }
    }
    for r in [&calls, &goal, &cancel] {
        r.print();
    }
    vec![calls, goal, cancel]
}

struct Measured {
    calls: u64,
    goal: u64,
    cancel_ms: f64,
}

async fn once(ctx: &Ctx) -> Result<Measured> {
    let ep = Endpoint::start().await?;
    let client = swf::client(&ep.url);
    swf::register(&client, &[("countdown", "1")]).await?;
    let task_list = "heartbeat";
    let activity = Activity {
        id: "spin".into(),
        name: "countdown".into(),
        version: "1".into(),
        task_list: task_list.into(),
        input: r#"{"steps":100000000,"step_ms":0}"#.into(),
    };
    let execution = swf::preschedule(&client, "heartbeat", std::slice::from_ref(&activity))
        .await?
        .remove(0);
    let workflow_id = execution.workflow_id.clone();
    let dir = workers::run_dir(ctx, "heartbeat")?;
    let kind = Kind::Swasm {
        plugins: vec![ctx.plugins.join("countdown@1.wasm")],
        max_concurrent: 4,
        pollers: 1,
        heartbeat_interval_s: INTERVAL_S,
        cache_dir: ctx.work.join("heartbeat-cache"),
    };
    let mut worker = workers::start(ctx, "heartbeat", &kind, &ep.url, task_list, &dir)?;
    let result = async {
        watch(
            &ep,
            &mut worker,
            "first heartbeat",
            Duration::from_millis(1),
            Duration::from_secs(120),
            |ep| ep.calls("RecordActivityTaskHeartbeat") >= 1,
        )
        .await?;
        // The measurement window itself: the guest spins on heartbeat() meanwhile.
        tokio::time::sleep(ctx.sizes.heartbeat_window).await;
        worker.check_alive()?;
        client
            .signal_workflow_execution()
            .domain(swf::DOMAIN)
            .workflow_id(&workflow_id)
            .signal_name("cancel")
            .send()
            .await
            .context("SignalWorkflowExecution")?;
        let task = swf::next_decision_of(&client, |id| id == workflow_id).await?;
        swf::respond(
            &client,
            &task.token,
            vec![swf::request_cancel(&activity.id)?],
        )
        .await?;
        watch(
            &ep,
            &mut worker,
            "canceled",
            Duration::from_millis(1),
            Duration::from_secs(60),
            |ep| ep.answered() >= 1,
        )
        .await?;
        if ep.calls("RespondActivityTaskCanceled") != 1 {
            bail!(
                "the task was not answered canceled (completed {}, failed {})",
                ep.calls("RespondActivityTaskCompleted"),
                ep.calls("RespondActivityTaskFailed")
            );
        }
        let calls = ep.calls("RecordActivityTaskHeartbeat");
        let history = history(&client, &execution).await?;
        let at = |t: EventType| {
            history
                .iter()
                .find(|e| e.event_type == t)
                .map(swf::event_secs)
        };
        let started = at(EventType::ActivityTaskStarted).context("no ActivityTaskStarted event")?;
        let requested = at(EventType::ActivityTaskCancelRequested)
            .context("no ActivityTaskCancelRequested event")?;
        let canceled =
            at(EventType::ActivityTaskCanceled).context("no ActivityTaskCanceled event")?;
        let elapsed = canceled - started;
        let goal = 1 + (elapsed / INTERVAL_S as f64).floor() as u64 + 1;
        Ok(Measured {
            calls,
            goal,
            cancel_ms: (canceled - requested) * 1000.0,
        })
    }
    .await;
    worker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The whole history of `workflow_id`, oldest first.
pub async fn history(
    client: &aws_sdk_swf::Client,
    execution: &aws_sdk_swf::types::WorkflowExecution,
) -> Result<Vec<aws_sdk_swf::types::HistoryEvent>> {
    let mut events = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = client
            .get_workflow_execution_history()
            .domain(swf::DOMAIN)
            .execution(execution.clone())
            .set_next_page_token(next.take())
            .send()
            .await
            .context("GetWorkflowExecutionHistory")?;
        events.extend(out.events().iter().cloned());
        match out.next_page_token {
            Some(t) if !t.is_empty() => next = Some(t),
            _ => return Ok(events),
        }
    }
}
