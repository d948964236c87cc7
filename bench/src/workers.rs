//! The workers compared, each started as its own process against the local endpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::Ctx;
use crate::proc::Worker;
use crate::swf::DOMAIN;

/// A worker under test.
#[derive(Clone, Debug)]
pub enum Kind {
    /// `swasm run` serving these components (copied into a fresh plugin dir).
    Swasm {
        plugins: Vec<PathBuf>,
        max_concurrent: usize,
        pollers: usize,
        heartbeat_interval_s: u64,
        /// The compiled-code cache; an empty dir for a cold start.
        cache_dir: PathBuf,
    },
    /// `native-worker`: aws-sdk-swf, no WebAssembly, answers the input as the result.
    Native { slots: usize, pollers: usize },
    /// `boto3_worker.py`: a thread pool, each thread polls and runs one task at a time.
    Boto3 { threads: usize, mode: Boto3Mode },
}

#[derive(Clone, Copy, Debug)]
pub enum Boto3Mode {
    Echo,
    /// Sleep + heartbeat loop with countdown's input `{"steps":N,"step_ms":M}`.
    Countdown,
}

/// Pollers of the throughput runs, the same for swasm and the native worker.
pub const THROUGHPUT_POLLERS: usize = 8;

/// A run's private directory under the scratch space.
pub fn run_dir(ctx: &Ctx, name: &str) -> Result<PathBuf> {
    let dir = ctx
        .work
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Writes a `swasm.toml` for `task_list` in `dir`; its plugin dir is `dir/plugins`.
pub fn swasm_config(
    dir: &Path,
    endpoint: &str,
    task_list: &str,
    max_concurrent: usize,
    pollers: usize,
    heartbeat_interval_s: u64,
    cache_dir: &Path,
) -> Result<PathBuf> {
    let text = format!(
        r#"# Written by swasm-bench.
shutdown_grace_s = 1

[swf]
domain = "{DOMAIN}"
endpoint_url = "{endpoint}"
region = "us-east-1"
identity = "swasm-bench"

[[task_list]]
name = "{task_list}"
plugin_dir = "plugins"
max_concurrent = {max_concurrent}
pollers = {pollers}

[defaults]
timeout_s = 600
heartbeat_interval_s = {heartbeat_interval_s}

[cache]
dir = "{cache}"
"#,
        cache = cache_dir.display()
    );
    let path = dir.join("swasm.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::create_dir_all(dir.join("plugins")).context("creating the plugin dir")?;
    Ok(path)
}

/// Copies `file` into `plugin_dir` under its own name.
pub fn install_plugin(plugin_dir: &Path, file: &Path) -> Result<()> {
    let name = file
        .file_name()
        .with_context(|| format!("{} has no file name", file.display()))?;
    std::fs::copy(file, plugin_dir.join(name))
        .with_context(|| format!("copying {} into {}", file.display(), plugin_dir.display()))?;
    Ok(())
}

/// Starts `kind` polling `task_list` on `endpoint`, with its files in `dir`.
pub fn start(
    ctx: &Ctx,
    label: &str,
    kind: &Kind,
    endpoint: &str,
    task_list: &str,
    dir: &Path,
) -> Result<Worker> {
    let log = ctx.logs.join(format!(
        "{label}-{}.log",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    match kind {
        Kind::Swasm {
            plugins,
            max_concurrent,
            pollers,
            heartbeat_interval_s,
            cache_dir,
        } => {
            let config = swasm_config(
                dir,
                endpoint,
                task_list,
                *max_concurrent,
                *pollers,
                *heartbeat_interval_s,
                cache_dir,
            )?;
            for p in plugins {
                install_plugin(&dir.join("plugins"), p)?;
            }
            let args = vec![
                "run".into(),
                "--config".into(),
                config.display().to_string(),
            ];
            swasm_process(ctx, label, &args, endpoint, &log)
        }
        Kind::Native { slots, pollers } => {
            let args = vec![
                "--endpoint".into(),
                endpoint.into(),
                "--domain".into(),
                DOMAIN.into(),
                "--task-list".into(),
                task_list.into(),
                "--slots".into(),
                slots.to_string(),
                "--pollers".into(),
                pollers.to_string(),
            ];
            Worker::spawn(label, &ctx.native_worker, &args, &[], endpoint, &log)
        }
        Kind::Boto3 { threads, mode } => {
            let args = vec![
                ctx.boto3_worker.display().to_string(),
                "--endpoint".into(),
                endpoint.into(),
                "--domain".into(),
                DOMAIN.into(),
                "--task-list".into(),
                task_list.into(),
                "--threads".into(),
                threads.to_string(),
                "--mode".into(),
                match mode {
                    Boto3Mode::Echo => "echo".into(),
                    Boto3Mode::Countdown => "countdown".into(),
                },
            ];
            let mut worker = Worker::spawn(
                label,
                &ctx.python,
                &args,
                &[("PYTHONUNBUFFERED", "1")],
                endpoint,
                &log,
            )?;
            worker.dumps_stacks = true;
            Ok(worker)
        }
    }
}

/// `swasm` with warnings-only logging: a per-task info line would cost the host time the
/// native worker does not spend.
pub fn swasm_process(
    ctx: &Ctx,
    label: &str,
    args: &[String],
    endpoint: &str,
    log: &Path,
) -> Result<Worker> {
    Worker::spawn(
        label,
        &ctx.swasm,
        args,
        &[("RUST_LOG", "warn")],
        endpoint,
        log,
    )
}
