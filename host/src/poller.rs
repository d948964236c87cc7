//! Long polls of one task list: slot permit first, then PollForActivityTask, then dispatch.
//!
//! Taking the permit before polling means the host never pulls a task it has no room to run
//! (a polled task would otherwise sit in memory while its timeouts run at SWF). Shutdown is
//! raced only against waiting for a permit and against backoff sleeps, never against a poll
//! already sent: a poll in flight may carry a task, and aborting it would lose that task on
//! the wire until its schedule-to-start timeout fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::dispatch::Dispatcher;
use crate::metrics::{Metrics, SwfCall, TaskListMetrics};
use crate::swf::{Backoff, SwfError};

pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What the pollers of one task list share.
pub struct TaskList {
    pub name: String,
    /// `max_concurrent` permits; a running task holds one.
    pub slots: Arc<Semaphore>,
    /// Consecutive poll errors across this list's pollers, so a streak is logged once.
    error_streak: AtomicU64,
    /// The kind of error the streak's last log line named ([`SwfError::kind`]): a streak
    /// whose cause changes (the endpoint is back, but the domain is gone) is logged again.
    streak_kind: std::sync::Mutex<&'static str>,
    pub metrics: TaskListMetrics,
}

impl TaskList {
    pub fn new(name: &str, max_concurrent: usize, metrics: &Metrics) -> Arc<TaskList> {
        Arc::new(TaskList {
            name: name.to_string(),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            error_streak: AtomicU64::new(0),
            streak_kind: std::sync::Mutex::new(""),
            metrics: metrics.add_task_list(name, max_concurrent),
        })
    }
}

/// A running task's slot: its permit and its count in `slots_in_use`, given back together
/// however the task's handler ends (a panic included), so the gauge cannot drift.
struct Slot {
    _permit: OwnedSemaphorePermit,
    list: Arc<TaskList>,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, list: Arc<TaskList>) -> Slot {
        list.metrics.slots_in_use.inc();
        Slot {
            _permit: permit,
            list,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.list.metrics.slots_in_use.dec();
    }
}

/// The `count` pollers of one task list, kept at `count` until shutdown: a poller that
/// panics (a bug; nothing in its path is meant to) is logged, counted
/// (`swasm_poller_panics_total`) and replaced after a backoff, so the list does not go on
/// with fewer pollers, or none, unseen until shutdown. Returns once shutdown began and
/// every poller returned.
pub async fn run_pollers(
    dispatcher: Arc<Dispatcher>,
    list: Arc<TaskList>,
    count: usize,
    tracker: TaskTracker,
) {
    let shutdown = dispatcher.shutdown.clone();
    let start = || run_poller(dispatcher.clone(), list.clone(), tracker.clone());
    let mut pollers = JoinSet::new();
    for _ in 0..count {
        pollers.spawn(start());
    }
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut last_panic: Option<tokio::time::Instant> = None;
    while let Some(ended) = pollers.join_next().await {
        // A poller returns only once shutdown began.
        let Err(e) = ended else { continue };
        list.metrics.poller_panics.inc();
        if shutdown.is_stopping() {
            tracing::error!(task_list = %list.name, error = %e, "a poller panicked while shutting down");
            continue;
        }
        // Panics in a row back off further; one long after the last starts again at the
        // shortest wait.
        if last_panic.is_some_and(|at| at.elapsed() > BACKOFF_MAX * 2) {
            backoff.reset();
        }
        last_panic = Some(tokio::time::Instant::now());
        let wait = backoff.next_wait();
        tracing::error!(
            task_list = %list.name,
            error = %e,
            "a poller of task list {:?} panicked (a bug in swasm: please report it with this log); a new one polls in {wait:?}",
            list.name,
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => { pollers.spawn(start()); }
            _ = shutdown.stopping() => {}
        }
    }
}

