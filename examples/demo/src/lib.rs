//! The example decider behind `swasm dev`, written with `aws-sdk-swf` the way a user would
//! write their own.
//!
//! One workflow type, `swasm-demo@1`, runs one activity: its input is a [`Job`] (which
//! activity, on which task list, with what input, and optionally "cancel it after N
//! seconds"). The decider
//! - schedules the activity (and a timer when the job asks to be cancelled half-way),
//! - asks for the activity's cancellation when the timer fires or the workflow is cancelled,
//! - closes the workflow the way the activity ended: completed, failed or canceled.
//!
//! The decider reads the whole history of every decision task, following `nextPageToken`
//! page by page (a page token returns the next page of the *same* task, never a new one).
//!
//! # Layout
//! - [`Job`]: a workflow's input.
//! - [`Decider`]: polls decision tasks, decides, reports what happened as [`Progress`] lines.
//! - [`Demo`]: registers the workflow type, starts jobs, runs the decider until all close,
//!   and returns a [`Summary`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_swf::Client;
use aws_sdk_swf::types::{
    ActivityType, CancelTimerDecisionAttributes, CancelWorkflowExecutionDecisionAttributes,
    ChildPolicy, CompleteWorkflowExecutionDecisionAttributes, Decision, DecisionType, EventType,
    ExecutionStatus, FailWorkflowExecutionDecisionAttributes, HistoryEvent,
    RequestCancelActivityTaskDecisionAttributes, ScheduleActivityTaskDecisionAttributes,
    StartTimerDecisionAttributes, TaskList, WorkflowExecution, WorkflowType,
};
use serde_json::{Value, json};

/// The workflow type the demo registers and decides.
pub const WORKFLOW_NAME: &str = "swasm-demo";
pub const WORKFLOW_VERSION: &str = "1";
/// The task list the demo's decision tasks go to.
pub const DECISION_TASK_LIST: &str = "swasm-demo-decisions";

const ACTIVITY_ID: &str = "activity-1";
const CANCEL_TIMER_ID: &str = "cancel-half-way";

/// A workflow's input: one activity to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub activity_name: String,
    pub activity_version: String,
    pub task_list: String,
    pub input: Option<String>,
    /// Ask for the activity's cancellation this many seconds after scheduling it.
    pub cancel_after_s: Option<u64>,
}

impl Job {
    pub fn new(activity: &str, task_list: &str, input: Option<&str>) -> Result<Job> {
        let (name, version) = activity
            .rsplit_once('@')
            .filter(|(name, version)| !name.is_empty() && !version.is_empty())
            .with_context(|| format!("activity {activity:?} must be \"name@version\""))?;
        if task_list.is_empty() {
            bail!("task_list must not be empty");
        }
        Ok(Job {
            activity_name: name.to_string(),
            activity_version: version.to_string(),
            task_list: task_list.to_string(),
            input: input.map(str::to_string),
            cancel_after_s: None,
        })
    }

    pub fn cancel_after(mut self, seconds: u64) -> Job {
        self.cancel_after_s = Some(seconds);
        self
    }

    fn to_json(&self) -> String {
        json!({
            "activity": format!("{}@{}", self.activity_name, self.activity_version),
            "task_list": self.task_list,
            "input": self.input,
            "cancel_after_s": self.cancel_after_s,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Job> {
        let v: Value = serde_json::from_str(text).context("workflow input is not JSON")?;
        let activity = v["activity"]
            .as_str()
            .context("workflow input has no \"activity\" string")?;
        let task_list = v["task_list"]
            .as_str()
            .context("workflow input has no \"task_list\" string")?;
        let input = match &v["input"] {
            Value::Null => None,
            Value::String(s) => Some(s.as_str()),
            _ => bail!("\"input\" must be a string: the activity's input, as text"),
        };
        let mut job = Job::new(activity, task_list, input)?;
        job.cancel_after_s = match &v["cancel_after_s"] {
            Value::Null => None,
            n => Some(
                n.as_u64()
                    .context("\"cancel_after_s\" must be a whole number of seconds")?,
            ),
        };
        Ok(job)
    }
}

/// One line of progress: something that happened in a workflow.
#[derive(Debug, Clone)]
pub struct Progress {
    pub workflow_id: String,
    pub what: String,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.workflow_id, self.what)
    }
}

/// Polls decision tasks of one domain and task list and decides them.
pub struct Decider {
    client: Client,
    domain: String,
    identity: String,
    /// History page size; small values exercise paging.
    page_size: i32,
}

/// What handling one decision task produced.
#[derive(Debug, Default)]
pub struct Handled {
    pub progress: Vec<Progress>,
    /// The workflow the task belonged to, if the poll returned a task.
    pub workflow_id: Option<String>,
    /// The decider closed the workflow in this task.
    pub closed: bool,
}

impl Decider {
    pub fn new(client: Client, domain: impl Into<String>) -> Decider {
        Decider {
            client,
            domain: domain.into(),
            identity: "swasm-demo-decider".into(),
            page_size: 100,
        }
    }

