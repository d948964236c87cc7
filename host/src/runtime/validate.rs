//! From bytes to a component that can serve `swasm:activity/plugin`, with an error that
//! says exactly what is wrong when it cannot.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

use super::details;
use super::engine::{Clock, Compiler, Runtime, Tier};
use super::plugin::{Plugin, RunParams, RunResults};
use super::sandbox;
use super::{ACTIVITY_EXPORT, MAX_DETAILS_CHARS};
use crate::activity::ActivityType;

/// Why bytes cannot be served as a plugin. Callers branch on it only to count rejects; the
/// message is what users read, so each variant says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (it does not start with the \\0asm magic bytes)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build Rust for wasm32-wasip2, make the component from a C module with `componentize-c component`, or wrap any module with `wasm-tools component new --adapt`"
    )]
    CoreModule,
    #[error("truncated: the file ends in the middle of the component ({0})")]
    Truncated(String),
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "not built for world swasm:activity/plugin: it does not export `{ACTIVITY_EXPORT}` (its exports: {0})"
    )]
    WrongWorld(String),
    #[error("imports interfaces the host does not provide: {0}")]
    UnsupportedImports(String),
    #[error("cannot link against the host: {0}")]
    Link(String),
    #[error(
        "`run` of `{ACTIVITY_EXPORT}` does not have the signature of the host's wit/world.wit (built against another copy of the WIT?): {0}"
    )]
    WrongSignature(String),
    #[error("cannot be instantiated, so no task could run it: {0}")]
    Instantiate(String),
    #[error("every instance slot is taken, so it cannot be checked now (it is tried again): {0}")]
    Busy(String),
}

impl LoadError {
    /// Whether the same bytes may load later: the error is about this moment, not the file.
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Busy(_))
    }
}

/// What a component imports and exports, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Machine code of a component, not yet checked against the world (see [`Runtime::check`]).
/// Cheap to clone: the code is shared. A check that finds every instance slot taken
/// ([`LoadError::Busy`]) can be tried again on the same code, without compiling again.
#[derive(Clone)]
pub struct Code {
    component: Component,
    /// Which compiler made the code (and so which engine it runs on).
    pub compiler: Compiler,
}

impl Tier {
    fn code(&self, component: Component) -> Code {
        Code {
            component,
            compiler: self.compiler,
        }
    }
}

/// A compiled component, checked against the world, ready to become a [`Plugin`]. Cheap to
/// clone: the code and the pre-instance are shared.
#[derive(Clone)]
pub struct Compiled {
    pub(crate) component: Component,
    pre: InstancePre<sandbox::StoreState>,
    /// The `run` export, type-checked against the bindings when the code was loaded.
    run: ComponentExportIndex,
    /// The epoch ticker of the engine the code belongs to.
    clock: Arc<Clock>,
    /// Which compiler made the code (and so which engine it runs on).
    pub compiler: Compiler,
    pub info: ComponentInfo,
    /// The most memory one of its linear memories takes when it is instantiated, in bytes:
    /// a task whose `memory_mb` is below it could never start (see [`Compiled::fits`]).
    pub start_memory_bytes: usize,
}

impl Compiled {
    /// Whether a task of `ty` with `memory_mb` of memory can instantiate this component; if
    /// not, why, for a load error that names the type and the setting.
    pub fn fits(&self, ty: &ActivityType, memory_mb: u64) -> Result<(), String> {
        let limit = memory_mb.saturating_mul(1 << 20);
        if (self.start_memory_bytes as u64) <= limit {
            return Ok(());
        }
        Err(format!(
            "{ty}: the component needs {:.1} MiB of memory to start, more than its memory_mb = {memory_mb}: raise memory_mb for this type",
            self.start_memory_bytes as f64 / f64::from(1 << 20)
        ))
    }
}

/// How long instantiating a component may take when it is loaded (see
/// [`Runtime::check_run`]); instantiating runs no guest code unless a core module has a
/// start function.
const LOAD_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The wall-clock bound of a load check, past [`LOAD_CHECK_TIMEOUT`]: the epoch interrupts
/// guest code at that deadline, but not a start function waiting inside a host call (a
/// clock subscription that never fires), which only this ends.
const LOAD_CHECK_WALL_CLOCK: std::time::Duration = std::time::Duration::from_secs(11);

