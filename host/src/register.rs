//! `swasm register` and `swasm run --register`: RegisterDomain (when `[swf] register_domain`)
//! and RegisterActivityType for every plugin that loads, with the defaults of
//! `[activity."name@version"]` or `[activity."name"]` (the version's table over the name's)
//! over `[defaults]`, and the task list the file was found in as the default task list.
//!
//! Only a file that loads gets its type registered: SWF registration is permanent (a type
//! can be deprecated, never changed or removed), and a type no host can serve would let
//! deciders schedule tasks that all fail. `swasm register` loads every file as `swasm
//! plugins` does ([`load_files`]); `swasm run --register` and `swasm dev` register what
//! their registry serves ([`served_types`]), and then each type that starts serving later
//! (a `name@version.wasm` dropped into a plugin dir while the host runs) as it loads
//! ([`register_type`]), so a decider can schedule it at once.
//!
//! Registering is idempotent: an existing type is described and compared, and a type
//! registered earlier with other defaults is reported (SWF cannot change them; bump the
//! version instead).

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::activity::ActivityType;
use crate::config::{Config, Registration};
use crate::registry::PluginInfo;
use crate::runtime::Runtime;
use crate::swf::{SwfClient, SwfError, TypeDefaults};

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Registered,
    /// Already there with the same defaults.
    Unchanged,
    /// Already there with other defaults: the differences, `field: registered X, configured Y`.
    Conflict(Vec<String>),
}

/// A plugin file whose types were not registered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub task_list: String,
    pub path: PathBuf,
    /// The types the file is for (by its name or an `[activity] file` mapping); empty when
    /// it names none.
    pub types: Vec<ActivityType>,
    /// Why, as `swasm plugins` says it.
    pub why: String,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub domain: Option<Status>,
    pub types: Vec<(String, ActivityType, Status)>,
    /// Files that do not load (not wasm, truncated, the wrong world, ...): their types are
    /// not registered, and `swasm register` exits 1.
    pub rejected: Vec<FileProblem>,
    /// Files that name no type to register (no `@version`, not mapped by an `[activity]`
    /// table; or a type `[activity] file` serves from another file): said, not a failure.
    pub skipped: Vec<FileProblem>,
}

impl Report {
    pub fn has_conflicts(&self) -> bool {
        self.types
            .iter()
            .any(|(_, _, s)| matches!(s, Status::Conflict(_)))
    }

    /// `swasm register`'s exit code: 1 when a file does not load (whatever else happened:
    /// a type the operator meant to deploy is not schedulable), else 2 when a type is
    /// already registered with other defaults, else 0.
    pub fn exit_code(&self) -> ExitCode {
        if !self.rejected.is_empty() {
            ExitCode::FAILURE
        } else if self.has_conflicts() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.domain {
            Some(Status::Registered) => writeln!(f, "domain: registered")?,
            Some(_) => writeln!(f, "domain: already registered")?,
            None => {}
        }
        for (task_list, ty, status) in &self.types {
            match status {
                Status::Registered => writeln!(f, "{ty} (task list {task_list}): registered")?,
                Status::Unchanged => {
                    writeln!(f, "{ty} (task list {task_list}): already registered")?
                }
                Status::Conflict(diffs) => writeln!(
                    f,
                    "{ty} (task list {task_list}): already registered with different defaults: {}",
                    diffs.join("; ")
                )?,
            }
        }
        for p in &self.rejected {
            let types: Vec<String> = p.types.iter().map(ToString::to_string).collect();
            writeln!(
                f,
                "{} (task list {}): {} not registered, the file does not load: {}",
                p.path.display(),
                p.task_list,
                types.join(", "),
                p.why
            )?;
        }
        for p in &self.skipped {
            writeln!(
                f,
                "{} (task list {}): skipped: {}",
                p.path.display(),
                p.task_list,
                p.why
            )?;
        }
        Ok(())
    }
}

/// The plugin files of a config's dirs, loaded the way `swasm plugins` loads them.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// `(task list, type)` of every file that loads; a type found in several lists is
    /// listed once, with the first (in the config's order).
    pub types: Vec<(String, ActivityType)>,
    pub rejected: Vec<FileProblem>,
    pub skipped: Vec<FileProblem>,
}

