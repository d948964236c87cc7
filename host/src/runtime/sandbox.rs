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
    let state = StoreState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        gate: HttpGate {
            allowed: allowed_hosts,
        },
        limits: GuestLimits::new(memory_mb),
        heartbeat,
        output: None,
        _awake: awake,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// Memory limit of one store; remembers a denial so a resulting trap can be reported as
/// `swasm.MemoryLimit` rather than as a generic trap.
pub(crate) struct GuestLimits {
    memory_bytes: usize,
    pub(crate) denied: Option<String>,
    /// The largest size any memory of the store asked for, granted or not.
    pub(crate) peak: usize,
}

impl GuestLimits {
    fn new(memory_mb: u64) -> GuestLimits {
        GuestLimits {
            memory_bytes: usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            denied: None,
            peak: 0,
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        let over_max = maximum.is_some_and(|m| desired > m);
        if desired > self.memory_bytes || over_max {
            self.denied = Some(format!(
                "memory growth from {current} to {desired} bytes denied (limit {} bytes = memory_mb)",
                self.memory_bytes
            ));
            return Ok(false);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied
            .get_or_insert_with(|| format!("memory growth failed: {error}"));
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m) && desired <= 1_000_000)
    }
}

/// Decides outbound HTTP: only authorities in the activity's `allowed_hosts` are reached.
pub(crate) struct HttpGate {
    allowed: Vec<String>,
}

impl HttpGate {
    fn allows(&self, uri: &http::Uri) -> Option<String> {
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
            tracing::warn!(uri = %request.uri(), "guest HTTP request refused: authority not in allowed_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

/// Cuts `s` to at most `max` characters.
pub(crate) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
    s
}
