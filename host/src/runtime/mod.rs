//! The WebAssembly side of the host: one wasmtime [`Engine`], the only `bindgen!`, the
//! sandbox every task runs in, and [`Plugin::run`], which turns a guest's answer (or its
//! misbehaviour) into an [`Outcome`](crate::activity::Outcome).
//!
//! # Layout
//! - `engine`: [`Runtime`]: engine configuration (pooling allocator, epoch interruption),
//!   the epoch ticker thread, the linker (WASI p2 + wasi:http + `swasm:activity/host`).
//! - `validate`: turns bytes into a component for `swasm:activity/plugin`, with errors that
//!   say what is wrong (not wasm, core module, wrong world, truncated, extra imports, a `run`
//!   of another signature, found by instantiating it once when it loads).
//! - `sandbox`: the per-task `Store` data: `WasiCtx` with nothing granted but what the
//!   settings grant, the wasi:http gate, the memory limiter.
//! - `guest_log`: guest stdout/stderr as `tracing` lines tagged with the task.
//! - `plugin`: [`Plugin`] (a pre-instance plus metadata) and the outcome mapping.
//! - `details`: error text written with a bound (failure details, load errors), since part
//!   of it (a backtrace's function names) comes from the guest.
//!
//! No wasmtime type is public outside `runtime` and `registry`: the rest of the host sees
//! only `crate::activity` and `crate::config::ActivitySettings`.

mod details;
mod engine;
mod guest_log;
mod plugin;
mod sandbox;
mod validate;

pub use engine::{Compiler, Runtime, RuntimeOptions, WINCH_MIN_BYTES};
pub use plugin::Plugin;
pub use sandbox::{MAX_BODY_CHUNK, MAX_HTTP_IN_FLIGHT};
pub use validate::{Code, Compiled, ComponentInfo, LoadError};

/// The one `bindgen!` of the host, for world `swasm:activity/plugin`.
mod bindings {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        exports: { default: async },
    });
}

/// Makes aws-lc-rs the process's TLS crypto provider, once; every [`Runtime`] does it. The
/// dependency tree links two rustls providers (aws-lc-rs and ring), and with two linked
/// rustls refuses to choose: a guest's `https://` request to an allowed host panicked in
/// the host instead of connecting.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another part of the process installed one first: it serves.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// The export every plugin must have.
pub const ACTIVITY_EXPORT: &str = "swasm:activity/activity@0.1.0";
/// Largest result SWF accepts (characters).
pub const MAX_RESULT_CHARS: usize = 32768;
/// Largest heartbeat details SWF accepts (characters).
pub const MAX_HEARTBEAT_DETAILS_CHARS: usize = 2048;
/// Largest failure details SWF accepts (characters).
pub const MAX_DETAILS_CHARS: usize = 32768;
