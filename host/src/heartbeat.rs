//! Guest `heartbeat()` calls, throttled per task, turned into RecordActivityTaskHeartbeat.
//!
//! A guest may call `heartbeat()` in a tight loop; SWF allows a few hundred heartbeats per
//! second per account. So [`TaskHeartbeat::beat`] never calls SWF: it stores the latest
//! details and returns the latest known cancel flag. A background pump per task, started by
//! its first beat (most short tasks never beat, and then cost no pump), sends the first beat
//! at once, then at most one call per throttle interval (the smaller of
//! `heartbeat_interval_s` and 0.8 x the type's registered heartbeat timeout), flushing the
//! latest skipped details when the interval ends and again just before the task is answered.
//! UnknownResourceFault means the task is gone (timed out, canceled, workflow closed): the
//! flag turns true and `dispatch` drops the response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::activity::{ActivityType, Heartbeat};
use crate::metrics::{InFlightGuard, Metrics, SwfCall};
use crate::swf::{Backoff, SwfClient, SwfError};

/// How long finishing waits for the last heartbeat details to be recorded before the task
/// answers anyway. The answer matters more: a task near its timeout must not time out while
/// a heartbeat call hangs.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// Heartbeat `details` are `LimitedData`: at most 2048 characters.
pub const MAX_DETAILS: usize = 2048;

/// After a transient DescribeActivityType failure, how long until a type is asked again
/// (doubling up to [`LOOKUP_RETRY_MAX`] while it keeps failing).
const LOOKUP_RETRY_MIN: Duration = Duration::from_secs(1);
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(60);

/// Per-type heartbeat timeouts, asked of DescribeActivityType once per type and cached.
///
/// No pump ever waits for the answer: until it comes, pumps throttle by
/// `heartbeat_interval_s` and are told when it arrives (it may shorten their wait). So an
/// endpoint that hangs or throttles DescribeActivityType holds up neither heartbeats nor
/// answers, and one call per type is in flight however many tasks beat.
pub struct ThrottlePolicy {
    swf: Arc<dyn SwfClient>,
    types: Mutex<HashMap<ActivityType, Lookup>>,
}

enum Lookup {
    /// A call is in flight; its sender is dropped when it ends.
    Asking(watch::Receiver<()>),
    /// The registered heartbeat timeout (`None`: the type has none, or SWF would not say).
    Known(Option<u64>),
    /// The last call failed transiently: the type is not asked again before `retry_at`.
    Failed { retry_at: Instant, delay: Duration },
}

/// What a pump throttles by now.
pub struct Throttle {
    pub interval: Duration,
    /// While DescribeActivityType is in flight: changes (or closes) when it ends.
    pub learning: Option<watch::Receiver<()>>,
}

impl ThrottlePolicy {
    pub fn new(swf: Arc<dyn SwfClient>) -> Self {
        ThrottlePolicy {
            swf,
            types: Mutex::new(HashMap::new()),
        }
    }

    /// The throttle interval for a task of `ty` given its configured `heartbeat_interval_s`:
    /// the smaller of that and 0.8 x the type's registered heartbeat timeout once known.
    /// Never waits; starts the type's lookup if it is not known, not being asked, and not
    /// failing. Must be called within a tokio runtime.
    pub fn interval(self: &Arc<Self>, ty: &ActivityType, heartbeat_interval_s: u64) -> Throttle {
        let configured = Duration::from_secs(heartbeat_interval_s);
        let mut types = self.types.lock().unwrap();
        let delay = match types.get(ty) {
            Some(Lookup::Known(timeout)) => {
                let interval = match timeout {
                    Some(t) => configured.min(Duration::from_secs(*t).mul_f64(0.8)),
                    None => configured,
                };
                return Throttle {
                    interval,
                    learning: None,
                };
            }
            // (A closed channel with no answer: the runtime dropped the call; ask again.)
            Some(Lookup::Asking(rx)) if rx.has_changed().is_ok() => {
                return Throttle {
                    interval: configured,
                    learning: Some(rx.clone()),
                };
            }
            Some(Lookup::Failed { retry_at, .. }) if Instant::now() < *retry_at => {
                return Throttle {
                    interval: configured,
                    learning: None,
                };
            }
            Some(Lookup::Failed { delay, .. }) => (*delay * 2).min(LOOKUP_RETRY_MAX),
            _ => LOOKUP_RETRY_MIN,
        };
        let (done, rx) = watch::channel(());
        types.insert(ty.clone(), Lookup::Asking(rx.clone()));
        drop(types);
        tokio::spawn(self.clone().ask(ty.clone(), done, delay));
        Throttle {
            interval: configured,
            learning: Some(rx),
        }
    }

