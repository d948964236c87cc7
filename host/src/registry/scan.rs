//! Looking at a plugin dir: which files it holds, which types each serves, and reading a
//! file only when it is complete and stays inside the directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::{Cache, RegistryStats, compile_cached};
use crate::activity::ActivityType;
use crate::config::Config;
use crate::runtime::Runtime;

/// What tells one version of a file from another without reading it: a file whose stamp
/// is unchanged is not looked at again. Size and mtime alone miss a same-size file renamed
/// into place with its mtime kept (`cp -p`, `rsync -a`, reproducible builds); the inode and
/// the change time do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime: Option<SystemTime>,
    pub inode: u64,
    pub ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            size: meta.len(),
            mtime: meta.modified().ok(),
            inode: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// One `.wasm` file of a plugin dir.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub file_name: String,
    /// What is read: the file itself, or the target of a symlink inside the dir.
    pub source: PathBuf,
    pub stamp: Stamp,
    pub types: Vec<ActivityType>,
    /// Why the file cannot be served whatever it holds (bad name, symlink escaping).
    pub problem: Option<String>,
}

impl Entry {
    /// Modified less than `d` ago (may still be being written). A modification time in
    /// the future (copied with `rsync -a` or `tar x` from a machine whose clock is ahead)
    /// says nothing about a write going on, and would keep a broken file "young", tried
    /// again and again, until the clock passed it: such a file is not young.
    pub fn young(&self, d: Duration) -> bool {
        self.stamp
            .mtime
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age < d)
    }
}

/// File name -> the types `[activity."n@v"] file = "..."` maps to it.
pub(crate) fn mapped_files(config: &Config) -> BTreeMap<String, Vec<ActivityType>> {
    let mut mapped: BTreeMap<String, Vec<ActivityType>> = BTreeMap::new();
    for (key, activity) in &config.activities {
        if let (Some(file), Some(ty)) = (&activity.file, ActivityType::parse(key)) {
            mapped
                .entry(file.to_string_lossy().into_owned())
                .or_default()
                .push(ty);
        }
    }
    mapped
}

/// Where `plugin_dir` leads now (canonical: a symlink switched to another release is
/// followed), and its `.wasm` files, sorted by name. Hidden files are skipped (editors and
/// `cp` tools write temp files as `.name`). An error means the dir could not be read
/// whole: that says nothing about which files it holds. A dir that lists its names but
/// cannot be searched (no `x` permission: `chmod -R 644`), or a network file system that
/// fails a lookup, is such a dir, not one whose files are gone.
pub(crate) fn list_dir(
    plugin_dir: &Path,
    mapped: &BTreeMap<String, Vec<ActivityType>>,
) -> std::io::Result<(PathBuf, Vec<Entry>)> {
    list_dir_with(plugin_dir, mapped, || {})
}

/// How many times a dir replaced while it was listed is listed again before the scan
/// gives up (and the registry looks again later, as at a dir it cannot read).
const LISTING_TRIES: usize = 3;

/// Which directory `path` names now: device and inode.
fn dir_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// [`list_dir`], calling `opened` once the dir is first opened, before its names are looked
/// up (tests move the dir there).
///
/// The names come from the dir as it was opened, but each file is looked up by its path: a
/// dir renamed away in between (`mv plugins elsewhere`, an unmount) still lists its names
/// while every lookup finds nothing, which would read as "every file removed" and retire
/// every type the dir serves, though no file was. So the listing counts only if the path
/// still names the dir that was opened once every file was looked up; else the dir is
/// listed again: gone, that fails as a dir that cannot be read; replaced (a release renamed
/// into place), the new dir is what is listed.
pub(crate) fn list_dir_with(
    plugin_dir: &Path,
    mapped: &BTreeMap<String, Vec<ActivityType>>,
    opened: impl FnOnce(),
) -> std::io::Result<(PathBuf, Vec<Entry>)> {
    let mut opened = Some(opened);
    for _ in 0..LISTING_TRIES {
        let dir = plugin_dir.canonicalize()?;
        let identity = dir_identity(&dir)?;
        let entries = list_entries(&dir, mapped, opened.take())?;
        if dir_identity(&dir).ok() == Some(identity) {
            return Ok((dir, entries));
        }
    }
    Err(std::io::Error::other(format!(
        "{}: replaced again while it was listed, {LISTING_TRIES} times in a row",
        plugin_dir.display()
    )))
}

