//! [`Plugin`]: one loaded component (a pre-instance plus where it came from), and
//! [`Plugin::run`], which runs one task in a fresh store and maps what happened to an
//! [`Outcome`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{ComponentExportIndex, InstancePre, TypedFunc};

use super::bindings::swasm::activity::types as wit;
use super::details::{self, Bounded};
use super::engine::{Clock, Compiler};
use super::sandbox::{self, DeadlineExceeded, StoreState};
use super::{MAX_DETAILS_CHARS, MAX_RESULT_CHARS};
use crate::activity::{ActivityTask, ActivityType, HeartbeatHandle, Outcome, reason};
use crate::config::ActivitySettings;

/// A loaded plugin: compiled, linked, ready to instantiate once per task.
pub struct Plugin {
    /// The activity type it serves.
    pub ty: ActivityType,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// sha256 of the file (hex).
    pub hash: String,
    /// Size of the file in bytes.
    pub size: u64,
    pub loaded_at: SystemTime,
    /// Which compiler made the code it runs (Winch until a background upgrade swaps in
    /// Cranelift code, for big components).
    pub compiler: Compiler,
    pub(crate) pre: InstancePre<StoreState>,
    /// The `run` export, whose type was checked when the code was loaded
    /// (`Runtime::check_run`).
    pub(crate) run: ComponentExportIndex,
    /// Kept awake by each task's store, so the epoch ticks while guest code runs.
    pub(crate) clock: Arc<Clock>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("ty", &self.ty)
            .field("path", &self.path)
            .field("hash", &self.hash)
            .field("size", &self.size)
            .field("compiler", &self.compiler)
            .finish_non_exhaustive()
    }
}

/// The parameters of the `run` export, as the host's bindings type them.
pub(crate) type RunParams<'a> = (&'a wit::ActivityTask,);
/// The results of the `run` export, as the host's bindings type them.
pub(crate) type RunResults = (Result<Option<String>, wit::ActivityError>,);