    /// One DescribeActivityType call for `ty`; `done` is dropped when the answer is stored.
    async fn ask(self: Arc<Self>, ty: ActivityType, done: watch::Sender<()>, retry: Duration) {
        let lookup = match self.swf.describe_activity_type(&ty).await {
            // A registered 0 (another tool registered the type; swasm refuses it) would
            // throttle nothing: the configured interval stays.
            Ok(d) => Lookup::Known(d.registration.heartbeat_timeout_s.filter(|&t| t > 0)),
            Err(e) if e.is_retryable() => {
                tracing::debug!(activity_type = %ty, error = %e, "DescribeActivityType failed; throttling heartbeats by heartbeat_interval_s, asking again in {retry:?}");
                Lookup::Failed {
                    retry_at: Instant::now() + retry,
                    delay: retry,
                }
            }
            Err(e) => {
                tracing::warn!(activity_type = %ty, error = %e, "DescribeActivityType failed; throttling heartbeats by heartbeat_interval_s only");
                Lookup::Known(None)
            }
        };
        self.types.lock().unwrap().insert(ty, lookup);
        drop(done);
    }
}

/// Truncates to at most `max` characters (not bytes).
pub fn truncate_chars(s: &str, max: usize) -> Option<&str> {
    s.char_indices().nth(max).map(|(i, _)| &s[..i])
}

struct Shared {
    /// Details of the latest beat not yet sent (`Some(None)`: a beat without details).
    pending: Mutex<Option<Option<String>>>,
    /// Details of the latest beat the pump took to send (a copy made at most once per
    /// interval): with `pending`, the guest's latest details, for a task that must be
    /// answered before it finishes.
    taken: Mutex<Option<Option<String>>>,
    wake: Notify,
    /// Cancel requested, or the task is gone.
    cancel: AtomicBool,
    gone: AtomicBool,
    pump: Mutex<PumpState>,
}

impl Shared {
    /// Takes the pending details to send, keeping a copy as the latest taken. The copy is
    /// made under the `pending` lock, so [`HeartbeatPump::latest_details`] (which takes the
    /// locks in the same order) never finds the details in neither place.
    fn take_pending(&self) -> Option<Option<String>> {
        let mut pending = self.pending.lock().unwrap();
        let details = pending.take()?;
        *self.taken.lock().unwrap() = Some(details.clone());
        Some(details)
    }
}

enum PumpState {
    /// No beat yet: the pump waits here, unspawned.
    Idle(Box<Pump>),
    Running {
        task: tokio::task::JoinHandle<()>,
        stop: CancellationToken,
    },
    Finished,
}

/// The [`Heartbeat`] a guest's `heartbeat()` reaches for one SWF task.
#[derive(Clone)]
pub struct TaskHeartbeat {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Heartbeat for TaskHeartbeat {
    fn beat(&self, details: Option<String>) -> bool {
        let details = details.map(|d| match truncate_chars(&d, MAX_DETAILS) {
            Some(cut) => {
                tracing::warn!(
                    chars = d.chars().count(),
                    "heartbeat details truncated to {MAX_DETAILS} characters"
                );
                cut.to_string()
            }
            None => d,
        });
        if !self.shared.gone.load(Ordering::Relaxed) {
            let replaced = self
                .shared
                .pending
                .lock()
                .unwrap()
                .replace(details)
                .is_some();
            if replaced {
                self.metrics.heartbeats_skipped_throttled.inc();
            }
            self.shared.wake.notify_one();
            self.start_pump();
        }
        self.shared.cancel.load(Ordering::Relaxed)
    }
}

impl TaskHeartbeat {
    /// Spawns the pump on the first beat, in the span of the guest's run (the task's), so
    /// what the pump logs names the task.
    fn start_pump(&self) {
        let mut state = self.shared.pump.lock().unwrap();
        *state = match std::mem::replace(&mut *state, PumpState::Finished) {
            PumpState::Idle(pump) => {
                let stop = pump.stop.clone();
                let runtime = pump.runtime.clone();
                let run = pump
                    .run(self.shared.clone())
                    .instrument(tracing::Span::current());
                let task = runtime.spawn(run);
                PumpState::Running { task, stop }
            }
            running_or_finished => running_or_finished,
        };
    }
}

/// How a task's heartbeats ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatEnd {
    /// SWF said UnknownResourceFault: answering the task would be pointless.
    pub gone: bool,
    pub cancel_requested: bool,
}

