//! `swasm-bench`: runs the benchmarks and writes their raw results as JSON (bench/run
//! renders them). Every figure is printed as it is measured; nothing fails on a goal miss.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use swasm_bench::report::Record;
use swasm_bench::{Ctx, Sizes, benches};

/// The benchmark driver: swf-local in this process, each worker as its own process.
#[derive(Parser, Debug)]
struct Args {
    /// Small counts and one repetition: a smoke run (default: the full run).
    #[arg(long)]
    quick: bool,
    /// Which benchmarks, comma-separated (default: all but the soak):
    /// throughput,memory,heartbeat,hotswap,startup, or soak alone.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Which variants, comma-separated (default: all), e.g. native,swasm-rust or rust,js.
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Where the raw results go (JSON); rewritten after each benchmark.
    #[arg(long, default_value = "bench/results/raw/results.json")]
    out: PathBuf,
    /// The swasm binary under test (default: $CARGO_TARGET_DIR/release/swasm).
    #[arg(long)]
    swasm: Option<PathBuf>,
    /// The native worker (default: next to this binary).
    #[arg(long)]
    native_worker: Option<PathBuf>,
    /// A Python with boto3 (default: $HOME/.cache/swasm/venv/bin/python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// The boto3 worker script (default: bench/boto3_worker.py).
    #[arg(long, default_value = "bench/boto3_worker.py")]
    boto3_worker: PathBuf,
    /// Example components (default: plugins/dist).
    #[arg(long, default_value = "plugins/dist")]
    plugins: PathBuf,
    /// Test components with echo-b.wasm (default: tests/guests/dist).
    #[arg(long, default_value = "tests/guests/dist")]
    guests: PathBuf,
    /// Scratch dir for configs, plugin dirs and caches (default: a new dir under /tmp).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Repetitions (default: 3, and 9 for throughput's native and swasm-rust; 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Throughput tasks per run (default: 20000, or 500 with --quick).
    #[arg(long)]
    tasks: Option<usize>,
    /// Throughput tasks of the boto3 worker (default: 5000, or --tasks).
    #[arg(long)]
    boto3_tasks: Option<usize>,
    /// How long the soak runs, in minutes (default: 10, or 1 with --quick).
    #[arg(long)]
    soak_minutes: Option<f64>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(r) = args.reps {
        sizes.reps = r;
        sizes.pair_reps = r;
        sizes.startup_reps = r;
        sizes.hotswap_reps = r;
    }
    if let Some(n) = args.tasks {
        sizes.throughput_tasks = n;
        sizes.boto3_tasks = n;
    }
    if let Some(n) = args.boto3_tasks {
        sizes.boto3_tasks = n;
    }
    if let Some(m) = args.soak_minutes {
        sizes.soak = std::time::Duration::from_secs_f64(m * 60.0);
    }
    let abs = |p: PathBuf| -> Result<PathBuf> {
        std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()))
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/swasm/target"));
    let native_default = std::env::current_exe()?.with_file_name("native-worker");
    let work = match args.work {
        Some(w) => w,
        None => std::env::temp_dir().join(format!("swasm-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let out = abs(args.out)?;
    let ctx = Ctx {
        swasm: abs(args.swasm.unwrap_or_else(|| target.join("release/swasm")))?,
        native_worker: abs(args.native_worker.unwrap_or(native_default))?,
        python: args
            .python
            .unwrap_or_else(|| home().join(".cache/swasm/venv/bin/python3")),
        boto3_worker: abs(args.boto3_worker)?,
        plugins: abs(args.plugins)?,
        guests: abs(args.guests)?,
        logs: out.parent().unwrap_or(&work).join("logs"),
        work: abs(work)?,
        sizes,
    };
    for (what, path) in [
        ("swasm", &ctx.swasm),
        ("native-worker", &ctx.native_worker),
        ("boto3 worker", &ctx.boto3_worker),
    ] {
        if !path.exists() {
            eprintln!(
                "warning: {what} not found at {}: its benchmarks will record the error",
                path.display()
            );
        }
    }
    let wanted = |b: &str| args.only.is_empty() || args.only.iter().any(|o| o == b);
    let v = &args.variants;
    if args.only.iter().any(|o| o == "soak") {
        // The soak is a run of its own (bench/run --soak): minutes long, with its samples.
        eprintln!("== soak ({:.1} min)", ctx.sizes.soak.as_secs_f64() / 60.0);
        let (records, samples) = benches::soak::run(&ctx).await;
        let json = serde_json::json!({
            "minutes": ctx.sizes.soak.as_secs_f64() / 60.0,
            "wave": ctx.sizes.soak_wave,
            "records": records,
            "samples": samples,
        });
        write_json(&out, &json)?;
    } else {
        let mut records: Vec<Record> = Vec::new();
        for name in ["throughput", "memory", "heartbeat", "hotswap", "startup"] {
            if !wanted(name) {
                continue;
            }
            eprintln!("== {name}");
            let new = match name {
                "throughput" => benches::throughput::run(&ctx, v).await,
                "memory" => benches::memory::run(&ctx, v).await,
                "heartbeat" => benches::heartbeat::run(&ctx).await,
                "hotswap" => benches::hotswap::run(&ctx, v).await,
                _ => benches::startup::run(&ctx, v).await,
            };
            records.extend(new);
            write(&out, &ctx, &records)?;
        }
        write(&out, &ctx, &records)?;
    }
    let _ = std::fs::remove_dir_all(&ctx.work);
    eprintln!("raw results: {}", out.display());
    Ok(())
}

fn write(out: &std::path::Path, ctx: &Ctx, records: &[Record]) -> Result<()> {
    write_json(
        out,
        &serde_json::json!({ "sizes": ctx.sizes, "records": records }),
    )
}

fn write_json(out: &std::path::Path, json: &serde_json::Value) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_string_pretty(json)?)
        .with_context(|| format!("writing {}", out.display()))
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}