/// Loads (compiles, or takes from the compiled-code cache, and checks) every file of every
/// plugin dir of `config`, without serving anything. A plugin dir that cannot be read is
/// an error, before anything is registered.
pub async fn load_files(config: &Config) -> Result<Loaded> {
    for (i, tl) in config.task_lists.iter().enumerate() {
        std::fs::read_dir(&tl.plugin_dir).with_context(|| {
            format!(
                "{}: cannot read {} (task list {:?})",
                config.task_list_key(i, "plugin_dir"),
                tl.plugin_dir.display(),
                tl.name,
            )
        })?;
    }
    let runtime = Runtime::new(config).context("cannot set up the WebAssembly runtime")?;
    let mut loaded = Loaded::default();
    let mut types = Vec::new();
    // `inspect` reports the task lists in the config's order.
    for file in crate::registry::inspect(config, &runtime).await? {
        if file.ignored.is_some() {
            // Not a plugin by its name (`readme.txt`, `echo@1.wasm.bak`): nothing to register.
            continue;
        }
        match file.error {
            None => {
                for ty in file.types {
                    types.push((file.task_list.clone(), ty));
                }
            }
            Some(why) => {
                let problem = FileProblem {
                    task_list: file.task_list,
                    path: file.path,
                    types: file.types,
                    why,
                };
                if problem.types.is_empty() {
                    loaded.skipped.push(problem);
                } else {
                    loaded.rejected.push(problem);
                }
            }
        }
    }
    loaded.types = first_list_per_type(types);
    Ok(loaded)
}

/// The `(task list, type)` of every served plugin in `plugins` (from
/// [`crate::registry::Registry::plugins`]); a type served on several lists is listed once,
/// with the first in the config's order.
pub fn served_types(config: &Config, plugins: &[PluginInfo]) -> Vec<(String, ActivityType)> {
    let position = |task_list: &str| {
        config
            .task_lists
            .iter()
            .position(|tl| tl.name == task_list)
            .unwrap_or(usize::MAX)
    };
    let mut sorted: Vec<&PluginInfo> = plugins.iter().collect();
    sorted.sort_by_key(|p| (position(&p.task_list), &p.ty));
    first_list_per_type(
        sorted
            .into_iter()
            .map(|p| (p.task_list.clone(), p.ty.clone())),
    )
}

/// `(task list, type)` pairs with each type kept once, with the first task list it comes
/// with: the default task list it is registered with.
fn first_list_per_type(
    pairs: impl IntoIterator<Item = (String, ActivityType)>,
) -> Vec<(String, ActivityType)> {
    let mut found: Vec<(String, ActivityType)> = Vec::new();
    for (task_list, ty) in pairs {
        if !found.iter().any(|(_, t)| *t == ty) {
            found.push((task_list, ty));
        }
    }
    found
}

/// `swasm register`: loads every plugin file, then registers the domain (if configured)
/// and the types of the files that load. The report names the files that do not load and
/// those that name no type.
pub async fn run(config: &Config) -> Result<Report> {
    let loaded = load_files(config).await?;
    let swf = crate::swf::connect(config).await?;
    let mut report = register_all(config, &swf, &loaded.types).await?;
    report.rejected = loaded.rejected;
    report.skipped = loaded.skipped;
    Ok(report)
}

/// Registers the domain (if `[swf] register_domain`) and `types`, `(default task list, type)`.
pub async fn register_all(
    config: &Config,
    swf: &dyn SwfClient,
    types: &[(String, ActivityType)],
) -> Result<Report> {
    let mut report = Report::default();
    register_remaining(config, swf, types, &mut report).await?;
    Ok(report)
}

/// [`register_all`] for what `report` does not hold yet, adding each item to it as it is
/// done: after a failure (SWF throttling a fleet that starts at once), a retry goes on from
/// the item that failed instead of sending every call again.
pub async fn register_remaining(
    config: &Config,
    swf: &dyn SwfClient,
    types: &[(String, ActivityType)],
    report: &mut Report,
) -> Result<()> {
    let domain = &config.swf.domain;
    if config.swf.register_domain && report.domain.is_none() {
        report.domain = Some(match swf.register_domain(config.swf.retention_days).await {
            Ok(()) => Status::Registered,
            Err(SwfError::AlreadyExists(_)) => Status::Unchanged,
            Err(e) => return Err(e).with_context(|| format!("RegisterDomain {domain:?}")),
        });
    }
    for (task_list, ty) in types {
        if report.types.iter().any(|(_, done, _)| done == ty) {
            continue;
        }
        let status = register_type(config, swf, task_list, ty).await?;
        report.types.push((task_list.clone(), ty.clone(), status));
    }
    Ok(())
}

