//! `swasm invoke`, `swasm check` and `swasm plugins`: trying plugins locally, without SWF.
//!
//! Exit codes of `invoke`: 0 completed, 1 failed, 2 canceled, 3 nothing ran: the plugin file
//! or the config cannot be loaded.
//! `check` and `plugins`: 0 when everything loads, 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::activity::{ActivityTask, ActivityType, Heartbeat, Outcome};
use crate::config::{ActivitySettings, CacheConfig, Config};
use crate::runtime::{Runtime, RuntimeOptions};

/// Run one component locally, as SWF would, and print what it did.
#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// The component file (`<name>@<version>.wasm`).
    pub plugin: PathBuf,
    /// The task input (default: none).
    #[arg(long)]
    pub input: Option<String>,
    /// Simulate a cancel request: heartbeat() returns true from the Nth heartbeat on, N at
    /// least 1 (default: never).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub cancel_after: Option<u32>,
    /// The activity type of the task, `name@version` (default: from the file name, else
    /// `invoke@0`).
    #[arg(long = "type", value_name = "NAME@VERSION", value_parser = name_at_version)]
    pub activity_type: Option<ActivityType>,
    /// Run in the sandbox `swasm run` gives the type under this config: its
    /// `[activity]` tables over `[defaults]` (env, dirs, allowed_hosts,
    /// memory_mb, timeout_s, max_stack_kb), compiling through its `[cache]`. --timeout-s and
    /// --memory-mb given as well override it; --env adds to (and overrides keys of) its env
    /// (default: no config; nothing granted, the default cache).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local deadline in seconds, 1 to 31536000 (default 300, or the config's timeout_s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::config::MAX_SECONDS))]
    pub timeout_s: Option<u64>,
    /// Memory limit in MiB, 1 to 4096 (default 256, or the config's memory_mb).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::config::MAX_MEMORY_MB))]
    pub memory_mb: Option<u64>,
    /// Grant an environment variable, `KEY=VALUE`; repeatable (default: none, or the
    /// config's env, which these extend).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// Print one JSON object instead of text (default: text).
    #[arg(long)]
    pub json: bool,
}

/// `--env`: a usage error (exit 2) unless `KEY=VALUE` with a non-empty key.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("must be KEY=VALUE".into()),
    }
}

/// `--type`: a usage error (exit 2) unless `name@version`.
fn name_at_version(s: &str) -> Result<ActivityType, String> {
    ActivityType::parse(s).ok_or_else(|| "must be name@version".into())
}

/// Records heartbeats; says "cancel requested" from the Nth on.
struct RecordingHeartbeat {
    cancel_after: Option<u32>,
    beats: Mutex<Vec<(Option<String>, bool)>>,
}

impl Heartbeat for RecordingHeartbeat {
    fn beat(&self, details: Option<String>) -> bool {
        let mut beats = self.beats.lock().expect("heartbeat lock");
        let n = beats.len() as u32 + 1;
        let cancel = self.cancel_after.is_some_and(|c| n >= c);
        beats.push((details, cancel));
        cancel
    }
}

