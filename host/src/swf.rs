//! The SWF side's only door to the service: the [`SwfClient`] trait and its aws-sdk-swf
//! implementation [`AwsSwf`].
//!
//! The trait exists so `heartbeat`, `dispatch` and `poller` can be unit-tested with a fake;
//! every error is classified into [`SwfError`] here, once, so callers branch on meaning
//! (retry, task gone, give up) rather than on SDK types.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use aws_sdk_swf::config::{
    StalledStreamProtectionConfig, retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_swf::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use futures::future::BoxFuture;

use crate::activity::{ActivityTask, ActivityType};
use crate::config::Registration;

/// Long polls are held up to 60 s by SWF; the attempt timeout must be above that.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(70);
/// Every other call is short; a hung connection must not hold a heartbeat or a response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed, in the terms a caller branches on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SwfError {
    /// ThrottlingException: back off and retry.
    #[error("throttled: {0}")]
    Throttled(String),
    /// LimitExceededFault: a count SWF caps is reached (1,000 pollers on a task list, all
    /// hosts together; 10,000 types in a domain; 100 domains). Back off and retry a poll
    /// (other pollers stop); a registration stays refused.
    #[error("an SWF limit is reached: {0}")]
    LimitExceeded(String),
    /// 5xx, connection refused/reset, timeouts: back off and retry.
    #[error("endpoint unavailable: {0}")]
    Unavailable(String),
    /// UnknownResourceFault: the task (or domain, type) does not exist (any more).
    #[error("unknown resource: {0}")]
    TaskGone(String),
    /// The standard AWS chain found no credentials (or could not load them): nothing was
    /// sent. Retried, since a role may provide them later, and the configuration is loaded
    /// again meanwhile ([`CREDENTIALS_RELOAD`]) for a profile file written since.
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    /// OperationNotPermittedFault: IAM or a deprecated domain/type.
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    /// SWF refused the credentials themselves: an expired session token, a key it does not
    /// know, or a signature made with a skewed clock. Retried, like missing credentials:
    /// the chain refreshes a role's temporary credentials, a clock may be fixed, and keys
    /// rotated in a profile file are read by loading the configuration again
    /// ([`CREDENTIALS_RELOAD`]). Keys in the environment need a restart.
    #[error("credentials refused: {0}")]
    CredentialsRefused(String),
    /// TypeAlreadyExistsFault / DomainAlreadyExistsFault (registration).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// ValidationException: the request itself is wrong; retrying cannot help.
    #[error("invalid request: {0}")]
    Validation(String),
    #[error("{0}")]
    Other(String),
}

/// Waits before retries: a delay that starts at `first` and doubles up to `max`, each wait
/// that delay times a random factor in [0.5, 1), so callers that failed together (every
/// poller and every task when SWF throttles the account) do not retry together.
pub struct Backoff {
    first: Duration,
    max: Duration,
    delay: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            delay: first,
        }
    }

    /// The wait before the next try; the one after it will be twice as long (up to `max`).
    pub fn next_wait(&mut self) -> Duration {
        use rand::Rng;
        let wait = self.delay.mul_f64(rand::rng().random_range(0.5..1.0));
        self.delay = (self.delay * 2).min(self.max);
        wait
    }

    /// After a success: the next failure waits from `first` again.
    pub fn reset(&mut self) {
        self.delay = self.first;
    }
}

impl SwfError {
    /// Worth retrying the same call after a pause.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SwfError::Throttled(_)
                | SwfError::LimitExceeded(_)
                | SwfError::Unavailable(_)
                | SwfError::NoCredentials(_)
                | SwfError::CredentialsRefused(_)
        )
    }

    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SwfError::Throttled(_) => "throttled",
            SwfError::LimitExceeded(_) => "limit_exceeded",
            SwfError::Unavailable(_) => "unavailable",
            SwfError::NoCredentials(_) => "no_credentials",
            SwfError::CredentialsRefused(_) => "credentials_refused",
            SwfError::TaskGone(_) => "unknown_resource",
            SwfError::NotPermitted(_) => "not_permitted",
            SwfError::AlreadyExists(_) => "already_exists",
            SwfError::Validation(_) => "validation",
            SwfError::Other(_) => "other",
        }
    }
}

/// One task handed out by PollForActivityTask.
#[derive(Debug, Clone)]
pub struct PolledTask {
    /// Opaque; stays on the SWF side.
    pub token: String,
    pub task: ActivityTask,
}

/// What DescribeActivityType says about a type's registered defaults: the same shape as
/// what `swasm register` gives it, plus the default task list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeDefaults {
    pub task_list: Option<String>,
    pub registration: Registration,
    /// The type is DEPRECATED: deciders can no longer schedule it.
    pub deprecated: bool,
}

