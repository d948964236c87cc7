//! Event bookkeeping shared by the operations: scheduling the decision task, closing an
//! execution, and paging (histories and List* results).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::error::SwfResult;
use crate::model::{
    ChildRec, Core, DecisionState, Execution, PageKind, PageState, ParentLink, Sched, get_str,
    now_ts, parse_duration,
};
use crate::timers::TimerKind;

/// Something happened the decider must see: schedule a decision task unless one is
/// already scheduled, or remember to schedule one when the started one completes.
pub fn schedule_decision(ex: &mut Execution, sched: &mut Sched) {
    if !ex.is_open() {
        return;
    }
    match ex.decision {
        DecisionState::None => {
            let task_list = ex.decision_list().to_owned();
            let mut attrs = json!({
                "taskList": {"name": task_list},
                "startToCloseTimeout": ex.task_start_to_close.as_deref().unwrap_or("NONE"),
            });
            if let Some(p) = &ex.task_priority {
                attrs["taskPriority"] = json!(p);
            }
            if let Some(t) = &ex.decision_schedule_to_start {
                attrs["scheduleToStartTimeout"] = json!(t);
            }
            let id = ex.push("DecisionTaskScheduled", attrs);
            ex.decision = DecisionState::Scheduled { scheduled_id: id };
            sched.enqueue_decision(ex, &task_list, id);
            if let Some(secs) = ex.decision_schedule_to_start_secs() {
                sched.add_timer(
                    Instant::now() + Duration::from_secs(secs),
                    TimerKind::DecisionScheduleToStart {
                        exec: ex.id,
                        scheduled: id,
                    },
                );
            }
        }
        DecisionState::Scheduled { .. } => {}
        DecisionState::Started { .. } => ex.decision_needed = true,
    }
}

/// Records an event the decider must see and schedules its decision task: the one path of
/// signals, activity results, fired timers and what other executions report.
pub fn record(ex: &mut Execution, sched: &mut Sched, event_type: &str, attrs: Value) -> i64 {
    let id = ex.push(event_type, attrs);
    schedule_decision(ex, sched);
    id
}

/// Records WorkflowExecutionCancelRequested (`attrs` say who asked, or why) and marks the
/// run as asked to cancel; its decider decides what to do.
pub fn request_cancel(ex: &mut Execution, sched: &mut Sched, attrs: Value) {
    ex.cancel_requested = true;
    record(ex, sched, "WorkflowExecutionCancelRequested", attrs);
}

/// What a parent records when its child closes with a close status, and the members of
/// the child's close event it carries over. A child that continued as new is still running
/// (under its new run), so CONTINUED_AS_NEW has none.
fn child_closed_event(status: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match status {
        "COMPLETED" => ("ChildWorkflowExecutionCompleted", &["result"]),
        "FAILED" => ("ChildWorkflowExecutionFailed", &["reason", "details"]),
        "CANCELED" => ("ChildWorkflowExecutionCanceled", &["details"]),
        "TERMINATED" => ("ChildWorkflowExecutionTerminated", &[]),
        "TIMED_OUT" => ("ChildWorkflowExecutionTimedOut", &["timeoutType"]),
        _ => return None,
    })
}

impl Core {
    /// Terminates the runs whose history is full (see [`crate::model::MAX_HISTORY_EVENTS`]):
    /// WorkflowExecutionTerminated, cause EVENT_LIMIT_EXCEEDED, is their last event, and
    /// their own child policy applies. Called before the state lock is released (and
    /// between timers), so the operation that filled a history terminates its run and no
    /// one sees it open.
    pub fn enforce_event_limit(&mut self) {
        loop {
            let hits = self.event_limit.take_hits();
            if hits.is_empty() {
                return;
            }
            // Terminating one run records events in its parent and children, which may
            // take one of them to the limit in turn: hence the loop.
            for id in hits {
                self.terminate(id, None, json!({"cause": "EVENT_LIMIT_EXCEEDED"}));
            }
        }
    }

    /// Whether `domain` may open one more execution.
    pub fn may_open_execution(&self, domain: &str) -> bool {
        self.domains
            .get(domain)
            .is_none_or(|d| d.open_executions < self.open_executions_limit)
    }