/// Runs `fut` on this thread until it ends (`Some`) or `limit` has passed (`None`, and
/// `fut` is dropped). Works with or without a tokio runtime: a timer thread ends the wait,
/// and exits as soon as `fut` is done.
fn block_on_for<F: std::future::Future>(fut: F, limit: std::time::Duration) -> Option<F::Output> {
    use futures::future::{Either, select};
    let (fire, expired) = futures::channel::oneshot::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::Builder::new()
        .name("swasm-load-check".into())
        .spawn(move || {
            if finished.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                let _ = fire.send(());
            }
        });
    if timer.is_err() {
        // No thread for the timer: wait unbounded rather than fail the load.
        return Some(futures::executor::block_on(fut));
    }
    let out = futures::executor::block_on(async {
        match select(std::pin::pin!(fut), expired).await {
            Either::Left((out, _)) => Some(out),
            Either::Right((Ok(()), _)) => None,
            // The timer thread ended without firing: it cannot, so wait on.
            Either::Right((Err(_), fut)) => Some(fut.await),
        }
    });
    drop(done);
    out
}

/// Interfaces the linker provides (WASI 0.2.x, wasi:http 0.2.x, and the swasm host), by
/// `namespace:package/interface` without version.
const PROVIDED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "swasm:activity/host",
    "swasm:activity/types",
];

/// Whether the host provides import `name` (`ns:pkg/iface@version`).
pub(crate) fn is_provided(name: &str) -> bool {
    let (iface, version) = name.split_once('@').unwrap_or((name, ""));
    let version_ok = if iface.starts_with("wasi:") {
        version.starts_with("0.2.")
    } else {
        version.starts_with("0.1.")
    };
    version_ok && PROVIDED.contains(&iface)
}

/// `e` as a load error says it: its causes, and the wasm backtrace of a start function that
/// trapped, in at most [`MAX_DETAILS_CHARS`] characters with each frame's names cut (a
/// component's names are its author's; see `details`). A load error is logged, and kept for
/// `/status` until the file loads or goes.
fn error_text(e: &wasmtime::Error) -> String {
    details::error_text(e, MAX_DETAILS_CHARS)
}

/// Names a load error lists at most: a component may have any number of imports and
/// exports, and the error is one log line (and one `/status` entry).
const LISTED_NAMES: usize = 10;

/// The first [`LISTED_NAMES`] of `names`, and how many more there are.
fn listed(names: &[String]) -> String {
    let mut list = names[..names.len().min(LISTED_NAMES)].join(", ");
    if names.len() > LISTED_NAMES {
        list.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    list
}

/// Cheap checks on the header, so common mistakes get a clear message before parsing.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(
            if bytes.len() < 8
                && b"\0asm".starts_with(&bytes[..bytes.len().min(4)])
                && !bytes.is_empty()
            {
                LoadError::Truncated(format!("only {} bytes", bytes.len()))
            } else {
                LoadError::NotWasm
            },
        );
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadError::CoreModule),
        [_, _, 1, 0] => Ok(()),
        other => Err(LoadError::Invalid(format!(
            "unknown WebAssembly version/layer {other:02x?}"
        ))),
    }
}

/// What a parse error of a `len`-byte file says: truncated only when the parser ran into
/// the end of the input, so a registry waits for the rest of a file still being written
/// but rejects a complete, invalid one at once (wasmparser's "index out of bounds" is
/// about the component's own index spaces, not the file).
fn classify_parse_error(e: &wasmtime::Error, len: usize) -> LoadError {
    let msg = error_text(e);
    let at_end = msg.contains("unexpected end")
        || msg.contains("end of file")
        // wasmtime's own check that a module section lies within the file.
        || msg.contains(&format!("is out of bounds (bound = {len})"));
    if at_end {
        LoadError::Truncated(msg)
    } else if uses_a_gc_heap(&msg) {
        LoadError::Invalid(format!(
            "{msg}: swasm runs no component that uses WebAssembly GC (externref included) or exceptions (its instance pool has no GC heap): build it without them"
        ))
    } else {
        LoadError::Invalid(msg)
    }
}

