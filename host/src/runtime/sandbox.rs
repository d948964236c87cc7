//! What one task's `Store` holds: a `WasiCtx` that grants nothing but the activity's
//! grants, the wasi:http gate, the memory limiter and the heartbeat handle.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::bindings;
use super::engine::Awake;
use super::guest_log::{GuestLog, Stream, TaskOutput};
use crate::activity::{ActivityTask, HeartbeatHandle};
use crate::config::ActivitySettings;

/// The data of one task's `Store`.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    gate: HttpGate,
    pub(crate) limits: GuestLimits,
    heartbeat: HeartbeatHandle,
    /// What the guest wrote, for the details of a trap (`None` in a load check, whose
    /// output is discarded).
    pub(crate) output: Option<TaskOutput>,
    /// Keeps the epoch ticking while this store lives.
    _awake: Awake,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl bindings::swasm::activity::host::Host for StoreState {
    fn heartbeat(&mut self, details: Option<String>) -> bool {
        let details = details.map(|d| truncate_chars(d, super::MAX_HEARTBEAT_DETAILS_CHARS));
        self.heartbeat.beat(details)
    }
}

impl bindings::swasm::activity::types::Host for StoreState {}

/// Handles (WASI streams, pollables, wasi:http objects...) one task may hold at once. A
/// Python or JavaScript guest holds a few dozen; the default (about a billion) would let a
/// guest hold host memory without bound.
pub const MAX_RESOURCES: usize = 1024;

/// The largest wasi:http header set, in bytes (wasmtime-wasi-http's default: 128 KiB).
/// Common HTTP servers refuse headers past 8-16 KiB anyway.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The largest write to a wasi:http request body's stream, in bytes; a body buffers at most
/// two such writes until the request's connection takes them (wasmtime-wasi-http's default
/// chunk of 1 MiB let a guest without any grant hold 2 MiB of host memory per unsent
/// request). Guests write what `check-write` allows, so an upload only takes more calls.
pub const MAX_BODY_CHUNK: usize = 8 * 1024;

/// The most bytes one `wasi:random` `get-random-bytes` (or `get-insecure-random-bytes`) call
/// may ask for. The host allocates them before they reach the guest's memory, so
/// `memory_mb` does not bound them; wasmtime-wasi's default is 64 MiB a call. libc and
/// language runtimes ask for a few hundred bytes at a time.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The trap raised by the epoch callback when a task is past its `timeout_s`.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the activity ran past its timeout_s deadline")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A fresh store for one task, with its grants, limits and deadline.
pub(crate) fn new_store(
    engine: &Engine,
    awake: Awake,
    task: &ActivityTask,
    settings: &ActivitySettings,
    heartbeat: HeartbeatHandle,
    deadline: Instant,
) -> Result<Store<StoreState>> {
    let mut b = WasiCtxBuilder::new();
    let ty: Arc<str> = task.activity_type.to_string().into();
    let id: Arc<str> = task.activity_id.as_str().into();
    let output = TaskOutput::default();
    b.stdout(GuestLog::new(
        id.clone(),
        ty.clone(),
        Stream::Stdout,
        output.clone(),
    ));
    b.stderr(GuestLog::new(id, ty, Stream::Stderr, output.clone()));
    for (k, v) in &settings.env {
        b.env(k, v);
    }
    for grant in &settings.dirs {
        let perms = if grant.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&grant.host, &grant.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot open granted dir {}", grant.host.display()))?;
    }
    let mut store = store(
        engine,
        b,
        settings.allowed_hosts.clone(),
        settings.memory_mb,
        heartbeat,
        awake,
        deadline,
    );
    store.data_mut().output = Some(output);
    Ok(store)
}

/// A store that grants nothing (no env, files, HTTP; stdout and stderr discarded), for
/// instantiating a component once when it is loaded, with `memory_mb` of memory and
/// `timeout` of time.
pub(crate) fn load_check_store(
    engine: &Engine,
    awake: Awake,
    memory_mb: u64,
    timeout: std::time::Duration,
) -> Store<StoreState> {
    store(
        engine,
        WasiCtxBuilder::new(),
        Vec::new(),
        memory_mb,
        Arc::new(crate::activity::NoHeartbeat),
        awake,
        Instant::now() + timeout,
    )
}

