//! Winch first, Cranelift in the background: a big component (the Python echo) is served
//! from Winch code at once, upgraded to Cranelift code later while tasks keep completing,
//! and a restart finds the Cranelift code in the cache. Also: Winch code honours the
//! sandbox's deadline (epoch interruption) and memory limit, like Cranelift code.

mod runtime_common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use runtime_common::*;
use swasm::activity::{ActivityType, Outcome, reason};
use swasm::config::{ActivitySettings, Config};
use swasm::registry::Registry;
use swasm::runtime::{Compiler, Runtime};

/// A background Cranelift compile of the 18 MB Python component takes 10-60 s on one core
/// of a busy 2-core machine; this bounds the wait, it is not a performance threshold.
const UPGRADE_LIMIT: Duration = Duration::from_secs(600);

struct Fixture {
    root: PathBuf,
    config: Config,
}

impl Fixture {
    fn new(name: &str, files: &[&str]) -> Fixture {
        let root = scratch_root("swasm-tier", name);
        let dir = root.join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(example(f), dir.join(f)).unwrap();
        }
        let text = "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[cache]\ndir = \"cache\"\n";
        let config = Config::parse(text, &root.join("swasm.toml")).unwrap();
        Fixture { root, config }
    }

    async fn load(&self) -> Arc<Registry> {
        Registry::load(&self.config, Runtime::new(&self.config).unwrap())
            .await
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn ty(s: &str) -> ActivityType {
    ActivityType::parse(s).unwrap()
}

fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

async fn echo(p: &swasm::runtime::Plugin, t: &str, input: &str) {
    let o = p
        .run(task(t, Some(input)), &settings(), no_heartbeat())
        .await;
    assert_eq!(
        o,
        Outcome::Completed(Some(input.into())),
        "{t} on {:?}",
        p.compiler
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_component_serves_from_winch_then_upgrades_to_cranelift() {
    let f = Fixture::new("py", &["echo-py@1.wasm", "echo@1.wasm"]);
    let reg = f.load().await;
    let s = reg.stats();
    // The small Rust echo goes straight to Cranelift; the Python echo is served from Winch.
    assert_eq!(count(&s.loads), 2);
    assert_eq!(count(&s.winch_loads), 1);
    assert_eq!(count(&s.compiles), 2);
    let small = reg.lookup("tl", &ty("echo@1")).unwrap();
    assert_eq!(small.compiler, Compiler::Cranelift);
    let first = reg.lookup("tl", &ty("echo-py@1")).unwrap();
    assert_eq!(first.compiler, Compiler::Winch);
    echo(&first, "echo-py@1", "on winch").await;
    let info = reg.plugins();
    assert!(
        info.iter()
            .any(|i| i.ty == ty("echo-py@1") && i.compiler == Compiler::Winch)
    );

    // Tasks flow while Cranelift compiles in the background; every one completes.
    let end = Instant::now() + UPGRADE_LIMIT;
    let mut served = [0u32; 2];
    while count(&s.upgrades) == 0 {
        assert!(
            Instant::now() < end,
            "no upgrade to Cranelift code within {UPGRADE_LIMIT:?}"
        );
        let p = reg.lookup("tl", &ty("echo-py@1")).unwrap();
        echo(&p, "echo-py@1", &format!("task {}", served[0] + served[1])).await;
        served[usize::from(p.compiler == Compiler::Cranelift)] += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served[0] > 0, "no task ran on the Winch code");
    let upgraded = reg.lookup("tl", &ty("echo-py@1")).unwrap();
    assert_eq!(upgraded.compiler, Compiler::Cranelift);
    assert_eq!(upgraded.hash, first.hash);
    echo(&upgraded, "echo-py@1", "on cranelift").await;
    // A task that looked up the Winch plugin before the upgrade still completes on it.
    echo(&first, "echo-py@1", "still on winch").await;
    assert_eq!(count(&s.upgrades), 1);
    assert_eq!(count(&s.swaps), 0, "an upgrade is not a swap of the file");
    assert_eq!(
        count(&s.compiles),
        3,
        "two foreground compiles and one background compile"
    );
    drop(reg);

    // A restart finds the Cranelift code in the cache: no compile, no Winch.
    let warm = f.load().await;
    let w = warm.stats();
    assert_eq!(count(&w.cache_hits), 2);
    assert_eq!(count(&w.compiles), 0);
    assert_eq!(count(&w.winch_loads), 0);
    let p = warm.lookup("tl", &ty("echo-py@1")).unwrap();
    assert_eq!(p.compiler, Compiler::Cranelift);
    echo(&p, "echo-py@1", "warm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tiering_when_disabled_or_small() {
    let rt = Runtime::with_options(swasm::runtime::RuntimeOptions {
        winch_first_min_bytes: None,
        ..Default::default()
    })
    .unwrap();
    assert!(!rt.winch_first(100 << 20, false));
    assert!(!rt.winch_first(100 << 20, true));
    let rt = Runtime::for_invoke().unwrap();
    assert!(rt.winch_first(swasm::runtime::WINCH_MIN_BYTES, false));
    assert!(!rt.winch_first(swasm::runtime::WINCH_MIN_BYTES - 1, false));
    // A live load (after start-up) takes Winch first at any size.
    assert!(rt.winch_first(1, true));
}

fn winch_plugin(rt: &Runtime, path: &std::path::Path, t: &str) -> Arc<swasm::runtime::Plugin> {
    let bytes = std::fs::read(path).unwrap();
    let compiled = rt.compile_with(&bytes, Compiler::Winch).unwrap();
    assert_eq!(
        compiled.compiler,
        Compiler::Winch,
        "{t} fell back to Cranelift"
    );
    rt.plugin(
        &compiled,
        ty(t),
        path.to_path_buf(),
        String::new(),
        bytes.len() as u64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winch_code_is_sandboxed_like_cranelift_code() {
    let rt = Runtime::for_invoke().unwrap();
    let limited = ActivitySettings {
        timeout_s: 1,
        memory_mb: 32,
        ..settings()
    };
    // Epoch interruption works in Winch code: a busy loop ends at the deadline.
    let spin = winch_plugin(&rt, &guest("spin@1.wasm"), "spin@1");
    let o = spin
        .run(task("spin@1", None), &limited, no_heartbeat())
        .await;
    assert_eq!(failed(&o).0, reason::TIMEOUT, "{o:?}");
    // The memory limiter applies.
    let hog = winch_plugin(&rt, &guest("hog@1.wasm"), "hog@1");
    let o = hog.run(task("hog@1", None), &limited, no_heartbeat()).await;
    assert_eq!(failed(&o).0, reason::MEMORY_LIMIT, "{o:?}");
    // Heartbeats and cancel reach Winch code.
    let countdown = winch_plugin(&rt, &example("countdown@1.wasm"), "countdown@1");
    let rec = Arc::new(Recorder {
        cancel_at: Some(2),
        ..Default::default()
    });
    let o = countdown
        .run(
            task("countdown@1", Some(r#"{"steps":10,"step_ms":1}"#)),
            &settings(),
            rec.clone(),
        )
        .await;
    assert!(matches!(o, Outcome::Canceled(_)), "{o:?}");
    assert_eq!(rec.beats.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_and_c_echo_run_on_winch_code() {
    let rt = Runtime::for_invoke().unwrap();
    for (file, t) in [
        ("echo-js@1.wasm", "echo-js@1"),
        ("echo-c@1.wasm", "echo-c@1"),
    ] {
        let p = winch_plugin(&rt, &example(file), t);
        echo(&p, t, "hello").await;
        let o = p
            .run(task(t, Some("fail")), &settings(), no_heartbeat())
            .await;
        assert_eq!(failed(&o).0, "BadInput", "{t}");
    }
}
