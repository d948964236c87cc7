//! What an operator scrapes: Prometheus counters, liveness, readiness and a JSON status page.
//!
//! [`Metrics`] is shared (`Arc`) by the pollers, dispatch and heartbeats, which bump its
//! counters; [`serve`] exposes it on `[metrics] listen` as `/metrics`, `/healthz`, `/readyz`
//! and `/status`. Plugin facts come from the registry through [`PluginSource`], so this
//! module never depends on the registry's types.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::activity::{ActivityTask, ActivityType};
use crate::shutdown::Shutdown;
use crate::swf::SwfError;

/// A label value as the text exposition needs it: `\`, `"` and newlines escaped.
/// (prometheus-client writes label values as they are, and SWF allows `"` in a task list
/// name; one such value would make every scrape invalid.)
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LabelValue(pub String);

impl From<&str> for LabelValue {
    fn from(s: &str) -> Self {
        LabelValue(s.to_string())
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    pub task_list: LabelValue,
    /// `empty`, `task` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskListLabels {
    pub task_list: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailedLabels {
    pub task_list: LabelValue,
    pub reason: LabelValue,
}

/// A task's series by its activity type (`name@version`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityTypeLabels {
    pub task_list: LabelValue,
    pub activity_type: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityOutcomeLabels {
    pub task_list: LabelValue,
    pub activity_type: LabelValue,
    /// [`Outcome::kind`](crate::activity::Outcome::kind).
    pub outcome: &'static str,
}

/// The values of the `outcome` label, each with a series at 0 per served type.
const OUTCOMES: [&str; 3] = ["completed", "failed", "canceled"];

/// The SWF call an error came from, the `call` label of `swasm_swf_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwfCall {
    /// PollForActivityTask.
    Poll,
    /// RecordActivityTaskHeartbeat.
    Heartbeat,
    /// RespondActivityTask{Completed,Failed,Canceled}.
    Answer,
}

impl SwfCall {
    pub const ALL: [SwfCall; 3] = [SwfCall::Poll, SwfCall::Heartbeat, SwfCall::Answer];

    pub fn as_str(self) -> &'static str {
        match self {
            SwfCall::Poll => "poll",
            SwfCall::Heartbeat => "heartbeat",
            SwfCall::Answer => "answer",
        }
    }
}

/// Every value [`SwfError::kind`] gives: each has a series, at 0, from the start (a test
/// checks the list against the variants).
pub const SWF_ERROR_KINDS: [&str; 10] = [
    "throttled",
    "limit_exceeded",
    "unavailable",
    "no_credentials",
    "credentials_refused",
    "unknown_resource",
    "not_permitted",
    "already_exists",
    "validation",
    "other",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwfErrorLabels {
    pub task_list: LabelValue,
    /// [`SwfCall::as_str`].
    pub call: &'static str,
    /// [`SwfError::kind`].
    pub kind: &'static str,
}

/// A plugin as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub task_list: String,
    #[serde(rename = "type")]
    pub name: String,
    pub version: String,
    pub path: String,
    pub hash: String,
    pub size: u64,
    pub loaded_at_unix_ms: u64,
}

/// A file of a plugin dir that does not serve, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedStatus {
    pub task_list: String,
    pub path: String,
    pub why: String,
}

/// Where `/status` and `/metrics` learn about plugins: the registry, adapted in `worker`.
pub trait PluginSource: Send + Sync + 'static {
    fn plugins(&self) -> Vec<PluginStatus>;
    /// Files rejected and not replaced since (default: none).
    fn rejected(&self) -> Vec<RejectedStatus> {
        Vec::new()
    }
    /// Counter name (without prefix) -> value, e.g. `("loads", 3)`.
    fn counters(&self) -> Vec<(&'static str, u64)>;
}

