//! Disk cache of compiled code.
//!
//! Layout: `<cache dir>/<compat key>/<sha256 of the component>.cwasm`, and beside it
//! `<same>.sum` holding the sha256 of the `.cwasm` bytes. The compat key names the wasmtime
//! version, the compiler (Cranelift and Winch code live in separate directories) and a hash
//! of the engine's compile-affecting settings, so code of another engine is never looked up. Both files are written atomically (temp file + rename), the
//! code first; an entry is used only when its checksum matches, so a torn, corrupt or
//! foreign file is recompiled, never handed to `Component::deserialize` (which trusts its
//! input). wasmtime itself rejects code of an incompatible engine; that is recompiled too.
//!
//! The checksum only tells a torn write from a whole one: whoever can write the cache can
//! write matching code and checksum, and that code runs as the host. So the cache is used
//! only while the process's own user (or root) owns its directory, the entry's engine
//! directory and the entry's files, and no other user can write them (group- or
//! world-writable, but for a directory with the sticky bit, where others' entries are
//! refused by their owner). A cache dir that fails this is not used at all, with one
//! warning; the directories and files the cache makes are mode 0755 and 0644.
//!
//! The cache has a size limit (`[cache] max_size_mb`). A hit marks its entry used (its
//! modification time); after each write, the entries used least recently go, in any
//! engine's directory, until the cache fits again. Code of an older wasmtime or of other
//! settings is never used again, so it goes first. Removing an entry a loaded plugin came
//! from is safe: the plugin holds its code in memory.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::config::CacheConfig;
use crate::runtime::{Code, Compiled, Compiler, Runtime};

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: PathBuf,
    /// Size limit of all entries under `root`, in bytes.
    max_bytes: u64,
}

impl Cache {
    /// The cache `config` describes, or `None` when caching is off, or when its directory
    /// exists and another user could write code into it (warned about once).
    pub(crate) fn from_config(config: &CacheConfig) -> Option<Cache> {
        let root = config.dir()?;
        if let Ok(meta) = std::fs::metadata(&root)
            && let Some(why) = untrusted(&root, &meta)
        {
            warn_once(&root, &why);
            return None;
        }
        Some(Cache {
            root,
            max_bytes: config.max_bytes(),
        })
    }

    /// Whether the root and `dir` (an engine directory under it) are safe to take code
    /// from: the reason when not. Checked at each read and write, not only at start: a
    /// directory made later, or changed since, is checked as it is now.
    fn check_dirs(&self, dir: &Path) -> Result<(), String> {
        for path in [self.root.as_path(), dir] {
            let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(why) = untrusted(path, &meta) {
                return Err(why);
            }
        }
        Ok(())
    }

    /// The entry directory of `compiler`'s engine (`None`: the runtime has no such engine).
    fn dir(&self, runtime: &Runtime, compiler: Compiler) -> Option<PathBuf> {
        Some(self.root.join(runtime.compat_key_of(compiler)?))
    }

