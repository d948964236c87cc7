//! Workflow executions: start, describe, history, list, count, signal, cancel request,
//! terminate.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Fault, SwfError, SwfResult};
use crate::history::{list_page, page_size, record, request_cancel, schedule_decision};
use crate::model::{
    Core, DecisionState, Execution, PageKind, PageState, ParentLink, Status,
    check_decision_task_timeout, check_execution_timeout, get_str, now_ts, parse_duration,
    random_token, req_str, task_list_of,
};
use crate::timers::TimerKind;

/// Everything a new run needs, after defaults were applied.
pub struct StartParams {
    pub domain: String,
    pub workflow_id: String,
    pub workflow_type: Value,
    pub task_list: String,
    pub execution_start_to_close: String,
    /// `execution_start_to_close` in seconds; `None` = no limit.
    pub execution_timeout: Option<u64>,
    pub task_start_to_close: String,
    pub child_policy: String,
    pub task_priority: Option<String>,
    pub lambda_role: Option<String>,
    pub input: Option<String>,
    pub tag_list: Vec<Value>,
    pub continued_from: Option<String>,
    /// Set for a child (and a child's continued run).
    pub parent: Option<ParentLink>,
}

impl StartParams {
    /// The run's settings as the events that start a run list them
    /// (WorkflowExecutionStarted, WorkflowExecutionContinuedAsNew,
    /// StartChildWorkflowExecutionInitiated).
    pub fn event_attrs(&self) -> Value {
        let mut attrs = json!({
            "executionStartToCloseTimeout": self.execution_start_to_close,
            "taskStartToCloseTimeout": self.task_start_to_close,
            "childPolicy": self.child_policy,
            "taskList": {"name": self.task_list},
            "workflowType": self.workflow_type,
        });
        if let Some(v) = &self.input {
            attrs["input"] = json!(v);
        }
        if let Some(v) = &self.task_priority {
            attrs["taskPriority"] = json!(v);
        }
        if let Some(v) = &self.lambda_role {
            attrs["lambdaRole"] = json!(v);
        }
        if !self.tag_list.is_empty() {
            attrs["tagList"] = json!(self.tag_list);
        }
        attrs
    }
}

/// Why [`resolve_params`] refused: the fault for StartWorkflowExecution and the
/// ContinueAsNewWorkflowExecutionFailed cause for the decision.
#[derive(Debug)]
pub struct Refusal {
    pub error: SwfError,
    pub cause: &'static str,
}

impl From<Refusal> for SwfError {
    fn from(r: Refusal) -> SwfError {
        r.error
    }
}

fn refusal(kind: Fault, cause: &'static str, message: String) -> Refusal {
    Refusal {
        error: SwfError::new(kind, message),
        cause,
    }
}

fn undefined(what: &str, cause: &'static str) -> Refusal {
    refusal(
        Fault::DefaultUndefined,
        cause,
        format!("{what} was neither given nor registered as a default of the workflow type"),
    )
}

