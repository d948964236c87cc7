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
//! The cache has a size limit (`[cache] max_size_mb`). A hit marks its entry used (its
//! modification time); after each write, the entries used least recently go, in any
//! engine's directory, until the cache fits again. Code of an older wasmtime or of other
//! settings is never used again, so it goes first. Removing an entry a loaded plugin came
//! from is safe: the plugin holds its code in memory.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// The cache `config` describes, or `None` when caching is off.
    pub(crate) fn from_config(config: &CacheConfig) -> Option<Cache> {
        Some(Cache {
            root: config.dir()?,
            max_bytes: config.max_bytes(),
        })
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
        let (code_path, sum_path) = Self::paths(&dir, hash);
        let code = std::fs::read(&code_path).ok()?;
        let Ok(sum) = std::fs::read_to_string(&sum_path) else {
            // Another writer (a host sharing the cache dir, `swasm plugins`, another task
            // list with the same file) has renamed the code into place and not yet its
            // checksum: a miss, and the entry is left to it.
            return None;
        };
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
        let is_engine_dir = |e: &std::fs::DirEntry| {
            e.file_name().to_string_lossy().starts_with("wasmtime-") && e.path().is_dir()
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
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
        let mut f = std::fs::File::create(&tmp)?;
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
        let (code, sum) = Cache::paths(&dir, hash);
        std::fs::write(&code, vec![0u8; bytes]).unwrap();
        std::fs::write(&sum, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&code).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        code
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
        let rt = crate::runtime::Runtime::with_options(crate::runtime::RuntimeOptions {
            max_instances: 2,
            ..Default::default()
        })
        .unwrap();
        let cache = Cache {
            root: root.clone(),
            max_bytes: u64::MAX,
        };
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
