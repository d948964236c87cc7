//! Test support for the end-to-end suites under `tests/tests/`.
//!
//! Everything here drives real parts: `swasm local-swf` and `swasm run` as processes (or
//! swf-local in-process where a test must restart it with its state), aws-sdk-swf as the
//! decider and observer, plain HTTP for swf-local's `/_faults` `/_stats` and the host's
//! `/metrics` `/status`. Waiting is always "poll a condition until a deadline", never sleep.
//!
//! # Layout
//! - [`bin`], [`plugin`]: where the `swasm` binary and the built guests are.
//! - [`LocalSwf`]: a `swasm local-swf` process on a free loopback port.
//! - [`Host`], [`HostConfig`]: a `swasm run` process with a temp config and plugin dir.
//! - [`KillOnDrop`], [`run_within`], [`swasm`]: any other child process, killed if the test
//!   fails, and always waited for with a deadline.
//! - [`Swf`]: an aws-sdk-swf client plus domain set-up, workflow start, history reading.
//! - [`Decider`]: schedules the activities a workflow's input lists, turns `cancel` signals
//!   into RequestCancelActivityTask, and optionally reschedules timed-out activities.
//! - [`Scenario`]: swf-local, a client with the domain and types registered, and a decider:
//!   what a test starts before its host.
//! - [`http`]: a tiny HTTP/1.1 client for the control and metrics endpoints.
//! - [`wait_until`]: the only way tests wait.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_swf::types::{
    ActivityType, Decision, DecisionType, EventType, HistoryEvent,
    RequestCancelActivityTaskDecisionAttributes, ScheduleActivityTaskDecisionAttributes, TaskList,
    WorkflowExecution, WorkflowType,
};
use serde_json::{Value, json};

pub const DECISION_TASK_LIST: &str = "decisions";
pub const WORKFLOW: (&str, &str) = ("e2e", "1");

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `swasm` binary: `SWASM_BIN`, else next to the test executable's parent dir
/// (`target/debug/deps/x` -> `target/debug/swasm`).
pub fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("SWASM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("test exe has a grand-parent dir")
        .join("swasm");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p swasm` first (or set SWASM_BIN)",
        p.display()
    );
    p
}

/// The built example plugins: `SWASM_PLUGINS_DIST`, else `plugins/dist`.
pub fn plugins_dist() -> PathBuf {
    std::env::var("SWASM_PLUGINS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("plugins/dist"))
}

/// A built guest: `plugins/dist/NAME.wasm` or `tests/guests/dist/NAME.wasm` (or the dirs in
/// `SWASM_PLUGINS_DIST` / `SWASM_TEST_GUESTS_DIST`).
pub fn plugin(file: &str) -> PathBuf {
    let dirs = [
        plugins_dist(),
        std::env::var("SWASM_TEST_GUESTS_DIST")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("tests/guests/dist")),
    ];
    for d in &dirs {
        let p = d.join(file);
        if p.is_file() {
            return p;
        }
    }
    panic!("guest {file} not found in {dirs:?}: run `make plugins test-guests` first");
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to a minute) until the host whose metrics listen at `base`
/// (`http://127.0.0.1:<port>`) answers `/readyz` with 200.
pub async fn wait_ready(base: &str) {
    wait_until("/readyz", Duration::from_secs(60), || async {
        (http::status(&format!("{base}/readyz")).await.ok()? == 200).then_some(())
    })
    .await;
}

/// A fresh directory under the system temp dir. It is removed when the test's
/// [`LocalSwf`] is dropped, unless the test failed: then it is kept, with the host's log,
/// for a look afterwards.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("swasm-e2e-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    TEMP_DIRS.with(|dirs| dirs.borrow_mut().push(d.clone()));
    d
}