    fn paths(dir: &Path, hash: &str) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{hash}.cwasm")),
            dir.join(format!("{hash}.sum")),
        )
    }

    /// `compiler`'s code for the component with sha256 `hash`, if a verified entry exists.
    /// A bad entry is removed (and `None` returned) so that it is rewritten. The code is not
    /// checked against the world yet ([`Runtime::check`]): that needs an instance slot,
    /// and a check put off for want of one must not cost the entry.
    pub(crate) fn get(&self, runtime: &Runtime, compiler: Compiler, hash: &str) -> Option<Code> {
        let dir = self.dir(runtime, compiler)?;
        if !dir.exists() {
            return None;
        }
        if let Err(why) = self.check_dirs(&dir) {
            warn_once(&dir, &why);
            return None;
        }
        let (code_path, sum_path) = Self::paths(&dir, hash);
        let trusted = |path: &Path, bytes: Result<Vec<u8>, String>| {
            bytes.map_err(|why| warn_once(path, &why)).ok()
        };
        let code = trusted(&code_path, read_trusted(&code_path).ok()?)?;
        // Another writer (a host sharing the cache dir, `swasm plugins`, another task list
        // with the same file) has renamed the code into place and not yet its checksum: a
        // miss, and the entry is left to it.
        let sum = trusted(&sum_path, read_trusted(&sum_path).ok()?)?;
        let sum = String::from_utf8_lossy(&sum);
        if sum.trim() != hex::encode(Sha256::digest(&code)) {
            tracing::warn!(entry = %code_path.display(), "compiled-code cache entry fails its checksum; recompiling");
            Self::remove(&dir, hash);
            return None;
        }
        // SAFETY: the bytes are exactly what `put` wrote for this engine's compat key: their
        // checksum, written after them by `put`, matches.
        match unsafe { runtime.deserialize_code(&code, compiler) } {
            Ok(code) => {
                mark_used(&code_path);
                Some(code)
            }
            Err(e) => {
                tracing::warn!(entry = %code_path.display(), error = %format!("{e:#}"), "stale compiled-code cache entry; recompiling");
                Self::remove(&dir, hash);
                None
            }
        }
    }

    /// Stores compiled code. Failures only cost a recompile later, so they are logged.
    pub(crate) fn put(&self, runtime: &Runtime, hash: &str, compiled: &Compiled) {
        match runtime.serialize(compiled) {
            Ok(code) => self.put_code(runtime, compiled.compiler, hash, &code),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot serialize compiled code for the cache")
            }
        }
    }

    /// Stores serialized code of `compiler`'s engine (what `Runtime::serialize` or a
    /// background compile produced).
    pub(crate) fn put_code(&self, runtime: &Runtime, compiler: Compiler, hash: &str, code: &[u8]) {
        let Some(dir) = self.dir(runtime, compiler) else {
            return;
        };
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled-code cache");
            return;
        }
        if let Err(why) = self.check_dirs(&dir) {
            warn_once(&dir, &why);
            return;
        }
        match Self::try_put(&dir, hash, code) {
            Ok(written) => self.trim(&written),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "cannot write the compiled-code cache")
            }
        }
    }

    /// Removes the entries used least recently, but never `keep`, until the cache is at
    /// most `max_bytes` big; and temp files a write left behind (a process killed while
    /// writing, or stopped before a background write ended).
    fn trim(&self, keep: &Path) {
        let (mut entries, stale) = self.entries();
        for tmp in stale {
            if std::fs::remove_file(&tmp).is_ok() {
                tracing::info!(file = %tmp.display(), "removed a compiled-code cache temp file an interrupted write left");
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort_by_key(|e| e.used);
        for e in entries {
            if total <= self.max_bytes {
                break;
            }
            if e.code == keep {
                continue;
            }
            let (Some(dir), Some(hash)) = (e.code.parent(), e.code.file_stem()) else {
                continue;
            };
            Self::remove(dir, &hash.to_string_lossy());
            total = total.saturating_sub(e.bytes);
            tracing::info!(entry = %e.code.display(), "compiled-code cache over its size limit; removed the entry used least recently");
        }
    }

    /// Every entry under the root, in every engine's directory (`wasmtime-*`: the cache
    /// dir may be shared with other tools, whose files are never touched), and the temp
    /// files there older than [`STALE_TEMP`].
    fn entries(&self) -> (Vec<Entry>, Vec<PathBuf>) {
        let mut out = Vec::new();
        let mut stale = Vec::new();
        let Ok(engines) = std::fs::read_dir(&self.root) else {
            return (out, stale);
        };
        // A directory itself, not a link to one (in a root others may write, such as a
        // sticky /tmp dir, a link could lead the removals below anywhere), and one others
        // cannot write.
        // (`DirEntry::metadata` does not follow a link; the root was checked by the caller's
        // read or write.)
        let is_engine_dir = |e: &std::fs::DirEntry| {
            e.file_name().to_string_lossy().starts_with("wasmtime-")
                && e.metadata()
                    .is_ok_and(|m| m.is_dir() && untrusted(&e.path(), &m).is_none())
        };
        for engine in engines.flatten().filter(is_engine_dir) {
            let Ok(files) = std::fs::read_dir(engine.path()) else {
                continue;
            };
            for f in files.flatten() {
                let code = f.path();
                if code.extension().is_none_or(|x| x != "cwasm") {
                    let temp = f.file_name().to_string_lossy().contains(".tmp.");
                    let old = f
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMP));
                    if temp && old {
                        stale.push(code);
                    }
                    continue;
                }
                let Ok(meta) = f.metadata() else { continue };
                let sum = std::fs::metadata(code.with_extension("sum")).map_or(0, |m| m.len());
                out.push(Entry {
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    bytes: meta.len() + sum,
                    code,
                });
            }
        }
        (out, stale)
    }

    /// Writes an entry; returns the path of its code.
    fn try_put(dir: &Path, hash: &str, code: &[u8]) -> Result<PathBuf> {
        let sum = hex::encode(Sha256::digest(code));
        let (code_path, sum_path) = Self::paths(dir, hash);
        write_atomic(&code_path, code)?;
        write_atomic(&sum_path, sum.as_bytes())?;
        Ok(code_path)
    }

    fn remove(dir: &Path, hash: &str) {
        let (code, sum) = Self::paths(dir, hash);
        let _ = std::fs::remove_file(sum);
        let _ = std::fs::remove_file(code);
    }
}

