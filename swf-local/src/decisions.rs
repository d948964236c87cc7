//! RespondDecisionTaskCompleted: records DecisionTaskCompleted, then applies each decision
//! in order, recording the events SWF records (the *Failed ones included).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{SwfError, SwfResult};
use crate::executions::{resolve_params, start};
use crate::history::schedule_decision;
use crate::model::{
    Activity, Core, DecisionState, Status, check_activity_timeout, check_execution_timeout,
    get_str, parse_duration, priority_of, req_str, task_list_of,
};
use crate::timers::TimerKind;

/// Decision types swf-local applies, with the member holding their attributes.
const SUPPORTED: &[(&str, &str)] = &[
    (
        "ScheduleActivityTask",
        "scheduleActivityTaskDecisionAttributes",
    ),
    (
        "RequestCancelActivityTask",
        "requestCancelActivityTaskDecisionAttributes",
    ),
    (
        "CompleteWorkflowExecution",
        "completeWorkflowExecutionDecisionAttributes",
    ),
    (
        "FailWorkflowExecution",
        "failWorkflowExecutionDecisionAttributes",
    ),
    (
        "CancelWorkflowExecution",
        "cancelWorkflowExecutionDecisionAttributes",
    ),
    (
        "ContinueAsNewWorkflowExecution",
        "continueAsNewWorkflowExecutionDecisionAttributes",
    ),
    ("StartTimer", "startTimerDecisionAttributes"),
    ("CancelTimer", "cancelTimerDecisionAttributes"),
    ("RecordMarker", "recordMarkerDecisionAttributes"),
];

/// Decision types whose attributes may be absent (all their members are optional).
const OPTIONAL_ATTRS: &[&str] = &[
    "CompleteWorkflowExecution",
    "FailWorkflowExecution",
    "CancelWorkflowExecution",
    "ContinueAsNewWorkflowExecution",
];

/// Stands in for attributes a decision may leave out.
static NO_ATTRS: Value = Value::Null;

/// One decision, checked completely before any decision of its batch is applied: applying
/// it can only record events (the `*Failed` ones included), never refuse the call.
enum Parsed<'a> {
    ScheduleActivity {
        name: &'a str,
        version: &'a str,
        activity_id: &'a str,
        attrs: &'a Value,
    },
    RequestCancelActivity {
        activity_id: &'a str,
    },
    StartTimer {
        timer_id: &'a str,
        fire: &'a str,
        secs: u64,
        attrs: &'a Value,
    },
    CancelTimer {
        timer_id: &'a str,
    },
    RecordMarker {
        name: &'a str,
        attrs: &'a Value,
    },
    /// Complete, Fail, Cancel or ContinueAsNew.
    Close {
        ty: &'a str,
        attrs: &'a Value,
    },
}

/// A value at `path` that breaks a rule, in the validator's wording.
fn invalid(path: &str, v: &str, why: &str) -> SwfError {
    SwfError::validation(format!(
        "1 validation error detected: Value '{v}' at '{path}' failed to satisfy constraint: {why}"
    ))
}

