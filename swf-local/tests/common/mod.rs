//! Shared helpers of the conformance tests: a server on 127.0.0.1:0, an aws-sdk-swf client
//! for it, a raw HTTP caller (for what the SDK refuses to send), and decider shorthands.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_swf::Client;
use aws_sdk_swf::config::retry::RetryConfig;
use aws_sdk_swf::config::timeout::TimeoutConfig;
use aws_sdk_swf::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_swf::error::ProvideErrorMetadata;
use aws_sdk_swf::operation::delete_activity_type::builders::DeleteActivityTypeFluentBuilder;
use aws_sdk_swf::operation::deprecate_activity_type::builders::DeprecateActivityTypeFluentBuilder;
use aws_sdk_swf::operation::deprecate_workflow_type::builders::DeprecateWorkflowTypeFluentBuilder;
use aws_sdk_swf::operation::describe_activity_type::builders::DescribeActivityTypeFluentBuilder;
use aws_sdk_swf::operation::describe_workflow_execution::builders::DescribeWorkflowExecutionFluentBuilder;
use aws_sdk_swf::operation::get_workflow_execution_history::builders::GetWorkflowExecutionHistoryFluentBuilder;
use aws_sdk_swf::operation::list_domains::builders::ListDomainsFluentBuilder;
use aws_sdk_swf::operation::poll_for_activity_task::PollForActivityTaskOutput;
use aws_sdk_swf::operation::poll_for_activity_task::builders::PollForActivityTaskFluentBuilder;
use aws_sdk_swf::operation::poll_for_decision_task::PollForDecisionTaskOutput;
use aws_sdk_swf::operation::poll_for_decision_task::builders::PollForDecisionTaskFluentBuilder;
use aws_sdk_swf::operation::record_activity_task_heartbeat::builders::RecordActivityTaskHeartbeatFluentBuilder;
use aws_sdk_swf::operation::register_activity_type::builders::RegisterActivityTypeFluentBuilder;
use aws_sdk_swf::operation::register_domain::builders::RegisterDomainFluentBuilder;
use aws_sdk_swf::operation::register_workflow_type::builders::RegisterWorkflowTypeFluentBuilder;
use aws_sdk_swf::operation::respond_activity_task_canceled::builders::RespondActivityTaskCanceledFluentBuilder;
use aws_sdk_swf::operation::respond_activity_task_completed::builders::RespondActivityTaskCompletedFluentBuilder;
use aws_sdk_swf::operation::respond_activity_task_failed::builders::RespondActivityTaskFailedFluentBuilder;
use aws_sdk_swf::operation::respond_decision_task_completed::builders::RespondDecisionTaskCompletedFluentBuilder;
use aws_sdk_swf::operation::signal_workflow_execution::builders::SignalWorkflowExecutionFluentBuilder;
use aws_sdk_swf::operation::start_workflow_execution::builders::StartWorkflowExecutionFluentBuilder;
use aws_sdk_swf::operation::undeprecate_workflow_type::builders::UndeprecateWorkflowTypeFluentBuilder;
use aws_sdk_swf::types::*;
use swf_local::{Options, Server, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TL: &str = "main";
pub const ACTIVITY_TL: &str = "work";

/// A running server; dropping it stops the server.
pub struct Env {
    pub url: String,
    pub addr: SocketAddr,
    pub client: Client,
    pub faults: swf_local::Faults,
    pub quotas: swf_local::Quotas,
    pub state: State,
    pub poll_timeout: Duration,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Env {
    pub async fn start(poll_ms: u64) -> Env {
        Self::start_at(
            "127.0.0.1:0".parse().unwrap(),
            poll_ms,
            State::new(),
            swf_local::Faults::default(),
        )
        .await
    }

    pub async fn start_at(
        addr: SocketAddr,
        poll_ms: u64,
        state: State,
        faults: swf_local::Faults,
    ) -> Env {
        let opts = Options {
            poll_timeout: Duration::from_millis(poll_ms),
            faults,
            ..Options::default()
        };
        Self::start_with(addr, opts, state).await
    }

    /// A server on `addr` with `opts`, serving `state`.
    pub async fn start_with(addr: SocketAddr, opts: Options, state: State) -> Env {
        let poll_timeout = opts.poll_timeout;
        let server = Server::bind_with_state(addr, opts, state)
            .await
            .expect("bind");
        let (url, addr, faults, quotas, state) = (
            server.url(),
            server.local_addr(),
            server.faults(),
            server.quotas(),
            server.state(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = client(&url, poll_timeout + Duration::from_secs(10));
        Env {
            url,
            addr,
            client,
            faults,
            quotas,
            state,
            poll_timeout,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits until its port is closed.
    pub async fn stop(mut self) -> State {
        self.stop.take().unwrap().send(()).ok();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.state.clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            tx.send(()).ok();
        }
    }
}

/// An aws-sdk-swf client for `url`: dummy credentials, no retries (tests see every error).
pub fn client(url: &str, attempt_timeout: Duration) -> Client {
    let conf = aws_sdk_swf::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// The error code (`__type` after `#`) of an SDK error.
pub fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

pub fn message<E: ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or("").to_owned()
}

/// POSTs one SWF call without the SDK; returns (status, JSON body).
pub async fn raw_call(addr: SocketAddr, op: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let target = op
        .map(|o| format!("X-Amz-Target: SimpleWorkflowService.{o}\r\n"))
        .unwrap_or_default();
    raw_http(addr, "POST", "/", &target, body).await
}

pub async fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned())),
    )
}

pub fn atype(name: &str) -> ActivityType {
    ActivityType::builder()
        .name(name)
        .version("1")
        .build()
        .unwrap()
}

/// The workflow type `name@1` (`setup` registers `wf@1`).
pub fn wtype(name: &str) -> WorkflowType {
    WorkflowType::builder()
        .name(name)
        .version("1")
        .build()
        .unwrap()
}

pub fn tl(name: &str) -> TaskList {
    TaskList::builder().name(name).build().unwrap()
}

// Request builders: each fills in the members its callers always set and is sent by the
// caller, so a test still sees the SDK's own Result (and can add optional members).

/// RegisterDomain of `name` keeping closed executions `days` days.
pub fn register_domain(c: &Client, name: &str, days: &str) -> RegisterDomainFluentBuilder {
    c.register_domain()
        .name(name)
        .workflow_execution_retention_period_in_days(days)
}

/// RegisterWorkflowType of `name@1` in `domain`, without defaults.
pub fn register_workflow(
    c: &Client,
    domain: &str,
    name: &str,
) -> RegisterWorkflowTypeFluentBuilder {
    c.register_workflow_type()
        .domain(domain)
        .name(name)
        .version("1")
}

/// RegisterActivityType of `name@1` in `domain`, without defaults.
pub fn register_activity(
    c: &Client,
    domain: &str,
    name: &str,
) -> RegisterActivityTypeFluentBuilder {
    c.register_activity_type()
        .domain(domain)
        .name(name)
        .version("1")
}

/// DescribeActivityType of `name@1`.
pub fn describe_activity(
    c: &Client,
    domain: &str,
    name: &str,
) -> DescribeActivityTypeFluentBuilder {
    c.describe_activity_type()
        .domain(domain)
        .activity_type(atype(name))
}

/// DeprecateActivityType of `name@1`.
pub fn deprecate_activity(
    c: &Client,
    domain: &str,
    name: &str,
) -> DeprecateActivityTypeFluentBuilder {
    c.deprecate_activity_type()
        .domain(domain)
        .activity_type(atype(name))
}

/// DeleteActivityType of `name@1`.
pub fn delete_activity(c: &Client, domain: &str, name: &str) -> DeleteActivityTypeFluentBuilder {
    c.delete_activity_type()
        .domain(domain)
        .activity_type(atype(name))
}

/// DeprecateWorkflowType of `name@1`.
pub fn deprecate_workflow(
    c: &Client,
    domain: &str,
    name: &str,
) -> DeprecateWorkflowTypeFluentBuilder {
    c.deprecate_workflow_type()
        .domain(domain)
        .workflow_type(wtype(name))
}

/// UndeprecateWorkflowType of `name@1`.
pub fn undeprecate_workflow(
    c: &Client,
    domain: &str,
    name: &str,
) -> UndeprecateWorkflowTypeFluentBuilder {
    c.undeprecate_workflow_type()
        .domain(domain)
        .workflow_type(wtype(name))
}

/// StartWorkflowExecution of `wf@1` with workflow id `id`, on the type's defaults.
pub fn start_workflow(c: &Client, domain: &str, id: &str) -> StartWorkflowExecutionFluentBuilder {
    c.start_workflow_execution()
        .domain(domain)
        .workflow_id(id)
        .workflow_type(wtype("wf"))
}

/// SignalWorkflowExecution of `signal` to the open run of `id`.
pub fn signal(
    c: &Client,
    domain: &str,
    id: &str,
    signal: &str,
) -> SignalWorkflowExecutionFluentBuilder {
    c.signal_workflow_execution()
        .domain(domain)
        .workflow_id(id)
        .signal_name(signal)
}

/// DescribeWorkflowExecution of `exec`.
pub fn describe_execution(
    c: &Client,
    domain: &str,
    exec: &WorkflowExecution,
) -> DescribeWorkflowExecutionFluentBuilder {
    c.describe_workflow_execution()
        .domain(domain)
        .execution(exec.clone())
}

/// GetWorkflowExecutionHistory of `exec`.
pub fn history_of(
    c: &Client,
    domain: &str,
    exec: &WorkflowExecution,
) -> GetWorkflowExecutionHistoryFluentBuilder {
    c.get_workflow_execution_history()
        .domain(domain)
        .execution(exec.clone())
}

/// ListDomains in `status`.
pub fn list_domains(c: &Client, status: RegistrationStatus) -> ListDomainsFluentBuilder {
    c.list_domains().registration_status(status)
}

/// One PollForActivityTask on task list `list` (held up to the poll timeout).
pub fn poll_activity(c: &Client, domain: &str, list: &str) -> PollForActivityTaskFluentBuilder {
    c.poll_for_activity_task()
        .domain(domain)
        .task_list(tl(list))
}

/// One PollForDecisionTask on task list `list` (held up to the poll timeout).
pub fn poll_decision(c: &Client, domain: &str, list: &str) -> PollForDecisionTaskFluentBuilder {
    c.poll_for_decision_task()
        .domain(domain)
        .task_list(tl(list))
}

/// RespondDecisionTaskCompleted for `token`, with no decisions yet.
pub fn decision_completed(c: &Client, token: &str) -> RespondDecisionTaskCompletedFluentBuilder {
    c.respond_decision_task_completed().task_token(token)
}

/// RespondActivityTaskCompleted for `token`.
pub fn activity_completed(c: &Client, token: &str) -> RespondActivityTaskCompletedFluentBuilder {
    c.respond_activity_task_completed().task_token(token)
}

/// RespondActivityTaskFailed for `token`.
pub fn activity_failed(c: &Client, token: &str) -> RespondActivityTaskFailedFluentBuilder {
    c.respond_activity_task_failed().task_token(token)
}

/// RespondActivityTaskCanceled for `token`.
pub fn activity_canceled(c: &Client, token: &str) -> RespondActivityTaskCanceledFluentBuilder {
    c.respond_activity_task_canceled().task_token(token)
}

/// RecordActivityTaskHeartbeat for `token`.
pub fn heartbeat(c: &Client, token: &str) -> RecordActivityTaskHeartbeatFluentBuilder {
    c.record_activity_task_heartbeat().task_token(token)
}

/// Registers `domain` with a workflow type `wf@1` and an activity type `act@1` that have
/// every default (timeouts in seconds as given).
pub async fn setup(c: &Client, domain: &str, activity_timeouts: [&str; 4]) {
    register_domain(c, domain, "1").send().await.unwrap();
    register_workflow(c, domain, "wf")
        .default_task_list(tl(TL))
        .default_child_policy(ChildPolicy::Terminate)
        .default_execution_start_to_close_timeout("3600")
        .default_task_start_to_close_timeout("30")
        .send()
        .await
        .unwrap();
    register_activity(c, domain, "act")
        .default_task_list(tl(ACTIVITY_TL))
        .default_task_schedule_to_start_timeout(activity_timeouts[0])
        .default_task_schedule_to_close_timeout(activity_timeouts[1])
        .default_task_start_to_close_timeout(activity_timeouts[2])
        .default_task_heartbeat_timeout(activity_timeouts[3])
        .send()
        .await
        .unwrap();
}

/// Sends a StartWorkflowExecution and returns the execution (workflow id and run id) it started.
pub async fn started(req: StartWorkflowExecutionFluentBuilder) -> WorkflowExecution {
    let id = req.get_workflow_id().clone().expect("a workflow id");
    let out = req.send().await.unwrap();
    WorkflowExecution::builder()
        .workflow_id(id)
        .run_id(out.run_id.unwrap())
        .build()
        .unwrap()
}

pub async fn start_wf(c: &Client, domain: &str, id: &str) -> WorkflowExecution {
    started(start_workflow(c, domain, id)).await
}

/// Starts workflow `id` and answers its first decision task with `decisions`.
pub async fn start_and_decide(
    c: &Client,
    domain: &str,
    id: &str,
    decisions: Vec<Decision>,
) -> WorkflowExecution {
    let exec = start_wf(c, domain, id).await;
    let dt = next_decision(c, domain).await;
    decide(c, &dt.task_token, decisions).await;
    exec
}

/// Activity tasks waiting on `ACTIVITY_TL`, from CountPendingActivityTasks.
pub async fn pending_activities(c: &Client, domain: &str) -> i32 {
    c.count_pending_activity_tasks()
        .domain(domain)
        .task_list(tl(ACTIVITY_TL))
        .send()
        .await
        .unwrap()
        .count
}

/// Polls decision tasks until one arrives (or panics after 20 s).
/// Starts run `w` in domain `d` and answers its first decision task with a good
/// ScheduleActivityTask (`ok`) followed by `bad`: SWF refuses the whole batch with a
/// ValidationException naming `member` of decision 2, and neither records nor schedules
/// anything. Returns the run, its (still open) decision task and its history before.
pub async fn refused_batch(
    c: &Client,
    bad: Decision,
    member: &str,
) -> (WorkflowExecution, PollForDecisionTaskOutput, Vec<String>) {
    let exec = start_wf(c, "d", "w").await;
    let dt = next_decision(c, "d").await;
    let before = event_types(c, "d", &exec).await;
    let err = decision_completed(c, &dt.task_token)
        .decisions(schedule("ok", "act"))
        .decisions(bad)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException", "{err:?}");
    let member = format!("decisions.2.member.{member}");
    assert!(message(&err).contains(&member), "{}", message(&err));
    assert_eq!(event_types(c, "d", &exec).await, before);
    assert_eq!(pending_activities(c, "d").await, 0);
    (exec, dt, before)
}

pub async fn next_decision(c: &Client, domain: &str) -> PollForDecisionTaskOutput {
    next_decision_on(c, domain, TL).await
}

/// Polls decision tasks on `list` until one arrives (or panics after 20 s).
pub async fn next_decision_on(c: &Client, domain: &str, list: &str) -> PollForDecisionTaskOutput {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = poll_decision(c, domain, list)
            .identity("decider")
            .send()
            .await
            .unwrap();
        if !out.task_token.is_empty() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no decision task on {list} within 20 s"
        );
    }
}

