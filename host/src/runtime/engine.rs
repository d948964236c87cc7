//! [`Runtime`]: the engine, the linker and the epoch ticker, built once per process.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use super::bindings;
use super::sandbox::StoreState;
use crate::config::Config;

/// The pinned wasmtime version (workspace `Cargo.toml`); part of cache keys.
pub(crate) const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch ticks. Deadlines are checked, and looping guests yield, once a tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What the engine is sized for. Derived from the config by [`RuntimeOptions::from_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Component instances alive at once (pooling allocator slots): the sum of all task
    /// lists' `max_concurrent` plus a margin.
    pub max_instances: u32,
    /// Largest linear memory any activity may grow to (per-store limits go below this).
    pub max_memory_mb: u64,
    /// WebAssembly stack limit. wasmtime sets it per engine, so this is the largest
    /// `max_stack_kb` of all activities.
    pub max_stack_kb: u64,
    /// Compile with Winch (fast baseline compiler) instead of Cranelift.
    pub winch: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_instances: 64,
            max_memory_mb: 256,
            max_stack_kb: 512,
            winch: false,
        }
    }
}

impl RuntimeOptions {
    /// Sizes the engine for everything the config can run at once.
    pub fn from_config(config: &Config) -> RuntimeOptions {
        let slots: usize = config.task_lists.iter().map(|t| t.max_concurrent).sum();
        let settings = config
            .activities
            .keys()
            .filter_map(|k| crate::activity::ActivityType::parse(k));
        let mut max_memory_mb = config.defaults.memory_mb;
        let mut max_stack_kb = config.defaults.max_stack_kb;
        for ty in settings {
            let s = config.settings_for(&ty);
            max_memory_mb = max_memory_mb.max(s.memory_mb);
            max_stack_kb = max_stack_kb.max(s.max_stack_kb);
        }
        RuntimeOptions {
            // `swasm invoke`-style side runs and the registry's validation need a few more.
            max_instances: u32::try_from(slots + 16).unwrap_or(u32::MAX).min(10_000),
            max_memory_mb,
            max_stack_kb,
            winch: false,
        }
    }
}

/// The one wasmtime engine of the process, its linker, and the thread that ticks its epoch.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) options: RuntimeOptions,
    /// Hex digest of everything that makes compiled code loadable by this engine: the
    /// wasmtime version and the engine's compile-affecting settings. Part of cache keys.
    pub(crate) compat_key: String,
    ticker: Ticker,
}

impl Runtime {
    /// The runtime for `swasm run`, sized from the config.
    pub fn new(config: &Config) -> Result<Arc<Runtime>> {
        Self::with_options(RuntimeOptions::from_config(config))
    }

    /// A small runtime for `swasm invoke` / `swasm check` (no config at hand).
    pub fn for_invoke() -> Result<Arc<Runtime>> {
        Self::with_options(RuntimeOptions {
            max_instances: 16,
            ..RuntimeOptions::default()
        })
    }

    pub fn with_options(options: RuntimeOptions) -> Result<Arc<Runtime>> {
        let engine = Engine::new(&engine_config(&options)?)
            .map_err(anyhow::Error::from)
            .context("cannot create the wasmtime engine")?;
        let mut linker = Linker::<StoreState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI p2")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking wasi:http")?;
        bindings::Plugin::add_to_linker::<_, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking swasm:activity/host")?;
        let compat_key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("wasmtime-{WASMTIME_VERSION}-{:016x}", h.finish())
        };
        let ticker = Ticker::start(engine.clone());
        Ok(Arc::new(Runtime {
            engine,
            linker,
            options,
            compat_key,
            ticker,
        }))
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// The key under which compiled code of this engine may be cached.
    pub fn compat_key(&self) -> &str {
        &self.compat_key
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn engine_config(o: &RuntimeOptions) -> Result<wasmtime::Config> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    let stack = usize::try_from(o.max_stack_kb.max(64) * 1024).context("max_stack_kb too large")?;
    c.max_wasm_stack(stack);
    // Host calls made by the guest run on the same fiber stack: keep room beyond the wasm limit.
    c.async_stack_size(stack + 1024 * 1024);
    c.strategy(if o.winch {
        Strategy::Winch
    } else {
        Strategy::Cranelift
    });
    c.parallel_compilation(true);
    c.memory_init_cow(true);

    let n = o.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n);
    // Python and JavaScript components hold many core instances, tables and memories each.
    pool.max_core_instances_per_component(64);
    pool.total_core_instances(n.saturating_mul(16));
    pool.max_memories_per_component(8);
    pool.total_memories(n.saturating_mul(2));
    pool.max_tables_per_component(64);
    pool.total_tables(n.saturating_mul(16));
    pool.total_stacks(n);
    pool.table_elements(200_000);
    pool.max_core_instance_size(8 << 20);
    pool.max_component_instance_size(8 << 20);
    let max_memory =
        usize::try_from(o.max_memory_mb.max(1) << 20).context("memory_mb too large")?;
    pool.max_memory_size(max_memory);
    pool.total_gc_heaps(0);
    // Keep a few slots warm so repeated tasks of one plugin reuse their memory image.
    pool.max_unused_warm_slots(n.min(100));
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(c)
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until stopped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("swasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot spawn the epoch ticker thread");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
