//! Activity and decision task queues as the workers see them: long polls (held on the task
//! list's `Notify`, no CPU while held), hand-out to exactly one poller, heartbeats, and the
//! activity responses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Fault, SwfError, SwfResult};
use crate::history::{page_size, record, slice_page};
use crate::model::{
    Activity, Core, DecisionState, Execution, PageKind, PageState, TaskQueue, get_str,
    random_token, req_str, task_list_of,
};
use crate::state::State;
use crate::timers::TimerKind;

#[derive(Clone, Copy)]
enum Which {
    Activity,
    Decision,
}

fn queues(core: &mut Core, which: Which) -> &mut HashMap<(String, String), TaskQueue> {
    match which {
        Which::Activity => &mut core.sched.activity_queues,
        Which::Decision => &mut core.sched.decision_queues,
    }
}

/// One held poll counted in its task list's [`TaskQueue::pollers`]; dropping it (the poll
/// returned, or hyper dropped the request because the client went away) gives it back.
struct PollerSlot<'a> {
    state: &'a State,
    which: Which,
    key: (String, String),
}

impl Drop for PollerSlot<'_> {
    fn drop(&mut self) {
        if let Some(q) = queues(&mut self.state.lock(), self.which).get_mut(&self.key) {
            q.pollers = q.pollers.saturating_sub(1);
        }
    }
}

/// Holds the poll until `take` finds a task or `poll_timeout` passes (then `Ok(None)`).
/// A poll beyond `max_pollers` held on the task list is a LimitExceededFault.
async fn long_poll(
    state: &State,
    domain: &str,
    task_list: &str,
    which: Which,
    (poll_timeout, max_pollers): (Duration, usize),
    mut take: impl FnMut(&mut Core) -> SwfResult<Option<Value>>,
) -> SwfResult<Option<Value>> {
    let deadline = tokio::time::Instant::now() + poll_timeout;
    let key = (domain.to_owned(), task_list.to_owned());
    let (notify, _slot) = {
        let mut core = state.lock();
        core.domain(domain)?;
        let q = queues(&mut core, which).entry(key.clone()).or_default();
        if q.pollers >= max_pollers {
            return Err(SwfError::new(
                Fault::LimitExceeded,
                format!(
                    "Task list {task_list} already has {} pollers, the most SWF allows per task list",
                    q.pollers
                ),
            ));
        }
        q.pollers += 1;
        let slot = PollerSlot { state, which, key };
        (q.notify.clone(), slot)
    };
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(task) = take(&mut state.lock())? {
            return Ok(Some(task));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

/// Pops the next entry of a queue; wakes another poller if more remain.
fn pop(core: &mut Core, which: Which, domain: &str, task_list: &str) -> Option<(u64, i64)> {
    let q = queues(core, which).get_mut(&(domain.to_owned(), task_list.to_owned()))?;
    let item = q.pop()?;
    if !q.items.is_empty() {
        q.notify.notify_one();
    }
    Some(item)
}

pub async fn poll_for_activity_task(
    state: &State,
    input: &Value,
    poll_timeout: Duration,
    max_pollers: usize,
) -> SwfResult<Value> {
    let domain = req_str(input, "domain")?;
    let task_list =
        task_list_of(input).ok_or_else(|| SwfError::validation("taskList.name is required"))?;
    let identity = get_str(input, "identity");
    let task = long_poll(
        state,
        domain,
        task_list,
        Which::Activity,
        (poll_timeout, max_pollers),
        |core| Ok(take_activity(core, domain, task_list, identity)),
    )
    .await?;
    // SWF: with no task "an ActivityTask is returned, but the value of taskToken is an
    // empty string". That is how SDKs show it: on the wire the member is absent, and
    // boto3 workers test `'taskToken' not in task` (moto answers the same).
    Ok(task.unwrap_or_else(|| json!({"startedEventId": 0})))
}

fn take_activity(
    core: &mut Core,
    domain: &str,
    task_list: &str,
    identity: Option<&str>,
) -> Option<Value> {
    loop {
        let (exec, scheduled) = pop(core, Which::Activity, domain, task_list)?;
        let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
            continue;
        };
        if ex
            .activities
            .get(&scheduled)
            .is_none_or(|a| a.started_id.is_some())
        {
            continue;
        }
        let mut attrs = json!({"scheduledEventId": scheduled});
        if let Some(i) = identity {
            attrs["identity"] = json!(i);
        }
        let started = ex.push("ActivityTaskStarted", attrs);
        let token = random_token();
        let now = Instant::now();
        let workflow_execution = ex.execution_json();
        let a = ex.activities.get_mut(&scheduled).expect("checked above");
        a.started_id = Some(started);
        a.token = Some(token.clone());
        a.last_beat = now;
        let mut task = json!({
            "taskToken": token,
            "activityId": a.activity_id,
            "startedEventId": started,
            "workflowExecution": workflow_execution,
            "activityType": a.activity_type,
        });
        if let Some(i) = &a.input {
            task["input"] = json!(i);
        }
        let (stc, hb) = (a.start_to_close, a.heartbeat);
        core.sched.activity_tokens.insert(token, (exec, scheduled));
        if let Some(s) = stc {
            core.sched.add_timer(
                now + Duration::from_secs(s),
                TimerKind::StartToClose { exec, scheduled },
            );
        }
        if let Some(h) = hb {
            core.sched.add_timer(
                now + Duration::from_secs(h),
                TimerKind::Heartbeat { exec, scheduled },
            );
        }
        return Some(task);
    }
}

pub async fn poll_for_decision_task(
    state: &State,
    input: &Value,
    poll_timeout: Duration,
    max_pollers: usize,
) -> SwfResult<Value> {
    let domain = req_str(input, "domain")?;
    let task_list =
        task_list_of(input).ok_or_else(|| SwfError::validation("taskList.name is required"))?;
    if let Some(token) = get_str(input, "nextPageToken") {
        return next_decision_page(&mut state.lock(), token, domain, input);
    }
    let identity = get_str(input, "identity");
    let size = page_size(input);
    let reverse = input
        .get("reverseOrder")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let from_previous = input
        .get("startAtPreviousStartedEvent")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let task = long_poll(
        state,
        domain,
        task_list,
        Which::Decision,
        (poll_timeout, max_pollers),
        |core| {
            take_decision(
                core,
                domain,
                task_list,
                identity,
                size,
                reverse,
                from_previous,
            )
        },
    )
    .await?;
    // SWF: with no task "a DecisionTask is returned, but the value of taskToken is an
    // empty string": absent on the wire, as for activity tasks above.
    Ok(task.unwrap_or_else(|| json!({"startedEventId": 0, "previousStartedEventId": 0})))
}

fn take_decision(
    core: &mut Core,
    domain: &str,
    task_list: &str,
    identity: Option<&str>,
    size: usize,
    reverse: bool,
    from_previous: bool,
) -> SwfResult<Option<Value>> {
    loop {
        let Some((exec, queued)) = pop(core, Which::Decision, domain, task_list) else {
            return Ok(None);
        };
        let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
            continue;
        };
        // An entry left behind by a decision task that timed out on another list is stale.
        let DecisionState::Scheduled { scheduled_id } = ex.decision else {
            continue;
        };
        if scheduled_id != queued {
            continue;
        }
        let mut attrs = json!({"scheduledEventId": scheduled_id});
        if let Some(i) = identity {
            attrs["identity"] = json!(i);
        }
        let started_id = ex.push("DecisionTaskStarted", attrs);
        let token = random_token();
        ex.decision = DecisionState::Started {
            scheduled_id,
            started_id,
            token: token.clone(),
        };
        ex.decision_needed = false;
        let timeout = ex
            .task_start_to_close
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok());
        let start = if from_previous && ex.previous_started > 0 {
            ex.previous_started as usize - 1
        } else {
            0
        };
        let page = PageState {
            kind: PageKind::Decision {
                task_token: token.clone(),
                exec,
                started_id,
                previous_started: ex.previous_started,
                events_end: ex.events.len(),
                start,
            },
            offset: 0,
            page_size: size,
            reverse,
        };
        core.sched.decision_tokens.insert(token, exec);
        if let Some(s) = timeout {
            core.sched.add_timer(
                Instant::now() + Duration::from_secs(s),
                TimerKind::DecisionStartToClose {
                    exec,
                    started: started_id,
                },
            );
        }
        return decision_page(core, page).map(Some);
    }
}