/// Polls activity tasks on `ACTIVITY_TL` until one arrives (or panics after 20 s).
pub async fn next_activity(c: &Client, domain: &str) -> PollForActivityTaskOutput {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = poll_activity(c, domain, ACTIVITY_TL)
            .identity("worker")
            .send()
            .await
            .unwrap();
        if !out.task_token.is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "no activity task within 20 s");
    }
}

/// Completes decision task `token` with `decisions`.
pub async fn decide(c: &Client, token: &str, decisions: Vec<Decision>) {
    decision_completed(c, token)
        .set_decisions(Some(decisions))
        .send()
        .await
        .unwrap();
}

/// ScheduleActivityTask of `name@1` as activity `id`, with input `in-{id}`.
pub fn schedule(id: &str, name: &str) -> Decision {
    schedule_with(
        ScheduleActivityTaskDecisionAttributes::builder()
            .activity_type(atype(name))
            .activity_id(id)
            .input(format!("in-{id}"))
            .build()
            .unwrap(),
    )
}

/// ScheduleActivityTask decisions of `act@1`, one per activity id.
pub fn schedules(ids: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<Decision> {
    ids.into_iter()
        .map(|id| schedule(id.as_ref(), "act"))
        .collect()
}

pub fn schedule_with(attrs: ScheduleActivityTaskDecisionAttributes) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::ScheduleActivityTask)
        .schedule_activity_task_decision_attributes(attrs)
        .build()
        .unwrap()
}

