//! swf-local: an Amazon SWF-compatible endpoint on loopback, for development and tests.
//!
//! It speaks awsJson 1.0 over HTTP/1.1 (`POST /`, `X-Amz-Target:
//! SimpleWorkflowService.<Operation>`) so unmodified SWF clients (aws-sdk-swf, boto3, the
//! AWS CLI) work against it. It accepts any SigV4 signature without checking it: bind it to
//! loopback only (the default).
//!
//! What it does like SWF: long polls held until a task arrives (or the poll timeout, then
//! an empty task: no `taskToken`, which SDKs show as ""), each task handed to exactly one
//! poller, the highest `taskPriority` first (oldest first among equals), paging with page
//! tokens that live 24 hours (60 s for PollForDecisionTask's history pages; at most 20,000
//! live tokens, the oldest dropped first; a token continues only the query that got it, in
//! its domain, at each call's own `maximumPageSize`; a List* listing is snapshotted at its
//! first page), heartbeats with `cancelRequested`, the four
//! activity timeouts, decision task and workflow timeouts driven by timers, cancellation,
//! validation from botocore's service model (a body that cannot be deserialized, such as
//! one that is not JSON or has a member of the wrong JSON type, is a
//! SerializationException; a constraint violation is a ValidationException), SWF's error
//! shapes, retention-based cleanup of closed executions, decision task list overrides
//! (`taskList` / `taskListScheduleToStartTimeout` of RespondDecisionTaskCompleted), and
//! these limits: requests of at most 1 MB (a larger one is a ValidationException), at most
//! 10,000 types of each kind per domain and a retention of at most 90 days
//! (LimitExceededFault), execution, decision task and activity task timeouts of at most one
//! year, 1,000 open activity tasks per execution, 1,000 pollers per task list
//! (LimitExceededFault), 100 domains and 100,000 open executions per domain
//! (LimitExceededFault; a child start over it fails with OPEN_WORKFLOWS_LIMIT_EXCEEDED),
//! and 25,000 events per history: once a history holds 24,999 events nothing more is
//! recorded, and the run is terminated (cause EVENT_LIMIT_EXCEEDED, the 25,000th event)
//! before the call that filled it returns; a decision batch stops at the decision that
//! fills it.
//!
//! Every decision, with SWF's events (a batch with an invalid decision, or with a decision
//! that closes the run anywhere but last, is refused whole with a ValidationException and
//! the decision task stays started): child workflows (StartChildWorkflowExecution, the
//! parent told of the child's start and close, the parent's child policy applied to its
//! open children when it is terminated or times out, at most 1,000 open children), signals
//! and cancel requests
//! to other executions of the domain (UNKNOWN_EXTERNAL_WORKFLOW_EXECUTION when there is no
//! such open execution). There is no Lambda: ScheduleLambdaFunction records
//! ScheduleLambdaFunctionFailed with cause LAMBDA_SERVICE_NOT_AVAILABLE_IN_REGION.
//!
//! SWF's API rate quotas ([`quotas`]): token buckets for PollForActivityTask,
//! RecordActivityTaskHeartbeat (also per workflow execution), the three activity task
//! answers and RegisterActivityType, with SWF's default sizes and refill rates. A request
//! over its quota gets ThrottlingException. A ScheduleActivityTask decision beyond 2,000
//! a second on one task list fails with ACTIVITY_CREATION_RATE_EXCEEDED. `--quotas none` (or [`QuotaSet::none`]) turns
//! them off, e.g. to measure a worker beyond SWF's default rates; `POST /_quotas` changes
//! them at run time.
//!
//! Resource tags on domains (RegisterDomain's `tags`, TagResource, UntagResource,
//! ListTagsForResource), at most 50 per domain (TooManyTagsFault).
//!
//! A deprecated domain takes no new executions or types: StartWorkflowExecution and
//! Register*Type answer UnknownResourceFault naming it (the faults these operations list);
//! its open executions go on.
//!
//! What it does not do: run Lambda tasks (see above), rate quotas for the operations
//! [`QuotaSet::swf`] leaves out (they are never throttled).
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
//! - [`timers`]: the timer driver (timeouts, user timers, retention).
//! - [`faults`]: fault injection rules.
//! - [`quotas`]: SWF's API rate quotas (token buckets).
//! - [`state`]: the [`State`] a server serves, kept across restarts, and the test hooks on it
//!   (page token age, history and open-execution limits).
//!
//! # Control endpoints (for tests that drive a `swasm local-swf` process)
//! - `GET /_stats` -> `{"calls": {"PollForActivityTask": 12, ...}}`: SWF calls received per
//!   operation (injected faults included).
//! - `GET /_activities?domain=D` -> `{"open": [...], "closed": [...]}`: D's open activity
//!   tasks and the last 2000 closed ones, each with its last heartbeat details (debugging).
//! - `GET /_faults` -> `{"rules": [...]}`: the active fault rules.
//! - `POST /_faults` with `{"clear": true, "rules": [RULE, ...]}` (both members optional;
//!   `clear` removes existing rules first) -> the active rules; 400 for a rule that names
//!   an operation SWF does not have. A RULE is
//!   `{"kind": KIND, "operation": "PollForActivityTask", "count": 3}` where `operation`
//!   absent means every operation and `count` absent means until cleared, and KIND is one of
//!   `"status500"`, `"status503"`, `"throttle"` (400 ThrottlingException), `"reset"` (close
//!   the connection without answering), `"hang"` (with `"ms": 5000`: hold the request that
//!   long, then serve it), `"late_response"` (with `"ms"`: serve the request, then hold
//!   the response that long, as if it were lost on its way back), `"operation_not_permitted"`, `"unknown_resource"`,
//!   `"expired_token"` (400 ExpiredTokenException).
//!   Example: `curl -XPOST localhost:8700/_faults -d '{"rules":[{"kind":"throttle","count":2}]}'`.
//! - `GET /_quotas` -> the quotas applied, e.g. `{"operations": {"PollForActivityTask":
//!   {"bucket": 2000, "refill_per_s": 200.0}, ...}, "heartbeats_per_execution": {"bucket":
//!   1000, "refill_per_s": 1000.0}, "activities_scheduled_per_task_list": {...}}`.
//!   `POST /_quotas` with a body of that shape replaces them, every bucket full (`{}` = no
//!   quotas). `GET /_stats` also has `"throttled": {"PollForActivityTask": 3, ...}`: the
//!   requests (and ScheduleActivityTask decisions) the quotas refused.

