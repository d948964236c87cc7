//! The in-memory state of the service: domains, types, executions with their histories,
//! the task queues and the token tables. Everything lives in one [`Core`] behind one
//! `std::sync::Mutex` that is never held across an await.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::error::{SwfError, SwfResult};
use crate::timers::TimerKind;

/// Seconds since the epoch as SWF sends timestamps.
pub fn now_ts() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A random opaque token (task tokens, page tokens, run ids).
pub fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let a: u128 = rng.random();
    let b: u64 = rng.random();
    format!("{a:032x}{b:016x}")
}

/// SWF's one-year maximum on how long a workflow execution runs, in seconds.
pub const ONE_YEAR_SECS: u64 = 365 * 86_400;

/// Checks an `executionStartToCloseTimeout` (or its registered default) at `path`: at most
/// one year, and NONE only where SWF allows it (ContinueAsNew's member says "You can use
/// NONE"; StartWorkflowExecution's and RegisterWorkflowType's say you cannot).
pub fn check_execution_timeout(v: &str, path: &str, none_allowed: bool) -> SwfResult<()> {
    let why = match parse_duration(v, path)? {
        None if none_allowed => return Ok(()),
        None => "Member must not be NONE: a workflow execution runs at most one year",
        Some(s) if s > ONE_YEAR_SECS => {
            "Member must be at most 31536000 seconds: a workflow execution runs at most one year"
        }
        Some(_) => return Ok(()),
    };
    Err(SwfError::validation(format!(
        "1 validation error detected: Value '{v}' at '{path}' failed to satisfy constraint: {why}"
    )))
}

/// Checks an activity task timeout at `path` (a ScheduleActivityTask member or a
/// RegisterActivityType default): SWF-LIMITS.md "Maximum task run time: 1 year", so at most
/// one year; NONE stays allowed, as each of these members says ("You can use NONE").
pub fn check_activity_timeout(v: &str, path: &str) -> SwfResult<()> {
    check_at_most_one_year(v, path, "an activity task runs at most one year")
}

/// Checks a decision task timeout at `path` (`taskStartToCloseTimeout` of
/// StartWorkflowExecution, ContinueAsNew and StartChildWorkflowExecution, RegisterWorkflowType's
/// `defaultTaskStartToCloseTimeout`): SWF's timeouts are "up to a year (31536000 seconds) - the
/// maximum execution limit for any workflow or activity"; NONE stays allowed, as each of these
/// members says ("You can use NONE").
pub fn check_decision_task_timeout(v: &str, path: &str) -> SwfResult<()> {
    check_at_most_one_year(v, path, "a decision task runs at most one year")
}

/// A duration at `path` of at most one year, or NONE; `why` ends the message.
fn check_at_most_one_year(v: &str, path: &str, why: &str) -> SwfResult<()> {
    match parse_duration(v, path)? {
        Some(s) if s > ONE_YEAR_SECS => Err(SwfError::validation(format!(
            "1 validation error detected: Value '{v}' at '{path}' failed to satisfy constraint: Member must be at most 31536000 seconds: {why}"
        ))),
        _ => Ok(()),
    }
}

/// Parses an SWF duration ("123" or "NONE"); `Ok(None)` = no limit.
pub fn parse_duration(s: &str, field: &str) -> SwfResult<Option<u64>> {
    if s == "NONE" {
        return Ok(None);
    }
    s.parse::<u64>().map(Some).map_err(|_| {
        SwfError::validation(format!("{field}: '{s}' is not a number of seconds or NONE"))
    })
}