pub fn cancel_activity(id: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::RequestCancelActivityTask)
        .request_cancel_activity_task_decision_attributes(
            RequestCancelActivityTaskDecisionAttributes::builder()
                .activity_id(id)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// A RecordMarker decision for marker `name`, with `details` if given.
pub fn marker(name: &str, details: Option<&str>) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::RecordMarker)
        .record_marker_decision_attributes(
            RecordMarkerDecisionAttributes::builder()
                .marker_name(name)
                .set_details(details.map(str::to_owned))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

pub fn complete_wf(result: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::CompleteWorkflowExecution)
        .complete_workflow_execution_decision_attributes(
            CompleteWorkflowExecutionDecisionAttributes::builder()
                .result(result)
                .build(),
        )
        .build()
        .unwrap()
}

pub fn cancel_wf(details: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::CancelWorkflowExecution)
        .cancel_workflow_execution_decision_attributes(
            CancelWorkflowExecutionDecisionAttributes::builder()
                .details(details)
                .build(),
        )
        .build()
        .unwrap()
}

pub fn fail_wf(reason: &str, details: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::FailWorkflowExecution)
        .fail_workflow_execution_decision_attributes(
            FailWorkflowExecutionDecisionAttributes::builder()
                .reason(reason)
                .details(details)
                .build(),
        )
        .build()
        .unwrap()
}

