//! `swasm run`: wires the registry, the SWF client, the pollers and the metrics server
//! together, and runs the two-phase shutdown.
//!
//! Shutdown, as the operator sees it: the first signal stops new polls; polls already sent
//! return (within the poll timeout) and their tasks run; each task gets `shutdown_grace_s`
//! from the signal, or from its arrival if it came on a poll still in flight; what is still
//! running then is interrupted and answered Failed `swasm.Shutdown`; heartbeats are
//! flushed; `run` returns `Ok` (exit 0).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::activity::{ActivityTask, ActivityType, HeartbeatHandle, Outcome};
use crate::config::{ActivitySettings, Config};
use crate::dispatch::{Activities, Dispatcher, Runner};
use crate::guests::GuestThreads;
use crate::heartbeat::ThrottlePolicy;
use crate::metrics::{Metrics, PluginSource, PluginStatus, RejectedStatus};
use crate::poller::{TaskList, run_pollers};
use crate::register::Report;
use crate::registry::Registry;
use crate::runtime::{Plugin, Runtime};
use crate::shutdown::Shutdown;
use crate::swf::{Backoff, SwfClient, SwfError};

/// Flags of `swasm run` that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub register: Registration,
}

/// Which activity types the worker registers with SWF.
#[derive(Debug, Clone, Default)]
pub enum Registration {
    /// None: someone else registers them (`swasm register`, a deploy step).
    #[default]
    Off,
    /// `--register`: the domain and every type the registry serves before polling (a file
    /// that does not load registers nothing), then each type that starts serving later (a
    /// new file in a plugin dir) as it loads.
    All,
    /// Only the types that start serving later: the caller registered the domain and the
    /// types of this report (those the registry served) before it started the worker
    /// (`swasm dev` prints the report).
    Later(Report),
}

/// Runs the worker until `signal` resolves, then shuts down gracefully. A signal during
/// start-up (plugins compiling, a load check, the credential chain) stops it there, before
/// anything is polled.
pub async fn run(
    config: Config,
    opts: RunOptions,
    signal: impl Future<Output = ()> + Send,
) -> Result<()> {
    let mut signal = std::pin::pin!(signal);
    let config = Arc::new(config);
    tracing::info!(
        task_lists = config.task_lists.len(),
        "starting: loading the plugins"
    );
    let starting = async {
        let runtime = Runtime::new(&config).context("cannot set up the WebAssembly runtime")?;
        let registry = Registry::start(&config, runtime)
            .await
            .context("cannot load the plugins")?;
        let swf: Arc<dyn SwfClient> = Arc::new(crate::swf::connect(&config).await?);
        anyhow::Ok((registry, swf))
    };
    let (registry, swf) = tokio::select! {
        // A signal that came first wins, whatever is ready.
        biased;
        () = &mut signal => {
            tracing::info!("stopped during start-up; nothing was polled");
            return Ok(());
        }
        started = starting => started?,
    };
    let shutdown = Shutdown::new(Duration::from_secs(config.shutdown_grace_s));
    let mut worker = std::pin::pin!(run_with(config, opts, swf, registry, shutdown.clone()));
    tokio::select! {
        biased;
        () = &mut signal => shutdown.initiate(),
        ended = &mut worker => return ended,
    }
    worker.await
}