/// Resolves `attrs` (StartWorkflowExecution input or ContinueAsNew attributes) against the
/// workflow type's registered defaults: each member is the one given, else the type's
/// default, else a refusal.
pub fn resolve_params(
    core: &Core,
    domain: &str,
    workflow_id: &str,
    workflow_type: &Value,
    attrs: &Value,
) -> Result<StartParams, Refusal> {
    let not_permitted = |e: SwfError| Refusal {
        error: e,
        cause: "OPERATION_NOT_PERMITTED",
    };
    let d = core.domain(domain).map_err(not_permitted)?;
    let name = req_str(workflow_type, "name").map_err(not_permitted)?;
    let version = req_str(workflow_type, "version").map_err(not_permitted)?;
    let t = d.workflow_types.get(&(name.to_owned(), version.to_owned()));
    // A deprecated domain "cannot be used to create new workflow executions": it is no
    // longer available for this operation, UnknownResourceFault (as Register*Type answers;
    // DomainDeprecatedFault is not among StartWorkflowExecution's faults, SDKs would not
    // recognise it). A decision learns whether the type exists (deprecated with the domain).
    if d.status == Status::Deprecated {
        return Err(refusal(
            Fault::UnknownResource,
            if t.is_some() {
                "WORKFLOW_TYPE_DEPRECATED"
            } else {
                "WORKFLOW_TYPE_DOES_NOT_EXIST"
            },
            format!("Domain is deprecated, no workflow executions can be started in it: {domain}"),
        ));
    }
    let t = t.ok_or_else(|| {
        refusal(
            Fault::UnknownResource,
            "WORKFLOW_TYPE_DOES_NOT_EXIST",
            format!("Unknown type: WorkflowType=[name={name}, version={version}]"),
        )
    })?;
    if t.status == Status::Deprecated {
        return Err(refusal(
            Fault::TypeDeprecated,
            "WORKFLOW_TYPE_DEPRECATED",
            format!("WorkflowType=[name={name}, version={version}] is deprecated"),
        ));
    }
    let pick = |key: &str, default: &str| -> Option<String> {
        get_str(attrs, key)
            .or_else(|| t.default_str(default))
            .map(str::to_owned)
    };
    let task_list = task_list_of(attrs)
        .or_else(|| t.default_task_list())
        .ok_or_else(|| undefined("taskList", "DEFAULT_TASK_LIST_UNDEFINED"))?;
    let execution_start_to_close = pick(
        "executionStartToCloseTimeout",
        "defaultExecutionStartToCloseTimeout",
    )
    .ok_or_else(|| {
        undefined(
            "executionStartToCloseTimeout",
            "DEFAULT_EXECUTION_START_TO_CLOSE_TIMEOUT_UNDEFINED",
        )
    })?;
    let task_start_to_close = pick("taskStartToCloseTimeout", "defaultTaskStartToCloseTimeout")
        .ok_or_else(|| {
            undefined(
                "taskStartToCloseTimeout",
                "DEFAULT_TASK_START_TO_CLOSE_TIMEOUT_UNDEFINED",
            )
        })?;
    let child_policy = pick("childPolicy", "defaultChildPolicy")
        .ok_or_else(|| undefined("childPolicy", "DEFAULT_CHILD_POLICY_UNDEFINED"))?;
    let execution_timeout =
        parse_duration(&execution_start_to_close, "executionStartToCloseTimeout")
            .map_err(not_permitted)?;
    parse_duration(&task_start_to_close, "taskStartToCloseTimeout").map_err(not_permitted)?;
    Ok(StartParams {
        domain: domain.to_owned(),
        workflow_id: workflow_id.to_owned(),
        workflow_type: json!({"name": name, "version": version}),
        task_list: task_list.to_owned(),
        execution_start_to_close,
        execution_timeout,
        task_start_to_close,
        child_policy,
        task_priority: pick("taskPriority", "defaultTaskPriority"),
        lambda_role: pick("lambdaRole", "defaultLambdaRole"),
        input: get_str(attrs, "input").map(str::to_owned),
        tag_list: attrs
            .get("tagList")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        continued_from: None,
        parent: None,
    })
}

