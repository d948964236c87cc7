//! The two-phase shutdown signal.
//!
//! Phase one, [`Shutdown::initiate`]: pollers stop starting new polls (a poll already sent is
//! left to return, so no task is lost on the wire) and running tasks go on. Phase two,
//! [`Shutdown::abort_runs`], once the grace period is over: whatever still runs is dropped
//! (which interrupts the guest) and answered Failed `swasm.Shutdown` so SWF can reschedule it.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Cheap to clone; every poller and every dispatched task holds one.
#[derive(Clone, Default)]
pub struct Shutdown {
    stop_polling: CancellationToken,
    abort_runs: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Phase one: no new polls.
    pub fn initiate(&self) {
        self.stop_polling.cancel();
    }

    /// Phase two: interrupt the runs still going (implies phase one).
    pub fn abort_runs(&self) {
        self.stop_polling.cancel();
        self.abort_runs.cancel();
    }

    pub fn is_stopping(&self) -> bool {
        self.stop_polling.is_cancelled()
    }

    pub fn is_aborting(&self) -> bool {
        self.abort_runs.is_cancelled()
    }

    /// Resolves when phase one begins.
    pub async fn stopping(&self) {
        self.stop_polling.cancelled().await
    }

    /// Resolves when phase two begins.
    pub async fn aborting(&self) {
        self.abort_runs.cancelled().await
    }
}

/// Resolves at the first SIGTERM or SIGINT; a second one exits the process at once (status
/// 130), for an operator who does not want to wait for the grace period.
pub fn signals() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams =
        signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
    async move {
        let Ok((mut term, mut int)) = streams else {
            tracing::error!("cannot install signal handlers; the worker can only be killed");
            return futures::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully (send again to exit now)"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down gracefully (send again to exit now)"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn abort_implies_stop() {
        let s = Shutdown::new();
        assert!(!s.is_stopping());
        s.abort_runs();
        assert!(s.is_stopping());
        s.stopping().await;
        s.aborting().await;
    }
}
