//! Shared by the runtime and registry tests: where the guests built from source are, and
//! small helpers to run one task.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swasm::activity::{
    ActivityTask, ActivityType, Heartbeat, HeartbeatHandle, NoHeartbeat, Outcome,
};
use swasm::config::{ActivitySettings, Registration};

/// A fresh scratch dir `$TMPDIR/<prefix>-<name>-<pid>` for one test's fixture. Dirs of this
/// prefix that test processes no longer running left behind are removed first: a registry's
/// background work (a Cranelift upgrade, a cache write on a blocking thread) can finish after
/// its fixture removed the dir, and writing its cache entry creates the dir again.
pub fn scratch_root(prefix: &str, name: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let file = entry.file_name();
        let pid = file
            .to_str()
            .and_then(|f| f.strip_prefix(prefix))
            .filter(|rest| rest.starts_with('-'))
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let root = tmp.join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

fn dist(env: &str, rel: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(rel)
    })
}

/// A test guest (`tests/guests/dist/<file>`).
pub fn guest(file: &str) -> PathBuf {
    let p = dist("SWASM_TEST_GUESTS_DIST", "tests/guests/dist").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run `make test-guests plugins` first",
        p.display()
    );
    p
}

/// An example plugin (`plugins/dist/<file>`).
pub fn example(file: &str) -> PathBuf {
    let p = dist("SWASM_PLUGINS_DIST", "plugins/dist").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run `make test-guests plugins` first",
        p.display()
    );
    p
}

pub fn settings() -> ActivitySettings {
    ActivitySettings {
        memory_mb: 64,
        timeout_s: 30,
        heartbeat_interval_s: 30,
        max_stack_kb: 512,
        env: Default::default(),
        dirs: vec![],
        allowed_hosts: vec![],
        registration: Registration::default(),
    }
}

pub fn task(ty: &str, input: Option<&str>) -> ActivityTask {
    ActivityTask {
        activity_id: "a-1".into(),
        activity_type: ActivityType::parse(ty).expect("name@version"),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        started_event_id: 3,
        task_list: "tl".into(),
        input: input.map(str::to_string),
    }
}

pub fn no_heartbeat() -> HeartbeatHandle {
    Arc::new(NoHeartbeat)
}

/// Records heartbeats; cancels from the `cancel_at`th on.
#[derive(Default)]
pub struct Recorder {
    pub cancel_at: Option<usize>,
    pub beats: Mutex<Vec<Option<String>>>,
}

impl Heartbeat for Recorder {
    fn beat(&self, details: Option<String>) -> bool {
        let mut b = self.beats.lock().unwrap();
        b.push(details);
        self.cancel_at.is_some_and(|c| b.len() >= c)
    }
}

pub fn completed(o: &Outcome) -> &str {
    match o {
        Outcome::Completed(Some(r)) => r,
        other => panic!("expected a completed outcome, got {other:?}"),
    }
}

pub fn failed(o: &Outcome) -> (&str, &str) {
    match o {
        Outcome::Failed { reason, details } => (reason, details.as_deref().unwrap_or("")),
        other => panic!("expected a failed outcome, got {other:?}"),
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Compiles a file into a plugin of type `ty`.
pub fn load(
    rt: &swasm::runtime::Runtime,
    path: &std::path::Path,
    ty: &str,
) -> Arc<swasm::runtime::Plugin> {
    let bytes = std::fs::read(path).unwrap();
    let compiled = rt
        .compile(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    rt.plugin(
        &compiled,
        ActivityType::parse(ty).unwrap(),
        path.to_path_buf(),
        String::new(),
        bytes.len() as u64,
    )
}

/// A component written in the text format: `tests/fixtures/wat/<name>`, with each `(from,
/// to)` of `vars` replaced first (a fixture that is a template names its variables in
/// capitals).
pub fn wat_component(name: &str, vars: &[(&str, &str)]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wat")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in vars {
        text = text.replace(from, to);
    }
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compiles the bytes of a component into a plugin of type `ty`.
pub fn load_bytes(
    rt: &swasm::runtime::Runtime,
    bytes: &[u8],
    ty: &str,
) -> Arc<swasm::runtime::Plugin> {
    let compiled = rt.compile(bytes).unwrap_or_else(|e| panic!("{ty}: {e}"));
    rt.plugin(
        &compiled,
        ActivityType::parse(ty).unwrap(),
        PathBuf::from(format!("{ty}.wasm")),
        String::new(),
        bytes.len() as u64,
    )
}

/// Sends once, on the first heartbeat.
struct FirstBeat(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Heartbeat for FirstBeat {
    fn beat(&self, _details: Option<String>) -> bool {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
        false
    }
}

/// Starts a `countdown` task that runs until aborted and returns once it runs (its first
/// heartbeat): it holds one instance slot until the handle is aborted.
pub async fn hold_a_slot(
    countdown: Arc<swasm::runtime::Plugin>,
) -> tokio::task::JoinHandle<Outcome> {
    let (tx, started) = tokio::sync::oneshot::channel();
    let hb: HeartbeatHandle = Arc::new(FirstBeat(Mutex::new(Some(tx))));
    let run = tokio::spawn(async move {
        let input = r#"{"steps":1000000,"step_ms":1}"#;
        countdown
            .run(task("countdown@1", Some(input)), &settings(), hb)
            .await
    });
    started.await.expect("the countdown heartbeats");
    run
}

/// A runtime whose pool holds `n` instances at once (256 MB memories, the default).
pub fn runtime_with_slots(n: u32) -> Arc<swasm::runtime::Runtime> {
    swasm::runtime::Runtime::with_options(swasm::runtime::RuntimeOptions {
        max_instances: n,
        max_memory_mb: 256,
        ..Default::default()
    })
    .unwrap()
}

/// A run of 20 one-millisecond sleeps placed on `guests`' one thread beside a run already
/// there (both counted as in flight on it): what a guest that holds the thread delays.
pub fn timers_beside(
    guests: &swasm::guests::GuestThreads,
) -> futures::future::BoxFuture<'static, Outcome> {
    let timers = guests.run(Box::pin(async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Outcome::Completed(None)
    }));
    assert_eq!(
        guests.in_flight(),
        vec![2],
        "both runs share the one thread"
    );
    timers
}