pub async fn invoke(args: InvokeArgs) -> Result<ExitCode> {
    // A file that cannot be read is not a plugin swasm can load: exit 3, as documented,
    // not 1, which says the guest failed the task.
    let bytes = match std::fs::read(&args.plugin) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.plugin.display());
            return Ok(ExitCode::from(3));
        }
    };
    let ty = match args.activity_type {
        Some(t) => t,
        None => file_type(&args.plugin).unwrap_or_else(|| ActivityType::new("invoke", "0")),
    };
    // The type's settings and cache under the config, or nothing granted and the default
    // cache; flags override the settings.
    let (mut settings, cache) = match &args.config {
        Some(path) => {
            let config = match Config::load(path) {
                Ok(c) => c,
                // Nothing ran: exit 3, as for a file that does not load, not 2, which
                // says the task was canceled.
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(3));
                }
            };
            let mut settings = ActivitySettings::clone(&config.settings_for(&ty));
            // The stack limit is the engine's, as under `run`: the largest of all tables.
            settings.max_stack_kb = RuntimeOptions::from_config(&config).max_stack_kb;
            (settings, config.cache)
        }
        None => (ActivitySettings::unconfigured(), CacheConfig::default()),
    };
    settings.timeout_s = args.timeout_s.unwrap_or(settings.timeout_s);
    settings.memory_mb = args.memory_mb.unwrap_or(settings.memory_mb);
    settings.env.extend(args.env);
    // Sized for this one task, so `--memory-mb` above the usual 256 is honoured. As under
    // `swasm run`, a component that needs more memory at start than `--memory-mb` is not
    // loaded for the type (`Compiled::fits`): exit 3, with the reason `run` logs.
    let runtime = tool_runtime(settings.memory_mb, settings.max_stack_kb)?;
    let compiled = match compile(&runtime, &cache, bytes).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", args.plugin.display());
            return Ok(ExitCode::from(3));
        }
    };
    if let Err(why) = compiled.fits(&ty, settings.memory_mb) {
        eprintln!("error: {}: {why}", args.plugin.display());
        return Ok(ExitCode::from(3));
    }
    let plugin = runtime.plugin(&compiled, ty.clone(), args.plugin.clone(), String::new(), 0);
    let task = ActivityTask {
        activity_id: "invoke-1".into(),
        activity_type: ty,
        workflow_id: "invoke".into(),
        run_id: "local".into(),
        started_event_id: 1,
        task_list: "invoke".into(),
        input: args.input.clone(),
    };
    let heartbeat = Arc::new(RecordingHeartbeat {
        cancel_after: args.cancel_after,
        beats: Mutex::new(vec![]),
    });
    // Cut to SWF's sizes as `swasm run` does before it answers: what SWF would record.
    let outcome = crate::dispatch::limit(plugin.run(task, &settings, heartbeat.clone()).await);
    let beats = heartbeat.beats.lock().expect("heartbeat lock").clone();
    let code = match &outcome {
        Outcome::Completed(_) => 0,
        Outcome::Failed { .. } => 1,
        Outcome::Canceled(_) => 2,
    };
    if args.json {
        let heartbeats: Vec<_> = beats
            .iter()
            .map(|(d, c)| serde_json::json!({ "details": d, "cancel_requested": c }))
            .collect();
        let o = match &outcome {
            Outcome::Completed(r) => serde_json::json!({ "outcome": "completed", "result": r }),
            Outcome::Failed { reason, details } => {
                serde_json::json!({ "outcome": "failed", "reason": reason, "details": details })
            }
            Outcome::Canceled(d) => serde_json::json!({ "outcome": "canceled", "details": d }),
        };
        let mut o = o;
        o["heartbeats"] = serde_json::Value::Array(heartbeats);
        say!("{o}");
    } else {
        for (i, (d, c)) in beats.iter().enumerate() {
            let cancel = if *c { "  -> cancel requested" } else { "" };
            say!(
                "heartbeat {}: {}{cancel}",
                i + 1,
                d.as_deref().unwrap_or("(no details)")
            );
        }
        match &outcome {
            Outcome::Completed(r) => {
                say!("completed: {}", r.as_deref().unwrap_or("(no result)"))
            }
            Outcome::Failed { reason, details } => {
                say!("failed: {reason}");
                if let Some(d) = details {
                    say!("{d}");
                }
            }
            Outcome::Canceled(d) => {
                say!("canceled: {}", d.as_deref().unwrap_or("(no details)"))
            }
        }
    }
    Ok(ExitCode::from(code))
}

/// The runtime of `invoke` and `check`, its pool sized for a task of `memory_mb`. It
/// compiles every component with the primary compiler (Cranelift), whatever its size: the
/// code `swasm run` ends up serving, so a big (Python, JavaScript) component is tried on
/// that code, and the cache gets the entry `run` looks for first, not Winch code that
/// `run` would compile again.
fn tool_runtime(memory_mb: u64, max_stack_kb: u64) -> Result<Arc<Runtime>> {
    Runtime::with_options(RuntimeOptions {
        max_instances: 16,
        max_memory_mb: RuntimeOptions::pool_memory_mb(memory_mb),
        max_stack_kb,
        winch_first_min_bytes: None,
        ..RuntimeOptions::default()
    })
}

/// Compiles through the compiled-code cache `cache` describes (`[cache]` of a config, or the
/// default `$XDG_CACHE_HOME/swasm`), as `swasm run` under that config would, so trying a
/// big Python or JavaScript component again is fast and leaves the code `run` looks for.
async fn compile(
    runtime: &Arc<Runtime>,
    cache: &CacheConfig,
    bytes: Vec<u8>,
) -> Result<crate::runtime::Compiled, crate::runtime::LoadError> {
    let hash = hex::encode(Sha256::digest(&bytes));
    let cache = crate::registry::Cache::from_config(cache);
    let stats = crate::registry::RegistryStats::default();
    crate::registry::compile_cached(runtime, cache.as_ref(), &stats, bytes, hash).await
}

