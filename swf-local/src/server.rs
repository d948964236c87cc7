//! HTTP: the accept loop (hyper, HTTP/1.1 keep-alive), fault injection in front of
//! everything, the axum router (`POST /` for SWF, `/_faults`, `/_quotas`, `/_stats`),
//! the rate quotas, `X-Amz-Target` dispatch and the mapping of errors to SWF's wire shape.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Options;
use crate::domains::{self, Kind};
use crate::error::{Fault, SwfError, SwfResult};
use crate::executions;
use crate::faults::{FaultKind, Faults, FaultsRequest};
use crate::model::{Core, Status};
use crate::quotas::{QuotaSet, Quotas};
use crate::state::State;
use crate::tasks::{self, Outcome};
use crate::validate;

/// A bound, not yet serving endpoint.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    opts: Options,
    state: State,
}

/// What every request handler needs.
#[derive(Clone)]
struct Ctx {
    state: State,
    faults: Faults,
    quotas: Quotas,
    poll_timeout: Duration,
    max_pollers: usize,
}

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for ResetConnection {}

impl Server {
    /// Binds `addr` (port 0 = any free port) with fresh state.
    pub async fn bind(addr: SocketAddr, opts: Options) -> std::io::Result<Server> {
        Self::bind_with_state(addr, opts, State::new()).await
    }

    /// Binds `addr` serving an existing state, e.g. the state of a server that was stopped.
    pub async fn bind_with_state(
        addr: SocketAddr,
        opts: Options,
        state: State,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            addr,
            opts,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, for a client's `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fault handle; change it while the server runs.
    pub fn faults(&self) -> Faults {
        self.opts.faults.clone()
    }

    /// The quota handle; change the quotas while the server runs.
    pub fn quotas(&self) -> Quotas {
        self.opts.quotas.clone()
    }

    /// The served state; clone it to hand it to a later server.
    pub fn state(&self) -> State {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then closes the listener and drops every
    /// connection at once (requests in flight get no answer, as when a server dies).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.state.ensure_driver();
        let ctx = Ctx {
            state: self.state.clone(),
            faults: self.opts.faults.clone(),
            quotas: self.opts.quotas.clone(),
            poll_timeout: self.opts.poll_timeout,
            max_pollers: self.opts.max_pollers_per_task_list,
        };
        let router: Router = Router::new()
            // `swf` reads the body itself, with SWF's limit and error (no axum body limit:
            // a `Body` extractor has none).
            .route("/", post(swf))
            .route("/_faults", get(get_faults).post(post_faults))
            .route("/_quotas", get(get_quotas).post(post_quotas))
            .route("/_stats", get(stats))
            .route("/_activities", get(activities))
            .with_state(ctx.clone());
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let (router, ctx) = (router.clone(), ctx.clone());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        serve_one(router.clone(), ctx.clone(), req)
                    });
                    conns.spawn(async move {
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(self.listener);
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        Ok(())
    }
}

/// The SWF operation a request names (`X-Amz-Target: SimpleWorkflowService.<Op>`).
fn operation(headers: &HeaderMap) -> Option<&str> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    Some(
        target
            .strip_prefix("SimpleWorkflowService.")
            .unwrap_or(target),
    )
}

/// The access key id of a SigV4-signed request: `Credential=AKID/date/region/service/...`
/// in its `Authorization` header. Only fault rules read it; no signature is checked.
fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split_once("Credential=")?.1;
    credential.split('/').next().filter(|k| !k.is_empty())
}

