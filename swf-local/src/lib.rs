//! swf-local: an Amazon SWF-compatible endpoint on loopback, for development and tests.
//!
//! It speaks awsJson 1.0 over HTTP/1.1 (`POST /`, `X-Amz-Target:
//! SimpleWorkflowService.<Operation>`) so unmodified SWF clients (aws-sdk-swf, boto3, the
//! AWS CLI) work against it. It accepts any SigV4 signature without checking it: bind it to
//! loopback only (the default).
//!
//! What it does like SWF: long polls held until a task arrives (or the poll timeout, then an
//! empty task: `"taskToken": ""`), each task handed to exactly one poller, the highest
//! `taskPriority` first (oldest first among equals), history paging with 60 s page
//! tokens, heartbeats with `cancelRequested`, the four activity timeouts, decision task and
//! workflow timeouts driven by timers, cancellation, validation from botocore's service
//! model, SWF's error shapes, retention-based cleanup of closed executions, decision task
//! list overrides (`taskList` / `taskListScheduleToStartTimeout` of
//! RespondDecisionTaskCompleted), and these limits: requests of at most 1 MB (a larger one is
//! a ValidationException), at most 10,000 types of each kind per domain and a retention of at
//! most 90 days (LimitExceededFault), executions and activity task timeouts of at most one
//! year, 1,000 open activity tasks per execution, 1,000 pollers per task list
//! (LimitExceededFault).
//!
//! Every decision, with SWF's events: child workflows (StartChildWorkflowExecution, the
//! parent told of the child's start and close, the parent's child policy applied to its
//! open children when it is terminated or times out, at most 1,000 open children), signals
//! and cancel requests
//! to other executions of the domain (UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION when there is no
//! such open execution). There is no Lambda: ScheduleLambdaFunction records
//! ScheduleLambdaFunctionFailed with cause LAMBDA_SERVICE_NOT_AVAILABLE_IN_REGION.
//!
//! What it does not do: run Lambda tasks (see above), resource tags (refused by name), the
//! API rate quotas (emulate throttling with the `throttle` fault rule below).
//!
//! # Layout
//! - [`server`]: accept loop, fault injection in front, router, `X-Amz-Target` dispatch.
//! - [`error`]: SWF fault types and their `__type` strings.
//! - [`validate`]: validation generated from `service-model.json` (botocore's model).
//! - [`model`]: the in-memory state: domains, types, executions, queues, tokens.
//! - [`history`]: decision scheduling, closing executions, paging.
//! - [`domains`]: domain / activity type / workflow type operations.
//! - [`executions`]: start, describe, history, list, signal, cancel, terminate.
//! - [`decisions`]: RespondDecisionTaskCompleted and every decision.
//! - [`tasks`]: long polls, heartbeats, activity responses, pending counts.
//! - [`timers`]: the timer driver (timeouts, user timers, retention, token expiry).
//! - [`faults`]: fault injection rules.
//! - [`state`]: the [`State`] a server serves, kept across restarts.
//!
//! # Control endpoints (for tests that drive a `swasm local-swf` process)
//! - `GET /_stats` -> `{"calls": {"PollForActivityTask": 12, ...}}`: SWF calls received per
//!   operation (injected faults included).
//! - `GET /_activities?domain=D` -> `{"open": [...], "closed": [...]}`: D's open activity
//!   tasks and the last 2000 closed ones, each with its last heartbeat details (debugging).
//! - `GET /_faults` -> `{"rules": [...]}`: the active fault rules.
//! - `POST /_faults` with `{"clear": true, "rules": [RULE, ...]}` (both members optional;
//!   `clear` removes existing rules first) -> the active rules. A RULE is
//!   `{"kind": KIND, "operation": "PollForActivityTask", "count": 3}` where `operation`
//!   absent means every operation and `count` absent means until cleared, and KIND is one of
//!   `"status500"`, `"status503"`, `"throttle"` (400 ThrottlingException), `"reset"` (close
//!   the connection without answering), `"hang"` (with `"ms": 5000`: hold the request that
//!   long, then serve it), `"operation_not_permitted"`, `"unknown_resource"`.
//!   Example: `curl -XPOST localhost:8700/_faults -d '{"rules":[{"kind":"throttle","count":2}]}'`.

pub mod decisions;
pub mod domains;
pub mod error;
pub mod executions;
pub mod faults;
pub mod history;
pub mod model;
pub mod server;
pub mod state;
pub mod tasks;
pub mod timers;
pub mod validate;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

pub use error::{Fault, SwfError};
pub use faults::{FaultKind, FaultRule, Faults};
pub use server::Server;
pub use state::State;

/// How a [`Server`] behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a poll is held before it returns an empty task (SWF: 60 s); tests shorten it.
    pub poll_timeout: Duration,
    /// Fault injection rules (default: none); keep a clone to change them at run time.
    pub faults: Faults,
    /// How many long polls one task list (activity or decision) holds at once; one more gets
    /// LimitExceededFault. Default [`MAX_POLLERS_PER_TASK_LIST`] (1000, as SWF). Only tests
    /// lower it, to reach the limit with a few polls; `swasm local-swf` has no flag for it.
    pub max_pollers_per_task_list: usize,
}

/// SWF-LIMITS.md: "Pollers per task list: 1000".
pub const MAX_POLLERS_PER_TASK_LIST: usize = 1000;

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_timeout: Duration::from_secs(60),
            faults: Faults::default(),
            max_pollers_per_task_list: MAX_POLLERS_PER_TASK_LIST,
        }
    }
}

/// Arguments of `swasm local-swf`: a local SWF endpoint for development only. It binds
/// loopback by default and accepts any request signature.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port. Default 127.0.0.1:8700 (loopback):
    /// swf-local accepts any signature, so it is for development only and must not be
    /// exposed beyond this machine.
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// How long a poll is held before it returns an empty task, in ms (default 60000, as SWF).
    #[arg(long, default_value_t = 60_000)]
    pub poll_timeout_ms: u64,
    /// Fault rules to start with, as a JSON array of the rules `POST /_faults` takes
    /// (default: none), e.g. '[{"kind":"status503","operation":"PollForActivityTask","count":2}]'.
    #[arg(long)]
    pub faults: Option<String>,
}

/// Runs `swasm local-swf`: binds, prints `listening on http://IP:PORT` as the first line of
/// stdout, serves until Ctrl-C or SIGTERM.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let faults = Faults::default();
    if let Some(json) = &args.faults {
        let rules: Vec<FaultRule> =
            serde_json::from_str(json).context("--faults: invalid JSON rules")?;
        for rule in rules {
            faults.add(rule);
        }
    }
    let opts = Options {
        poll_timeout: Duration::from_millis(args.poll_timeout_ms),
        faults,
        ..Options::default()
    };
    let server = Server::bind(args.listen, opts)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url()).context("writing to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    server.run(shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
