//! [`Runtime`]: the engines, their linkers and the epoch ticker, built once per process.
//!
//! Machine code comes from one of two compilers ([`Compiler`]). Cranelift makes fast code
//! but takes seconds for the big Python and JavaScript components; Winch (a baseline
//! compiler) makes slower code in a fraction of that time. Compiled code belongs to the
//! engine that made it, so each compiler has its own [`Tier`]: engine, linker, pooling
//! allocator and epoch ticker. The Winch tier is built on first use only.
//!
//! A third, compile-only engine (Cranelift, one thread, no instance pool) makes Cranelift
//! code in the background for components first served from Winch code; its output is
//! loaded into the Cranelift tier through [`Component::deserialize`], which is possible
//! because both engines have the same compile-affecting settings (checked: same
//! compatibility hash; otherwise the Cranelift tier compiles itself).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy,
    WasmBacktraceDetails,
};

use super::bindings;
use super::sandbox::StoreState;
use crate::config::Config;

/// The pinned wasmtime version (workspace `Cargo.toml`); part of cache keys.
pub(crate) const WASMTIME_VERSION: &str = "48.0.8";

/// How often the epoch ticks. Deadlines are checked, and looping guests yield, once a tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Written bytes of a linear memory reset in place (not decommitted) between tasks.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
/// Written bytes of a table reset in place between tasks.
const KEEP_RESIDENT_TABLE: usize = 256 << 10;

/// Components at least this big are first compiled with Winch (when no Cranelift code is
/// cached): Cranelift needs more than ~150 ms from about this size on, on 2 cores.
pub const WINCH_MIN_BYTES: u64 = 1 << 20;

/// Which compiler made a component's machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compiler {
    /// Optimising compiler: the code every plugin ends up running.
    Cranelift,
    /// Baseline compiler: fast to compile, slower code; serves big components until their
    /// Cranelift code is ready.
    Winch,
}

impl Compiler {
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

impl std::fmt::Display for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// Compile everything with Winch only (no Cranelift, no tiering). Default: false.
    pub winch: bool,
    /// Components at least this many bytes big are compiled with Winch first and with
    /// Cranelift in the background, when no Cranelift code is cached. `None`: always
    /// Cranelift. Default: `Some(WINCH_MIN_BYTES)` (1 MiB).
    pub winch_first_min_bytes: Option<u64>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_instances: 64,
            max_memory_mb: 256,
            max_stack_kb: 512,
            winch: false,
            winch_first_min_bytes: Some(WINCH_MIN_BYTES),
        }
    }
}

impl RuntimeOptions {
    /// The pool's memory ceiling for a largest `memory_mb` of `largest`: never below the
    /// default. A component that needs more at start than a small `memory_mb` then still
    /// loads, and the setting is named (`Compiled::fits`, or swasm.MemoryLimit when a task
    /// runs) instead of the pool refusing the file.
    pub fn pool_memory_mb(largest: u64) -> u64 {
        largest.max(RuntimeOptions::default().max_memory_mb)
    }

    /// Sizes the engine for everything the config can run at once.
    pub fn from_config(config: &Config) -> RuntimeOptions {
        let slots: usize = config.task_lists.iter().map(|t| t.max_concurrent).sum();
        let mut max_memory_mb = config.defaults.memory_mb;
        let mut max_stack_kb = config.defaults.max_stack_kb;
        for s in config.all_settings() {
            max_memory_mb = max_memory_mb.max(s.memory_mb);
            max_stack_kb = max_stack_kb.max(s.max_stack_kb);
        }
        let max_memory_mb = Self::pool_memory_mb(max_memory_mb);
        RuntimeOptions {
            // `swasm invoke`-style side runs and the registry's validation need a few more.
            max_instances: u32::try_from(slots + 16).unwrap_or(u32::MAX).min(10_000),
            max_memory_mb,
            max_stack_kb,
            ..RuntimeOptions::default()
        }
    }
}

/// One compiler's engine, the linker over it, and the thread ticking its epoch.
pub(crate) struct Tier {
    pub(crate) compiler: Compiler,
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    /// Hex digest of everything that makes compiled code loadable by this engine: the
    /// wasmtime version and the engine's compile-affecting settings. Part of cache keys.
    pub(crate) compat_key: String,
    ticker: Ticker,
}