pub type SwfResult<T> = std::result::Result<T, SwfError>;

/// The calls the worker makes. Implemented by [`AwsSwf`] and by fakes in unit tests.
pub trait SwfClient: Send + Sync + 'static {
    /// PollForActivityTask on `task_list`; `None` for an empty (timed-out) poll.
    fn poll(&self, task_list: &str) -> BoxFuture<'_, SwfResult<Option<PolledTask>>>;
    /// RecordActivityTaskHeartbeat; returns cancelRequested.
    fn heartbeat(&self, token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<bool>>;
    fn complete(&self, token: &str, result: Option<&str>) -> BoxFuture<'_, SwfResult<()>>;
    fn fail(
        &self,
        token: &str,
        reason: &str,
        details: Option<&str>,
    ) -> BoxFuture<'_, SwfResult<()>>;
    fn cancel(&self, token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<()>>;
    fn describe_activity_type(&self, ty: &ActivityType) -> BoxFuture<'_, SwfResult<TypeDefaults>>;
    /// DescribeDomain: proves the endpoint answers and the domain exists.
    fn describe_domain(&self) -> BoxFuture<'_, SwfResult<()>>;
    fn register_domain(&self, retention_days: u32) -> BoxFuture<'_, SwfResult<()>>;
    fn register_activity_type(
        &self,
        ty: &ActivityType,
        task_list: &str,
        defaults: &Registration,
    ) -> BoxFuture<'_, SwfResult<()>>;
}

/// Where and as whom to talk to SWF.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub domain: String,
    pub identity: String,
    /// `--endpoint-url` / `[swf] endpoint_url`; else `AWS_ENDPOINT_URL_SWF`, `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `--region` / `[swf] region`; else the standard chain.
    pub region: Option<String>,
}

/// aws-sdk-swf behind [`SwfClient`], over [`Clients`] made from the AWS configuration,
/// which is loaded again while credentials are missing or refused ([`AwsSwf::reload`]).
pub struct AwsSwf {
    clients: ArcSwap<Clients>,
    /// Loads the AWS configuration: the standard chain, for the endpoint and region.
    load: Load,
    /// When the configuration was last loaded; held by the one call that loads it again.
    loaded: tokio::sync::Mutex<tokio::time::Instant>,
    /// At most one reload per this long ([`CREDENTIALS_RELOAD`]).
    reload_every: Duration,
    domain: String,
    identity: String,
}

type Load = Box<dyn Fn() -> BoxFuture<'static, Result<aws_config::SdkConfig>> + Send + Sync>;

/// While the standard chain finds no credentials, or SWF refuses them, the AWS
/// configuration is loaded again at most this often: aws-config reads keys from the
/// environment and the profile files once per load, so keys rotated in a file (by a job
/// or a Vault agent) or a file written after start are seen only by a new load.
pub const CREDENTIALS_RELOAD: Duration = Duration::from_secs(60);

/// One client for long polls (70 s attempt timeout, no SDK retries: the poller backs off
/// itself), one for answers (10 s attempts, no SDK retries: the dispatcher retries each
/// attempt itself, so it knows when an attempt ended without a clear answer and may have
/// been taken) and one for every other call (10 s attempts, a few SDK retries for
/// describe/register; heartbeat callers retry on top).
struct Clients {
    poll: aws_sdk_swf::Client,
    answer: aws_sdk_swf::Client,
    call: aws_sdk_swf::Client,
}

impl Clients {
    fn new(sdk: &aws_config::SdkConfig) -> Clients {
        Clients {
            poll: client(sdk, POLL_TIMEOUT, RetryConfig::disabled()),
            answer: client(sdk, CALL_TIMEOUT, RetryConfig::disabled()),
            call: client(
                sdk,
                CALL_TIMEOUT,
                RetryConfig::standard().with_max_attempts(2),
            ),
        }
    }
}

/// An aws-sdk-swf client over `sdk` with this attempt timeout and retry policy. Stalled-stream
/// protection is off: the attempt timeout bounds a hung call, a held long poll looks stalled
/// to it, and its body-throughput monitor cost ~5% of a task's CPU.
fn client(
    sdk: &aws_config::SdkConfig,
    attempt_timeout: Duration,
    retry: RetryConfig,
) -> aws_sdk_swf::Client {
    let conf = aws_sdk_swf::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .retry_config(retry)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_swf::Client::from_conf(conf)
}

impl AwsSwf {
    pub async fn connect(endpoint: &Endpoint) -> Result<AwsSwf> {
        let e = endpoint.clone();
        AwsSwf::with_load(
            endpoint,
            Box::new(move || Box::pin(load_config(e.clone()))),
            CREDENTIALS_RELOAD,
        )
        .await
    }

