//! Per-task cost of the WebAssembly side: registry lookup + fresh store + instantiate from
//! the pre-instance + `run` + result, for the Rust echo, against a direct native call; and a
//! per-language table (component size, compile time with Cranelift and with Winch, load time
//! from the cache, per-task instantiate + run) for echo in Rust, Python, JavaScript and C.
//!
//! Run: `cargo bench -p swasm --bench dispatch` (after `make plugins`);
//! `SWASM_BENCH_TABLE=0` skips the per-language table (it compiles the big components).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use swasm::activity::{ActivityTask, ActivityType, NoHeartbeat, Outcome};
use swasm::config::{ActivitySettings, Config, Registration};
use swasm::registry::Registry;
use swasm::runtime::{Compiler, Runtime};

/// The allocator the `swasm` binary ships with (`host/src/main.rs`), so the figures are the
/// host's: a task's store, `WasiCtx` and strings are a few dozen allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // One task, as the worker runs it: lookup, fresh store and instance, run, result.
    let echo = || {
        let p = reg.lookup("bench", &ty).unwrap();
        let o = rt.block_on(p.run(task(&ty), &s, hb.clone()));
        assert!(matches!(o, Outcome::Completed(_)));
        black_box(o)
    };
    g.bench_function("rust_echo_lookup_instantiate_run", |b| b.iter(echo));
    // What a worker sees: between two tasks its SWF traffic (signing, JSON, HTTP) runs
    // through the same core's caches. Writing 8 MB between tasks (not timed) evicts the
    // instantiation's code and data from L1 and L2, as that traffic does.
    let mut junk = vec![0u8; 8 << 20];
    g.bench_function("rust_echo_after_cache_eviction", |b| {
        b.iter_batched(
            || {
                for i in (0..junk.len()).step_by(64) {
                    junk[i] = junk[i].wrapping_add(1);
                }
            },
            |()| echo(),
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("native_echo", |b| {
        b.iter(|| black_box(native_echo(task(&ty))))
    });
    g.finish();
}

/// Mean time of one task of `p` (after a warm-up run), over at least 1 s or 20 runs.
fn per_task_time(
    rt: &tokio::runtime::Runtime,
    p: &swasm::runtime::Plugin,
    ty: &ActivityType,
    s: &ActivitySettings,
) -> Duration {
    let hb: swasm::activity::HeartbeatHandle = Arc::new(NoHeartbeat);
    let o = rt.block_on(p.run(task(ty), s, hb.clone()));
    assert!(matches!(o, Outcome::Completed(_)), "{ty}: {o:?}");
    let (mut n, start) = (0u32, Instant::now());
    while n < 20 || start.elapsed() < Duration::from_secs(1) {
        rt.block_on(p.run(task(ty), s, hb.clone()));
        n += 1;
    }
    start.elapsed() / n
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Prints, for each language's echo: component size, compile time with Cranelift and with
/// Winch, load time from the compiled-code cache (deserialize + link), and the mean
/// per-task time (fresh store + instantiate + run + result) on Cranelift and Winch code.
fn language_table() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::for_invoke().unwrap();
    let s = settings();
    println!(
        "\n| echo | size | compile Cranelift | compile Winch | load from cache | per task (Cranelift) | per task (Winch) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for lang in ["", "-py", "-js", "-c"] {
        let name = format!("echo{lang}@1.wasm");
        let Ok(bytes) = std::fs::read(dist().join(&name)) else {
            println!("| {name} | missing: run `make plugins` | | | | | |");
            continue;
        };
        let ty = ActivityType::new(format!("echo{lang}"), "1");
        let start = Instant::now();
        let cranelift = runtime.compile(&bytes).unwrap();
        let compile_cranelift = start.elapsed();
        let start = Instant::now();
        let winch = runtime.compile_with(&bytes, Compiler::Winch).unwrap();
        let compile_winch = start.elapsed();
        assert_eq!(winch.compiler, Compiler::Winch, "{name}: Winch fell back");
        let code = runtime.serialize(&cranelift).unwrap();
        let start = Instant::now();
        // SAFETY: `code` is this runtime's own serialization of Cranelift code.
        let cached = unsafe { runtime.deserialize(&code, Compiler::Cranelift) }.unwrap();
        let load_cached = start.elapsed();
        let plugin = |c: &swasm::runtime::Compiled| {
            runtime.plugin(
                c,
                ty.clone(),
                PathBuf::from(&name),
                String::new(),
                bytes.len() as u64,
            )
        };
        let per_cranelift = per_task_time(&rt, &plugin(&cached), &ty, &s);
        let per_winch = per_task_time(&rt, &plugin(&winch), &ty, &s);
        println!(
            "| {name} | {:.1} MB | {} | {} | {} | {} | {} |",
            bytes.len() as f64 / 1e6,
            ms(compile_cranelift),
            ms(compile_winch),
            ms(load_cached),
            us(per_cranelift),
            us(per_winch),
        );
    }
    println!();
}

fn main() {
    // `SWASM_BENCH_TABLE=0`: only the per-task benchmarks (e.g. under a profiler).
    if std::env::var("SWASM_BENCH_TABLE").as_deref() != Ok("0") {
        language_table();
    }
    let mut c = Criterion::default().configure_from_args();
    per_task(&mut c);
    c.final_summary();
}