thread_local! {
    /// The dirs [`temp_dir`] made on this thread. A test runs on a thread of its own (and
    /// `#[tokio::test]` runs its body there), so a test removes only its own dirs even
    /// when tests share a process.
    static TEMP_DIRS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Removes the dirs [`temp_dir`] made on this thread, unless the test is failing. A test
/// without a [`LocalSwf`] calls it when its endpoint goes.
pub fn remove_temp_dirs() {
    if std::thread::panicking() {
        return;
    }
    for d in TEMP_DIRS.with(|dirs| std::mem::take(&mut *dirs.borrow_mut())) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Reads the first stdout line of a child (`listening on http://...`).
fn first_line(child: &mut Child) -> Result<String> {
    let out = child.stdout.take().context("no stdout")?;
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Ok(line.trim().to_string())
}

/// A `swasm local-swf` process.
pub struct LocalSwf {
    child: Child,
    pub url: String,
}

impl LocalSwf {
    /// Starts on a free port with 1 s polls.
    pub fn start() -> LocalSwf {
        Self::start_with(&["--listen", "127.0.0.1:0", "--poll-timeout-ms", "1000"])
    }

    pub fn start_with(args: &[&str]) -> LocalSwf {
        let mut child = Command::new(bin())
            .arg("local-swf")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn swasm local-swf");
        let line = first_line(&mut child).expect("read swf-local's first line");
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        LocalSwf { child, url }
    }

    /// `POST /_faults` with `{"clear": true, "rules": rules}`.
    pub async fn set_faults(&self, rules: Value) {
        http::post(
            &format!("{}/_faults", self.url),
            &json!({"clear": true, "rules": rules}).to_string(),
        )
        .await
        .expect("POST /_faults");
    }

    /// `POST /_quotas` with `quotas` (the shape `GET /_quotas` shows): they replace the
    /// quotas applied, every bucket full.
    pub async fn set_quotas(&self, quotas: Value) {
        http::post(&format!("{}/_quotas", self.url), &quotas.to_string())
            .await
            .expect("POST /_quotas");
    }

    /// Calls per SWF operation seen so far.
    pub async fn stats(&self) -> BTreeMap<String, u64> {
        self.counts("calls").await
    }

    /// Calls per SWF operation that the rate quotas refused (ThrottlingException).
    pub async fn throttled(&self) -> BTreeMap<String, u64> {
        self.counts("throttled").await
    }

    /// One of the counts `GET /_stats` returns, by operation.
    async fn counts(&self, key: &str) -> BTreeMap<String, u64> {
        let body = http::get(&format!("{}/_stats", self.url))
            .await
            .expect("GET /_stats");
        let v: Value = serde_json::from_str(&body).expect("stats JSON");
        v[key]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn calls(&self, op: &str) -> u64 {
        self.stats().await.get(op).copied().unwrap_or(0)
    }

    /// `GET /_activities?domain=D`: `{"open": [...], "closed": [...]}`, each entry with
    /// `workflowId`, `activityId`, `status` and the last heartbeat `details`.
    pub async fn activities(&self, domain: &str) -> Value {
        let body = http::get(&format!("{}/_activities?domain={domain}", self.url))
            .await
            .expect("GET /_activities");
        serde_json::from_str(&body).expect("activities JSON")
    }
}

impl Drop for LocalSwf {
    /// Stops the endpoint; every test that starts hosts holds one until its end, so this
    /// is also where the test's temp dirs go.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_temp_dirs();
    }
}

/// One `[[task_list]]` of a test config; `plugins` are `(guest file, name in the dir)`.
#[derive(Clone)]
pub struct TaskListSpec {
    pub name: String,
    pub plugins: Vec<(String, String)>,
    pub max_concurrent: usize,
    pub pollers: usize,
}

impl TaskListSpec {
    /// A list serving the given guests under their own file names (`echo@1.wasm`, ...).
    pub fn new(name: &str, files: &[&str]) -> TaskListSpec {
        TaskListSpec {
            name: name.to_string(),
            plugins: files
                .iter()
                .map(|f| (f.to_string(), f.to_string()))
                .collect(),
            max_concurrent: 10,
            pollers: 2,
        }
    }
}

/// A `swasm.toml` and plugin dirs in a temp dir.
pub struct HostConfig {
    pub dir: PathBuf,
    pub domain: String,
    pub endpoint: String,
    pub task_lists: Vec<TaskListSpec>,
    /// Appended verbatim (e.g. `[defaults]` or `[activity."x@1"]` tables).
    pub extra: String,
    pub shutdown_grace_s: u64,
    pub metrics_listen: Option<String>,
    pub register_domain: bool,
    /// `[cache] dir`; `None` means one shared dir under the system temp dir.
    pub cache_dir: Option<PathBuf>,
}

impl HostConfig {
    pub fn new(endpoint: &str, domain: &str, task_lists: Vec<TaskListSpec>) -> HostConfig {
        HostConfig {
            dir: temp_dir("host"),
            domain: domain.to_string(),
            endpoint: endpoint.to_string(),
            task_lists,
            extra: String::new(),
            shutdown_grace_s: 30,
            metrics_listen: None,
            register_domain: false,
            cache_dir: None,
        }
    }

    /// Serves `[metrics]` on a loopback port the host picks (`127.0.0.1:0`), so no other
    /// process can take it first; [`Host::metrics_base`] reads where from the host's log.
    pub fn serve_metrics(&mut self) {
        self.metrics_listen = Some("127.0.0.1:0".into());
    }

    /// Writes the config and copies the plugins; returns the config path.
    pub fn write(&self) -> PathBuf {
        let mut toml = format!(
            "shutdown_grace_s = {}\n\n[swf]\ndomain = {:?}\nendpoint_url = {:?}\nregion = \"us-east-1\"\nregister_domain = {}\n\n",
            self.shutdown_grace_s, self.domain, self.endpoint, self.register_domain
        );
        for tl in &self.task_lists {
            let dir = self.dir.join("plugins").join(&tl.name);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, as_name) in &tl.plugins {
                std::fs::copy(plugin(file), dir.join(as_name)).unwrap();
            }
            toml += &format!(
                "[[task_list]]\nname = {:?}\nplugin_dir = \"plugins/{}\"\nmax_concurrent = {}\npollers = {}\n\n",
                tl.name, tl.name, tl.max_concurrent, tl.pollers
            );
        }
        toml += "[cache]\nenabled = true\n";
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("swasm-e2e-cache"));
        toml += &format!("dir = {:?}\n\n", cache_dir.display().to_string());
        if let Some(listen) = &self.metrics_listen {
            toml += &format!("[metrics]\nlisten = {listen:?}\n\n");
        }
        toml += &self.extra;
        let path = self.dir.join("swasm.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }
}

/// Environment every child gets: dummy credentials (swf-local does not check signatures).
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_SWF")
        .env_remove("AWS_PROFILE")
}

/// A `swasm run` process; killed when dropped. Its stderr goes to `log` (shown on failure).
pub struct Host {
    pub child: Child,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Host {
    pub fn start(config: &Path, extra_args: &[&str]) -> Host {
        let log = config.with_file_name(format!("host-{}.log", uuid::Uuid::new_v4()));
        let child = aws_env(
            Command::new(bin())
                .arg("run")
                .arg("--config")
                .arg(config)
                .args(extra_args),
        )
        .env(
            "RUST_LOG",
            std::env::var("SWASM_E2E_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn swasm run");
        Host {
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit; returns the status code, or `None` if still running at the deadline.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        exit_within(&mut self.child, timeout).await
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The base URL (`http://127.0.0.1:<port>`) of the metrics server of a host started
    /// with [`HostConfig::serve_metrics`]: the address it logs once bound (up to a minute).
    pub async fn metrics_base(&self) -> String {
        wait_until(
            "the host to log its metrics address",
            Duration::from_secs(60),
            || async {
                let logs = self.logs();
                let (_, rest) = logs.split_once("metrics on http://")?;
                let (addr, _) = rest.split_once("/metrics")?;
                Some(format!("http://{addr}"))
            },
        )
        .await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- swasm run log ({}) ----\n{}",
                self.log.display(),
                self.logs()
            );
        }
    }
}

/// A child process that is killed (and reaped) when dropped, so a test that fails half-way
/// leaves none running. [`Host`] and [`LocalSwf`] do the same for theirs.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Waits for exit; returns the status, or `None` if still running at the deadline.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        exit_within(&mut self.0, timeout).await
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (without blocking the runtime) until `child` exits; `None` if it still runs after
/// `timeout`.
async fn exit_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `cmd` to completion; returns (status, stdout, stderr). Panics, with what it
/// printed, if it still runs after `limit` (it is killed first).
pub fn run_within(cmd: &mut Command, limit: Duration) -> (ExitStatus, String, String) {
    let mut child = KillOnDrop(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
    );
    // Read on threads, so the child never blocks on a full pipe while it is waited for.
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let out = drain(child.0.stdout.take().expect("piped stdout"));
    let err = drain(child.0.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => (status, out, err),
        None => panic!("{cmd:?} still ran after {limit:?}\nstdout:\n{out}\nstderr:\n{err}"),
    }
}

/// Runs `swasm ARGS` to completion with the AWS test environment; returns (status, stdout,
/// stderr). Panics if it runs longer than 10 minutes (the longest `swasm dev` demo
/// deadline a test sets is 5).
pub fn swasm(args: &[&str]) -> (ExitStatus, String, String) {
    run_within(
        aws_env(Command::new(bin()).args(args)),
        Duration::from_secs(600),
    )
}

/// An aws-sdk-swf client on an endpoint with dummy credentials, plus helpers.
#[derive(Clone)]
pub struct Swf {
    pub client: aws_sdk_swf::Client,
    pub domain: String,
    /// workflow id -> run id of the workflows [`Swf::start`] started.
    runs: std::sync::Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

/// One activity a test workflow schedules.
#[derive(Clone, Debug)]
pub struct Activity {
    pub id: String,
    pub name: String,
    pub version: String,
    pub task_list: String,
    pub input: Option<String>,
    /// Seconds, as strings; `NONE` allowed for heartbeat.
    pub start_to_close: String,
    pub schedule_to_start: String,
    pub heartbeat: String,
}

impl Activity {
    pub fn new(id: &str, ty: &str, task_list: &str, input: Option<&str>) -> Activity {
        let (name, version) = ty.rsplit_once('@').expect("type as name@version");
        Activity {
            id: id.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            task_list: task_list.to_string(),
            input: input.map(str::to_string),
            start_to_close: "60".into(),
            schedule_to_start: "300".into(),
            heartbeat: "NONE".into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "version": self.version, "task_list": self.task_list,
               "input": self.input, "start_to_close": self.start_to_close,
               "schedule_to_start": self.schedule_to_start, "heartbeat": self.heartbeat})
    }
}

/// How one activity (all its attempts) ended in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    Completed(Option<String>),
    Failed { reason: String, details: String },
    Canceled(Option<String>),
    TimedOut(String),
}

impl Swf {
    pub async fn new(endpoint: &str, domain: &str) -> Swf {
        let creds = aws_sdk_swf::config::Credentials::new("test", "test", None, None, "e2e");
        let conf = aws_sdk_swf::config::Builder::new()
            .behavior_version(aws_sdk_swf::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_swf::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(70))
                    .build(),
            )
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(5))
            .build();
        Swf {
            client: aws_sdk_swf::Client::from_conf(conf),
            domain: domain.to_string(),
            runs: Default::default(),
        }
    }

    /// Registers the domain, the test workflow type and the given activity types
    /// (`(name@version, default heartbeat timeout)`), ignoring "already exists".
    pub async fn setup(&self, activity_types: &[(&str, Option<u64>)]) -> Result<()> {
        let r = self
            .client
            .register_domain()
            .name(&self.domain)
            .workflow_execution_retention_period_in_days("1")
            .send()
            .await;
        ignore_exists(r.map(|_| ()))?;
        let r = self
            .client
            .register_workflow_type()
            .domain(&self.domain)
            .name(WORKFLOW.0)
            .version(WORKFLOW.1)
            .default_task_list(tl(DECISION_TASK_LIST))
            .default_task_start_to_close_timeout("60")
            .default_execution_start_to_close_timeout("3600")
            .default_child_policy(aws_sdk_swf::types::ChildPolicy::Terminate)
            .send()
            .await;
        ignore_exists(r.map(|_| ()))?;
        for (ty, hb) in activity_types {
            let (name, version) = ty.rsplit_once('@').unwrap();
            let r = self
                .client
                .register_activity_type()
                .domain(&self.domain)
                .name(name)
                .version(version)
                .default_task_heartbeat_timeout(hb.map_or("NONE".to_string(), |s| s.to_string()))
                .send()
                .await;
            ignore_exists(r.map(|_| ()))?;
        }
        Ok(())
    }

    /// Starts a workflow whose decider schedules `activities`; `retry_timeouts` makes the
    /// decider reschedule an activity that timed out.
    pub async fn start(
        &self,
        workflow_id: &str,
        activities: &[Activity],
        retry_timeouts: bool,
    ) -> Result<String> {
        self.start_with(workflow_id, activities, retry_timeouts, None)
            .await
    }

    /// Like [`Swf::start`], but the decider keeps at most `batch` activities open: it
    /// schedules the first `batch`, then the next one each time one closes, so tasks keep
    /// flowing for the whole run instead of arriving all at once.
    pub async fn start_batched(
        &self,
        workflow_id: &str,
        activities: &[Activity],
        batch: usize,
    ) -> Result<String> {
        self.start_with(workflow_id, activities, false, Some(batch))
            .await
    }

    async fn start_with(
        &self,
        workflow_id: &str,
        activities: &[Activity],
        retry_timeouts: bool,
        batch: Option<usize>,
    ) -> Result<String> {
        let input = json!({"activities": activities.iter().map(Activity::to_json).collect::<Vec<_>>(),
                           "retry_timeouts": retry_timeouts, "batch": batch});
        let out = self
            .client
            .start_workflow_execution()
            .domain(&self.domain)
            .workflow_id(workflow_id)
            .workflow_type(
                WorkflowType::builder()
                    .name(WORKFLOW.0)
                    .version(WORKFLOW.1)
                    .build()?,
            )
            .input(input.to_string())
            .send()
            .await?;
        let run_id = out.run_id.unwrap_or_default();
        self.runs
            .lock()
            .unwrap()
            .insert(workflow_id.to_string(), run_id.clone());
        Ok(run_id)
    }

    pub async fn signal_cancel(&self, workflow_id: &str, activity_id: &str) -> Result<()> {
        self.client
            .signal_workflow_execution()
            .domain(&self.domain)
            .workflow_id(workflow_id)
            .signal_name("cancel")
            .input(activity_id)
            .send()
            .await?;
        Ok(())
    }

    /// The whole history of the latest run of `workflow_id`.
    pub async fn history(&self, workflow_id: &str) -> Result<Vec<HistoryEvent>> {
        let run_id = self
            .runs
            .lock()
            .unwrap()
            .get(workflow_id)
            .cloned()
            .with_context(|| format!("workflow {workflow_id} was not started by this Swf"))?;
        let mut events = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let exec = WorkflowExecution::builder()
                .workflow_id(workflow_id)
                .run_id(&run_id)
                .build()?;
            let out = self
                .client
                .get_workflow_execution_history()
                .domain(&self.domain)
                .execution(exec)
                .set_next_page_token(page.clone())
                .send()
                .await?;
            events.extend(out.events);
            page = out.next_page_token.filter(|t| !t.is_empty());
            if page.is_none() {
                return Ok(events);
            }
        }
    }

    /// How each logical activity (attempt suffixes `#N` stripped) ended, in order of ending.
    pub async fn closed(&self, workflow_id: &str) -> Result<BTreeMap<String, Vec<Closed>>> {
        Ok(closed_activities(&self.history(workflow_id).await?))
    }

    /// Starts a workflow of the one `activity` and waits (up to `timeout`) until it has a
    /// final outcome; returns how each of its attempts closed.
    pub async fn run_one(
        &self,
        workflow_id: &str,
        activity: Activity,
        timeout: Duration,
    ) -> Vec<Closed> {
        let id = activity.id.clone();
        self.start(workflow_id, &[activity], false).await.unwrap();
        let mut closed = self.wait_closed(workflow_id, 1, timeout).await;
        closed.remove(&id).unwrap_or_default()
    }

    /// Waits until every activity in `ids` has a final outcome (not a retried timeout).
    pub async fn wait_closed(
        &self,
        workflow_id: &str,
        n: usize,
        timeout: Duration,
    ) -> BTreeMap<String, Vec<Closed>> {
        wait_until(
            &format!("{n} activities of {workflow_id} to close"),
            timeout,
            || async {
                let c = self.closed(workflow_id).await.ok()?;
                let finals = c
                    .values()
                    .filter(|v| v.last().is_some_and(|c| !matches!(c, Closed::TimedOut(_))))
                    .count();
                (finals >= n).then_some(c)
            },
        )
        .await
    }
}