/// One poller; [`run_pollers`] runs `pollers` of them per task list. Dispatched tasks are
/// spawned on `tracker` so shutdown can wait for them. Returns when shutdown begins.
pub async fn run_poller(dispatcher: Arc<Dispatcher>, list: Arc<TaskList>, tracker: TaskTracker) {
    let shutdown = dispatcher.shutdown.clone();
    let metrics = dispatcher.metrics.clone();
    let counts = &list.metrics;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.stopping() => break,
            permit = list.slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
        };
        if shutdown.is_stopping() {
            break;
        }
        match dispatcher.swf.poll(&list.name).await {
            Ok(polled) => {
                metrics.poll_outcome(&list.name, true);
                backoff.reset();
                let errors = list.error_streak.swap(0, Ordering::Relaxed);
                if errors > 0 {
                    *list.streak_kind.lock().expect("streak kind lock") = "";
                    tracing::info!(task_list = %list.name, errors, "polling works again");
                }
                let Some(polled) = polled else {
                    counts.polls_empty.inc();
                    continue;
                };
                counts.polls_task.inc();
                let slot = Slot::take(permit, list.clone());
                let d = dispatcher.clone();
                tracker.spawn(async move {
                    d.handle(polled, &slot.list.metrics).await;
                    drop(slot);
                });
            }
            Err(e) => {
                drop(permit);
                counts.polls_error.inc();
                if shutdown.is_stopping() {
                    // The poll was cut short while shutting down: it brought no task, so
                    // nothing is lost and there is no streak worth an error line.
                    tracing::debug!(task_list = %list.name, error = %e, "poll ended during shutdown");
                    break;
                }
                // Not the poll cut short above: a stopping host's own doing, not SWF's.
                metrics.count_swf_error(&list.name, SwfCall::Poll, &e);
                // Throttling and a reached poller limit are the account's or the fleet's
                // state, and polls go on; anything else (down, credentials, IAM, no such
                // domain) means this host polls nothing on this list, and a rolling deploy
                // must not take it as the replacement of a host that did.
                if !matches!(e, SwfError::Throttled(_) | SwfError::LimitExceeded(_)) {
                    metrics.poll_outcome(&list.name, false);
                }
                let first = list.error_streak.fetch_add(1, Ordering::Relaxed) == 0;
                let changed = {
                    let mut kind = list.streak_kind.lock().expect("streak kind lock");
                    std::mem::replace(&mut *kind, e.kind()) != e.kind()
                };
                if first || changed {
                    log_streak_start(&dispatcher.config.swf.domain, &list.name, &e);
                }
                let wait = backoff.next_wait();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.stopping() => break,
                }
            }
        }
    }
}