/// The handle `dispatch` keeps: the guest gets [`TaskHeartbeat`] clones, `finish` flushes.
pub struct HeartbeatPump {
    beat: TaskHeartbeat,
}

impl HeartbeatPump {
    /// Prepares the pump of one task; it is spawned (on the current runtime) by the first
    /// beat. Must be called within a tokio runtime.
    pub fn start(
        swf: Arc<dyn SwfClient>,
        policy: Arc<ThrottlePolicy>,
        metrics: Arc<Metrics>,
        guard: Arc<InFlightGuard>,
        token: String,
        ty: ActivityType,
        heartbeat_interval_s: u64,
    ) -> HeartbeatPump {
        let pump = Box::new(Pump {
            swf,
            policy,
            metrics: metrics.clone(),
            guard,
            token,
            ty,
            heartbeat_interval_s,
            stop: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            failing: AtomicBool::new(false),
        });
        let shared = Arc::new(Shared {
            pending: Mutex::new(None),
            taken: Mutex::new(None),
            wake: Notify::new(),
            cancel: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            pump: Mutex::new(PumpState::Idle(pump)),
        });
        HeartbeatPump {
            beat: TaskHeartbeat { shared, metrics },
        }
    }

    pub fn handle(&self) -> TaskHeartbeat {
        self.beat.clone()
    }

    /// The details of the guest's latest heartbeat (its checkpoint), recorded or not;
    /// `None` if it never beat with details.
    pub fn latest_details(&self) -> Option<String> {
        let shared = &self.beat.shared;
        let pending = shared.pending.lock().unwrap();
        match &*pending {
            Some(details) => details.clone(),
            None => shared.taken.lock().unwrap().clone().flatten(),
        }
    }

    /// Stops the pump after flushing details still pending; call before responding. If
    /// this future is dropped first (the caller's time ran out), the pump is aborted with it,
    /// so no heartbeat goes out after the answer.
    pub async fn finish(self) -> HeartbeatEnd {
        let state = std::mem::replace(
            &mut *self.beat.shared.pump.lock().unwrap(),
            PumpState::Finished,
        );
        if let PumpState::Running { task, stop } = state {
            stop.cancel();
            if let Err(e) = AbortOnDropHandle::new(task).await {
                tracing::error!(error = %e, "heartbeat pump panicked");
            }
        }
        HeartbeatEnd {
            gone: self.beat.shared.gone.load(Ordering::Relaxed),
            cancel_requested: self.beat.shared.cancel.load(Ordering::Relaxed),
        }
    }
}

/// A pump whose task was never finished (its handler dropped or panicked) stops with it:
/// it would otherwise wait for beats for ever, and its hold on the task's [`InFlightGuard`]
/// would keep a task nobody runs in `/status`.
impl Drop for HeartbeatPump {
    fn drop(&mut self) {
        // Poisoned or not: a panic while dropping during an unwind would abort the process.
        let mut pump = self
            .beat
            .shared
            .pump
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let PumpState::Running { task, stop } =
            std::mem::replace(&mut *pump, PumpState::Finished)
        {
            stop.cancel();
            task.abort();
        }
    }
}

struct Pump {
    swf: Arc<dyn SwfClient>,
    policy: Arc<ThrottlePolicy>,
    metrics: Arc<Metrics>,
    guard: Arc<InFlightGuard>,
    token: String,
    ty: ActivityType,
    heartbeat_interval_s: u64,
    stop: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// The last heartbeat failed: the failure was logged, the next one is not until a beat
    /// is recorded again.
    failing: AtomicBool,
}