    async fn with_load(endpoint: &Endpoint, load: Load, reload_every: Duration) -> Result<AwsSwf> {
        let sdk = load().await?;
        Ok(AwsSwf {
            clients: ArcSwap::from_pointee(Clients::new(&sdk)),
            load,
            loaded: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            reload_every,
            domain: endpoint.domain.clone(),
            identity: endpoint.identity.clone(),
        })
    }

    /// One call, boxed; when it fails for want of credentials (none found, or refused), the
    /// AWS configuration may be loaded again for the calls after it ([`AwsSwf::reload`]).
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: impl Future<Output = SwfResult<T>> + Send + 'a,
    ) -> BoxFuture<'a, SwfResult<T>> {
        Box::pin(async move {
            let result = call.await;
            if matches!(
                result,
                Err(SwfError::NoCredentials(_) | SwfError::CredentialsRefused(_))
            ) {
                self.reload().await;
            }
            result
        })
    }

    /// Loads the AWS configuration again, if the last load is at least `reload_every` old
    /// and no other call is loading it ([`CREDENTIALS_RELOAD`] says why). Calls in flight
    /// finish with the clients they started with.
    async fn reload(&self) {
        let Ok(mut loaded) = self.loaded.try_lock() else {
            return;
        };
        if loaded.elapsed() < self.reload_every {
            return;
        }
        // Stamped once the load is done: a load cut off with its call (a heartbeat's stop,
        // an answer given up) leaves the next failing call free to load again.
        let load = (self.load)().await;
        *loaded = tokio::time::Instant::now();
        match load {
            Ok(sdk) => {
                self.clients.store(Arc::new(Clients::new(&sdk)));
                // Debug: while no credentials exist at all, this is once a minute for ever;
                // the poller's streak lines say when calls work again.
                tracing::debug!(
                    "credentials missing or refused: loaded the AWS configuration again (environment, profile files, roles); the next calls use what it found"
                );
            }
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "credentials missing or refused, and the AWS configuration could not be loaded again"
            ),
        }
    }
}

/// The AWS configuration for `endpoint`: the standard chain, with the endpoint URL and region
/// resolved as README says, and dummy credentials for a loopback endpoint.
async fn load_config(endpoint: Endpoint) -> Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    // As the SDKs do, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true drops the environment's
    // endpoint URLs (not `--endpoint-url` or the config's, which are this program's own).
    let ignore_env_urls = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let from_env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|s| !s.is_empty() && !ignore_env_urls)
            .map(|url| (name.to_string(), url))
    };
    let env_url = from_env("AWS_ENDPOINT_URL_SWF").or_else(|| from_env("AWS_ENDPOINT_URL"));
    // The config's and --endpoint-url's are checked when parsed; the environment's here,
    // or a typo would look like an endpoint that is down.
    if endpoint.endpoint_url.is_none()
        && let Some((name, url)) = &env_url
    {
        crate::config::check_endpoint_url(url).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    let url = endpoint
        .endpoint_url
        .clone()
        .or(env_url.map(|(_, url)| url));
    if let Some(url) = &url {
        loader = loader.endpoint_url(url.clone());
        // A loopback endpoint is swf-local (or moto): it checks no signature, and a local
        // run must work on a machine that has no AWS credentials at all.
        if is_loopback_url(url) && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_swf::config::Credentials::new(
                "swasm-local",
                "swasm-local",
                None,
                None,
                "swasm-loopback-endpoint",
            ));
        }
    }
    if let Some(region) = &endpoint.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let mut sdk = loader.load().await;
    if sdk.region().is_none() {
        // A local endpoint (swf-local, moto) does not care which region is signed for;
        // any other does (a VPC endpoint of SWF refuses a signature for another region).
        match &url {
            None => anyhow::bail!("no AWS region: set [swf] region, --region, or AWS_REGION"),
            Some(url) if !is_loopback_url(url) => anyhow::bail!(
                "no AWS region: set [swf] region, --region, or AWS_REGION (the endpoint \
                     {url} is not a local one, so requests must be signed for its region)"
            ),
            Some(_) => {}
        }
        sdk = sdk
            .into_builder()
            .region(aws_config::Region::new("us-east-1"))
            .build();
    }
    Ok(sdk)
}