/// Starts a run: WorkflowExecutionStarted, the first decision task, the run's timeout.
/// `p` comes from [`resolve_params`], which did every check. A run with a parent becomes
/// the child its parent follows (the first run, or the continued run of a child).
pub fn start(core: &mut Core, p: StartParams) -> u64 {
    let id = core.next_exec;
    core.next_exec += 1;
    let run_id = random_token();
    let mut ex = Execution {
        id,
        domain: p.domain.clone(),
        workflow_id: p.workflow_id.clone(),
        run_id: run_id.clone(),
        workflow_type: p.workflow_type.clone(),
        task_list: p.task_list.clone(),
        task_priority: p.task_priority.clone(),
        task_start_to_close: Some(p.task_start_to_close.clone()),
        execution_start_to_close: Some(p.execution_start_to_close.clone()),
        child_policy: p.child_policy.clone(),
        lambda_role: p.lambda_role.clone(),
        tag_list: p.tag_list.clone(),
        started: now_ts(),
        closed: None,
        cancel_requested: false,
        events: Vec::new(),
        activities: HashMap::new(),
        activity_ids: HashMap::new(),
        timers: HashMap::new(),
        decision: DecisionState::None,
        decision_task_list: None,
        decision_schedule_to_start: None,
        decision_needed: false,
        previous_started: 0,
        latest_context: None,
        latest_activity_ts: None,
        parent: p.parent.clone(),
        children: BTreeMap::new(),
        event_limit: core.event_limit.clone(),
    };
    let mut attrs = p.event_attrs();
    attrs["parentInitiatedEventId"] = json!(0);
    if let Some(v) = &p.continued_from {
        attrs["continuedExecutionRunId"] = json!(v);
    }
    if let Some(link) = &p.parent {
        attrs["parentWorkflowExecution"] = link.execution.clone();
        attrs["parentInitiatedEventId"] = json!(link.initiated);
        let followed = core
            .execs
            .get_mut(&link.exec)
            .and_then(|parent| parent.children.get_mut(&link.initiated));
        if let Some(rec) = followed {
            rec.exec = id;
        }
    }
    ex.push("WorkflowExecutionStarted", attrs);
    schedule_decision(&mut ex, &mut core.sched);
    if let Some(secs) = p.execution_timeout {
        core.sched.add_timer(
            Instant::now() + Duration::from_secs(secs),
            TimerKind::WorkflowStartToClose { exec: id },
        );
    }
    if let Some(d) = core.domains.get_mut(&p.domain) {
        d.open_executions += 1;
    }
    core.open_by_workflow_id
        .insert((p.domain.clone(), p.workflow_id.clone()), id);
    core.by_run.insert((p.domain, p.workflow_id, run_id), id);
    core.execs.insert(id, ex);
    id
}

pub fn start_workflow_execution(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let domain = req_str(input, "domain")?;
    let workflow_id = req_str(input, "workflowId")?;
    let params = resolve_params(core, domain, workflow_id, &input["workflowType"], input)?;
    // Given or the type's default (checked at registration too).
    check_execution_timeout(
        &params.execution_start_to_close,
        "executionStartToCloseTimeout",
        false,
    )?;
    check_decision_task_timeout(&params.task_start_to_close, "taskStartToCloseTimeout")?;
    if core
        .open_by_workflow_id
        .contains_key(&(domain.to_owned(), workflow_id.to_owned()))
    {
        return Err(SwfError::new(
            Fault::WorkflowExecutionAlreadyStarted,
            format!(
                "An open execution with workflowId {workflow_id} already exists in domain {domain}"
            ),
        ));
    }
    if !core.may_open_execution(domain) {
        return Err(SwfError::new(
            Fault::LimitExceeded,
            format!(
                "Domain {domain} already has {} open workflow executions, SWF's maximum",
                core.open_executions_limit
            ),
        ));
    }
    let id = start(core, params);
    Ok(json!({"runId": core.execs[&id].run_id}))
}

fn open_execution<'a>(core: &'a mut Core, input: &Value) -> SwfResult<&'a mut Execution> {
    let domain = req_str(input, "domain")?;
    let exec =
        json!({"workflowId": req_str(input, "workflowId")?, "runId": get_str(input, "runId")});
    let id = core.find_execution(domain, &exec)?;
    core.execs
        .get_mut(&id)
        .filter(|e| e.is_open())
        .ok_or_else(|| {
            SwfError::unknown(format!(
                "Unknown execution: WorkflowExecution=[workflowId={}]",
                exec["workflowId"]
            ))
        })
}

