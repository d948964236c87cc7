//! The SWF side of the driver: a client for swf-local, registration, and the decisions
//! that put activity tasks on a task list (the benchmark is its own decider).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_swf::Client;
use aws_sdk_swf::config::timeout::TimeoutConfig;
use aws_sdk_swf::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_swf::types::{
    ActivityType, Decision, DecisionType, EventType, HistoryEvent,
    RequestCancelActivityTaskDecisionAttributes, ScheduleActivityTaskDecisionAttributes, TaskList,
    WorkflowExecution, WorkflowType,
};

/// The domain every benchmark registers on its fresh endpoint.
pub const DOMAIN: &str = "swasm-bench";
/// The one workflow type; the driver is its decider.
const WORKFLOW: (&str, &str) = ("bench", "1");
/// Where the driver's decision tasks go (activity task lists are per benchmark).
pub const DECISIONS: &str = "bench-decisions";

/// An aws-sdk-swf client for `endpoint`: dummy static keys (swf-local checks no
/// signatures), a 70 s attempt timeout so a held 60 s long poll is not cut, and stalled
/// stream protection off (it has fired on held long polls, see TOOLCHAINS.md).
pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_swf::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "bench",
            "bench",
            None,
            None,
            "swasm-bench",
        ))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(70))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

pub fn task_list(name: &str) -> TaskList {
    TaskList::builder().name(name).build().expect("name is set")
}

/// Registers the domain, the workflow type and each `(name, version)` activity type.
pub async fn register(client: &Client, activity_types: &[(&str, &str)]) -> Result<()> {
    register_with_retention(client, activity_types, "1").await
}

/// [`register`] with the domain's retention in days; "0" drops an execution's history as
/// soon as it closes (the soak keeps the endpoint's memory flat that way).
pub async fn register_with_retention(
    client: &Client,
    activity_types: &[(&str, &str)],
    retention_days: &str,
) -> Result<()> {
    client
        .register_domain()
        .name(DOMAIN)
        .workflow_execution_retention_period_in_days(retention_days)
        .send()
        .await
        .context("RegisterDomain")?;
    client
        .register_workflow_type()
        .domain(DOMAIN)
        .name(WORKFLOW.0)
        .version(WORKFLOW.1)
        .default_task_list(task_list(DECISIONS))
        .default_child_policy(aws_sdk_swf::types::ChildPolicy::Terminate)
        .default_execution_start_to_close_timeout("86400")
        .default_task_start_to_close_timeout("NONE")
        .send()
        .await
        .context("RegisterWorkflowType")?;
    for (name, version) in activity_types {
        client
            .register_activity_type()
            .domain(DOMAIN)
            .name(*name)
            .version(*version)
            .send()
            .await
            .with_context(|| format!("RegisterActivityType {name}@{version}"))?;
    }
    Ok(())
}

/// Starts one workflow execution; its first decision task lands on [`DECISIONS`].
pub async fn start_workflow(client: &Client, workflow_id: &str) -> Result<WorkflowExecution> {
    let out = client
        .start_workflow_execution()
        .domain(DOMAIN)
        .workflow_id(workflow_id)
        .workflow_type(
            WorkflowType::builder()
                .name(WORKFLOW.0)
                .version(WORKFLOW.1)
                .build()?,
        )
        .task_list(task_list(DECISIONS))
        .send()
        .await
        .with_context(|| format!("StartWorkflowExecution {workflow_id}"))?;
    Ok(WorkflowExecution::builder()
        .workflow_id(workflow_id)
        .run_id(out.run_id.unwrap_or_default())
        .build()?)
}

/// One activity task to schedule.
#[derive(Clone, Debug)]
pub struct Activity {
    pub id: String,
    pub name: String,
    pub version: String,
    pub task_list: String,
    pub input: String,
}

/// A ScheduleActivityTask decision with every timeout explicit (no type defaults needed):
/// start-to-close 600 s, no heartbeat timeout, nothing else.
pub fn schedule(a: &Activity) -> Result<Decision> {
    let attrs = ScheduleActivityTaskDecisionAttributes::builder()
        .activity_type(
            ActivityType::builder()
                .name(&a.name)
                .version(&a.version)
                .build()?,
        )
        .activity_id(&a.id)
        .task_list(task_list(&a.task_list))
        .input(&a.input)
        .schedule_to_start_timeout("NONE")
        .schedule_to_close_timeout("NONE")
        .start_to_close_timeout("600")
        .heartbeat_timeout("NONE")
        .build()?;
    Ok(Decision::builder()
        .decision_type(DecisionType::ScheduleActivityTask)
        .schedule_activity_task_decision_attributes(attrs)
        .build()?)
}