impl Tier {
    fn new(options: &RuntimeOptions, compiler: Compiler) -> Result<Tier> {
        let engine = Engine::new(&engine_config(options, compiler, true)?)
            .map_err(|e| with_address_space_hint(anyhow::Error::from(e), options))
            .with_context(|| format!("cannot create the wasmtime engine ({compiler})"))?;
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
        let compat_key = format!(
            "wasmtime-{WASMTIME_VERSION}-{}-{:016x}",
            compiler.name(),
            compat_hash(&engine)
        );
        let ticker = Ticker::start(engine.clone());
        Ok(Tier {
            compiler,
            engine,
            linker,
            compat_key,
            ticker,
        })
    }

    /// The epoch clock every store of this tier keeps awake.
    pub(crate) fn clock(&self) -> Arc<Clock> {
        self.ticker.clock.clone()
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn compat_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

/// The wasmtime engines of the process (one per compiler), their linkers and tickers.
pub struct Runtime {
    pub(crate) options: RuntimeOptions,
    /// The tier every plugin ends up on (Cranelift, or Winch when `options.winch`).
    pub(crate) primary: Tier,
    /// The Winch tier for quick first loads, built on first use (`Err`: cannot be built,
    /// everything compiles with Cranelift).
    quick: OnceLock<Result<Tier, String>>,
    /// Compile-only Cranelift engine with one compile thread, for background upgrades;
    /// `None` when its code would not load into the primary tier.
    background: OnceLock<Option<Engine>>,
}

impl Runtime {
    /// The runtime for `swasm run`, sized from the config.
    pub fn new(config: &Config) -> Result<Arc<Runtime>> {
        Self::with_options(RuntimeOptions::from_config(config))
    }

    /// A small runtime (16 slots, the default limits) with no config at hand: for tests.
    /// `swasm invoke` and `check` size theirs from their flags (`tools.rs`).
    pub fn for_invoke() -> Result<Arc<Runtime>> {
        Self::with_options(RuntimeOptions {
            max_instances: 16,
            ..RuntimeOptions::default()
        })
    }

    pub fn with_options(options: RuntimeOptions) -> Result<Arc<Runtime>> {
        super::install_tls_provider();
        let primary = Tier::new(
            &options,
            if options.winch {
                Compiler::Winch
            } else {
                Compiler::Cranelift
            },
        )?;
        Ok(Arc::new(Runtime {
            options,
            primary,
            quick: OnceLock::new(),
            background: OnceLock::new(),
        }))
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// The key under which compiled code of the primary (Cranelift) engine may be cached.
    pub fn compat_key(&self) -> &str {
        &self.primary.compat_key
    }

    /// The compiler every plugin ends up on: Cranelift (Winch when `options.winch`).
    pub fn primary_compiler(&self) -> Compiler {
        self.primary.compiler
    }

    /// The tier of `compiler`, if this runtime has (or can build) it.
    pub(crate) fn tier(&self, compiler: Compiler) -> Option<&Tier> {
        if compiler == self.primary.compiler {
            return Some(&self.primary);
        }
        if compiler != Compiler::Winch {
            return None;
        }
        let quick = self.quick.get_or_init(|| {
            Tier::new(&self.options, Compiler::Winch).map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "cannot build the Winch engine; every component compiles with Cranelift");
                format!("{e:#}")
            })
        });
        quick.as_ref().ok()
    }

    /// Whether a component of `size` bytes, with no Cranelift code cached, should first be
    /// compiled with Winch. `live`: tasks are running (a load after start-up), where any
    /// size goes through Winch first, so a drop-in serves in tens of milliseconds.
    pub fn winch_first(&self, size: u64, live: bool) -> bool {
        self.primary.compiler == Compiler::Cranelift
            && self
                .options
                .winch_first_min_bytes
                .is_some_and(|min| live || size >= min)
    }

    /// The compile-only engine for background Cranelift compiles, if its code loads into
    /// the primary tier.
    pub(crate) fn background_engine(&self) -> Option<&Engine> {
        self.background
            .get_or_init(|| {
                let config = engine_config(&self.options, Compiler::Cranelift, false).ok()?;
                let engine = Engine::new(&config).ok()?;
                if compat_hash(&engine) == compat_hash(&self.primary.engine) {
                    Some(engine)
                } else {
                    tracing::warn!("background compile engine differs from the serving engine; upgrades compile on the serving engine");
                    None
                }
            })
            .as_ref()
    }
}

