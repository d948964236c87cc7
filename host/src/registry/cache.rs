//! Disk cache of compiled code.
//!
//! Layout: `<cache dir>/<compat key>/<sha256 of the component>.cwasm`, and beside it
//! `<same>.sum` holding the sha256 of the `.cwasm` bytes. The compat key names the wasmtime
//! version and a hash of the engine's compile-affecting settings, so code of another
//! engine is never looked up. Both files are written atomically (temp file + rename), the
//! code first; an entry is used only when its checksum matches, so a torn, corrupt or
//! foreign file is recompiled, never handed to `Component::deserialize` (which trusts its
//! input). wasmtime itself rejects code of an incompatible engine; that is recompiled too.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::runtime::{Compiled, Runtime};

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache for `runtime`'s engine under `root`.
    pub(crate) fn new(root: &Path, runtime: &Runtime) -> Cache {
        Cache {
            dir: root.join(runtime.compat_key()),
        }
    }

    fn paths(&self, hash: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{hash}.cwasm")),
            self.dir.join(format!("{hash}.sum")),
        )
    }

    /// Compiled code for the component with sha256 `hash`, if a verified entry exists.
    /// A bad entry is removed (and `None` returned) so that it is rewritten.
    pub(crate) fn get(&self, runtime: &Runtime, hash: &str) -> Option<Compiled> {
        let (code_path, sum_path) = self.paths(hash);
        let code = std::fs::read(&code_path).ok()?;
        let verified = std::fs::read_to_string(&sum_path)
            .map(|sum| sum.trim() == hex::encode(Sha256::digest(&code)))
            .unwrap_or(false);
        if !verified {
            tracing::warn!(entry = %code_path.display(), "compiled-code cache entry fails its checksum; recompiling");
            self.remove(hash);
            return None;
        }
        // SAFETY: the bytes are exactly what `put` wrote for this engine's compat key: their
        // checksum, written after them by `put`, matches.
        match unsafe { runtime.deserialize(&code) } {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                tracing::warn!(entry = %code_path.display(), error = %format!("{e:#}"), "stale compiled-code cache entry; recompiling");
                self.remove(hash);
                None
            }
        }
    }

    /// Stores compiled code. Failures only cost a recompile later, so they are logged.
    pub(crate) fn put(&self, runtime: &Runtime, hash: &str, compiled: &Compiled) {
        if let Err(e) = self.try_put(runtime, hash, compiled) {
            tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"), "cannot write the compiled-code cache");
        }
    }

    fn try_put(&self, runtime: &Runtime, hash: &str, compiled: &Compiled) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let code = runtime.serialize(compiled)?;
        let sum = hex::encode(Sha256::digest(&code));
        let (code_path, sum_path) = self.paths(hash);
        write_atomic(&code_path, &code)?;
        write_atomic(&sum_path, sum.as_bytes())?;
        Ok(())
    }

    fn remove(&self, hash: &str) {
        let (code, sum) = self.paths(hash);
        let _ = std::fs::remove_file(sum);
        let _ = std::fs::remove_file(code);
    }
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