/// The `.wasm` files of `dir`, sorted by name; `opened` is called once the dir is open.
fn list_entries(
    dir: &Path,
    mapped: &BTreeMap<String, Vec<ActivityType>>,
    opened: Option<impl FnOnce()>,
) -> std::io::Result<Vec<Entry>> {
    let read = std::fs::read_dir(dir)?;
    if let Some(opened) = opened {
        opened();
    }
    let mut entries = Vec::new();
    for item in read {
        let item = item?;
        let Ok(file_name) = item.file_name().into_string() else {
            continue;
        };
        if not_a_plugin_name(&file_name).is_some() {
            continue;
        }
        let path = dir.join(&file_name);
        let mut problem = None;
        let mut source = path.clone();
        let is_link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if is_link {
            match path.canonicalize() {
                Ok(target) if target.starts_with(dir) => source = target,
                Ok(target) => {
                    problem = Some(format!(
                        "symlink leads outside the plugin dir (to {}); only links inside it are followed",
                        target.display()
                    ))
                }
                Err(_) => problem = Some("dangling symlink".to_string()),
            }
        }
        // The stamp of a link escaping the dir is the link's own: its target is never read.
        let meta = if problem.is_some() {
            std::fs::symlink_metadata(&path)
        } else {
            std::fs::metadata(&source)
        };
        let meta = match meta {
            Ok(meta) => meta,
            // Removed since the dir was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ));
            }
        };
        if problem.is_none() && meta.is_dir() {
            // Named like a plugin, so meant as one (an unpacked archive, a build output dir):
            // said, rather than silently not served.
            problem = Some("a directory, not a file: put the component itself here".to_string());
        } else if problem.is_none() && !meta.is_file() {
            continue;
        }
        let stamp = Stamp::of(&meta);
        let mut types = mapped.get(&file_name).cloned().unwrap_or_default();
        if let Some(ty) = file_name
            .strip_suffix(".wasm")
            .and_then(ActivityType::parse)
            && !types.contains(&ty)
        {
            // A type `[activity] file` maps to another file is served from that file only:
            // one type, one file, whatever order the dir is read in.
            match mapped
                .iter()
                .find(|(f, tys)| **f != file_name && tys.contains(&ty))
            {
                Some((other, _)) if problem.is_none() && types.is_empty() => {
                    problem = Some(format!(
                        "{ty} is served from {other}, as [activity.\"{ty}\"] file says"
                    ));
                }
                Some(_) => {}
                None => {
                    // Refused here, where the file is named, rather than by SWF when the type
                    // is registered (which would stop the registration of every type after it).
                    if problem.is_none()
                        && let Err(e) = crate::config::validate_activity_type(&ty)
                    {
                        problem = Some(format!("{ty} is not an activity type SWF accepts: {e:#}"));
                    }
                    types.push(ty);
                }
            }
        }
        if types.is_empty() && problem.is_none() {
            problem = Some(
                "the file name must be <name>@<version>.wasm (or the file must be mapped with [activity.\"name@version\"] file = ...)"
                    .to_string(),
            );
        }
        entries.push(Entry {
            file_name,
            source,
            stamp,
            types,
            problem,
        });
    }
    entries.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(entries)
}

/// Why a name in a plugin dir is never looked at as a plugin, if it is not: only visible
/// `*.wasm` names are (editors and deploy tools write their temp files as `.name`).
pub(crate) fn not_a_plugin_name(file_name: &str) -> Option<String> {
    if file_name.starts_with('.') {
        return Some(
            "hidden (the name starts with \".\"): temp files of a deploy are named so, and are never served"
                .into(),
        );
    }
    if file_name.ends_with(".wasm") {
        return None;
    }
    let lower = file_name.to_ascii_lowercase();
    Some(if lower.ends_with(".wasm") {
        format!(
            "the name must end in \".wasm\" in lower case: rename it to {}.wasm",
            &file_name[..file_name.len() - ".wasm".len()]
        )
    } else if lower.contains(".wasm") {
        "the name does not end in \".wasm\" (a backup or a copy?): only <name>@<version>.wasm files are served".into()
    } else {
        "not a plugin: only <name>@<version>.wasm files are served".into()
    })
}

