//! RespondDecisionTaskCompleted: records DecisionTaskCompleted, then applies each decision
//! in order, recording the events SWF records (the *Failed ones included). What a decision
//! sets going in another execution (a child's start, a signal, a cancel request) happens
//! once the batch is recorded, as SWF does it asynchronously: its outcome follows the
//! batch's events in the history.
//!
//! A batch is refused whole (ValidationException, nothing recorded, the decision task still
//! started) when a decision is invalid or a decision that closes the run is not the last.
//! A batch that fills the run's history (see [`crate::model::MAX_HISTORY_EVENTS`]) stops
//! there: the decisions left are not applied, and the run is terminated in the same call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{SwfError, SwfResult};
use crate::executions::{StartParams, resolve_params, start};
use crate::history::{record, request_cancel, schedule_decision};
use crate::model::{
    Activity, ChildRec, Core, DecisionState, ParentLink, Status, check_activity_timeout,
    check_decision_task_timeout, check_execution_timeout, get_str, parse_duration, priority_of,
    req_str, task_list_of,
};
use crate::quotas::Quotas;
use crate::timers::TimerKind;

/// Every decision type, with the member holding its attributes.
const ATTRIBUTES: &[(&str, &str)] = &[
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
    (
        "StartChildWorkflowExecution",
        "startChildWorkflowExecutionDecisionAttributes",
    ),
    (
        "SignalExternalWorkflowExecution",
        "signalExternalWorkflowExecutionDecisionAttributes",
    ),
    (
        "RequestCancelExternalWorkflowExecution",
        "requestCancelExternalWorkflowExecutionDecisionAttributes",
    ),
    (
        "ScheduleLambdaFunction",
        "scheduleLambdaFunctionDecisionAttributes",
    ),
];

/// SWF's quota of open child executions per workflow execution.
const MAX_OPEN_CHILDREN: usize = 1000;

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
    StartChild {
        name: &'a str,
        version: &'a str,
        workflow_id: &'a str,
        attrs: &'a Value,
    },
    /// SignalExternalWorkflowExecution or RequestCancelExternalWorkflowExecution.
    External {
        kind: External,
        workflow_id: &'a str,
        attrs: &'a Value,
    },
    ScheduleLambda {
        id: &'a str,
        name: &'a str,
    },
    /// Complete, Fail, Cancel or ContinueAsNew.
    Close {
        ty: &'a str,
        attrs: &'a Value,
    },
}

/// What a decision asks of another execution of the domain.
#[derive(Clone, Copy)]
enum External {
    Signal,
    RequestCancel,
}

impl External {
    /// Its events on the sender: (initiated, done, failed).
    fn events(self) -> (&'static str, &'static str, &'static str) {
        match self {
            External::Signal => (
                "SignalExternalWorkflowExecutionInitiated",
                "ExternalWorkflowExecutionSignaled",
                "SignalExternalWorkflowExecutionFailed",
            ),
            External::RequestCancel => (
                "RequestCancelExternalWorkflowExecutionInitiated",
                "ExternalWorkflowExecutionCancelRequested",
                "RequestCancelExternalWorkflowExecutionFailed",
            ),
        }
    }
}