    pub fn with_page_size(mut self, page_size: i32) -> Decider {
        self.page_size = page_size;
        self
    }

    /// Long-polls one decision task (returns an empty [`Handled`] when the poll comes back empty).
    pub async fn poll_once(&self) -> Result<Handled> {
        let task_list = TaskList::builder().name(DECISION_TASK_LIST).build()?;
        let first = self
            .client
            .poll_for_decision_task()
            .domain(&self.domain)
            .task_list(task_list.clone())
            .identity(&self.identity)
            .maximum_page_size(self.page_size)
            .send()
            .await
            .context("PollForDecisionTask")?;
        if first.task_token().is_empty() {
            return Ok(Handled::default());
        }
        let token = first.task_token().to_string();
        let execution = first
            .workflow_execution()
            .context("decision task without workflowExecution")?
            .clone();
        let previous_started = first.previous_started_event_id();
        let mut events: Vec<HistoryEvent> = first.events().to_vec();
        let mut next = first.next_page_token().map(str::to_string);
        while let Some(page_token) = next.take() {
            let page = self
                .client
                .poll_for_decision_task()
                .domain(&self.domain)
                .task_list(task_list.clone())
                .identity(&self.identity)
                .maximum_page_size(self.page_size)
                .next_page_token(page_token)
                .send()
                .await
                .context("PollForDecisionTask (next page)")?;
            if page.task_token() != token {
                bail!("a history page belonged to another decision task");
            }
            events.extend(page.events().iter().cloned());
            next = page.next_page_token().map(str::to_string);
        }

        let workflow_id = execution.workflow_id().to_string();
        let mut progress = describe_new_events(&workflow_id, &events, previous_started);
        let decisions = decide(&events)?;
        progress.extend(
            decisions
                .iter()
                .filter_map(|d| d.fail_workflow_execution_decision_attributes())
                .filter(|a| a.reason() == Some(BAD_INPUT))
                .map(|a| Progress {
                    workflow_id: workflow_id.clone(),
                    what: format!("failed: {BAD_INPUT} {}", a.details().unwrap_or_default()),
                }),
        );
        let closed = decisions.iter().any(|d| {
            matches!(
                d.decision_type(),
                DecisionType::CompleteWorkflowExecution
                    | DecisionType::FailWorkflowExecution
                    | DecisionType::CancelWorkflowExecution
            )
        });
        self.client
            .respond_decision_task_completed()
            .task_token(token)
            .set_decisions(Some(decisions))
            .send()
            .await
            .context("RespondDecisionTaskCompleted")?;
        Ok(Handled {
            progress,
            workflow_id: Some(workflow_id),
            closed,
        })
    }
}

/// The decisions that close the workflow with `close`, cancelling its timer first if one is
/// pending.
fn close(events: &[HistoryEvent], close: Decision) -> Result<Vec<Decision>> {
    let mut decisions = cancel_timer_if_pending(events)?;
    decisions.push(close);
    Ok(decisions)
}

/// The reason a workflow whose input is not a [`Job`] is failed with.
pub const BAD_INPUT: &str = "BadInput";

/// The decisions for a workflow whose full history is `events`.
pub fn decide(events: &[HistoryEvent]) -> Result<Vec<Decision>> {
    let started = events
        .iter()
        .find_map(|e| e.workflow_execution_started_event_attributes())
        .context("history has no WorkflowExecutionStarted event")?;
    let job = match Job::from_json(started.input().unwrap_or_default()) {
        Ok(job) => job,
        // Answered, not left to time out: the workflow fails at once, saying why, and the
        // decider goes on with the next one.
        Err(e) => {
            // SWF's limit on the details.
            let details: String = format!("{e:#}").chars().take(32_768).collect();
            return Ok(vec![
                Decision::builder()
                    .decision_type(DecisionType::FailWorkflowExecution)
                    .fail_workflow_execution_decision_attributes(
                        FailWorkflowExecutionDecisionAttributes::builder()
                            .reason(BAD_INPUT)
                            .details(details)
                            .build(),
                    )
                    .build()?,
            ]);
        }
    };
    let has = |t: EventType| events.iter().any(|e| *e.event_type() == t);

    if let Some(a) = events
        .iter()
        .find_map(|e| e.activity_task_completed_event_attributes())
    {
        return close(
            events,
            Decision::builder()
                .decision_type(DecisionType::CompleteWorkflowExecution)
                .complete_workflow_execution_decision_attributes(
                    CompleteWorkflowExecutionDecisionAttributes::builder()
                        .set_result(a.result().map(str::to_string))
                        .build(),
                )
                .build()?,
        );
    }
    let failure = events.iter().find_map(|e| {
        if let Some(a) = e.activity_task_failed_event_attributes() {
            Some((
                a.reason().unwrap_or("failed").to_string(),
                a.details().map(str::to_string),
            ))
        } else if let Some(a) = e.activity_task_timed_out_event_attributes() {
            Some((
                format!("ActivityTimedOut:{}", a.timeout_type().as_str()),
                a.details().map(str::to_string),
            ))
        } else {
            e.schedule_activity_task_failed_event_attributes().map(|a| {
                (
                    format!("ScheduleActivityTaskFailed:{}", a.cause().as_str()),
                    None,
                )
            })
        }
    });
    if let Some((reason, details)) = failure {
        return close(
            events,
            Decision::builder()
                .decision_type(DecisionType::FailWorkflowExecution)
                .fail_workflow_execution_decision_attributes(
                    FailWorkflowExecutionDecisionAttributes::builder()
                        .reason(reason)
                        .set_details(details)
                        .build(),
                )
                .build()?,
        );
    }
    if let Some(a) = events
        .iter()
        .find_map(|e| e.activity_task_canceled_event_attributes())
    {
        return close(
            events,
            Decision::builder()
                .decision_type(DecisionType::CancelWorkflowExecution)
                .cancel_workflow_execution_decision_attributes(
                    CancelWorkflowExecutionDecisionAttributes::builder()
                        .set_details(a.details().map(str::to_string))
                        .build(),
                )
                .build()?,
        );
    }

    if !has(EventType::ActivityTaskScheduled) {
        let mut decisions = vec![
            Decision::builder()
                .decision_type(DecisionType::ScheduleActivityTask)
                .schedule_activity_task_decision_attributes(
                    ScheduleActivityTaskDecisionAttributes::builder()
                        .activity_type(
                            ActivityType::builder()
                                .name(&job.activity_name)
                                .version(&job.activity_version)
                                .build()?,
                        )
                        .activity_id(ACTIVITY_ID)
                        .task_list(TaskList::builder().name(&job.task_list).build()?)
                        .set_input(job.input.clone())
                        .schedule_to_start_timeout("60")
                        .start_to_close_timeout("300")
                        .schedule_to_close_timeout("360")
                        .heartbeat_timeout("60")
                        .build()?,
                )
                .build()?,
        ];
        if let Some(seconds) = job.cancel_after_s {
            decisions.push(
                Decision::builder()
                    .decision_type(DecisionType::StartTimer)
                    .start_timer_decision_attributes(
                        StartTimerDecisionAttributes::builder()
                            .timer_id(CANCEL_TIMER_ID)
                            .start_to_fire_timeout(seconds.to_string())
                            .build()?,
                    )
                    .build()?,
            );
        }
        return Ok(decisions);
    }

    let wants_cancel =
        has(EventType::TimerFired) || has(EventType::WorkflowExecutionCancelRequested);
    if wants_cancel && !has(EventType::ActivityTaskCancelRequested) {
        return Ok(vec![
            Decision::builder()
                .decision_type(DecisionType::RequestCancelActivityTask)
                .request_cancel_activity_task_decision_attributes(
                    RequestCancelActivityTaskDecisionAttributes::builder()
                        .activity_id(ACTIVITY_ID)
                        .build()?,
                )
                .build()?,
        ]);
    }
    Ok(Vec::new())
}

fn cancel_timer_if_pending(events: &[HistoryEvent]) -> Result<Vec<Decision>> {
    let has = |t: EventType| events.iter().any(|e| *e.event_type() == t);
    if !has(EventType::TimerStarted) || has(EventType::TimerFired) || has(EventType::TimerCanceled)
    {
        return Ok(Vec::new());
    }
    Ok(vec![
        Decision::builder()
            .decision_type(DecisionType::CancelTimer)
            .cancel_timer_decision_attributes(
                CancelTimerDecisionAttributes::builder()
                    .timer_id(CANCEL_TIMER_ID)
                    .build()?,
            )
            .build()?,
    ])
}

/// Progress lines for the events after the previous decision task.
fn describe_new_events(
    workflow_id: &str,
    events: &[HistoryEvent],
    previous_started: i64,
) -> Vec<Progress> {
    let line = |what: String| Progress {
        workflow_id: workflow_id.to_string(),
        what,
    };
    events
        .iter()
        .filter(|e| e.event_id() > previous_started)
        .filter_map(|e| {
            let what = if let Some(a) = e.activity_task_scheduled_event_attributes() {
                let ty = a
                    .activity_type()
                    .map(|t| format!("{}@{}", t.name(), t.version()))
                    .unwrap_or_default();
                Some(format!(
                    "scheduled {ty} on task list {:?}",
                    a.task_list().map(|t| t.name()).unwrap_or("")
                ))
            } else if let Some(a) = e.activity_task_started_event_attributes() {
                Some(format!("started by {}", a.identity().unwrap_or("?")))
            } else if let Some(a) = e.activity_task_completed_event_attributes() {
                Some(format!(
                    "completed: {}",
                    a.result().unwrap_or("(no result)")
                ))
            } else if let Some(a) = e.activity_task_failed_event_attributes() {
                Some(format!(
                    "failed: {} {}",
                    a.reason().unwrap_or(""),
                    a.details().unwrap_or("")
                ))
            } else if let Some(a) = e.activity_task_canceled_event_attributes() {
                Some(format!("canceled: {}", a.details().unwrap_or("")))
            } else if let Some(a) = e.activity_task_timed_out_event_attributes() {
                Some(format!("timed out ({})", a.timeout_type().as_str()))
            } else if e.timer_fired_event_attributes().is_some() {
                Some("timer fired: asking the activity to cancel".to_string())
            } else {
                e.schedule_activity_task_failed_event_attributes()
                    .map(|a| format!("could not schedule: {}", a.cause().as_str()))
            };
            what.map(line)
        })
        .collect()
}

/// How one workflow ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub workflow_id: String,
    pub activity: String,
    pub status: String,
    /// The result, the failure reason and details, or the cancel details.
    pub detail: String,
}