fn log_streak_start(domain: &str, task_list: &str, e: &SwfError) {
    let hint = match e {
        SwfError::NotPermitted(_) => {
            "check the IAM permissions (swf:PollForActivityTask) and that the domain is not deprecated"
        }
        SwfError::TaskGone(_) => {
            "the domain does not exist at this endpoint (register it, e.g. `swasm register` with register_domain = true)"
        }
        SwfError::Throttled(_) => "the account's PollForActivityTask quota is exhausted",
        SwfError::LimitExceeded(_) => {
            "SWF takes at most 1,000 pollers on a task list, all hosts together: fewer pollers or fewer hosts on it"
        }
        SwfError::Unavailable(_) => "the endpoint cannot be reached or answers 5xx",
        SwfError::NoCredentials(_) => {
            "the standard AWS chain found no credentials (AWS_ACCESS_KEY_ID, a profile, SSO, web identity, a container or instance role)"
        }
        SwfError::CredentialsRefused(_) => {
            "SWF refused the credentials (an expired session token, an unknown access key, or this machine's clock is off); keys rotated in a profile file are read again within a minute; keys in the environment need a restart of swasm"
        }
        // Named by the error itself.
        _ => "see the error",
    };
    tracing::error!(
        %domain,
        %task_list,
        error = %e,
        "PollForActivityTask failed on domain {domain:?}, task list {task_list:?}: {hint}; retrying with backoff ({BACKOFF_MIN:?}..{BACKOFF_MAX:?}), logged once until a poll succeeds"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use futures::future::BoxFuture;

    use super::*;
    use crate::activity::{ActivityTask, ActivityType, HeartbeatHandle, Outcome};
    use crate::config::ActivitySettings;
    use crate::dispatch::{Activities, Runner};
    use crate::metrics::Metrics;
    use crate::swf::PolledTask;
    use crate::swf::testing::{FakeSwf, task};

    /// Runs until released.
    struct Gate(Arc<tokio::sync::Notify>);
    impl Runner for Gate {
        fn run(
            self: Arc<Self>,
            _t: ActivityTask,
            _s: Arc<ActivitySettings>,
            _h: HeartbeatHandle,
        ) -> BoxFuture<'static, Outcome> {
            Box::pin(async move {
                self.0.notified().await;
                Outcome::Completed(None)
            })
        }
    }
    struct One(Arc<dyn Runner>);
    impl Activities for One {
        fn lookup(&self, _: &str, _: &ActivityType) -> Option<Arc<dyn Runner>> {
            Some(self.0.clone())
        }
        fn served(&self, _: &str) -> Vec<ActivityType> {
            vec![]
        }
    }

    fn dispatcher(fake: &Arc<FakeSwf>, runner: Arc<dyn Runner>) -> Arc<Dispatcher> {
        dispatcher_with(fake, runner, &Arc::new(Metrics::new()))
    }

    /// A dispatcher on `fake` that counts in `metrics` (shared by dispatchers of other
    /// task lists, each on an endpoint of its own), with a shutdown of its own.
    fn dispatcher_with(
        fake: &Arc<FakeSwf>,
        runner: Arc<dyn Runner>,
        metrics: &Arc<Metrics>,
    ) -> Arc<Dispatcher> {
        crate::dispatch::test_dispatcher(
            fake.clone(),
            Arc::new(One(runner)),
            metrics.clone(),
            Duration::ZERO,
        )
    }

    /// A host whose polls fail is not ready, whatever the failure, unless SWF throttles it or
    /// the task list's poller limit is reached: a poll refused by IAM (a policy that allows
    /// DescribeDomain only) must not let a rolling deploy stop the host it replaces.
    #[tokio::test(start_paused = true)]
    async fn failing_polls_clear_readiness_unless_throttled() {
        for (error, ready) in [
            (SwfError::NotPermitted("IAM".into()), false),
            (SwfError::TaskGone("no domain".into()), false),
            (SwfError::Other("HTTP 403".into()), false),
            (SwfError::Unavailable("down".into()), false),
            (SwfError::CredentialsRefused("expired".into()), false),
            (SwfError::Throttled("slow down".into()), true),
            (SwfError::LimitExceeded("1000 pollers".into()), true),
        ] {
            let fake = Arc::new(FakeSwf::default());
            fake.fail_next
                .lock()
                .unwrap()
                .extend(std::iter::repeat_n(error.clone(), 3));
            let d = dispatcher(&fake, Arc::new(Gate(Arc::new(tokio::sync::Notify::new()))));
            d.metrics.domain_answered();
            let list = TaskList::new("tl", 1, &d.metrics);
            let poller = tokio::spawn(run_poller(d.clone(), list, TaskTracker::new()));
            // The first failure was handled once the second poll is made.
            fake.wait_polls(2).await;
            assert_eq!(d.metrics.is_ready(), ready, "{error:?}");
            // Counted by kind, whether or not it costs readiness.
            let errors = d
                .metrics
                .swf_errors
                .get_or_create(&crate::metrics::SwfErrorLabels {
                    task_list: "tl".into(),
                    call: "poll",
                    kind: error.kind(),
                })
                .get();
            assert!(errors >= 1, "{error:?}: {}", d.metrics.encode());
            d.shutdown.initiate();
            poller.await.unwrap();
        }
    }

    /// Readiness is per task list: with one list refused by IAM and another polled fine,
    /// the host stays not ready (it used to turn ready at each good poll and not ready at
    /// each refused one) until the refused list's polls succeed too; and it is not ready
    /// once it shuts down, with polls still fine.
    #[tokio::test(start_paused = true)]
    async fn readiness_needs_every_task_list_and_ends_with_the_shutdown() {
        let metrics = Arc::new(Metrics::new());
        let runner = Arc::new(Gate(Arc::new(tokio::sync::Notify::new())));
        let (good, bad) = (Arc::new(FakeSwf::default()), Arc::new(FakeSwf::default()));
        // The bad list is refused until the test clears its queue: its pace (backoff) never
        // decides what the test sees.
        bad.fail_next.lock().unwrap().extend(std::iter::repeat_n(
            SwfError::NotPermitted("IAM".into()),
            1000,
        ));
        let on_good = dispatcher_with(&good, runner.clone(), &metrics);
        let on_bad = dispatcher_with(&bad, runner, &metrics);
        metrics.watch_shutdown(on_good.shutdown.clone());
        let lists = [
            TaskList::new("good", 1, &metrics),
            TaskList::new("bad", 1, &metrics),
        ];
        assert!(!metrics.is_ready(), "ready before the endpoint answered");
        // DescribeDomain answered: it counts for every list until its polls say more.
        metrics.domain_answered();
        assert!(metrics.is_ready());
        let ready_line = |list: &str| {
            let text = metrics.encode();
            let prefix = format!("swasm_ready{{task_list=\"{list}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        };

        let pollers = [
            tokio::spawn(run_poller(
                on_good.clone(),
                lists[0].clone(),
                TaskTracker::new(),
            )),
            tokio::spawn(run_poller(
                on_bad.clone(),
                lists[1].clone(),
                TaskTracker::new(),
            )),
        ];
        // The first refusal was handled once the second poll is made.
        bad.wait_polls(2).await;
        for _ in 0..3 {
            // The good list's polls go on meanwhile, and change nothing.
            let polled = good.polls.load(Ordering::Relaxed);
            good.wait_polls(polled + 2).await;
            assert!(
                !metrics.is_ready(),
                "a good poll on another list made it ready"
            );
            assert_eq!([ready_line("good"), ready_line("bad")], ["1", "0"]);
        }
        // The refusals are over: the first poll after that succeeded once another is made.
        bad.fail_next.lock().unwrap().clear();
        let polled = bad.polls.load(Ordering::Relaxed);
        bad.wait_polls(polled + 2).await;
        assert!(metrics.is_ready());
        assert_eq!(ready_line("bad"), "1");

        on_good.shutdown.initiate();
        assert!(!metrics.is_ready(), "ready while shutting down");
        assert_eq!([ready_line("good"), ready_line("bad")], ["0", "0"]);
        on_bad.shutdown.initiate();
        for poller in pollers {
            poller.await.unwrap();
        }
    }

    /// A poller that panics is replaced after a backoff: the task list keeps its two
    /// pollers, a queued task is served, and each panic is counted.
    #[tokio::test(start_paused = true)]
    async fn a_poller_that_panics_is_replaced() {
        let fake = Arc::new(FakeSwf::default());
        fake.polls_panic.store(3, Ordering::Relaxed);
        fake.tasks.lock().unwrap().push_back(PolledTask {
            token: "t0".into(),
            task: task("a0", "g", "1"),
        });
        let gate = Arc::new(tokio::sync::Notify::new());
        let d = dispatcher(&fake, Arc::new(Gate(gate.clone())));
        let list = TaskList::new("tl", 2, &d.metrics);
        let tracker = TaskTracker::new();
        let pollers = tokio::spawn(run_pollers(d.clone(), list.clone(), 2, tracker.clone()));
        // Lets the task finish whenever it is polled.
        gate.notify_one();
        tokio::time::timeout(Duration::from_secs(60), fake.wait_responses(1))
            .await
            .expect("the task was never served: no poller left");
        assert_eq!(list.metrics.poller_panics.get(), 3);
        assert!(
            d.metrics
                .encode()
                .contains("swasm_poller_panics_total{task_list=\"tl\"} 3"),
            "{}",
            d.metrics.encode()
        );
        // Past the three backoffs (at most 100 + 200 + 400 ms; time is paused, so this is
        // exact), both pollers poll again: an empty poll takes 50 ms, so one poller makes
        // about 20 in a second, and two about 40.
        tokio::time::sleep(BACKOFF_MIN * 7).await;
        let before = fake.polls.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let made = fake.polls.load(Ordering::Relaxed) - before;
        assert!((36..=44).contains(&made), "{made} polls in 1 s");

        d.shutdown.initiate();
        pollers.await.unwrap();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn never_polls_without_a_free_slot() {
        let fake = Arc::new(FakeSwf::default());
        for i in 0..5 {
            fake.tasks.lock().unwrap().push_back(PolledTask {
                token: format!("t{i}"),
                task: task(&format!("a{i}"), "g", "1"),
            });
        }
        let gate = Arc::new(tokio::sync::Notify::new());
        let d = dispatcher(&fake, Arc::new(Gate(gate.clone())));
        let list = TaskList::new("tl", 2, &d.metrics);
        let tracker = TaskTracker::new();
        for _ in 0..3 {
            tokio::spawn(run_poller(d.clone(), list.clone(), tracker.clone()));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Two slots: exactly two tasks polled, and nobody polls while both run.
        assert_eq!(fake.polls.load(Ordering::Relaxed), 2);
        assert_eq!(fake.tasks.lock().unwrap().len(), 3);
        gate.notify_waiters();
        fake.wait_responses(2).await;
        d.shutdown.initiate();
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.notify_waiters();
        tracker.close();
        tracker.wait().await;
    }
}