pub mod decisions;
pub mod domains;
pub mod error;
pub mod executions;
pub mod faults;
pub mod history;
pub mod model;
pub mod quotas;
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
pub use quotas::{QuotaSet, Quotas, Rate};
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
    /// API rate quotas (default: SWF's, [`QuotaSet::swf`]); keep a clone to change them at
    /// run time. Benchmarks that measure a worker, not SWF's quotas, use [`QuotaSet::none`].
    pub quotas: Quotas,
}

/// SWF-LIMITS.md: "Pollers per task list: 1000".
pub const MAX_POLLERS_PER_TASK_LIST: usize = 1000;

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_timeout: Duration::from_secs(60),
            faults: Faults::default(),
            max_pollers_per_task_list: MAX_POLLERS_PER_TASK_LIST,
            quotas: Quotas::default(),
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
    /// API rate quotas: "swf" (default: SWF's default quotas, so a worker that calls too
    /// often is throttled here as on SWF), "none", or a JSON object as `GET /_quotas` shows,
    /// e.g. '{"operations":{"PollForActivityTask":{"bucket":10,"refill_per_s":2}}}'.
    #[arg(long, default_value = "swf", value_parser = parse_quotas)]
    pub quotas: QuotaSet,
}

fn parse_quotas(arg: &str) -> Result<QuotaSet, String> {
    QuotaSet::parse(arg)
}

/// Runs `swasm local-swf`: binds, prints `listening on http://IP:PORT` as the first line of
/// stdout, serves until Ctrl-C or SIGTERM.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let faults = Faults::default();
    if let Some(json) = &args.faults {
        let rules: Vec<FaultRule> =
            serde_json::from_str(json).context("--faults: invalid JSON rules")?;
        for rule in &rules {
            rule.check().map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
        }
        for rule in rules {
            faults.add(rule);
        }
    }
    let opts = Options {
        poll_timeout: Duration::from_millis(args.poll_timeout_ms),
        faults,
        quotas: Quotas::new(args.quotas),
        ..Options::default()
    };
    let server = Server::bind(args.listen, opts)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if !args.listen.ip().is_loopback() {
        // stderr, so the first line of stdout stays the address.
        eprintln!(
            "warning: --listen {} is not a loopback address: swf-local accepts any request \
             signature, so anyone who can reach this port can drive its workflows",
            args.listen
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn quotas_default_to_swfs_and_a_bad_value_names_the_flag_and_the_fault() {
        let cli = Cli::try_parse_from(["swf-local"]).unwrap();
        assert_eq!(cli.args.quotas, QuotaSet::swf());
        let cli = Cli::try_parse_from(["swf-local", "--quotas", "none"]).unwrap();
        assert_eq!(cli.args.quotas, QuotaSet::none());
        let err = Cli::try_parse_from([
            "swf-local",
            "--quotas",
            r#"{"operations":{"Poll":{"bucket":1,"refill_per_s":1}}}"#,
        ])
        .err()
        .expect("an unknown operation is refused")
        .to_string();
        assert!(
            err.contains("--quotas") && err.contains("operations.Poll"),
            "{err}"
        );
    }
}