/// The address space wasmtime reserves for each linear memory of the pool, whatever its
/// `memory_mb` (up to this much, bounds checks are left to the guard pages), and the guard
/// after it: wasmtime's defaults on 64-bit hosts, set explicitly so the hint of
/// [`with_address_space_hint`] counts what the pool maps.
const MEMORY_RESERVATION: u64 = 4 << 30;
const MEMORY_GUARD: u64 = 32 << 20;
/// Elements of one table of the pool.
const TABLE_ELEMENTS: usize = 200_000;

/// Virtual address space the instance pool reserves per slot, in bytes: its memories (a
/// reservation and a guard each), its tables and its fiber stack.
fn address_space_per_slot(o: &RuntimeOptions) -> u64 {
    let memory = MEMORY_RESERVATION.max(o.max_memory_mb << 20) + MEMORY_GUARD;
    let table = (TABLE_ELEMENTS * std::mem::size_of::<usize>()) as u64;
    let stack = o.max_stack_kb.max(64) * 1024 + (1 << 20) + 4096;
    u64::from(MEMORIES_PER_COMPONENT) * memory + u64::from(TABLES_PER_COMPONENT) * table + stack
}

/// `e`, a failed `Engine::new`, with what to do when the pool could not map its address
/// space (a `ulimit -v` or systemd `LimitAS=` below what the slots reserve): the process
/// cannot start, and "mmap failed to reserve 0xe9d2000000 bytes" alone does not say why.
fn with_address_space_hint(e: anyhow::Error, o: &RuntimeOptions) -> anyhow::Error {
    if !format!("{e:#}").contains("pool mapping") {
        return e;
    }
    const GIB: f64 = (1u64 << 30) as f64;
    let per_slot = address_space_per_slot(o);
    let slots = u64::from(o.max_instances.max(1));
    e.context(format!(
        "the instance pool reserves about {:.1} GiB of virtual address space per slot (its {} memories reserve {} GiB each, however small memory_mb is), {:.0} GiB for its {slots} slots (`swasm run`: the task lists' max_concurrent together, plus 16), more than this process may map: lower max_concurrent, or lift the limit (`ulimit -v`, systemd `LimitAS=`)",
        per_slot as f64 / GIB,
        MEMORIES_PER_COMPONENT,
        MEMORY_RESERVATION.max(o.max_memory_mb << 20) >> 30,
        (per_slot * slots) as f64 / GIB,
    ))
}

