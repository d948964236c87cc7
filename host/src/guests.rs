//! [`GuestThreads`]: the threads guest code runs on, apart from the SWF traffic.
//!
//! Each thread drives a current-thread tokio runtime; there is one per core. A task's run
//! goes to the first thread that has no run executing or waiting to start, else to the
//! one with the fewest runs in flight. Short tasks then follow one another on the first
//! thread, whose caches still hold the code and data of the last instantiation, and runs
//! that wait (timers, I/O) do not hold a thread; guest code that computes keeps its thread
//! busy, and a burst of new runs counts as work before it starts, so CPU-heavy tasks use
//! every core. The aws-sdk requests (polls, answers, heartbeats) stay on the main runtime,
//! so the two working sets stop evicting each other on every task.
//!
//! Measured with the throughput benchmark's echo tasks on 2 cores, 6 interleaved runs each
//! (BENCHMARKS.md, "Where swasm-Rust's throughput goes"): the worker CPU swasm-Rust spends
//! per task beyond the native worker's fell from a median 206 µs (guest code on the main
//! runtime) to 140 µs. Sending each run to the least-loaded thread instead gained nothing
//! measurable: with two runtimes busy in turn, neither stays warm.
//!
//! A run stays cancel-safe: dropping the future [`GuestThreads::run`] returns aborts the
//! run on its thread, which drops the store and so interrupts the guest, as dropping the
//! run itself would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::activity::{Outcome, reason};

/// The guest threads of a worker. Dropping it stops them; runs still on them are dropped.
pub struct GuestThreads {
    threads: Vec<GuestThread>,
}

struct GuestThread {
    runtime: tokio::runtime::Handle,
    load: Arc<Load>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What placement reads of one guest thread.
#[derive(Default)]
struct Load {
    /// Runs sent to this thread and not finished or dropped yet.
    in_flight: AtomicUsize,
    /// Runs waiting for their first poll, plus the run being polled (guest code, or the
    /// host calls it makes): non-zero while the thread has work to do now.
    busy: AtomicUsize,
}

impl GuestThreads {
    /// One guest thread per core.
    pub fn per_core() -> Result<GuestThreads> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(n)
    }

    /// `n` guest threads (at least one).
    pub fn new(n: usize) -> Result<GuestThreads> {
        let threads = (0..n.max(1))
            .map(GuestThread::start)
            .collect::<Result<_>>()?;
        Ok(GuestThreads { threads })
    }

    /// No guest threads: runs stay on the caller's runtime. For tests on paused time,
    /// whose clock only advances when every task of that one runtime waits.
    pub fn inline() -> GuestThreads {
        GuestThreads {
            threads: Vec::new(),
        }
    }