fn tl(name: &str) -> TaskList {
    TaskList::builder().name(name).build().unwrap()
}

fn ignore_exists(
    r: std::result::Result<
        (),
        aws_sdk_swf::error::SdkError<
            impl aws_sdk_swf::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
            impl std::fmt::Debug,
        >,
    >,
) -> Result<()> {
    use aws_sdk_swf::error::ProvideErrorMetadata;
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.code().is_some_and(|c| c.ends_with("AlreadyExistsFault")) => Ok(()),
        Err(e) => Err(anyhow!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )),
    }
}

/// The logical id of an attempt id (`a1#2` -> `a1`).
pub fn logical(id: &str) -> &str {
    id.split('#').next().unwrap_or(id)
}

/// From a history: logical activity id -> the closing events of its attempts, in order.
pub fn closed_activities(events: &[HistoryEvent]) -> BTreeMap<String, Vec<Closed>> {
    let mut scheduled: BTreeMap<i64, String> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<Closed>> = BTreeMap::new();
    for e in events {
        let id_of = |sched: i64| {
            scheduled
                .get(&sched)
                .map(|s| logical(s).to_string())
                .unwrap_or_default()
        };
        match e.event_type {
            EventType::ActivityTaskScheduled => {
                let a = e.activity_task_scheduled_event_attributes.as_ref().unwrap();
                scheduled.insert(e.event_id, a.activity_id.clone());
            }
            EventType::ActivityTaskCompleted => {
                let a = e.activity_task_completed_event_attributes.as_ref().unwrap();
                out.entry(id_of(a.scheduled_event_id))
                    .or_default()
                    .push(Closed::Completed(a.result.clone()));
            }
            EventType::ActivityTaskFailed => {
                let a = e.activity_task_failed_event_attributes.as_ref().unwrap();
                out.entry(id_of(a.scheduled_event_id))
                    .or_default()
                    .push(Closed::Failed {
                        reason: a.reason.clone().unwrap_or_default(),
                        details: a.details.clone().unwrap_or_default(),
                    });
            }
            EventType::ActivityTaskCanceled => {
                let a = e.activity_task_canceled_event_attributes.as_ref().unwrap();
                out.entry(id_of(a.scheduled_event_id))
                    .or_default()
                    .push(Closed::Canceled(a.details.clone()));
            }
            EventType::ActivityTaskTimedOut => {
                let a = e.activity_task_timed_out_event_attributes.as_ref().unwrap();
                out.entry(id_of(a.scheduled_event_id))
                    .or_default()
                    .push(Closed::TimedOut(a.timeout_type.as_str().to_string()));
            }
            _ => {}
        }
    }
    out
}