/// No registry (tests, or before it started).
pub struct NoPlugins;
impl PluginSource for NoPlugins {
    fn plugins(&self) -> Vec<PluginStatus> {
        Vec::new()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// One running task as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    pub activity_id: String,
    pub workflow_id: String,
    /// SWF reuses a workflow id for each run of the workflow: the run is named by this.
    pub run_id: String,
    /// The ActivityTaskStarted event of this task in the run's history.
    pub started_event_id: i64,
    pub task_list: String,
    #[serde(rename = "type")]
    pub activity_type: String,
    pub started_unix_ms: u64,
    pub last_heartbeat_unix_ms: Option<u64>,
    pub cancel_requested: bool,
}

/// A running task, shared with dispatch rather than copied: `/status` formats it on demand.
struct InFlight {
    task: Arc<ActivityTask>,
    started_unix_ms: u64,
    last_heartbeat_unix_ms: Option<u64>,
    cancel_requested: bool,
}

/// One task list's series, looked up once when its pollers start so that a task costs
/// atomic increments, not label hashing (the handles share the families' values).
#[derive(Clone)]
pub struct TaskListMetrics {
    pub polls_task: Counter,
    pub polls_empty: Counter,
    pub polls_error: Counter,
    pub slots_in_use: Gauge,
    pub started: Counter,
    pub completed: Counter,
    pub canceled: Counter,
    pub dropped: Counter,
    pub unconfirmed: Counter,
    pub duration: Histogram,
    pub poller_panics: Counter,
}

/// Every counter the worker keeps, plus readiness and the in-flight table.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub polls: Family<PollLabels, Counter>,
    pub tasks_started: Family<TaskListLabels, Counter>,
    pub tasks_completed: Family<TaskListLabels, Counter>,
    pub tasks_failed: Family<FailedLabels, Counter>,
    pub tasks_canceled: Family<TaskListLabels, Counter>,
    /// Tasks whose response was dropped because SWF no longer knew the task.
    pub tasks_dropped: Family<TaskListLabels, Counter>,
    /// Tasks whose answer was cut off without a reply, and whose retry found the task gone:
    /// the first attempt was probably taken.
    pub tasks_unconfirmed: Family<TaskListLabels, Counter>,
    pub task_duration: Family<TaskListLabels, Histogram, fn() -> Histogram>,
    /// Tasks answered, by task list, activity type and outcome (types a plugin serves).
    pub activity_tasks: Family<ActivityOutcomeLabels, Counter>,
    pub activity_task_duration: Family<ActivityTypeLabels, Histogram, fn() -> Histogram>,
    /// Where the served types are learnt at each scrape, to give them series at 0.
    plugin_source: OnceLock<Arc<dyn PluginSource>>,
    /// Pollers that panicked and were replaced (a bug in swasm).
    pub poller_panics: Family<TaskListLabels, Counter>,
    pub heartbeats_sent: Counter,
    pub heartbeat_errors: Counter,
    pub heartbeats_skipped_throttled: Counter,
    pub slots_in_use: Family<TaskListLabels, Gauge>,
    /// `max_concurrent` per task list: what `slots_in_use` can reach.
    pub slots_max: Family<TaskListLabels, Gauge>,
    pub respond_retries: Counter,
    /// Errors of SWF calls by task list, call and kind.
    pub swf_errors: Family<SwfErrorLabels, Counter>,
    /// The failure reasons chosen by guests that have a series, per task list (at most
    /// [`MAX_GUEST_REASONS`] each).
    guest_reasons: Mutex<HashMap<String, HashSet<String>>>,
    /// What `/readyz` and `swasm_ready` are worked out from (shared with the collector
    /// that exports `swasm_ready` at scrape time).
    readiness: Arc<Readiness>,
    in_flight: Mutex<BTreeMap<u64, InFlight>>,
    next_id: AtomicU64,
    started: Instant,
}

/// Guest-chosen failure reasons with a series of their own, per task list.
pub const MAX_GUEST_REASONS: usize = 64;