/// Core instances one component instance may have (each task slot's share of the pool).
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Linear memories one component instance may have (each task slot's share of the pool).
pub const MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables one component instance may have (each task slot's share of the pool).
pub const TABLES_PER_COMPONENT: u32 = 16;

/// The engine configuration of `compiler`. `serving`: a pooling allocator and parallel
/// compilation (the engines that run tasks); otherwise a compile-only engine with one
/// compile thread, so a background compile leaves the other core to the tasks.
fn engine_config(
    o: &RuntimeOptions,
    compiler: Compiler,
    serving: bool,
) -> Result<wasmtime::Config> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    let stack = usize::try_from(o.max_stack_kb.max(64) * 1024).context("max_stack_kb too large")?;
    c.max_wasm_stack(stack);
    // Host calls made by the guest run on the same fiber stack: keep room beyond the wasm limit.
    c.async_stack_size(stack + 1024 * 1024);
    c.strategy(match compiler {
        Compiler::Cranelift => Strategy::Cranelift,
        Compiler::Winch => Strategy::Winch,
    });
    c.parallel_compilation(serving);
    c.memory_init_cow(true);
    c.memory_reservation(MEMORY_RESERVATION);
    c.memory_guard_size(MEMORY_GUARD);
    // Failure details show no DWARF symbols (runtime/details.rs), and reading a component's
    // DWARF at every trap is the host's CPU and memory. Set here, so a
    // `WASMTIME_BACKTRACE_DETAILS` in the host's environment does not turn it on.
    c.wasm_backtrace_details(WasmBacktraceDetails::Disable);
    // The pool has no GC heap (`total_gc_heaps(0)` below), and wasmtime keeps GC objects
    // (structs, arrays, `externref`) and exceptions there: a component using them could
    // never be instantiated, and its load check found the pool "busy" and was tried again
    // every 0.5 s for good. With the proposals off it is refused when it compiles, the
    // proposal named. (Winch has none of them anyway.) Typed function references stay:
    // wasmtime keeps them in tables of functions, not in a GC heap.
    c.gc_support(false);
    c.wasm_gc(false);
    c.wasm_exceptions(false);
    // Guests are WASI p2 components called through `call_async` on a fiber; they need no
    // component-model-async. Without it a store has no concurrent state, and dropping a
    // store no longer disposes of a worker fiber (which built an error with a captured
    // backtrace per task when RUST_BACKTRACE is set: about a third of a Rust echo task).
    c.concurrency_support(false);
    if !serving {
        return Ok(c);
    }

    let n = o.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n);
    // Every limit per component is its share of the pool's total (total = slots x limit),
    // so no plugin can use up what another type's tasks need: with a share below its
    // limit, a component of many memories could take the memories of several slots and
    // fail every other task while slots were free. Core instances are only counted (no
    // reservation), so their share is generous: a Python component has 14, JavaScript 4,
    // Rust 3. Memories and tables reserve address space in each engine's pool (see
    // MAX_TOTAL_CONCURRENT), so their shares are what a component of one language needs
    // (1 memory, 2 tables), with room: a component of more is refused when it loads.
    pool.max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT);
    pool.total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT));
    pool.max_memories_per_component(MEMORIES_PER_COMPONENT);
    pool.total_memories(n.saturating_mul(MEMORIES_PER_COMPONENT));
    pool.max_tables_per_component(TABLES_PER_COMPONENT);
    pool.total_tables(n.saturating_mul(TABLES_PER_COMPONENT));
    pool.total_stacks(n);
    pool.table_elements(TABLE_ELEMENTS);
    pool.max_core_instance_size(8 << 20);
    pool.max_component_instance_size(8 << 20);
    let max_memory =
        usize::try_from(o.max_memory_mb.max(1) << 20).context("memory_mb too large")?;
    pool.max_memory_size(max_memory);
    pool.total_gc_heaps(0);
    // Keep a few slots warm so repeated tasks of one plugin reuse their memory image.
    pool.max_unused_warm_slots(n.min(100));
    // Resetting a slot for the next task: with PAGEMAP_SCAN (Linux 6.7+) wasmtime finds the
    // pages the guest wrote and copies the original contents back into them (up to these
    // sizes), instead of `madvise` (TLB flushes) and page faults on every task. Without it,
    // keeping the low addresses resident would `memset` them whether written or not, which
    // costs more than it saves, so the defaults (decommit everything) stay.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes);
        pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY);
        pool.table_keep_resident(KEEP_RESIDENT_TABLE);
    }
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(c)
}

/// Increments an engine's epoch every [`EPOCH_TICK`] while guest code may run, until
/// stopped.
///
/// Only stores need the epoch (deadlines, yields of looping guests), so the thread parks
/// once a whole tick went by with no store alive and none created, and the next store
/// wakes it ([`Clock::awake`]). An idle host then has no thread that wakes 100 times a
/// second, while under load the thread never parks and a store costs a few atomic
/// operations.
struct Ticker {
    clock: Arc<Clock>,
    thread: Option<JoinHandle<()>>,
}