/// Result of one send attempt series.
enum Sent {
    Ok,
    Gone,
    GaveUp,
}

impl Pump {
    async fn run(self, shared: Arc<Shared>) {
        let mut last_sent: Option<Instant> = None;
        'pump: loop {
            let woken = shared.wake.notified();
            if shared.pending.lock().unwrap().is_none() {
                tokio::select! {
                    _ = woken => continue,
                    _ = self.stop.cancelled() => break,
                }
            }
            if let Some(at) = last_sent {
                // Until the type's heartbeat timeout is known, the configured interval; when
                // it becomes known during the wait, the wait is worked out again.
                loop {
                    let Throttle { interval, learning } =
                        self.policy.interval(&self.ty, self.heartbeat_interval_s);
                    let learned = async {
                        match learning {
                            Some(mut rx) => _ = rx.changed().await,
                            None => futures::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(at + interval) => break,
                        _ = learned => {}
                        _ = self.stop.cancelled() => break 'pump,
                    }
                }
            }
            let Some(details) = shared.take_pending() else {
                continue;
            };
            match self.send(&shared, details, false).await {
                Sent::Gone => return,
                Sent::Ok | Sent::GaveUp => {}
            }
            last_sent = Some(Instant::now());
        }
        // Finishing: the latest details go out before the response, if SWF takes them soon.
        let pending = shared.take_pending();
        if let Some(details) = pending {
            let flush = self.send(&shared, details, true);
            if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
                tracing::debug!(
                    "the last heartbeat details were not recorded in {FINAL_FLUSH:?}; answering without them"
                );
            }
        }
    }

    /// Sends one heartbeat, retrying throttling and 5xx with backoff; while finishing, gives
    /// up after a few attempts so a response is never held up for long.
    async fn send(&self, shared: &Shared, mut details: Option<String>, finishing: bool) -> Sent {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let call = self.swf.heartbeat(&self.token, details.as_deref());
            let result = if finishing {
                call.await
            } else {
                // The task is answering: a beat still in flight (an endpoint that hangs)
                // must not hold the answer up. Its details go into the final flush.
                // Biased: a reply that came with the stop counts (a cancel request, a task
                // gone), and its details need no second send in the flush.
                tokio::select! {
                    biased;
                    r = call => r,
                    _ = self.stop.cancelled() => {
                        shared.pending.lock().unwrap().get_or_insert(details);
                        return Sent::GaveUp;
                    }
                }
            };
            if let Err(e) = &result {
                self.guard.count_swf_error(SwfCall::Heartbeat, e);
            }
            match result {
                Ok(cancel) => {
                    self.metrics.heartbeats_sent.inc();
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("heartbeats are recorded again");
                    }
                    if cancel && !shared.cancel.swap(true, Ordering::Relaxed) {
                        tracing::info!("SWF requested cancellation of this task");
                    }
                    self.guard.heartbeat_sent(cancel);
                    return Sent::Ok;
                }
                Err(SwfError::TaskGone(msg)) => {
                    tracing::warn!(%msg, "heartbeat: SWF no longer knows this task (timed out, canceled or workflow closed); telling the guest to stop");
                    shared.gone.store(true, Ordering::Relaxed);
                    shared.cancel.store(true, Ordering::Relaxed);
                    self.guard.heartbeat_sent(true);
                    return Sent::Gone;
                }
                Err(e) if e.is_retryable() && !(finishing && attempts >= 3) => {
                    self.metrics.heartbeat_errors.inc();
                    let wait = backoff.next_wait();
                    // Failing heartbeats end in HEARTBEAT timeouts if they last: worth a line.
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "heartbeat failed; retrying in {wait:?} (logged once until one is recorded)");
                    } else {
                        tracing::debug!(error = %e, "heartbeat failed again; retrying in {wait:?}");
                    }
                    let wait = tokio::time::sleep(wait);
                    if finishing {
                        wait.await;
                    } else {
                        tokio::select! {
                            _ = wait => {}
                            _ = self.stop.cancelled() => {
                                // As for a beat in flight: its details go into the final
                                // flush, unless the guest gave newer ones.
                                shared.pending.lock().unwrap().get_or_insert(details);
                                return Sent::GaveUp;
                            }
                        }
                    }
                    // Details the guest gave meanwhile replace the ones being retried.
                    if let Some(newer) = shared.take_pending() {
                        details = newer;
                    }
                }
                Err(e) => {
                    self.metrics.heartbeat_errors.inc();
                    tracing::warn!(error = %e, "heartbeat not recorded");
                    return Sent::GaveUp;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::swf::testing::FakeSwf;

    fn start(fake: &Arc<FakeSwf>, interval_s: u64) -> (HeartbeatPump, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let swf: Arc<dyn SwfClient> = fake.clone();
        let policy = Arc::new(ThrottlePolicy::new(swf));
        let pump = start_with(fake, &policy, &metrics, "t1", interval_s);
        (pump, metrics)
    }

    /// The pump of task `id` (type echo@1), sharing `policy` and `metrics` with others.
    fn start_with(
        fake: &Arc<FakeSwf>,
        policy: &Arc<ThrottlePolicy>,
        metrics: &Arc<Metrics>,
        id: &str,
        interval_s: u64,
    ) -> HeartbeatPump {
        let task = crate::swf::testing::task(id, "echo", "1");
        let guard = Arc::new(metrics.track(Arc::new(task.clone())));
        HeartbeatPump::start(
            fake.clone(),
            policy.clone(),
            metrics.clone(),
            guard,
            format!("tok-{id}"),
            task.activity_type,
            interval_s,
        )
    }

    /// An endpoint that takes a heartbeat and never answers does not hold up the task's
    /// answer: finishing abandons the beat in flight and gives its details one bounded try.
    #[tokio::test(start_paused = true)]
    async fn a_hung_heartbeat_does_not_hold_up_the_answer() {
        let fake = Arc::new(FakeSwf::default());
        fake.heartbeat_hangs.store(true, Ordering::Relaxed);
        let (pump, _) = start(&fake, 30);
        assert!(!pump.handle().beat(Some("1".into())));
        fake.wait_heartbeat_attempts(1).await;
        let finishing = Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(60), pump.finish())
            .await
            .expect("finishing waited for the hung heartbeat");
        assert!(!end.gone && !end.cancel_requested);
        assert_eq!(
            finishing.elapsed(),
            FINAL_FLUSH,
            "on paused time: exactly the flush budget"
        );
        assert_eq!(
            fake.heartbeat_attempts(),
            2,
            "the beat, then the flush of its details"
        );
    }

    /// A pump dropped unfinished (its handler dropped or panicked) stops and lets go of the
    /// task's in-flight entry, rather than waiting for beats for ever.
    #[tokio::test(start_paused = true)]
    async fn a_pump_dropped_unfinished_stops_and_releases_its_task() {
        let fake = Arc::new(FakeSwf::default());
        // The task's in-flight entry lives as long as the pump holds its guard.
        let (pump, metrics) = start(&fake, 30);
        assert_eq!(metrics.in_flight().len(), 1);
        let hb = pump.handle();
        hb.beat(Some("1".into()));
        fake.wait_heartbeats(1).await;
        drop(pump);
        for _ in 0..100 {
            if metrics.in_flight().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            metrics.in_flight().is_empty(),
            "the pump still holds its task"
        );
        // The guest's handle outlives the pump harmlessly: a beat starts nothing.
        hb.beat(Some("2".into()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(fake.heartbeat_attempts(), 1);
    }

    /// Beats until `fake` has recorded `n` heartbeats, advancing paused time 100 ms a beat.
    async fn beat_until(hb: &TaskHeartbeat, fake: &FakeSwf, n: usize) {
        let mut i = 0;
        while fake.heartbeat_details().len() < n {
            hb.beat(Some(i.to_string()));
            i += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// DescribeActivityType that never answers holds up neither the heartbeats (they keep
    /// the configured interval) nor the answer (finishing flushes at once).
    #[tokio::test(start_paused = true)]
    async fn a_hung_describe_holds_up_neither_heartbeats_nor_the_answer() {
        let fake = Arc::new(FakeSwf::default());
        fake.describe_hangs.store(true, Ordering::Relaxed);
        let (pump, _) = start(&fake, 5);
        let hb = pump.handle();
        let begun = Instant::now();
        beat_until(&hb, &fake, 3).await;
        let elapsed = begun.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
            "3 beats 5 s apart took {elapsed:?}"
        );
        assert_eq!(fake.describes(), 1, "one lookup, still in flight");
        hb.beat(Some("last".into()));
        let finishing = Instant::now();
        let end = tokio::time::timeout(Duration::from_secs(60), pump.finish())
            .await
            .expect("finishing waited for DescribeActivityType");
        assert!(!end.gone);
        assert_eq!(finishing.elapsed(), Duration::ZERO, "on paused time");
        assert_eq!(
            fake.heartbeat_details().last().unwrap().as_deref(),
            Some("last")
        );
    }

    /// While DescribeActivityType is throttled, the tasks of a type do not queue behind
    /// each other's lookups: one call is in flight at a time, and every task keeps beating
    /// at the configured interval.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_describe_is_asked_once_for_many_tasks() {
        let fake = Arc::new(FakeSwf::default());
        *fake.describe_delay.lock().unwrap() = Duration::from_secs(1);
        fake.describe_errors
            .lock()
            .unwrap()
            .extend((0..100).map(|_| SwfError::Throttled("slow down".into())));
        let metrics = Arc::new(Metrics::new());
        let policy = Arc::new(ThrottlePolicy::new(fake.clone()));
        let begun = Instant::now();
        let pumps: Vec<HeartbeatPump> = (0..20)
            .map(|i| {
                let pump = start_with(&fake, &policy, &metrics, &format!("t{i}"), 3);
                pump.handle().beat(Some("first".into()));
                pump
            })
            .collect();
        fake.wait_heartbeats(20).await;
        for pump in &pumps {
            pump.handle().beat(Some("second".into()));
        }
        fake.wait_heartbeats(40).await;
        assert_eq!(begun.elapsed(), Duration::from_secs(3), "on paused time");
        assert!(
            fake.describes() <= 2,
            "{} DescribeActivityType calls",
            fake.describes()
        );
        for pump in pumps {
            pump.finish().await;
        }
    }

    /// A heartbeat timeout learned while a pump waits shortens the wait: registered 5 s
    /// (0.8 x 5 = 4 s), configured 30 s, answered 2 s after the first beat.
    #[tokio::test(start_paused = true)]
    async fn a_timeout_learned_during_the_wait_shortens_it() {
        let fake = Arc::new(FakeSwf::default());
        *fake.heartbeat_timeout_s.lock().unwrap() = Some(5);
        *fake.describe_delay.lock().unwrap() = Duration::from_secs(2);
        let (pump, _) = start(&fake, 30);
        let hb = pump.handle();
        let begun = Instant::now();
        beat_until(&hb, &fake, 2).await;
        let elapsed = begun.elapsed();
        assert!(
            elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(5),
            "the second beat came after {elapsed:?}"
        );
        pump.finish().await;
    }

    /// A type registered (by another tool) with a heartbeat timeout of 0 does not turn the
    /// throttle off: the configured interval holds.
    #[tokio::test(start_paused = true)]
    async fn a_registered_zero_heartbeat_timeout_keeps_the_configured_interval() {
        let fake = Arc::new(FakeSwf::default());
        *fake.heartbeat_timeout_s.lock().unwrap() = Some(0);
        let (pump, _) = start(&fake, 1);
        let hb = pump.handle();
        let begun = Instant::now();
        beat_until(&hb, &fake, 4).await;
        let elapsed = begun.elapsed();
        assert!(
            elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(4),
            "4 beats 1 s apart took {elapsed:?}"
        );
        pump.finish().await;
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate_chars("abc", 5), None);
        assert_eq!(truncate_chars("ééé", 2), Some("éé"));
    }

    #[tokio::test(start_paused = true)]
    async fn first_beat_at_once_then_one_per_interval_and_flush_on_finish() {
        let fake = Arc::new(FakeSwf::default());
        *fake.heartbeat_timeout_s.lock().unwrap() = Some(10); // 0.8 x 10 = 8 s < 30 s
        let (pump, metrics) = start(&fake, 30);
        let hb = pump.handle();
        assert!(!hb.beat(Some("0".into())));
        fake.wait_heartbeats(1).await;
        assert_eq!(fake.heartbeat_details(), vec![Some("0".to_string())]);
        for i in 1..=50 {
            hb.beat(Some(i.to_string()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 5 s in: still only the first was sent.
        assert_eq!(fake.heartbeat_details().len(), 1);
        tokio::time::sleep(Duration::from_secs(4)).await;
        // At 8 s the latest skipped details were flushed.
        assert_eq!(
            fake.heartbeat_details(),
            vec![Some("0".into()), Some("50".into())]
        );
        hb.beat(Some("last".into()));
        let end = pump.finish().await;
        assert!(!end.gone);
        assert_eq!(
            fake.heartbeat_details().last().unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(fake.heartbeat_details().len(), 3);
        assert_eq!(metrics.heartbeats_skipped_throttled.get(), 49);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_never_beats_starts_no_pump_and_calls_nothing() {
        let fake = Arc::new(FakeSwf::default());
        let (pump, _) = start(&fake, 0);
        assert!(matches!(
            *pump.beat.shared.pump.lock().unwrap(),
            PumpState::Idle(_)
        ));
        let end = pump.finish().await;
        assert_eq!(
            end,
            HeartbeatEnd {
                gone: false,
                cancel_requested: false
            }
        );
        assert_eq!(fake.heartbeat_attempts(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_and_gone_reach_the_guest() {
        let fake = Arc::new(FakeSwf::default());
        fake.cancel_requested.store(true, Ordering::Relaxed);
        let (pump, _) = start(&fake, 0);
        let hb = pump.handle();
        hb.beat(None);
        fake.wait_heartbeats(1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(hb.beat(None));
        let end = pump.finish().await;
        assert!(end.cancel_requested && !end.gone);

        let fake = Arc::new(FakeSwf::default());
        fake.gone.store(true, Ordering::Relaxed);
        let (pump, _) = start(&fake, 0);
        let hb = pump.handle();
        hb.beat(None);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(hb.beat(None));
        assert!(pump.finish().await.gone);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_heartbeat_carries_the_details_given_meanwhile() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next.lock().unwrap().extend([
            SwfError::Throttled("x".into()),
            SwfError::Throttled("x".into()),
        ]);
        let (pump, _) = start(&fake, 30);
        let hb = pump.handle();
        hb.beat(Some("old".into()));
        // The first try was throttled at once; the retry comes 50-100 ms later.
        tokio::time::sleep(Duration::from_millis(20)).await;
        hb.beat(Some("new".into()));
        fake.wait_heartbeats(1).await;
        assert_eq!(fake.heartbeat_details(), vec![Some("new".to_string())]);
        assert_eq!(fake.heartbeat_attempts(), 3);
        pump.finish().await;
        assert_eq!(fake.heartbeat_details().len(), 1, "nothing left to flush");
    }

    /// A task that finishes while its last beat waits to be retried still records those
    /// details: they go into the final flush.
    #[tokio::test(start_paused = true)]
    async fn details_waiting_for_a_retry_are_flushed_at_the_finish() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next
            .lock()
            .unwrap()
            .push_back(SwfError::Throttled("x".into()));
        let (pump, _) = start(&fake, 30);
        pump.handle().beat(Some("last".into()));
        fake.wait_heartbeat_attempts(1).await;
        pump.finish().await;
        assert_eq!(fake.heartbeat_details(), vec![Some("last".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_heartbeats_are_retried() {
        let fake = Arc::new(FakeSwf::default());
        fake.fail_next.lock().unwrap().extend([
            SwfError::Throttled("x".into()),
            SwfError::Unavailable("y".into()),
        ]);
        let (pump, metrics) = start(&fake, 30);
        pump.handle().beat(Some("d".into()));
        fake.wait_heartbeats(1).await;
        assert_eq!(fake.heartbeat_details(), vec![Some("d".to_string())]);
        assert_eq!(fake.heartbeat_attempts(), 3);
        assert_eq!(
            metrics.heartbeat_errors.get(),
            2,
            "failed calls are counted"
        );
        assert_eq!(metrics.heartbeats_sent.get(), 1);
        let text = metrics.encode();
        for kind in ["throttled", "unavailable"] {
            let line = format!(
                "swasm_swf_errors_total{{task_list=\"tl\",call=\"heartbeat\",kind=\"{kind}\"}} 1"
            );
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        pump.finish().await;
    }
}