/// Whether a validation error is about a proposal the engine has off because wasmtime
/// would need a GC heap for it (see `engine_config`).
fn uses_a_gc_heap(msg: &str) -> bool {
    // wasmparser's words for them, in types, in instructions ("gc support is not enabled",
    // "legacy exceptions support is not enabled") and in rec groups and subtypes.
    [
        "gc feature",
        "requires gc",
        "gc support is not enabled",
        "gc proposal",
        "`gc` proposal",
        "exceptions proposal",
        "exceptions support is not enabled",
        "legacy_exceptions feature",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// Whether a pool limit met by the load check is one that tasks ending give back: a task
/// slot's share of the pool (component and core instances, memories, tables, fiber stacks),
/// so the check is tried again ([`LoadError::Busy`]). A limit of 0 (the pool has no GC heap)
/// is never given back: a component that needs one can never start. `PoolConcurrencyLimitError`
/// keeps its fields private; its text is "maximum concurrent limit of {n} for {kind} reached".
fn pool_slots_taken(limit: &wasmtime::PoolConcurrencyLimitError) -> bool {
    pool_limit_given_back(&limit.to_string())
}

/// [`pool_slots_taken`], from the limit error's text.
fn pool_limit_given_back(text: &str) -> bool {
    !text.contains("limit of 0 ") && !text.contains("GC heap")
}

impl Runtime {
    /// Validates and compiles a component with the primary compiler (Cranelift), and checks
    /// it serves `swasm:activity/plugin` with no imports beyond what the host provides.
    /// Compiling takes long for big components: call it off the async executor
    /// (`spawn_blocking`).
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        self.compile_with(bytes, self.primary.compiler)
    }

    /// Like [`Runtime::compile`], with `compiler`: [`Runtime::compile_code`], then
    /// [`Runtime::check`].
    pub fn compile_with(&self, bytes: &[u8], compiler: Compiler) -> Result<Compiled, LoadError> {
        self.check(&self.compile_code(bytes, compiler)?)
    }

    /// Validates and compiles a component with `compiler`, without checking it against the
    /// world. Falls back to the primary compiler when this runtime has no such engine, or
    /// when Winch cannot compile the component (a proposal it does not support): the
    /// result says which compiler made it.
    pub fn compile_code(&self, bytes: &[u8], compiler: Compiler) -> Result<Code, LoadError> {
        check_header(bytes)?;
        let primary = &self.primary;
        let tier = self.tier(compiler).unwrap_or(primary);
        let component = match Component::new(&tier.engine, bytes) {
            Ok(component) => return Ok(tier.code(component)),
            Err(winch) if tier.compiler != primary.compiler => {
                // Winch lacks some proposals. A broken file fails with Cranelift too, and
                // then only Cranelift's error is reported: the file is at fault, not Winch.
                let component = Component::new(&primary.engine, bytes)
                    .map_err(|e| classify_parse_error(&e, bytes.len()))?;
                tracing::info!(error = %error_text(&winch), "Winch cannot compile this component; compiled it with Cranelift");
                component
            }
            Err(e) => return Err(classify_parse_error(&e, bytes.len())),
        };
        Ok(primary.code(component))
    }

    /// Cranelift code for `bytes`, serialized for the primary engine, compiled with one
    /// thread (the background upgrade path). The bytes were validated before (they are
    /// served from Winch code), so errors here are not user-facing load errors.
    pub(crate) fn compile_in_background(&self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        let engine = self.background_engine().unwrap_or(&self.primary.engine);
        Ok(engine.precompile_component(bytes)?)
    }

    /// Loads code this runtime serialized before ([`Runtime::serialize`]) for `compiler`,
    /// and checks it ([`Runtime::check`]).
    ///
    /// # Safety
    /// As for [`Runtime::deserialize_code`].
    pub unsafe fn deserialize(&self, bytes: &[u8], compiler: Compiler) -> anyhow::Result<Compiled> {
        // SAFETY: passed on to the caller.
        let code = unsafe { self.deserialize_code(bytes, compiler) }?;
        Ok(self.check(&code)?)
    }

    /// Loads code this runtime serialized before ([`Runtime::serialize`]) for `compiler`,
    /// without checking it against the world.
    ///
    /// # Safety
    /// `bytes` must be exactly what `serialize` of an engine with the same
    /// [`Runtime::compat_key`] of `compiler` produced (wasmtime trusts the machine code in
    /// it).
    pub unsafe fn deserialize_code(
        &self,
        bytes: &[u8],
        compiler: Compiler,
    ) -> anyhow::Result<Code> {
        let tier = self
            .tier(compiler)
            .with_context(|| format!("this runtime has no {compiler} engine"))?;
        // SAFETY: the caller guarantees the bytes are our own verified serialized output.
        let component = unsafe { Component::deserialize(&tier.engine, bytes) }?;
        Ok(tier.code(component))
    }

    /// The cache key of `compiler`'s engine, if this runtime has (or can build) it.
    pub(crate) fn compat_key_of(&self, compiler: Compiler) -> Option<&str> {
        self.tier(compiler).map(|t| t.compat_key.as_str())
    }

    /// The compiled code of `compiled`, for the disk cache.
    pub fn serialize(&self, compiled: &Compiled) -> anyhow::Result<Vec<u8>> {
        Ok(compiled.component.serialize()?)
    }

    /// Checks that `code` serves `swasm:activity/plugin` with no imports beyond what the host
    /// provides, links it, and type-checks its `run` in an instance of its own
    /// ([`Runtime::check_run`]). Only [`LoadError::Busy`] can change on another try.
    pub fn check(&self, code: &Code) -> Result<Compiled, LoadError> {
        let tier = self
            .tier(code.compiler)
            .filter(|t| wasmtime::Engine::same(&t.engine, code.component.engine()))
            .ok_or_else(|| LoadError::Link("the code was made by another runtime".into()))?;
        let component = code.component.clone();
        let engine = &tier.engine;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        // Looked up as wasmtime links (semver-compatible, as imports are): a component built
        // against a 0.1.x patch release of the WIT serves, and `check_run` finds its `run`.
        if component.get_export_index(None, ACTIVITY_EXPORT).is_none() {
            let list = if exports.is_empty() {
                "none".to_string()
            } else {
                listed(&exports)
            };
            return Err(LoadError::WrongWorld(list));
        }
        let extra: Vec<String> = imports
            .iter()
            .filter(|i| !is_provided(i))
            .cloned()
            .collect();
        if !extra.is_empty() {
            return Err(LoadError::UnsupportedImports(listed(&extra)));
        }
        let pre = tier
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(error_text(&e)))?;
        let (run, start_memory_bytes) = self.check_run(tier, &pre)?;
        Ok(Compiled {
            component,
            pre,
            run,
            clock: tier.clock(),
            compiler: tier.compiler,
            info: ComponentInfo { imports, exports },
            start_memory_bytes,
        })
    }

    /// Instantiates the component once, in a store that grants nothing, and checks the type
    /// of its `run` export against the host's bindings. A component built against another
    /// copy of the WIT is rejected here, so the version serving before it keeps serving,
    /// and tasks call `run` without checking its type again: every instance of one
    /// component has the same types.
    ///
    /// Instantiating runs no guest function except core start functions, which are bounded
    /// by [`LOAD_CHECK_TIMEOUT`] (and [`LOAD_CHECK_WALL_CLOCK`] while they wait in a host
    /// call) and the largest `memory_mb`. It takes a pool slot of the
    /// margin [`RuntimeOptions::max_instances`](super::RuntimeOptions) keeps beyond the
    /// task slots.
    /// Returns `run`'s index and the largest memory the instance took to start.
    fn check_run(
        &self,
        tier: &Tier,
        pre: &InstancePre<sandbox::StoreState>,
    ) -> Result<(ComponentExportIndex, usize), LoadError> {
        let component = pre.component();
        let run = component
            .get_export_index(None, ACTIVITY_EXPORT)
            .and_then(|iface| component.get_export_index(Some(&iface), "run"))
            .ok_or_else(|| LoadError::WrongSignature("it exports no `run` function".into()))?;
        let mut store = sandbox::load_check_store(
            &tier.engine,
            tier.clock().awake(),
            self.options.max_memory_mb,
            LOAD_CHECK_TIMEOUT,
        );
        // Called on blocking threads (compiles are): a plain executor is enough, with a
        // wall-clock bound for what the epoch cannot interrupt.
        let instance = block_on_for(pre.instantiate_async(&mut store), LOAD_CHECK_WALL_CLOCK)
            .ok_or_else(|| {
                LoadError::Instantiate(format!(
                    "instantiating it did not finish in {LOAD_CHECK_WALL_CLOCK:?}: a start function waits on the host (a clock or stream that is never ready)"
                ))
            })?
            .map_err(|e| {
                if e
                    .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some_and(pool_slots_taken)
                {
                    LoadError::Busy(error_text(&e))
                } else if e.is::<sandbox::DeadlineExceeded>() {
                    // The store's deadline is the load check's, not a task's `timeout_s`.
                    LoadError::Instantiate(format!(
                        "a start function was still running when the load check's {LOAD_CHECK_TIMEOUT:?} limit passed"
                    ))
                } else {
                    LoadError::Instantiate(error_text(&e))
                }
            })?;
        instance
            .get_typed_func::<RunParams<'_>, RunResults>(&mut store, &run)
            .map_err(|e| LoadError::WrongSignature(error_text(&e)))?;
        Ok((run, store.data().limits.peak))
    }

    /// Makes a servable [`Plugin`] of compiled code.
    pub fn plugin(
        &self,
        compiled: &Compiled,
        ty: ActivityType,
        path: PathBuf,
        hash: String,
        size: u64,
    ) -> Arc<Plugin> {
        Arc::new(Plugin {
            ty,
            path,
            hash,
            size,
            loaded_at: SystemTime::now(),
            compiler: compiled.compiler,
            pre: compiled.pre.clone(),
            run: compiled.run,
            clock: compiled.clock.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal wasmparser 0.254 words for GC and exceptions gets the hint.
    #[test]
    fn gc_and_exceptions_refusals_are_recognised() {
        for msg in [
            "heap types not supported without the gc feature",
            "gc types are disallowed but found type which requires gc",
            "gc support is not enabled (at offset 0x2a)",
            "exceptions support is not enabled",
            "legacy exceptions support is not enabled",
            "legacy_exceptions feature required for try instruction",
            "exceptions proposal not enabled",
            "gc proposal must be enabled to use subtypes",
            "gc proposal not supported",
            "rec group usage requires `gc` proposal to be enabled",
        ] {
            assert!(uses_a_gc_heap(msg), "{msg}");
        }
        assert!(!uses_a_gc_heap("SIMD support is not enabled"));
    }

    #[test]
    fn header_checks_name_the_problem() {
        assert_eq!(check_header(b"hello world"), Err(LoadError::NotWasm));
        assert_eq!(check_header(b""), Err(LoadError::NotWasm));
        assert!(matches!(
            check_header(b"\0as"),
            Err(LoadError::Truncated(_))
        ));
        assert_eq!(check_header(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule));
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    /// Only a pool limit that tasks ending give back makes a load "busy" (tried again); a
    /// pool of no GC heaps never gives one.
    #[test]
    fn only_a_pool_limit_tasks_give_back_is_busy() {
        assert!(pool_limit_given_back(
            "maximum concurrent limit of 20 for component instances reached"
        ));
        assert!(pool_limit_given_back(
            "maximum concurrent limit of 40 for memory stripe 0 reached"
        ));
        assert!(!pool_limit_given_back(
            "maximum concurrent limit of 0 for GC heaps reached"
        ));
    }

    #[test]
    fn provided_imports_match_by_interface_and_major_version() {
        assert!(is_provided("wasi:cli/environment@0.2.6"));
        assert!(is_provided("wasi:http/outgoing-handler@0.2.0"));
        assert!(is_provided("swasm:activity/host@0.1.0"));
        assert!(!is_provided("wasi:cli/environment@0.3.0"));
        assert!(!is_provided("wasi:keyvalue/store@0.2.0"));
        assert!(!is_provided("swasm:activity/host@0.2.0"));
    }
}