/// All workflows of a demo run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub outcomes: Vec<Outcome>,
}

impl Summary {
    pub fn count(&self, status: &str) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<28} {:<18} {:<10} detail",
            "workflow", "activity", "status"
        )?;
        for o in &self.outcomes {
            let mut detail = o.detail.replace('\n', " ");
            if detail.chars().count() > 60 {
                detail = detail.chars().take(57).collect::<String>() + "...";
            }
            writeln!(
                f,
                "{:<28} {:<18} {:<10} {}",
                o.workflow_id, o.activity, o.status, detail
            )?;
        }
        write!(
            f,
            "summary: {} completed, {} failed, {} canceled, {} other",
            self.count("COMPLETED"),
            self.count("FAILED"),
            self.count("CANCELED"),
            self.outcomes.len()
                - self.count("COMPLETED")
                - self.count("FAILED")
                - self.count("CANCELED")
        )
    }
}

/// Starts jobs as workflows and decides them until every one is closed.
pub struct Demo {
    pub client: Client,
    pub domain: String,
}

impl Demo {
    /// Registers the demo's workflow type (an existing registration is fine).
    pub async fn register_workflow_type(&self) -> Result<()> {
        let result = self
            .client
            .register_workflow_type()
            .domain(&self.domain)
            .name(WORKFLOW_NAME)
            .version(WORKFLOW_VERSION)
            .description("swasm demo: runs one activity and closes the way it ended")
            .default_task_list(TaskList::builder().name(DECISION_TASK_LIST).build()?)
            .default_execution_start_to_close_timeout("3600")
            .default_task_start_to_close_timeout("30")
            .default_child_policy(ChildPolicy::Terminate)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_type_already_exists_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context("RegisterWorkflowType swasm-demo@1")),
        }
    }

    /// Starts one workflow per job (ids `prefix-N-activity`), returns their executions.
    pub async fn start(&self, prefix: &str, jobs: &[Job]) -> Result<Vec<(WorkflowExecution, Job)>> {
        let mut started = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let workflow_id = format!("{prefix}-{}-{}", i + 1, job.activity_name);
            let out = self
                .client
                .start_workflow_execution()
                .domain(&self.domain)
                .workflow_id(&workflow_id)
                .workflow_type(
                    WorkflowType::builder()
                        .name(WORKFLOW_NAME)
                        .version(WORKFLOW_VERSION)
                        .build()?,
                )
                .input(job.to_json())
                .send()
                .await
                .with_context(|| format!("StartWorkflowExecution {workflow_id}"))?;
            let execution = WorkflowExecution::builder()
                .workflow_id(workflow_id)
                .run_id(out.run_id().unwrap_or_default())
                .build()?;
            started.push((execution, job.clone()));
        }
        Ok(started)
    }

    /// Runs the decider until every started workflow is closed or `deadline` passes,
    /// calling `on_progress` for each progress line, then returns how each ended.
    ///
    /// The deadline cuts a poll short: a long poll is held up to 60 s when no decision task
    /// comes, far longer than a short deadline. A decision task that poll had already
    /// taken is then left to its start-to-close timeout, after which SWF hands it out again.
    pub async fn run(
        &self,
        decider: &Decider,
        started: &[(WorkflowExecution, Job)],
        deadline: Duration,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Summary> {
        let until = tokio::time::Instant::now() + deadline;
        let mut open: BTreeMap<String, &WorkflowExecution> = started
            .iter()
            .map(|(e, _)| (e.workflow_id().to_string(), e))
            .collect();
        while !open.is_empty() {
            let Ok(handled) = tokio::time::timeout_at(until, decider.poll_once()).await else {
                bail!(
                    "{} workflow(s) still open after {deadline:?}: {:?}",
                    open.len(),
                    open.keys().collect::<Vec<_>>()
                );
            };
            let handled = handled?;
            for p in &handled.progress {
                on_progress(p);
            }
            if handled.closed
                && let Some(id) = handled.workflow_id
            {
                open.remove(&id);
            }
        }
        let mut summary = Summary::default();
        for (execution, job) in started {
            summary.outcomes.push(self.outcome(execution, job).await?);
        }
        Ok(summary)
    }

    async fn outcome(&self, execution: &WorkflowExecution, job: &Job) -> Result<Outcome> {
        let described = self
            .client
            .describe_workflow_execution()
            .domain(&self.domain)
            .execution(execution.clone())
            .send()
            .await
            .context("DescribeWorkflowExecution")?;
        let info = described.execution_info().context("no executionInfo")?;
        let status = match info.execution_status() {
            ExecutionStatus::Open => "OPEN".to_string(),
            _ => info
                .close_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        };
        let history = self
            .client
            .get_workflow_execution_history()
            .domain(&self.domain)
            .execution(execution.clone())
            .reverse_order(true)
            .maximum_page_size(20)
            .send()
            .await
            .context("GetWorkflowExecutionHistory")?;
        let detail = history
            .events()
            .iter()
            .find_map(|e| {
                if let Some(a) = e.workflow_execution_completed_event_attributes() {
                    Some(a.result().unwrap_or_default().to_string())
                } else if let Some(a) = e.workflow_execution_failed_event_attributes() {
                    Some(format!(
                        "{}: {}",
                        a.reason().unwrap_or_default(),
                        a.details().unwrap_or_default()
                    ))
                } else {
                    e.workflow_execution_canceled_event_attributes()
                        .map(|a| a.details().unwrap_or_default().to_string())
                }
            })
            .unwrap_or_default();
        Ok(Outcome {
            workflow_id: execution.workflow_id().to_string(),
            activity: format!("{}@{}", job.activity_name, job.activity_version),
            status,
            detail,
        })
    }
}

