//! Which plugin serves which activity type, per task list, and keeping that live.
//!
//! Each task list's `plugin_dir` holds `<name>@<version>.wasm` files (or files mapped by
//! `[activity."name@version"] file = "x.wasm"`). The registry loads them at start, then a
//! `notify` watcher (debounced) re-scans a directory whenever something in it changes:
//! new files are added, changed files replace their type's code, removed files retire
//! their types. Each task list's table (`ActivityType -> Arc<Plugin>`) sits behind an
//! `ArcSwap`: a lookup is one atomic load, a swap never blocks a lookup, and a task keeps
//! the `Arc<Plugin>` it started with, so it finishes on the code it began with.
//!
//! A file that fails to load (not wasm, core module, wrong world, truncated, no
//! `@version`, a symlink leading outside the directory) is rejected with one log line and
//! a count in [`RegistryStats::rejects`]; the version that was serving keeps serving. A file
//! still being written (young mtime, or changing while read) is looked at again once it
//! settles instead of being rejected.

mod cache;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use tokio::sync::mpsc;

pub(crate) use cache::Cache;
pub use scan::{FileReport, inspect};

use crate::activity::ActivityType;
use crate::config::Config;
use crate::runtime::{LoadError, Plugin, Runtime};
use scan::{Stamp, Verdict};

/// How long a directory must be quiet before it is re-scanned.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A file that fails to load and was modified less than this long ago is probably still
/// being written: it is looked at again later instead of being rejected.
const SETTLE: Duration = Duration::from_millis(500);

/// Counters of what the registry did, for metrics and tests.
#[derive(Debug, Default)]
pub struct RegistryStats {
    /// Types that started being served (at start or added later).
    pub loads: AtomicU64,
    /// Types whose code was replaced by a changed file.
    pub swaps: AtomicU64,
    /// Files rejected (bad file, bad name, symlink escaping the dir, ...).
    pub rejects: AtomicU64,
    /// Types no longer served because their file went away.
    pub retirements: AtomicU64,
    /// Components compiled (cache misses).
    pub compiles: AtomicU64,
    /// Components loaded from the compiled-code cache.
    pub cache_hits: AtomicU64,
}