/// Task durations: buckets doubling from 1 ms to 1,048.576 s (17.5 min), so a quantile from
/// them is off by at most a factor of 2, and a 10-minute task is within the last bucket
/// rather than beyond it.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 21))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("swasm")),
            polls: Family::default(),
            tasks_started: Family::default(),
            tasks_completed: Family::default(),
            tasks_failed: Family::default(),
            tasks_canceled: Family::default(),
            tasks_dropped: Family::default(),
            tasks_unconfirmed: Family::default(),
            task_duration: Family::new_with_constructor(duration_histogram),
            activity_tasks: Family::default(),
            activity_task_duration: Family::new_with_constructor(duration_histogram),
            plugin_source: OnceLock::new(),
            poller_panics: Family::default(),
            heartbeats_sent: Counter::default(),
            heartbeat_errors: Counter::default(),
            heartbeats_skipped_throttled: Counter::default(),
            slots_in_use: Family::default(),
            slots_max: Family::default(),
            respond_retries: Counter::default(),
            swf_errors: Family::default(),
            guest_reasons: Mutex::default(),
            readiness: Arc::default(),
            in_flight: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            started: Instant::now(),
        };
        {
            let mut r = m.registry.lock().unwrap();
            r.register(
                "polls",
                "PollForActivityTask calls by result (empty, task, error)",
                m.polls.clone(),
            );
            r.register(
                "tasks_started",
                "Tasks handed to a plugin (or answered unknown)",
                m.tasks_started.clone(),
            );
            r.register(
                "tasks_completed",
                "Tasks answered RespondActivityTaskCompleted",
                m.tasks_completed.clone(),
            );
            r.register(
                "tasks_failed",
                "Tasks answered RespondActivityTaskFailed, by reason",
                m.tasks_failed.clone(),
            );
            r.register(
                "tasks_canceled",
                "Tasks answered RespondActivityTaskCanceled",
                m.tasks_canceled.clone(),
            );
            r.register(
                "tasks_dropped",
                "Responses dropped because SWF no longer knew the task",
                m.tasks_dropped.clone(),
            );
            r.register(
                "tasks_unconfirmed",
                "Answers whose attempt was cut off without a reply (timeout, lost connection, 5xx) and whose retry found the task gone: probably taken, not confirmed",
                m.tasks_unconfirmed.clone(),
            );
            r.register(
                "task_duration_seconds",
                "Run time of a task, poll to response",
                m.task_duration.clone(),
            );
            r.register(
                "activity_tasks",
                "Tasks answered, by activity type (name@version, the types plugins serve) and outcome (completed, failed, canceled); the failure reasons are in tasks_failed, by task list",
                m.activity_tasks.clone(),
            );
            r.register(
                "activity_task_duration_seconds",
                "Run time of a task, poll to response, by activity type (the types plugins serve)",
                m.activity_task_duration.clone(),
            );
            r.register(
                "poller_panics",
                "Pollers that panicked and were replaced after a backoff: a bug in swasm (the log has the panic); 0 in a healthy host",
                m.poller_panics.clone(),
            );
            r.register(
                "heartbeats_sent",
                "RecordActivityTaskHeartbeat calls SWF recorded",
                m.heartbeats_sent.clone(),
            );
            r.register(
                "heartbeat_errors",
                "RecordActivityTaskHeartbeat calls that failed (throttled, 5xx, unreachable, refused); retried ones count each time",
                m.heartbeat_errors.clone(),
            );
            r.register(
                "heartbeats_skipped_throttled",
                "Guest heartbeat() calls coalesced by the throttle instead of sent",
                m.heartbeats_skipped_throttled.clone(),
            );
            r.register(
                "slots_in_use",
                "Running tasks per task list (slot permits held)",
                m.slots_in_use.clone(),
            );
            r.register(
                "slots_max",
                "Slots per task list (max_concurrent): slots_in_use at this value means tasks wait in SWF",
                m.slots_max.clone(),
            );
            r.register(
                "respond_retries",
                "Answers sent again by the host after throttling or errors (not the SDK's one retry inside a call)",
                m.respond_retries.clone(),
            );
            r.register(
                "swf_errors",
                "Errors SWF calls got, by call (poll, heartbeat, answer) and kind (throttled, limit_exceeded, unavailable, no_credentials, credentials_refused, unknown_resource, not_permitted, already_exists, validation, other); each of the host's attempts counts (a heartbeat's one SDK retry inside an attempt does not)",
                m.swf_errors.clone(),
            );
            r.register_collector(Box::new(ReadyGauges(m.readiness.clone())));
            r.register_collector(Box::new(ProcessGauges));
        }
        m
    }

    /// Adds the registry's plugin counters (`swasm_plugin_<name>_total`) and its per-list
    /// gauges (`swasm_plugins_loaded`, `swasm_plugin_files_rejected`) to `/metrics`.
    pub fn register_plugin_source(&self, source: Arc<dyn PluginSource>) {
        // Set once; a second source (none is registered twice) keeps the first's types.
        let _ = self.plugin_source.set(source.clone());
        self.registry
            .lock()
            .unwrap()
            .register_collector(Box::new(PluginCounters {
                source,
                readiness: self.readiness.clone(),
            }));
    }

    /// The series of a task list the worker polls, which counts for readiness from now on
    /// (until its first poll ends, as DescribeDomain says).
    /// `max_concurrent`: its slots.
    pub fn add_task_list(&self, task_list: &str, max_concurrent: usize) -> TaskListMetrics {
        self.readiness.update(|r| {
            r.lists.entry(task_list.to_string()).or_insert(None);
        });
        self.slots_max
            .get_or_create(&TaskListLabels {
                task_list: task_list.into(),
            })
            .set(i64::try_from(max_concurrent).unwrap_or(i64::MAX));
        self.task_list(task_list)
    }

    /// DescribeDomain answered: every task list not polled yet counts as ready.
    pub fn domain_answered(&self) {
        self.readiness.update(|r| r.domain_answered = true);
    }

    /// A poll of `task_list` ended: `ok` if the endpoint answered it, not if it failed in a
    /// way that means this host polls nothing (throttling does not say so: the caller does
    /// not report it).
    pub fn poll_outcome(&self, task_list: &str, ok: bool) {
        // Most polls change nothing: a look under the lock, no update and no line.
        if self.readiness.state.lock().unwrap().lists.get(task_list) == Some(&Some(ok)) {
            return;
        }
        self.readiness.update(|r| {
            r.lists.insert(task_list.to_string(), Some(ok));
        });
    }

    /// `/readyz` says not ready from the moment `shutdown` begins: the host polls no more.
    pub fn watch_shutdown(&self, shutdown: Shutdown) {
        let _ = self.readiness.shutdown.set(shutdown);
    }

    /// Every task list's latest poll succeeded (one not polled yet counts as ready once
    /// DescribeDomain answered), and the host is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.readiness.not_ready().is_empty()
    }

    /// Prometheus text exposition of everything.
    pub fn encode(&self) -> String {
        // Each served type's series exist, at 0, before its first task: `increase()` does
        // not see the first task of a series that starts at 1.
        if let Some(source) = self.plugin_source.get() {
            for p in source.plugins() {
                let activity_type = ActivityType::new(p.name, p.version).to_string();
                for outcome in OUTCOMES {
                    self.activity_outcome(&p.task_list, &activity_type, outcome)
                        .inc_by(0);
                }
                self.activity_duration(&p.task_list, &activity_type);
            }
        }
        let mut out = String::new();
        let r = self.registry.lock().unwrap();
        prometheus_client::encoding::text::encode(&mut out, &r)
            .expect("writing to a String cannot fail");
        out
    }

    /// Counts a task answered Failed with `reason`. The host's own reasons
    /// ([`reason::ALL`](crate::activity::reason::ALL)) each have a series; a guest's reason
    /// (`swasm.` or not) has one if it looks like a code (letters, digits and
    /// `._:-`, as SWF's reasons usually are) and the task list has fewer than
    /// [`MAX_GUEST_REASONS`] of them yet. Others count as `other`: reasons that carry ids or
    /// messages would otherwise add series for the life of the process.
    pub fn count_failed(&self, task_list: &str, reason: &str) {
        let looks_like_code = !reason.is_empty()
            && reason
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
        let kept = crate::activity::reason::ALL.contains(&reason)
            || looks_like_code && {
                let mut seen = self.guest_reasons.lock().unwrap();
                let seen = seen.entry(task_list.to_string()).or_default();
                seen.contains(reason)
                    || seen.len() < MAX_GUEST_REASONS && seen.insert(reason.to_string())
            };
        let labels = FailedLabels {
            task_list: task_list.into(),
            reason: if kept { reason } else { "other" }.into(),
        };
        self.tasks_failed.get_or_create(&labels).inc();
    }

    /// Counts a task of a served type that SWF took the answer of, `outcome` being
    /// [`Outcome::kind`](crate::activity::Outcome::kind), after `elapsed` from its poll.
    pub fn count_activity(
        &self,
        task_list: &str,
        activity_type: &ActivityType,
        outcome: &'static str,
        elapsed: std::time::Duration,
    ) {
        let activity_type = activity_type.to_string();
        self.activity_outcome(task_list, &activity_type, outcome)
            .inc();
        self.activity_duration(task_list, &activity_type)
            .observe(elapsed.as_secs_f64());
    }

    /// The `activity_tasks` series of a type (`name@version`, as [`ActivityType`] writes
    /// it) and outcome, created at 0 if new.
    fn activity_outcome(
        &self,
        task_list: &str,
        activity_type: &str,
        outcome: &'static str,
    ) -> Counter {
        self.activity_tasks
            .get_or_create(&ActivityOutcomeLabels {
                task_list: task_list.into(),
                activity_type: activity_type.into(),
                outcome,
            })
            .clone()
    }

    /// The `activity_task_duration_seconds` series of a type, created empty if new.
    fn activity_duration(&self, task_list: &str, activity_type: &str) -> Histogram {
        self.activity_task_duration
            .get_or_create(&ActivityTypeLabels {
                task_list: task_list.into(),
                activity_type: activity_type.into(),
            })
            .clone()
    }

    /// Counts an error a call for a task of `task_list` (or a poll of it) got.
    pub fn count_swf_error(&self, task_list: &str, call: SwfCall, error: &SwfError) {
        self.swf_errors
            .get_or_create(&SwfErrorLabels {
                task_list: task_list.into(),
                call: call.as_str(),
                kind: error.kind(),
            })
            .inc();
    }

    /// The series of `task_list`. Those counted later by label are created here too, at 0:
    /// Prometheus' `increase()` does not see the first error of a series that starts at 1.
    pub fn task_list(&self, task_list: &str) -> TaskListMetrics {
        let tl = TaskListLabels {
            task_list: task_list.into(),
        };
        for call in SwfCall::ALL {
            for kind in SWF_ERROR_KINDS {
                self.swf_errors
                    .get_or_create(&SwfErrorLabels {
                        task_list: task_list.into(),
                        call: call.as_str(),
                        kind,
                    })
                    .inc_by(0);
            }
        }
        // The host's own reasons; a guest's appear at their first failure (they are not
        // known before).
        for reason in crate::activity::reason::ALL {
            self.tasks_failed
                .get_or_create(&FailedLabels {
                    task_list: task_list.into(),
                    reason: (*reason).into(),
                })
                .inc_by(0);
        }
        let poll = |result| {
            self.polls
                .get_or_create(&PollLabels {
                    task_list: task_list.into(),
                    result,
                })
                .clone()
        };
        TaskListMetrics {
            polls_task: poll("task"),
            polls_empty: poll("empty"),
            polls_error: poll("error"),
            slots_in_use: self.slots_in_use.get_or_create(&tl).clone(),
            started: self.tasks_started.get_or_create(&tl).clone(),
            completed: self.tasks_completed.get_or_create(&tl).clone(),
            canceled: self.tasks_canceled.get_or_create(&tl).clone(),
            dropped: self.tasks_dropped.get_or_create(&tl).clone(),
            unconfirmed: self.tasks_unconfirmed.get_or_create(&tl).clone(),
            duration: self.task_duration.get_or_create(&tl).clone(),
            poller_panics: self.poller_panics.get_or_create(&tl).clone(),
        }
    }

    /// Records a task as running until the guard is dropped.
    pub fn track(self: &Arc<Self>, task: Arc<ActivityTask>) -> InFlightGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = InFlight {
            task: task.clone(),
            started_unix_ms: now_ms(),
            last_heartbeat_unix_ms: None,
            cancel_requested: false,
        };
        self.in_flight.lock().unwrap().insert(id, entry);
        InFlightGuard {
            metrics: self.clone(),
            task,
            id,
        }
    }

    pub fn in_flight(&self) -> Vec<TaskStatus> {
        self.in_flight
            .lock()
            .unwrap()
            .values()
            .map(|e| TaskStatus {
                activity_id: e.task.activity_id.clone(),
                workflow_id: e.task.workflow_id.clone(),
                run_id: e.task.run_id.clone(),
                started_event_id: e.task.started_event_id,
                task_list: e.task.task_list.clone(),
                activity_type: e.task.activity_type.to_string(),
                started_unix_ms: e.started_unix_ms,
                last_heartbeat_unix_ms: e.last_heartbeat_unix_ms,
                cancel_requested: e.cancel_requested,
            })
            .collect()
    }
}