/// StartChildWorkflowExecution of `wf@1` as workflow `id`, whose decision tasks go to task
/// list `id` (so a test polls the child apart from its parent).
pub fn start_child(id: &str) -> Decision {
    start_child_with(
        StartChildWorkflowExecutionDecisionAttributes::builder()
            .workflow_type(wtype("wf"))
            .workflow_id(id)
            .task_list(tl(id))
            .build()
            .unwrap(),
    )
}

pub fn start_child_with(attrs: StartChildWorkflowExecutionDecisionAttributes) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::StartChildWorkflowExecution)
        .start_child_workflow_execution_decision_attributes(attrs)
        .build()
        .unwrap()
}

/// SignalExternalWorkflowExecution of `signal` to workflow `id` (run `run`, else its open
/// run), with input `in-{signal}` and control `ctl-{signal}`.
pub fn signal_external(id: &str, run: Option<&str>, signal: &str) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::SignalExternalWorkflowExecution)
        .signal_external_workflow_execution_decision_attributes(
            SignalExternalWorkflowExecutionDecisionAttributes::builder()
                .workflow_id(id)
                .set_run_id(run.map(str::to_owned))
                .signal_name(signal)
                .input(format!("in-{signal}"))
                .control(format!("ctl-{signal}"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// RequestCancelExternalWorkflowExecution of workflow `id` (run `run`, else its open run),
/// with control `ctl-cancel`.
pub fn cancel_external(id: &str, run: Option<&str>) -> Decision {
    Decision::builder()
        .decision_type(DecisionType::RequestCancelExternalWorkflowExecution)
        .request_cancel_external_workflow_execution_decision_attributes(
            RequestCancelExternalWorkflowExecutionDecisionAttributes::builder()
                .workflow_id(id)
                .set_run_id(run.map(str::to_owned))
                .control("ctl-cancel")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// The workflow execution `id` / `run`.
pub fn execution(id: &str, run: &str) -> WorkflowExecution {
    WorkflowExecution::builder()
        .workflow_id(id)
        .run_id(run)
        .build()
        .unwrap()
}

/// The newest event of `ty` in `events` (panics when there is none).
pub fn last_of(events: &[HistoryEvent], ty: EventType) -> HistoryEvent {
    events
        .iter()
        .rev()
        .find(|e| e.event_type == ty)
        .unwrap_or_else(|| panic!("no {ty:?} event in {events:#?}"))
        .clone()
}

/// The execution info of `exec`, from DescribeWorkflowExecution.
pub async fn execution_info(
    c: &Client,
    domain: &str,
    exec: &WorkflowExecution,
) -> WorkflowExecutionInfo {
    describe_execution(c, domain, exec)
        .send()
        .await
        .unwrap()
        .execution_info
        .unwrap()
}

pub async fn history(c: &Client, domain: &str, exec: &WorkflowExecution) -> Vec<HistoryEvent> {
    history_of(c, domain, exec).send().await.unwrap().events
}

pub async fn event_types(c: &Client, domain: &str, exec: &WorkflowExecution) -> Vec<String> {
    history(c, domain, exec)
        .await
        .iter()
        .map(|e| e.event_type.as_str().to_owned())
        .collect()
}

/// Waits (up to 20 s) until the history holds an event of `ty`, and returns it.
pub async fn wait_event(
    c: &Client,
    domain: &str,
    exec: &WorkflowExecution,
    ty: EventType,
) -> HistoryEvent {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = history(c, domain, exec)
            .await
            .into_iter()
            .find(|e| e.event_type == ty)
        {
            return e;
        }
        assert!(Instant::now() < deadline, "no {ty:?} event within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