/// A decision task response for one page of its history snapshot.
fn decision_page(core: &mut Core, page: PageState) -> SwfResult<Value> {
    let PageKind::Decision {
        task_token,
        exec,
        started_id,
        previous_started,
        events_end,
        start,
    } = &page.kind
    else {
        unreachable!("decision_page takes decision page state")
    };
    let ex: &Execution = core
        .execs
        .get(exec)
        .ok_or_else(|| SwfError::unknown("The execution of this decision task no longer exists"))?;
    let (events, more) = slice_page(
        &ex.events[*start..*events_end],
        page.offset,
        page.page_size,
        page.reverse,
    );
    let mut out = json!({
        "taskToken": task_token,
        "startedEventId": started_id,
        "previousStartedEventId": previous_started,
        "workflowExecution": ex.execution_json(),
        "workflowType": ex.workflow_type,
        "events": events,
    });
    if more {
        let next = PageState {
            offset: page.offset + page.page_size,
            ..page
        };
        out["nextPageToken"] = json!(core.sched.issue_page_token(next));
    }
    Ok(out)
}

/// The next page of a decision task's history, at the request's `maximumPageSize`. The
/// token must be a decision task's of the request's domain.
fn next_decision_page(
    core: &mut Core,
    token: &str,
    domain: &str,
    input: &Value,
) -> SwfResult<Value> {
    let mut page = core.sched.page_token(token)?;
    let PageKind::Decision { exec, .. } = &page.kind else {
        return Err(SwfError::validation(
            "Invalid nextPageToken: it does not belong to a decision task",
        ));
    };
    if core.execs.get(exec).is_some_and(|ex| ex.domain != domain) {
        return Err(SwfError::validation(
            "Invalid nextPageToken: it belongs to a decision task of another domain",
        ));
    }
    page.page_size = page_size(input);
    decision_page(core, page)
}