/// The one place a `Store` is made: `wasi` (its grants) with no network, HTTP only to
/// `allowed_hosts`, `memory_mb` of memory, and guest code interrupted at `deadline`.
fn store(
    engine: &Engine,
    mut wasi: WasiCtxBuilder,
    allowed_hosts: Vec<String>,
    memory_mb: u64,
    heartbeat: HeartbeatHandle,
    awake: Awake,
    deadline: Instant,
) -> Store<StoreState> {
    // No network: every socket address is refused and names are not resolved.
    wasi.socket_addr_check(|_, _| Box::pin(async { false }));
    wasi.allow_ip_name_lookup(false);
    wasi.allow_tcp(false);
    wasi.allow_udp(false);
    wasi.max_random_size(MAX_RANDOM_BYTES.min(memory_mb.saturating_mul(1 << 20)));
    // Host memory a guest's handles hold is not its linear memory, so `memory_mb` does not
    // bound it: wasi:http header sets and request bodies, for two, are linked for every
    // guest, and by default held up to 128 KiB and 2 MiB each. The table caps the handles a
    // task holds at once, a header set is capped at MAX_HEADER_BYTES and a body's buffer at
    // 2 x MAX_BODY_CHUNK, so one task holds at most MAX_RESOURCES x 32 KiB (32 MiB) this
    // way (a request holds its headers and its body).
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_HEADER_BYTES);
    let state = StoreState {
        wasi: wasi.build(),
        table,
        http,
        gate: HttpGate {
            allowed: allowed_hosts,
            in_flight: http_slots(),
            refusal_logged: false,
        },
        limits: GuestLimits::new(memory_mb),
        heartbeat,
        output: None,
        _awake: awake,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    // A guest still running at a tick yields through tokio's `yield_now`, which wakes it
    // only after its runtime looked at timers and I/O. `Yield` would wake it at once, and a
    // current-thread runtime looks at them every 61 polls only: the other runs on a guest
    // thread (their timeouts, sockets, sleeps) would wait ~0.6 s behind a looping guest.
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        }
    });
    store
}

/// What one table element costs the host: a pointer (funcref or externref).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Memory limit of one store; remembers a denial so a resulting trap can be reported as
/// `swasm.MemoryLimit` rather than as a generic trap.
pub(crate) struct GuestLimits {
    /// `memory_mb`, for all the linear memories and tables of the task together: a
    /// component may define several (the pool allows `MEMORIES_PER_COMPONENT` and
    /// `TABLES_PER_COMPONENT`), and a limit per memory would let it have that many times it.
    memory_bytes: usize,
    /// The size of all the task's memories and tables now.
    total: usize,
    pub(crate) denied: Option<String>,
    /// The largest total the store's memories asked for, granted or not.
    pub(crate) peak: usize,
}

impl GuestLimits {
    fn new(memory_mb: u64) -> GuestLimits {
        GuestLimits {
            memory_bytes: usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            total: 0,
            denied: None,
            peak: 0,
        }
    }
}

impl GuestLimits {
    /// One memory or table going from `current` to `desired` bytes, within `memory_mb` for
    /// all of them together; `refused` says what was asked when it is not granted.
    fn grow(
        &mut self,
        current: usize,
        desired: usize,
        over_max: bool,
        refused: impl FnOnce() -> String,
    ) -> bool {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        self.peak = self.peak.max(total);
        if total > self.memory_bytes || over_max {
            self.denied = Some(format!(
                "{} denied (limit {} bytes = memory_mb, for all the task's memories and tables together)",
                refused(),
                self.memory_bytes
            ));
            return false;
        }
        self.total = total;
        true
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for each memory as it is made (from 0) and as it grows.
        let over_max = maximum.is_some_and(|m| desired > m);
        Ok(self.grow(current, desired, over_max, || {
            format!("memory growth from {current} to {desired} bytes")
        }))
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied
            .get_or_insert_with(|| format!("memory growth failed: {error}"));
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for each table as it is made (from 0) and as it grows. A table's elements
        // are host memory as much as a linear memory's pages (a component may have 64
        // tables of 200,000 elements: 100 MB), so they count against `memory_mb` too.
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        let over_max = maximum.is_some_and(|m| desired > m);
        Ok(self.grow(bytes(current), bytes(desired), over_max, || {
            format!("table growth from {current} to {desired} elements")
        }))
    }
}