pub fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A required string member (the validator has already checked presence, but the decision
/// attribute objects are only checked as parts of a structure).
pub fn req_str<'a>(v: &'a Value, key: &str) -> SwfResult<&'a str> {
    get_str(v, key).ok_or_else(|| {
        SwfError::validation(format!(
            "Value null at '{key}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// `taskList.name` of a request or attribute object.
pub fn task_list_of(v: &Value) -> Option<&str> {
    v.get("taskList").and_then(|t| get_str(t, "name"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Registered,
    Deprecated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "REGISTERED",
            Status::Deprecated => "DEPRECATED",
        }
    }
}

/// A registered activity or workflow type.
#[derive(Debug, Clone)]
pub struct TypeRec {
    pub name: String,
    pub version: String,
    pub status: Status,
    pub description: Option<String>,
    pub created: f64,
    pub deprecated: Option<f64>,
    /// The `default*` members given at registration, echoed by Describe*Type.
    pub config: Map<String, Value>,
}

impl TypeRec {
    pub fn default_str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    pub fn default_task_list(&self) -> Option<&str> {
        self.config
            .get("defaultTaskList")
            .and_then(|t| get_str(t, "name"))
    }
}

#[derive(Debug)]
pub struct Domain {
    pub name: String,
    /// Open executions (children included), for [`Core::open_executions_limit`].
    pub open_executions: usize,
    pub description: Option<String>,
    pub status: Status,
    /// `workflowExecutionRetentionPeriodInDays` as given ("0".."90" or "NONE").
    pub retention: String,
    pub activity_types: HashMap<(String, String), TypeRec>,
    pub workflow_types: HashMap<(String, String), TypeRec>,
    /// Resource tags (RegisterDomain's `tags`, TagResource), by key.
    pub tags: BTreeMap<String, String>,
}

/// Where the one decision task of an execution is.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionState {
    None,
    Scheduled {
        scheduled_id: i64,
    },
    Started {
        scheduled_id: i64,
        started_id: i64,
        token: String,
    },
}

#[derive(Debug)]
pub struct Activity {
    pub activity_id: String,
    pub activity_type: Value,
    pub input: Option<String>,
    pub task_list: String,
    pub scheduled_id: i64,
    /// Set once a worker polled it.
    pub started_id: Option<i64>,
    pub token: Option<String>,
    pub start_to_close: Option<u64>,
    pub heartbeat: Option<u64>,
    /// When the heartbeat clock last restarted (the start, then each heartbeat).
    pub last_beat: Instant,
    pub details: Option<String>,
    /// Event id of the ActivityTaskCancelRequested event, once the decider asked.
    pub cancel_requested: Option<i64>,
}

/// Where a child run came from: its parent and the StartChildWorkflowExecutionInitiated
/// event there. The continued runs of a child keep it (see [`crate::history`]).
#[derive(Debug, Clone)]
pub struct ParentLink {
    pub exec: u64,
    /// The parent's `{workflowId, runId}`, shown even after the parent is forgotten.
    pub execution: Value,
    pub initiated: i64,
}

/// An open child as its parent sees it.
#[derive(Debug, Clone, Copy)]
pub struct ChildRec {
    /// The child's current run (a child that continued as new is followed to its new run).
    pub exec: u64,
    /// The parent's ChildWorkflowExecutionStarted event id.
    pub started: i64,
}

#[derive(Debug)]
pub struct Execution {
    pub id: u64,
    pub domain: String,
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: Value,
    pub task_list: String,
    pub task_priority: Option<String>,
    pub task_start_to_close: Option<String>,
    pub execution_start_to_close: Option<String>,
    pub child_policy: String,
    pub lambda_role: Option<String>,
    pub tag_list: Vec<Value>,
    pub started: f64,
    /// Close time and close status once closed.
    pub closed: Option<(f64, &'static str)>,
    pub cancel_requested: bool,
    pub events: Vec<Value>,
    /// Open activities by their ActivityTaskScheduled event id.
    pub activities: HashMap<i64, Activity>,
    /// activityId -> scheduled event id of the open activity using it.
    pub activity_ids: HashMap<String, i64>,
    /// timerId -> TimerStarted event id.
    pub timers: HashMap<String, i64>,
    pub decision: DecisionState,
    /// RespondDecisionTaskCompleted's `taskList`: where decision tasks go instead of
    /// `task_list` until it is changed or reverted.
    pub decision_task_list: Option<String>,
    /// RespondDecisionTaskCompleted's `taskListScheduleToStartTimeout`, as given. A number
    /// makes the override temporary: a decision task not started in time (or not completed
    /// once started) times out and the override is reverted.
    pub decision_schedule_to_start: Option<String>,
    /// Events arrived while the decision task was started: schedule another one on completion.
    pub decision_needed: bool,
    pub previous_started: i64,
    pub latest_context: Option<String>,
    /// When the last activity task was scheduled (DescribeWorkflowExecution).
    pub latest_activity_ts: Option<f64>,
    /// Set when this run is a child (or continues one): whom to tell when it closes.
    pub parent: Option<ParentLink>,
    /// Open children by their StartChildWorkflowExecutionInitiated event id: the parent's
    /// child policy applies to them when it closes.
    pub children: BTreeMap<i64, ChildRec>,
    /// The history limit, and where this run reports that its history is full (shared with
    /// [`Core::event_limit`]), so the run is terminated wherever the event came from.
    pub event_limit: Arc<EventLimit>,
}

/// SWF's hard limit on one run's history (SWF developer guide, "Quotas on workflow
/// executions": 25,000 events, "a hard quota"). Once a run's history holds one event less,
/// nothing more is recorded for it but WorkflowExecutionTerminated (cause
/// EVENT_LIMIT_EXCEEDED), the last event, before the operation that filled it ends.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// The history limit of a [`Core`]'s runs and the runs that reached it. The core and each of
/// its executions share it, so that [`Execution::push`], which sees one run only, can report
/// a full history; [`Core::enforce_event_limit`] terminates the runs reported.
#[derive(Debug)]
pub struct EventLimit {
    /// Events one history may hold, the termination included ([`MAX_HISTORY_EVENTS`]; tests
    /// lower it to reach it with a few events).
    max: AtomicUsize,
    /// Runs whose history is full and that are not terminated yet.
    hits: Mutex<Vec<u64>>,
}

impl Default for EventLimit {
    fn default() -> Self {
        EventLimit {
            max: AtomicUsize::new(MAX_HISTORY_EVENTS),
            hits: Mutex::new(Vec::new()),
        }
    }
}

impl EventLimit {
    /// How many events a history holds when it is full: all but the termination.
    pub fn full(&self) -> usize {
        self.max.load(Ordering::Relaxed).saturating_sub(1)
    }

    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    fn hit(&self, exec: u64) {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if !hits.contains(&exec) {
            hits.push(exec);
        }
    }

    /// The runs reported since the last call.
    pub fn take_hits(&self) -> Vec<u64> {
        std::mem::take(&mut *self.hits.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// SWF's quota of registered domains (registered and deprecated) per account.
pub const MAX_DOMAINS: usize = 100;

/// SWF's quota of open workflow executions per domain, children included.
pub const MAX_OPEN_EXECUTIONS_PER_DOMAIN: usize = 100_000;

impl Execution {
    /// Appends an event and returns its id. A full history ([`Execution::history_full`])
    /// takes nothing but WorkflowExecutionTerminated: any other event is dropped (its id is
    /// returned all the same, and the run, reported full, is terminated before the
    /// operation ends, which drops what the caller set up for the event).
    pub fn push(&mut self, event_type: &str, attrs: Value) -> i64 {
        let id = self.events.len() as i64 + 1;
        if self.history_full() && event_type != "WorkflowExecutionTerminated" {
            if self.is_open() {
                self.event_limit.hit(self.id);
            }
            return id;
        }
        let mut key = String::with_capacity(event_type.len() + 15);
        let mut chars = event_type.chars();
        if let Some(c) = chars.next() {
            key.push(c.to_ascii_lowercase());
        }
        key.push_str(chars.as_str());
        key.push_str("EventAttributes");
        let mut ev = Map::with_capacity(4);
        ev.insert("eventId".into(), json!(id));
        ev.insert("eventType".into(), json!(event_type));
        ev.insert("eventTimestamp".into(), json!(now_ts()));
        ev.insert(key, attrs);
        self.events.push(Value::Object(ev));
        if self.history_full() && self.is_open() {
            self.event_limit.hit(self.id);
        }
        id
    }

    /// The history holds all the events it may before its termination (see
    /// [`MAX_HISTORY_EVENTS`]).
    pub fn history_full(&self) -> bool {
        self.events.len() >= self.event_limit.full()
    }

    /// The attributes of the newest event (the close event, once closed).
    pub fn last_event_attrs(&self) -> Option<&Value> {
        let ev = self.events.last()?.as_object()?;
        ev.iter()
            .find(|(k, _)| k.ends_with("EventAttributes"))
            .map(|(_, v)| v)
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    pub fn execution_json(&self) -> Value {
        json!({"workflowId": self.workflow_id, "runId": self.run_id})
    }

    /// The task list the next decision task goes to.
    pub fn decision_list(&self) -> &str {
        self.decision_task_list
            .as_deref()
            .unwrap_or(&self.task_list)
    }

    /// Seconds a decision task may wait on a temporary task list override.
    pub fn decision_schedule_to_start_secs(&self) -> Option<u64> {
        self.decision_schedule_to_start
            .as_deref()
            .and_then(|s| s.parse().ok())
    }

    /// Back to the original task list (a temporary override timed out).
    pub fn revert_task_list_override(&mut self) {
        if self.decision_schedule_to_start_secs().is_some() {
            self.decision_task_list = None;
            self.decision_schedule_to_start = None;
        }
    }

    pub fn open_decision_tasks(&self) -> i64 {
        i64::from(self.decision != DecisionState::None)
    }

    /// WorkflowExecutionInfo as List*/Describe return it.
    pub fn info(&self) -> Value {
        let mut v = json!({
            "execution": self.execution_json(),
            "workflowType": self.workflow_type,
            "startTimestamp": self.started,
            "executionStatus": if self.is_open() { "OPEN" } else { "CLOSED" },
            "cancelRequested": self.cancel_requested,
        });
        if let Some((ts, status)) = self.closed {
            v["closeTimestamp"] = json!(ts);
            v["closeStatus"] = json!(status);
        }
        if !self.tag_list.is_empty() {
            v["tagList"] = json!(self.tag_list);
        }
        if let Some(p) = &self.parent {
            v["parent"] = p.execution.clone();
        }
        v
    }
}

/// A task's `taskPriority` as a number: SWF's priorities are the `i32` range, higher
/// first, and a task without one has priority 0. The validator has checked given values.
pub fn priority_of(p: Option<&str>) -> i32 {
    p.and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// A task list's queue with the Notify its long polls wait on.
#[derive(Debug, Default)]
pub struct TaskQueue {
    /// (execution id, scheduled event id) by (priority, arrival): SWF hands out the task of
    /// highest priority first, the oldest first among equals. Entries whose task is gone
    /// are skipped on take.
    pub items: BTreeMap<(Reverse<i32>, u64), (u64, i64)>,
    /// Arrival number of the last entry: orders tasks of equal priority.
    arrivals: u64,
    pub notify: Arc<Notify>,
    /// Long polls held on this task list now: SWF allows 1000 pollers per task list
    /// ([`crate::Options::max_pollers_per_task_list`]). Each held poll owns one through a
    /// guard that gives it back when the poll returns or its connection is dropped.
    pub pollers: usize,
}

impl TaskQueue {
    /// Queues a task of `priority` and wakes one held poll.
    fn push(&mut self, priority: i32, item: (u64, i64)) {
        self.arrivals += 1;
        self.items.insert((Reverse(priority), self.arrivals), item);
        self.notify.notify_one();
    }

    /// Takes the next task to hand out: highest priority, then oldest.
    pub fn pop(&mut self) -> Option<(u64, i64)> {
        self.items.pop_first().map(|(_, item)| item)
    }
}

/// Whatever a page token continues.
#[derive(Debug, Clone)]
pub enum PageKind {
    /// Next page of a decision task's history snapshot.
    Decision {
        task_token: String,
        exec: u64,
        started_id: i64,
        previous_started: i64,
        events_end: usize,
        start: usize,
    },
    /// Next page of GetWorkflowExecutionHistory; `offset` is an event index (see
    /// `executions::get_workflow_execution_history`).
    History { exec: u64 },
    /// Next page of a List* call: the remaining items were snapshotted. `query` is the
    /// request that made them (see `history::list_query`): a later page must repeat it.
    List {
        op: &'static str,
        query: Arc<Value>,
        items: Arc<Vec<Value>>,
    },
}

#[derive(Debug, Clone)]
pub struct PageState {
    pub kind: PageKind,
    pub offset: usize,
    pub page_size: usize,
    pub reverse: bool,
}

/// Queues, tokens and timers: the parts operations touch next to one execution.
#[derive(Debug)]
pub struct Sched {
    pub activity_queues: HashMap<(String, String), TaskQueue>,
    pub decision_queues: HashMap<(String, String), TaskQueue>,
    /// Activity task token -> (execution id, scheduled event id).
    pub activity_tokens: HashMap<String, (u64, i64)>,
    /// Decision task token -> execution id.
    pub decision_tokens: HashMap<String, u64>,
    pub page_tokens: PageTokens,
    /// Deadline -> what to check then; the second key part orders equal deadlines.
    pub timers: BTreeMap<(Instant, u64), TimerKind>,
    pub timer_seq: u64,
    /// Wakes the timer driver when a deadline earlier than its current one is added.
    pub timer_wake: Arc<Notify>,
}

impl Sched {
    pub fn add_timer(&mut self, at: Instant, kind: TimerKind) {
        let earliest = self.timers.keys().next().map(|k| k.0);
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), kind);
        if earliest.is_none_or(|e| at < e) {
            self.timer_wake.notify_one();
        }
    }

    /// Queues activity task `item` (execution id, scheduled event id) of `priority`.
    pub fn enqueue_activity(
        &mut self,
        domain: &str,
        task_list: &str,
        priority: i32,
        item: (u64, i64),
    ) {
        self.activity_queues
            .entry((domain.to_owned(), task_list.to_owned()))
            .or_default()
            .push(priority, item);
    }

    /// Queues decision task `scheduled` (its DecisionTaskScheduled event id) of `exec`; its
    /// priority is the execution's `taskPriority`.
    pub fn enqueue_decision(&mut self, ex: &Execution, task_list: &str, scheduled: i64) {
        self.decision_queues
            .entry((ex.domain.clone(), task_list.to_owned()))
            .or_default()
            .push(priority_of(ex.task_priority.as_deref()), (ex.id, scheduled));
    }

    pub fn issue_page_token(&mut self, state: PageState) -> String {
        self.page_tokens.issue(state, Instant::now())
    }

    /// Looks a page token up; expired tokens give SWF's error text.
    pub fn page_token(&self, token: &str) -> SwfResult<PageState> {
        self.page_tokens.get(token, Instant::now())
    }
}

/// How long the `nextPageToken` of PollForDecisionTask lives (SWF-LIMITS.md: "a token lives
/// 60 s").
pub const DECISION_PAGE_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// How long the `nextPageToken` of every other operation lives (ListDomains, List*Types,
/// List*WorkflowExecutions, GetWorkflowExecutionHistory): the model's nextPageToken docs say
/// "Each pagination token expires after 24 hours".
pub const PAGE_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The most page tokens alive at once. A client that pages a lot could otherwise pile up 24
/// hours of tokens: beyond this many, the oldest token is dropped, and using it gets the
/// expired-token error.
pub const MAX_LIVE_PAGE_TOKENS: usize = 20_000;

/// The most List* items that live page tokens may hold. A List* call's tokens share one
/// snapshot of the whole listing, which can be large (100,000 open executions), so tokens
/// are also dropped, oldest first, while their snapshots together hold more than this: room
/// for several of the largest listings being paged at once, not for a day of them.
pub const MAX_HELD_LIST_ITEMS: usize = 500_000;

/// The live page tokens, each with its expiry. They are dropped when a token is issued (no
/// timer per token), oldest first: while the oldest has expired, while there are
/// [`MAX_LIVE_PAGE_TOKENS`], or while their List* snapshots hold more than
/// [`MAX_HELD_LIST_ITEMS`]. An expired token behind a live one stays until then, but a
/// lookup refuses it all the same.
#[derive(Debug, Default)]
pub struct PageTokens {
    /// Token -> (expiry, what it continues).
    live: HashMap<String, (Instant, PageState)>,
    /// The tokens of `live`, oldest first.
    order: VecDeque<String>,
    /// Each List* snapshot that live tokens hold (by address): (its items, its tokens).
    snapshots: HashMap<usize, (usize, usize)>,
    /// The items of all of `snapshots`.
    held_items: usize,
}

impl PageTokens {
    /// Issues a token for `state` at `now`: 60 s for a decision task's history, 24 hours
    /// for the rest. Expired tokens are dropped first, then the oldest beyond the cap.
    pub fn issue(&mut self, state: PageState, now: Instant) -> String {
        let adds = self.snapshot_items(&state);
        while let Some(oldest) = self.order.front() {
            let expired = self.live.get(oldest).is_none_or(|(at, _)| *at < now);
            let full = self.order.len() >= MAX_LIVE_PAGE_TOKENS
                || self.held_items + adds > MAX_HELD_LIST_ITEMS;
            if !expired && !full {
                break;
            }
            if let Some((_, st)) = self.order.pop_front().and_then(|t| self.live.remove(&t)) {
                self.release(&st);
            }
        }
        self.hold(&state);
        let lifetime = match state.kind {
            PageKind::Decision { .. } => DECISION_PAGE_TOKEN_LIFETIME,
            PageKind::History { .. } | PageKind::List { .. } => PAGE_TOKEN_LIFETIME,
        };
        let token = random_token();
        self.live.insert(token.clone(), (now + lifetime, state));
        self.order.push_back(token.clone());
        token
    }

    /// The state of a live token at `now`; SWF's error text for one expired (or dropped,
    /// or never issued).
    pub fn get(&self, token: &str, now: Instant) -> SwfResult<PageState> {
        match self.live.get(token) {
            Some((expiry, st)) if now <= *expiry => Ok(st.clone()),
            _ => Err(SwfError::validation(
                "Specified token has exceeded its maximum lifetime",
            )),
        }
    }

    /// The items `state`'s List* snapshot would add to [`PageTokens::held_items`]: none
    /// when a live token holds it already, or when it is no List*.
    fn snapshot_items(&self, state: &PageState) -> usize {
        match &state.kind {
            PageKind::List { items, .. } if !self.snapshots.contains_key(&snapshot_key(items)) => {
                items.len()
            }
            _ => 0,
        }
    }

    /// Counts a token of `state` in its snapshot's holders.
    fn hold(&mut self, state: &PageState) {
        if let PageKind::List { items, .. } = &state.kind {
            let (len, tokens) = self
                .snapshots
                .entry(snapshot_key(items))
                .or_insert_with(|| {
                    self.held_items += items.len();
                    (items.len(), 0)
                });
            debug_assert_eq!(*len, items.len());
            *tokens += 1;
        }
    }

    /// Drops a token of `state` from its snapshot's holders; the last one frees it.
    fn release(&mut self, state: &PageState) {
        if let PageKind::List { items, .. } = &state.kind {
            let key = snapshot_key(items);
            if let Some((len, tokens)) = self.snapshots.get_mut(&key) {
                *tokens -= 1;
                if *tokens == 0 {
                    self.held_items -= *len;
                    self.snapshots.remove(&key);
                }
            }
        }
    }

    /// Makes every live token `by` older (a test hook: expiry without waiting).
    pub fn age(&mut self, by: Duration) {
        let now = Instant::now();
        for (expiry, _) in self.live.values_mut() {
            *expiry = expiry.checked_sub(by).unwrap_or(now);
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The List* items that live tokens hold (see [`MAX_HELD_LIST_ITEMS`]).
    pub fn held_items(&self) -> usize {
        self.held_items
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[derive(Debug)]
pub struct Core {
    pub domains: HashMap<String, Domain>,
    pub execs: HashMap<u64, Execution>,
    /// (domain, workflowId) -> the open execution.
    pub open_by_workflow_id: HashMap<(String, String), u64>,
    /// (domain, workflowId, runId) -> execution, open or closed.
    pub by_run: HashMap<(String, String, String), u64>,
    pub next_exec: u64,
    pub sched: Sched,
    /// The last activity tasks that closed, with their last heartbeat details, newest last
    /// (bounded; read by the `GET /_activities` debug route).
    pub recent_activities: VecDeque<Value>,
    /// The history limit and the runs to terminate for the size of their history (see
    /// [`Core::enforce_event_limit`]).
    pub event_limit: Arc<EventLimit>,
    /// Open executions a domain may have ([`MAX_OPEN_EXECUTIONS_PER_DOMAIN`]; tests lower
    /// it to reach it with a few).
    pub open_executions_limit: usize,
}

/// How many closed activity tasks `GET /_activities` remembers.
const RECENT_ACTIVITIES: usize = 2000;

/// What `GET /_activities` shows of one activity task.
pub fn activity_json(ex: &Execution, a: &Activity, status: &str) -> Value {
    json!({
        "domain": ex.domain, "workflowId": ex.workflow_id, "runId": ex.run_id,
        "activityId": a.activity_id, "activityType": a.activity_type, "taskList": a.task_list,
        "scheduledEventId": a.scheduled_id, "started": a.started_id.is_some(),
        "cancelRequested": a.cancel_requested.is_some(), "details": a.details, "status": status,
    })
}

impl Core {
    /// Remembers a closed activity task for `GET /_activities` (oldest forgotten first).
    pub fn remember_closed(&mut self, entry: Value) {
        if self.recent_activities.len() >= RECENT_ACTIVITIES {
            self.recent_activities.pop_front();
        }
        self.recent_activities.push_back(entry);
    }

    pub fn new(timer_wake: Arc<Notify>) -> Core {
        Core {
            domains: HashMap::new(),
            execs: HashMap::new(),
            open_by_workflow_id: HashMap::new(),
            by_run: HashMap::new(),
            next_exec: 1,
            recent_activities: VecDeque::new(),
            event_limit: Arc::default(),
            open_executions_limit: MAX_OPEN_EXECUTIONS_PER_DOMAIN,
            sched: Sched {
                activity_queues: HashMap::new(),
                decision_queues: HashMap::new(),
                activity_tokens: HashMap::new(),
                decision_tokens: HashMap::new(),
                page_tokens: PageTokens::default(),
                timers: BTreeMap::new(),
                timer_seq: 0,
                timer_wake,
            },
        }
    }

    pub fn domain(&self, name: &str) -> SwfResult<&Domain> {
        self.domains
            .get(name)
            .ok_or_else(|| SwfError::unknown(format!("Unknown domain: {name}")))
    }

    pub fn domain_mut(&mut self, name: &str) -> SwfResult<&mut Domain> {
        self.domains
            .get_mut(name)
            .ok_or_else(|| SwfError::unknown(format!("Unknown domain: {name}")))
    }

    /// The execution named by a request's `domain` + `execution {workflowId, runId}`.
    pub fn find_execution(&self, domain: &str, execution: &Value) -> SwfResult<u64> {
        self.domain(domain)?;
        let wf = req_str(execution, "workflowId")?;
        let id = match get_str(execution, "runId") {
            Some(run) => self
                .by_run
                .get(&(domain.to_owned(), wf.to_owned(), run.to_owned()))
                .copied(),
            None => self
                .open_by_workflow_id
                .get(&(domain.to_owned(), wf.to_owned()))
                .copied(),
        };
        id.ok_or_else(|| {
            SwfError::unknown(format!(
                "Unknown execution: WorkflowExecution=[workflowId={wf}, runId={}]",
                get_str(execution, "runId").unwrap_or("")
            ))
        })
    }
}

/// Tells List* snapshots apart: the tokens of one listing share its `Arc`.
fn snapshot_key(items: &Arc<Vec<Value>>) -> usize {
    Arc::as_ptr(items) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history_page() -> PageState {
        PageState {
            kind: PageKind::History { exec: 1 },
            offset: 1,
            page_size: 1,
            reverse: false,
        }
    }

    #[test]
    fn page_tokens_live_24_hours_or_60_s_and_at_most_the_cap_are_kept() {
        let mut tokens = PageTokens::default();
        let now = Instant::now();
        let decision = tokens.issue(
            PageState {
                kind: PageKind::Decision {
                    task_token: "t".into(),
                    exec: 1,
                    started_id: 3,
                    previous_started: 0,
                    events_end: 3,
                    start: 0,
                },
                ..history_page()
            },
            now,
        );
        let first = tokens.issue(history_page(), now);
        let second = tokens.issue(history_page(), now);
        let minute = now + Duration::from_secs(61);
        assert!(tokens.get(&decision, now + Duration::from_secs(60)).is_ok());
        assert!(tokens.get(&decision, minute).is_err());
        assert!(tokens.get(&first, now + PAGE_TOKEN_LIFETIME).is_ok());
        let day = now + PAGE_TOKEN_LIFETIME + Duration::from_secs(1);
        assert!(tokens.get(&first, day).is_err());

        // Beyond the cap, the oldest token goes first.
        while tokens.len() < MAX_LIVE_PAGE_TOKENS {
            tokens.issue(history_page(), now);
        }
        assert!(tokens.get(&decision, now).is_ok());
        tokens.issue(history_page(), now);
        assert_eq!(tokens.len(), MAX_LIVE_PAGE_TOKENS);
        assert!(tokens.get(&decision, now).is_err());
        assert!(tokens.get(&first, now).is_ok());

        // Expired tokens are dropped when the next one is issued.
        let last = tokens.issue(history_page(), day);
        assert_eq!(tokens.len(), 1);
        assert!(tokens.get(&last, day).is_ok());
        assert!(tokens.get(&second, day).is_err());
    }

    fn list_page(items: &Arc<Vec<Value>>, offset: usize) -> PageState {
        PageState {
            kind: PageKind::List {
                op: "ListDomains",
                query: Arc::new(Value::Null),
                items: items.clone(),
            },
            offset,
            page_size: 1,
            reverse: false,
        }
    }

    #[test]
    fn list_snapshots_are_counted_once_and_bounded() {
        let mut tokens = PageTokens::default();
        let now = Instant::now();
        let big = Arc::new(vec![Value::Null; MAX_HELD_LIST_ITEMS / 2 + 1]);
        let first = tokens.issue(list_page(&big, 1), now);
        // The pages of one listing share its snapshot: held once.
        let next = tokens.issue(list_page(&big, 2), now);
        assert_eq!(tokens.held_items(), big.len());
        // A second listing as big does not fit beside it: the oldest tokens go, the ones of
        // the first listing, and its snapshot with them.
        let other = Arc::new(vec![Value::Null; MAX_HELD_LIST_ITEMS / 2 + 1]);
        let third = tokens.issue(list_page(&other, 1), now);
        assert!(tokens.get(&first, now).is_err());
        assert!(tokens.get(&next, now).is_err());
        assert!(tokens.get(&third, now).is_ok());
        assert_eq!(tokens.held_items(), other.len());
        // Other tokens hold no snapshot.
        tokens.issue(history_page(), now);
        assert_eq!(tokens.held_items(), other.len());
    }
}