/// A required string member of decision attributes.
fn member<'a>(a: &'a Value, path: &str, key: &str) -> SwfResult<&'a str> {
    get_str(a, key).ok_or_else(|| {
        SwfError::validation(format!(
            "1 validation error detected: Value null at '{path}.{key}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// Checks an optional duration member ("NONE" or whole seconds) of the object at `path`
/// ("" = the request).
fn duration(a: &Value, path: &str, key: &str) -> SwfResult<()> {
    if let Some(v) = get_str(a, key) {
        parse_duration(v, key).map_err(|_| {
            invalid(
                &if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                },
                v,
                "Member must be a whole number of seconds or NONE",
            )
        })?;
    }
    Ok(())
}

/// Checks decision `i` (0-based) of a batch and takes what applying it needs.
fn parse(i: usize, d: &Value) -> SwfResult<Parsed<'_>> {
    let ty = req_str(d, "decisionType")?;
    let Some((_, attrs_key)) = SUPPORTED.iter().find(|(t, _)| *t == ty) else {
        return Err(SwfError::validation(format!(
            "decisions.{}: swf-local does not support the decision type {ty}",
            i + 1
        )));
    };
    let a = match d.get(*attrs_key).filter(|v| !v.is_null()) {
        Some(a) => a,
        None if OPTIONAL_ATTRS.contains(&ty) => &NO_ATTRS,
        None => {
            return Err(SwfError::validation(format!(
                "decisions.{}: {attrs_key} is required for decision type {ty}",
                i + 1
            )));
        }
    };
    let path = format!("decisions.{}.member.{attrs_key}", i + 1);
    Ok(match ty {
        "ScheduleActivityTask" => {
            let at = a.get("activityType").unwrap_or(&NO_ATTRS);
            let at_path = format!("{path}.activityType");
            for key in [
                "scheduleToStartTimeout",
                "scheduleToCloseTimeout",
                "startToCloseTimeout",
                "heartbeatTimeout",
            ] {
                duration(a, &path, key)?;
                if let Some(v) = get_str(a, key) {
                    check_activity_timeout(v, &format!("{path}.{key}"))?;
                }
            }
            Parsed::ScheduleActivity {
                name: member(at, &at_path, "name")?,
                version: member(at, &at_path, "version")?,
                activity_id: member(a, &path, "activityId")?,
                attrs: a,
            }
        }
        "RequestCancelActivityTask" => Parsed::RequestCancelActivity {
            activity_id: member(a, &path, "activityId")?,
        },
        "StartTimer" => {
            let fire = member(a, &path, "startToFireTimeout")?;
            // "An integer greater than or equal to 0": unlike the other durations, no NONE.
            let secs = fire.parse::<u64>().map_err(|_| {
                invalid(
                    &format!("{path}.startToFireTimeout"),
                    fire,
                    "Member must be a whole number of seconds",
                )
            })?;
            Parsed::StartTimer {
                timer_id: member(a, &path, "timerId")?,
                fire,
                secs,
                attrs: a,
            }
        }
        "CancelTimer" => Parsed::CancelTimer {
            timer_id: member(a, &path, "timerId")?,
        },
        "RecordMarker" => Parsed::RecordMarker {
            name: member(a, &path, "markerName")?,
            attrs: a,
        },
        _ => {
            for key in ["executionStartToCloseTimeout", "taskStartToCloseTimeout"] {
                duration(a, &path, key)?;
            }
            if let Some(v) = get_str(a, "executionStartToCloseTimeout") {
                let path = format!("{path}.executionStartToCloseTimeout");
                check_execution_timeout(v, &path, true)?;
            }
            Parsed::Close { ty, attrs: a }
        }
    })
}

pub fn respond_decision_task_completed(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let token = req_str(input, "taskToken")?;
    let unknown = || {
        SwfError::unknown(
            "Unknown task token: the decision task is closed, timed out or was never started",
        )
    };
    let decisions = input
        .get("decisions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parsed = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| parse(i, d))
        .collect::<SwfResult<Vec<_>>>()?;
    let task_list = task_list_of(input);
    duration(input, "", "taskListScheduleToStartTimeout")?;
    let schedule_to_start = get_str(input, "taskListScheduleToStartTimeout");
    let exec = *core.sched.decision_tokens.get(token).ok_or_else(unknown)?;
    let ex = core
        .execs
        .get_mut(&exec)
        .filter(|e| e.is_open())
        .ok_or_else(unknown)?;
    let DecisionState::Started {
        scheduled_id,
        started_id,
        token: current,
    } = &ex.decision
    else {
        return Err(unknown());
    };
    if current != token {
        return Err(unknown());
    }
    // Nothing below refuses the call: from here on, every outcome is an event.
    let mut attrs = json!({"scheduledEventId": scheduled_id, "startedEventId": started_id});
    if let Some(c) = get_str(input, "executionContext") {
        attrs["executionContext"] = json!(c);
        ex.latest_context = Some(c.to_owned());
    }
    // Where (and with which schedule-to-start timeout) this run's next decision tasks go.
    if let Some(tl) = task_list {
        attrs["taskList"] = json!({"name": tl});
        ex.decision_task_list = Some(tl.to_owned());
        ex.decision_schedule_to_start = None;
    }
    if let Some(t) = schedule_to_start {
        attrs["taskListScheduleToStartTimeout"] = json!(t);
        ex.decision_schedule_to_start = Some(t.to_owned());
    }
    ex.previous_started = *started_id;
    ex.decision = DecisionState::None;
    let unhandled = std::mem::take(&mut ex.decision_needed);
    let completed = ex.push("DecisionTaskCompleted", attrs);
    core.sched.decision_tokens.remove(token);

    let mut needs_decision = unhandled;
    for d in parsed {
        let mut ctx = Ctx {
            core,
            exec,
            completed,
            needs_decision: &mut needs_decision,
        };
        let closed = match d {
            Parsed::ScheduleActivity {
                name,
                version,
                activity_id,
                attrs,
            } => {
                ctx.schedule_activity(name, version, activity_id, attrs);
                false
            }
            Parsed::RequestCancelActivity { activity_id } => {
                ctx.request_cancel_activity(activity_id);
                false
            }
            Parsed::StartTimer {
                timer_id,
                fire,
                secs,
                attrs,
            } => {
                ctx.start_timer(timer_id, fire, secs, attrs);
                false
            }
            Parsed::CancelTimer { timer_id } => {
                ctx.cancel_timer(timer_id);
                false
            }
            Parsed::RecordMarker { name, attrs } => {
                let mut ev = json!({"markerName": name, "decisionTaskCompletedEventId": completed});
                copy(attrs, &mut ev, "details");
                ctx.push("MarkerRecorded", ev);
                false
            }
            Parsed::Close { ty, attrs } => ctx.close(ty, attrs, unhandled),
        };
        if closed {
            return Ok(json!({}));
        }
    }
    if needs_decision && let Some(ex) = core.execs.get_mut(&exec) {
        schedule_decision(ex, &mut core.sched);
    }
    Ok(json!({}))
}

fn copy(from: &Value, to: &mut Value, key: &str) {
    if let Some(v) = from.get(key).filter(|v| !v.is_null()) {
        to[key] = v.clone();
    }
}

/// One decision being applied.
struct Ctx<'a> {
    core: &'a mut Core,
    exec: u64,
    /// The DecisionTaskCompleted event id the decision's events point back to.
    completed: i64,
    needs_decision: &'a mut bool,
}

impl Ctx<'_> {
    fn ex(&mut self) -> &mut crate::model::Execution {
        self.core
            .execs
            .get_mut(&self.exec)
            .expect("execution of a started decision")
    }

    fn push(&mut self, ty: &str, attrs: Value) -> i64 {
        self.ex().push(ty, attrs)
    }

    /// Records a `<Decision>Failed` event; failures always get a new decision task.
    fn failed(&mut self, ty: &str, mut attrs: Value, cause: &str) {
        attrs["cause"] = json!(cause);
        attrs["decisionTaskCompletedEventId"] = json!(self.completed);
        self.push(ty, attrs);
        *self.needs_decision = true;
    }

    fn schedule_activity(&mut self, name: &str, version: &str, activity_id: &str, a: &Value) {
        let base =
            json!({"activityType": {"name": name, "version": version}, "activityId": activity_id});
        let domain = self.ex().domain.clone();
        let ty = self
            .core
            .domains
            .get(&domain)
            .and_then(|d| d.activity_types.get(&(name.to_owned(), version.to_owned())))
            .cloned();
        let Some(ty) = ty else {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "ACTIVITY_TYPE_DOES_NOT_EXIST",
            );
            return;
        };
        if ty.status == Status::Deprecated {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "ACTIVITY_TYPE_DEPRECATED",
            );
            return;
        }
        if self.ex().activity_ids.contains_key(activity_id) {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "ACTIVITY_ID_ALREADY_IN_USE",
            );
            return;
        }
        if self.ex().activities.len() >= 1000 {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "OPEN_ACTIVITIES_LIMIT_EXCEEDED",
            );
            return;
        }
        let mut timeouts = [None, None, None, None];
        for (i, (key, default, cause)) in [
            (
                "scheduleToStartTimeout",
                "defaultTaskScheduleToStartTimeout",
                "DEFAULT_SCHEDULE_TO_START_TIMEOUT_UNDEFINED",
            ),
            (
                "scheduleToCloseTimeout",
                "defaultTaskScheduleToCloseTimeout",
                "DEFAULT_SCHEDULE_TO_CLOSE_TIMEOUT_UNDEFINED",
            ),
            (
                "startToCloseTimeout",
                "defaultTaskStartToCloseTimeout",
                "DEFAULT_START_TO_CLOSE_TIMEOUT_UNDEFINED",
            ),
            (
                "heartbeatTimeout",
                "defaultTaskHeartbeatTimeout",
                "DEFAULT_HEARTBEAT_TIMEOUT_UNDEFINED",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            match get_str(a, key).or_else(|| ty.default_str(default)) {
                Some(v) => timeouts[i] = Some((key, v.to_owned())),
                None => {
                    self.failed("ScheduleActivityTaskFailed", base, cause);
                    return;
                }
            }
        }
        let Some(task_list) = task_list_of(a)
            .or_else(|| ty.default_task_list())
            .map(str::to_owned)
        else {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "DEFAULT_TASK_LIST_UNDEFINED",
            );
            return;
        };
        let mut ev = base.clone();
        let mut secs = [None; 4];
        for (i, t) in timeouts.iter().enumerate() {
            let (key, v) = t.as_ref().expect("all set above");
            // Given values were checked by `parse`, registered defaults by Register*Type.
            secs[i] = parse_duration(v, key).unwrap_or(None);
            ev[*key] = json!(v);
        }
        ev["taskList"] = json!({"name": task_list});
        ev["decisionTaskCompletedEventId"] = json!(self.completed);
        copy(a, &mut ev, "input");
        copy(a, &mut ev, "control");
        let priority = get_str(a, "taskPriority").or_else(|| ty.default_str("defaultTaskPriority"));
        if let Some(p) = priority {
            ev["taskPriority"] = json!(p)
        }
        let priority = priority_of(priority);
        let scheduled = self.push("ActivityTaskScheduled", ev);
        let exec = self.exec;
        let ex = self.ex();
        // "The time when the last activity task was scheduled": the event's own timestamp.
        ex.latest_activity_ts = ex.events.last().and_then(|e| e["eventTimestamp"].as_f64());
        ex.activity_ids.insert(activity_id.to_owned(), scheduled);
        ex.activities.insert(
            scheduled,
            Activity {
                activity_id: activity_id.to_owned(),
                activity_type: base["activityType"].clone(),
                input: get_str(a, "input").map(str::to_owned),
                task_list: task_list.clone(),
                scheduled_id: scheduled,
                started_id: None,
                token: None,
                start_to_close: secs[2],
                heartbeat: secs[3],
                last_beat: Instant::now(),
                details: None,
                cancel_requested: None,
            },
        );
        let now = Instant::now();
        let sched = &mut self.core.sched;
        sched.enqueue_activity(&domain, &task_list, priority, (exec, scheduled));
        if let Some(s) = secs[0] {
            sched.add_timer(
                now + Duration::from_secs(s),
                TimerKind::ScheduleToStart { exec, scheduled },
            );
        }
        if let Some(s) = secs[1] {
            sched.add_timer(
                now + Duration::from_secs(s),
                TimerKind::ScheduleToClose { exec, scheduled },
            );
        }
    }

    fn request_cancel_activity(&mut self, activity_id: &str) {
        let Some(&scheduled) = self.ex().activity_ids.get(activity_id) else {
            self.failed(
                "RequestCancelActivityTaskFailed",
                json!({"activityId": activity_id}),
                "ACTIVITY_ID_UNKNOWN",
            );
            return;
        };
        let completed = self.completed;
        let requested = self.push(
            "ActivityTaskCancelRequested",
            json!({"activityId": activity_id, "decisionTaskCompletedEventId": completed}),
        );
        let ex = self.ex();
        let act = ex
            .activities
            .get_mut(&scheduled)
            .expect("activity_ids and activities agree");
        if act.started_id.is_some() {
            act.cancel_requested = Some(requested);
            return;
        }
        // Not started yet: SWF cancels it at once.
        ex.activities.remove(&scheduled);
        ex.activity_ids.remove(activity_id);
        ex.push(
            "ActivityTaskCanceled",
            json!({"scheduledEventId": scheduled, "startedEventId": 0, "latestCancelRequestedEventId": requested}),
        );
        *self.needs_decision = true;
    }

    fn start_timer(&mut self, timer_id: &str, fire: &str, secs: u64, a: &Value) {
        if self.ex().timers.contains_key(timer_id) {
            self.failed(
                "StartTimerFailed",
                json!({"timerId": timer_id}),
                "TIMER_ID_ALREADY_IN_USE",
            );
            return;
        }
        let mut ev = json!({"timerId": timer_id, "startToFireTimeout": fire, "decisionTaskCompletedEventId": self.completed});
        copy(a, &mut ev, "control");
        let started = self.push("TimerStarted", ev);
        self.ex().timers.insert(timer_id.to_owned(), started);
        let exec = self.exec;
        self.core.sched.add_timer(
            Instant::now() + Duration::from_secs(secs),
            TimerKind::UserTimer {
                exec,
                timer_id: timer_id.to_owned(),
                started,
            },
        );
    }

    fn cancel_timer(&mut self, timer_id: &str) {
        let Some(started) = self.ex().timers.remove(timer_id) else {
            self.failed(
                "CancelTimerFailed",
                json!({"timerId": timer_id}),
                "TIMER_ID_UNKNOWN",
            );
            return;
        };
        let completed = self.completed;
        self.push(
            "TimerCanceled",
            json!({"timerId": timer_id, "startedEventId": started, "decisionTaskCompletedEventId": completed}),
        );
    }

    /// A closing decision; returns true when the execution closed. With events the decider
    /// has not seen yet, SWF fails it with UNHANDLED_DECISION.
    fn close(&mut self, ty: &str, a: &Value, unhandled: bool) -> bool {
        let failed = format!("{ty}Failed");
        if unhandled {
            self.failed(&failed, json!({}), "UNHANDLED_DECISION");
            return false;
        }
        let mut ev = json!({"decisionTaskCompletedEventId": self.completed});
        let (event, status) = match ty {
            "CompleteWorkflowExecution" => {
                copy(a, &mut ev, "result");
                ("WorkflowExecutionCompleted", "COMPLETED")
            }
            "FailWorkflowExecution" => {
                copy(a, &mut ev, "reason");
                copy(a, &mut ev, "details");
                ("WorkflowExecutionFailed", "FAILED")
            }
            "CancelWorkflowExecution" => {
                copy(a, &mut ev, "details");
                ("WorkflowExecutionCanceled", "CANCELED")
            }
            _ => return self.continue_as_new(a),
        };
        self.push(event, ev);
        self.core.close_execution(self.exec, status);
        true
    }

    /// Each setting of the new run is the decision's, else the (new) workflow type's
    /// registered default, else the decision fails with that setting's DEFAULT_*_UNDEFINED
    /// cause; nothing is taken from this run.
    fn continue_as_new(&mut self, a: &Value) -> bool {
        let ex = self.ex();
        let (domain, workflow_id) = (ex.domain.clone(), ex.workflow_id.clone());
        let mut wf_type = ex.workflow_type.clone();
        if let Some(v) = get_str(a, "workflowTypeVersion") {
            wf_type["version"] = json!(v);
        }
        let params = match resolve_params(self.core, &domain, &workflow_id, &wf_type, a) {
            Ok(p) => p,
            Err(refusal) => {
                self.failed(
                    "ContinueAsNewWorkflowExecutionFailed",
                    json!({}),
                    refusal.cause,
                );
                return false;
            }
        };
        let old_run = self.ex().run_id.clone();
        let mut ev = json!({
            "decisionTaskCompletedEventId": self.completed,
            "executionStartToCloseTimeout": params.execution_start_to_close,
            "taskStartToCloseTimeout": params.task_start_to_close,
            "childPolicy": params.child_policy,
            "taskList": {"name": params.task_list},
            "workflowType": params.workflow_type,
        });
        copy(a, &mut ev, "input");
        copy(a, &mut ev, "tagList");
        if let Some(p) = &params.task_priority {
            ev["taskPriority"] = json!(p);
        }
        if let Some(r) = &params.lambda_role {
            ev["lambdaRole"] = json!(r);
        }
        let exec = self.exec;
        self.core.close_execution(exec, "CONTINUED_AS_NEW");
        let new_id = start(
            self.core,
            crate::executions::StartParams {
                continued_from: Some(old_run),
                ..params
            },
        );
        ev["newExecutionRunId"] = json!(self.core.execs[&new_id].run_id);
        self.core
            .execs
            .get_mut(&exec)
            .expect("closed, not dropped")
            .push("WorkflowExecutionContinuedAsNew", ev);
        true
    }
}