pub fn describe_workflow_execution(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let id = core.find_execution(req_str(input, "domain")?, &input["execution"])?;
    let ex = &core.execs[&id];
    let mut config = json!({
        "taskStartToCloseTimeout": ex.task_start_to_close.as_deref().unwrap_or("NONE"),
        "executionStartToCloseTimeout": ex.execution_start_to_close.as_deref().unwrap_or("NONE"),
        "taskList": {"name": ex.task_list},
        "childPolicy": ex.child_policy,
    });
    if let Some(p) = &ex.task_priority {
        config["taskPriority"] = json!(p);
    }
    if let Some(r) = &ex.lambda_role {
        config["lambdaRole"] = json!(r);
    }
    let mut out = json!({
        "executionInfo": ex.info(),
        "executionConfiguration": config,
        "openCounts": {
            "openActivityTasks": ex.activities.len(),
            "openDecisionTasks": ex.open_decision_tasks(),
            "openTimers": ex.timers.len(),
            "openChildWorkflowExecutions": ex.children.len(),
            "openLambdaFunctions": 0,
        },
    });
    if let Some(ts) = ex.latest_activity_ts {
        out["latestActivityTaskTimestamp"] = json!(ts);
    }
    if let Some(c) = &ex.latest_context {
        out["latestExecutionContext"] = json!(c);
    }
    Ok(out)
}

pub fn get_workflow_execution_history(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let id = core.find_execution(req_str(input, "domain")?, &input["execution"])?;
    let events = &core.execs[&id].events;
    // The token holds where the listing goes on: forward, the index of the next event (new
    // events are appended after it); in reverse, how many of the oldest events are still to
    // come, so events appended since the first page are not listed.
    let (next, size, reverse) = match get_str(input, "nextPageToken") {
        Some(t) => {
            let st = core.sched.page_token(t)?;
            match st.kind {
                // Each call's own maximumPageSize applies.
                PageKind::History { exec } if exec == id => {
                    (st.offset, page_size(input), st.reverse)
                }
                _ => {
                    return Err(SwfError::validation(
                        "Invalid nextPageToken: it does not belong to this execution's history",
                    ));
                }
            }
        }
        None => {
            let reverse = input
                .get("reverseOrder")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (
                if reverse { events.len() } else { 0 },
                page_size(input),
                reverse,
            )
        }
    };
    let (page, next, more): (Vec<Value>, usize, bool) = if reverse {
        let end = next.min(events.len());
        let from = end.saturating_sub(size);
        (
            events[from..end].iter().rev().cloned().collect(),
            from,
            from > 0,
        )
    } else {
        let from = next.min(events.len());
        let end = (from + size).min(events.len());
        (events[from..end].to_vec(), end, end < events.len())
    };
    let mut out = json!({"events": page});
    if more {
        out["nextPageToken"] = json!(core.sched.issue_page_token(PageState {
            kind: PageKind::History { exec: id },
            offset: next,
            page_size: size,
            reverse,
        }));
    }
    Ok(out)
}

fn in_time_filter(filter: Option<&Value>, ts: Option<f64>) -> bool {
    let Some(f) = filter else { return true };
    let Some(ts) = ts else { return false };
    let oldest = f
        .get("oldestDate")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MIN);
    let latest = f
        .get("latestDate")
        .and_then(Value::as_f64)
        .unwrap_or(f64::MAX);
    ts >= oldest && ts <= latest
}

/// SWF's List*/Count* docs: "executionFilter, typeFilter and tagFilter are mutually
/// exclusive. You can specify at most one of these in a request", with closeStatusFilter in
/// the set for closed executions. The operations model no fault for it: a ValidationException.
fn check_exclusive_filters(input: &Value, open: bool) -> SwfResult<()> {
    let set: &[&str] = if open {
        &["executionFilter", "typeFilter", "tagFilter"]
    } else {
        &[
            "closeStatusFilter",
            "executionFilter",
            "typeFilter",
            "tagFilter",
        ]
    };
    let given: Vec<&str> = set
        .iter()
        .copied()
        .filter(|k| input.get(k).is_some_and(|v| !v.is_null()))
        .collect();
    if given.len() > 1 {
        return Err(SwfError::validation(format!(
            "{} are mutually exclusive: specify at most one of them (given: {})",
            set.join(", "),
            given.join(", ")
        )));
    }
    Ok(())
}