/// Maps an SDK error to what a caller should do about it.
pub fn classify<E>(err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> SwfError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(e) = credentials_error(&err) {
        // The error and its causes on one line: the chain's attempts are the useful part.
        let mut parts: Vec<String> = Vec::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            let line = c
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if parts.last() != Some(&line) {
                parts.push(line);
            }
            cause = c.source();
        }
        return SwfError::NoCredentials(parts.join(": "));
    }
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SwfError::Unavailable(text)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err.code().unwrap_or_default();
            let message = err.message().unwrap_or_default();
            let short = format!("{code}: {message}");
            match code {
                "ThrottlingException" | "Throttling" => SwfError::Throttled(short),
                "LimitExceededFault" => SwfError::LimitExceeded(short),
                "UnknownResourceFault" => SwfError::TaskGone(short),
                "OperationNotPermittedFault" | "AccessDeniedException" => {
                    SwfError::NotPermitted(short)
                }
                // AWS's common errors for credentials it will not take.
                "ExpiredTokenException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
                | "RequestExpired" => SwfError::CredentialsRefused(short),
                "TypeAlreadyExistsFault" | "DomainAlreadyExistsFault" => {
                    SwfError::AlreadyExists(short)
                }
                "ValidationException" => SwfError::Validation(short),
                // Too many requests, whatever the body says: not acted on, as throttling.
                _ if status == 429 => SwfError::Throttled(format!("HTTP 429: {text}")),
                _ if status >= 500 => SwfError::Unavailable(format!("HTTP {status}: {text}")),
                _ => SwfError::Other(format!("HTTP {status}: {text}")),
            }
        }
        _ => SwfError::Other(text),
    }
}

/// The credentials error behind `err`, if loading credentials is what failed (the SDK
/// reports it as a dispatch failure, like an unreachable endpoint).
fn credentials_error<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> Option<&'e aws_credential_types::provider::error::CredentialsError> {
    let mut e = Some(err);
    while let Some(cause) = e {
        if let Some(c) = cause.downcast_ref() {
            return Some(c);
        }
        e = cause.source();
    }
    None
}

/// SWF durations are strings of seconds or `NONE`.
fn duration_str(seconds: Option<u64>) -> String {
    seconds.map_or_else(|| "NONE".to_string(), |s| s.to_string())
}

fn parse_duration(s: Option<&str>) -> Option<u64> {
    s.and_then(|s| s.parse().ok())
}

