//! The two-phase shutdown signal.
//!
//! Phase one, [`Shutdown::initiate`]: pollers stop starting new polls (a poll already sent is
//! left to return, so no task is lost on the wire) and running tasks go on. Phase two comes
//! per task: a task may run for the grace period from the shutdown, or from its own start if
//! it arrived later on a poll that was still in flight. Then it is dropped (which interrupts
//! the guest) and answered Failed `swasm.Shutdown`, which the decider can schedule again.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Cheap to clone; every poller and every dispatched task holds one.
#[derive(Clone)]
pub struct Shutdown {
    stop_polling: CancellationToken,
    /// When phase one began: each task's grace period counts from it (or from the task's
    /// start, if later).
    stopped_at: Arc<OnceLock<Instant>>,
    /// How long a task may go on once the shutdown began (`shutdown_grace_s`).
    grace: Duration,
}

impl Shutdown {
    pub fn new(grace: Duration) -> Self {
        Shutdown {
            stop_polling: CancellationToken::new(),
            stopped_at: Arc::default(),
            grace,
        }
    }

    /// Phase one: no new polls; each task's grace period starts.
    pub fn initiate(&self) {
        self.stopped_at.get_or_init(Instant::now);
        self.stop_polling.cancel();
    }

    /// How long a task may go on once the shutdown began.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    pub fn is_stopping(&self) -> bool {
        self.stop_polling.is_cancelled()
    }

    /// Resolves when phase one begins.
    pub async fn stopping(&self) {
        self.stop_polling.cancelled().await
    }

    /// When a task that started at `started` must end, once the shutdown began (`None`
    /// before it, or for a grace too long for the clock: never).
    fn task_deadline(&self, started: Instant) -> Option<Instant> {
        let stopped_at = *self.stopped_at.get()?;
        stopped_at.max(started).checked_add(self.grace)
    }

    /// Resolves when the task that started at `started` has had its grace period.
    pub async fn task_over(&self, started: Instant) {
        self.task_over_by(started, Duration::ZERO).await
    }

    /// Resolves `extra` after the task that started at `started` has had its grace period
    /// (what is left to do then, such as answering, gets that long).
    pub async fn task_over_by(&self, started: Instant, extra: Duration) {
        self.stop_polling.cancelled().await;
        match self
            .task_deadline(started)
            .and_then(|deadline| deadline.checked_add(extra))
        {
            Some(at) => tokio::time::sleep_until(at).await,
            None => futures::future::pending().await,
        }
    }

    /// Whether the task that started at `started` has had its grace period.
    pub fn is_task_over(&self, started: Instant) -> bool {
        self.task_deadline(started)
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// A signal this soon after the first is the same stop, delivered twice: `timeout` signals
/// the process and then its process group, and a shell may pass a hangup on to its jobs. A
/// person pressing Ctrl-C twice takes longer.
const SAME_STOP: Duration = Duration::from_millis(100);

/// Resolves at the first SIGTERM, SIGINT or SIGHUP (a closed terminal, e.g. an ssh session
/// that ended: the host drains, rather than dying with its tasks unanswered). A second
/// SIGTERM or SIGINT, later than [`SAME_STOP`], exits the process at once (status 130), for
/// an operator who does not want to wait for the grace period. Listens from the call on
/// (call it within a tokio runtime).
pub fn signals() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (|| {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        ))
    })();
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    match streams {
        // Listened to from now on, not from when the returned future is first polled: a
        // signal's time is when it came, so two separate signals during a long start-up
        // are not taken for one delivered twice.
        Ok((mut term, mut int, mut hup)) => {
            tokio::spawn(async move {
                let first = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                    _ = hup.recv() => "SIGHUP",
                };
                let at = std::time::Instant::now();
                tracing::info!(
                    "{first}: shutting down gracefully (send SIGTERM or SIGINT again to exit now)"
                );
                let _ = stop.send(());
                loop {
                    let again = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                        // The terminal is gone: no one is asking to exit now.
                        _ = hup.recv() => continue,
                    };
                    if at.elapsed() < SAME_STOP {
                        tracing::debug!(
                            "{again} right after {first}: the same stop, delivered twice"
                        );
                        continue;
                    }
                    tracing::warn!("second signal ({again}): exiting now");
                    std::process::exit(130);
                }
            });
        }
        Err(_) => {
            tracing::error!("cannot install signal handlers; the worker can only be killed");
        }
    }
    async move {
        if stopping.await.is_err() {
            futures::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_no_grace_a_task_is_over_when_the_shutdown_begins() {
        let s = Shutdown::new(Duration::ZERO);
        let started = Instant::now();
        assert!(!s.is_stopping() && !s.is_task_over(started));
        s.initiate();
        assert!(s.is_stopping());
        s.stopping().await;
        s.task_over(started).await;
        assert!(s.is_task_over(started));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_gets_its_grace_from_the_shutdown_or_from_its_own_start() {
        let grace = Duration::from_secs(10);
        let s = Shutdown::new(grace);
        let early = Instant::now();
        assert!(!s.is_task_over(early), "no shutdown, no end");
        tokio::time::advance(Duration::from_secs(100)).await;
        s.initiate();
        let signal = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        // Arrived on a poll that was in flight at the signal.
        let late = Instant::now();
        s.task_over(early).await;
        assert_eq!(
            Instant::now(),
            signal + grace,
            "grace counts from the signal"
        );
        assert!(!s.is_task_over(late));
        s.task_over(late).await;
        assert_eq!(
            Instant::now(),
            late + grace,
            "grace counts from the late start"
        );
        assert!(s.is_task_over(late));
    }

    /// A grace past what the clock can add (a library caller's `Duration::MAX`; the config
    /// caps `shutdown_grace_s` at a year) means tasks are never interrupted, not a panic in
    /// every task at the signal.
    #[tokio::test(start_paused = true)]
    async fn an_endless_grace_never_ends_a_task() {
        let s = Shutdown::new(Duration::MAX);
        let started = Instant::now();
        s.initiate();
        assert!(!s.is_task_over(started));
        let over = tokio::time::timeout(Duration::from_secs(3600), s.task_over(started)).await;
        assert!(over.is_err(), "the task's grace ended");
    }
}