/// The files of `dir` (canonical, as [`list_dir`] returned it) that [`list_dir`] passes
/// over by their names, sorted, each with why: what `swasm plugins` lists as ignored, so a
/// `Echo@1.WASM` or an `echo@1.wasm.bak` is not silently missing. Directories (`.builds/`)
/// are not listed.
pub(crate) fn ignored_files(dir: &Path) -> Vec<(String, String)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ignored: Vec<(String, String)> = read
        .flatten()
        .filter_map(|item| {
            let (name, why) = match item.file_name().into_string() {
                Ok(name) => {
                    let why = not_a_plugin_name(&name)?;
                    (name, why)
                }
                // SWF's names are text: such a file can never be a plugin.
                Err(raw) => (
                    raw.to_string_lossy().into_owned(),
                    "its name is not UTF-8 text, as an activity type's name and version are"
                        .to_string(),
                ),
            };
            (!item.path().is_dir()).then_some((name, why))
        })
        .collect();
    ignored.sort();
    ignored
}

pub(crate) enum Verdict {
    /// The file changed while it was read: look again later.
    Changing,
    Reject(String),
    Read {
        bytes: Vec<u8>,
        hash: String,
    },
}

/// Reads a file if it can be served, making sure it did not change while being read.
pub(crate) async fn examine(entry: &Entry) -> Verdict {
    if let Some(p) = &entry.problem {
        return Verdict::Reject(p.clone());
    }
    let bytes = match tokio::fs::read(&entry.source).await {
        Ok(b) => b,
        Err(e) => return Verdict::Reject(format!("cannot read: {e}")),
    };
    let after = std::fs::metadata(&entry.source).ok().map(|m| Stamp::of(&m));
    if after != Some(entry.stamp) || bytes.len() as u64 != entry.stamp.size {
        return Verdict::Changing;
    }
    let hash = hex::encode(Sha256::digest(&bytes));
    Verdict::Read { bytes, hash }
}

/// What `swasm plugins` prints for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub task_list: String,
    pub path: PathBuf,
    pub types: Vec<ActivityType>,
    pub size: u64,
    pub hash: Option<String>,
    /// Why the file does not load, if it does not.
    pub error: Option<String>,
    /// Why the file is not a plugin by its name (not `*.wasm`, hidden), if it is not: it is
    /// never loaded, and fails nothing.
    pub ignored: Option<String>,
}

/// Looks at every file of every plugin dir of `config` and tries to load it (using and
/// filling the compiled-code cache), without serving anything; the files each dir holds
/// that are not plugins by their names come after its plugins, as ignored. Logs, once per
/// type, a version that loads without the `[activity]` table another version of its name
/// has ([`Config::unconfigured_version_warning`]).
/// The types already warned about as a version without the `[activity]` table another
/// version of their name has ([`Config::unconfigured_version_warning`]): once each.
#[derive(Default)]
pub(crate) struct UnconfiguredVersions(std::sync::Mutex<std::collections::HashSet<ActivityType>>);

impl UnconfiguredVersions {
    /// Logs, the first time only, that `ty` (served from `path`) has no `[activity]` table
    /// while another version of its name has one.
    pub(crate) fn warn(&self, config: &Config, ty: &ActivityType, path: &Path) {
        let Some(warning) = config.unconfigured_version_warning(ty, path) else {
            return;
        };
        let first = self.0.lock().expect("warned lock").insert(ty.clone());
        if first {
            tracing::warn!(activity_type = %ty, "{warning}");
        }
    }
}

