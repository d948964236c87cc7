//! Which plugin serves which activity type, per task list, and keeping that live.
//!
//! Each task list's `plugin_dir` holds `<name>@<version>.wasm` files (or files mapped by
//! `[activity."name@version"] file = "x.wasm"`). The registry loads them at start, then a
//! `notify` watcher re-scans a directory whenever something in it changes:
//! new files are added, changed files replace their type's code, removed files retire
//! their types. Each task list's table (`ActivityType -> Arc<Plugin>`) sits behind an
//! `ArcSwap`: a lookup is one atomic load, a swap never blocks a lookup, and a task keeps
//! the `Arc<Plugin>` it started with, so it finishes on the code it began with.
//!
//! A file that fails to load (not wasm, core module, wrong world, truncated, no
//! `@version`, a symlink leading outside the directory) is rejected with one log line and
//! a count in [`RegistryStats::rejects`]; the version that was serving keeps serving. A file
//! still being written (young mtime, or changing while read; a truncated one for longer) is
//! looked at again once it settles instead of being rejected.
//!
//! `plugin_dir` is resolved again at each scan, and the directory holding it is watched
//! for its name, so a symlink switched to another release is followed. A directory that
//! cannot be read says nothing about its files: what serves keeps serving (counted in
//! [`RegistryStats::unreadable`]) and the directory is looked at again until it can be:
//! at once when the watchers see it come back, else after a wait that doubles from 0.5 s
//! to [`UNREADABLE_RETRY_MAX`].
//!
//! Big components (Python, JavaScript: 10-20 MB) take Cranelift many seconds to compile.
//! When no Cranelift code of such a file is cached, it is compiled with Winch (a fraction of
//! the time) and served from that code at once; Cranelift then compiles it in the
//! background (one compile at a time, one thread, on a thread of its own so shutdown never
//! waits for it), caches the result, and the type's entry is swapped to the Cranelift
//! plugin if the file still holds the same content. Counted in
//! [`RegistryStats::winch_loads`] and [`RegistryStats::upgrades`].
//!
//! Loading code instantiates it once to check it, which takes an instance slot. When tasks
//! hold every slot, a load or an upgrade is put off, not rejected: the file is scanned
//! again, and an upgrade's code tried again, once a slot may be free (counted in
//! [`RegistryStats::busy`]). The code is kept meanwhile, so a put-off load is compiled (or
//! read from the cache) once, not on every try, and its file is read and hashed again only
//! if it changes.
//!
//! Once the registry serves (after the start-up load), every file without cached
//! Cranelift code takes that path, small ones too: a live load competes for the 2 cores
//! with the tasks flowing, where even a 50 KB Rust component needed 100-200 ms of Cranelift
//! before its first task, against 15-30 ms of Winch. At start-up nothing flows yet, and
//! small files go straight to Cranelift.

mod cache;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

pub(crate) use cache::Cache;
pub use scan::{FileReport, inspect};

use crate::activity::ActivityType;
use crate::config::Config;
use crate::runtime::{Code, Compiled, Compiler, LoadError, Plugin, Runtime};
use scan::{Stamp, Verdict};

/// How long a directory must be quiet before it is re-scanned, unless a file was just
/// renamed into it or closed after writing (see [`Change`]). A file still being written when
/// the scan comes is not lost but looked at again once it settles (see `SETTLE`).
const DEBOUNCE: Duration = Duration::from_millis(10);
/// A file that fails to load and was modified less than this long ago is probably still
/// being written: it is looked at again later instead of being rejected.
const SETTLE: Duration = Duration::from_millis(500);
/// A file that ends in the middle of a component is almost always a copy still under way
/// (a slow link, a writer that pauses): it is rejected only once unchanged this long.
const TRUNCATED_SETTLE: Duration = Duration::from_secs(5);
/// The longest wait between two looks at a plugin dir that cannot be read. The watchers see
/// the usual ways back (the dir created or renamed into place, its permissions changed) at
/// once; this wait is for the rest (a network mount coming back), and keeps a host whose dir
/// is gone for good from waking twice a second.
const UNREADABLE_RETRY_MAX: Duration = Duration::from_secs(30);
/// The longest wait between two tries to load a background upgrade's code while every
/// instance slot is taken.
const UPGRADE_RETRY_MAX: Duration = Duration::from_secs(10);

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
    /// Components served from Winch code (compiled or cached) while Cranelift code is not
    /// ready yet.
    pub winch_loads: AtomicU64,
    /// Types swapped from Winch code to Cranelift code compiled in the background.
    pub upgrades: AtomicU64,
    /// Loads and upgrades put off because every instance slot was taken when their code
    /// was to be checked (see [`LoadError::Busy`]); each is tried again later.
    pub busy: AtomicU64,
    /// Scans that could not read their plugin dir (what served kept serving).
    pub unreadable: AtomicU64,
}

impl RegistryStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A file of a plugin dir that was rejected, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFile {
    pub task_list: String,
    pub path: PathBuf,
    pub why: String,
}