/// Decides outbound HTTP: only authorities in the activity's `allowed_hosts` are reached.
pub(crate) struct HttpGate {
    allowed: Vec<String>,
    /// A permit per request of this task whose connection is open (each holds a socket of
    /// the host): [`http_slots`].
    in_flight: Arc<tokio::sync::Semaphore>,
    /// A refusal was logged for this task: the next ones go to debug, so a guest that
    /// retries in a loop cannot flood the host's log.
    refusal_logged: bool,
}

impl HttpGate {
    fn allows(&self, uri: &http::Uri) -> Option<String> {
        // `user@host`: the connector would look up the whole string, a name the guest
        // chose (a DNS channel out, or a wildcard record pointing elsewhere).
        if uri.authority()?.as_str().contains('@') {
            return None;
        }
        let host = uri.host()?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
                80
            } else {
                443
            });
        let authority = format!("{host}:{port}");
        self.allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&authority))
            .then_some(authority)
    }
}

type HttpResult<T> = wasmtime_wasi_http::Result<T>;
type IoFuture = Box<dyn Future<Output = HttpResult<()>> + Send>;

impl WasiHttpHooks for HttpGate {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        MAX_BODY_CHUNK
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: IoFuture,
    ) -> Box<
        dyn Future<Output = HttpResult<(http::Response<wasmtime_wasi_http::WasiBody>, IoFuture)>>
            + Send,
    > {
        drop(fut);
        if self.allows(request.uri()).is_none() {
            if std::mem::replace(&mut self.refusal_logged, true) {
                tracing::debug!(uri = %request.uri(), "guest HTTP request refused: authority not in allowed_hosts");
            } else {
                tracing::warn!(uri = %request.uri(), "guest HTTP request refused: authority not in allowed_hosts (further refusals of this task at debug level)");
            }
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // Each request in flight holds a socket: a guest with a grant must not be able to
        // use up the process's file descriptors (which polls and plugin loads need too).
        let Ok(slot) = self.in_flight.clone().try_acquire_owned() else {
            tracing::debug!(uri = %request.uri(), "guest HTTP request refused: {MAX_HTTP_IN_FLIGHT} already in flight");
            return Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionLimitReached) });
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            // The slot is free again when the connection's driver ends (or is dropped).
            let io = async move {
                let _slot = slot;
                io.await
            };
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

/// Requests one task may have in flight over wasi:http at once.
pub const MAX_HTTP_IN_FLIGHT: usize = 32;

/// The request slots of one task: [`MAX_HTTP_IN_FLIGHT`] permits, each given back when its
/// connection ends.
fn http_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_IN_FLIGHT))
}

/// Cuts `s` to at most `max` characters, and gives the rest of its buffer back (a guest's
/// 1 MB heartbeat cut to 2048 characters must not keep the megabyte).
pub(crate) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.shrink_to_fit();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `memory_mb` bounds all of a task's memories together: a component with two
    /// memories cannot have `memory_mb` in each.
    #[test]
    fn memory_mb_bounds_the_memories_of_a_task_together() {
        const MIB: usize = 1 << 20;
        let mut limits = GuestLimits::new(16);
        // Two memories made at 6 MiB each, then the first grows by 4 MiB: 16 MiB in all.
        assert!(limits.memory_growing(0, 6 * MIB, None).unwrap());
        assert!(limits.memory_growing(0, 6 * MIB, None).unwrap());
        assert!(limits.memory_growing(6 * MIB, 10 * MIB, None).unwrap());
        // Either one growing further would pass 16 MiB in all, though each is below it.
        assert!(!limits.memory_growing(6 * MIB, 7 * MIB, None).unwrap());
        assert!(
            limits
                .denied
                .as_deref()
                .is_some_and(|d| d.contains("together"))
        );
        assert_eq!(limits.peak, 17 * MIB, "the total asked for");
    }

    /// A task has at most [`MAX_HTTP_IN_FLIGHT`] requests (sockets) open; a slot comes
    /// back when its connection ends.
    #[test]
    fn http_requests_in_flight_are_capped_per_task() {
        let slots = http_slots();
        let held: Vec<_> = (0..MAX_HTTP_IN_FLIGHT)
            .map(|_| slots.clone().try_acquire_owned().expect("a free slot"))
            .collect();
        assert!(slots.clone().try_acquire_owned().is_err());
        drop(held.into_iter().next());
        assert!(slots.clone().try_acquire_owned().is_ok());
    }
}