pub async fn inspect(config: &Config, runtime: &Arc<Runtime>) -> Result<Vec<FileReport>> {
    let cache = Cache::from_config(&config.cache);
    let stats = RegistryStats::default();
    let mapped = mapped_files(config);
    let mut reports = Vec::new();
    let warned = UnconfiguredVersions::default();
    for tl in &config.task_lists {
        let (dir, entries) = match list_dir(&tl.plugin_dir, &mapped) {
            Ok(listed) => listed,
            Err(e) => {
                reports.push(FileReport {
                    task_list: tl.name.clone(),
                    path: tl.plugin_dir.clone(),
                    types: vec![],
                    size: 0,
                    hash: None,
                    error: Some(format!("plugin_dir cannot be read: {e}")),
                    ignored: None,
                });
                continue;
            }
        };
        for entry in entries {
            let path = dir.join(&entry.file_name);
            let mut report = FileReport {
                task_list: tl.name.clone(),
                path: path.clone(),
                types: entry.types.clone(),
                size: entry.stamp.size,
                hash: None,
                error: None,
                ignored: None,
            };
            match examine(&entry).await {
                Verdict::Changing => report.error = Some("the file is being written".into()),
                Verdict::Reject(why) => report.error = Some(why),
                Verdict::Read { bytes, hash } => {
                    report.hash = Some(hash.clone());
                    match compile_cached(runtime, cache.as_ref(), &stats, bytes, hash).await {
                        Ok(compiled) => {
                            let unfit: Vec<String> = entry
                                .types
                                .iter()
                                .filter_map(|ty| {
                                    compiled.fits(ty, config.settings_for(ty).memory_mb).err()
                                })
                                .collect();
                            if !unfit.is_empty() {
                                report.error = Some(unfit.join("; "));
                            }
                            for ty in &entry.types {
                                warned.warn(config, ty, &path);
                            }
                        }
                        Err(e) => report.error = Some(e.to_string()),
                    }
                }
            }
            reports.push(report);
        }
        for (name, why) in ignored_files(&dir) {
            let path = dir.join(&name);
            reports.push(FileReport {
                task_list: tl.name.clone(),
                size: std::fs::metadata(&path).map_or(0, |m| m.len()),
                path,
                types: vec![],
                hash: None,
                error: None,
                ignored: Some(why),
            });
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of this thread's effective set
    /// while it lives (nothing to take without them), so a test running as root sees the
    /// permission errors a user's host sees. Capabilities are per thread.
    struct ModesChecked([CapData; 2]);

    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    const CAP_VERSION_3: u32 = 0x2008_0522;
    const DAC_CAPS: u32 = (1 << 1) | (1 << 2);

    impl ModesChecked {
        fn on_this_thread() -> ModesChecked {
            let mut before = [CapData::default(); 2];
            let mut header = CapHeader {
                version: CAP_VERSION_3,
                pid: 0,
            };
            // SAFETY: capget fills two CapData for version 3, as the kernel's ABI says.
            let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, before.as_mut_ptr()) };
            assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
            let mut without = before;
            without[0].effective &= !DAC_CAPS;
            set_caps(&without);
            ModesChecked(before)
        }
    }

    impl Drop for ModesChecked {
        fn drop(&mut self) {
            set_caps(&self.0);
        }
    }

    fn set_caps(data: &[CapData; 2]) {
        let mut header = CapHeader {
            version: CAP_VERSION_3,
            pid: 0,
        };
        // SAFETY: capset reads two CapData for version 3; pid 0 is this thread.
        let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
    }

    /// A dir moved away (renamed, unmounted) after it was opened still lists its names, but
    /// its files are no longer found at their paths: that is a dir that cannot be read, not
    /// one whose files were all removed (which would retire every type it serves; the
    /// watcher's first scan raced a test's `mv plugins elsewhere` so). A dir replaced while
    /// listed is listed again: its files are the new dir's.
    #[test]
    fn a_dir_moved_away_while_listed_is_unreadable_not_empty() {
        let root = std::env::temp_dir().join(format!("swasm-scan-moved-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (dir, elsewhere) = (root.join("plugins"), root.join("elsewhere"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("echo@1.wasm"), b"not looked at").unwrap();
        let mapped = BTreeMap::new();

        let moved = list_dir_with(&dir, &mapped, || std::fs::rename(&dir, &elsewhere).unwrap());
        let replaced = list_dir_with(&elsewhere, &mapped, || {
            std::fs::rename(&elsewhere, &dir).unwrap();
            std::fs::create_dir(&elsewhere).unwrap();
            std::fs::write(elsewhere.join("countdown@1.wasm"), b"new").unwrap();
        });
        std::fs::remove_dir_all(&root).unwrap();
        match moved {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
            Ok((_, entries)) => panic!("listed as {} files", entries.len()),
        }
        let (_, entries) = replaced.unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.file_name.as_str()).collect();
        assert_eq!(names, ["countdown@1.wasm"], "the new dir's files");
    }

    /// A dir whose names can be listed but whose files cannot be looked at (`chmod 644` on
    /// the dir) cannot be read: its files are not gone, so what they serve must stay.
    #[test]
    fn a_dir_that_cannot_be_searched_is_unreadable_not_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("swasm-scan-search-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("echo@1.wasm"), b"not looked at").unwrap();
        let mapped = BTreeMap::new();
        let (_, entries) = list_dir(&dir, &mapped).unwrap();
        assert_eq!(entries.len(), 1);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o644)).unwrap();
        let listed = {
            let _checked = ModesChecked::on_this_thread();
            list_dir(&dir, &mapped)
        };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        match listed {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
                assert!(e.to_string().contains("echo@1.wasm"), "names the file: {e}");
            }
            Ok((_, entries)) => panic!("listed as {} files", entries.len()),
        }
    }
}