/// One served plugin, for `/status` and for registering what is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub task_list: String,
    pub ty: ActivityType,
    pub path: PathBuf,
    pub hash: String,
    pub size: u64,
    pub loaded_at: SystemTime,
    /// Which compiler made the code it runs (Winch until its Cranelift upgrade).
    pub compiler: Compiler,
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

/// Code of a file whose check found every instance slot taken, kept for the file's next
/// scan (see [`LoadError::Busy`]).
struct Parked {
    /// The file's stamp when it was read: while it stays the same, the file is not read
    /// (and hashed) again.
    stamp: Stamp,
    bytes: Arc<Vec<u8>>,
    /// sha256 of `bytes`, which the code was made from.
    hash: String,
    code: Code,
    /// Compiled for this load (not read from the cache): cache it once it serves.
    fresh: bool,
}

struct TaskList {
    name: String,
    /// `plugin_dir` as configured: it is resolved again at each scan, so a symlink switched
    /// to another release is followed.
    configured: PathBuf,
    /// Where `configured` led at the last scan (canonical).
    dir: ArcSwap<PathBuf>,
    /// Set by the watcher when the dir itself changed (removed, made again, renamed into
    /// place) rather than an entry in it: the watch may have gone with the old dir, even when
    /// no scan found the path empty (`rm -rf plugins; mkdir plugins` between two scans, the
    /// new dir even reusing the old one's inode number). The next scan that reads the dir
    /// watches it again.
    watch_stale: AtomicBool,
    /// Scans in a row that could not read the dir: the first is logged, and the wait
    /// before the next look grows with them.
    unreadable: AtomicU32,
    /// When the next scan that [`Registry::rescan`] asked for is due, if one is planned.
    next_look: Mutex<Option<Instant>>,
    /// File name -> types, from `[activity."n@v"] file = "..."`.
    mapped: BTreeMap<String, Vec<ActivityType>>,
    table: ArcSwap<Table>,
    /// File name -> state; the lock also serialises re-scans of this directory.
    files: tokio::sync::Mutex<HashMap<String, FileState>>,
    /// File name -> code waiting for a free instance slot. Only re-scans touch it, under
    /// the `files` lock: a scan takes a file's entry out and puts it back while the file
    /// is still put off.
    parked: Mutex<HashMap<String, Parked>>,
    /// File name -> why it was rejected, while it stays rejected (for `/status`): the
    /// file's next load, or its removal, clears it.
    rejected: Mutex<BTreeMap<String, String>>,
}

impl TaskList {
    /// Plans a scan `delay` from now, unless one is planned sooner: many scans asking for
    /// another (a copy's writes, an unreadable dir's events) make one look, not one each.
    fn plan_look(&self, delay: Duration) -> Option<Instant> {
        let at = Instant::now() + delay;
        let mut next = self.next_look.lock().expect("next_look lock");
        if next.is_some_and(|planned| planned <= at) {
            return None;
        }
        *next = Some(at);
        Some(at)
    }

    /// The look planned for `at` is being made.
    fn looked(&self, at: Instant) {
        let mut next = self.next_look.lock().expect("next_look lock");
        if *next == Some(at) {
            *next = None;
        }
    }

    /// Where `plugin_dir` led at the last scan.
    fn dir(&self) -> Arc<PathBuf> {
        self.dir.load_full()
    }
}

/// The plugins every task list serves.
pub struct Registry {
    runtime: Arc<Runtime>,
    lists: BTreeMap<String, Arc<TaskList>>,
    cache: Option<Cache>,
    stats: RegistryStats,
    /// Task list name -> its watcher (of the plugin dir and of the dir holding it); kept
    /// alive so they keep running, and moved when `plugin_dir` leads somewhere else.
    watchers: Mutex<HashMap<String, notify::RecommendedWatcher>>,
    /// One permit: background Cranelift compiles run one at a time, so they never take
    /// both cores from the tasks.
    upgrade_gate: Arc<tokio::sync::Semaphore>,
    /// Set once the start-up load is done: later loads happen while tasks run.
    live: AtomicBool,
    /// The config the dirs came from: each type's `memory_mb`, checked against what its
    /// component needs to start.
    config: Config,
    /// Marked changed whenever a plugin starts serving (a new file, a new version, a
    /// swap): see [`Registry::subscribe`].
    loaded: tokio::sync::watch::Sender<()>,
    warned_unconfigured: scan::UnconfiguredVersions,
}

impl Registry {
    /// Loads every plugin dir of the config, then watches them.
    pub async fn start(config: &Config, runtime: Arc<Runtime>) -> Result<Arc<Registry>> {
        let registry = Self::load(config, runtime).await?;
        registry.live.store(true, Ordering::Relaxed);
        registry.watch()?;
        Ok(registry)
    }