/// [`run`] with its parts supplied, for `swasm dev`: serves until `shutdown` is initiated,
/// then shuts down gracefully. Whoever initiates it knows the pollers already see it.
pub async fn run_with(
    config: Arc<Config>,
    opts: RunOptions,
    swf: Arc<dyn SwfClient>,
    registry: Arc<Registry>,
    shutdown: Shutdown,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    // Not ready from the signal on: a host that drains polls nothing.
    metrics.watch_shutdown(shutdown.clone());
    let plugins: Arc<dyn PluginSource> = Arc::new(RegistrySource(registry.clone()));
    metrics.register_plugin_source(plugins.clone());
    if let Some(listen) = &config.metrics.listen {
        crate::metrics::serve(listen, metrics.clone(), plugins).await?;
    }

    // Subscribed first, so a type that loads while the start-up registration runs is not
    // missed.
    let loads = registry.subscribe();
    let registered = match opts.register {
        Registration::Off => None,
        Registration::All => Some(tokio::select! {
            r = register_with_retry(&config, swf.as_ref(), &registry) => r?,
            () = shutdown.stopping() => return Ok(()),
        }),
        Registration::Later(report) => Some(report),
    };
    // Ends with this function: no registration outlives the worker.
    let _registering = registered.map(|report| {
        let registered = report.types.into_iter().map(|(_, ty, _)| ty).collect();
        AbortOnDropHandle::new(tokio::spawn(register_new_types(
            config.clone(),
            swf.clone(),
            registry.clone(),
            loads,
            registered,
        )))
    });
    // Ends with this function too (in `swasm dev`, the process outlives the worker).
    let _probing = AbortOnDropHandle::new(tokio::spawn(probe_domain(
        config.clone(),
        swf.clone(),
        metrics.clone(),
    )));

    let dispatcher = Arc::new(Dispatcher {
        policy: Arc::new(ThrottlePolicy::new(swf.clone())),
        swf,
        activities: Arc::new(RegistryActivities(registry)),
        config: config.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        guests: Arc::new(GuestThreads::per_core()?),
    });
    let tracker = TaskTracker::new();
    let mut pollers = JoinSet::new();
    for tl in &config.task_lists {
        let list = TaskList::new(&tl.name, tl.max_concurrent, &metrics);
        pollers.spawn(run_pollers(
            dispatcher.clone(),
            list,
            tl.pollers,
            tracker.clone(),
        ));
        tracing::info!(domain = %config.swf.domain, task_list = %tl.name, pollers = tl.pollers, max_concurrent = tl.max_concurrent, "polling");
    }

    shutdown.stopping().await;
    tracing::info!(
        grace = ?shutdown.grace(),
        running = tracker.len(),
        "shutting down: no new polls; waiting for polls in flight and running tasks"
    );
    // A poll in flight returns within SWF's poll time (60 s): cancelling it could lose the
    // task SWF is handing out. A task it brings runs with a grace period of its own, and
    // each task ends itself when its grace is over (`Shutdown::task_over`).
    while pollers.join_next().await.is_some() {}
    tracker.close();
    tracker.wait().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The waits of registration and of the domain probe: 200 ms doubling up to 30 s.
fn registration_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
}

