//! One task, from poll to answer: look up its plugin, run it with a heartbeat pump, and
//! answer SWF with RespondActivityTask{Completed,Failed,Canceled}, retrying until SWF has
//! the answer or says the task is gone.
//!
//! Everything the host decides on the guest's behalf (unknown type, oversized result,
//! shutdown) is decided here, so that `poller` only moves tasks and `runtime` only runs them.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tracing::Instrument;

use crate::activity::{ActivityTask, ActivityType, HeartbeatHandle, Outcome, reason};
use crate::config::{ActivitySettings, Config};
use crate::guests::GuestThreads;
use crate::heartbeat::{HeartbeatEnd, HeartbeatPump, ThrottlePolicy, truncate_chars};
use crate::metrics::{Metrics, SwfCall, TaskListMetrics};
use crate::shutdown::Shutdown;
use crate::swf::{Backoff, PolledTask, SwfClient, SwfError};

/// SWF's limits, in characters.
pub const MAX_RESULT: usize = 32768;
pub const MAX_REASON: usize = 256;
pub const MAX_DETAILS: usize = 32768;

/// How long a task interrupted at the end of its shutdown grace still tries to send its
/// last heartbeat details before answering.
const FLUSH_AFTER_GRACE: Duration = Duration::from_secs(2);

/// How long after its shutdown grace a task's answer is given up, whatever it is doing then
/// (flushing heartbeat details, a call in flight, a pause before a retry): the 10 s after
/// the grace that README's stop timeout counts on.
const ANSWER_AFTER_GRACE: Duration = Duration::from_secs(10);

/// A runnable plugin: `runtime::Plugin`, adapted in `worker` (or a fake in tests).
pub trait Runner: Send + Sync + 'static {
    /// Runs one task. Dropping the future interrupts the guest.
    fn run(
        self: Arc<Self>,
        task: ActivityTask,
        settings: Arc<ActivitySettings>,
        heartbeat: HeartbeatHandle,
    ) -> BoxFuture<'static, Outcome>;

    /// Which build of the code runs (for the task's log lines), if the runner knows.
    fn build(&self) -> Option<&str> {
        None
    }
}

/// What dispatch needs of the registry: routing by task list and type.
pub trait Activities: Send + Sync + 'static {
    fn lookup(&self, task_list: &str, ty: &ActivityType) -> Option<Arc<dyn Runner>>;
    /// The types served on `task_list`, for the UnknownActivityType answer.
    fn served(&self, task_list: &str) -> Vec<ActivityType>;
}

/// Shared by every task of the worker.
pub struct Dispatcher {
    pub swf: Arc<dyn SwfClient>,
    pub activities: Arc<dyn Activities>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub policy: Arc<ThrottlePolicy>,
    pub shutdown: Shutdown,
    /// Where guest code runs, apart from the SWF traffic on the main runtime.
    pub guests: Arc<GuestThreads>,
}