pub fn request_cancel(activity_id: &str) -> Result<Decision> {
    Ok(Decision::builder()
        .decision_type(DecisionType::RequestCancelActivityTask)
        .request_cancel_activity_task_decision_attributes(
            RequestCancelActivityTaskDecisionAttributes::builder()
                .activity_id(activity_id)
                .build()?,
        )
        .build()?)
}

/// A decision task as the driver sees it: the token and the events new since the previous
/// decision task of the same execution, oldest first.
pub struct DecisionTask {
    pub token: String,
    pub workflow_id: String,
    pub new_events: Vec<HistoryEvent>,
}

/// Long-polls [`DECISIONS`] once; `None` when the poll came back empty. Reads the history
/// newest first and stops at the previous decision, so a long history costs one page.
pub async fn poll_decision(client: &Client) -> Result<Option<DecisionTask>> {
    let mut page = client
        .poll_for_decision_task()
        .domain(DOMAIN)
        .task_list(task_list(DECISIONS))
        .identity("swasm-bench-decider")
        .reverse_order(true)
        .maximum_page_size(1000)
        .send()
        .await
        .context("PollForDecisionTask")?;
    if page.task_token.is_empty() {
        return Ok(None);
    }
    let token = page.task_token.clone();
    let previous = page.previous_started_event_id;
    let workflow_id = page
        .workflow_execution
        .as_ref()
        .map(|w| w.workflow_id.clone())
        .unwrap_or_default();
    let mut events = Vec::new();
    loop {
        let mut reached_previous = false;
        for e in page.events() {
            if e.event_id <= previous {
                reached_previous = true;
                break;
            }
            events.push(e.clone());
        }
        let next = page.next_page_token.clone();
        match next {
            Some(next) if !reached_previous && !next.is_empty() => {
                page = client
                    .poll_for_decision_task()
                    .domain(DOMAIN)
                    .task_list(task_list(DECISIONS))
                    .identity("swasm-bench-decider")
                    .reverse_order(true)
                    .maximum_page_size(1000)
                    .next_page_token(next)
                    .send()
                    .await
                    .context("PollForDecisionTask (next page)")?;
            }
            _ => break,
        }
    }
    events.reverse();
    Ok(Some(DecisionTask {
        token,
        workflow_id,
        new_events: events,
    }))
}

pub async fn respond(client: &Client, token: &str, decisions: Vec<Decision>) -> Result<()> {
    client
        .respond_decision_task_completed()
        .task_token(token)
        .set_decisions(Some(decisions))
        .send()
        .await
        .context("RespondDecisionTaskCompleted")?;
    Ok(())
}

/// Polls until a decision task arrives (empty polls are retried).
pub async fn next_decision(client: &Client) -> Result<DecisionTask> {
    for _ in 0..5 {
        if let Some(task) = poll_decision(client).await? {
            return Ok(task);
        }
    }
    bail!("no decision task after 5 long polls")
}

/// Polls until a decision task of an execution `wanted` by workflow id arrives; decision
/// tasks of other executions are answered with no decisions. With a worker already
/// running (the soak), activities close meanwhile and give their executions new decision
/// tasks that nobody waits for.
pub async fn next_decision_of(
    client: &Client,
    wanted: impl Fn(&str) -> bool,
) -> Result<DecisionTask> {
    loop {
        let task = next_decision(client).await?;
        if wanted(&task.workflow_id) {
            return Ok(task);
        }
        respond(client, &task.token, Vec::new()).await?;
    }
}

/// Starts `ceil(activities / 1000)` workflows and schedules `activities` through their
/// first decisions, at most 1000 open activities per execution (SWF's limit). Other
/// executions' decision tasks are answered with no decisions ([`next_decision_of`]).
pub async fn preschedule(
    client: &Client,
    run: &str,
    activities: &[Activity],
) -> Result<Vec<WorkflowExecution>> {
    let chunks: Vec<&[Activity]> = activities.chunks(1000).collect();
    let mut by_workflow = std::collections::HashMap::new();
    let mut executions = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let id = format!("{run}-{i}");
        executions.push(start_workflow(client, &id).await?);
        by_workflow.insert(id, *chunk);
    }
    while !by_workflow.is_empty() {
        let task = next_decision_of(client, |id| by_workflow.contains_key(id)).await?;
        let chunk = by_workflow
            .remove(&task.workflow_id)
            .expect("next_decision_of returns a wanted execution's task");
        let decisions = chunk.iter().map(schedule).collect::<Result<Vec<_>>>()?;
        respond(client, &task.token, decisions).await?;
    }
    Ok(executions)
}

/// Seconds since the epoch of an event (swf-local stamps events with the wall clock).
pub fn event_secs(e: &HistoryEvent) -> f64 {
    e.event_timestamp.as_secs_f64()
}

pub fn is(e: &HistoryEvent, t: EventType) -> bool {
    e.event_type == t
}