/// Where a run failed, to tell instantiation failures from traps.
enum RunError {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

impl Plugin {
    /// Runs one task in a fresh, sandboxed instance.
    ///
    /// Cancel-safe: dropping the future drops the store, which stops the guest at its next
    /// epoch yield (at most one tick, 10 ms, of guest work later).
    pub async fn run(
        &self,
        task: ActivityTask,
        settings: &ActivitySettings,
        heartbeat: HeartbeatHandle,
    ) -> Outcome {
        let timeout = Duration::from_secs(settings.timeout_s);
        let deadline = Instant::now() + timeout;
        let store = if settings.dirs.is_empty() {
            sandbox::new_store(
                self.pre.engine(),
                self.clock.awake(),
                &task,
                settings,
                heartbeat,
                deadline,
            )
        } else {
            // Opening a granted dir blocks: on a network file system that stops answering
            // it would hold this guest thread, and every run placed on it. It is opened on
            // a blocking thread, and waited for until the task's deadline.
            let (engine, awake) = (self.pre.engine().clone(), self.clock.awake());
            let (task, grants) = (task.clone(), settings.clone());
            let open = tokio::task::spawn_blocking(move || {
                sandbox::new_store(&engine, awake, &task, &grants, heartbeat, deadline)
            });
            match tokio::time::timeout_at(deadline.into(), open).await {
                Ok(Ok(store)) => store,
                Ok(Err(e)) => Err(anyhow::anyhow!("opening the granted dirs: {e:#}")),
                Err(_) => Err(anyhow::anyhow!(
                    "the granted dirs did not open within the task's timeout_s ({} s): is their file system answering?",
                    settings.timeout_s
                )),
            }
        };
        let mut store = match store {
            Ok(store) => store,
            Err(e) => return Outcome::failed(reason::INSTANTIATE, format!("{e:#}")),
        };
        let wit_task = to_wit(task);
        let result = {
            let run = async {
                let instance = self
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(RunError::Instantiate)?;
                let func = instance.get_func(&mut store, self.run).ok_or_else(|| {
                    RunError::Instantiate(wasmtime::format_err!("the instance has no `run`"))
                })?;
                // SAFETY: `Runtime::check_run` type-checked `run` as `RunParams ->
                // RunResults` on an instance of this same component when it was loaded, and
                // a component's types are the same in each of its instances. (bindgen checks
                // it again for each instance; skipping that is about 5% of a Rust task.)
                let run = unsafe { TypedFunc::<RunParams<'_>, RunResults>::new_unchecked(func) };
                let (result,) = run
                    .call_async(&mut store, (&wit_task,))
                    .await
                    .map_err(RunError::Call)?;
                Ok(result)
            };
            // The epoch callback interrupts running guest code at the deadline; this
            // backstop also ends a guest that waits in a host call (e.g. a long sleep).
            match tokio::time::timeout(timeout + Duration::from_millis(500), run).await {
                Ok(r) => r,
                Err(_) => Err(RunError::Call(wasmtime::Error::new(DeadlineExceeded))),
            }
        };
        let memory_denied = store.data_mut().limits.denied.take();
        let stderr = store.data().output.as_ref().and_then(|o| o.stderr_tail());
        outcome(result, memory_denied, stderr, timeout)
    }
}

/// What happened, as SWF will record it. When the host ends the run (trap, memory limit,
/// timeout, failed instantiation), the details also hold the guest's last stderr lines.
fn outcome(
    result: Result<Result<Option<String>, wit::ActivityError>, RunError>,
    memory_denied: Option<String>,
    stderr: Option<String>,
    timeout: Duration,
) -> Outcome {
    let stderr = stderr.as_deref();
    match result {
        Ok(Ok(Some(r))) if r.chars().count() > MAX_RESULT_CHARS => Outcome::failed(
            reason::RESULT_TOO_LARGE,
            format!(
                "the result has {} characters; SWF accepts at most {MAX_RESULT_CHARS}",
                r.chars().count()
            ),
        ),
        Ok(Ok(r)) => Outcome::Completed(r),
        Ok(Err(wit::ActivityError::Failed(f))) => Outcome::Failed {
            reason: f.reason,
            details: f.details,
        },
        Ok(Err(wit::ActivityError::Canceled(d))) => Outcome::Canceled(d),
        Err(RunError::Instantiate(e)) => match memory_denied {
            Some(m) => Outcome::failed(
                reason::MEMORY_LIMIT,
                describe(&format!("{m} while instantiating"), Some(&e), stderr),
            ),
            None => Outcome::failed(reason::INSTANTIATE, describe("", Some(&e), stderr)),
        },
        Err(RunError::Call(e)) => {
            if e.downcast_ref::<DeadlineExceeded>().is_some() {
                let what = format!("interrupted after timeout_s = {} s", timeout.as_secs());
                Outcome::failed(reason::TIMEOUT, describe(&what, None, stderr))
            } else if let Some(m) = memory_denied {
                Outcome::failed(
                    reason::MEMORY_LIMIT,
                    describe(&format!("{m}; then"), Some(&e), stderr),
                )
            } else if let Some(wasmtime_wasi::I32Exit(code)) = e.downcast_ref() {
                // Not a crash: the guest's code chose to end the process. The backtrace of
                // `exit` says nothing the message does not.
                let what = format!(
                    "the guest called exit({code}) instead of returning from `run`; exit ends the instance, so the task has no result: return a result or an activity-error from `run`"
                );
                Outcome::failed(reason::TRAP, describe(&what, None, stderr))
            } else {
                Outcome::failed(reason::TRAP, describe("", Some(&e), stderr))
            }
        }
    }
}

/// Failure details: `what` and the error's causes on one line, the guest's last stderr
/// lines (a panic message, an exception), then the wasm backtrace, in at most
/// [`MAX_DETAILS_CHARS`] characters, written with that bound (function names come from the
/// guest: see `details`). The host's own Rust backtrace, which wasmtime captures under
/// `RUST_BACKTRACE`, is left out: it says nothing about the guest and would fill the history.
fn describe(what: &str, error: Option<&wasmtime::Error>, stderr: Option<&str>) -> String {
    let mut details = Bounded::new(MAX_DETAILS_CHARS);
    details.push(what);
    if let Some(error) = error {
        details::write_causes(&mut details, error, !what.is_empty());
    }
    if let Some(lines) = stderr {
        details.push("\n\nguest stderr, last lines:\n");
        details.push(lines);
    }
    if let Some(backtrace) = error.and_then(details::backtrace) {
        details.push("\n\n");
        details::write_backtrace(&mut details, backtrace);
    }
    details.into_string()
}

fn to_wit(t: ActivityTask) -> wit::ActivityTask {
    wit::ActivityTask {
        activity_id: t.activity_id,
        activity_type: wit::ActivityType {
            name: t.activity_type.name,
            version: t.activity_type.version,
        },
        workflow_execution: wit::WorkflowExecution {
            workflow_id: t.workflow_id,
            run_id: t.run_id,
        },
        started_event_id: t.started_event_id,
        task_list: t.task_list,
        input: t.input,
    }
}