async fn serve_one(
    router: Router,
    ctx: Ctx,
    req: Request<Incoming>,
) -> Result<Response<Body>, ResetConnection> {
    let mut late = None;
    if let Some(op) = operation(req.headers()) {
        ctx.state.count_call(op);
        if let Some(fault) = ctx.faults.take(op, || access_key_id(req.headers())) {
            let as_error = |kind, msg: &str| {
                Ok(error_response(&SwfError::new(
                    kind,
                    format!("{msg} (injected fault)"),
                )))
            };
            match fault {
                FaultKind::Reset => return Err(ResetConnection),
                FaultKind::Hang { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
                FaultKind::LateResponse { ms } => late = Some(Duration::from_millis(ms)),
                FaultKind::Status500 => {
                    return as_error(Fault::InternalFailure, "Internal failure");
                }
                FaultKind::Status503 => {
                    return as_error(Fault::ServiceUnavailable, "Service unavailable");
                }
                FaultKind::Throttle => return as_error(Fault::Throttling, "Rate exceeded"),
                FaultKind::OperationNotPermitted => {
                    return as_error(
                        Fault::OperationNotPermitted,
                        "User is not authorized to perform this operation",
                    );
                }
                FaultKind::UnknownResource => {
                    return as_error(Fault::UnknownResource, "Unknown resource");
                }
                FaultKind::ExpiredToken => {
                    return as_error(
                        Fault::ExpiredToken,
                        "The security token included in the request is expired",
                    );
                }
            }
        }
    }
    let resp = match router.oneshot(req.map(Body::new)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if let Some(late) = late {
        tokio::time::sleep(late).await;
    }
    Ok(resp)
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    // A request id from a counter: unique per process, no random source on the hot path.
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(id) = HeaderValue::from_str(&format!("00000000-0000-4000-8000-{id:012x}")) {
        h.insert("x-amzn-requestid", id);
    }
    resp
}

fn error_response(e: &SwfError) -> Response<Body> {
    json_response(e.kind.status(), e.body())
}

/// SWF-LIMITS.md: "one request: 1 MB".
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How much of a too large body is read (and dropped) so the client, still sending, gets the
/// error instead of a reset connection; past this the connection is closed.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

/// Reads a request body of at most [`MAX_REQUEST_BYTES`]; a bigger one is an SWF error (never
/// the plain-text 413 of a body limit).
async fn read_body(body: Body) -> SwfResult<Bytes> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| SwfError::validation(format!("reading the request body: {e}")))?;
        total += chunk.len();
        if total <= MAX_REQUEST_BYTES {
            buf.extend_from_slice(&chunk);
        } else if total > MAX_DRAINED_BYTES {
            break;
        }
    }
    if total > MAX_REQUEST_BYTES {
        return Err(SwfError::validation(format!(
            "Request of {total}{} bytes exceeds SWF's limit of 1 MB ({MAX_REQUEST_BYTES} bytes)",
            if total > MAX_DRAINED_BYTES { "+" } else { "" }
        )));
    }
    Ok(Bytes::from(buf))
}

async fn swf(AxState(ctx): AxState<Ctx>, headers: HeaderMap, body: Body) -> Response<Body> {
    let result = match (operation(&headers), read_body(body).await) {
        (_, Err(e)) => Err(e),
        (Some(op), Ok(body)) => handle(&ctx, op, &body).await,
        (None, Ok(_)) => Err(SwfError::new(
            Fault::UnknownOperation,
            "Missing X-Amz-Target header (SimpleWorkflowService.<Operation>)",
        )),
    };
    match result
        .and_then(|v| serde_json::to_vec(&v).map_err(|e| SwfError::validation(e.to_string())))
    {
        Ok(bytes) => json_response(200, bytes),
        Err(e) => error_response(&e),
    }
}

async fn handle(ctx: &Ctx, op: &str, body: &[u8]) -> SwfResult<Value> {
    if !validate::known_operation(op) {
        return Err(SwfError::new(
            Fault::UnknownOperation,
            format!("Unknown operation: {op}"),
        ));
    }
    if !ctx.quotas.take(op) {
        return Err(throttled(op));
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            SwfError::serialization(format!("{op}: request body is not valid JSON: {e}"))
        })?
    };
    if !input.is_object() {
        return Err(SwfError::serialization(format!(
            "{op}: request body must be a JSON object, not {}",
            validate::json_type(&input)
        )));
    }
    validate::validate(op, &input)?;
    match op {
        "PollForActivityTask" => {
            tasks::poll_for_activity_task(&ctx.state, &input, ctx.poll_timeout, ctx.max_pollers)
                .await
        }
        "PollForDecisionTask" => {
            tasks::poll_for_decision_task(&ctx.state, &input, ctx.poll_timeout, ctx.max_pollers)
                .await
        }
        _ => dispatch(&mut ctx.state.lock(), &ctx.quotas, op, &input),
    }
}

/// SWF's answer to a request over its rate quota.
fn throttled(op: &str) -> SwfError {
    SwfError::new(
        Fault::Throttling,
        format!("Rate exceeded: {op} is over its quota"),
    )
}

fn not_implemented(op: &str) -> SwfError {
    SwfError::new(
        Fault::UnknownOperation,
        format!("swf-local does not implement the operation {op}"),
    )
}