/// The open activity a task token names.
fn activity_by_token(core: &mut Core, input: &Value) -> SwfResult<(u64, i64)> {
    let token = req_str(input, "taskToken")?;
    let unknown = || {
        SwfError::unknown(
            "Unknown task token: the activity task is closed, timed out, canceled or was never started",
        )
    };
    let &(exec, scheduled) = core.sched.activity_tokens.get(token).ok_or_else(unknown)?;
    let ex = core
        .execs
        .get_mut(&exec)
        .filter(|e| e.is_open())
        .ok_or_else(unknown)?;
    if !ex.activities.contains_key(&scheduled) {
        return Err(unknown());
    }
    Ok((exec, scheduled))
}

/// Records a heartbeat; over the execution's heartbeat quota it is throttled instead (and
/// changes nothing).
pub fn record_activity_task_heartbeat(
    core: &mut Core,
    input: &Value,
    quotas: &crate::quotas::Quotas,
) -> SwfResult<Value> {
    let (exec, scheduled) = activity_by_token(core, input)?;
    if !quotas.take_heartbeat(exec) {
        return Err(SwfError::new(
            Fault::Throttling,
            "Rate exceeded: RecordActivityTaskHeartbeat is over its quota for this workflow execution",
        ));
    }
    let a = core
        .execs
        .get_mut(&exec)
        .expect("checked")
        .activities
        .get_mut(&scheduled)
        .expect("checked");
    a.last_beat = Instant::now();
    // ActivityTaskTimedOut's details are "the content of the details parameter for the last
    // call made by the activity to RecordActivityTaskHeartbeat": a call without any clears
    // what an earlier one gave.
    a.details = get_str(input, "details").map(str::to_owned);
    Ok(json!({"cancelRequested": a.cancel_requested.is_some()}))
}

/// How an activity task ended, as its worker reports it.
#[derive(Clone, Copy)]
pub enum Outcome {
    Completed,
    Failed,
    Canceled,
}

pub fn respond_activity_task(core: &mut Core, input: &Value, outcome: Outcome) -> SwfResult<Value> {
    let (exec, scheduled) = activity_by_token(core, input)?;
    let ex = core.execs.get_mut(&exec).expect("checked");
    let a: Activity = ex.activities.remove(&scheduled).expect("checked");
    ex.activity_ids.remove(&a.activity_id);
    let how = match outcome {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::Canceled => "canceled",
    };
    let entry = crate::model::activity_json(ex, &a, how);
    core.remember_closed(entry);
    let ex = core.execs.get_mut(&exec).expect("checked");
    let mut attrs =
        json!({"scheduledEventId": scheduled, "startedEventId": a.started_id.unwrap_or(0)});
    let copy = |attrs: &mut Value, key: &str| {
        if let Some(v) = get_str(input, key) {
            attrs[key] = json!(v);
        }
    };
    let event = match outcome {
        Outcome::Completed => {
            copy(&mut attrs, "result");
            "ActivityTaskCompleted"
        }
        Outcome::Failed => {
            copy(&mut attrs, "reason");
            copy(&mut attrs, "details");
            "ActivityTaskFailed"
        }
        Outcome::Canceled => {
            copy(&mut attrs, "details");
            if let Some(id) = a.cancel_requested {
                attrs["latestCancelRequestedEventId"] = json!(id);
            }
            "ActivityTaskCanceled"
        }
    };
    record(ex, &mut core.sched, event, attrs);
    if let Some(t) = &a.token {
        core.sched.activity_tokens.remove(t);
    }
    Ok(json!({}))
}

fn count_pending(core: &mut Core, input: &Value, which: Which) -> SwfResult<Value> {
    let domain = req_str(input, "domain")?;
    core.domain(domain)?;
    let task_list = task_list_of(input).unwrap_or("");
    let key = (domain.to_owned(), task_list.to_owned());
    let q = match which {
        Which::Activity => core.sched.activity_queues.get(&key),
        Which::Decision => core.sched.decision_queues.get(&key),
    };
    let count = q.map_or(0, |q| {
        q.items
            .values()
            .filter(|(exec, scheduled)| {
                core.execs
                    .get(exec)
                    .filter(|e| e.is_open())
                    .is_some_and(|e| match which {
                        Which::Activity => e
                            .activities
                            .get(scheduled)
                            .is_some_and(|a| a.started_id.is_none()),
                        Which::Decision => {
                            e.decision
                                == DecisionState::Scheduled {
                                    scheduled_id: *scheduled,
                                }
                        }
                    })
            })
            .count()
    });
    Ok(json!({"count": count, "truncated": false}))
}

pub fn count_pending_activity_tasks(core: &mut Core, input: &Value) -> SwfResult<Value> {
    count_pending(core, input, Which::Activity)
}

pub fn count_pending_decision_tasks(core: &mut Core, input: &Value) -> SwfResult<Value> {
    count_pending(core, input, Which::Decision)
}