/// Registers the domain and the types the registry serves, before polling; an unreachable
/// endpoint is retried (the worker is not ready meanwhile), anything else is fatal. A file
/// the registry rejected serves nothing, so its type is not registered.
async fn register_with_retry(
    config: &Config,
    swf: &dyn SwfClient,
    registry: &Registry,
) -> Result<Report> {
    let mut backoff = registration_backoff();
    // What is done stays done: a retry goes on from the item that failed.
    let mut report = Report::default();
    loop {
        let served = crate::register::served_types(config, &registry.plugins());
        match crate::register::register_remaining(config, swf, &served, &mut report).await {
            Ok(()) => {
                for line in report.to_string().lines() {
                    tracing::info!("register: {line}");
                }
                return Ok(report);
            }
            Err(e) if swf_may_recover(&e) => {
                // Jittered: hosts of a fleet started together, throttled together, must
                // not retry together.
                let wait = backoff.next_wait();
                tracing::warn!(error = %format!("{e:#}"), "registration failed; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.context("--register")),
        }
    }
}

/// Whether a registration error is SWF being unreachable, throttling or failing (5xx):
/// worth another try later. A limit (10,000 types in a domain, 100 domains) stays reached.
fn swf_may_recover(e: &anyhow::Error) -> bool {
    e.downcast_ref::<SwfError>()
        .is_some_and(|e| e.is_retryable() && !matches!(e, SwfError::LimitExceeded(_)))
}

/// With `--register`, and in `swasm dev`: registers each type that starts serving after
/// start-up (a new `name@version.wasm` dropped into a plugin dir), so a decider can
/// schedule it without a restart or a `swasm register`. `registered`: the types start-up
/// registration covered. A failure SWF may get over (unreachable, throttled, 5xx) is
/// retried with backoff; any other is logged once and not retried for that type.
async fn register_new_types(
    config: Arc<Config>,
    swf: Arc<dyn SwfClient>,
    registry: Arc<Registry>,
    mut loads: tokio::sync::watch::Receiver<()>,
    mut registered: HashSet<ActivityType>,
) {
    let mut backoff = registration_backoff();
    loop {
        let mut retry = false;
        for (task_list, ty) in crate::register::served_types(&config, &registry.plugins()) {
            if registered.contains(&ty) {
                continue;
            }
            match crate::register::register_type(&config, swf.as_ref(), &task_list, &ty).await {
                Ok(_) => {
                    registered.insert(ty);
                }
                Err(e) if swf_may_recover(&e) => {
                    tracing::warn!(activity_type = %ty, error = %format!("{e:#}"), "registering a new plugin's type failed; retrying with backoff");
                    retry = true;
                }
                Err(e) => {
                    tracing::error!(activity_type = %ty, error = %format!("{e:#}"), "cannot register a new plugin's type; register it yourself (swasm register)");
                    registered.insert(ty);
                }
            }
        }
        if retry {
            tokio::time::sleep(backoff.next_wait()).await;
            continue;
        }
        backoff.reset();
        if loads.changed().await.is_err() {
            return;
        }
    }
}

/// DescribeDomain until it answers, for readiness and an early, clear error about the domain.
async fn probe_domain(config: Arc<Config>, swf: Arc<dyn SwfClient>, metrics: Arc<Metrics>) {
    let mut backoff = registration_backoff();
    let mut logged = false;
    loop {
        match swf.describe_domain().await {
            Ok(()) => {
                metrics.domain_answered();
                return;
            }
            Err(SwfError::TaskGone(msg)) => {
                tracing::error!(domain = %config.swf.domain, %msg, "the domain is not registered at this endpoint (set [swf] register_domain = true and use --register, or register it)");
                return;
            }
            Err(e) if e.is_retryable() => {
                if !logged {
                    let what = match e {
                        SwfError::NoCredentials(_) => "no AWS credentials yet",
                        SwfError::CredentialsRefused(_) => "SWF refuses the AWS credentials",
                        _ => "SWF endpoint not answering yet",
                    };
                    tracing::warn!(domain = %config.swf.domain, error = %e, "{what}; retrying with backoff");
                    logged = true;
                }
                tokio::time::sleep(backoff.next_wait()).await;
            }
            Err(e) => {
                tracing::error!(domain = %config.swf.domain, error = %e, "DescribeDomain failed");
                return;
            }
        }
    }
}

/// The registry as dispatch sees it.
struct RegistryActivities(Arc<Registry>);

impl Activities for RegistryActivities {
    fn lookup(&self, task_list: &str, ty: &ActivityType) -> Option<Arc<dyn Runner>> {
        self.0.lookup(task_list, ty).map(|p| p as Arc<dyn Runner>)
    }
    fn served(&self, task_list: &str) -> Vec<ActivityType> {
        self.0.served(task_list)
    }
}

impl Runner for Plugin {
    fn run(
        self: Arc<Self>,
        task: ActivityTask,
        settings: Arc<ActivitySettings>,
        heartbeat: HeartbeatHandle,
    ) -> BoxFuture<'static, Outcome> {
        Box::pin(async move { Plugin::run(&self, task, &settings, heartbeat).await })
    }

    /// The start of the file's sha256, as `/status` and `swasm plugins` show it.
    fn build(&self) -> Option<&str> {
        self.hash.get(..12)
    }
}

/// The registry as `/status` and `/metrics` see it.
struct RegistrySource(Arc<Registry>);

impl PluginSource for RegistrySource {
    fn plugins(&self) -> Vec<PluginStatus> {
        self.0
            .plugins()
            .into_iter()
            .map(|p| PluginStatus {
                task_list: p.task_list,
                name: p.ty.name,
                version: p.ty.version,
                path: p.path.display().to_string(),
                hash: p.hash,
                size: p.size,
                loaded_at_unix_ms: p
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            })
            .collect()
    }

    fn rejected(&self) -> Vec<RejectedStatus> {
        self.0
            .rejected()
            .into_iter()
            .map(|r| RejectedStatus {
                task_list: r.task_list,
                path: r.path.display().to_string(),
                why: r.why,
            })
            .collect()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.0.stats();
        vec![
            ("loads", s.loads.load(Relaxed)),
            ("swaps", s.swaps.load(Relaxed)),
            ("rejects", s.rejects.load(Relaxed)),
            ("retirements", s.retirements.load(Relaxed)),
            ("compiles", s.compiles.load(Relaxed)),
            ("cache_hits", s.cache_hits.load(Relaxed)),
            ("winch_loads", s.winch_loads.load(Relaxed)),
            ("upgrades", s.upgrades.load(Relaxed)),
            ("busy", s.busy.load(Relaxed)),
            ("unreadable", s.unreadable.load(Relaxed)),
        ]
    }
}
