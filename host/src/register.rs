//! `swasm register` and `swasm run --register`: RegisterDomain (when `[swf] register_domain`)
//! and RegisterActivityType for every plugin file found in the task lists' plugin dirs, with
//! the defaults of `[activity."name@version"]` over `[defaults]` and the task list the file
//! was found in as the default task list. Under `swasm run --register`, a type that starts
//! serving later (a `name@version.wasm` dropped into a plugin dir while the host runs) is
//! registered as it loads ([`register_type`]), so a decider can schedule it at once.
//!
//! Registering is idempotent: an existing type is described and compared, and a type
//! registered earlier with other defaults is reported (SWF cannot change them; bump the
//! version instead).

use std::fmt;

use anyhow::{Context, Result};

use crate::activity::ActivityType;
use crate::config::{Config, Registration};
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

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub domain: Option<Status>,
    pub types: Vec<(String, ActivityType, Status)>,
}

impl Report {
    pub fn has_conflicts(&self) -> bool {
        self.types
            .iter()
            .any(|(_, _, s)| matches!(s, Status::Conflict(_)))
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
        Ok(())
    }
}

/// Every `(task list, type)` this config serves, found by file name (`name@version.wasm`)
/// or by `[activity."name@version"] file = ...`; a type found in several lists is listed once,
/// with the first.
pub fn discover(config: &Config) -> Result<Vec<(String, ActivityType)>> {
    let mut found: Vec<(String, ActivityType)> = Vec::new();
    for (i, tl) in config.task_lists.iter().enumerate() {
        let entries = std::fs::read_dir(&tl.plugin_dir).with_context(|| {
            format!(
                "{}: cannot read {} (task list {:?})",
                config.task_list_key(i, "plugin_dir"),
                tl.plugin_dir.display(),
                tl.name,
            )
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".wasm") && !n.starts_with('.'))
            .collect();
        names.sort();
        let mut types: Vec<ActivityType> = names
            .iter()
            .filter_map(|n| ActivityType::parse(n.trim_end_matches(".wasm")))
            .collect();
        for (key, a) in &config.activities {
            if let (Some(file), Some(ty)) = (&a.file, ActivityType::parse(key))
                && tl.plugin_dir.join(file).is_file()
            {
                types.push(ty);
            }
        }
        for ty in types {
            if !found.iter().any(|(_, t)| *t == ty) {
                found.push((tl.name.clone(), ty));
            }
        }
    }
    Ok(found)
}

/// `swasm register`.
pub async fn run(config: &Config) -> Result<Report> {
    let swf = crate::swf::connect(config).await?;
    register_all(config, &swf).await
}

pub async fn register_all(config: &Config, swf: &dyn SwfClient) -> Result<Report> {
    let mut report = Report::default();
    let domain = &config.swf.domain;
    if config.swf.register_domain {
        report.domain = Some(match swf.register_domain(config.swf.retention_days).await {
            Ok(()) => Status::Registered,
            Err(SwfError::AlreadyExists(_)) => Status::Unchanged,
            Err(e) => return Err(e).with_context(|| format!("RegisterDomain {domain:?}")),
        });
    }
    for (task_list, ty) in discover(config)? {
        let status = register_type(config, swf, &task_list, &ty).await?;
        report.types.push((task_list, ty, status));
    }
    Ok(report)
}

/// Registers `ty` with `task_list` as its default task list and the configured defaults;
/// a type already registered is compared with them (a difference is logged, not changed:
/// SWF cannot change a registered type).
pub async fn register_type(
    config: &Config,
    swf: &dyn SwfClient,
    task_list: &str,
    ty: &ActivityType,
) -> Result<Status> {
    let domain = &config.swf.domain;
    let wanted = &config.settings_for(ty).registration;
    let status = match swf.register_activity_type(ty, task_list, wanted).await {
        Ok(()) => Status::Registered,
        Err(SwfError::AlreadyExists(_)) => {
            let have = swf
                .describe_activity_type(ty)
                .await
                .with_context(|| format!("DescribeActivityType {ty} in domain {domain:?}"))?;
            let diffs = differences(&have, task_list, wanted);
            if diffs.is_empty() {
                Status::Unchanged
            } else {
                Status::Conflict(diffs)
            }
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("RegisterActivityType {ty} in domain {domain:?}"));
        }
    };
    match &status {
        Status::Conflict(d) => {
            tracing::warn!(activity_type = %ty, differences = %d.join("; "), "activity type already registered with different defaults (bump the version to change them)")
        }
        s => tracing::info!(activity_type = %ty, %task_list, status = ?s, "activity type"),
    }
    Ok(status)
}

fn differences(registered: &TypeDefaults, task_list: &str, want: &Registration) -> Vec<String> {
    fn secs(v: Option<u64>) -> String {
        v.map_or("NONE".into(), |s| s.to_string())
    }
    let mut out = Vec::new();
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
    if let Some(p) = want.task_priority {
        cmp(
            "task_priority",
            have.task_priority.map_or("none".into(), |p| p.to_string()),
            p.to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_files_and_mapped_types() {
        let dir = std::env::temp_dir().join(format!("swasm-register-{}", std::process::id()));
        let p = dir.join("p");
        std::fs::create_dir_all(&p).unwrap();
        for f in ["echo@1.wasm", "x.wasm", ".tmp@1.wasm", "notes.txt"] {
            std::fs::write(p.join(f), b"").unwrap();
        }
        let config = Config::parse(
            "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"p\"\n[activity.\"other@2\"]\nfile = \"x.wasm\"\n",
            &dir.join("swasm.toml"),
        )
        .unwrap();
        let found = discover(&config).unwrap();
        assert_eq!(
            found,
            vec![
                ("tl".to_string(), ActivityType::new("echo", "1")),
                ("tl".to_string(), ActivityType::new("other", "2"))
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn differences_name_the_field() {
        let have = TypeDefaults {
            task_list: Some("tl".into()),
            registration: Registration {
                heartbeat_timeout_s: Some(10),
                ..Default::default()
            },
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