    /// Records WorkflowExecutionTerminated with `attrs` (cause, reason, details) and closes
    /// the run. `child_policy` (the run's own when `None`) goes into the event and is
    /// applied to the run's open children. A run whose history is full is terminated for
    /// that, whoever asked (cause EVENT_LIMIT_EXCEEDED).
    pub fn terminate(&mut self, id: u64, child_policy: Option<&str>, mut attrs: Value) {
        let Some(ex) = self.execs.get_mut(&id).filter(|e| e.is_open()) else {
            return;
        };
        if ex.history_full() {
            attrs = json!({"cause": "EVENT_LIMIT_EXCEEDED"});
        }
        let policy = child_policy.unwrap_or(&ex.child_policy).to_owned();
        attrs["childPolicy"] = json!(policy);
        ex.push("WorkflowExecutionTerminated", attrs);
        self.close_applying(id, "TERMINATED", &policy);
    }

    /// Marks an execution closed (its close event is already recorded): its tasks and
    /// tokens go away, its parent learns how it closed, and it is dropped after the
    /// domain's retention period. SWF applies a run's child policy when it is terminated
    /// or times out (the two close events that carry `childPolicy`); a run its decider
    /// closes leaves its open children running.
    pub fn close_execution(&mut self, id: u64, status: &'static str) {
        let Some(ex) = self.execs.get(&id) else {
            return;
        };
        let policy = match status {
            "TIMED_OUT" => ex.child_policy.clone(),
            _ => "ABANDON".to_owned(),
        };
        self.close_applying(id, status, &policy);
    }

    /// [`Core::close_execution`] with `child_policy` for the open children.
    fn close_applying(&mut self, id: u64, status: &'static str, child_policy: &str) {
        let Some(ex) = self.execs.get_mut(&id) else {
            return;
        };
        if ex.closed.is_some() {
            return;
        }
        ex.closed = Some((now_ts(), status));
        let children = std::mem::take(&mut ex.children);
        let parent = ex.parent.clone();
        for a in ex.activities.values() {
            if let Some(t) = &a.token {
                self.sched.activity_tokens.remove(t);
            }
        }
        ex.activities.clear();
        ex.activity_ids.clear();
        ex.timers.clear();
        if let DecisionState::Started { token, .. } = &ex.decision {
            self.sched.decision_tokens.remove(token);
        }
        ex.decision = DecisionState::None;
        ex.decision_needed = false;
        let key = (ex.domain.clone(), ex.workflow_id.clone());
        if self.open_by_workflow_id.get(&key) == Some(&id) {
            self.open_by_workflow_id.remove(&key);
        }
        if let Some(d) = self.domains.get_mut(&key.0) {
            d.open_executions = d.open_executions.saturating_sub(1);
        }
        let retention = self
            .domains
            .get(&key.0)
            .map(|d| d.retention.clone())
            .unwrap_or_default();
        // "NONE" or "0": SWF keeps no history after close.
        let days = parse_duration(&retention, "retention")
            .ok()
            .flatten()
            .unwrap_or(0);
        let at = Instant::now() + Duration::from_secs(days.saturating_mul(86_400));
        self.sched.add_timer(at, TimerKind::Retention { exec: id });
        if let Some(link) = parent {
            self.tell_parent(id, &link, status);
        }
        self.apply_child_policy(&children, child_policy);
    }

    /// A child closed: its open parent records the matching ChildWorkflowExecution* event
    /// (with the child's result, reason, details or timeout type) and gets a decision task.
    fn tell_parent(&mut self, child: u64, link: &ParentLink, status: &str) {
        let Some((event, carried)) = child_closed_event(status) else {
            return;
        };
        let ch = &self.execs[&child];
        let mut attrs = json!({
            "workflowExecution": ch.execution_json(),
            "workflowType": ch.workflow_type,
            "initiatedEventId": link.initiated,
        });
        if let Some(closed) = ch.last_event_attrs() {
            for key in carried {
                if let Some(v) = get_str(closed, key) {
                    attrs[*key] = json!(v);
                }
            }
        }
        let Some(parent) = self.execs.get_mut(&link.exec).filter(|p| p.is_open()) else {
            return;
        };
        let Some(rec) = parent.children.remove(&link.initiated) else {
            return;
        };
        attrs["startedEventId"] = json!(rec.started);
        record(parent, &mut self.sched, event, attrs);
    }