/// The operations answered at once, under the state lock.
fn dispatch(core: &mut Core, quotas: &Quotas, op: &str, input: &Value) -> SwfResult<Value> {
    use Kind::{Activity, Workflow};
    match op {
        "RegisterDomain" => domains::register_domain(core, input),
        "DescribeDomain" => domains::describe_domain(core, input),
        "ListDomains" => domains::list_domains(core, input),
        "DeprecateDomain" => domains::set_domain_status(core, input, Status::Deprecated),
        "UndeprecateDomain" => domains::set_domain_status(core, input, Status::Registered),
        "RegisterActivityType" => domains::register_type(core, input, Activity),
        "DescribeActivityType" => domains::describe_type(core, input, Activity),
        "ListActivityTypes" => domains::list_types(core, input, Activity),
        "DeprecateActivityType" => {
            domains::set_type_status(core, input, Activity, Status::Deprecated)
        }
        "UndeprecateActivityType" => {
            domains::set_type_status(core, input, Activity, Status::Registered)
        }
        "DeleteActivityType" => domains::delete_type(core, input, Activity),
        "RegisterWorkflowType" => domains::register_type(core, input, Workflow),
        "DescribeWorkflowType" => domains::describe_type(core, input, Workflow),
        "ListWorkflowTypes" => domains::list_types(core, input, Workflow),
        "DeprecateWorkflowType" => {
            domains::set_type_status(core, input, Workflow, Status::Deprecated)
        }
        "UndeprecateWorkflowType" => {
            domains::set_type_status(core, input, Workflow, Status::Registered)
        }
        "DeleteWorkflowType" => domains::delete_type(core, input, Workflow),
        "StartWorkflowExecution" => executions::start_workflow_execution(core, input),
        "DescribeWorkflowExecution" => executions::describe_workflow_execution(core, input),
        "GetWorkflowExecutionHistory" => executions::get_workflow_execution_history(core, input),
        "ListOpenWorkflowExecutions" => executions::list_executions(core, input, true),
        "ListClosedWorkflowExecutions" => executions::list_executions(core, input, false),
        "CountOpenWorkflowExecutions" => executions::count_executions(core, input, true),
        "CountClosedWorkflowExecutions" => executions::count_executions(core, input, false),
        "SignalWorkflowExecution" => executions::signal_workflow_execution(core, input),
        "RequestCancelWorkflowExecution" => {
            executions::request_cancel_workflow_execution(core, input)
        }
        "TerminateWorkflowExecution" => executions::terminate_workflow_execution(core, input),
        "RespondDecisionTaskCompleted" => {
            crate::decisions::respond_decision_task_completed(core, input, quotas)
        }
        "RecordActivityTaskHeartbeat" => tasks::record_activity_task_heartbeat(core, input, quotas),
        "RespondActivityTaskCompleted" => {
            tasks::respond_activity_task(core, input, Outcome::Completed)
        }
        "RespondActivityTaskFailed" => tasks::respond_activity_task(core, input, Outcome::Failed),
        "RespondActivityTaskCanceled" => {
            tasks::respond_activity_task(core, input, Outcome::Canceled)
        }
        "CountPendingActivityTasks" => tasks::count_pending_activity_tasks(core, input),
        "CountPendingDecisionTasks" => tasks::count_pending_decision_tasks(core, input),
        "TagResource" => domains::tag_resource(core, input),
        "UntagResource" => domains::untag_resource(core, input),
        "ListTagsForResource" => domains::list_tags_for_resource(core, input),
        other => Err(not_implemented(other)),
    }
}

async fn get_faults(AxState(ctx): AxState<Ctx>) -> axum::Json<Value> {
    axum::Json(json!({"rules": ctx.faults.rules()}))
}

async fn post_faults(
    AxState(ctx): AxState<Ctx>,
    body: Bytes,
) -> Result<axum::Json<Value>, (StatusCode, String)> {
    let req: FaultsRequest = serde_json::from_slice(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("POST /_faults: invalid body: {e}"),
        )
    })?;
    for rule in &req.rules {
        rule.check()
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("POST /_faults: {e}")))?;
    }
    if req.clear {
        ctx.faults.clear();
    }
    for rule in req.rules {
        ctx.faults.add(rule);
    }
    Ok(axum::Json(json!({"rules": ctx.faults.rules()})))
}

async fn get_quotas(AxState(ctx): AxState<Ctx>) -> axum::Json<QuotaSet> {
    axum::Json(ctx.quotas.get())
}

async fn post_quotas(
    AxState(ctx): AxState<Ctx>,
    body: Bytes,
) -> Result<axum::Json<QuotaSet>, (StatusCode, String)> {
    let bad = |e: String| (StatusCode::BAD_REQUEST, format!("POST /_quotas: {e}"));
    let set: QuotaSet = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    set.check().map_err(bad)?;
    ctx.quotas.set(set);
    Ok(axum::Json(ctx.quotas.get()))
}

async fn stats(AxState(ctx): AxState<Ctx>) -> axum::Json<Value> {
    axum::Json(json!({"calls": ctx.state.all_calls(), "throttled": ctx.quotas.throttled()}))
}

/// `GET /_activities?domain=D` (debug): the open activity tasks of D's open executions and
/// the recently closed ones, each with its last heartbeat details.
async fn activities(
    AxState(ctx): AxState<Ctx>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    let domain = q.get("domain");
    let core = ctx.state.lock();
    let wanted = |v: &Value| domain.is_none_or(|d| v["domain"].as_str() == Some(d.as_str()));
    let open: Vec<Value> = core
        .execs
        .values()
        .filter(|ex| ex.is_open())
        .flat_map(|ex| {
            ex.activities
                .values()
                .map(move |a| crate::model::activity_json(ex, a, "open"))
        })
        .filter(|v| wanted(v))
        .collect();
    let closed: Vec<Value> = core
        .recent_activities
        .iter()
        .filter(|v| wanted(v))
        .cloned()
        .collect();
    axum::Json(json!({"open": open, "closed": closed}))
}