    /// Loads every plugin dir once, without watching (tests and the dispatch bench).
    pub async fn load(config: &Config, runtime: Arc<Runtime>) -> Result<Arc<Registry>> {
        let mut lists = BTreeMap::new();
        for (i, tl) in config.task_lists.iter().enumerate() {
            if !tl.plugin_dir.is_dir() {
                anyhow::bail!(
                    "{}: {} does not exist or is not a directory (task list {:?})",
                    config.task_list_key(i, "plugin_dir"),
                    tl.plugin_dir.display(),
                    tl.name,
                );
            }
            let dir = tl.plugin_dir.canonicalize().with_context(|| {
                format!("cannot resolve plugin_dir {}", tl.plugin_dir.display())
            })?;
            lists.insert(
                tl.name.clone(),
                Arc::new(TaskList {
                    name: tl.name.clone(),
                    configured: tl.plugin_dir.clone(),
                    dir: ArcSwap::from_pointee(dir),
                    unreadable: AtomicU32::new(0),
                    watch_stale: AtomicBool::new(false),
                    next_look: Mutex::new(None),
                    mapped: scan::mapped_files(config),
                    table: ArcSwap::from_pointee(Table::new()),
                    files: tokio::sync::Mutex::new(HashMap::new()),
                    parked: Mutex::new(HashMap::new()),
                    rejected: Mutex::new(BTreeMap::new()),
                }),
            );
        }
        let cache = Cache::from_config(&config.cache);
        let registry = Arc::new(Registry {
            runtime,
            lists,
            cache,
            stats: RegistryStats::default(),
            watchers: Mutex::new(HashMap::new()),
            upgrade_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            live: AtomicBool::new(false),
            loaded: tokio::sync::watch::Sender::new(()),
            config: config.clone(),
            warned_unconfigured: scan::UnconfiguredVersions::default(),
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
                    compiler: p.compiler,
                });
            }
        }
        out.sort_by(|a, b| (&a.task_list, &a.ty).cmp(&(&b.task_list, &b.ty)));
        out
    }

    /// The files each plugin dir holds that do not serve, and why, by task list and file.
    pub fn rejected(&self) -> Vec<RejectedFile> {
        let mut out = Vec::new();
        for list in self.lists.values() {
            let dir = list.dir();
            for (file, why) in list.rejected.lock().expect("rejected lock").iter() {
                out.push(RejectedFile {
                    task_list: list.name.clone(),
                    path: dir.join(file),
                    why: why.clone(),
                });
            }
        }
        out
    }

    /// Whether another scan of `task_list`'s dir is planned: a file there is still being
    /// written, or the dir could not be read or has just come back.
    pub fn scan_planned(&self, task_list: &str) -> bool {
        self.lists
            .get(task_list)
            .is_some_and(|list| list.next_look.lock().expect("next_look lock").is_some())
    }

    pub fn stats(&self) -> &RegistryStats {
        &self.stats
    }

    /// A receiver marked changed each time a plugin starts serving after this call, so a
    /// watcher can act on types that appear while the host runs (`--register` registers
    /// them). Read [`Registry::plugins`] for what serves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.loaded.subscribe()
    }

    /// Starts one watcher per plugin dir; a change re-scans that dir once the dir has been
    /// quiet for [`DEBOUNCE`], or at once when the change completes a file (a rename into
    /// the dir, a writer closing the file).
    ///
    /// The watchers and the debounce thread block in the kernel (inotify on Linux, a
    /// channel) while nothing changes, so an idle host does not wake up for its plugin
    /// dirs. Access events (a file or the dir opened, read or closed unwritten)
    /// are ignored: the re-scan itself reads the dir and its files, and reacting to that
    /// would re-scan the dir forever.
    fn watch(self: &Arc<Self>) -> Result<()> {
        // Watchers -> debounce thread -> re-scan loop.
        let (changed_tx, changed) = std::sync::mpsc::channel::<(String, Change)>();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut watchers = self.watchers.lock().expect("watchers lock");
        for list in self.lists.values() {
            let name = list.name.clone();
            let changed_tx = changed_tx.clone();
            // The dir holding `plugin_dir` is watched too, for `plugin_dir` itself being
            // replaced (a symlink switched to another release, a dir renamed into place);
            // its other entries are none of this task list's business.
            let holder = list.configured.parent().and_then(|p| p.canonicalize().ok());
            let own_name = list.configured.file_name().map(|n| n.to_os_string());
            let concerns = {
                let holder = holder.clone();
                move |path: &Path| {
                    holder.as_deref() != path.parent() || path.file_name() == own_name.as_deref()
                }
            };
            // The dir itself is named by its entry in the holder, or (in events of its own
            // watch) by the dir it led to.
            let entry = holder.as_deref().zip(list.configured.file_name());
            let entry = entry.map(|(holder, own)| holder.join(own));
            let this = list.clone();
            let mut watcher =
                notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                    Ok(event) => {
                        let ours =
                            event.paths.is_empty() || event.paths.iter().any(|p| concerns(p));
                        if let Some(change) = Change::of(&event.kind)
                            && ours
                        {
                            if event
                                .paths
                                .iter()
                                .any(|p| entry.as_ref() == Some(p) || *p == **this.dir.load())
                            {
                                // Before the change is sent, so the scan it brings sees it.
                                this.watch_stale.store(true, Ordering::Relaxed);
                            }
                            let _ = changed_tx.send((name.clone(), change));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "plugin dir watcher error"),
                })
                .context("cannot start the plugin dir watcher")?;
            let dir = list.dir();
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch plugin dir {}", dir.display()))?;
            if let Some(holder) = &holder
                && let Err(error) = watcher.watch(holder, RecursiveMode::NonRecursive)
            {
                tracing::warn!(%error, dir = %holder.display(), "cannot watch the dir holding plugin_dir: a switch of plugin_dir is seen only at the next change inside it");
            }
            watchers.insert(list.name.clone(), watcher);
        }
        drop(watchers);
        // Only the watchers hold senders now: the thread ends with the registry.
        drop(changed_tx);
        let debounced = tx.clone();
        std::thread::Builder::new()
            .name("swasm-watch".into())
            .spawn(move || debounce(&changed, &debounced))
            .context("cannot start the plugin dir debounce thread")?;
        // One more scan of every dir now that the watchers run: it catches changes made
        // between the initial scan and this point, and files that scan found still being
        // written (the loop below keeps rescanning those until they settle).
        for name in self.lists.keys() {
            let _ = tx.send(name.clone());
        }
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
                    if let Some(list) = registry.lists.get(&name).cloned()
                        && let Some(delay) = registry.rescan(&list).await
                        && let Some(at) = list.plan_look(delay)
                    {
                        // Something was still being written, or the dir could not be read:
                        // look again later.
                        let tx = retry_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep_until(at.into()).await;
                            list.looked(at);
                            let _ = tx.send(name);
                        });
                    }
                }
            }
        });
        Ok(())
    }

    /// Brings one task list's table in line with its directory. Returns when to scan it
    /// again: some file is still settling, or the directory could not be read.
    async fn rescan(self: &Arc<Self>, list: &Arc<TaskList>) -> Option<Duration> {
        let (retry, to_cache) = self.rescan_locked(list).await;
        // The cache writes (serialize, checksum, two synced files) come after the dir's
        // lock is released: the new code already serves, and a file dropped in meanwhile
        // need not wait for them.
        for (compiled, hash) in to_cache {
            store(&self.runtime, self.cache.as_ref(), &compiled, &hash).await;
        }
        retry
    }

    /// [`Self::rescan`] under the dir's lock. Returns when to look again, and the
    /// freshly compiled code to write to the cache.
    async fn rescan_locked(
        self: &Arc<Self>,
        list: &Arc<TaskList>,
    ) -> (Option<Duration>, Vec<(Compiled, String)>) {
        let mut to_cache = Vec::new();
        let mut files = list.files.lock().await;
        // Off the executor: a dir on a network file system that hangs must not hold one of
        // the threads the SWF traffic of every task list runs on.
        let listing = {
            let list = list.clone();
            tokio::task::spawn_blocking(move || scan::list_dir(&list.configured, &list.mapped))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(format!("listing failed: {e}"))))
        };
        let (dir, entries) = match listing {
            Ok(listed) => listed,
            Err(error) => {
                // Not "the dir is empty": what serves keeps serving, and the dir is looked
                // at again until it can be read.
                RegistryStats::bump(&self.stats.unreadable);
                let streak = list.unreadable.fetch_add(1, Ordering::Relaxed);
                if streak == 0 {
                    tracing::warn!(task_list = %list.name, dir = %list.configured.display(), %error, "cannot read plugin dir; the plugins loaded keep serving");
                }
                return (Some(unreadable_wait(streak + 1)), to_cache);
            }
        };
        let back = list.unreadable.swap(0, Ordering::Relaxed) > 0;
        let stale = list.watch_stale.swap(false, Ordering::Relaxed);
        if back {
            tracing::info!(task_list = %list.name, dir = %dir.display(), "plugin dir readable again");
        }
        let mut retry = false;
        // `plugin_dir` leads to another directory now: its files are new files, and those
        // of the old one are gone (types no file of the new one claims are retired below).
        if dir != **list.dir.load() {
            let old = list.dir();
            tracing::info!(task_list = %list.name, from = %old.display(), to = %dir.display(), "plugin_dir leads to another directory now");
            self.rewatch(list, &old, &dir);
            list.dir.store(Arc::new(dir.clone()));
            files.clear();
        } else if back || stale {
            // It may be another dir at the same path (made again, mounted again, renamed into
            // place), whether or not a scan found the path empty in between: the watch on
            // the one that went away went with it. A file dropped in before the new watch was
            // in place is caught by one more scan.
            if !back {
                tracing::info!(task_list = %list.name, dir = %dir.display(), "the plugin dir itself changed (made again, renamed into place, its mode); watching it again");
            }
            self.rewatch(list, &dir, &dir);
            retry = true;
        }
        let mut present = std::collections::HashSet::new();
        let mut claimed = std::collections::HashSet::new();
        for entry in entries {
            present.insert(entry.file_name.clone());
            claimed.extend(entry.types.iter().cloned());
            let known = files.get(&entry.file_name).cloned();
            let known = known.as_ref();
            if known.is_some_and(|k| k.stamp == entry.stamp) {
                continue;
            }
            let started = Instant::now();
            // A file put off before for want of a slot: its code is kept, and its bytes
            // too while the file is unchanged.
            let parked = list
                .parked
                .lock()
                .expect("parked lock")
                .remove(&entry.file_name);
            let kept = parked
                .as_ref()
                .filter(|p| p.stamp == entry.stamp && entry.problem.is_none())
                .map(|p| (p.bytes.clone(), p.hash.clone()));
            let (bytes, hash) = match kept {
                Some(kept) => kept,
                None => match scan::examine(&entry).await {
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
                    Verdict::Read { bytes, hash } => (Arc::new(bytes), hash),
                },
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
            let compiled = self
                .compile(list, &entry, parked, bytes.clone(), hash.clone())
                .await;
            let (compiled, fresh) = match compiled {
                Ok(c) => c,
                Err(e) => {
                    if e.is_transient() {
                        RegistryStats::bump(&self.stats.busy);
                        tracing::info!(task_list = %list.name, file = %entry.file_name, error = %e, "plugin not loaded yet");
                        retry = true;
                    } else if entry.young(if matches!(e, LoadError::Truncated(_)) {
                        TRUNCATED_SETTLE
                    } else {
                        SETTLE
                    }) {
                        tracing::debug!(task_list = %list.name, file = %entry.file_name, error = %e, "plugin still being written; looking again");
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
            let path = dir.join(&entry.file_name);
            let mut table = Table::clone(&list.table.load());
            let mut served_all = true;
            let mut served = Vec::new();
            for ty in &entry.types {
                if let Err(why) = compiled.fits(ty, self.config.settings_for(ty).memory_mb) {
                    self.reject(list, &entry.file_name, &why);
                    served_all = false;
                    continue;
                }
                let plugin = self.runtime.plugin(
                    &compiled,
                    ty.clone(),
                    path.clone(),
                    hash.clone(),
                    entry.stamp.size,
                );
                let replaced = table.insert(ty.clone(), plugin).is_some();
                RegistryStats::bump(if replaced {
                    &self.stats.swaps
                } else {
                    &self.stats.loads
                });
                served.push((ty, replaced));
            }
            // Counted before the new code serves (whoever sees it serve sees it counted),
            // logged once it serves (whoever acts on the line finds it in place).
            list.table.store(Arc::new(table));
            for (ty, replaced) in served {
                let what = if replaced { "swapped" } else { "loaded" };
                tracing::info!(
                    task_list = %list.name,
                    activity_type = %ty,
                    version = %ty.version,
                    hash = %&hash[..12],
                    file = %path.display(),
                    compiler = %compiled.compiler,
                    load_ms = started.elapsed().as_millis() as u64,
                    "plugin {what}"
                );
                self.warned_unconfigured.warn(&self.config, ty, &path);
            }
            self.loaded.send_replace(());
            if !entry.types.is_empty() && served_all {
                list.rejected
                    .lock()
                    .expect("rejected lock")
                    .remove(&entry.file_name);
            }
            if fresh {
                to_cache.push((compiled.clone(), hash.clone()));
            }
            if compiled.compiler != self.runtime.primary_compiler() {
                self.upgrade_later(list, &entry.file_name, &hash, bytes);
            }
            files.insert(
                entry.file_name.clone(),
                FileState {
                    stamp: entry.stamp,
                    hash: Some(hash),
                    types: entry.types.clone(),
                },
            );
        }
        list.parked
            .lock()
            .expect("parked lock")
            .retain(|f, _| present.contains(f));
        list.rejected
            .lock()
            .expect("rejected lock")
            .retain(|f, _| present.contains(f));
        let gone: Vec<String> = files
            .keys()
            .filter(|f| !present.contains(*f))
            .cloned()
            .collect();
        for file_name in gone {
            let state = files.remove(&file_name).expect("listed key");
            self.retire(list, &dir.join(&file_name), &state.types);
        }
        // Types still served from a directory `plugin_dir` led to before. One a file here
        // claims keeps serving until that file loads (it may be broken, still being
        // written, or waiting for a slot); the others, and that one once no file claims it,
        // are retired.
        let left_behind: Vec<(ActivityType, PathBuf)> = list
            .table
            .load()
            .iter()
            .filter(|(ty, p)| p.path.parent() != Some(dir.as_path()) && !claimed.contains(*ty))
            .map(|(ty, p)| (ty.clone(), p.path.clone()))
            .collect();
        for (ty, path) in left_behind {
            self.retire(list, &path, std::slice::from_ref(&ty));
        }
        (retry.then_some(SETTLE), to_cache)
    }

    /// Stops serving `types` from `path`, a file that is gone (a type another file serves
    /// now stays).
    fn retire(&self, list: &TaskList, path: &Path, types: &[ActivityType]) {
        let mut table = Table::clone(&list.table.load());
        for ty in types {
            if table.get(ty).is_some_and(|p| p.path == path) {
                table.remove(ty);
                RegistryStats::bump(&self.stats.retirements);
                tracing::info!(task_list = %list.name, activity_type = %ty, file = %path.display(), "plugin retired: its file is no longer in the plugin dir");
            }
        }
        list.table.store(Arc::new(table));
    }

    /// Moves `list`'s watcher from its old plugin dir to the new one.
    fn rewatch(&self, list: &TaskList, old: &Path, new: &Path) {
        let mut watchers = self.watchers.lock().expect("watchers lock");
        if let Some(watcher) = watchers.get_mut(&list.name) {
            let _ = watcher.unwatch(old);
            if let Err(error) = watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(task_list = %list.name, dir = %new.display(), %error, "cannot watch plugin dir: changes are seen only when the dir holding it changes");
            }
        }
    }

    fn reject(&self, list: &TaskList, file_name: &str, why: &str) {
        RegistryStats::bump(&self.stats.rejects);
        list.rejected
            .lock()
            .expect("rejected lock")
            .insert(file_name.to_string(), why.to_string());
        tracing::error!(
            task_list = %list.name,
            file = %list.dir().join(file_name).display(),
            "plugin rejected, the version serving before (if any) keeps serving: {why}"
        );
    }

    /// Checked code for file `entry` of `list` (content `bytes`, sha256 `hash`), and whether
    /// it was compiled now (then the caller stores it, once it serves). The code comes
    /// from `parked`, the file's last try, if that was of the same content, else from the
    /// disk cache or the compiler (off the executor); a check that finds every instance
    /// slot taken parks it again for the next try.
    async fn compile(
        &self,
        list: &TaskList,
        entry: &scan::Entry,
        parked: Option<Parked>,
        bytes: Arc<Vec<u8>>,
        hash: String,
    ) -> Result<(Compiled, bool), LoadError> {
        let (code, fresh) = match parked.filter(|p| p.hash == hash) {
            Some(p) => (p.code, p.fresh),
            None => {
                let live = self.live.load(Ordering::Relaxed);
                load_code(
                    &self.runtime,
                    self.cache.as_ref(),
                    &self.stats,
                    bytes.clone(),
                    &hash,
                    live,
                )
                .await?
            }
        };
        match check(&self.runtime, &self.stats, code.clone()).await {
            Ok(compiled) => Ok((compiled, fresh)),
            Err(e) => {
                if e.is_transient() {
                    let parked = Parked {
                        stamp: entry.stamp,
                        bytes,
                        hash,
                        code,
                        fresh,
                    };
                    list.parked
                        .lock()
                        .expect("parked lock")
                        .insert(entry.file_name.clone(), parked);
                }
                Err(e)
            }
        }
    }

    /// Compiles `file_name` (content `hash`) with Cranelift in the background and swaps its
    /// types to that code, unless the file changed meanwhile. Winch code serves until then.
    fn upgrade_later(
        self: &Arc<Self>,
        list: &Arc<TaskList>,
        file_name: &str,
        hash: &str,
        bytes: Arc<Vec<u8>>,
    ) {
        let weak = Arc::downgrade(self);
        let gate = self.upgrade_gate.clone();
        let runtime = self.runtime.clone();
        let cache = self.cache.clone();
        let (list, file_name, hash) = (list.clone(), file_name.to_string(), hash.to_string());
        tokio::spawn(async move {
            let Ok(permit) = gate.acquire_owned().await else {
                return;
            };
            if weak.strong_count() == 0 || !is_current(&list, &file_name, &hash).await {
                return;
            }
            let started = Instant::now();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (rt, h) = (runtime.clone(), hash.clone());
            // A thread of its own, not `spawn_blocking`: a runtime shutting down waits for
            // blocking tasks, and this one can take tens of seconds.
            let spawned = std::thread::Builder::new()
                .name("swasm-upgrade".into())
                .spawn(move || {
                    let code = rt.compile_in_background(&bytes);
                    if let (Ok(code), Some(c)) = (&code, &cache) {
                        c.put_code(&rt, Compiler::Cranelift, &h, code);
                    }
                    let _ = tx.send(code);
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a background compile; Winch code keeps serving");
                return;
            }
            let Ok(code) = rx.await else { return };
            // The gate spaces out compiles; waiting for a free slot below holds no core.
            drop(permit);
            if let Some(registry) = weak.upgrade() {
                RegistryStats::bump(&registry.stats.compiles);
            }
            let code = match code {
                Ok(code) => Arc::new(code),
                Err(e) => {
                    tracing::warn!(
                        task_list = %list.name,
                        file = %list.dir().join(&file_name).display(),
                        error = %format!("{e:#}"),
                        "background Cranelift compile failed; the Winch code keeps serving"
                    );
                    return;
                }
            };
            install_when_a_slot_is_free(weak, runtime, &list, &file_name, &hash, code, started)
                .await;
        });
    }

    /// Swaps the types of `file_name` still served from Winch code of `hash` to `compiled`.
    async fn install_upgrade(
        &self,
        list: &TaskList,
        file_name: &str,
        hash: &str,
        compiled: Compiled,
        started: Instant,
    ) {
        let files = list.files.lock().await;
        let Some(state) = files.get(file_name) else {
            return;
        };
        if state.hash.as_deref() != Some(hash) {
            tracing::info!(task_list = %list.name, file = %file_name, "background compile superseded: the file changed");
            return;
        }
        let mut table = Table::clone(&list.table.load());
        let mut upgraded = Vec::new();
        for ty in &state.types {
            let Some(old) = table.get(ty) else { continue };
            if old.hash != hash || old.compiler == compiled.compiler {
                continue;
            }
            let plugin = self.runtime.plugin(
                &compiled,
                ty.clone(),
                old.path.clone(),
                hash.to_string(),
                old.size,
            );
            table.insert(ty.clone(), plugin);
            RegistryStats::bump(&self.stats.upgrades);
            upgraded.push(ty);
        }
        // Counted before it serves, logged once it does, as for loads.
        list.table.store(Arc::new(table));
        for ty in upgraded {
            tracing::info!(
                task_list = %list.name,
                activity_type = %ty,
                hash = %&hash[..12.min(hash.len())],
                compiler = %compiled.compiler,
                compile_ms = started.elapsed().as_millis() as u64,
                "plugin upgraded from Winch to Cranelift code"
            );
        }
    }
}

/// Loads the Cranelift code of a background upgrade and installs it. Loading checks the
/// code in an instance of its own (`Runtime::check_run`), which needs a free instance
/// slot: while tasks hold every one, this waits and checks the same code again, for as long
/// as the file holds the same content and the registry lives.
async fn install_when_a_slot_is_free(
    weak: Weak<Registry>,
    runtime: Arc<Runtime>,
    list: &TaskList,
    file_name: &str,
    hash: &str,
    code: Arc<Vec<u8>>,
    started: Instant,
) {
    let warn = |e: &dyn std::fmt::Display| {
        tracing::warn!(
            task_list = %list.name,
            file = %list.dir().join(file_name).display(),
            error = %e,
            "loading the background Cranelift code failed; the Winch code keeps serving"
        );
    };
    let rt = runtime.clone();
    // SAFETY: `code` was just produced by this runtime's Cranelift engine (or one with the
    // same compatibility hash).
    let loaded = tokio::task::spawn_blocking(move || unsafe {
        rt.deserialize_code(&code, Compiler::Cranelift)
    })
    .await;
    let code = match loaded {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => return warn(&format!("{e:#}")),
        Err(e) => return warn(&format!("the load task failed: {e}")),
    };
    let mut delay = SETTLE;
    loop {
        let Some(registry) = weak.upgrade() else {
            return;
        };
        match check(&runtime, &registry.stats, code.clone()).await {
            Ok(compiled) => {
                registry
                    .install_upgrade(list, file_name, hash, compiled, started)
                    .await;
                return;
            }
            Err(e) if !e.is_transient() => return warn(&e),
            Err(_) => {}
        }
        RegistryStats::bump(&registry.stats.busy);
        tracing::info!(
            task_list = %list.name,
            file = %file_name,
            retry_in = ?delay,
            "Cranelift code ready, but every instance slot is taken; the Winch code serves meanwhile"
        );
        drop(registry);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(UPGRADE_RETRY_MAX);
        if !is_current(list, file_name, hash).await {
            return;
        }
    }
}

/// Whether `file_name` of `list` still holds content `hash`.
async fn is_current(list: &TaskList, file_name: &str, hash: &str) -> bool {
    let files = list.files.lock().await;
    files
        .get(file_name)
        .is_some_and(|f| f.hash.as_deref() == Some(hash))
}

/// Loads compiled code from `cache` or compiles it, and checks it, counting what happened
/// in `stats`. A big component without cached Cranelift code gets Winch code (see the
/// module doc).
pub(crate) async fn compile_cached(
    runtime: &Arc<Runtime>,
    cache: Option<&Cache>,
    stats: &RegistryStats,
    bytes: Vec<u8>,
    hash: String,
) -> Result<Compiled, LoadError> {
    let (code, fresh) = load_code(runtime, cache, stats, Arc::new(bytes), &hash, false).await?;
    let compiled = check(runtime, stats, code).await?;
    if fresh {
        store(runtime, cache, &compiled, &hash).await;
    }
    Ok(compiled)
}

/// Writes freshly compiled code to `cache` (off the executor); failures are logged inside.
async fn store(runtime: &Arc<Runtime>, cache: Option<&Cache>, compiled: &Compiled, hash: &str) {
    let Some(cache) = cache.cloned() else {
        return;
    };
    let (rt, compiled, hash) = (runtime.clone(), compiled.clone(), hash.to_string());
    if let Err(e) = tokio::task::spawn_blocking(move || cache.put(&rt, &hash, &compiled)).await {
        tracing::warn!(error = %e, "the compiled-code cache write failed");
    }
}

/// Code for `bytes` (sha256 `hash`) from `cache` or compiled, off the executor, and
/// whether it was compiled (then the caller stores it, once it serves). Not checked yet
/// (see [`check`]). `live`: tasks are running (see [`Runtime::winch_first`]).
async fn load_code(
    runtime: &Arc<Runtime>,
    cache: Option<&Cache>,
    stats: &RegistryStats,
    bytes: Arc<Vec<u8>>,
    hash: &str,
    live: bool,
) -> Result<(Code, bool), LoadError> {
    let rt = runtime.clone();
    let cache = cache.cloned();
    let hash = hash.to_string();
    let counted = tokio::task::spawn_blocking(move || {
        let primary = rt.primary_compiler();
        let winch_first = rt.winch_first(bytes.len() as u64, live);
        // Cranelift code first: it is what every plugin ends up on.
        let mut wanted = vec![primary];
        if winch_first {
            wanted.push(Compiler::Winch);
        }
        for compiler in wanted {
            if let Some(hit) = cache.as_ref().and_then(|c| c.get(&rt, compiler, &hash)) {
                return (Ok(hit), true);
            }
        }
        let compiler = if winch_first {
            Compiler::Winch
        } else {
            primary
        };
        (rt.compile_code(&bytes, compiler), false)
    })
    .await;
    let (code, hit) =
        counted.map_err(|e| LoadError::Invalid(format!("the compile task failed: {e}")))?;
    RegistryStats::bump(if hit {
        &stats.cache_hits
    } else {
        &stats.compiles
    });
    Ok((code?, !hit))
}

/// Checks `code` against the world (off the executor: it instantiates the component once),
/// counting a load of Winch code in `stats`.
async fn check(
    runtime: &Arc<Runtime>,
    stats: &RegistryStats,
    code: Code,
) -> Result<Compiled, LoadError> {
    let rt = runtime.clone();
    let checked = tokio::task::spawn_blocking(move || rt.check(&code))
        .await
        .map_err(|e| LoadError::Invalid(format!("the check task failed: {e}")))??;
    if checked.compiler != runtime.primary_compiler() {
        RegistryStats::bump(&stats.winch_loads);
    }
    Ok(checked)
}

/// What a watcher event means for the dir's re-scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Something may still be on its way (a file created or written to, removed, its
    /// metadata changed): wait until the dir is quiet for [`DEBOUNCE`].
    Pending,
    /// A file is complete now: renamed into the dir (the atomic way to swap a plugin) or
    /// closed by a writer. Scanning at once takes the debounce wait out of a swap.
    Complete,
}

impl Change {
    /// `None` for events that cannot change what the dir serves: opening, reading or
    /// closing a file unwritten. The registry's own scans cause those.
    fn of(kind: &EventKind) -> Option<Change> {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                Some(Change::Complete)
            }
            EventKind::Access(_) => None,
            _ => Some(Change::Pending),
        }
    }
}