impl Dispatcher {
    /// Runs and answers one polled task, counting it in `counts` (its task list's series);
    /// never fails (errors are logged inside its span). A panic while handling it (a bug)
    /// answers it failed `swasm.HostError`, rather than leaving its workflow to wait for
    /// the task's timeout.
    pub async fn handle(self: Arc<Self>, polled: PolledTask, counts: &TaskListMetrics) {
        let t = &polled.task;
        let runner = self.activities.lookup(&t.task_list, &t.activity_type);
        let span = tracing::info_span!(
            "task",
            domain = %self.config.swf.domain,
            task_list = %t.task_list,
            activity_id = %t.activity_id,
            activity_type = %t.activity_type,
            workflow_id = %t.workflow_id,
            // With the workflow id, what GetWorkflowExecutionHistory needs: SWF reuses
            // workflow ids across runs.
            run_id = %t.run_id,
            // Which build of the plugin runs it: after a hot swap, the lines of a task say
            // whether the old file or the new one served it. Set here, not recorded later:
            // a field recorded later costs the JSON log format a re-encoding of the span.
            plugin_sha256 = runner.as_ref().and_then(|r| r.build()).map(tracing::field::display),
        );
        let PolledTask { token, task } = polled;
        let task = Arc::new(task);
        // Types no plugin serves are named by the decider, not by the plugin dirs: they get
        // no series of their own (`tasks_failed{reason="swasm.UnknownActivityType"}`).
        let served = runner.is_some();
        let started = Instant::now();
        let answering = AtomicBool::new(false);
        async {
            let handled = AssertUnwindSafe(self.clone().handle_inner(
                &token,
                task.clone(),
                runner,
                counts,
                started,
                &answering,
            ))
            .catch_unwind()
            .await;
            if let Err(panic) = handled {
                let message = panic_message(panic.as_ref());
                if answering.load(Ordering::Relaxed) {
                    // SWF would refuse a second answer as for a task it no longer knows.
                    tracing::error!(panic = message, "the host panicked after answering the task (a bug in swasm: please report it with this log)");
                } else {
                    self.answer_after_panic(&token, &task, served, counts, started, &message)
                        .await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// After a panic in [`Self::handle_inner`] before it answered (the panic hook has logged
    /// the panic): fails the task `swasm.HostError`, counted as any answer is.
    async fn answer_after_panic(
        &self,
        token: &str,
        task: &ActivityTask,
        served: bool,
        counts: &TaskListMetrics,
        started: Instant,
        message: &str,
    ) {
        tracing::error!(
            panic = message,
            "the host panicked while handling the task (a bug in swasm: please report it with this log); answering it failed {}",
            reason::HOST_ERROR
        );
        let outcome = limit(Outcome::failed(
            reason::HOST_ERROR,
            format!(
                "the host panicked while handling the task (a bug in swasm; its log has the panic): {message}"
            ),
        ));
        let answer = self
            .respond(token, &task.task_list, &outcome, started)
            .await;
        self.count_answer(task, served, &outcome, answer, started, counts);
    }

    async fn handle_inner(
        self: Arc<Self>,
        token: &str,
        task: Arc<ActivityTask>,
        runner: Option<Arc<dyn Runner>>,
        counts: &TaskListMetrics,
        started: Instant,
        answering: &AtomicBool,
    ) {
        counts.started.inc();
        let guard = Arc::new(self.metrics.track(task.clone()));
        tracing::info!("task started");

        let served = runner.is_some();
        let outcome = match runner {
            None => unknown_type(&task, self.activities.served(&task.task_list)),
            Some(runner) => {
                let settings = self.config.settings_for(&task.activity_type);
                let pump = HeartbeatPump::start(
                    self.swf.clone(),
                    self.policy.clone(),
                    self.metrics.clone(),
                    guard.clone(),
                    token.to_string(),
                    task.activity_type.clone(),
                    settings.heartbeat_interval_s,
                );
                // A backstop only: the runtime interrupts the guest at `timeout_s` itself.
                let backstop = Duration::from_secs(settings.timeout_s) + Duration::from_secs(30);
                let run = self.guests.run(runner.run(
                    ActivityTask::clone(&task),
                    settings,
                    Arc::new(pump.handle()),
                ));
                // Biased: an outcome ready when the grace or the backstop ends counts; a
                // random pick would throw a finished task's result away, and its workflow
                // would schedule work again that was done.
                let outcome = tokio::select! {
                    biased;
                    outcome = run => outcome,
                    _ = self.shutdown.task_over(started) => {
                        tracing::warn!("shutdown grace period over: interrupting the task");
                        interrupted(pump.latest_details())
                    }
                    _ = tokio::time::sleep(backstop) => Outcome::failed(reason::TIMEOUT, format!("the task ran past timeout_s + 30 s ({backstop:?})")),
                };
                let outcome = with_checkpoint(outcome, || pump.latest_details());
                let end = if self.shutdown.is_task_over(started) {
                    // Past its grace: the last details are not worth holding up the exit.
                    tokio::time::timeout(FLUSH_AFTER_GRACE, pump.finish())
                        .await
                        .unwrap_or(HeartbeatEnd {
                            gone: false,
                            cancel_requested: false,
                        })
                } else {
                    pump.finish().await
                };
                if end.gone {
                    tracing::warn!(
                        outcome = outcome.kind(),
                        "dropping the response: SWF no longer knows this task"
                    );
                    counts.dropped.inc();
                    return;
                }
                outcome
            }
        };
        let mut outcome = limit(outcome);
        answering.store(true, Ordering::Relaxed);
        let mut answer = self
            .respond(token, &task.task_list, &outcome, started)
            .await;
        if let Answer::Refused(why) = answer {
            // The work is lost either way; the workflow learns it now, and why, instead of
            // at the task's timeout.
            tracing::error!(error = %why, "SWF refused the response; answering that the task failed instead");
            outcome = limit(Outcome::failed(
                reason::ANSWER_REFUSED,
                format!("SWF refused the host's answer ({}): {why}", outcome.kind()),
            ));
            answer = self
                .respond(token, &task.task_list, &outcome, started)
                .await;
        }
        self.count_answer(&task, served, &outcome, answer, started, counts);
    }

    /// Counts and logs what became of a task's answer (`served`: a plugin serves its type).
    fn count_answer(
        &self,
        task: &ActivityTask,
        served: bool,
        outcome: &Outcome,
        answer: Answer,
        started: Instant,
        counts: &TaskListMetrics,
    ) {
        if let Answer::Refused(why) = &answer {
            tracing::error!(error = %why, "SWF rejected the response");
        }
        let elapsed = started.elapsed();
        counts.duration.observe(elapsed.as_secs_f64());
        let unanswered = match answer {
            Answer::Taken => None,
            Answer::Unconfirmed => Some(&counts.unconfirmed),
            Answer::Dropped | Answer::Refused(_) => Some(&counts.dropped),
        };
        if let Some(counter) = unanswered {
            counter.inc();
            return;
        }
        if served {
            self.metrics.count_activity(
                &task.task_list,
                &task.activity_type,
                outcome.kind(),
                elapsed,
            );
        }
        // A number, so log tools can sum and sort it.
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        match outcome {
            Outcome::Completed(_) => {
                counts.completed.inc();
                tracing::info!(elapsed_ms, "task completed");
            }
            Outcome::Failed { reason, details } => {
                self.metrics.count_failed(&task.task_list, reason);
                let details = details.as_deref().unwrap_or("");
                // The log gets the start of long details; SWF's history has them whole.
                let logged = match truncate_chars(details, LOGGED_DETAILS) {
                    Some(cut) => std::borrow::Cow::Owned(format!(
                        "{cut}… ({} characters, whole in the task's history)",
                        details.chars().count()
                    )),
                    None => std::borrow::Cow::Borrowed(details),
                };
                tracing::info!(elapsed_ms, %reason, details = %logged, "task failed");
            }
            Outcome::Canceled(_) => {
                counts.canceled.inc();
                tracing::info!(elapsed_ms, "task canceled");
            }
        }
    }

    /// Sends the answer, retrying throttling, 5xx and connection errors with backoff, and
    /// OperationNotPermitted too: a missing IAM action, or a policy still propagating after
    /// a deploy, must not discard a finished result. Retries end when SWF says the task is
    /// gone (it timed out meanwhile) or, once the worker is stopping, [`ANSWER_AFTER_GRACE`]
    /// after the task's grace.
    async fn respond(
        &self,
        token: &str,
        task_list: &str,
        outcome: &Outcome,
        started: Instant,
    ) -> Answer {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        // An attempt that timed out, lost its connection or got a 5xx may have been taken.
        let mut maybe_taken = false;
        // A retry is logged at warn (IAM refusals at error) when its kind of error is new
        // for this answer, else at debug: 64 tasks retrying through an outage must not
        // flood the log, and throttling first must not hide an IAM refusal after it. The
        // retries are counted in respond_retries_total and swf_errors_total.
        let mut logged: Option<&'static str> = None;
        loop {
            let call = async {
                match outcome {
                    Outcome::Completed(r) => self.swf.complete(token, r.as_deref()).await,
                    Outcome::Failed { reason, details } => {
                        self.swf.fail(token, reason, details.as_deref()).await
                    }
                    Outcome::Canceled(d) => self.swf.cancel(token, d.as_deref()).await,
                }
            };
            // An attempt cut off in flight may have been taken as well.
            let Some(result) = self.unless_given_up(started, call).await else {
                return Answer::Unconfirmed;
            };
            if let Err(e) = &result {
                self.metrics.count_swf_error(task_list, SwfCall::Answer, e);
            }
            match result {
                Ok(()) => return Answer::Taken,
                Err(SwfError::TaskGone(msg)) if maybe_taken => {
                    tracing::warn!(%msg, "SWF no longer knows this task: an earlier attempt of this answer, cut off without a reply, was probably taken (or the task timed out, was canceled or its workflow closed meanwhile)");
                    return Answer::Unconfirmed;
                }
                Err(SwfError::TaskGone(msg)) => {
                    tracing::warn!(%msg, "response dropped: SWF no longer knows this task (timed out, canceled or workflow closed)");
                    return Answer::Dropped;
                }
                Err(SwfError::Validation(msg)) => return Answer::Refused(msg),
                Err(e) if e.is_retryable() || matches!(e, SwfError::NotPermitted(_)) => {
                    maybe_taken |= matches!(e, SwfError::Unavailable(_));
                    self.metrics.respond_retries.inc();
                    let wait = backoff.next_wait();
                    let new_kind = logged.replace(e.kind()) != Some(e.kind());
                    match (&e, new_kind) {
                        (SwfError::NotPermitted(_), true) => {
                            tracing::error!(error = %e, "SWF refuses this identity the response (IAM: swf:RespondActivityTask*); retrying with backoff until it is allowed or the task times out")
                        }
                        (_, true) => {
                            tracing::warn!(error = %e, "response not accepted; retrying with backoff")
                        }
                        (_, false) => {
                            tracing::debug!(error = %e, "response not accepted; retrying in {wait:?}")
                        }
                    }
                    if self
                        .unless_given_up(started, tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return if maybe_taken {
                            Answer::Unconfirmed
                        } else {
                            Answer::Dropped
                        };
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "SWF rejected the response");
                    return Answer::Dropped;
                }
            }
        }
    }

    /// Runs `step` of answering the task that started at `started`, unless the worker is
    /// stopping and the answer's time after the task's grace runs out first (`None`).
    async fn unless_given_up<T>(
        &self,
        started: Instant,
        step: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            // A step done by the deadline counts: an answer SWF has replied to is not
            // given up (and called unconfirmed) for the deadline it met at the same time.
            biased;
            out = step => Some(out),
            _ = self.shutdown.task_over_by(started, ANSWER_AFTER_GRACE) => {
                tracing::error!("giving up on the response: the worker is shutting down and this task's grace is over");
                None
            }
        }
    }
}

/// What became of an answer.
enum Answer {
    Taken,
    /// Not taken, and nothing more to try (the task is gone, or the worker gave up).
    Dropped,
    /// Perhaps taken, never confirmed: an attempt ended without a reply (timeout, lost
    /// connection, 5xx, or cut off by the worker's stop), and no later one was taken (SWF
    /// no longer knows the task, or the worker gave up).
    Unconfirmed,
    /// SWF refused the request itself (ValidationException), with why.
    Refused(String),
}

/// The answer for a task the shutdown interrupted: its latest heartbeat details, the
/// guest's checkpoint, as SWF gives them with a heartbeat timeout, so the decider can
/// schedule the task again from there.
fn interrupted(checkpoint: Option<String>) -> Outcome {
    let details = checkpoint.unwrap_or_else(|| {
        "the worker shut down before the task finished; it can be retried at once".to_string()
    });
    Outcome::failed(reason::SHUTDOWN, details)
}

/// The line before the checkpoint in a failure's details ([`with_checkpoint`]).
pub const CHECKPOINT_HEADER: &str = "latest heartbeat details:";

/// How much of a failure's details a log line carries.
const LOGGED_DETAILS: usize = 1024;

/// A task the host ended (past `timeout_s`, a trap, its memory limit) keeps the guest's
/// latest heartbeat details, its checkpoint, as the last lines of the failure details,
/// after a line [`CHECKPOINT_HEADER`], so the decider can schedule it again from there, as
/// with `swasm.Shutdown` and SWF's own heartbeat timeouts. The details before it are cut
/// if both would pass SWF's limit. `checkpoint` is read only for such a failure.
fn with_checkpoint(outcome: Outcome, checkpoint: impl FnOnce() -> Option<String>) -> Outcome {
    match outcome {
        Outcome::Failed { reason, details }
            if [
                reason::TIMEOUT,
                reason::TRAP,
                reason::MEMORY_LIMIT,
                reason::HOST_ERROR,
            ]
            .contains(&reason.as_str()) =>
        {
            let Some(checkpoint) = checkpoint() else {
                return Outcome::Failed { reason, details };
            };
            let tail = format!("\n\n{CHECKPOINT_HEADER}\n{checkpoint}");
            let mut head = details.unwrap_or_default();
            let room = MAX_DETAILS.saturating_sub(tail.chars().count());
            if let Some(cut) = truncate_chars(&head, room) {
                head = cut.to_string();
            }
            Outcome::Failed {
                reason,
                details: Some(head + &tail),
            }
        }
        other => other,
    }
}

/// A panic's message, as the default hook prints it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The answer for a type this host has no plugin for.
fn unknown_type(task: &ActivityTask, served: Vec<ActivityType>) -> Outcome {
    let list = if served.is_empty() {
        "none".to_string()
    } else {
        served
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    tracing::warn!(served = %list, "no plugin for this activity type");
    Outcome::failed(
        reason::UNKNOWN_ACTIVITY_TYPE,
        format!(
            "no plugin for activity type {} on task list {:?}; this host serves: {list}",
            task.activity_type, task.task_list
        ),
    )
}

/// Applies SWF's size limits: an oversized result fails the task; reasons and details are
/// truncated with a warning.
pub fn limit(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Completed(Some(r)) if r.chars().count() > MAX_RESULT => {
            let n = r.chars().count();
            tracing::warn!(chars = n, "result too large for SWF");
            Outcome::failed(
                reason::RESULT_TOO_LARGE,
                format!("the result has {n} characters; SWF accepts at most {MAX_RESULT}"),
            )
        }
        Outcome::Failed { reason, details } => Outcome::Failed {
            reason: cut("failure reason", reason, MAX_REASON),
            details: details.map(|d| cut("failure details", d, MAX_DETAILS)),
        },
        Outcome::Canceled(Some(d)) => {
            Outcome::Canceled(Some(cut("cancel details", d, MAX_DETAILS)))
        }
        other => other,
    }
}

fn cut(what: &str, s: String, max: usize) -> String {
    match truncate_chars(&s, max) {
        Some(short) => {
            tracing::warn!(
                chars = s.chars().count(),
                "{what} truncated to {max} characters"
            );
            short.to_string()
        }
        None => s,
    }
}

/// A dispatcher for unit tests (here and the poller's): task list "tl" on `swf`, guest code
/// run inline, `grace` for the shutdown.
#[cfg(test)]
pub(crate) fn test_dispatcher(
    swf: Arc<dyn SwfClient>,
    activities: Arc<dyn Activities>,
    metrics: Arc<Metrics>,
    grace: Duration,
) -> Arc<Dispatcher> {
    let config = Config::parse(
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"p\"\n",
        std::path::Path::new("/tmp/swasm.toml"),
    )
    .unwrap();
    Arc::new(Dispatcher {
        policy: Arc::new(ThrottlePolicy::new(swf.clone())),
        swf,
        activities,
        config: Arc::new(config),
        metrics,
        shutdown: Shutdown::new(grace),
        guests: Arc::new(GuestThreads::inline()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::swf::testing::{FakeSwf, Response, task};

    struct Fixed(Outcome);
    impl Runner for Fixed {
        fn run(
            self: Arc<Self>,
            _t: ActivityTask,
            _s: Arc<ActivitySettings>,
            hb: HeartbeatHandle,
        ) -> BoxFuture<'static, Outcome> {
            Box::pin(async move {
                hb.beat(Some("working".into()));
                self.0.clone()
            })
        }
    }
    /// Never beats (so errors queued in the fake reach the answer); runs for its time, then
    /// answers its outcome, or runs until dropped if it has none.
    struct Silent(Duration, Option<Outcome>);
    impl Runner for Silent {
        fn run(
            self: Arc<Self>,
            _t: ActivityTask,
            _s: Arc<ActivitySettings>,
            _hb: HeartbeatHandle,
        ) -> BoxFuture<'static, Outcome> {
            Box::pin(async move {
                if !self.0.is_zero() {
                    tokio::time::sleep(self.0).await;
                }
                match self.1.clone() {
                    Some(outcome) => outcome,
                    None => futures::future::pending().await,
                }
            })
        }
    }
    /// Completes with "ok".
    fn quiet() -> Arc<dyn Runner> {
        Arc::new(Silent(
            Duration::ZERO,
            Some(Outcome::Completed(Some("ok".into()))),
        ))
    }
    /// Runs until dropped.
    fn forever() -> Arc<dyn Runner> {
        Arc::new(Silent(Duration::ZERO, None))
    }

    struct Table(HashMap<String, Arc<dyn Runner>>);
    impl Activities for Table {
        fn lookup(&self, _tl: &str, ty: &ActivityType) -> Option<Arc<dyn Runner>> {
            self.0.get(&ty.to_string()).cloned()
        }
        fn served(&self, _tl: &str) -> Vec<ActivityType> {
            let mut v: Vec<_> = self
                .0
                .keys()
                .filter_map(|k| ActivityType::parse(k))
                .collect();
            v.sort();
            v
        }
    }

    fn dispatcher(fake: &Arc<FakeSwf>, table: Vec<(&str, Arc<dyn Runner>)>) -> Arc<Dispatcher> {
        dispatcher_with_grace(fake, table, Duration::ZERO)
    }

    fn dispatcher_with_grace(
        fake: &Arc<FakeSwf>,
        table: Vec<(&str, Arc<dyn Runner>)>,
        grace: Duration,
    ) -> Arc<Dispatcher> {
        let table = table.into_iter().map(|(k, v)| (k.to_string(), v));
        test_dispatcher(
            fake.clone(),
            Arc::new(Table(table.collect())),
            Arc::new(Metrics::new()),
            grace,
        )
    }

    /// Handles one task of type `name@1` on task list "tl".
    async fn handle(d: &Arc<Dispatcher>, name: &str) {
        let counts = d.metrics.task_list("tl");
        d.clone().handle(polled(name), &counts).await
    }

    fn polled(name: &str) -> PolledTask {
        PolledTask {
            token: format!("tok-{name}"),
            task: task("a1", name, "1"),
        }
    }

    /// Panics before its run exists: a bug in the host, not the guest's doing.
    struct Panics;
    impl Runner for Panics {
        fn run(
            self: Arc<Self>,
            _t: ActivityTask,
            _s: Arc<ActivitySettings>,
            _hb: HeartbeatHandle,
        ) -> BoxFuture<'static, Outcome> {
            panic!("a bug in the host")
        }
    }

    /// A panic while the host handles a task fails the task `swasm.HostError` at once,
    /// instead of leaving its workflow to wait for the task's timeout, and the task leaves
    /// `/status`.
    #[tokio::test]
    async fn a_panic_while_handling_a_task_fails_it_at_once() {
        let fake = Arc::new(FakeSwf::default());
        let d = dispatcher(&fake, vec![("bug@1", Arc::new(Panics))]);
        handle(&d, "bug").await;
        let r = fake.responses();
        let [(token, Response::Failed(reason, Some(details)))] = &r[..] else {
            panic!("{r:?}")
        };
        assert_eq!(
            (token.as_str(), reason.as_str()),
            ("tok-bug", "swasm.HostError")
        );
        assert!(details.contains("a bug in the host"), "{details}");
        // Counted as any answer: by reason, by type, and its run time.
        let text = d.metrics.encode();
        for series in [
            r#"swasm_tasks_failed_total{task_list="tl",reason="swasm.HostError"} 1"#,
            r#"swasm_activity_tasks_total{task_list="tl",activity_type="bug@1",outcome="failed"} 1"#,
            r#"swasm_task_duration_seconds_count{task_list="tl"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        assert!(d.metrics.in_flight().is_empty());
    }

    #[tokio::test]
    async fn unknown_type_lists_served_types() {
        let fake = Arc::new(FakeSwf::default());
        let d = dispatcher(
            &fake,
            vec![
                ("echo@1", Arc::new(Fixed(Outcome::Completed(None)))),
                ("b@2", forever()),
            ],
        );
        handle(&d, "nope").await;
        handle(&d, "echo").await;
        let r = fake.responses();
        let (_, Response::Failed(reason, Some(details))) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(reason, "swasm.UnknownActivityType");
        assert!(details.contains("b@2, echo@1"), "{details}");
        // A type no plugin serves gets no series of its own; a served one does.
        let text = d.metrics.encode();
        assert!(!text.contains("nope"), "{text}");
        assert!(
            text.contains(
                r#"swasm_activity_tasks_total{task_list="tl",activity_type="echo@1",outcome="completed"} 1"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn oversized_result_fails_and_long_reason_is_cut() {
        let fake = Arc::new(FakeSwf::default());
        let big = "x".repeat(MAX_RESULT + 1);
        let d = dispatcher(
            &fake,
            vec![
                ("big@1", Arc::new(Fixed(Outcome::Completed(Some(big))))),
                (
                    "bad@1",
                    Arc::new(Fixed(Outcome::failed("r".repeat(300), "d".repeat(40000)))),
                ),
            ],
        );
        handle(&d, "big").await;
        handle(&d, "bad").await;
        let r = fake.responses();
        assert!(matches!(&r[0].1, Response::Failed(reason, _) if reason == "swasm.ResultTooLarge"));
        let Response::Failed(reason, Some(details)) = &r[1].1 else {
            panic!()
        };
        assert_eq!((reason.len(), details.len()), (MAX_REASON, MAX_DETAILS));
    }

    #[tokio::test(start_paused = true)]
    async fn responses_are_retried_until_accepted() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next.lock().unwrap().extend([
            SwfError::Unavailable("503".into()),
            SwfError::Throttled("slow down".into()),
        ]);
        // No heartbeats in this runner's path before the response consumes the errors.
        let d = dispatcher(&fake, vec![("echo@1", quiet())]);
        handle(&d, "echo").await;
        assert_eq!(
            fake.responses(),
            vec![("tok-echo".into(), Response::Completed(Some("ok".into())))]
        );
        assert_eq!(d.metrics.respond_retries.get(), 2);
        // Each error under its kind, for alerts that page on some kinds only.
        let text = d.metrics.encode();
        for kind in ["unavailable", "throttled"] {
            let line = format!(
                "swasm_swf_errors_total{{task_list=\"tl\",call=\"answer\",kind=\"{kind}\"}} 1"
            );
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
    }

    /// An answer SWF refuses as invalid (a limit counted otherwise than the host counts it,
    /// say) is not left to time out: the task is failed with SWF's reason. A refused
    /// fallback is not tried again.
    #[tokio::test(start_paused = true)]
    async fn a_refused_answer_fails_the_task_with_why() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next
            .lock()
            .unwrap()
            .push_back(SwfError::Validation("result: too long".into()));
        let d = dispatcher(&fake, vec![("echo@1", quiet())]);
        handle(&d, "echo").await;
        let r = fake.responses();
        let [(_, Response::Failed(reason, Some(details)))] = &r[..] else {
            panic!("{r:?}")
        };
        assert_eq!(reason, reason::ANSWER_REFUSED);
        assert_eq!(
            details,
            "SWF refused the host's answer (completed): result: too long"
        );
        assert_eq!(fake.answer_attempts(), 2);

        fake.fail_next.lock().unwrap().extend([
            SwfError::Validation("first".into()),
            SwfError::Validation("second".into()),
        ]);
        handle(&d, "echo").await;
        assert_eq!(fake.answer_attempts(), 4, "the fallback is tried once");
        assert_eq!(fake.responses().len(), 1);
    }

    /// Beats with each of its details in turn, a second apart, then runs until dropped.
    struct Checkpoints(Vec<&'static str>);
    impl Runner for Checkpoints {
        fn run(
            self: Arc<Self>,
            _t: ActivityTask,
            _s: Arc<ActivitySettings>,
            hb: HeartbeatHandle,
        ) -> BoxFuture<'static, Outcome> {
            Box::pin(async move {
                for details in &self.0 {
                    hb.beat(Some(details.to_string()));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                futures::future::pending().await
            })
        }
    }

    /// A task interrupted by the shutdown is failed with the guest's latest heartbeat
    /// details, its checkpoint, whether they were recorded yet or still waiting for the
    /// throttle; a guest that never gave any gets a sentence saying what happened.
    #[tokio::test(start_paused = true)]
    async fn a_task_interrupted_by_the_shutdown_fails_with_its_checkpoint() {
        for (beats, expected) in [
            (vec!["step 1"], "step 1"),
            (vec!["step 1", "step 2"], "step 2"),
            (vec![], "the worker shut down before the task finished"),
        ] {
            let fake = Arc::new(FakeSwf::default());
            let runner: Arc<dyn Runner> = Arc::new(Checkpoints(beats.clone()));
            let d = dispatcher(&fake, vec![("work@1", runner)]);
            let h = tokio::spawn({
                let d = d.clone();
                async move { handle(&d, "work").await }
            });
            if !beats.is_empty() {
                fake.wait_heartbeats(1).await;
            }
            // Past the beats, within the first throttle interval: "step 2" is not sent yet.
            tokio::time::sleep(Duration::from_millis(beats.len() as u64 * 1000 + 500)).await;
            assert!(fake.heartbeat_details().len() <= 1);
            d.shutdown.initiate();
            h.await.unwrap();
            let r = fake.responses();
            let [(_, Response::Failed(reason, Some(details)))] = &r[..] else {
                panic!("{r:?}")
            };
            assert_eq!(reason, reason::SHUTDOWN);
            assert!(details.starts_with(expected), "{details}");
        }
    }

    /// A task the host ended (timeout, trap, memory limit, its own panic) keeps the guest's latest heartbeat
    /// details at the end of its failure details, within SWF's limit; a failure the guest
    /// chose is sent as the guest wrote it.
    #[tokio::test(start_paused = true)]
    async fn a_task_the_host_ends_keeps_its_checkpoint() {
        let tail = format!("\n\n{CHECKPOINT_HEADER}\nworking");
        for (outcome, kept) in [
            (
                Outcome::failed(reason::TIMEOUT, "ran past timeout_s".to_string()),
                true,
            ),
            (
                Outcome::failed(reason::MEMORY_LIMIT, "grew past memory_mb".to_string()),
                true,
            ),
            (Outcome::failed(reason::TRAP, "x".repeat(MAX_DETAILS)), true),
            (
                Outcome::failed(
                    reason::HOST_ERROR,
                    "a panic on the guest thread".to_string(),
                ),
                true,
            ),
            (
                Outcome::failed("BadInput", "the guest's own words".to_string()),
                false,
            ),
        ] {
            let fake = Arc::new(FakeSwf::default());
            let Outcome::Failed {
                details: Some(sent),
                ..
            } = &outcome
            else {
                unreachable!()
            };
            let sent = sent.clone();
            let d = dispatcher(&fake, vec![("work@1", Arc::new(Fixed(outcome)))]);
            handle(&d, "work").await;
            let r = fake.responses();
            let [(_, Response::Failed(_, Some(details)))] = &r[..] else {
                panic!("{r:?}")
            };
            if kept {
                assert!(details.ends_with(&tail), "{details}");
                assert!(details.chars().count() <= MAX_DETAILS);
                let head = &details[..details.len() - tail.len()];
                assert!(sent.starts_with(head) && !head.is_empty(), "{head}");
            } else {
                assert_eq!(details, &sent);
            }
        }
    }

    /// A task that finishes at the very instant its shutdown grace ends is answered with its
    /// result, every time: the work is done, and failing it would have its workflow schedule
    /// it again.
    #[tokio::test(start_paused = true)]
    async fn a_result_ready_when_the_grace_ends_is_kept() {
        let grace = Duration::from_secs(10);
        for _ in 0..32 {
            let fake = Arc::new(FakeSwf::default());
            let done = Silent(grace, Some(Outcome::Completed(Some("done".into()))));
            let d = dispatcher_with_grace(&fake, vec![("work@1", Arc::new(done))], grace);
            d.shutdown.initiate();
            handle(&d, "work").await;
            let r = fake.responses();
            assert!(
                matches!(&r[..], [(_, Response::Completed(Some(result)))] if result == "done"),
                "{r:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abort_answers_shutdown() {
        let fake = Arc::new(FakeSwf::default());
        let d = dispatcher(&fake, vec![("spin@1", forever())]);
        let h = tokio::spawn({
            let d = d.clone();
            async move { handle(&d, "spin").await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The test dispatcher's grace is zero: the running task is over at once.
        d.shutdown.initiate();
        h.await.unwrap();
        assert!(matches!(&fake.responses()[0].1, Response::Failed(r, _) if r == "swasm.Shutdown"));
    }

    /// After its grace, a task's answer gets [`ANSWER_AFTER_GRACE`]: a call that hangs is
    /// given up at that deadline, not after its own attempt timeouts.
    #[tokio::test(start_paused = true)]
    async fn a_hung_answer_after_the_grace_is_given_up_in_time() {
        let fake = Arc::new(FakeSwf::default());
        fake.answers_hang
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let d = dispatcher(&fake, vec![("spin@1", forever())]);
        let h = tokio::spawn({
            let d = d.clone();
            async move { handle(&d, "spin").await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped = tokio::time::Instant::now();
        // The test dispatcher's grace is zero: the running task is over at once.
        d.shutdown.initiate();
        tokio::time::timeout(Duration::from_secs(600), h)
            .await
            .expect("the answer was not given up")
            .unwrap();
        assert_eq!(stopped.elapsed(), ANSWER_AFTER_GRACE, "on paused time");
        assert!(fake.responses().is_empty());
        // Cut off in flight: it may have been taken.
        let counts = d.metrics.task_list("tl");
        assert_eq!((counts.unconfirmed.get(), counts.dropped.get()), (1, 0));
    }

    /// Handles one echo task with `grace`, begins the shutdown once its answer was first
    /// tried, and returns how long the task then took to end (paused time).
    async fn stop_while_answering(fake: &Arc<FakeSwf>, grace: Duration) -> Duration {
        let d = dispatcher_with_grace(fake, vec![("echo@1", quiet())], grace);
        let h = tokio::spawn({
            let d = d.clone();
            async move { handle(&d, "echo").await }
        });
        fake.wait_answer_attempts(1).await;
        let stopped = tokio::time::Instant::now();
        d.shutdown.initiate();
        tokio::time::timeout(Duration::from_secs(3600), h)
            .await
            .expect("the answer was never given up")
            .unwrap();
        stopped.elapsed()
    }

    /// An answer already in flight when the shutdown begins, to an endpoint that hangs, is
    /// given up [`ANSWER_AFTER_GRACE`] after the task's grace too: the stop timeout README
    /// gives (grace + 80 s) holds whatever the answer was doing when the grace ended.
    #[tokio::test(start_paused = true)]
    async fn an_answer_in_flight_when_the_grace_ends_is_given_up_in_time() {
        let fake = Arc::new(FakeSwf::default());
        fake.answers_hang
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let grace = Duration::from_secs(30);
        let took = stop_while_answering(&fake, grace).await;
        assert_eq!(took, grace + ANSWER_AFTER_GRACE);
        assert!(fake.responses().is_empty());
    }

    /// The same for a pause between retries: an endpoint that keeps answering 503 does not
    /// keep the task past the same deadline.
    #[tokio::test(start_paused = true)]
    async fn retries_of_an_answer_end_in_time_after_the_grace() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next
            .lock()
            .unwrap()
            .extend((0..1000).map(|_| SwfError::Unavailable("503".into())));
        let grace = Duration::from_secs(5);
        let took = stop_while_answering(&fake, grace).await;
        assert_eq!(took, grace + ANSWER_AFTER_GRACE);
        assert!(fake.responses().is_empty());
        assert!(fake.answer_attempts() > 3, "the answer was retried");
    }

    /// Given up between retries: unconfirmed if an attempt may have been taken (a 503),
    /// dropped if every attempt was refused unread (throttled).
    #[tokio::test(start_paused = true)]
    async fn an_answer_given_up_is_unconfirmed_only_if_an_attempt_may_have_been_taken() {
        for (error, unconfirmed) in [
            (SwfError::Unavailable("503".into()), 1),
            (SwfError::Throttled("slow down".into()), 0),
        ] {
            let fake = Arc::new(FakeSwf::default());
            fake.fail_next
                .lock()
                .unwrap()
                .extend((0..1000).map(|_| error.clone()));
            let d = dispatcher_with_grace(&fake, vec![("echo@1", quiet())], Duration::ZERO);
            let counts = d.metrics.task_list("tl");
            let h = tokio::spawn({
                let d = d.clone();
                async move { handle(&d, "echo").await }
            });
            fake.wait_answer_attempts(2).await;
            d.shutdown.initiate();
            h.await.unwrap();
            assert_eq!(
                (counts.unconfirmed.get(), counts.dropped.get()),
                (unconfirmed, 1 - unconfirmed),
                "{error:?}"
            );
        }
    }

    /// An answer whose attempt was cut off without a reply may have been taken: when the
    /// retry then finds the task gone, it is counted unconfirmed, not dropped. A task gone
    /// at the first attempt, or after throttling (which SWF did not act on), is dropped.
    #[tokio::test(start_paused = true)]
    async fn a_task_gone_after_a_cut_off_answer_is_unconfirmed_not_dropped() {
        let fake = Arc::new(FakeSwf::default());
        let d = dispatcher(&fake, vec![("echo@1", quiet())]);
        let counts = d.metrics.task_list("tl");
        let gone = || SwfError::TaskGone("Unknown activity".into());
        for (errors, unconfirmed, dropped) in [
            (
                vec![SwfError::Unavailable("timed out".into()), gone()],
                1,
                0,
            ),
            (vec![gone()], 1, 1),
            (vec![SwfError::Throttled("slow down".into()), gone()], 1, 2),
        ] {
            fake.fail_next.lock().unwrap().extend(errors);
            handle(&d, "echo").await;
            assert_eq!(
                (counts.unconfirmed.get(), counts.dropped.get()),
                (unconfirmed, dropped)
            );
        }
        assert!(fake.responses().is_empty());
        assert_eq!(counts.completed.get(), 0);
    }

    #[tokio::test]
    async fn gone_task_is_not_answered() {
        let fake = Arc::new(FakeSwf::default());
        fake.gone.store(true, std::sync::atomic::Ordering::Relaxed);
        let d = dispatcher(
            &fake,
            vec![("echo@1", Arc::new(Fixed(Outcome::Completed(None))))],
        );
        handle(&d, "echo").await;
        assert!(fake.responses().is_empty());
    }
}