/// The demo's jobs for the activity types a host serves on `task_list`: for each language's
/// echo a success and a failure, for each countdown a completed run, and one countdown
/// cancelled half-way; with `web` (`host:port` of a web server the fetch types are granted),
/// for each fetch a GET of it, and one GET of a host not granted, which the sandbox refuses.
pub fn demo_jobs(served: &[String], task_list: &str, web: Option<&str>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let mut cancel_done = false;
    // The refused GET goes to the Python fetch, whose error names wasi:http's code most
    // plainly, or else to the first fetch.
    let refused_by = served
        .iter()
        .find(|t| t.starts_with("fetch-py@"))
        .or_else(|| served.iter().find(|t| t.starts_with("fetch")));
    for ty in served {
        let name = ty.split('@').next().unwrap_or_default();
        if name.starts_with("echo") {
            jobs.push(Job::new(ty, task_list, Some(&format!("hello from {ty}")))?);
            jobs.push(Job::new(ty, task_list, Some("fail"))?);
        } else if name.starts_with("countdown") {
            jobs.push(Job::new(
                ty,
                task_list,
                Some(r#"{"steps":5,"step_ms":100}"#),
            )?);
            if !cancel_done {
                cancel_done = true;
                jobs.push(
                    Job::new(ty, task_list, Some(r#"{"steps":40,"step_ms":100}"#))?.cancel_after(1),
                );
            }
        } else if name == "validate" {
            jobs.push(Job::new(
                ty,
                task_list,
                Some(r#"{"email":" Ada@Example.COM "}"#),
            )?);
        } else if name.starts_with("fetch")
            && let Some(web) = web
        {
            jobs.push(Job::new(
                ty,
                task_list,
                Some(&format!(r#"{{"url":"http://{web}/"}}"#)),
            )?);
            if refused_by == Some(ty) {
                jobs.push(Job::new(
                    ty,
                    task_list,
                    Some(r#"{"url":"http://example.com/"}"#),
                )?);
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A domain on an in-process swf-local (held polls last SWF's 60 s), with the demo's
    /// workflow type registered; the server stops when the sender is dropped.
    async fn local_demo() -> (Demo, tokio::sync::oneshot::Sender<()>) {
        let server = swf_local::Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            swf_local::Options::default(),
        )
        .await
        .unwrap();
        let url = server.url();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let conf = aws_sdk_swf::Config::builder()
            .behavior_version(aws_sdk_swf::config::BehaviorVersion::latest())
            .endpoint_url(url)
            .region(aws_sdk_swf::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_swf::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let client = Client::from_conf(conf);
        client
            .register_domain()
            .name("d")
            .workflow_execution_retention_period_in_days("1")
            .send()
            .await
            .unwrap();
        let demo = Demo {
            client,
            domain: "d".into(),
        };
        demo.register_workflow_type().await.unwrap();
        (demo, stop)
    }

    /// No worker serves the activity, so after the first decision task the decider's poll
    /// is held for 60 s: the deadline must end that wait, not the next check after it.
    #[tokio::test]
    async fn run_stops_at_its_deadline_while_a_poll_is_held() {
        let (demo, _stop) = local_demo().await;
        demo.client
            .register_activity_type()
            .domain("d")
            .name("nobody")
            .version("1")
            .send()
            .await
            .unwrap();
        let started = demo
            .start("t", &[Job::new("nobody@1", "no-worker", None).unwrap()])
            .await
            .unwrap();
        let decider = Decider::new(demo.client.clone(), "d");
        let begun = std::time::Instant::now();
        let err = demo
            .run(&decider, &started, Duration::from_secs(2), |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("1 workflow(s) still open after 2s"),
            "{err:#}"
        );
        assert!(
            begun.elapsed() < Duration::from_secs(15),
            "the demo gave up after {:?}",
            begun.elapsed()
        );
    }

    /// A workflow whose input is no job is failed at once with BadInput, naming the
    /// problem, instead of staying open until its timeout; and the demo's run goes on
    /// rather than stopping at it.
    #[tokio::test]
    async fn bad_input_fails_the_workflow_and_the_demo_goes_on() {
        let (demo, _stop) = local_demo().await;
        let inputs = [
            (r#"{"activity":"echo","task_list":"demo"}"#, "name@version"),
            ("not json", "not JSON"),
            (r#"{"activity":"echo@1"}"#, "task_list"),
            (r#"{"activity":"@","task_list":"demo"}"#, "name@version"),
            (r#"{"activity":"echo@1","task_list":""}"#, "task_list"),
            (
                r#"{"activity":"echo@1","task_list":"demo","input":{"text":"a"}}"#,
                "\"input\" must be a string",
            ),
            (
                r#"{"activity":"echo@1","task_list":"demo","cancel_after_s":-1}"#,
                "cancel_after_s",
            ),
        ];
        let mut started = Vec::new();
        for (i, (input, _)) in inputs.iter().enumerate() {
            let id = format!("bad-{i}");
            let run = demo
                .client
                .start_workflow_execution()
                .domain("d")
                .workflow_id(&id)
                .workflow_type(
                    WorkflowType::builder()
                        .name(WORKFLOW_NAME)
                        .version(WORKFLOW_VERSION)
                        .build()
                        .unwrap(),
                )
                .input(*input)
                .send()
                .await
                .unwrap();
            let execution = WorkflowExecution::builder()
                .workflow_id(id)
                .run_id(run.run_id().unwrap())
                .build()
                .unwrap();
            // What the summary names; the input itself is no job.
            started.push((execution, Job::new("?@?", "?", None).unwrap()));
        }
        let decider = Decider::new(demo.client.clone(), "d");
        let mut progress = Vec::new();
        let summary = demo
            .run(&decider, &started, Duration::from_secs(30), |p| {
                progress.push(p.to_string())
            })
            .await
            .unwrap();
        for (outcome, (input, problem)) in summary.outcomes.iter().zip(inputs) {
            assert_eq!(outcome.status, "FAILED", "{input}");
            assert!(
                outcome.detail.starts_with("BadInput: ") && outcome.detail.contains(problem),
                "{input}: {}",
                outcome.detail
            );
        }
        assert!(
            progress.iter().any(|p| p.contains("failed: BadInput")),
            "{progress:?}"
        );
    }

    #[test]
    fn job_round_trips_through_workflow_input() {
        let job = Job::new("countdown@1", "demo", Some("{\"steps\":3}"))
            .unwrap()
            .cancel_after(2);
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
    }

    #[test]
    fn demo_jobs_cover_success_failure_and_one_cancel() {
        let served = vec![
            "countdown@1".to_string(),
            "countdown-py@1".to_string(),
            "echo@1".to_string(),
        ];
        let jobs = demo_jobs(&served, "demo", None).unwrap();
        assert_eq!(
            jobs.iter().filter(|j| j.cancel_after_s.is_some()).count(),
            1
        );
        assert!(jobs.iter().any(|j| j.input.as_deref() == Some("fail")));
        assert_eq!(jobs.len(), 5);
    }

    /// With a web server, each fetch GETs it, and the Python one also GETs a host it was
    /// not granted; without one, no fetch runs.
    #[test]
    fn demo_jobs_fetch_the_granted_server_and_one_host_not_granted() {
        let served = ["fetch-js@1", "fetch-py@1", "fetch@1"].map(String::from);
        assert!(demo_jobs(&served, "demo", None).unwrap().is_empty());
        let inputs: Vec<(String, String)> = demo_jobs(&served, "demo", Some("127.0.0.1:9"))
            .unwrap()
            .into_iter()
            .map(|j| (j.activity_name, j.input.unwrap()))
            .collect();
        let granted = r#"{"url":"http://127.0.0.1:9/"}"#;
        let refused = r#"{"url":"http://example.com/"}"#;
        assert_eq!(
            inputs,
            [
                ("fetch-js", granted),
                ("fetch-py", granted),
                ("fetch-py", refused),
                ("fetch", granted),
            ]
            .map(|(n, i)| (n.to_string(), i.to_string()))
        );
    }
}
