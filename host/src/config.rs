//! `swasm.toml`: what the host polls, where its plugins live, and what each activity may use.
//!
//! Every table denies unknown fields; a parse error names the file, line and key. Relative
//! paths are resolved against the directory holding the config file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::activity::ActivityType;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How long a shutdown waits for running tasks before interrupting them (default 30).
    #[serde(default = "default_shutdown_grace_s")]
    pub shutdown_grace_s: u64,
    pub swf: SwfConfig,
    #[serde(rename = "task_list", default)]
    pub task_lists: Vec<TaskListConfig>,
    #[serde(default)]
    pub defaults: Defaults,
    /// Per-type overrides and grants, keyed `"name@version"`.
    #[serde(rename = "activity", default)]
    pub activities: BTreeMap<String, ActivityConfig>,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The directory of the config file; relative paths were resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the config was read from, for error messages.
    #[serde(skip)]
    pub source: PathBuf,
    /// [`Config::settings_for`]'s answers, worked out on first use: a task then costs a hash
    /// lookup and a reference count, not a copy of its grants.
    #[serde(skip)]
    settings: OnceLock<SettingsTable>,
    /// What [`Config::warnings`] returns: found once, when the file is parsed.
    #[serde(skip)]
    warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct SettingsTable {
    /// Types with an `[activity."name@version"]` table (over their name's table, if any).
    by_type: HashMap<ActivityType, Arc<ActivitySettings>>,
    /// Names with an `[activity."name"]` table: every version without a table of its own.
    by_name: HashMap<String, Arc<ActivitySettings>>,
    /// For types without either.
    default: Arc<ActivitySettings>,
}

/// What an `[activity]` key names: one version, or (a key without `@`) every version of a
/// name that has no table of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityKey {
    Version(ActivityType),
    Name(String),
}

impl ActivityKey {
    pub fn parse(key: &str) -> Option<ActivityKey> {
        if key.contains('@') {
            ActivityType::parse(key).map(ActivityKey::Version)
        } else {
            (!key.is_empty()).then(|| ActivityKey::Name(key.to_string()))
        }
    }