/// What readiness is worked out from.
#[derive(Default)]
struct Readiness {
    state: Mutex<ReadinessState>,
    shutdown: OnceLock<Shutdown>,
}

#[derive(Default)]
struct ReadinessState {
    /// DescribeDomain answered: counts for a task list whose polls have said nothing yet.
    domain_answered: bool,
    /// Each polled task list's latest poll outcome (`None`: none said anything yet).
    lists: BTreeMap<String, Option<bool>>,
    /// Whether every list was ready at the last change, so a change is logged once, and
    /// only when it is one: with one list refused and another fine, the host stays not
    /// ready instead of flipping at each poll.
    ready: bool,
}

impl ReadinessState {
    fn list_ready(&self, outcome: Option<bool>) -> bool {
        outcome.unwrap_or(self.domain_answered)
    }

    /// The task lists that are not ready (with no list yet: the domain, `""`, unless it
    /// answered).
    fn not_ready(&self) -> Vec<String> {
        if self.lists.is_empty() && !self.domain_answered {
            return vec![String::new()];
        }
        self.lists
            .iter()
            .filter(|(_, outcome)| !self.list_ready(**outcome))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl Readiness {
    fn update(&self, change: impl FnOnce(&mut ReadinessState)) {
        let mut state = self.state.lock().unwrap();
        change(&mut state);
        let not_ready = state.not_ready();
        let ready = not_ready.is_empty();
        if std::mem::replace(&mut state.ready, ready) != ready {
            if ready {
                tracing::info!(ready, "readiness changed: every task list is polled");
            } else {
                let task_lists = not_ready.join(", ");
                tracing::info!(ready, %task_lists, "readiness changed: polls fail on task lists {task_lists}");
            }
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.get().is_some_and(Shutdown::is_stopping)
    }

    /// Why the host is not ready: the lists that are not, or `shutting down`.
    fn not_ready(&self) -> Vec<String> {
        if self.stopping() {
            return vec!["shutting down".to_string()];
        }
        self.state.lock().unwrap().not_ready()
    }

    /// Each task list and whether it is ready (none while shutting down).
    fn lists(&self) -> Vec<(String, bool)> {
        let stopping = self.stopping();
        let state = self.state.lock().unwrap();
        state
            .lists
            .iter()
            .map(|(name, outcome)| (name.clone(), !stopping && state.list_ready(*outcome)))
            .collect()
    }
}

/// `swasm_ready{task_list}`, worked out at each scrape as `/readyz` is.
struct ReadyGauges(Arc<Readiness>);

impl std::fmt::Debug for ReadyGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadyGauges")
    }
}

impl Collector for ReadyGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "ready",
            "1 while this task list's latest poll succeeded (or, before its first, DescribeDomain did), 0 while its polls fail (not for throttling) and once the host shuts down; /readyz is ready when every task list is 1.",
            None,
            MetricType::Gauge,
        )?;
        for (name, ready) in self.0.lists() {
            let labels = [("task_list", LabelValue(name))];
            ConstGauge::new(i64::from(ready)).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Removes its task from `/status` when dropped; heartbeats update it through it.
pub struct InFlightGuard {
    metrics: Arc<Metrics>,
    task: Arc<ActivityTask>,
    id: u64,
}

impl InFlightGuard {
    /// Counts an error a call for this task got (`swasm_swf_errors_total`, under its task
    /// list).
    pub fn count_swf_error(&self, call: SwfCall, error: &SwfError) {
        self.metrics
            .count_swf_error(&self.task.task_list, call, error);
    }

    pub fn heartbeat_sent(&self, cancel_requested: bool) {
        if let Some(s) = self.metrics.in_flight.lock().unwrap().get_mut(&self.id) {
            s.last_heartbeat_unix_ms = Some(now_ms());
            s.cancel_requested |= cancel_requested;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.metrics.in_flight.lock().unwrap().remove(&self.id);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The registry's counters, and its state per task list (every task list the worker polls,
/// at 0 when it serves nothing).
struct PluginCounters {
    source: Arc<dyn PluginSource>,
    /// Knows the task lists.
    readiness: Arc<Readiness>,
}

impl std::fmt::Debug for PluginCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginCounters")
    }
}

impl Collector for PluginCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        for (name, value) in self.source.counters() {
            let counter = ConstCounter::new(value);
            let help = plugin_counter_help(name)
                .map(str::to_string)
                .unwrap_or_else(|| format!("Plugin registry: {name}."));
            let metric_name = format!("plugin_{name}");
            let metric =
                encoder.encode_descriptor(&metric_name, &help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let (plugins, files_rejected) = (self.source.plugins(), self.source.rejected());
        let polled = self.readiness.lists();
        // Every list polled, and any the registry names: each in both gauges.
        let zeros: BTreeMap<&str, i64> = polled
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(plugins.iter().map(|p| p.task_list.as_str()))
            .chain(files_rejected.iter().map(|r| r.task_list.as_str()))
            .map(|name| (name, 0))
            .collect();
        let (mut loaded, mut rejected) = (zeros.clone(), zeros);
        for p in &plugins {
            *loaded.entry(&p.task_list).or_default() += 1;
        }
        for r in &files_rejected {
            *rejected.entry(&r.task_list).or_default() += 1;
        }
        for (name, help, values) in [
            (
                "plugins_loaded",
                "Activity types the task list serves (one per plugin file that loaded).",
                loaded,
            ),
            (
                "plugin_files_rejected",
                "Files of the task list's plugin dir that do not serve (not a component, no @version in the name, failed the load check...), until they load or go; /status says why.",
                rejected,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (list, value) in values {
                let labels = [("task_list", LabelValue(list.to_string()))];
                ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// What each of the registry's counters counts, for its HELP line.
fn plugin_counter_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "loads" => {
            "Activity types that started being served, at start or when their file was added to a plugin dir."
        }
        "swaps" => "Activity types whose code a changed file replaced (hot swaps).",
        "rejects" => {
            "Plugin files rejected (not a component, no @version in the name, failed the load check, a symlink leaving the dir...); each rejection counts, the file's previous version (if any) keeps serving."
        }
        "retirements" => "Activity types no longer served because their file left the plugin dir.",
        "compiles" => {
            "Components compiled: compiled-code cache misses, and Cranelift compiles in the background after a Winch load."
        }
        "cache_hits" => "Components loaded from the compiled-code cache instead of compiled.",
        "winch_loads" => {
            "Components served from Winch code (quick to compile, slower to run) while their Cranelift code compiles in the background."
        }
        "upgrades" => {
            "Activity types switched from Winch code to the Cranelift code compiled in the background."
        }
        "busy" => {
            "Loads and upgrades put off because every instance slot was taken when their code was to be checked; each is tried again later."
        }
        "unreadable" => "Scans that could not read a plugin dir; what it served keeps serving.",
        _ => return None,
    })
}

/// Facts about the process, read at each scrape: `swasm_build_info`,
/// `swasm_process_resident_memory_bytes`.
#[derive(Debug)]
struct ProcessGauges;

impl Collector for ProcessGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "build_info",
            "1, labelled with the version of swasm that runs.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1)
            .encode(metric.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        if let Some(bytes) = resident_bytes() {
            let gauge = ConstGauge::new(bytes);
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident set size of the host process (/proc/self/statm): host, runtime and the guests' memory in use.",
                None,
                MetricType::Gauge,
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The process's resident set size, in bytes (`None` where `/proc` has no `statm`).
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.checked_mul(page_size as i64)
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    plugins: Arc<dyn PluginSource>,
}

/// The router, separate from [`serve`] so tests can drive it on their own listener.
pub fn router(metrics: Arc<Metrics>, plugins: Arc<dyn PluginSource>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(AppState { metrics, plugins })
}

/// Binds `listen` and serves until the process ends. Returns the bound address.
pub async fn serve(
    listen: &str,
    metrics: Arc<Metrics>,
    plugins: Arc<dyn PluginSource>,
) -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("[metrics] listen: cannot bind {listen}"))?;
    let addr = listener.local_addr()?;
    let app = router(metrics, plugins);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(addr)
}

async fn metrics_page(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let not_ready = s.metrics.readiness.not_ready();
    if not_ready.is_empty() {
        return (StatusCode::OK, "ready\n".to_string());
    }
    let why = if s.metrics.readiness.stopping() {
        "the host is shutting down and polls no more".to_string()
    } else if not_ready == [""] {
        "the SWF endpoint has not answered yet".to_string()
    } else {
        format!(
            "the SWF endpoint has not answered yet, or polls fail on task list(s) {}",
            not_ready.join(", ")
        )
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {why}\n"),
    )
}

async fn status(State(s): State<AppState>) -> impl IntoResponse {
    let body = serde_json::json!({
        "ready": s.metrics.is_ready(),
        "uptime_s": s.metrics.started.elapsed().as_secs(),
        "plugins": s.plugins.plugins(),
        "rejected": s.plugins.rejected(),
        "in_flight": s.metrics.in_flight(),
    });
    axum::Json(body)
}

/// `name@version` of a type, for labels.
pub fn type_label(ty: &ActivityType) -> String {
    ty.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_text() {
        let m = Metrics::new();
        m.polls
            .get_or_create(&PollLabels {
                task_list: "a".into(),
                result: "empty",
            })
            .inc();
        m.tasks_failed
            .get_or_create(&FailedLabels {
                task_list: "a".into(),
                reason: "x.Y".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains(r#"swasm_polls_total{task_list="a",result="empty"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"swasm_tasks_failed_total{task_list="a",reason="x.Y"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.task_list("say \"hi\"\\now\n").started.inc();
        let text = m.encode();
        assert!(
            text.contains(r#"swasm_tasks_started_total{task_list="say \"hi\"\\now\n"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn guest_reasons_get_a_series_only_while_they_look_like_codes_and_are_few() {
        let m = Metrics::new();
        m.count_failed("a", "swasm.Trap");
        m.count_failed("a", "BadInput");
        m.count_failed("a", "BadInput");
        m.count_failed("a", "record 4711 not found");
        for i in 0..MAX_GUEST_REASONS + 10 {
            m.count_failed("a", &format!("E{i}"));
        }
        // A guest's reason that looks like the host's is a guest's reason: within the cap.
        for i in 0..5 {
            m.count_failed("a", &format!("swasm.job-{i}"));
        }
        m.count_failed("b", "Fresh");
        let text = m.encode();
        for line in [
            r#"swasm_tasks_failed_total{task_list="a",reason="swasm.Trap"} 1"#,
            r#"swasm_tasks_failed_total{task_list="a",reason="BadInput"} 2"#,
            r#"swasm_tasks_failed_total{task_list="b",reason="Fresh"} 1"#,
            // The message, the ten codes past the cap (BadInput took one of its places) and
            // the five `swasm.` ones.
            r#"swasm_tasks_failed_total{task_list="a",reason="other"} 17"#,
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        let series = text
            .matches("swasm_tasks_failed_total{task_list=\"a\"")
            .count();
        assert_eq!(series, 1 + MAX_GUEST_REASONS + 1, "{text}");
    }

    #[test]
    fn task_list_handles_count_in_the_families() {
        let m = Metrics::new();
        let a = m.task_list("a");
        a.started.inc();
        a.polls_empty.inc();
        m.task_list("a").started.inc();
        a.slots_in_use.inc();
        let text = m.encode();
        for line in [
            r#"swasm_tasks_started_total{task_list="a"} 2"#,
            r#"swasm_polls_total{task_list="a",result="empty"} 1"#,
            r#"swasm_slots_in_use{task_list="a"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }

    /// Every kind of SWF error has a series per task list and call from the start, at 0,
    /// so an alert on `increase()` sees the first one; a task's errors count under its list.
    #[test]
    fn swf_errors_are_counted_by_call_and_kind_from_zero() {
        let all = [
            SwfError::Throttled(String::new()),
            SwfError::LimitExceeded(String::new()),
            SwfError::Unavailable(String::new()),
            SwfError::NoCredentials(String::new()),
            SwfError::CredentialsRefused(String::new()),
            SwfError::TaskGone(String::new()),
            SwfError::NotPermitted(String::new()),
            SwfError::AlreadyExists(String::new()),
            SwfError::Validation(String::new()),
            SwfError::Other(String::new()),
        ];
        for e in &all {
            // Exhaustive on purpose: a new variant stops this from compiling until it is
            // added above (and its kind to SWF_ERROR_KINDS).
            match e {
                SwfError::Throttled(_)
                | SwfError::LimitExceeded(_)
                | SwfError::Unavailable(_)
                | SwfError::NoCredentials(_)
                | SwfError::CredentialsRefused(_)
                | SwfError::TaskGone(_)
                | SwfError::NotPermitted(_)
                | SwfError::AlreadyExists(_)
                | SwfError::Validation(_)
                | SwfError::Other(_) => {}
            }
            assert!(SWF_ERROR_KINDS.contains(&e.kind()), "{e:?}");
        }
        assert_eq!(SWF_ERROR_KINDS.len(), all.len());

        let m = Arc::new(Metrics::new());
        m.task_list("a");
        m.count_swf_error("a", SwfCall::Poll, &SwfError::NotPermitted("IAM".into()));
        let mut task = crate::swf::testing::task("t", "echo", "1");
        task.task_list = "a".into();
        let guard = m.track(Arc::new(task));
        guard.count_swf_error(SwfCall::Heartbeat, &SwfError::Throttled("slow".into()));
        guard.count_swf_error(SwfCall::Heartbeat, &SwfError::Throttled("slow".into()));
        let text = m.encode();
        for (line, value) in [
            (r#"call="poll",kind="not_permitted""#, 1),
            (r#"call="heartbeat",kind="throttled""#, 2),
            (r#"call="answer",kind="credentials_refused""#, 0),
            (r#"call="poll",kind="throttled""#, 0),
        ] {
            let line = format!("swasm_swf_errors_total{{task_list=\"a\",{line}}} {value}");
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        let series = text.matches("swasm_swf_errors_total{").count();
        assert_eq!(series, SwfCall::ALL.len() * SWF_ERROR_KINDS.len(), "{text}");
    }

    /// The host's failure reasons have a series at 0 as soon as the list's do, so the first
    /// `swasm.Trap` is an increase Prometheus sees, not a series appearing at 1.
    #[test]
    fn host_reasons_start_at_zero() {
        let m = Metrics::new();
        m.task_list("a");
        m.count_failed("a", crate::activity::reason::TRAP);
        let text = m.encode();
        for reason in crate::activity::reason::ALL {
            let value = if *reason == crate::activity::reason::TRAP {
                1
            } else {
                0
            };
            let line =
                format!(r#"swasm_tasks_failed_total{{task_list="a",reason="{reason}"}} {value}"#);
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
    }

    /// A registry of three plugins (two on `a`), a file rejected on `a`, and list `c`
    /// polled with nothing in its dir.
    struct Plugins;
    impl PluginSource for Plugins {
        fn plugins(&self) -> Vec<PluginStatus> {
            ["a", "a", "b"]
                .into_iter()
                .map(|task_list| PluginStatus {
                    task_list: task_list.into(),
                    name: "echo".into(),
                    version: "1".into(),
                    path: "/p/echo@1.wasm".into(),
                    hash: String::new(),
                    size: 1,
                    loaded_at_unix_ms: 0,
                })
                .collect()
        }
        fn rejected(&self) -> Vec<RejectedStatus> {
            vec![RejectedStatus {
                task_list: "a".into(),
                path: "/p/bad@1.wasm".into(),
                why: "not a component".into(),
            }]
        }
        fn counters(&self) -> Vec<(&'static str, u64)> {
            vec![("loads", 3), ("winch_loads", 1)]
        }
    }

    /// What saturation and state alerts need: slots against their maximum, the plugins a
    /// list serves and the files it rejects (0 for a list with none), the version, and
    /// the process's memory.
    #[test]
    fn state_gauges_show_in_text() {
        let m = Metrics::new();
        for (list, slots) in [("a", 4), ("b", 2), ("c", 1)] {
            m.add_task_list(list, slots);
        }
        m.register_plugin_source(Arc::new(Plugins));
        let text = m.encode();
        for line in [
            r#"swasm_slots_max{task_list="a"} 4"#,
            r#"swasm_slots_max{task_list="b"} 2"#,
            r#"swasm_plugins_loaded{task_list="a"} 2"#,
            r#"swasm_plugins_loaded{task_list="b"} 1"#,
            r#"swasm_plugins_loaded{task_list="c"} 0"#,
            r#"swasm_plugin_files_rejected{task_list="a"} 1"#,
            r#"swasm_plugin_files_rejected{task_list="b"} 0"#,
            r#"swasm_plugin_files_rejected{task_list="c"} 0"#,
            "swasm_plugin_loads_total 3",
            "# HELP swasm_plugin_winch_loads Components served from Winch code (quick to compile, slower to run) while their Cranelift code compiles in the background.",
            &format!(
                r#"swasm_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("swasm_process_resident_memory_bytes "))
            .unwrap_or_else(|| panic!("no RSS in {text}"))
            .parse()
            .unwrap();
        // More than a MiB (this test binary), less than a TiB: bytes, not pages or KiB.
        assert!((1e6..1e12).contains(&rss), "{rss}");
    }

    #[test]
    fn duration_buckets_double_from_a_millisecond_past_ten_minutes() {
        let m = Metrics::new();
        m.task_list("a").duration.observe(0.5);
        let text = m.encode();
        let bounds: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("swasm_task_duration_seconds_bucket{"))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
            .filter(|b: &f64| b.is_finite())
            .collect();
        assert_eq!(bounds.first(), Some(&0.001), "{text}");
        assert!(bounds.last().is_some_and(|b| *b >= 600.0), "{bounds:?}");
        for pair in bounds.windows(2) {
            assert!((pair[1] / pair[0] - 2.0).abs() < 1e-9, "{bounds:?}");
        }
    }

    #[test]
    fn in_flight_guard_removes_on_drop() {
        let m = Arc::new(Metrics::new());
        let task = crate::activity::ActivityTask {
            activity_id: "a1".into(),
            activity_type: ActivityType::new("echo", "1"),
            workflow_id: "w".into(),
            run_id: "r".into(),
            started_event_id: 7,
            task_list: "tl".into(),
            input: None,
        };
        let g = m.track(Arc::new(task));
        g.heartbeat_sent(true);
        let seen = m.in_flight();
        assert_eq!(seen.len(), 1);
        // A workflow id names many runs: the entry says which run, and which event.
        assert_eq!(
            (seen[0].run_id.as_str(), seen[0].started_event_id),
            ("r", 7)
        );
        let json = serde_json::to_value(&seen[0]).unwrap();
        assert_eq!(json["run_id"], "r");
        assert_eq!(json["started_event_id"], 7);
        assert!(seen[0].cancel_requested && seen[0].last_heartbeat_unix_ms.is_some());
        drop(g);
        assert!(m.in_flight().is_empty());
    }
}