/// What stores and the ticker thread share.
#[derive(Default)]
pub(crate) struct Clock {
    stop: AtomicBool,
    /// Stores alive now.
    live: AtomicUsize,
    /// Stores ever created: tells the ticker whether one came and went during a tick.
    created: AtomicU64,
    /// The ticker is parked, or about to park (see `Ticker::start`).
    parked: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

impl Clock {
    /// Keeps the epoch ticking while the returned guard lives (one per store).
    pub(crate) fn awake(self: &Arc<Self>) -> Awake {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
        Awake(self.clone())
    }
}

/// A store's claim on the epoch ticker; see [`Clock::awake`].
pub(crate) struct Awake(Arc<Clock>);

impl Drop for Awake {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let clock = Arc::new(Clock::default());
        let shared = clock.clone();
        let thread = std::thread::Builder::new()
            .name("swasm-epoch".into())
            .spawn(move || {
                let c = shared;
                // Set before the first park, so a parked ticker is always one that
                // `Clock::awake` can unpark.
                let _ = c.thread.set(std::thread::current());
                let mut seen = c.created.load(Ordering::Relaxed);
                while !c.stop.load(Ordering::Relaxed) {
                    let created = c.created.load(Ordering::Relaxed);
                    if created == seen && c.live.load(Ordering::SeqCst) == 0 {
                        // Announce the park, then look again: a store that started in
                        // between either is seen here or sees `parked` and unparks us
                        // (an unpark before the park makes the park return at once).
                        c.parked.store(true, Ordering::SeqCst);
                        if c.live.load(Ordering::SeqCst) == 0 && !c.stop.load(Ordering::SeqCst) {
                            std::thread::park();
                        }
                        c.parked.store(false, Ordering::SeqCst);
                    }
                    seen = c.created.load(Ordering::Relaxed);
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot spawn the epoch ticker thread");
        Ticker {
            clock,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.clock.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::eventually;

    /// Background upgrades compile on a one-thread engine whose code must load into the
    /// serving engine; if the two ever differ, upgrades silently use both cores again.
    #[test]
    fn background_engine_code_loads_into_the_serving_engine() {
        let rt = Runtime::for_invoke().unwrap();
        assert!(rt.background_engine().is_some());
        let winch = rt.tier(Compiler::Winch).expect("the Winch engine builds");
        assert_ne!(winch.compat_key, rt.primary.compat_key);
        assert!(winch.compat_key.contains("winch"));
    }

    /// Set in the run of the lib's tests that
    /// [`a_pool_without_address_space_says_what_to_do`] starts under `ulimit -v`.
    const UNDER_ULIMIT: &str = "SWASM_TEST_ENGINE_UNDER_ULIMIT";

    /// Under a `ulimit -v` below what the pool's slots reserve, the engine cannot be made,
    /// and the error says how much each slot needs and what to change. The check runs in a
    /// second run of this test binary, alone, under `ulimit -v` (a limit of the process).
    #[test]
    fn a_pool_without_address_space_says_what_to_do() {
        const NAME: &str = "runtime::engine::tests::a_pool_without_address_space_says_what_to_do";
        if std::env::var_os(UNDER_ULIMIT).is_some() {
            let e = Runtime::for_invoke().err().expect("16 slots need 129 GiB");
            let e = format!("{e:#}");
            assert!(e.contains("failed to create memory pool mapping"), "{e}");
            assert!(
                e.contains("about 8.1 GiB of virtual address space per slot")
                    && e.contains("129 GiB for its 16 slots")
                    && e.contains("lower max_concurrent")
                    && e.contains("`ulimit -v`")
                    && e.contains("`LimitAS=`"),
                "{e}"
            );
            return;
        }
        let out = std::process::Command::new("bash")
            .args(["-c", r#"ulimit -v 8000000 && exec "$0" "$@""#])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads", "1", "--nocapture"])
            .env(UNDER_ULIMIT, "1")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the run under ulimit -v:\n{stdout}\n{stderr}"
        );
    }

    /// The hint counts what the pool maps: wasmtime's 129 GiB ("mmap failed to reserve
    /// 0x2042000000 bytes") for the memories of 16 slots, plus tables and stacks.
    #[test]
    fn the_address_space_per_slot_is_what_the_pool_maps() {
        let o = RuntimeOptions::default();
        let memories = 2 * ((4u64 << 30) + (32 << 20));
        let per_slot = address_space_per_slot(&o);
        assert!(
            per_slot > memories && per_slot < memories + (64 << 20),
            "{per_slot}"
        );
        // memory_mb above the reservation is what a memory reserves.
        let big = RuntimeOptions {
            max_memory_mb: 8192,
            ..RuntimeOptions::default()
        };
        assert!(address_space_per_slot(&big) > 2 * (8u64 << 30));
    }

    /// With no store, the epoch ticker parks; a store wakes it and keeps it ticking; once
    /// the last store is gone it parks again.
    #[test]
    fn the_epoch_ticker_runs_only_while_stores_live() {
        let rt = Runtime::for_invoke().unwrap();
        let clock = rt.primary.clock();
        let parked = || clock.parked.load(Ordering::SeqCst);
        eventually("the idle ticker to park", parked);

        let store = clock.awake();
        eventually("a store to wake the ticker", || !parked());
        // Three ticks later it still runs: a store is alive.
        std::thread::sleep(EPOCH_TICK * 3);
        assert!(!parked(), "the ticker parked while a store was alive");

        drop(store);
        eventually("the ticker to park after the last store", parked);
        assert_eq!(clock.live.load(Ordering::SeqCst), 0);
    }
}