/// How old a temp file of the cache must be to be taken for one an interrupted write left:
/// a write takes seconds.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// One cache entry as [`Cache::trim`] sees it.
struct Entry {
    code: PathBuf,
    /// Its code and checksum files together.
    bytes: u64,
    /// When it was written or last loaded.
    used: SystemTime,
}

/// Why code under `path` (the cache dir, an engine dir in it, an entry's file) must not be
/// used, if it must not: it belongs to a user other than the process's (root excepted: it
/// can replace the host itself), or a user other than its owner can write it (group or
/// others may write, and it is not a directory with the sticky bit, in which they cannot
/// rename or remove what is not theirs; what they put there is refused by its owner).
fn untrusted(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && meta.uid() != 0 {
        return Some(format!(
            "{} belongs to uid {}, not to this process's user (uid {euid}) or root: that user \
             could put native code there, which the host would run",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_dir {
        return Some(format!(
            "{} is writable by its group or by others (mode {mode:o}): they could put native \
             code there, which the host would run; chmod -R go-w it (a cache made by an older \
             swasm under umask 002 is)",
            path.display()
        ));
    }
    None
}

/// The bytes of a file of an entry, opened once (so what is checked is what is read):
/// `Err` when it cannot be read (missing), `Ok(Err(why))` when it is not to be trusted.
fn read_trusted(path: &Path) -> std::io::Result<Result<Vec<u8>, String>> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if let Some(why) = untrusted(path, &meta) {
        return Ok(Err(why));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Ok(bytes))
}

/// Paths already warned about as untrusted: each is said once per process, not at every
/// load (a host re-scanning a plugin dir would repeat it).
static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn warn_once(path: &Path, why: &str) {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.insert(path.to_path_buf()) {
        tracing::warn!(path = %path.display(), "the compiled-code cache is not used: {why}");
    }
}

/// Marks an entry used now, so the size limit removes it after entries used less recently.
/// A failure only makes the entry look older.
fn mark_used(code_path: &Path) {
    let _ = std::fs::File::options()
        .write(true)
        .open(code_path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

/// Writes `bytes` to a temp file beside `path`, syncs it, and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        // 0644, not File::create's 0666: under a umask of 002 that would be group-writable,
        // and the entry would not be trusted.
        let mut f = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Writes an entry of `bytes` code bytes (and a checksum file) last used `age` ago.
    fn entry(root: &Path, engine: &str, hash: &str, bytes: usize, age: Duration) -> PathBuf {
        let dir = root.join(engine);
        std::fs::create_dir_all(&dir).unwrap();
        // As the cache makes them, whatever the test's umask.
        for d in [root, dir.as_path()] {
            set_mode(d, 0o755);
        }
        let (code, sum) = Cache::paths(&dir, hash);
        std::fs::write(&code, vec![0u8; bytes]).unwrap();
        std::fs::write(&sum, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&code).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        code
    }

    /// A runtime of 2 slots and an unbounded cache at `root`.
    fn small_runtime_and_cache(root: &Path) -> (std::sync::Arc<crate::runtime::Runtime>, Cache) {
        let rt = crate::runtime::Runtime::with_options(crate::runtime::RuntimeOptions {
            max_instances: 2,
            ..Default::default()
        })
        .unwrap();
        let cache = Cache {
            root: root.to_path_buf(),
            max_bytes: u64::MAX,
        };
        (rt, cache)
    }

    fn temp_root(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("swasm-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_entries_used_least_recently_go_until_the_cache_fits() {
        let root = temp_root("trim");
        let hour = Duration::from_secs(3600);
        let stale = entry(&root, "wasmtime-47.0.0-old", "a", 400, 5 * hour);
        let old = entry(&root, "wasmtime-48.0.8-x", "b", 400, 3 * hour);
        let recent = entry(&root, "wasmtime-48.0.8-x", "c", 400, hour);
        // The newest write is kept even when it is the oldest by time.
        let written = entry(&root, "wasmtime-48.0.8-x", "d", 400, 9 * hour);
        let cache = Cache {
            root: root.clone(),
            max_bytes: 900,
        };
        cache.trim(&written);
        assert!(
            !stale.exists(),
            "another engine's code, used longest ago, goes first"
        );
        assert!(!stale.with_extension("sum").exists(), "with its checksum");
        assert!(!old.exists());
        assert!(recent.exists() && written.exists());
        // Within the limit, nothing goes.
        cache.trim(&written);
        assert!(recent.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Code whose checksum file is not there yet is another writer's entry, half written:
    /// a miss that leaves it in place. Code whose checksum does not match is a bad entry,
    /// removed so that it is written again.
    #[test]
    fn code_without_its_checksum_yet_is_a_miss_left_in_place() {
        let root = temp_root("half");
        let (rt, cache) = small_runtime_and_cache(&root);
        let dir = cache.dir(&rt, Compiler::Cranelift).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let (code, sum) = Cache::paths(&dir, "h");
        std::fs::write(&code, b"code renamed into place, its checksum not yet").unwrap();
        assert!(cache.get(&rt, Compiler::Cranelift, "h").is_none());
        assert!(code.exists(), "left to the writer");
        std::fs::write(&sum, "0000").unwrap();
        assert!(cache.get(&rt, Compiler::Cranelift, "h").is_none());
        assert!(!code.exists() && !sum.exists(), "a bad entry is removed");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Temp files an interrupted write left are removed when the cache is next written;
    /// one a write in progress holds (young) is not.
    #[test]
    fn temp_files_of_interrupted_writes_are_removed() {
        let root = temp_root("tmp");
        let kept = entry(&root, "wasmtime-e", "a", 10, Duration::ZERO);
        let dir = root.join("wasmtime-e");
        let left = dir.join("b.tmp.123.456");
        let writing = dir.join("c.tmp.789.1");
        std::fs::write(&left, b"torn").unwrap();
        std::fs::write(&writing, b"being written").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&left)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE_TEMP)
            .unwrap();
        Cache {
            root: root.clone(),
            max_bytes: u64::MAX,
        }
        .trim(&kept);
        assert!(!left.exists());
        assert!(writing.exists() && kept.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    /// Whether this test may give a file away to another user (only root can).
    fn can_chown() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// A cache dir another user could write is not used at all: its group or others may
    /// write it (a sticky dir such as /tmp excepted), or it belongs to another user.
    #[test]
    fn a_cache_dir_another_user_could_write_is_not_used() {
        let root = temp_root("dir-modes");
        std::fs::create_dir_all(&root).unwrap();
        let config = CacheConfig {
            dir: Some(root.clone()),
            ..Default::default()
        };
        for (bits, used) in [
            (0o755, true),
            (0o700, true),
            (0o775, false),
            (0o757, false),
            (0o777, false),
            (0o1777, true),
        ] {
            set_mode(&root, bits);
            assert_eq!(Cache::from_config(&config).is_some(), used, "mode {bits:o}");
        }
        set_mode(&root, 0o755);
        if can_chown() {
            std::os::unix::fs::chown(&root, Some(65534), None).unwrap();
            assert!(Cache::from_config(&config).is_none(), "another user's dir");
            std::os::unix::fs::chown(&root, Some(0), None).unwrap();
            assert!(Cache::from_config(&config).is_some(), "root's own dir");
        }
        std::fs::remove_dir_all(&root).unwrap();
        assert!(
            Cache::from_config(&config).is_some(),
            "a dir that is not there yet is made by the first write, 0755"
        );
    }

    /// An entry is loaded only while the cache dir, its engine dir and its two files are the
    /// process's own and no other user can write them, checked at each read: code another
    /// user could have written (with a checksum to match) is never run, and is left alone.
    /// Entries are written 0644 in dirs of 0755, so the cache's own pass.
    #[test]
    fn an_entry_another_user_could_have_written_is_not_loaded() {
        let root = temp_root("entry-modes");
        let (rt, cache) = small_runtime_and_cache(&root);
        let code = rt
            .compile_in_background(&wat::parse_str("(component)").unwrap())
            .unwrap();
        cache.put_code(&rt, Compiler::Cranelift, "h", &code);
        let loads = || cache.get(&rt, Compiler::Cranelift, "h").is_some();
        assert!(loads(), "the cache's own entry loads");
        let dir = cache.dir(&rt, Compiler::Cranelift).unwrap();
        let (code_path, sum_path) = Cache::paths(&dir, "h");
        assert_eq!(
            (mode(&root), mode(&dir), mode(&code_path), mode(&sum_path)),
            (0o755, 0o755, 0o644, 0o644)
        );
        for (path, bits) in [
            (&root, 0o777),
            (&dir, 0o775),
            (&dir, 0o1777),
            (&code_path, 0o664),
            (&sum_path, 0o646),
        ] {
            let good = mode(path);
            set_mode(path, bits);
            let sticky_dir = bits & 0o1000 != 0;
            assert_eq!(loads(), sticky_dir, "{} mode {bits:o}", path.display());
            assert!(code_path.exists() && sum_path.exists(), "left alone");
            set_mode(path, good);
            assert!(loads(), "{} back to mode {good:o}", path.display());
        }
        if can_chown() {
            for path in [&dir, &code_path, &sum_path] {
                std::os::unix::fs::chown(path, Some(65534), None).unwrap();
                assert!(!loads(), "{} belongs to another user", path.display());
                std::os::unix::fs::chown(path, Some(0), None).unwrap();
                assert!(loads());
            }
        }
        // Nothing is written into an engine dir others can write.
        set_mode(&dir, 0o777);
        cache.put_code(&rt, Compiler::Cranelift, "other", &code);
        assert!(!Cache::paths(&dir, "other").0.exists());
        set_mode(&dir, 0o755);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The size limit removes entries in the cache's own engine dirs only: not through a
    /// link named like one (in a root others may write, such as a sticky dir, a link could
    /// lead anywhere), nor in an engine dir others can write.
    #[test]
    fn trimming_follows_no_link_and_no_dir_others_can_write() {
        let root = temp_root("trim-links");
        let elsewhere = temp_root("trim-links-target");
        let hour = Duration::from_secs(3600);
        let outside = entry(&elsewhere, "wasmtime-e", "o", 4000, 9 * hour);
        let written = entry(&root, "wasmtime-e", "c", 400, Duration::ZERO);
        std::os::unix::fs::symlink(elsewhere.join("wasmtime-e"), root.join("wasmtime-link"))
            .unwrap();
        let open = entry(&root, "wasmtime-open", "w", 4000, 9 * hour);
        set_mode(open.parent().unwrap(), 0o777);
        Cache {
            root: root.clone(),
            max_bytes: 500,
        }
        .trim(&written);
        assert!(
            outside.exists(),
            "an entry reached through a link is not touched"
        );
        assert!(
            open.exists(),
            "an engine dir others can write is not the cache's"
        );
        set_mode(open.parent().unwrap(), 0o755);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }

    #[test]
    fn marking_an_entry_used_keeps_it_over_newer_ones() {
        let root = temp_root("used");
        let hour = Duration::from_secs(3600);
        let loaded = entry(&root, "wasmtime-e", "a", 400, 5 * hour);
        let other = entry(&root, "wasmtime-e", "b", 400, hour);
        let written = entry(&root, "wasmtime-e", "c", 400, Duration::ZERO);
        let foreign = entry(&root, "other-tool", "f", 4000, 9 * hour);
        mark_used(&loaded);
        Cache {
            root: root.clone(),
            max_bytes: 900,
        }
        .trim(&written);
        assert!(loaded.exists(), "used just now");
        assert!(!other.exists());
        assert!(
            foreign.exists(),
            "files outside the engine dirs are not the cache's"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