/// Registers `ty` with `task_list` as its default task list and the configured defaults;
/// a type already registered is compared with them (a difference is logged, not changed:
/// SWF cannot change a registered type).
///
/// DescribeActivityType comes first: once a type exists, which is every start of a host
/// but the first, that is the only call, and RegisterActivityType, whose quota is SWF's
/// smallest (a burst of 200, then 60 a second, for the whole account), is left to new
/// types.
pub async fn register_type(
    config: &Config,
    swf: &dyn SwfClient,
    task_list: &str,
    ty: &ActivityType,
) -> Result<Status> {
    let domain = &config.swf.domain;
    let wanted = &config.settings_for(ty).registration;
    let compare = |have: TypeDefaults| {
        let diffs = differences(&have, task_list, wanted);
        if diffs.is_empty() {
            Status::Unchanged
        } else {
            Status::Conflict(diffs)
        }
    };
    let call = |name: &str| format!("{name} {ty} in domain {domain:?}");
    let status = match swf.describe_activity_type(ty).await {
        Ok(have) => compare(have),
        Err(SwfError::TaskGone(_)) => {
            match swf.register_activity_type(ty, task_list, wanted).await {
                Ok(()) => Status::Registered,
                // Another host registered it since.
                Err(SwfError::AlreadyExists(_)) => compare(
                    swf.describe_activity_type(ty)
                        .await
                        .with_context(|| call("DescribeActivityType"))?,
                ),
                Err(e) => return Err(e).with_context(|| call("RegisterActivityType")),
            }
        }
        Err(e) => return Err(e).with_context(|| call("DescribeActivityType")),
    };
    match &status {
        Status::Registered if never_times_out(wanted) => {
            tracing::warn!(
                activity_type = %ty,
                "registered with no start-to-close, schedule-to-close or heartbeat timeout \
                 (NONE), which SWF never lets change: a task whose host dies (killed, its \
                 machine lost) is never timed out, and its workflow waits for it for ever \
                 unless the decider sets a timeout when it schedules the task. Set \
                 start_to_close_timeout_s (or heartbeat_timeout_s) in [defaults] or \
                 [activity.\"{ty}\"], and register the next version"
            )
        }
        Status::Conflict(d) => {
            tracing::warn!(activity_type = %ty, differences = %d.join("; "), "activity type already registered with different defaults (bump the version to change them)")
        }
        s => tracing::info!(activity_type = %ty, %task_list, status = ?s, "activity type"),
    }
    Ok(status)
}

/// Whether a type registered with `defaults` leaves a started task that no host answers
/// open for ever: with no start-to-close, schedule-to-close or heartbeat timeout, nothing
/// in SWF ends it (a heartbeat timeout ends it once its host stops heartbeating).
fn never_times_out(defaults: &Registration) -> bool {
    defaults.start_to_close_timeout_s.is_none()
        && defaults.schedule_to_close_timeout_s.is_none()
        && defaults.heartbeat_timeout_s.is_none()
}