    /// Runs `run` on the first guest thread with no work to do now, else on the one with
    /// the fewest runs in flight; without guest threads, returns `run` itself. Dropping the
    /// returned future aborts the run. A panic in the run becomes a failed outcome instead
    /// of a lost task.
    pub fn run(&self, run: BoxFuture<'static, Outcome>) -> BoxFuture<'static, Outcome> {
        // An idle thread is claimed in the step that finds it, so runs placed at the same
        // moment from two threads of the main runtime do not both take it.
        let idle = self.threads.iter().find(|t| {
            t.load
                .busy
                .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        let claimed = idle.is_some();
        let Some(thread) = idle.or_else(|| {
            self.threads
                .iter()
                .min_by_key(|t| t.load.in_flight.load(Ordering::Relaxed))
        }) else {
            return run;
        };
        // The task's span (ids, type) follows the run, so what the guest's host calls log
        // is tagged as before.
        let span = tracing::Span::current();
        let run = Placed::new(run, &thread.load, claimed).instrument(span);
        let handle = AbortOnDropHandle::new(thread.runtime.spawn(run));
        Box::pin(async move {
            match handle.await {
                Ok(outcome) => outcome,
                Err(e) if e.is_panic() => Outcome::failed(
                    reason::HOST_ERROR,
                    format!("the host failed while running the guest (a panic): {e}"),
                ),
                Err(e) => Outcome::failed(
                    reason::SHUTDOWN,
                    format!("the guest thread stopped before the task finished: {e}"),
                ),
            }
        })
    }

    /// Runs in flight on each thread, in thread order.
    pub fn in_flight(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|t| t.load.in_flight.load(Ordering::Relaxed))
            .collect()
    }
}

/// How long a stopping guest thread waits for the blocking operations of its runs.
const BLOCKING_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(1);

impl GuestThread {
    fn start(index: usize) -> Result<GuestThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build a guest thread's runtime")?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("swasm-guest-{index}"))
            .spawn(move || {
                // Runs until the owner stops it; then the runs left on it are dropped. A
                // blocking operation a guest started (file I/O or a DNS lookup, which
                // wasmtime-wasi runs on tokio's blocking threads) cannot be interrupted:
                // it is waited for at most a moment, not until it ends, so it never holds
                // up the process's exit.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_timeout(BLOCKING_AT_EXIT);
            })
            .context("cannot start a guest thread")?;
        Ok(GuestThread {
            runtime: handle,
            load: Arc::default(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for GuestThreads {
    fn drop(&mut self) {
        for t in &mut self.threads {
            if let Some(stop) = t.stop.take() {
                let _ = stop.send(());
            }
        }
        for t in &mut self.threads {
            if let Some(thread) = t.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// A run placed on a thread, counted in its [`Load`]: in `in_flight` until it finishes or
/// is dropped, and in `busy` while it waits for its first poll (so placement sees a burst
/// of new runs as work, and spreads it) and while it is polled.
struct Placed {
    run: BoxFuture<'static, Outcome>,
    load: Arc<Load>,
    /// Counted in `load.busy` now.
    busy: bool,
}

impl Placed {
    /// `claimed`: placement already counted the run in `load.busy`.
    fn new(run: BoxFuture<'static, Outcome>, load: &Arc<Load>, claimed: bool) -> Placed {
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        if !claimed {
            load.busy.fetch_add(1, Ordering::Relaxed);
        }
        Placed {
            run,
            load: load.clone(),
            busy: true,
        }
    }
}

impl std::future::Future for Placed {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        if !self.busy {
            self.load.busy.fetch_add(1, Ordering::Relaxed);
            // Set before polling: if the run panics, `drop` takes the count back.
            self.busy = true;
        }
        let poll = self.run.as_mut().poll(cx);
        self.load.busy.fetch_sub(1, Ordering::Relaxed);
        self.busy = false;
        poll
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        if self.busy {
            self.load.busy.fetch_sub(1, Ordering::Relaxed);
        }
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::eventually;
    use futures::FutureExt;

    /// Sends on drop: tells a test that a run's future was dropped on its thread.
    struct DropSignal(Option<oneshot::Sender<()>>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    #[tokio::test]
    async fn a_run_answers_on_a_guest_thread() {
        let guests = GuestThreads::new(2).unwrap();
        let outcome = guests
            .run(async { Outcome::Completed(Some(thread_name())) }.boxed())
            .await;
        assert_eq!(outcome, Outcome::Completed(Some("swasm-guest-0".into())));
        assert_eq!(guests.in_flight(), [0, 0]);
    }

    /// Runs waiting on something (a timer, a host call's I/O) leave their thread free: the
    /// next run goes to the same first thread, whose caches are warm.
    #[tokio::test]
    async fn waiting_runs_leave_the_first_thread_free() {
        let guests = GuestThreads::new(2).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
        let hold = |tag: &'static str| {
            let mut released = released.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                let _ = released.wait_for(|r| *r).await;
                Outcome::Completed(Some(format!("{tag} {}", thread_name())))
            }
            .boxed()
        };
        let a = tokio::spawn(guests.run(hold("a")));
        started.recv().await.unwrap();
        // `a` is waiting once its first poll has returned.
        eventually("the first run to wait", || {
            guests.threads[0].load.busy.load(Ordering::Relaxed) == 0
        });
        let b = tokio::spawn(guests.run(hold("b")));
        started.recv().await.unwrap();
        assert_eq!(guests.in_flight(), [2, 0]);
        release.send(true).unwrap();
        assert_eq!(completed(a.await.unwrap()), "a swasm-guest-0");
        assert_eq!(completed(b.await.unwrap()), "b swasm-guest-0");
        assert_eq!(guests.in_flight(), [0, 0]);
    }

    /// A run executing on its thread (guest code, which does not yield for up to a tick)
    /// makes the next run go to the next thread, so CPU-heavy tasks use every core.
    #[tokio::test]
    async fn a_busy_thread_sends_the_next_run_to_the_next_thread() {
        let guests = GuestThreads::new(2).unwrap();
        let (running_tx, running) = oneshot::channel::<()>();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        // Blocks its thread inside one poll, as guest code between two epoch ticks does.
        let busy = async move {
            let _ = running_tx.send(());
            let _ = finish_rx.recv();
            Outcome::Completed(Some(format!("busy {}", thread_name())))
        }
        .boxed();
        let a = tokio::spawn(guests.run(busy));
        running.await.unwrap();
        let b = guests
            .run(async { Outcome::Completed(Some(format!("next {}", thread_name()))) }.boxed())
            .await;
        assert_eq!(completed(b), "next swasm-guest-1");
        finish.send(()).unwrap();
        assert_eq!(completed(a.await.unwrap()), "busy swasm-guest-0");
    }

    /// Runs placed back to back, before any of them started, spread over the threads:
    /// a burst of CPU-heavy tasks must not pile up on the first one.
    #[tokio::test]
    async fn a_burst_spreads_before_it_starts() {
        let guests = GuestThreads::new(2).unwrap();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        let finish_rx = Arc::new(std::sync::Mutex::new(finish_rx));
        let blocking = |tag: &'static str| {
            let finish_rx = finish_rx.clone();
            async move {
                // Holds its thread, as computing guest code does.
                let _ = finish_rx.lock().unwrap().recv();
                Outcome::Completed(Some(format!("{tag} {}", thread_name())))
            }
            .boxed()
        };
        let a = tokio::spawn(guests.run(blocking("a")));
        let b = tokio::spawn(guests.run(blocking("b")));
        assert_eq!(guests.in_flight(), [1, 1]);
        finish.send(()).unwrap();
        finish.send(()).unwrap();
        let mut got = [completed(a.await.unwrap()), completed(b.await.unwrap())];
        got.sort();
        assert_eq!(got, ["a swasm-guest-0", "b swasm-guest-1"]);
    }

    /// Two runs placed at the same moment from two threads, before either started, go to
    /// the two threads: placement claims an idle thread in the same step that finds it.
    #[tokio::test]
    async fn runs_placed_at_once_claim_different_threads() {
        let guests = Arc::new(GuestThreads::new(2).unwrap());
        for _ in 0..2_000 {
            let start = Arc::new(std::sync::Barrier::new(2));
            let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
            let finish_rx = Arc::new(std::sync::Mutex::new(finish_rx));
            let placers: Vec<_> = (0..2)
                .map(|_| {
                    let (guests, start, finish_rx) =
                        (guests.clone(), start.clone(), finish_rx.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        guests.run(
                            async move {
                                // Holds its thread, as computing guest code does.
                                let _ = finish_rx.lock().unwrap().recv();
                                Outcome::Completed(None)
                            }
                            .boxed(),
                        )
                    })
                })
                .collect();
            let runs: Vec<_> = placers.into_iter().map(|p| p.join().unwrap()).collect();
            assert_eq!(guests.in_flight(), [1, 1]);
            finish.send(()).unwrap();
            finish.send(()).unwrap();
            for run in runs {
                assert_eq!(run.await, Outcome::Completed(None));
            }
        }
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    fn completed(o: Outcome) -> String {
        match o {
            Outcome::Completed(Some(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    /// Dropping the caller's future drops the run on its guest thread (for a guest: its
    /// store, which interrupts it) and frees the thread's count.
    #[tokio::test]
    async fn dropping_the_future_drops_the_run() {
        let guests = GuestThreads::new(1).unwrap();
        let (started_tx, started) = oneshot::channel::<()>();
        let (dropped_tx, dropped) = oneshot::channel::<()>();
        let run = guests.run(
            async move {
                let _signal = DropSignal(Some(dropped_tx));
                let _ = started_tx.send(());
                std::future::pending::<Outcome>().await
            }
            .boxed(),
        );
        let waiting = tokio::spawn(run);
        started.await.expect("the run started");
        waiting.abort();
        dropped.await.expect("the run was dropped on its thread");
        // The count goes with the rest of the run's state, right after.
        eventually("the run's count to go", || guests.in_flight() == [0]);
    }

    /// A run stuck in a blocking operation (a hung file system, a slow DNS lookup) does not
    /// keep the guest threads, and so the process, from stopping.
    #[tokio::test]
    async fn stopping_does_not_wait_for_a_blocked_operation() {
        let guests = GuestThreads::new(1).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let run = guests.run(
            async move {
                let blocking = tokio::task::spawn_blocking(move || {
                    let _ = started_tx.send(());
                    let _ = blocked.recv();
                });
                let _ = blocking.await;
                Outcome::Completed(None)
            }
            .boxed(),
        );
        let run = tokio::spawn(run);
        started.await.unwrap();
        run.abort();
        let (dropped_tx, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(guests);
            let _ = dropped_tx.send(());
        });
        let stopped = dropped.recv_timeout(std::time::Duration::from_secs(30));
        let _ = release.send(());
        assert!(
            stopped.is_ok(),
            "dropping the guest threads waited for the blocked operation"
        );
    }

    #[tokio::test]
    async fn a_panicking_run_fails_the_task_instead_of_losing_it() {
        let guests = GuestThreads::new(1).unwrap();
        // It panics on its second poll, after a first that counted it as busy.
        let outcome = guests
            .run(
                async {
                    tokio::task::yield_now().await;
                    panic!("boom")
                }
                .boxed(),
            )
            .await;
        match outcome {
            Outcome::Failed { reason: r, details } => {
                assert_eq!(r, reason::HOST_ERROR);
                assert!(details.unwrap_or_default().contains("panic"));
            }
            other => panic!("{other:?}"),
        }
        // The thread survives the panic and runs the next task.
        let next = guests.run(async { Outcome::Completed(None) }.boxed()).await;
        assert_eq!(next, Outcome::Completed(None));
        // And the panic left no count behind: the thread looks idle again.
        let load = &guests.threads[0].load;
        eventually("the counts to go", || {
            load.busy.load(Ordering::Relaxed) == 0 && load.in_flight.load(Ordering::Relaxed) == 0
        });
    }
}