    /// A parent was terminated or timed out: TERMINATE terminates each open child and
    /// REQUEST_CANCEL asks each to cancel (both with cause CHILD_POLICY_APPLIED); ABANDON
    /// leaves them running.
    fn apply_child_policy(&mut self, children: &BTreeMap<i64, ChildRec>, policy: &str) {
        let applied = json!({"cause": "CHILD_POLICY_APPLIED"});
        for rec in children.values() {
            match policy {
                "TERMINATE" => self.terminate(rec.exec, None, applied.clone()),
                "REQUEST_CANCEL" => {
                    if let Some(ch) = self.execs.get_mut(&rec.exec).filter(|e| e.is_open()) {
                        request_cancel(ch, &mut self.sched, applied.clone());
                    }
                }
                _ => {}
            }
        }
    }

    /// Drops a closed execution for good (retention elapsed).
    pub fn forget_execution(&mut self, id: u64) {
        if let Some(ex) = self.execs.remove(&id) {
            self.by_run.remove(&(ex.domain, ex.workflow_id, ex.run_id));
        }
    }
}

/// `maximumPageSize` of a request (0 or absent = 1000).
pub fn page_size(input: &Value) -> usize {
    match input.get("maximumPageSize").and_then(Value::as_u64) {
        None | Some(0) => 1000,
        Some(n) => n as usize,
    }
}

/// One page of `events[range]`, in order or reversed, starting `offset` items in.
/// Returns the page and whether more follow.
pub fn slice_page(
    events: &[Value],
    offset: usize,
    size: usize,
    reverse: bool,
) -> (Vec<Value>, bool) {
    let n = events.len();
    let end = (offset + size).min(n);
    let page = if reverse {
        events[n - end..n - offset.min(n)]
            .iter()
            .rev()
            .cloned()
            .collect()
    } else {
        events[offset.min(n)..end].to_vec()
    };
    (page, end < n)
}

/// What a List* request asks for, beside its paging: every member but `nextPageToken` and
/// `maximumPageSize` (`reverseOrder: false` is the same as none). A token continues only
/// the listing of the same query.
fn list_query(input: &Value) -> Value {
    let mut query = input.clone();
    if let Some(members) = query.as_object_mut() {
        members.remove("nextPageToken");
        members.remove("maximumPageSize");
        if members.get("reverseOrder") == Some(&Value::Bool(false)) {
            members.remove("reverseOrder");
        }
    }
    query
}

/// Answers a List* call, paged by `maximumPageSize` / `nextPageToken` / `reverseOrder`
/// into `{key: [...], nextPageToken}`. `items` makes the listing, sorted (it also checks
/// the request's domain and filters); a later page reads the snapshot its token holds
/// instead, after checking that the request is the one that made it. Each call's own
/// `maximumPageSize` applies.
pub fn list_page(
    core: &mut Core,
    op: &'static str,
    key: &str,
    input: &Value,
    items: impl FnOnce(&Core) -> SwfResult<Vec<Value>>,
) -> SwfResult<Value> {
    let query = list_query(input);
    let size = page_size(input);
    let (query, items, offset) = match input.get("nextPageToken").and_then(Value::as_str) {
        Some(t) => {
            let st = core.sched.page_token(t)?;
            match st.kind {
                PageKind::List {
                    op: o,
                    query: q,
                    items,
                } if o == op => {
                    if *q != query {
                        return Err(crate::error::SwfError::validation(
                            "Invalid nextPageToken: it continues a listing with other parameters (domain, filters, registrationStatus or reverseOrder)",
                        ));
                    }
                    (q, items, st.offset)
                }
                _ => {
                    return Err(crate::error::SwfError::validation(
                        "Invalid nextPageToken for this operation",
                    ));
                }
            }
        }
        None => (Arc::new(query), Arc::new(items(core)?), 0),
    };
    let reverse = query
        .get("reverseOrder")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (page, more) = slice_page(&items, offset, size, reverse);
    let mut out = Map::new();
    out.insert(key.to_owned(), Value::Array(page));
    if more {
        let token = core.sched.issue_page_token(PageState {
            kind: PageKind::List { op, query, items },
            offset: offset + size,
            page_size: size,
            reverse,
        });
        out.insert("nextPageToken".into(), json!(token));
    }
    Ok(Value::Object(out))
}