fn differences(registered: &TypeDefaults, task_list: &str, want: &Registration) -> Vec<String> {
    fn secs(v: Option<u64>) -> String {
        v.map_or("NONE".into(), |s| s.to_string())
    }
    let mut out = Vec::new();
    if registered.deprecated {
        out.push(
            "status: registered DEPRECATED, so deciders cannot schedule it (undeprecate it, or bump the version)"
                .to_string(),
        );
    }
    let mut cmp = |field: &str, registered: String, configured: String| {
        if registered != configured {
            out.push(format!(
                "{field}: registered {registered}, configured {configured}"
            ));
        }
    };
    cmp(
        "default task list",
        registered.task_list.clone().unwrap_or_default(),
        task_list.to_string(),
    );
    let have = &registered.registration;
    cmp(
        "schedule_to_start_timeout_s",
        secs(have.schedule_to_start_timeout_s),
        secs(want.schedule_to_start_timeout_s),
    );
    cmp(
        "start_to_close_timeout_s",
        secs(have.start_to_close_timeout_s),
        secs(want.start_to_close_timeout_s),
    );
    cmp(
        "schedule_to_close_timeout_s",
        secs(have.schedule_to_close_timeout_s),
        secs(want.schedule_to_close_timeout_s),
    );
    cmp(
        "heartbeat_timeout_s",
        secs(have.heartbeat_timeout_s),
        secs(want.heartbeat_timeout_s),
    );
    // SWF: "If not set, then 0 is used as the default priority."
    cmp(
        "task_priority",
        have.task_priority.unwrap_or(0).to_string(),
        want.task_priority.unwrap_or(0).to_string(),
    );
    cmp(
        "description",
        format!("{:?}", have.description.as_deref().unwrap_or_default()),
        format!("{:?}", want.description.as_deref().unwrap_or_default()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("/nonexistent/swasm.toml")).unwrap()
    }

    fn served(task_list: &str, ty: &str) -> PluginInfo {
        PluginInfo {
            task_list: task_list.into(),
            ty: ActivityType::parse(ty).unwrap(),
            path: PathBuf::from(format!("{ty}.wasm")),
            hash: String::new(),
            size: 0,
            loaded_at: std::time::SystemTime::UNIX_EPOCH,
            compiler: crate::runtime::Compiler::Cranelift,
        }
    }

    /// A type served on several task lists is registered once, with the first list in the
    /// config (the registry lists plugins by task list name).
    #[test]
    fn served_types_take_the_first_task_list_of_the_config() {
        let config = config(
            "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"zeta\"\nplugin_dir = \"z\"\n[[task_list]]\nname = \"alpha\"\nplugin_dir = \"a\"\n",
        );
        let plugins = [
            served("alpha", "echo@1"),
            served("alpha", "only-alpha@1"),
            served("zeta", "echo@1"),
            served("zeta", "count@2"),
        ];
        let t = |tl: &str, ty: &str| (tl.to_string(), ActivityType::parse(ty).unwrap());
        assert_eq!(
            served_types(&config, &plugins),
            vec![
                t("zeta", "count@2"),
                t("zeta", "echo@1"),
                t("alpha", "only-alpha@1")
            ]
        );
    }

    /// A file that does not load is named with its types and why, and fails `swasm
    /// register` (1) even when a type also conflicts (2); a file that names no type is said
    /// to be skipped, and is no failure.
    #[test]
    fn report_names_bad_files_and_the_failing_one_decides_the_exit_code() {
        let problem = |file: &str, types: &[&str], why: &str| FileProblem {
            task_list: "main".into(),
            path: PathBuf::from("/p").join(file),
            types: types
                .iter()
                .map(|t| ActivityType::parse(t).unwrap())
                .collect(),
            why: why.into(),
        };
        let mut report = Report {
            domain: None,
            types: vec![(
                "main".into(),
                ActivityType::new("echo", "1"),
                Status::Registered,
            )],
            rejected: vec![],
            skipped: vec![problem(
                "notes.wasm",
                &[],
                "the file name must be <name>@<version>.wasm",
            )],
        };
        assert_eq!(report.exit_code(), ExitCode::SUCCESS);
        assert_eq!(
            report.to_string(),
            "echo@1 (task list main): registered\n\
             /p/notes.wasm (task list main): skipped: the file name must be <name>@<version>.wasm\n"
        );

        report.types.push((
            "main".into(),
            ActivityType::new("count", "1"),
            Status::Conflict(vec![
                "heartbeat_timeout_s: registered 10, configured 20".into(),
            ]),
        ));
        assert_eq!(report.exit_code(), ExitCode::from(2));

        report
            .rejected
            .push(problem("bad@1.wasm", &["bad@1"], "not a WebAssembly file"));
        assert_eq!(report.exit_code(), ExitCode::FAILURE);
        assert!(
            report.to_string().contains(
                "/p/bad@1.wasm (task list main): bad@1 not registered, the file does not load: not a WebAssembly file\n"
            ),
            "{report}"
        );
    }

    /// What SWF registered and what the config asks for differ also in the description,
    /// in a priority set on one side only (SWF reads none as 0), and in a type deprecated
    /// since; no priority on one side and 0 on the other is no difference.
    #[test]
    fn differences_cover_description_priority_and_deprecation() {
        let have = TypeDefaults {
            task_list: Some("tl".into()),
            registration: Registration {
                task_priority: Some(7),
                description: Some("old".into()),
                ..Default::default()
            },
            deprecated: true,
        };
        let want = Registration::default();
        assert_eq!(
            differences(&have, "tl", &want),
            vec![
                "status: registered DEPRECATED, so deciders cannot schedule it (undeprecate it, or bump the version)".to_string(),
                "task_priority: registered 7, configured 0".to_string(),
                "description: registered \"old\", configured \"\"".to_string(),
            ]
        );
        let have = TypeDefaults {
            task_list: Some("tl".into()),
            ..Default::default()
        };
        let want = Registration {
            task_priority: Some(0),
            ..Default::default()
        };
        assert!(differences(&have, "tl", &want).is_empty());
    }

    #[test]
    fn differences_name_the_field() {
        let have = TypeDefaults {
            task_list: Some("tl".into()),
            registration: Registration {
                heartbeat_timeout_s: Some(10),
                ..Default::default()
            },
            deprecated: false,
        };
        let want = Registration {
            heartbeat_timeout_s: Some(20),
            ..Default::default()
        };
        assert_eq!(
            differences(&have, "tl", &want),
            vec!["heartbeat_timeout_s: registered 10, configured 20".to_string()]
        );
        assert!(
            differences(
                &have,
                "tl",
                &Registration {
                    heartbeat_timeout_s: Some(10),
                    ..Default::default()
                }
            )
            .is_empty()
        );
    }
}
