//! Per-task cost of the WebAssembly side: registry lookup + fresh store + instantiate from
//! the pre-instance + `run` + result, for the Rust echo, against a direct native call; and a
//! per-language table (component size, compile time, per-task instantiate + run) for echo in
//! Rust, Python, JavaScript and C.
//!
//! Run: `cargo bench -p swasm --bench dispatch` (after `make plugins`).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use swasm::activity::{ActivityTask, ActivityType, NoHeartbeat, Outcome};
use swasm::config::{ActivitySettings, Config, Registration};
use swasm::registry::Registry;
use swasm::runtime::Runtime;

fn dist() -> PathBuf {
    std::env::var_os("SWASM_PLUGINS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist"))
}

fn settings() -> ActivitySettings {
    ActivitySettings {
        memory_mb: 256,
        timeout_s: 60,
        heartbeat_interval_s: 30,
        max_stack_kb: 512,
        env: Default::default(),
        dirs: vec![],
        allowed_hosts: vec![],
        registration: Registration::default(),
    }
}

fn task(ty: &ActivityType) -> ActivityTask {
    ActivityTask {
        activity_id: "bench".into(),
        activity_type: ty.clone(),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        started_event_id: 1,
        task_list: "bench".into(),
        input: Some("hello".into()),
    }
}

#[inline(never)]
fn native_echo(t: ActivityTask) -> Outcome {
    Outcome::Completed(t.input)
}

/// A registry over a temp plugin dir holding the Rust echo, compiled without cache.
fn registry(rt: &tokio::runtime::Runtime) -> Arc<Registry> {
    let root = std::env::temp_dir().join(format!("swasm-bench-{}", std::process::id()));
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(dist().join("echo@1.wasm"), dir.join("echo@1.wasm"))
        .expect("run `make plugins` first");
    let text = "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"bench\"\nplugin_dir = \"plugins\"\nmax_concurrent = 16\n[cache]\nenabled = false\n";
    let config = Config::parse(text, &root.join("swasm.toml")).unwrap();
    rt.block_on(async {
        Registry::load(&config, Runtime::new(&config).unwrap())
            .await
            .unwrap()
    })
}

fn per_task(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = registry(&rt);
    let ty = ActivityType::new("echo", "1");
    let s = settings();
    let hb: swasm::activity::HeartbeatHandle = Arc::new(NoHeartbeat);
    let mut g = c.benchmark_group("task");
    g.bench_function("rust_echo_lookup_instantiate_run", |b| {
        b.iter(|| {
            let p = reg.lookup("bench", &ty).unwrap();
            let o = rt.block_on(p.run(task(&ty), &s, hb.clone()));
            assert!(matches!(o, Outcome::Completed(_)));
            black_box(o)
        })
    });
    g.bench_function("native_echo", |b| {
        b.iter(|| black_box(native_echo(task(&ty))))
    });
    g.finish();
}

/// Prints component size, cold compile time and mean per-task time for each language.
fn language_table() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::for_invoke().unwrap();
    let s = settings();
    println!("\n| echo | size | compile | per task (instantiate + run) |");
    println!("|---|---|---|---|");
    for lang in ["", "-py", "-js", "-c"] {
        let name = format!("echo{lang}@1.wasm");
        let Ok(bytes) = std::fs::read(dist().join(&name)) else {
            println!("| {name} | missing: run `make plugins` | | |");
            continue;
        };
        let start = Instant::now();
        let compiled = runtime.compile(&bytes).unwrap();
        let compile = start.elapsed();
        let ty = ActivityType::new(format!("echo{lang}"), "1");
        let p = runtime.plugin(
            &compiled,
            ty.clone(),
            PathBuf::from(&name),
            String::new(),
            bytes.len() as u64,
        );
        let hb: swasm::activity::HeartbeatHandle = Arc::new(NoHeartbeat);
        // Warm up, then time enough runs for a stable mean (at least 1 s or 20 runs).
        rt.block_on(p.run(task(&ty), &s, hb.clone()));
        let (mut n, start) = (0u32, Instant::now());
        while n < 20 || start.elapsed() < Duration::from_secs(1) {
            rt.block_on(p.run(task(&ty), &s, hb.clone()));
            n += 1;
        }
        let per = start.elapsed() / n;
        println!(
            "| {name} | {:.1} MB | {:.0} ms | {:.1} µs |",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64() * 1e3,
            per.as_secs_f64() * 1e6
        );
    }
    println!();
}

fn main() {
    language_table();
    let mut c = Criterion::default().configure_from_args();
    per_task(&mut c);
    c.final_summary();
}
