//! Timeouts and timers, driven by one tokio task sleeping until the earliest deadline (so
//! they fire on time, not lazily on the next call). Entries are checked when they fire:
//! one whose task already ended is simply ignored.

use std::sync::Weak;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::history::{record, schedule_decision};
use crate::model::{Core, DecisionState};
use crate::state::Shared;

#[derive(Debug, Clone)]
pub enum TimerKind {
    ScheduleToStart {
        exec: u64,
        scheduled: i64,
    },
    ScheduleToClose {
        exec: u64,
        scheduled: i64,
    },
    StartToClose {
        exec: u64,
        scheduled: i64,
    },
    /// Re-armed from the last heartbeat when it fires early.
    Heartbeat {
        exec: u64,
        scheduled: i64,
    },
    /// A decision task on a temporary task list override, not started in time.
    DecisionScheduleToStart {
        exec: u64,
        scheduled: i64,
    },
    DecisionStartToClose {
        exec: u64,
        started: i64,
    },
    WorkflowStartToClose {
        exec: u64,
    },
    /// A StartTimer decision's timer; `started` tells it from a reused timerId.
    UserTimer {
        exec: u64,
        timer_id: String,
        started: i64,
    },
    Retention {
        exec: u64,
    },
}

/// Runs until the state is dropped.
pub(crate) async fn drive(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let wake = s.timer_wake.clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let mut core = s.lock_core();
            fire_due(&mut core, Instant::now());
            core.sched.timers.keys().next().map(|k| k.0)
        };
        drop(s);
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

pub fn fire_due(core: &mut Core, now: Instant) {
    while let Some(entry) = core.sched.timers.first_entry() {
        if entry.key().0 > now {
            break;
        }
        let kind = entry.remove();
        fire(core, kind, now);
        // A run whose history this filled up is terminated before the next timer sees it.
        core.enforce_event_limit();
    }
}

fn fire(core: &mut Core, kind: TimerKind, now: Instant) {
    match kind {
        TimerKind::ScheduleToStart { exec, scheduled } => {
            let started = core
                .execs
                .get(&exec)
                .and_then(|e| e.activities.get(&scheduled))
                .map(|a| a.started_id.is_some());
            if started == Some(false) {
                activity_timed_out(core, exec, scheduled, "SCHEDULE_TO_START");
            }
        }
        TimerKind::ScheduleToClose { exec, scheduled } => {
            activity_timed_out(core, exec, scheduled, "SCHEDULE_TO_CLOSE")
        }
        TimerKind::StartToClose { exec, scheduled } => {
            activity_timed_out(core, exec, scheduled, "START_TO_CLOSE")
        }
        TimerKind::Heartbeat { exec, scheduled } => {
            let Some(a) = core
                .execs
                .get(&exec)
                .and_then(|e| e.activities.get(&scheduled))
            else {
                return;
            };
            let Some(hb) = a.heartbeat else { return };
            let due = a.last_beat + Duration::from_secs(hb);
            if due > now {
                core.sched
                    .add_timer(due, TimerKind::Heartbeat { exec, scheduled });
            } else {
                activity_timed_out(core, exec, scheduled, "HEARTBEAT");
            }
        }
        TimerKind::DecisionStartToClose { exec, started } => {
            let Some(ex) = core.execs.get_mut(&exec) else {
                return;
            };
            let DecisionState::Started {
                scheduled_id,
                started_id,
                token,
            } = ex.decision.clone()
            else {
                return;
            };
            if started_id != started || !ex.is_open() {
                return;
            }
            core.sched.decision_tokens.remove(&token);
            ex.push(
                "DecisionTaskTimedOut",
                json!({"timeoutType": "START_TO_CLOSE", "scheduledEventId": scheduled_id, "startedEventId": started_id}),
            );
            ex.decision = DecisionState::None;
            ex.decision_needed = false;
            ex.revert_task_list_override();
            schedule_decision(ex, &mut core.sched);
        }
        TimerKind::DecisionScheduleToStart { exec, scheduled } => {
            let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
                return;
            };
            if ex.decision
                != (DecisionState::Scheduled {
                    scheduled_id: scheduled,
                })
            {
                return;
            }
            ex.push(
                "DecisionTaskTimedOut",
                json!({"timeoutType": "SCHEDULE_TO_START", "scheduledEventId": scheduled, "startedEventId": 0}),
            );
            ex.decision = DecisionState::None;
            ex.revert_task_list_override();
            schedule_decision(ex, &mut core.sched);
        }
        TimerKind::WorkflowStartToClose { exec } => {
            let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
                return;
            };
            let policy = ex.child_policy.clone();
            ex.push(
                "WorkflowExecutionTimedOut",
                json!({"timeoutType": "START_TO_CLOSE", "childPolicy": policy}),
            );
            core.close_execution(exec, "TIMED_OUT");
        }
        TimerKind::UserTimer {
            exec,
            timer_id,
            started,
        } => {
            let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
                return;
            };
            if ex.timers.get(&timer_id) != Some(&started) {
                return;
            }
            ex.timers.remove(&timer_id);
            record(
                ex,
                &mut core.sched,
                "TimerFired",
                json!({"timerId": timer_id, "startedEventId": started}),
            );
        }
        TimerKind::Retention { exec } => core.forget_execution(exec),
    }
}

/// Records ActivityTaskTimedOut (with the last heartbeat details) and drops the task.
pub fn activity_timed_out(core: &mut Core, exec: u64, scheduled: i64, timeout_type: &str) {
    let Some(ex) = core.execs.get_mut(&exec).filter(|e| e.is_open()) else {
        return;
    };
    let Some(a) = ex.activities.remove(&scheduled) else {
        return;
    };
    ex.activity_ids.remove(&a.activity_id);
    let entry = crate::model::activity_json(ex, &a, "timed_out");
    core.remember_closed(entry);
    let ex = core.execs.get_mut(&exec).expect("checked");
    if let Some(t) = &a.token {
        core.sched.activity_tokens.remove(t);
    }
    let mut attrs = json!({
        "timeoutType": timeout_type,
        "scheduledEventId": scheduled,
        "startedEventId": a.started_id.unwrap_or(0),
    });
    if let Some(d) = a.details {
        attrs["details"] = json!(d);
    }
    record(ex, &mut core.sched, "ActivityTaskTimedOut", attrs);
}