impl SwfClient for AwsSwf {
    fn poll(&self, task_list: &str) -> BoxFuture<'_, SwfResult<Option<PolledTask>>> {
        let task_list = task_list.to_string();
        self.call(async move {
            let out = self
                .clients
                .load_full()
                .poll
                .poll_for_activity_task()
                .domain(&self.domain)
                .task_list(
                    aws_sdk_swf::types::TaskList::builder()
                        .name(&task_list)
                        .build()
                        .map_err(other)?,
                )
                .identity(&self.identity)
                .send()
                .await
                .map_err(classify)?;
            if out.task_token.is_empty() {
                return Ok(None);
            }
            let (name, version) = out
                .activity_type
                .map(|t| (t.name, t.version))
                .unwrap_or_default();
            let (workflow_id, run_id) = out
                .workflow_execution
                .map(|w| (w.workflow_id, w.run_id))
                .unwrap_or_default();
            let task = ActivityTask {
                activity_id: out.activity_id,
                activity_type: ActivityType { name, version },
                workflow_id,
                run_id,
                started_event_id: out.started_event_id,
                task_list,
                input: out.input,
            };
            Ok(Some(PolledTask {
                token: out.task_token,
                task,
            }))
        })
    }

    fn heartbeat(&self, token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<bool>> {
        let req = self
            .clients
            .load()
            .call
            .record_activity_task_heartbeat()
            .task_token(token)
            .set_details(details.map(str::to_string));
        self.call(async move { Ok(req.send().await.map_err(classify)?.cancel_requested) })
    }

    fn complete(&self, token: &str, result: Option<&str>) -> BoxFuture<'_, SwfResult<()>> {
        let req = self
            .clients
            .load()
            .answer
            .respond_activity_task_completed()
            .task_token(token)
            .set_result(result.map(str::to_string));
        self.call(async move { req.send().await.map(|_| ()).map_err(classify) })
    }

    fn fail(
        &self,
        token: &str,
        reason: &str,
        details: Option<&str>,
    ) -> BoxFuture<'_, SwfResult<()>> {
        let req = self
            .clients
            .load()
            .answer
            .respond_activity_task_failed()
            .task_token(token)
            .reason(reason)
            .set_details(details.map(str::to_string));
        self.call(async move { req.send().await.map(|_| ()).map_err(classify) })
    }

    fn cancel(&self, token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<()>> {
        let req = self
            .clients
            .load()
            .answer
            .respond_activity_task_canceled()
            .task_token(token)
            .set_details(details.map(str::to_string));
        self.call(async move { req.send().await.map(|_| ()).map_err(classify) })
    }

    fn describe_activity_type(&self, ty: &ActivityType) -> BoxFuture<'_, SwfResult<TypeDefaults>> {
        let ty = ty.clone();
        self.call(async move {
            let out = self
                .clients
                .load_full()
                .call
                .describe_activity_type()
                .domain(&self.domain)
                .activity_type(
                    aws_sdk_swf::types::ActivityType::builder()
                        .name(&ty.name)
                        .version(&ty.version)
                        .build()
                        .map_err(other)?,
                )
                .send()
                .await
                .map_err(classify)?;
            let c = out.configuration.unwrap_or_else(|| {
                aws_sdk_swf::types::ActivityTypeConfiguration::builder().build()
            });
            let deprecated = out
                .type_info
                .as_ref()
                .is_some_and(|i| i.status == aws_sdk_swf::types::RegistrationStatus::Deprecated);
            Ok(TypeDefaults {
                deprecated,
                task_list: c.default_task_list().map(|t| t.name.clone()),
                registration: Registration {
                    schedule_to_start_timeout_s: parse_duration(
                        c.default_task_schedule_to_start_timeout(),
                    ),
                    start_to_close_timeout_s: parse_duration(
                        c.default_task_start_to_close_timeout(),
                    ),
                    schedule_to_close_timeout_s: parse_duration(
                        c.default_task_schedule_to_close_timeout(),
                    ),
                    heartbeat_timeout_s: parse_duration(c.default_task_heartbeat_timeout()),
                    task_priority: c.default_task_priority().and_then(|p| p.parse().ok()),
                    description: out.type_info.and_then(|i| i.description),
                },
            })
        })
    }

    fn describe_domain(&self) -> BoxFuture<'_, SwfResult<()>> {
        self.call(async move {
            self.clients
                .load_full()
                .call
                .describe_domain()
                .name(&self.domain)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }

    fn register_domain(&self, retention_days: u32) -> BoxFuture<'_, SwfResult<()>> {
        self.call(async move {
            self.clients
                .load_full()
                .call
                .register_domain()
                .name(&self.domain)
                .workflow_execution_retention_period_in_days(retention_days.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }

    fn register_activity_type(
        &self,
        ty: &ActivityType,
        task_list: &str,
        defaults: &Registration,
    ) -> BoxFuture<'_, SwfResult<()>> {
        let mut req = self
            .clients
            .load()
            .call
            .register_activity_type()
            .domain(&self.domain)
            .name(&ty.name)
            .version(&ty.version)
            .default_task_schedule_to_start_timeout(duration_str(
                defaults.schedule_to_start_timeout_s,
            ))
            .default_task_start_to_close_timeout(duration_str(defaults.start_to_close_timeout_s))
            .default_task_schedule_to_close_timeout(duration_str(
                defaults.schedule_to_close_timeout_s,
            ))
            .default_task_heartbeat_timeout(duration_str(defaults.heartbeat_timeout_s))
            .set_default_task_priority(defaults.task_priority.map(|p| p.to_string()))
            .set_description(defaults.description.clone());
        match aws_sdk_swf::types::TaskList::builder()
            .name(task_list)
            .build()
        {
            Ok(tl) => req = req.default_task_list(tl),
            Err(e) => return Box::pin(async move { Err(other(e)) }),
        }
        self.call(async move { req.send().await.map(|_| ()).map_err(classify) })
    }
}

fn other(e: impl std::fmt::Display) -> SwfError {
    SwfError::Other(e.to_string())
}

/// Whether an endpoint URL names this machine (127.0.0.0/8, `localhost` or `[::1]`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Connects using the config, with CLI overrides already applied to it.
pub async fn connect(config: &crate::config::Config) -> Result<AwsSwf> {
    AwsSwf::connect(&Endpoint {
        domain: config.swf.domain.clone(),
        identity: config.identity(),
        endpoint_url: config.swf.endpoint_url.clone(),
        region: config.swf.region.clone(),
    })
    .await
    .context("cannot set up the SWF client")
}

/// A scripted in-memory [`SwfClient`] for unit tests of heartbeat, dispatch and poller.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// What a respond call sent.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Response {
        Completed(Option<String>),
        Failed(String, Option<String>),
        Canceled(Option<String>),
    }

    #[derive(Default)]
    pub struct FakeSwf {
        pub heartbeat_timeout_s: Mutex<Option<u64>>,
        pub cancel_requested: AtomicBool,
        pub gone: AtomicBool,
        /// Heartbeat calls never return (an endpoint that takes requests and hangs).
        pub heartbeat_hangs: AtomicBool,
        /// Answers (RespondActivityTask*) never return.
        pub answers_hang: AtomicBool,
        /// DescribeActivityType calls never return.
        pub describe_hangs: AtomicBool,
        /// How long a DescribeActivityType call takes.
        pub describe_delay: Mutex<Duration>,
        /// Errors returned (in order) by the next DescribeActivityType calls.
        pub describe_errors: Mutex<VecDeque<SwfError>>,
        describes: AtomicUsize,
        answer_attempts: AtomicUsize,
        /// Errors returned (in order) by the next heartbeat / respond / poll calls.
        pub fail_next: Mutex<VecDeque<SwfError>>,
        pub tasks: Mutex<VecDeque<PolledTask>>,
        pub polls: AtomicUsize,
        /// How many of the next polls panic (a bug in the poll path).
        pub polls_panic: AtomicUsize,
        heartbeats: Mutex<Vec<Option<String>>>,
        heartbeat_attempts: AtomicUsize,
        pub responses: Mutex<Vec<(String, Response)>>,
        changed: tokio::sync::Notify,
    }

    pub fn task(id: &str, name: &str, version: &str) -> ActivityTask {
        ActivityTask {
            activity_id: id.into(),
            activity_type: ActivityType::new(name, version),
            workflow_id: "wf".into(),
            run_id: "run".into(),
            started_event_id: 1,
            task_list: "tl".into(),
            input: None,
        }
    }

    impl FakeSwf {
        fn next_error(&self) -> Option<SwfError> {
            self.fail_next.lock().unwrap().pop_front()
        }
        pub fn heartbeat_details(&self) -> Vec<Option<String>> {
            self.heartbeats.lock().unwrap().clone()
        }
        pub fn heartbeat_attempts(&self) -> usize {
            self.heartbeat_attempts.load(Ordering::Relaxed)
        }
        pub fn describes(&self) -> usize {
            self.describes.load(Ordering::Relaxed)
        }
        pub fn answer_attempts(&self) -> usize {
            self.answer_attempts.load(Ordering::Relaxed)
        }
        pub fn responses(&self) -> Vec<(String, Response)> {
            self.responses.lock().unwrap().clone()
        }
        /// Waits until `done` holds, looking again at each call the fake records.
        async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
            loop {
                let changed = self.changed.notified();
                if done(self) {
                    return;
                }
                changed.await;
            }
        }
        /// Waits until `n` polls were made (answered or failed).
        pub async fn wait_polls(&self, n: usize) {
            self.wait_until(|f| f.polls.load(Ordering::Relaxed) >= n)
                .await
        }
        /// Waits until `n` heartbeats were attempted (recorded or not).
        pub async fn wait_heartbeat_attempts(&self, n: usize) {
            self.wait_until(|f| f.heartbeat_attempts() >= n).await
        }
        pub async fn wait_heartbeats(&self, n: usize) {
            self.wait_until(|f| f.heartbeats.lock().unwrap().len() >= n)
                .await
        }
        /// Waits until `n` answers were attempted (taken or not).
        pub async fn wait_answer_attempts(&self, n: usize) {
            self.wait_until(|f| f.answer_attempts() >= n).await
        }
        pub async fn wait_responses(&self, n: usize) {
            self.wait_until(|f| f.responses.lock().unwrap().len() >= n)
                .await
        }
        fn respond(&self, token: &str, r: Response) -> BoxFuture<'_, SwfResult<()>> {
            self.answer_attempts.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_waiters();
            if self.answers_hang.load(Ordering::Relaxed) {
                return Box::pin(futures::future::pending());
            }
            let result = match self.next_error() {
                Some(e) => Err(e),
                None => {
                    self.responses.lock().unwrap().push((token.to_string(), r));
                    self.changed.notify_waiters();
                    Ok(())
                }
            };
            Box::pin(async move { result })
        }
    }

    impl SwfClient for FakeSwf {
        fn poll(&self, _task_list: &str) -> BoxFuture<'_, SwfResult<Option<PolledTask>>> {
            Box::pin(async move {
                self.polls.fetch_add(1, Ordering::Relaxed);
                self.changed.notify_waiters();
                let panics = self.polls_panic.load(Ordering::Relaxed);
                if panics > 0 {
                    self.polls_panic.store(panics - 1, Ordering::Relaxed);
                    panic!("a poll that panics");
                }
                if let Some(e) = self.next_error() {
                    return Err(e);
                }
                let t = self.tasks.lock().unwrap().pop_front();
                if t.is_none() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(t)
            })
        }
        fn heartbeat(&self, _token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<bool>> {
            let details = details.map(str::to_string);
            Box::pin(async move {
                self.heartbeat_attempts.fetch_add(1, Ordering::Relaxed);
                self.changed.notify_waiters();
                if self.heartbeat_hangs.load(Ordering::Relaxed) {
                    return futures::future::pending().await;
                }
                if self.gone.load(Ordering::Relaxed) {
                    return Err(SwfError::TaskGone("gone".into()));
                }
                if let Some(e) = self.next_error() {
                    return Err(e);
                }
                self.heartbeats.lock().unwrap().push(details);
                self.changed.notify_waiters();
                Ok(self.cancel_requested.load(Ordering::Relaxed))
            })
        }
        fn complete(&self, token: &str, result: Option<&str>) -> BoxFuture<'_, SwfResult<()>> {
            self.respond(token, Response::Completed(result.map(str::to_string)))
        }
        fn fail(
            &self,
            token: &str,
            reason: &str,
            details: Option<&str>,
        ) -> BoxFuture<'_, SwfResult<()>> {
            self.respond(
                token,
                Response::Failed(reason.to_string(), details.map(str::to_string)),
            )
        }
        fn cancel(&self, token: &str, details: Option<&str>) -> BoxFuture<'_, SwfResult<()>> {
            self.respond(token, Response::Canceled(details.map(str::to_string)))
        }
        fn describe_activity_type(
            &self,
            _ty: &ActivityType,
        ) -> BoxFuture<'_, SwfResult<TypeDefaults>> {
            let t = *self.heartbeat_timeout_s.lock().unwrap();
            Box::pin(async move {
                self.describes.fetch_add(1, Ordering::Relaxed);
                if self.describe_hangs.load(Ordering::Relaxed) {
                    return futures::future::pending().await;
                }
                let delay = *self.describe_delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                if let Some(e) = self.describe_errors.lock().unwrap().pop_front() {
                    return Err(e);
                }
                Ok(TypeDefaults {
                    registration: Registration {
                        heartbeat_timeout_s: t,
                        ..Default::default()
                    },
                    ..Default::default()
                })
            })
        }
        fn describe_domain(&self) -> BoxFuture<'_, SwfResult<()>> {
            Box::pin(async { Ok(()) })
        }
        fn register_domain(&self, _retention_days: u32) -> BoxFuture<'_, SwfResult<()>> {
            Box::pin(async { Ok(()) })
        }
        fn register_activity_type(
            &self,
            _ty: &ActivityType,
            _task_list: &str,
            _defaults: &Registration,
        ) -> BoxFuture<'_, SwfResult<()>> {
            Box::pin(async { Ok(()) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_seconds_or_none() {
        assert_eq!(duration_str(None), "NONE");
        assert_eq!(duration_str(Some(30)), "30");
        assert_eq!(parse_duration(Some("NONE")), None);
        assert_eq!(parse_duration(Some("45")), Some(45));
    }

    #[test]
    fn a_jittered_delay_is_between_half_and_all_of_it() {
        let d = Duration::from_millis(800);
        let mut at_cap = Backoff::new(d, d);
        for _ in 0..1000 {
            let j = at_cap.next_wait();
            assert!(j >= d / 2 && j < d, "{j:?}");
        }
        // The delay doubles up to its cap, and starts again after a reset.
        let mut b = Backoff::new(d, 3 * d);
        for delay in [d, 2 * d, 3 * d, 3 * d] {
            let j = b.next_wait();
            assert!(j >= delay / 2 && j < delay, "{j:?} for {delay:?}");
        }
        b.reset();
        let j = b.next_wait();
        assert!(j >= d / 2 && j < d, "{j:?}");
    }

    #[test]
    fn only_throttling_unavailable_and_credential_errors_retry() {
        assert!(SwfError::Throttled(String::new()).is_retryable());
        assert!(SwfError::Unavailable(String::new()).is_retryable());
        assert!(SwfError::NoCredentials(String::new()).is_retryable());
        assert!(SwfError::CredentialsRefused(String::new()).is_retryable());
        assert!(!SwfError::TaskGone(String::new()).is_retryable());
        assert!(!SwfError::Validation(String::new()).is_retryable());
    }

    /// An error answer of `status` with no error code SWF knows, as `classify` sees it.
    fn uncoded(status: u16) -> SwfError {
        use aws_sdk_swf::operation::respond_activity_task_completed::RespondActivityTaskCompletedError;
        let err = RespondActivityTaskCompletedError::generic(
            aws_smithy_types::error::ErrorMetadata::builder().build(),
        );
        let raw = aws_smithy_runtime_api::http::Response::new(
            status.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        classify(SdkError::service_error(err, raw))
    }

    /// HTTP 429 is throttling whatever its body says: the request was not acted on (so an
    /// answer refused with it is not one that SWF may have taken). 5xx may have been.
    #[test]
    fn status_429_is_throttling_and_5xx_unavailable() {
        assert!(
            matches!(uncoded(429), SwfError::Throttled(_)),
            "{:?}",
            uncoded(429)
        );
        assert!(matches!(uncoded(503), SwfError::Unavailable(_)));
        assert!(matches!(uncoded(500), SwfError::Unavailable(_)));
        assert!(matches!(uncoded(400), SwfError::Other(_)));
    }

    /// A poll over the task list's poller limit is LimitExceededFault: its own kind (so the
    /// log names the limit, not throttling), retried after a pause like throttling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poll_over_the_poller_limit_is_limit_exceeded() {
        let server = swf_local::Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            swf_local::Options {
                poll_timeout: Duration::from_secs(2),
                max_pollers_per_task_list: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let url = server.url();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let swf = AwsSwf::connect(&Endpoint {
            domain: "limits".into(),
            identity: "test".into(),
            endpoint_url: Some(url),
            region: Some("us-east-1".into()),
        })
        .await
        .unwrap();
        swf.register_domain(1).await.unwrap();
        // Two at once: whichever reaches the endpoint second is refused.
        let (a, b) = tokio::join!(swf.poll("tl"), swf.poll("tl"));
        let (held, over) = if a.is_ok() { (a, b) } else { (b, a) };
        assert!(matches!(held, Ok(None)), "{held:?}");
        match over {
            Err(e @ SwfError::LimitExceeded(_)) => {
                assert!(e.is_retryable());
                assert_eq!(e.kind(), "limit_exceeded");
                assert!(e.to_string().contains("LimitExceededFault"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let _ = stop.send(());
        served.await.unwrap().unwrap();
    }

    /// Keys SWF refuses (rotated since the configuration was loaded) make the next call load
    /// it again, at most once per interval, and the calls after it are signed with what the
    /// new load found; within the interval, nothing is loaded again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_credentials_load_the_configuration_again() {
        use std::sync::atomic::Ordering;
        let server = swf_local::Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
            .await
            .unwrap();
        let url = server.url();
        server.faults().add(swf_local::FaultRule {
            operation: None,
            access_key_id: Some("OLDKEY".into()),
            kind: swf_local::FaultKind::ExpiredToken,
            count: None,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let endpoint = Endpoint {
            domain: "rotate".into(),
            identity: "test".into(),
            endpoint_url: Some(url.clone()),
            region: Some("us-east-1".into()),
        };
        // The first load finds the old keys, every later one the rotated keys.
        let connect = |reload_every: Duration| {
            let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (n, url) = (loads.clone(), url.clone());
            let load: Load = Box::new(move || {
                let key = match n.fetch_add(1, Ordering::SeqCst) {
                    0 => "OLDKEY",
                    _ => "NEWKEY",
                };
                let url = url.clone();
                Box::pin(async move {
                    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .endpoint_url(url)
                        .region(aws_config::Region::new("us-east-1"))
                        .credentials_provider(aws_sdk_swf::config::Credentials::new(
                            key, "secret", None, None, "test",
                        ))
                        .load()
                        .await)
                })
            });
            let endpoint = endpoint.clone();
            async move {
                let swf = AwsSwf::with_load(&endpoint, load, reload_every)
                    .await
                    .unwrap();
                (swf, loads)
            }
        };

        let (swf, loads) = connect(Duration::ZERO).await;
        let refused = swf.register_domain(1).await;
        assert!(
            matches!(refused, Err(SwfError::CredentialsRefused(_))),
            "{refused:?}"
        );
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "loaded again after the refusal"
        );
        swf.register_domain(1)
            .await
            .expect("signed with the rotated keys");

        let (swf, loads) = connect(Duration::from_secs(3600)).await;
        for _ in 0..2 {
            let refused = swf.describe_domain().await;
            assert!(
                matches!(refused, Err(SwfError::CredentialsRefused(_))),
                "{refused:?}"
            );
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "not again within the interval"
        );

        let _ = stop.send(());
        served.await.unwrap().unwrap();
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback_url;

    #[test]
    fn recognises_loopback_endpoints() {
        assert!(is_loopback_url("http://127.0.0.1:8700"));
        assert!(is_loopback_url("http://127.3.4.5:1/"));
        assert!(is_loopback_url("http://localhost:8700/x"));
        assert!(is_loopback_url("http://[::1]:8700"));
        // An IPv4-mapped address reaches the same listener as 127.0.0.1.
        assert!(is_loopback_url("http://[::ffff:127.0.0.1]:8700"));
        assert!(!is_loopback_url("https://swf.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("http://10.0.0.1:8700"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com"));
    }
}