/// The type a file name says (`echo@1.wasm` -> `echo@1`).
fn file_type(path: &Path) -> Option<ActivityType> {
    let name = path.file_name()?.to_str()?;
    ActivityType::parse(name.strip_suffix(".wasm")?)
}

/// Say whether a file is a component for `swasm:activity/plugin`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The component file.
    pub plugin: PathBuf,
    /// Print one JSON object instead of text (default: text).
    #[arg(long)]
    pub json: bool,
}

pub async fn check(args: CheckArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.plugin)
        .with_context(|| format!("cannot read {}", args.plugin.display()))?;
    let size = bytes.len();
    let hash = hex::encode(Sha256::digest(&bytes));
    let defaults = RuntimeOptions::default();
    let runtime = tool_runtime(defaults.max_memory_mb, defaults.max_stack_kb)?;
    let result = compile(&runtime, &CacheConfig::default(), bytes).await;
    let ok = result.is_ok();
    let (imports, error) = match result {
        Ok(c) => (c.info.imports.clone(), None),
        Err(e) => (vec![], Some(e.to_string())),
    };
    let needs_grant = |i: &str| {
        if i.starts_with("wasi:sockets/") {
            Some("always denied")
        } else if i.starts_with("wasi:http/") {
            Some("denied unless allowed_hosts grants it")
        } else if i.starts_with("wasi:filesystem/") {
            Some("no files unless dirs grants them")
        } else if i.starts_with("wasi:cli/environment") {
            Some("empty unless env grants variables")
        } else {
            None
        }
    };
    if args.json {
        let o = serde_json::json!({
            // A path that is not UTF-8 would make `json!` panic.
            "file": args.plugin.to_string_lossy(), "size": size, "sha256": hash, "ok": ok, "error": error,
            "type": file_type(&args.plugin).map(|t| t.to_string()),
            "imports": imports,
        });
        say!("{o}");
    } else {
        say!("file:    {}", args.plugin.display());
        say!("size:    {size} bytes");
        say!("sha256:  {hash}");
        match file_type(&args.plugin) {
            Some(t) => say!("type:    {t} (from the file name)"),
            None => say!(
                "type:    none: name the file <name>@<version>.wasm or map it in [activity.\"n@v\"] file"
            ),
        }
        match &error {
            None => {
                say!("world:   swasm:activity/plugin: ok");
                say!("imports:");
                for i in &imports {
                    match needs_grant(i) {
                        Some(note) => say!("  {i}  ({note})"),
                        None => say!("  {i}"),
                    }
                }
            }
            Some(e) => say!("error:   {e}"),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// List what the plugin dirs of a config hold and whether each file loads; files that are
/// not plugins by their names are listed as ignored, with why.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginsArgs {
    /// The config file (default `swasm.toml`).
    #[arg(long, default_value = "swasm.toml")]
    pub config: PathBuf,
    /// Print JSON lines instead of a table (default: table).
    #[arg(long)]
    pub json: bool,
}

pub async fn plugins(args: PluginsArgs) -> Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let runtime = Runtime::new(&config)?;
    let reports = crate::registry::inspect(&config, &runtime).await?;
    let all_ok = reports.iter().all(|r| r.error.is_none());
    if !args.json && !reports.is_empty() {
        say!("TASK LIST\tFILE\tTYPES\tSIZE\tSHA256\tSTATUS");
    }
    for r in &reports {
        let types: Vec<String> = r.types.iter().map(|t| t.to_string()).collect();
        if args.json {
            let o = serde_json::json!({
                "task_list": r.task_list, "file": r.path.to_string_lossy(), "types": types, "size": r.size,
                "sha256": r.hash, "error": r.error, "ignored": r.ignored,
            });
            say!("{o}");
        } else {
            let hash = r.hash.as_deref().map(|h| &h[..12]).unwrap_or("-");
            let status = match (&r.error, &r.ignored) {
                (Some(e), _) => format!("ERROR {e}"),
                (None, Some(why)) => format!("IGNORED {why}"),
                (None, None) => "ok".into(),
            };
            let types = if types.is_empty() {
                "-".to_string()
            } else {
                types.join(",")
            };
            say!(
                "{}\t{}\t{}\t{} bytes\t{}\t{}",
                r.task_list,
                r.path.display(),
                types,
                r.size,
                hash,
                status
            );
        }
    }
    if reports.iter().all(|r| r.ignored.is_some()) && !args.json {
        say!(
            "no .wasm files in the plugin dirs of {}",
            args.config.display()
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