/// A decider for the test workflow type, running in the background until dropped.
pub struct Decider {
    task: tokio::task::JoinHandle<()>,
}

impl Decider {
    pub fn start(swf: &Swf) -> Decider {
        let swf = swf.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = decide_once(&swf).await {
                    eprintln!("decider: {e:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Decider { task }
    }
}

impl Drop for Decider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything a test runs but its host: a `swasm local-swf`, an [`Swf`] client with the
/// domain, the test workflow type and the given activity types registered, and a [`Decider`].
/// Bind it before the test's [`Host`]: locals drop in reverse order, so the host stops first.
pub struct Scenario {
    // Fields drop in this order: the decider and the client before the endpoint they call.
    _decider: Decider,
    pub swf: Swf,
    pub swf_local: LocalSwf,
}

impl Scenario {
    /// On a [`LocalSwf::start`] (free port, 1 s polls); `activity_types` as in [`Swf::setup`].
    pub async fn start(domain: &str, activity_types: &[(&str, Option<u64>)]) -> Scenario {
        Self::on(LocalSwf::start(), domain, activity_types).await
    }

    /// On a [`LocalSwf::start_with`] `args`, for a fixed port or another poll timeout.
    pub async fn start_with(
        args: &[&str],
        domain: &str,
        activity_types: &[(&str, Option<u64>)],
    ) -> Scenario {
        Self::on(LocalSwf::start_with(args), domain, activity_types).await
    }

    async fn on(
        swf_local: LocalSwf,
        domain: &str,
        activity_types: &[(&str, Option<u64>)],
    ) -> Scenario {
        let swf = Swf::new(&swf_local.url, domain).await;
        swf.setup(activity_types).await.unwrap();
        Scenario {
            _decider: Decider::start(&swf),
            swf,
            swf_local,
        }
    }

    /// A host config for this swf-local and domain, so a test names its domain once.
    pub fn host_config(&self, task_lists: Vec<TaskListSpec>) -> HostConfig {
        HostConfig::new(&self.swf_local.url, &self.swf.domain, task_lists)
    }
}

/// Polls one decision task (all pages) and answers it.
async fn decide_once(swf: &Swf) -> Result<()> {
    let mut events = Vec::new();
    let mut token;
    let mut page: Option<String> = None;
    let mut previous_started;
    loop {
        let out = swf
            .client
            .poll_for_decision_task()
            .domain(&swf.domain)
            .task_list(tl(DECISION_TASK_LIST))
            .identity("e2e-decider")
            .set_next_page_token(page.clone())
            .send()
            .await?;
        if out.task_token.is_empty() {
            return Ok(());
        }
        token = out.task_token;
        previous_started = out.previous_started_event_id;
        events.extend(out.events);
        page = out.next_page_token.filter(|t| !t.is_empty());
        if page.is_none() {
            break;
        }
    }
    let decisions = decisions_for(&events, previous_started)?;
    swf.client
        .respond_decision_task_completed()
        .task_token(token)
        .set_decisions(Some(decisions))
        .send()
        .await?;
    Ok(())
}

fn schedule(spec: &Value, attempt: u32) -> Result<Decision> {
    let s = |k: &str| spec[k].as_str().unwrap_or_default().to_string();
    let id = if attempt == 0 {
        s("id")
    } else {
        format!("{}#{attempt}", s("id"))
    };
    let attrs = ScheduleActivityTaskDecisionAttributes::builder()
        .activity_type(
            ActivityType::builder()
                .name(s("name"))
                .version(s("version"))
                .build()?,
        )
        .activity_id(id)
        .task_list(tl(&s("task_list")))
        .set_input(spec["input"].as_str().map(str::to_string))
        .start_to_close_timeout(s("start_to_close"))
        .schedule_to_start_timeout(s("schedule_to_start"))
        .schedule_to_close_timeout("NONE")
        .heartbeat_timeout(s("heartbeat"))
        .build()?;
    Ok(Decision::builder()
        .decision_type(DecisionType::ScheduleActivityTask)
        .schedule_activity_task_decision_attributes(attrs)
        .build()?)
}

/// Decisions for the events after `previous_started`, knowing the whole history.
fn decisions_for(events: &[HistoryEvent], previous_started: i64) -> Result<Vec<Decision>> {
    let started = events
        .iter()
        .find(|e| e.event_type == EventType::WorkflowExecutionStarted)
        .and_then(|e| e.workflow_execution_started_event_attributes.as_ref())
        .context("no WorkflowExecutionStarted in the history")?;
    let input: Value = serde_json::from_str(started.input.as_deref().unwrap_or("{}"))?;
    let specs = input["activities"].as_array().cloned().unwrap_or_default();
    let retry = input["retry_timeouts"].as_bool().unwrap_or(false);
    let batch = input["batch"].as_u64().map(|b| b as usize);
    // Batched workflows: specs[next..] are still to be scheduled.
    let mut next = events
        .iter()
        .filter_map(|e| e.activity_task_scheduled_event_attributes.as_ref())
        .map(|a| logical(&a.activity_id).to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let spec_of = |id: &str| {
        specs
            .iter()
            .find(|s| s["id"].as_str() == Some(logical(id)))
            .cloned()
    };
    let mut scheduled: BTreeMap<i64, String> = BTreeMap::new();
    let mut decisions = Vec::new();
    for e in events {
        if e.event_type == EventType::ActivityTaskScheduled {
            scheduled.insert(
                e.event_id,
                e.activity_task_scheduled_event_attributes
                    .as_ref()
                    .unwrap()
                    .activity_id
                    .clone(),
            );
        }
        if e.event_id <= previous_started {
            continue;
        }
        match e.event_type {
            EventType::WorkflowExecutionStarted => {
                let first = batch.unwrap_or(specs.len()).min(specs.len());
                for s in &specs[..first] {
                    decisions.push(schedule(s, 0)?);
                }
                next = first;
            }
            EventType::ActivityTaskCompleted
            | EventType::ActivityTaskFailed
            | EventType::ActivityTaskCanceled
            | EventType::ActivityTaskTimedOut
                if batch.is_some()
                    && next < specs.len()
                    && !(retry && e.event_type == EventType::ActivityTaskTimedOut) =>
            {
                decisions.push(schedule(&specs[next], 0)?);
                next += 1;
            }
            EventType::ActivityTaskTimedOut if retry => {
                let a = e.activity_task_timed_out_event_attributes.as_ref().unwrap();
                let id = scheduled
                    .get(&a.scheduled_event_id)
                    .cloned()
                    .unwrap_or_default();
                let attempt: u32 = id
                    .split('#')
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if let Some(spec) = spec_of(&id) {
                    decisions.push(schedule(&spec, attempt + 1)?);
                }
            }
            EventType::WorkflowExecutionSignaled => {
                let a = e
                    .workflow_execution_signaled_event_attributes
                    .as_ref()
                    .unwrap();
                if a.signal_name == "cancel" {
                    let id = a.input.clone().unwrap_or_default();
                    decisions.push(
                        Decision::builder()
                            .decision_type(DecisionType::RequestCancelActivityTask)
                            .request_cancel_activity_task_decision_attributes(
                                RequestCancelActivityTaskDecisionAttributes::builder()
                                    .activity_id(id)
                                    .build()?,
                            )
                            .build()?,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(decisions)
}

/// A minimal HTTP/1.1 client (`Connection: close`) for control and metrics endpoints.
pub mod http {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn request(method: &str, url: &str, body: &str) -> Result<(u16, String)> {
        let rest = url.strip_prefix("http://").context("only http:// URLs")?;
        let (authority, path) = rest
            .split_once('/')
            .map(|(a, p)| (a, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connect {authority}"))?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
        let status: u16 = head.split(' ').nth(1).context("no status")?.parse()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)?
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    fn dechunk(mut s: &str) -> Result<String> {
        let mut out = String::new();
        loop {
            let (size, rest) = s.split_once("\r\n").context("bad chunk")?;
            let n = usize::from_str_radix(size.trim(), 16)?;
            if n == 0 {
                return Ok(out);
            }
            out.push_str(&rest[..n]);
            s = &rest[n + 2..];
        }
    }

    /// GET; errors unless 2xx.
    pub async fn get(url: &str) -> Result<String> {
        let (status, body) = request("GET", url, "").await?;
        if !(200..300).contains(&status) {
            bail!("GET {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    /// GET returning the status, for probes.
    pub async fn status(url: &str) -> Result<u16> {
        Ok(request("GET", url, "").await?.0)
    }

    pub async fn post(url: &str, body: &str) -> Result<String> {
        let (status, body) = request("POST", url, body).await?;
        if !(200..300).contains(&status) {
            bail!("POST {url}: HTTP {status}: {body}");
        }
        Ok(body)
    }
}

/// The value of a Prometheus sample line `name{labels} value` (labels in the given order).
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().split(' ').next()?.parse().ok())
    })
}

impl Swf {
    /// Whether the activity type `ty` (`name@version`) is registered in this domain:
    /// DescribeActivityType answers (true) or says UnknownResourceFault (false); any other
    /// answer panics.
    pub async fn activity_type_registered(&self, ty: &str) -> bool {
        let (name, version) = ty.rsplit_once('@').expect("type as name@version");
        let described = self
            .client
            .describe_activity_type()
            .domain(&self.domain)
            .activity_type(
                ActivityType::builder()
                    .name(name)
                    .version(version)
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        match described {
            Ok(_) => true,
            Err(e) => {
                let e = e.into_service_error();
                assert!(
                    e.is_unknown_resource_fault(),
                    "DescribeActivityType {ty}: {e:?}"
                );
                false
            }
        }
    }
}