/// What a decision set going beyond its own execution, carried out after the batch's
/// decisions are recorded (and before a closing decision closes the execution).
enum Effect<'a> {
    /// Start the child; `failed` is the StartChildWorkflowExecutionFailed event to record
    /// if its workflowId is in use by then.
    StartChild {
        params: Box<StartParams>,
        failed: Value,
    },
    External {
        kind: External,
        initiated: i64,
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

/// Checks the timeouts of a decision that starts a run (ContinueAsNew,
/// StartChildWorkflowExecution): whole seconds or NONE, and a run and its decision tasks of
/// at most one year. Both members say "You can use NONE to specify unlimited duration".
fn run_timeouts(a: &Value, path: &str) -> SwfResult<()> {
    for key in ["executionStartToCloseTimeout", "taskStartToCloseTimeout"] {
        duration(a, path, key)?;
    }
    if let Some(v) = get_str(a, "executionStartToCloseTimeout") {
        check_execution_timeout(v, &format!("{path}.executionStartToCloseTimeout"), true)?;
    }
    if let Some(v) = get_str(a, "taskStartToCloseTimeout") {
        check_decision_task_timeout(v, &format!("{path}.taskStartToCloseTimeout"))?;
    }
    Ok(())
}

/// A decision that closes the run must be the last of its batch (as SWF: moto, tested
/// against SWF, refuses such a batch with "Close must be last decision in list").
fn check_close_is_last(parsed: &[Parsed<'_>]) -> SwfResult<()> {
    let n = parsed.len();
    for (i, d) in parsed.iter().enumerate().take(n.saturating_sub(1)) {
        if let Parsed::Close { ty, .. } = d {
            return Err(SwfError::validation(format!(
                "decisions.{}: {ty} closes the workflow execution, so it must be the last decision in the list (it is {} of {n})",
                i + 1,
                i + 1
            )));
        }
    }
    Ok(())
}

/// Checks decision `i` (0-based) of a batch and takes what applying it needs.
fn parse(i: usize, d: &Value) -> SwfResult<Parsed<'_>> {
    let ty = req_str(d, "decisionType")?;
    let Some((_, attrs_key)) = ATTRIBUTES.iter().find(|(t, _)| *t == ty) else {
        return Err(SwfError::validation(format!(
            "decisions.{}: unknown decision type {ty}",
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
        "StartChildWorkflowExecution" => {
            let wt = a.get("workflowType").unwrap_or(&NO_ATTRS);
            let wt_path = format!("{path}.workflowType");
            run_timeouts(a, &path)?;
            Parsed::StartChild {
                name: member(wt, &wt_path, "name")?,
                version: member(wt, &wt_path, "version")?,
                workflow_id: member(a, &path, "workflowId")?,
                attrs: a,
            }
        }
        "SignalExternalWorkflowExecution" => {
            member(a, &path, "signalName")?;
            Parsed::External {
                kind: External::Signal,
                workflow_id: member(a, &path, "workflowId")?,
                attrs: a,
            }
        }
        "RequestCancelExternalWorkflowExecution" => Parsed::External {
            kind: External::RequestCancel,
            workflow_id: member(a, &path, "workflowId")?,
            attrs: a,
        },
        "ScheduleLambdaFunction" => Parsed::ScheduleLambda {
            id: member(a, &path, "id")?,
            name: member(a, &path, "name")?,
        },
        _ => {
            run_timeouts(a, &path)?;
            Parsed::Close { ty, attrs: a }
        }
    })
}

pub fn respond_decision_task_completed(
    core: &mut Core,
    input: &Value,
    quotas: &Quotas,
) -> SwfResult<Value> {
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
    check_close_is_last(&parsed)?;
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
    // The task stays started while its decisions apply, so that what they record on this
    // run (a signal to itself, a child's start) asks for the next decision task rather
    // than scheduling it in the middle of the batch.
    let unhandled = std::mem::take(&mut ex.decision_needed);
    let completed = ex.push("DecisionTaskCompleted", attrs);
    core.sched.decision_tokens.remove(token);

    let mut ctx = Ctx {
        core,
        quotas,
        exec,
        completed,
        needs_decision: unhandled,
        effects: Vec::new(),
    };
    for d in parsed {
        // A full history (the DecisionTaskCompleted event may have filled it) takes no
        // more decisions.
        if ctx.done() {
            break;
        }
        ctx.apply(d, unhandled);
    }
    if !ctx.done() {
        ctx.run_effects();
        ctx.finish();
    }
    // A history the batch filled up: its run is terminated when the caller's lock of the
    // state is released (`CoreGuard`), before this call answers.
    Ok(json!({}))
}

fn copy(from: &Value, to: &mut Value, key: &str) {
    if let Some(v) = from.get(key).filter(|v| !v.is_null()) {
        to[key] = v.clone();
    }
}

/// A batch of decisions being applied.
struct Ctx<'c, 'a> {
    core: &'c mut Core,
    quotas: &'c Quotas,
    exec: u64,
    /// The DecisionTaskCompleted event id the decision's events point back to.
    completed: i64,
    /// Something the decider must see was recorded: schedule a decision task at the end.
    needs_decision: bool,
    /// What the batch set going elsewhere, in decision order (see [`Effect`]).
    effects: Vec<Effect<'a>>,
}

impl<'a> Ctx<'_, 'a> {
    /// The batch can go no further: the run is closed, or its history is full.
    fn done(&mut self) -> bool {
        let ex = self.ex();
        !ex.is_open() || ex.history_full()
    }

    /// Applies one decision.
    fn apply(&mut self, d: Parsed<'a>, unhandled: bool) {
        match d {
            Parsed::ScheduleActivity {
                name,
                version,
                activity_id,
                attrs,
            } => self.schedule_activity(name, version, activity_id, attrs),
            Parsed::RequestCancelActivity { activity_id } => {
                self.request_cancel_activity(activity_id)
            }
            Parsed::StartTimer {
                timer_id,
                fire,
                secs,
                attrs,
            } => self.start_timer(timer_id, fire, secs, attrs),
            Parsed::CancelTimer { timer_id } => self.cancel_timer(timer_id),
            Parsed::RecordMarker { name, attrs } => {
                let mut ev =
                    json!({"markerName": name, "decisionTaskCompletedEventId": self.completed});
                copy(attrs, &mut ev, "details");
                self.push("MarkerRecorded", ev);
            }
            Parsed::StartChild {
                name,
                version,
                workflow_id,
                attrs,
            } => self.start_child(name, version, workflow_id, attrs),
            Parsed::External {
                kind,
                workflow_id,
                attrs,
            } => self.initiate_external(kind, workflow_id, attrs),
            // swf-local has no Lambda, so the decision fails with the cause SWF gives where
            // Lambda cannot be used; the decider gets a decision task to handle it.
            Parsed::ScheduleLambda { id, name } => self.failed(
                "ScheduleLambdaFunctionFailed",
                json!({"id": id, "name": name}),
                "LAMBDA_SERVICE_NOT_AVAILABLE_IN_REGION",
            ),
            Parsed::Close { ty, attrs } => {
                self.run_effects();
                if !self.done() {
                    self.close(ty, attrs, unhandled);
                }
            }
        }
    }

    /// The batch is applied: the decision task is done, and another is scheduled if the
    /// decider has something new to see.
    fn finish(self) {
        let Some(ex) = self.core.execs.get_mut(&self.exec).filter(|e| e.is_open()) else {
            return;
        };
        ex.decision = DecisionState::None;
        if std::mem::take(&mut ex.decision_needed) || self.needs_decision {
            schedule_decision(ex, &mut self.core.sched);
        }
    }

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
        self.needs_decision = true;
    }

    /// Records an outcome the decider must see on this run (it asks for a decision task).
    fn report(&mut self, ty: &str, attrs: Value) -> i64 {
        let ex = self
            .core
            .execs
            .get_mut(&self.exec)
            .expect("execution of a started decision");
        record(ex, &mut self.core.sched, ty, attrs)
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
        if !self.quotas.take_scheduled(&domain, &task_list) {
            self.failed(
                "ScheduleActivityTaskFailed",
                base,
                "ACTIVITY_CREATION_RATE_EXCEEDED",
            );
            return;
        }
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
        self.needs_decision = true;
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

    /// A closing decision. With events the decider has not seen yet, SWF fails it with
    /// UNHANDLED_DECISION.
    fn close(&mut self, ty: &str, a: &Value, unhandled: bool) {
        let failed = format!("{ty}Failed");
        if unhandled {
            self.failed(&failed, json!({}), "UNHANDLED_DECISION");
            return;
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
    }

    /// Each setting of the new run is the decision's, else the (new) workflow type's
    /// registered default, else the decision fails with that setting's DEFAULT_*_UNDEFINED
    /// cause; nothing is taken from this run.
    fn continue_as_new(&mut self, a: &Value) {
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
                return;
            }
        };
        let ex = self.ex();
        let (old_run, parent) = (ex.run_id.clone(), ex.parent.clone());
        let mut ev = params.event_attrs();
        ev["decisionTaskCompletedEventId"] = json!(self.completed);
        let exec = self.exec;
        self.core.close_execution(exec, "CONTINUED_AS_NEW");
        // A child's new run stays its parent's child.
        let new_id = start(
            self.core,
            StartParams {
                continued_from: Some(old_run),
                parent,
                ..params
            },
        );
        ev["newExecutionRunId"] = json!(self.core.execs[&new_id].run_id);
        self.core
            .execs
            .get_mut(&exec)
            .expect("closed, not dropped")
            .push("WorkflowExecutionContinuedAsNew", ev);
    }

    /// Resolves the child's settings as StartWorkflowExecution does (the decision's, else
    /// the workflow type's defaults) and records StartChildWorkflowExecutionInitiated; the
    /// child starts after the batch. A refusal is StartChildWorkflowExecutionFailed at once,
    /// with initiatedEventId 0: SWF records no Initiated event then.
    fn start_child(&mut self, name: &str, version: &str, workflow_id: &str, a: &Value) {
        let workflow_type = json!({"name": name, "version": version});
        let mut failed = json!({"workflowId": workflow_id, "workflowType": workflow_type, "initiatedEventId": 0});
        copy(a, &mut failed, "control");
        let starting = self
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::StartChild { .. }))
            .count();
        if self.ex().children.len() + starting >= MAX_OPEN_CHILDREN {
            self.failed(
                "StartChildWorkflowExecutionFailed",
                failed,
                "OPEN_CHILDREN_LIMIT_EXCEEDED",
            );
            return;
        }
        let domain = self.ex().domain.clone();
        let mut params = match resolve_params(self.core, &domain, workflow_id, &workflow_type, a) {
            Ok(p) => p,
            Err(refusal) => {
                self.failed("StartChildWorkflowExecutionFailed", failed, refusal.cause);
                return;
            }
        };
        let mut ev = params.event_attrs();
        ev["workflowId"] = json!(workflow_id);
        ev["decisionTaskCompletedEventId"] = json!(self.completed);
        copy(a, &mut ev, "control");
        let initiated = self.push("StartChildWorkflowExecutionInitiated", ev);
        failed["initiatedEventId"] = json!(initiated);
        let ex = self.ex();
        params.parent = Some(ParentLink {
            exec: ex.id,
            execution: ex.execution_json(),
            initiated,
        });
        self.effects.push(Effect::StartChild {
            params: Box::new(params),
            failed,
        });
    }

    /// Records the Initiated event of a signal or cancel request to another execution; it
    /// reaches its target after the batch.
    fn initiate_external(&mut self, kind: External, workflow_id: &str, a: &'a Value) {
        let mut ev =
            json!({"workflowId": workflow_id, "decisionTaskCompletedEventId": self.completed});
        for key in ["runId", "signalName", "input", "control"] {
            copy(a, &mut ev, key);
        }
        let initiated = self.push(kind.events().0, ev);
        self.effects.push(Effect::External {
            kind,
            initiated,
            attrs: a,
        });
    }

    /// Carries out what the decisions so far set going elsewhere, in their order; none once
    /// the run's history is full (the run is terminated before they would happen).
    fn run_effects(&mut self) {
        for effect in std::mem::take(&mut self.effects) {
            if self.done() {
                return;
            }
            match effect {
                Effect::StartChild { params, failed } => self.launch_child(*params, failed),
                Effect::External {
                    kind,
                    initiated,
                    attrs,
                } => self.reach_external(kind, initiated, attrs),
            }
        }
    }

    /// Starts a child whose Initiated event is recorded: ChildWorkflowExecutionStarted, or
    /// StartChildWorkflowExecutionFailed (WORKFLOW_ALREADY_RUNNING) when an open execution
    /// of the domain has its workflowId.
    fn launch_child(&mut self, params: StartParams, failed: Value) {
        let key = (params.domain.clone(), params.workflow_id.clone());
        if self.core.open_by_workflow_id.contains_key(&key) {
            self.failed(
                "StartChildWorkflowExecutionFailed",
                failed,
                "WORKFLOW_ALREADY_RUNNING",
            );
            return;
        }
        if !self.core.may_open_execution(&params.domain) {
            self.failed(
                "StartChildWorkflowExecutionFailed",
                failed,
                "OPEN_WORKFLOWS_LIMIT_EXCEEDED",
            );
            return;
        }
        let initiated = params
            .parent
            .as_ref()
            .expect("a child has a parent")
            .initiated;
        let workflow_type = params.workflow_type.clone();
        let child = start(self.core, params);
        let execution = self.core.execs[&child].execution_json();
        let started = self.report(
            "ChildWorkflowExecutionStarted",
            json!({"workflowExecution": execution, "workflowType": workflow_type, "initiatedEventId": initiated}),
        );
        self.ex().children.insert(
            initiated,
            ChildRec {
                exec: child,
                started,
            },
        );
    }

    /// Delivers a signal or cancel request to the open execution of the domain it names
    /// (its current run when no runId is given), which gets a decision task; this run
    /// learns the outcome: done, or failed with UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION.
    fn reach_external(&mut self, kind: External, initiated: i64, a: &Value) {
        let (_, done, failed) = kind.events();
        let domain = self.ex().domain.clone();
        let named = json!({"workflowId": a["workflowId"], "runId": a.get("runId")});
        let target = self
            .core
            .find_execution(&domain, &named)
            .ok()
            .filter(|id| self.core.execs[id].is_open());
        let Some(target) = target else {
            let mut ev = json!({"workflowId": a["workflowId"], "initiatedEventId": initiated});
            copy(a, &mut ev, "runId");
            copy(a, &mut ev, "control");
            self.failed(failed, ev, "UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION");
            return;
        };
        let mut from = json!({
            "externalWorkflowExecution": self.ex().execution_json(),
            "externalInitiatedEventId": initiated,
        });
        let t = self.core.execs.get_mut(&target).expect("found above");
        let execution = t.execution_json();
        match kind {
            External::Signal => {
                copy(a, &mut from, "signalName");
                copy(a, &mut from, "input");
                record(t, &mut self.core.sched, "WorkflowExecutionSignaled", from);
            }
            External::RequestCancel => request_cancel(t, &mut self.core.sched, from),
        }
        self.report(
            done,
            json!({"workflowExecution": execution, "initiatedEventId": initiated}),
        );
    }
}