/// Executions matching a List*/Count* request's filters, newest first.
fn matching<'a>(core: &'a Core, input: &Value, open: bool) -> SwfResult<Vec<&'a Execution>> {
    let domain = req_str(input, "domain")?;
    core.domain(domain)?;
    let start_filter = input.get("startTimeFilter");
    let close_filter = input.get("closeTimeFilter");
    if !open && start_filter.is_some() == close_filter.is_some() {
        return Err(SwfError::validation(
            "Exactly one of startTimeFilter and closeTimeFilter must be given",
        ));
    }
    check_exclusive_filters(input, open)?;
    let wf = input
        .get("executionFilter")
        .and_then(|f| get_str(f, "workflowId"));
    let type_name = input.get("typeFilter").and_then(|f| get_str(f, "name"));
    let type_version = input.get("typeFilter").and_then(|f| get_str(f, "version"));
    let tag = input.get("tagFilter").and_then(|f| get_str(f, "tag"));
    let status = input
        .get("closeStatusFilter")
        .and_then(|f| get_str(f, "status"));
    let mut out: Vec<&Execution> = core
        .execs
        .values()
        .filter(|e| e.domain == domain && e.is_open() == open)
        .filter(|e| in_time_filter(start_filter, Some(e.started)))
        .filter(|e| in_time_filter(close_filter, e.closed.map(|c| c.0)))
        .filter(|e| wf.is_none_or(|w| w == e.workflow_id))
        .filter(|e| type_name.is_none_or(|n| Some(n) == get_str(&e.workflow_type, "name")))
        .filter(|e| type_version.is_none_or(|n| Some(n) == get_str(&e.workflow_type, "version")))
        .filter(|e| tag.is_none_or(|t| e.tag_list.iter().any(|x| x.as_str() == Some(t))))
        .filter(|e| status.is_none_or(|s| e.closed.is_some_and(|c| c.1 == s)))
        .collect();
    let by_close = close_filter.is_some();
    out.sort_by(|a, b| {
        let key = |e: &Execution| {
            if by_close {
                e.closed.map_or(0.0, |c| c.0)
            } else {
                e.started
            }
        };
        key(b).total_cmp(&key(a)).then(b.id.cmp(&a.id))
    });
    Ok(out)
}

pub fn list_executions(core: &mut Core, input: &Value, open: bool) -> SwfResult<Value> {
    let op = if open {
        "ListOpenWorkflowExecutions"
    } else {
        "ListClosedWorkflowExecutions"
    };
    list_page(core, op, "executionInfos", input, |core| {
        Ok(matching(core, input, open)?
            .into_iter()
            .map(Execution::info)
            .collect())
    })
}

pub fn count_executions(core: &mut Core, input: &Value, open: bool) -> SwfResult<Value> {
    Ok(json!({"count": matching(core, input, open)?.len(), "truncated": false}))
}

pub fn signal_workflow_execution(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let mut attrs =
        json!({"signalName": req_str(input, "signalName")?, "externalInitiatedEventId": 0});
    if let Some(i) = get_str(input, "input") {
        attrs["input"] = json!(i);
    }
    let id = open_execution(core, input)?.id;
    let ex = core.execs.get_mut(&id).expect("just found");
    record(ex, &mut core.sched, "WorkflowExecutionSignaled", attrs);
    Ok(json!({}))
}

pub fn request_cancel_workflow_execution(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let id = open_execution(core, input)?.id;
    let ex = core.execs.get_mut(&id).expect("just found");
    request_cancel(ex, &mut core.sched, json!({"externalInitiatedEventId": 0}));
    Ok(json!({}))
}

pub fn terminate_workflow_execution(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let id = open_execution(core, input)?.id;
    let mut attrs = json!({"cause": "OPERATOR_INITIATED"});
    if let Some(r) = get_str(input, "reason") {
        attrs["reason"] = json!(r);
    }
    if let Some(d) = get_str(input, "details") {
        attrs["details"] = json!(d);
    }
    core.terminate(id, get_str(input, "childPolicy"), attrs);
    Ok(json!({}))
}