    fn name(&self) -> &str {
        match self {
            ActivityKey::Version(ty) => &ty.name,
            ActivityKey::Name(name) => name,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwfConfig {
    pub domain: String,
    /// Otherwise `AWS_ENDPOINT_URL_SWF` / `AWS_ENDPOINT_URL` / the AWS default.
    pub endpoint_url: Option<String>,
    /// Otherwise the standard AWS chain.
    pub region: Option<String>,
    /// Sent with each poll, so ActivityTaskStarted names the host that took the task; default
    /// `hostname:pid`.
    pub identity: Option<String>,
    /// `swasm register` / `run --register` also registers the domain.
    #[serde(default)]
    pub register_domain: bool,
    /// Retention of closed executions when the domain is registered (default 1 day).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskListConfig {
    pub name: String,
    pub plugin_dir: PathBuf,
    /// Slots: in-flight tasks on this list (default 100).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Concurrent long polls while slots are free (default 2).
    #[serde(default = "default_pollers")]
    pub pollers: usize,
}

/// Sandbox limits and registration defaults for every activity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Local start-to-close deadline.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// At most one RecordActivityTaskHeartbeat per task per throttle interval: the smaller
    /// of this and 0.8 x the type's registered default heartbeat timeout. A decider's
    /// per-schedule `heartbeatTimeout` is not visible to the host.
    #[serde(default = "default_heartbeat_interval_s")]
    pub heartbeat_interval_s: u64,
    /// The wasm stack limit. One limit for the whole engine: the largest of this and every
    /// `[activity]` value applies to every activity.
    #[serde(default = "default_max_stack_kb")]
    pub max_stack_kb: u64,
    /// Registration default (`swasm register`): seconds, or absent for `NONE`.
    pub schedule_to_start_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`.
    pub start_to_close_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`.
    pub schedule_to_close_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`. The heartbeat throttle does not
    /// read this value: it uses the timeout registered in SWF (DescribeActivityType), which
    /// is this one only if `swasm register` registered the type with it.
    pub heartbeat_timeout_s: Option<u64>,
    pub task_priority: Option<i32>,
    pub description: Option<String>,
}

/// The defaults `swasm register` gives an activity type (SWF's `default*` fields).
/// `None` registers `NONE` (no timeout) for timeouts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub schedule_to_start_timeout_s: Option<u64>,
    pub start_to_close_timeout_s: Option<u64>,
    pub schedule_to_close_timeout_s: Option<u64>,
    pub heartbeat_timeout_s: Option<u64>,
    pub task_priority: Option<i32>,
    pub description: Option<String>,
}

/// `[activity."name@version"]` (one version) or `[activity."name"]` (every version of the
/// name without a table of its own): overrides of `[defaults]` and grants (nothing by
/// default). A version's table overrides its name's table member by member; `env`, `dirs`
/// and `allowed_hosts` are each taken whole from the first table that sets them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityConfig {
    /// Serve this type from another file in the task list's plugin dir (a version's table
    /// only).
    pub file: Option<PathBuf>,
    pub memory_mb: Option<u64>,
    pub timeout_s: Option<u64>,
    pub heartbeat_interval_s: Option<u64>,
    /// Raises the engine-wide stack limit for every activity, not only this one (see
    /// [`Defaults::max_stack_kb`]).
    pub max_stack_kb: Option<u64>,
    /// Only these variables, never the host's.
    pub env: Option<BTreeMap<String, String>>,
    pub dirs: Option<Vec<DirGrant>>,
    /// Outbound HTTP via wasi:http, only to these `host:port` authorities.
    pub allowed_hosts: Option<Vec<String>>,
    /// Registration default (`swasm register`): seconds, or absent for `NONE`.
    pub schedule_to_start_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`.
    pub start_to_close_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`.
    pub schedule_to_close_timeout_s: Option<u64>,
    /// Registration default: seconds, or absent for `NONE`. The heartbeat throttle does not
    /// read this value: it uses the timeout registered in SWF (DescribeActivityType), which
    /// is this one only if `swasm register` registered the type with it.
    pub heartbeat_timeout_s: Option<u64>,
    pub task_priority: Option<i32>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default = "yes")]
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Compiled-code cache; default `$XDG_CACHE_HOME/swasm` (or `~/.cache/swasm`).
    pub dir: Option<PathBuf>,
    /// Set false to always compile.
    pub enabled: Option<bool>,
    /// Largest size of the cache in MB (default [`DEFAULT_CACHE_MAX_MB`]); the entries used
    /// least recently go first.
    pub max_size_mb: Option<u64>,
}

impl CacheConfig {
    /// The compiled-code cache directory, or `None` when caching is off.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.enabled == Some(false) {
            return None;
        }
        self.dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("swasm")))
    }

    /// The cache's size limit in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_size_mb
            .unwrap_or(DEFAULT_CACHE_MAX_MB)
            .saturating_mul(1024 * 1024)
    }
}

/// Default `[cache] max_size_mb`: room for about 20 versions of a Python or JavaScript
/// component (about 100 MB of compiled code each, Winch and Cranelift together).
pub const DEFAULT_CACHE_MAX_MB: u64 = 2048;
/// Smallest `[cache] max_size_mb`: below one compiled Python component, every load would
/// evict the one before.
pub const MIN_CACHE_MAX_MB: u64 = 64;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serves `/metrics`, `/healthz`, `/readyz`, `/status`, e.g. `127.0.0.1:9464`.
    pub listen: Option<String>,
}

/// The limits and grants in force for one activity type: `[defaults]` overlaid with its
/// `[activity."name@version"]` or `[activity."name"]` table (the version's over the name's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivitySettings {
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub heartbeat_interval_s: u64,
    pub max_stack_kb: u64,
    pub env: BTreeMap<String, String>,
    pub dirs: Vec<DirGrant>,
    pub allowed_hosts: Vec<String>,
    pub registration: Registration,
}

impl ActivitySettings {
    /// What a type gets with no config at all: nothing granted, the default limits.
    pub fn unconfigured() -> ActivitySettings {
        merge(&Defaults::default(), &[])
    }
}

impl Config {
    /// Reads, parses and validates a config file, and logs its [`warnings`](Config::warnings)
    /// (once: every command that reads a config file reads it here).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config = Self::parse(&text, path)?;
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// Parses config text as if read from `path` (relative paths resolve against its dir).
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let message = format!("{}: {}", path.display(), e.to_string().trim_end());
            match parse_hint(text, &e) {
                Some(hint) => anyhow::anyhow!("{message}\nhint: {hint}"),
                None => anyhow::anyhow!(message),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        config.base_dir = base.clone();
        config.source = path.to_path_buf();
        let line = |invalid: &Invalid| invalid.key.as_ref().and_then(|k| k.line_in(text));
        let locate = |invalid: Invalid| match line(&invalid) {
            Some(line) => format!("{}:{line}: {invalid}", path.display()),
            None => format!("{}: {invalid}", path.display()),
        };
        // Before the paths are resolved: an empty one would become the config's own dir.
        if let Err(invalid) = config.check_unresolved_paths() {
            bail!(locate(invalid));
        }
        for tl in &mut config.task_lists {
            tl.plugin_dir = base.join(&tl.plugin_dir);
        }
        if let Some(dir) = &mut config.cache.dir {
            *dir = base.join(&*dir);
        }
        for activity in config.activities.values_mut() {
            for grant in activity.dirs.iter_mut().flatten() {
                grant.host = base.join(&grant.host);
            }
        }
        if let Err(invalid) = config.validate() {
            bail!(locate(invalid));
        }
        let mut warnings = config.find_warnings();
        // In the order of the file.
        warnings.sort_by_cached_key(|w| line(w));
        config.warnings = warnings.into_iter().map(locate).collect();
        Ok(config)
    }

    /// Settings that load but most likely do not do what was meant, each named like an
    /// error (`file:line: key: problem`): more pollers than slots, a local `timeout_s` SWF
    /// would cut short, an `[activity]` table or `file` that matches no file of the plugin
    /// dirs when the config was read. [`Config::load`] logs them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where `task_list[index].key` is written, as `file:line: task_list[index].key` (the
    /// line when the file can be read and spells the key out): for problems found after
    /// parsing, such as a `plugin_dir` that does not exist, named as validation names its.
    pub fn task_list_key(&self, index: usize, key: &str) -> String {
        let path = KeyPath::root("task_list").index(index).key(key);
        let line = std::fs::read_to_string(&self.source)
            .ok()
            .and_then(|text| path.line_in(&text));
        match line {
            Some(line) => format!("{}:{line}: {path}", self.source.display()),
            None => format!("{}: {path}", self.source.display()),
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        // A task's grace ends at the later of the signal and its start, plus this: a value
        // past any timeout SWF has only overflows the deadline.
        if self.shutdown_grace_s > MAX_SECONDS {
            return Err(KeyPath::root("shutdown_grace_s").invalid(format!(
                "must be between 0 and {MAX_SECONDS}, not {}",
                self.shutdown_grace_s
            )));
        }
        let swf = KeyPath::root("swf");
        check_len(&self.swf.domain, 1, 256).map_err(|m| swf.key("domain").invalid(m))?;
        check_swf_name("domain name", &self.swf.domain)
            .map_err(|e| swf.key("domain").invalid(format!("{e:#}")))?;
        if let Some(url) = &self.swf.endpoint_url {
            check_endpoint_url(url).map_err(|m| swf.key("endpoint_url").invalid(m))?;
        }
        if let Some(region) = &self.swf.region {
            check_region(region).map_err(|m| swf.key("region").invalid(m))?;
        }
        if let Some(identity) = &self.swf.identity {
            check_len(identity, 0, 256).map_err(|m| swf.key("identity").invalid(m))?;
        }
        // SWF keeps closed histories at most 90 days; more is refused with LimitExceededFault,
        // which reads like throttling.
        if self.swf.retention_days > 90 {
            return Err(swf.key("retention_days").invalid(format!(
                "SWF retains closed executions at most 90 days, not {}",
                self.swf.retention_days
            )));
        }
        if let Some(mb) = self.cache.max_size_mb
            && mb < MIN_CACHE_MAX_MB
        {
            return Err(KeyPath::root("cache").key("max_size_mb").invalid(format!(
                "must be at least {MIN_CACHE_MAX_MB} (one compiled Python component is about 50), not {mb}"
            )));
        }
        if let Some(listen) = &self.metrics.listen {
            check_listen(listen).map_err(|m| KeyPath::root("metrics").key("listen").invalid(m))?;
        }
        if self.task_lists.is_empty() {
            return Err(Invalid {
                key: None,
                message: "no [[task_list]]: the host would have nothing to poll".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        let mut slots = 0usize;
        for (i, tl) in self.task_lists.iter().enumerate() {
            let at = KeyPath::root("task_list").index(i);
            validate_task_list_name(&tl.name)
                .map_err(|e| at.key("name").invalid(format!("{e:#}")))?;
            if !seen.insert(&tl.name) {
                return Err(at
                    .key("name")
                    .invalid(format!("task list {:?} is listed twice", tl.name)));
            }
            if tl.max_concurrent == 0 {
                return Err(at.key("max_concurrent").invalid("must be at least 1"));
            }
            if tl.pollers == 0 {
                return Err(at.key("pollers").invalid("must be at least 1"));
            }
            if tl.pollers > MAX_POLLERS {
                return Err(at.key("pollers").invalid(format!(
                    "SWF takes at most {MAX_POLLERS} pollers on a task list (all hosts together), not {}",
                    tl.pollers
                )));
            }
            slots = slots.saturating_add(tl.max_concurrent);
            if slots > MAX_TOTAL_CONCURRENT {
                return Err(at.key("max_concurrent").invalid(format!(
                    "the task lists' max_concurrent add up to {slots}, more than {MAX_TOTAL_CONCURRENT}: \
                     each slot reserves about 8 GiB of address space in each of the two engines \
                     (Cranelift and Winch), and more than that does not fit in a process"
                )));
            }
        }
        let d = &self.defaults;
        let defaults = KeyPath::root("defaults");
        check_limits(
            &defaults,
            Some(d.memory_mb),
            Some(d.timeout_s),
            Some(d.heartbeat_interval_s),
            Some(d.max_stack_kb),
        )?;
        check_description(&defaults, d.description.as_deref())?;
        check_registration(
            &defaults,
            [
                d.schedule_to_start_timeout_s,
                d.start_to_close_timeout_s,
                d.schedule_to_close_timeout_s,
                d.heartbeat_timeout_s,
            ],
        )?;
        for (key, activity) in &self.activities {
            let at = KeyPath::root("activity").key(key);
            let parsed = ActivityKey::parse(key).ok_or_else(|| {
                at.invalid(
                    "the key must be \"name@version\" (one version) or \"name\" (every version)",
                )
            })?;
            check_limits(
                &at,
                activity.memory_mb,
                activity.timeout_s,
                activity.heartbeat_interval_s,
                activity.max_stack_kb,
            )?;
            check_description(&at, activity.description.as_deref())?;
            check_registration(
                &at,
                [
                    activity.schedule_to_start_timeout_s,
                    activity.start_to_close_timeout_s,
                    activity.schedule_to_close_timeout_s,
                    activity.heartbeat_timeout_s,
                ],
            )?;
            match &parsed {
                ActivityKey::Version(ty) => validate_activity_type(ty),
                ActivityKey::Name(name) => validate_activity_name(name),
            }
            .map_err(|e| at.invalid(format!("{e:#}")))?;
            for name in activity.env.iter().flatten().map(|(k, _)| k) {
                if name.is_empty() || name.contains('=') {
                    return Err(at
                        .key("env")
                        .invalid(format!("{name:?} is not a valid variable name")));
                }
            }
            for grant in activity.dirs.iter().flatten() {
                if !grant.host.is_dir() {
                    return Err(at.key("dirs").invalid(format!(
                        "host path {} does not exist or is not a directory",
                        grant.host.display()
                    )));
                }
                if !grant.guest.starts_with('/') {
                    return Err(at
                        .key("dirs")
                        .invalid(format!("guest path {:?} must be absolute", grant.guest)));
                }
            }
            for authority in activity.allowed_hosts.iter().flatten() {
                let ok = authority
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    return Err(at
                        .key("allowed_hosts")
                        .invalid(format!("{authority:?} must be \"host:port\"")));
                }
            }
            if let Some(file) = &activity.file {
                if let ActivityKey::Name(name) = &parsed {
                    return Err(at.key("file").invalid(format!(
                        "file maps one version to a file: set it in [activity.\"{name}@VERSION\"]"
                    )));
                }
                let name = file.to_string_lossy();
                if file.components().count() != 1 {
                    return Err(at
                        .key("file")
                        .invalid(format!("{name} must be a file name inside the plugin dir")));
                }
                // The plugin dir is scanned for visible `*.wasm` files only: any other name
                // would never be loaded.
                if !name.ends_with(".wasm") || name.starts_with('.') {
                    return Err(at
                        .key("file")
                        .invalid(format!("{name} must end in .wasm and not start with a dot")));
                }
            }
        }
        self.check_writable_grants()
    }

    /// Read-write `dirs` grants that contain, or lie inside, a directory whose contents the
    /// host runs: the compiled-code cache (native code, loaded after a plain checksum that
    /// lies beside it) or a plugin dir (components it serves, with whatever grants their
    /// type has). A guest that can write there can run code of its choice outside its
    /// sandbox. Paths are compared as written (made absolute) and canonical, so neither a
    /// symlink nor `..` hides an overlap; a dir that does not exist yet (a cache made at
    /// first use) is compared by its nearest existing ancestor. Read-only grants are fine.
    fn check_writable_grants(&self) -> Result<(), Invalid> {
        // (what it is, what a guest could plant there, its path forms), each resolved once.
        let mut guarded: Vec<(String, &str, Vec<PathBuf>)> = Vec::new();
        if let Some(cache) = self.cache.dir() {
            guarded.push((
                "the compiled-code cache dir ([cache] dir)".into(),
                "native code there that the host would load and run outside any sandbox",
                path_forms(&cache),
            ));
        }
        for tl in &self.task_lists {
            guarded.push((
                format!("the plugin_dir of task list {:?}", tl.name),
                "a component there that the host would serve, in place of the code of any \
                 type and with that type's grants",
                path_forms(&tl.plugin_dir),
            ));
        }
        for (key, activity) in &self.activities {
            for (i, grant) in activity.dirs.iter().flatten().enumerate() {
                if grant.read_only {
                    continue;
                }
                let grant_forms = path_forms(&grant.host);
                for (what, planted, dir_forms) in &guarded {
                    let pairs = || {
                        grant_forms
                            .iter()
                            .flat_map(|g| dir_forms.iter().map(move |d| (g, d)))
                    };
                    let relation = if pairs().any(|(g, d)| g == d) {
                        "is"
                    } else if pairs().any(|(g, d)| d.starts_with(g)) {
                        "contains"
                    } else if pairs().any(|(g, d)| g.starts_with(d)) {
                        "lies inside"
                    } else {
                        continue;
                    };
                    return Err(KeyPath::root("activity")
                        .key(key)
                        .key("dirs")
                        .index(i)
                        .invalid(format!(
                            "the read-write grant of {} {relation} {what}, {}: a guest could \
                             write {planted}; grant it with read_only = true, or grant a \
                             directory apart from it",
                            shown(&grant_forms),
                            shown(dir_forms),
                        )));
                }
            }
        }
        Ok(())
    }

    /// Paths the file sets to `""`: joined to the config's directory, an empty path would
    /// silently mean that directory (serve its files, grant it to a guest, cache in it),
    /// which nobody writes on purpose; `"."` says it.
    fn check_unresolved_paths(&self) -> Result<(), Invalid> {
        const EMPTY: &str = "must not be empty (write \".\" for the directory of the config file)";
        for (i, tl) in self.task_lists.iter().enumerate() {
            if tl.plugin_dir.as_os_str().is_empty() {
                let at = KeyPath::root("task_list").index(i);
                return Err(at.key("plugin_dir").invalid(EMPTY));
            }
        }
        for (key, activity) in &self.activities {
            if activity
                .dirs
                .iter()
                .flatten()
                .any(|g| g.host.as_os_str().is_empty())
            {
                let at = KeyPath::root("activity").key(key).key("dirs");
                return Err(at.invalid(format!("host path {EMPTY}")));
            }
        }
        if self
            .cache
            .dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(KeyPath::root("cache").key("dir").invalid(EMPTY));
        }
        Ok(())
    }

    /// See [`Config::warnings`]; runs on a valid config with its paths resolved.
    fn find_warnings(&self) -> Vec<Invalid> {
        let mut found = Vec::new();
        for (i, tl) in self.task_lists.iter().enumerate() {
            if tl.pollers > tl.max_concurrent {
                let at = KeyPath::root("task_list").index(i).key("pollers");
                found.push(at.invalid(format!(
                    "{} pollers but max_concurrent is {}: a poll waits for a free slot, so \
                     {} of them can never poll",
                    tl.pollers,
                    tl.max_concurrent,
                    tl.pollers - tl.max_concurrent
                )));
            }
        }
        let too_late = |timeout_s: u64, key: &str, swf_timeout: u64| {
            format!(
                "timeout_s ({timeout_s}) is not below {key} ({swf_timeout}): SWF times the task \
                 out first, and refuses the host's answer"
            )
        };
        let d = &self.defaults;
        for (key, swf_timeout) in [
            ("start_to_close_timeout_s", d.start_to_close_timeout_s),
            ("schedule_to_close_timeout_s", d.schedule_to_close_timeout_s),
        ] {
            if let Some(t) = swf_timeout
                && d.timeout_s >= t
            {
                let at = KeyPath::root("defaults").key(key);
                found.push(at.invalid(too_late(d.timeout_s, key, t)));
            }
        }
        // What the plugin dirs hold now; unknown (no file warnings) when one cannot be read:
        // that problem is reported on its own, and the file may well be in that dir.
        let listings: Option<Vec<std::collections::HashSet<String>>> = self
            .task_lists
            .iter()
            .map(|tl| {
                let dir = std::fs::read_dir(&tl.plugin_dir).ok()?;
                Some(
                    dir.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect(),
                )
            })
            .collect();
        let in_a_plugin_dir = |name: &str| {
            listings
                .as_ref()
                .map(|dirs| dirs.iter().any(|files| files.contains(name)))
        };
        for (key, activity) in &self.activities {
            let at = KeyPath::root("activity").key(key);
            let Some(parsed) = ActivityKey::parse(key) else {
                continue;
            };
            // A table that sets neither timeout is covered by the [defaults] warning.
            let s = self.settings_of(&parsed);
            for (key, swf_timeout, set_here) in [
                (
                    "start_to_close_timeout_s",
                    s.registration.start_to_close_timeout_s,
                    activity.start_to_close_timeout_s.is_some(),
                ),
                (
                    "schedule_to_close_timeout_s",
                    s.registration.schedule_to_close_timeout_s,
                    activity.schedule_to_close_timeout_s.is_some(),
                ),
            ] {
                if let Some(t) = swf_timeout
                    && s.timeout_s >= t
                    && (activity.timeout_s.is_some() || set_here)
                {
                    let named = if set_here { key } else { "timeout_s" };
                    found.push(at.key(named).invalid(too_late(s.timeout_s, key, t)));
                }
            }
            match &activity.file {
                None if matches!(parsed, ActivityKey::Name(_)) => {
                    let name = parsed.name();
                    let any_version = listings.as_ref().map(|dirs| {
                        dirs.iter().flatten().any(|file| {
                            file.strip_suffix(".wasm")
                                .and_then(ActivityType::parse)
                                .is_some_and(|ty| ty.name == name)
                        })
                    });
                    if any_version == Some(false) {
                        found.push(at.invalid(format!(
                            "no plugin dir holds a version of {name} ({name}@VERSION.wasm), so \
                             these limits and grants apply to nothing yet (a typo in the name?); \
                             they will apply to every version added later"
                        )));
                    }
                }
                Some(file) => {
                    let file = file.to_string_lossy();
                    if in_a_plugin_dir(&file) == Some(false) {
                        found.push(at.key("file").invalid(format!(
                            "{file} is in no task list's plugin dir: {key} is not served \
                             until it is"
                        )));
                    }
                }
                None => {
                    let file = format!("{key}.wasm");
                    if in_a_plugin_dir(&file) == Some(false) {
                        found.push(at.invalid(format!(
                            "no plugin dir holds {file}, so these limits and grants apply to \
                             nothing yet (a typo in the name or version?); they will apply \
                             if the file is added later"
                        )));
                    }
                }
            }
        }
        found
    }

    /// The settings in force for `ty`: its `[activity."name@version"]` table over its
    /// name's `[activity."name"]` table over `[defaults]`.
    pub fn settings_for(&self, ty: &ActivityType) -> Arc<ActivitySettings> {
        let table = self.settings_table();
        table
            .by_type
            .get(ty)
            .or_else(|| table.by_name.get(&ty.name))
            .unwrap_or(&table.default)
            .clone()
    }

    /// The settings an `[activity]` table gives: a version's (over its name's table) or a
    /// name's.
    fn settings_of(&self, key: &ActivityKey) -> Arc<ActivitySettings> {
        match key {
            ActivityKey::Version(ty) => self.settings_for(ty),
            ActivityKey::Name(name) => {
                let table = self.settings_table();
                table.by_name.get(name).unwrap_or(&table.default).clone()
            }
        }
    }

    /// The settings of every table, and of `[defaults]`: what the engine must have room for.
    pub fn all_settings(&self) -> Vec<Arc<ActivitySettings>> {
        let table = self.settings_table();
        let tables = table.by_type.values().chain(table.by_name.values());
        tables.chain([&table.default]).cloned().collect()
    }

    fn settings_table(&self) -> &SettingsTable {
        self.settings.get_or_init(|| {
            let mut table = SettingsTable {
                by_type: HashMap::new(),
                by_name: HashMap::new(),
                default: Arc::new(merge(&self.defaults, &[])),
            };
            for (key, a) in &self.activities {
                match ActivityKey::parse(key) {
                    Some(ActivityKey::Version(ty)) => {
                        // The version's table, then its name's.
                        let name_table = self.activities.get(&ty.name);
                        let layers: Vec<_> = std::iter::once(a).chain(name_table).collect();
                        table
                            .by_type
                            .insert(ty, Arc::new(merge(&self.defaults, &layers)));
                    }
                    Some(ActivityKey::Name(name)) => {
                        table
                            .by_name
                            .insert(name, Arc::new(merge(&self.defaults, &[a])));
                    }
                    None => {}
                }
            }
            table
        })
    }

    /// What to say when `ty` starts serving from `file` without an
    /// `[activity."name@version"]` table of its own while other versions of its name have
    /// one: it runs with `[defaults]` only (no env, dirs or allowed_hosts, the default
    /// limits and registration defaults), which a version dropped in beside a configured
    /// one seldom means. `None` when `ty` has a table, or no version of its name has.
    pub fn unconfigured_version_warning(&self, ty: &ActivityType, file: &Path) -> Option<String> {
        let mut others = Vec::new();
        for key in self.activities.keys() {
            match ActivityKey::parse(key) {
                Some(ActivityKey::Version(t)) if t == *ty => return None,
                Some(ActivityKey::Version(t)) if t.name == ty.name => {
                    others.push(format!("[activity.{key:?}]"))
                }
                Some(ActivityKey::Name(name)) if name == ty.name => return None,
                _ => {}
            }
        }
        if others.is_empty() {
            return None;
        }
        Some(format!(
            "{}: {ty} has no [activity.\"{ty}\"] table in {}, so it runs with [defaults] only \
             (no env, dirs or allowed_hosts; the default limits; and, if it is registered now, \
             [defaults]' registration timeouts, which SWF never changes), while {} sets \
             another version of {}: if {ty} needs the same, copy that table as \
             [activity.\"{ty}\"], or as [activity.\"{}\"] for every version without a table \
             of its own, and restart swasm (the config is read at start only)",
            file.display(),
            self.source.display(),
            others.join(", "),
            ty.name,
            ty.name,
        ))
    }

    /// The identity sent to SWF: configured, or `hostname:pid`.
    pub fn identity(&self) -> String {
        self.swf.identity.clone().unwrap_or_else(|| {
            format!(
                "{}:{}",
                gethostname::gethostname().to_string_lossy(),
                std::process::id()
            )
        })
    }
}

/// `tables` over `defaults`: each member from the first table that sets it.
fn merge(d: &Defaults, tables: &[&ActivityConfig]) -> ActivitySettings {
    fn first<T: Clone>(
        tables: &[&ActivityConfig],
        member: impl Fn(&ActivityConfig) -> Option<&T>,
    ) -> Option<T> {
        tables.iter().find_map(|t| member(t)).cloned()
    }
    ActivitySettings {
        memory_mb: first(tables, |a| a.memory_mb.as_ref()).unwrap_or(d.memory_mb),
        timeout_s: first(tables, |a| a.timeout_s.as_ref()).unwrap_or(d.timeout_s),
        heartbeat_interval_s: first(tables, |a| a.heartbeat_interval_s.as_ref())
            .unwrap_or(d.heartbeat_interval_s),
        max_stack_kb: first(tables, |a| a.max_stack_kb.as_ref()).unwrap_or(d.max_stack_kb),
        env: first(tables, |a| a.env.as_ref()).unwrap_or_default(),
        dirs: first(tables, |a| a.dirs.as_ref()).unwrap_or_default(),
        allowed_hosts: first(tables, |a| a.allowed_hosts.as_ref()).unwrap_or_default(),
        registration: Registration {
            schedule_to_start_timeout_s: first(tables, |a| a.schedule_to_start_timeout_s.as_ref())
                .or(d.schedule_to_start_timeout_s),
            start_to_close_timeout_s: first(tables, |a| a.start_to_close_timeout_s.as_ref())
                .or(d.start_to_close_timeout_s),
            schedule_to_close_timeout_s: first(tables, |a| a.schedule_to_close_timeout_s.as_ref())
                .or(d.schedule_to_close_timeout_s),
            heartbeat_timeout_s: first(tables, |a| a.heartbeat_timeout_s.as_ref())
                .or(d.heartbeat_timeout_s),
            task_priority: first(tables, |a| a.task_priority.as_ref()).or(d.task_priority),
            description: first(tables, |a| a.description.as_ref()).or(d.description.clone()),
        },
    }
}

/// SWF's task list name rules (1..256 characters, no leading/trailing whitespace, no `:` `/`
/// `|` or control characters, not the literal `arn`).
/// SWF's rules for an activity type: a name of 1 to 256 characters and a version of 1 to
/// 64, neither with the characters [`check_swf_name`] refuses. For `[activity]` keys and
/// for the types plugin file names give.
pub fn validate_activity_type(ty: &ActivityType) -> Result<()> {
    check_len(&ty.name, 1, 256).map_err(|m| anyhow::anyhow!("name: {m}"))?;
    check_len(&ty.version, 1, 64).map_err(|m| anyhow::anyhow!("version: {m}"))?;
    check_swf_name("activity type name", &ty.name)?;
    check_swf_name("activity type version", &ty.version)
}

/// SWF's rules for an activity type's name, for an `[activity."name"]` key.
fn validate_activity_name(name: &str) -> Result<()> {
    check_len(name, 1, 256).map_err(|m| anyhow::anyhow!("name: {m}"))?;
    check_swf_name("activity type name", name)
}

pub fn validate_task_list_name(name: &str) -> Result<()> {
    check_len(name, 1, 256).map_err(|m| anyhow::anyhow!("task list name: {m}"))?;
    check_swf_name("task list name", name)
}

/// SWF's rule for the names it is given (task lists, domains, activity type names and
/// versions): no leading/trailing whitespace, no `:` `/` `|` or control characters, not the
/// literal `arn`. `what` names the value in the error.
fn check_swf_name(what: &str, name: &str) -> Result<()> {
    if name.trim() != name {
        bail!("{what} {name:?} must not start or end with whitespace");
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(c, ':' | '/' | '|')
            || ('\u{0}'..='\u{1f}').contains(c)
            || ('\u{7f}'..='\u{9f}').contains(c)
    }) {
        bail!("{what} {name:?} must not contain {c:?}");
    }
    if name == "arn" {
        bail!("{what} must not be \"arn\"");
    }
    Ok(())
}

/// `[swf] region`: the SDK puts it in the endpoint's host name, so it must be a host label
/// (`us-east-1`); anything else fails every call, for ever, as a request it cannot build.
pub fn check_region(region: &str) -> Result<(), String> {
    let label = !region.is_empty()
        && region.len() <= 63
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if label {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region name such as \"us-east-1\" (letters, digits and \
             '-', at most 63)"
        ))
    }
}

/// `[swf] endpoint_url`: the SDK sends to an absolute `http` or `https` URL only, and
/// anything else fails every call as if the endpoint were down.
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let problem = match url.parse::<http::Uri>() {
        Err(e) => e.to_string(),
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (None, _) => "no scheme".to_string(),
            (Some(scheme), _)
                if !scheme.eq_ignore_ascii_case("http")
                    && !scheme.eq_ignore_ascii_case("https") =>
            {
                format!("scheme {scheme:?}")
            }
            (Some(_), None | Some("")) => "no host".to_string(),
            (Some(_), Some(_)) => return Ok(()),
        },
    };
    Err(format!(
        "{url:?} must be an absolute http:// or https:// URL with a host, such as \
         \"http://127.0.0.1:8700\" ({problem})"
    ))
}

/// `[metrics] listen`: what binding accepts, an IP address and port or a host name and port.
fn check_listen(listen: &str) -> Result<(), String> {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let host_and_port = listen.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && port.parse::<u16>().is_ok()
    });
    if host_and_port {
        return Ok(());
    }
    Err(format!(
        "{listen:?} must be \"address:port\", such as \"127.0.0.1:9464\", \"[::1]:9464\" or \
         \"localhost:9464\""
    ))
}

/// Largest `timeout_s` and `heartbeat_interval_s`: one year, SWF's longest timeout.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// Largest `memory_mb`: a 32-bit WebAssembly memory holds at most 4 GiB.
pub const MAX_MEMORY_MB: u64 = 4096;
/// Smallest `max_stack_kb`: the engine never sets a smaller wasm stack.
pub const MIN_STACK_KB: u64 = 64;
/// Largest `max_stack_kb`: 64 MiB, 128 times the default (wasmtime's own default is
/// 512 KiB). The stack is not part of `memory_mb`: every running task of a recursing guest
/// may fill it, and the engine reserves it for every slot.
pub const MAX_STACK_KB: u64 = 64 * 1024;
/// Largest sum of all task lists' `max_concurrent`. The engines' pooling allocators reserve
/// address space for every slot: 2 linear memories of 4 GiB + 32 MiB guard each (whatever
/// `memory_mb` is), in the Cranelift engine and again in the Winch engine (built for quick
/// hot-swap compiles). Each pool is one mapping, and a position-independent binary sits at
/// about 2/3 of the 128 TiB (47-bit) address space, so both pools fit only while each is
/// below about 42.7 TiB: measured on x86-64 Linux, both engines build with up to about
/// 5,430 instances (5,429 to 5,474 over six runs; instances are slots + 16), and the Winch
/// engine fails beyond. 5000 leaves room for the rest of the process.
pub const MAX_TOTAL_CONCURRENT: usize = 5000;

/// SWF-LIMITS.md: "Pollers per task list: 1000".
pub const MAX_POLLERS: usize = 1000;
/// SWF's limit on an activity type's description (`Description`, max 1024).
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// The numbers a task runs with, where `at` sets them: each must be at least 1 (a zero
/// would fail every task of the type, or, for the heartbeat interval, switch throttling
/// off; the stack, at least [`MIN_STACK_KB`]) and no larger than what can be honoured.
fn check_limits(
    at: &KeyPath,
    memory_mb: Option<u64>,
    timeout_s: Option<u64>,
    heartbeat_interval_s: Option<u64>,
    max_stack_kb: Option<u64>,
) -> Result<(), Invalid> {
    for (key, value, min, max) in [
        ("memory_mb", memory_mb, 1, MAX_MEMORY_MB),
        ("timeout_s", timeout_s, 1, MAX_SECONDS),
        ("heartbeat_interval_s", heartbeat_interval_s, 1, MAX_SECONDS),
        ("max_stack_kb", max_stack_kb, MIN_STACK_KB, MAX_STACK_KB),
    ] {
        if let Some(v) = value
            && !(min..=max).contains(&v)
        {
            return Err(at
                .key(key)
                .invalid(format!("must be between {min} and {max}, not {v}")));
        }
    }
    Ok(())
}

/// The registration `description` `at` sets: SWF refuses one over
/// [`MAX_DESCRIPTION_CHARS`] (a ValidationException at registration, far from the file).
fn check_description(at: &KeyPath, description: Option<&str>) -> Result<(), Invalid> {
    let n = description.map_or(0, |d| d.chars().count());
    if n > MAX_DESCRIPTION_CHARS {
        return Err(at.key("description").invalid(format!(
            "SWF allows at most {MAX_DESCRIPTION_CHARS} characters, not {n}"
        )));
    }
    Ok(())
}

/// The registration timeouts `at` sets (schedule-to-start, start-to-close,
/// schedule-to-close, heartbeat): SWF refuses an activity task timeout over a year, and a
/// timeout of 0 would time every task out at once (a type's registration never changes).
fn check_registration(at: &KeyPath, timeouts: [Option<u64>; 4]) -> Result<(), Invalid> {
    let keys = [
        "schedule_to_start_timeout_s",
        "start_to_close_timeout_s",
        "schedule_to_close_timeout_s",
        "heartbeat_timeout_s",
    ];
    for (key, value) in keys.into_iter().zip(timeouts) {
        if value == Some(0) {
            return Err(at.key(key).invalid(
                "must be at least 1: 0 times every task out at once (leave the key out for no timeout)",
            ));
        }
        if let Some(v) = value
            && v > MAX_SECONDS
        {
            return Err(at.key(key).invalid(format!(
                "SWF allows at most {MAX_SECONDS} (one year), not {v}"
            )));
        }
    }
    Ok(())
}

/// `path` as written, made absolute without following links (`..` taken away
/// lexically), and canonical (links followed; the part that does not exist yet appended to
/// its nearest existing ancestor): the two names a grant or a guarded dir may go by.
fn path_forms(path: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut lexical = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    // Resolved as the kernel resolves it, one part at a time: a link followed, and `..`
    // after a link taken from where the link leads (`link/../plugins` is beside the link's
    // target, not beside the link). The part that does not exist yet is appended as
    // written, `..` taken away lexically.
    let mut canonical = PathBuf::from("/");
    let mut exists = true;
    for part in absolute.components() {
        match part {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir if !exists => {
                canonical.pop();
            }
            part => {
                let next = canonical.join(part);
                match next.canonicalize() {
                    Ok(found) if exists => canonical = found,
                    _ => {
                        exists = false;
                        if part == Component::ParentDir {
                            canonical.pop();
                        } else {
                            canonical = next;
                        }
                    }
                }
            }
        }
    }
    if canonical == lexical {
        vec![lexical]
    } else {
        vec![lexical, canonical]
    }
}

/// [`path_forms`] for an error: the path, and where it leads when that differs.
fn shown(forms: &[PathBuf]) -> String {
    match forms {
        [written, canonical] => format!("{} (= {})", written.display(), canonical.display()),
        [one, ..] => one.display().to_string(),
        [] => String::new(),
    }
}

/// How to fix the two parse errors a new user meets first, whose toml message says what is
/// wrong but not what to write: `[task_list]` with one pair of brackets ("invalid type: map,
/// expected a sequence") and an `[activity.echo@1]` key without quotes ("invalid unquoted
/// key"). `None` for any other error.
fn parse_hint(text: &str, error: &toml::de::Error) -> Option<String> {
    let span = error.span()?;
    let message = error.message();
    if message.starts_with("invalid type: map, expected a sequence") {
        // The span is the header of the table that should have been an array entry.
        let header = text.get(span)?.trim();
        let name = header.strip_prefix('[')?.strip_suffix(']')?.trim();
        if name.starts_with('[') || name.is_empty() {
            return None;
        }
        return Some(format!(
            "write [[{name}]] (two pairs of brackets): each [[{name}]] table is one entry of a list"
        ));
    }
    if message.starts_with("invalid unquoted key") {
        let at = span.start.min(text.len());
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = text[start..end].trim_end_matches('\r');
        let at = at - start;
        let trimmed = line.trim();
        // A table header `[activity.echo@1.2]`: the whole `name@version` is one key, dots
        // and all.
        if let Some(rest) = trimmed
            .strip_prefix("[activity.")
            .and_then(|r| r.strip_suffix(']'))
            && !rest.starts_with('"')
        {
            return Some(format!(
                "quote a key with characters other than letters, digits, '-' and '_': \
                 [activity.\"{}\"]",
                rest.trim()
            ));
        }
        // Elsewhere, the bare key around the error: `echo@1.timeout_s = 5`.
        let stop = |c: char| matches!(c, '.' | '[' | ']' | '=' | '"' | '\'' | ' ' | '\t');
        let key_start = line[..at].rfind(stop).map_or(0, |i| i + 1);
        let key_end = line[at..].find(stop).map_or(line.len(), |i| at + i);
        if key_start >= key_end {
            return None;
        }
        let quoted = format!(
            "{}\"{}\"{}",
            &line[..key_start],
            &line[key_start..key_end],
            &line[key_end..]
        );
        return Some(format!(
            "quote a key with characters other than letters, digits, '-' and '_': {}",
            quoted.trim()
        ));
    }
    None
}

fn check_len(value: &str, min: usize, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(format!("{n} characters, must be {min} to {max}"));
    }
    Ok(())
}

/// A value swasm cannot run with (or, as a warning, one it runs with but most likely not as
/// meant), and the key that holds it (none when the problem is something missing from the
/// whole file).
#[derive(Debug)]
struct Invalid {
    key: Option<KeyPath>,
    message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A key of the file as errors name it: `task_list[0].pollers`, `activity."echo@1".file`.
#[derive(Debug, Clone)]
struct KeyPath(Vec<Step>);

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl KeyPath {
    fn root(key: &str) -> KeyPath {
        KeyPath(vec![Step::Key(key.to_owned())])
    }

    fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Step::Key(key.to_owned()));
        path
    }

    fn index(&self, i: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Step::Index(i));
        path
    }

    fn invalid(&self, message: impl Into<String>) -> Invalid {
        Invalid {
            key: Some(self.clone()),
            message: message.into(),
        }
    }

    /// The 1-based line of `text` where this key is written: where the deepest part of it
    /// that the file spells out starts (a value left to its default has no line of its own).
    fn line_in(&self, text: &str) -> Option<usize> {
        use toml::de::{DeTable, DeValue};
        let root = DeTable::parse(text).ok()?;
        let mut table = root.get_ref();
        let mut value = None;
        let mut start = None;
        for step in &self.0 {
            let next = match (step, value.map(toml::Spanned::get_ref)) {
                (Step::Key(key), None | Some(DeValue::Table(_))) => {
                    if let Some(DeValue::Table(t)) = value.map(toml::Spanned::get_ref) {
                        table = t;
                    }
                    let (k, v) = table.iter().find(|(k, _)| k.get_ref() == key)?;
                    start = Some(k.span().start);
                    v
                }
                (Step::Index(i), Some(DeValue::Array(items))) => {
                    let item = items.get(*i)?;
                    start = Some(item.span().start);
                    item
                }
                _ => break,
            };
            value = Some(next);
        }
        start.map(|at| text[..at].matches('\n').count() + 1)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => f.write_str(key)?,
                Step::Key(key)
                    if key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    write!(f, ".{key}")?
                }
                Step::Key(key) => write!(f, ".{key:?}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

fn default_shutdown_grace_s() -> u64 {
    30
}
fn default_retention_days() -> u32 {
    1
}
fn default_max_concurrent() -> usize {
    100
}
fn default_pollers() -> usize {
    2
}
fn default_memory_mb() -> u64 {
    256
}
fn default_timeout_s() -> u64 {
    300
}
fn default_heartbeat_interval_s() -> u64 {
    30
}
fn default_max_stack_kb() -> u64 {
    512
}
fn yes() -> bool {
    true
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            memory_mb: default_memory_mb(),
            timeout_s: default_timeout_s(),
            heartbeat_interval_s: default_heartbeat_interval_s(),
            max_stack_kb: default_max_stack_kb(),
            schedule_to_start_timeout_s: None,
            start_to_close_timeout_s: None,
            schedule_to_close_timeout_s: None,
            heartbeat_timeout_s: None,
            task_priority: None,
            description: None,
        }
    }
}