impl RegistryStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One served plugin, for `/status` and `swasm register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub task_list: String,
    pub ty: ActivityType,
    pub path: PathBuf,
    pub hash: String,
    pub size: u64,
    pub loaded_at: SystemTime,
}

type Table = HashMap<ActivityType, Arc<Plugin>>;

/// What the registry knows of one file of a plugin dir.
#[derive(Debug, Clone)]
struct FileState {
    stamp: Stamp,
    /// sha256 of the content last looked at.
    hash: Option<String>,
    /// Types this file serves now.
    types: Vec<ActivityType>,
}

struct TaskList {
    name: String,
    dir: PathBuf,
    /// File name -> types, from `[activity."n@v"] file = "..."`.
    mapped: BTreeMap<String, Vec<ActivityType>>,
    table: ArcSwap<Table>,
    /// File name -> state; the lock also serialises re-scans of this directory.
    files: tokio::sync::Mutex<HashMap<String, FileState>>,
}

/// The plugins every task list serves.
pub struct Registry {
    runtime: Arc<Runtime>,
    lists: BTreeMap<String, Arc<TaskList>>,
    cache: Option<Cache>,
    stats: RegistryStats,
    /// Kept alive so the watchers keep running; dropped with the registry.
    watchers: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

impl Registry {
    /// Loads every plugin dir of the config, then watches them.
    pub async fn start(config: &Config, runtime: Arc<Runtime>) -> Result<Arc<Registry>> {
        let registry = Self::load(config, runtime).await?;
        registry.watch()?;
        Ok(registry)
    }

    /// Loads every plugin dir once, without watching (tests, `swasm register`).
    pub async fn load(config: &Config, runtime: Arc<Runtime>) -> Result<Arc<Registry>> {
        let mut lists = BTreeMap::new();
        for tl in &config.task_lists {
            if !tl.plugin_dir.is_dir() {
                anyhow::bail!(
                    "{}: task list {:?}: plugin_dir {} does not exist or is not a directory",
                    config.source.display(),
                    tl.name,
                    tl.plugin_dir.display()
                );
            }
            let dir = tl.plugin_dir.canonicalize().with_context(|| {
                format!("cannot resolve plugin_dir {}", tl.plugin_dir.display())
            })?;
            lists.insert(
                tl.name.clone(),
                Arc::new(TaskList {
                    name: tl.name.clone(),
                    dir,
                    mapped: scan::mapped_files(config),
                    table: ArcSwap::from_pointee(Table::new()),
                    files: tokio::sync::Mutex::new(HashMap::new()),
                }),
            );
        }
        let cache = config.cache_dir().map(|d| Cache::new(&d, &runtime));
        let registry = Arc::new(Registry {
            runtime,
            lists,
            cache,
            stats: RegistryStats::default(),
            watchers: Mutex::new(Vec::new()),
        });
        for list in registry.lists.values() {
            registry.rescan(list).await;
        }
        Ok(registry)
    }

    /// The plugin serving `ty` on `task_list`, if any.
    pub fn lookup(&self, task_list: &str, ty: &ActivityType) -> Option<Arc<Plugin>> {
        self.lists.get(task_list)?.table.load().get(ty).cloned()
    }

    /// The types served on `task_list`, sorted.
    pub fn served(&self, task_list: &str) -> Vec<ActivityType> {
        let mut types: Vec<_> = self
            .lists
            .get(task_list)
            .map(|l| l.table.load().keys().cloned().collect())
            .unwrap_or_default();
        types.sort();
        types
    }

    /// Every served plugin of every task list.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let mut out = Vec::new();
        for list in self.lists.values() {
            for (ty, p) in list.table.load().iter() {
                out.push(PluginInfo {
                    task_list: list.name.clone(),
                    ty: ty.clone(),
                    path: p.path.clone(),
                    hash: p.hash.clone(),
                    size: p.size,
                    loaded_at: p.loaded_at,
                });
            }
        }
        out.sort_by(|a, b| (&a.task_list, &a.ty).cmp(&(&b.task_list, &b.ty)));
        out
    }

    pub fn stats(&self) -> &RegistryStats {
        &self.stats
    }

    /// Starts one debounced watcher per plugin dir; changes trigger a re-scan of that dir.
    fn watch(self: &Arc<Self>) -> Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut watchers = self.watchers.lock().expect("watchers lock");
        for list in self.lists.values() {
            let name = list.name.clone();
            let tx = tx.clone();
            let mut debouncer = notify_debouncer_full::new_debouncer(
                DEBOUNCE,
                None,
                move |res: notify_debouncer_full::DebounceEventResult| match res {
                    Ok(events) if !events.is_empty() => {
                        let _ = tx.send(name.clone());
                    }
                    Ok(_) => {}
                    Err(errors) => tracing::warn!(?errors, "plugin dir watcher error"),
                },
            )
            .context("cannot start the plugin dir watcher")?;
            debouncer
                .watch(&list.dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch plugin dir {}", list.dir.display()))?;
            watchers.push(Box::new(debouncer));
        }
        drop(watchers);
        let weak: Weak<Registry> = Arc::downgrade(self);
        let retry_tx = tx;
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut names = vec![first];
                while let Ok(n) = rx.try_recv() {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                let Some(registry) = weak.upgrade() else {
                    break;
                };
                for name in names {
                    if let Some(list) = registry.lists.get(&name).cloned() {
                        if registry.rescan(&list).await {
                            // Something was still being written: look again once it settles.
                            let tx = retry_tx.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(SETTLE).await;
                                let _ = tx.send(name);
                            });
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Brings one task list's table in line with its directory. Returns true when some
    /// file is still settling and the directory should be scanned again later.
    async fn rescan(&self, list: &Arc<TaskList>) -> bool {
        let mut files = list.files.lock().await;
        let entries = scan::list_dir(&list.dir, &list.mapped);
        let mut retry = false;
        let mut present = std::collections::HashSet::new();
        for entry in entries {
            present.insert(entry.file_name.clone());
            let known = files.get(&entry.file_name).cloned();
            let known = known.as_ref();
            if known.is_some_and(|k| k.stamp == entry.stamp) {
                continue;
            }
            let started = Instant::now();
            let verdict = scan::examine(&entry).await;
            let (bytes, hash) = match verdict {
                Verdict::Changing => {
                    retry = true;
                    continue;
                }
                Verdict::Reject(why) => {
                    self.reject(list, &entry.file_name, &why);
                    files.insert(
                        entry.file_name.clone(),
                        FileState {
                            stamp: entry.stamp,
                            hash: None,
                            types: known.map(|k| k.types.clone()).unwrap_or_default(),
                        },
                    );
                    continue;
                }
                Verdict::Read { bytes, hash } => (bytes, hash),
            };
            if known
                .is_some_and(|k| k.hash.as_deref() == Some(hash.as_str()) && !k.types.is_empty())
            {
                // Touched but unchanged content: nothing to swap.
                if let Some(k) = files.get_mut(&entry.file_name) {
                    k.stamp = entry.stamp;
                }
                continue;
            }
            let compiled = self.compile(bytes, hash.clone()).await;
            let compiled = match compiled {
                Ok(c) => c,
                Err(e) => {
                    if entry.young(SETTLE) {
                        retry = true;
                    } else {
                        self.reject(list, &entry.file_name, &e.to_string());
                        let types = known.map(|k| k.types.clone()).unwrap_or_default();
                        files.insert(
                            entry.file_name.clone(),
                            FileState {
                                stamp: entry.stamp,
                                hash: Some(hash),
                                types,
                            },
                        );
                    }
                    continue;
                }
            };
            let path = list.dir.join(&entry.file_name);
            let mut table = Table::clone(&list.table.load());
            for ty in &entry.types {
                let plugin = self.runtime.plugin(
                    &compiled,
                    ty.clone(),
                    path.clone(),
                    hash.clone(),
                    entry.stamp.size,
                );
                let replaced = table.insert(ty.clone(), plugin).is_some();
                let what = if replaced { "swapped" } else { "loaded" };
                RegistryStats::bump(if replaced {
                    &self.stats.swaps
                } else {
                    &self.stats.loads
                });
                tracing::info!(
                    task_list = %list.name,
                    activity_type = %ty,
                    version = %ty.version,
                    hash = %&hash[..12],
                    file = %path.display(),
                    load_ms = started.elapsed().as_millis() as u64,
                    "plugin {what}"
                );
            }
            list.table.store(Arc::new(table));
            files.insert(
                entry.file_name.clone(),
                FileState {
                    stamp: entry.stamp,
                    hash: Some(hash),
                    types: entry.types.clone(),
                },
            );
        }
        let gone: Vec<String> = files
            .keys()
            .filter(|f| !present.contains(*f))
            .cloned()
            .collect();
        for file_name in gone {
            let state = files.remove(&file_name).expect("listed key");
            let path = list.dir.join(&file_name);
            let mut table = Table::clone(&list.table.load());
            for ty in &state.types {
                if table.get(ty).is_some_and(|p| p.path == path) {
                    table.remove(ty);
                    RegistryStats::bump(&self.stats.retirements);
                    tracing::info!(task_list = %list.name, activity_type = %ty, file = %path.display(), "plugin retired: its file is gone");
                }
            }
            list.table.store(Arc::new(table));
        }
        retry
    }

    fn reject(&self, list: &TaskList, file_name: &str, why: &str) {
        RegistryStats::bump(&self.stats.rejects);
        tracing::error!(
            task_list = %list.name,
            file = %list.dir.join(file_name).display(),
            "plugin rejected, the version serving before (if any) keeps serving: {why}"
        );
    }

    /// Compiled code for `bytes`: from the disk cache, or compiled (off the executor) and
    /// then cached.
    async fn compile(
        &self,
        bytes: Vec<u8>,
        hash: String,
    ) -> Result<crate::runtime::Compiled, LoadError> {
        compile_cached(&self.runtime, self.cache.as_ref(), &self.stats, bytes, hash).await
    }
}

/// Loads compiled code from `cache` or compiles it, counting what happened in `stats`.
pub(crate) async fn compile_cached(
    runtime: &Arc<Runtime>,
    cache: Option<&Cache>,
    stats: &RegistryStats,
    bytes: Vec<u8>,
    hash: String,
) -> Result<crate::runtime::Compiled, LoadError> {
    let rt = runtime.clone();
    let cache = cache.cloned();
    let counted = tokio::task::spawn_blocking(move || {
        if let Some(hit) = cache.as_ref().and_then(|c| c.get(&rt, &hash)) {
            return (Ok(hit), true);
        }
        let compiled = rt.compile(&bytes);
        if let (Some(c), Ok(compiled)) = (&cache, &compiled) {
            c.put(&rt, &hash, compiled);
        }
        (compiled, false)
    })
    .await;
    let (compiled, hit) =
        counted.map_err(|e| LoadError::Invalid(format!("the compile task failed: {e}")))?;
    RegistryStats::bump(if hit {
        &stats.cache_hits
    } else {
        &stats.compiles
    });
    compiled
}