/// The wait before looking again at a dir that `streak` scans in a row could not read:
/// [`SETTLE`], doubling up to [`UNREADABLE_RETRY_MAX`].
fn unreadable_wait(streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(16);
    SETTLE
        .saturating_mul(1 << doublings)
        .min(UNREADABLE_RETRY_MAX)
}

/// Forwards the names of changed dirs once no change came for [`DEBOUNCE`], so a copy in
/// progress is scanned once, after its last write; a [`Change::Complete`] forwards what has
/// gathered at once. A thread of its own: blocked in `recv` it costs nothing while idle,
/// and its timing does not depend on how busy the runtime's threads are with tasks (a tokio
/// timer there fired up to 10 ms late under load, which doubled a warm swap).
fn debounce(
    changed: &std::sync::mpsc::Receiver<(String, Change)>,
    out: &mpsc::UnboundedSender<String>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Ok((first, change)) = changed.recv() {
        let mut names = vec![first];
        let mut complete = change == Change::Complete;
        while !complete {
            match changed.recv_timeout(DEBOUNCE) {
                Ok((n, change)) => {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                    complete = change == Change::Complete;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        for name in names {
            if out.send(name).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_dir_is_looked_at_less_and_less_often() {
        let waits: Vec<_> = (1..=9).map(|s| unreadable_wait(s).as_millis()).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(unreadable_wait(u32::MAX), UNREADABLE_RETRY_MAX);
    }
}
