//! Disk cache of compiled code.
//!
//! Layout: `<cache dir>/<compat key>/<sha256 of the component>.cwasm`, and beside it
//! `<same>.sum` holding the sha256 of the `.cwasm` bytes. The compat key names the wasmtime
//! version, the compiler (Cranelift and Winch code live in separate directories) and a hash
//! of the engine's compile-affecting settings, so code of another engine is never looked up. Both files are written atomically (temp file + rename), the
//! code first; an entry is used only when its checksum matches, so a torn, corrupt or
//! foreign file is recompiled, never handed to `Component::deserialize` (which trusts its
//! input). wasmtime itself rejects code of an incompatible engine; that is recompiled too.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::runtime::{Code, Compiled, Compiler, Runtime};

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache for `runtime`'s engines under `root`.
    pub(crate) fn new(root: &Path, _runtime: &Runtime) -> Cache {
        Cache {
            root: root.to_path_buf(),
        }
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
        let verified = std::fs::read_to_string(&sum_path)
            .map(|sum| sum.trim() == hex::encode(Sha256::digest(&code)))
            .unwrap_or(false);
        if !verified {
            tracing::warn!(entry = %code_path.display(), "compiled-code cache entry fails its checksum; recompiling");
            Self::remove(&dir, hash);
            return None;
        }
        // SAFETY: the bytes are exactly what `put` wrote for this engine's compat key: their
        // checksum, written after them by `put`, matches.
        match unsafe { runtime.deserialize_code(&code, compiler) } {
            Ok(code) => Some(code),
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
        if let Err(e) = Self::try_put(&dir, hash, code) {
            tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "cannot write the compiled-code cache");
        }
    }

    fn try_put(dir: &Path, hash: &str, code: &[u8]) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let sum = hex::encode(Sha256::digest(code));
        let (code_path, sum_path) = Self::paths(dir, hash);
        write_atomic(&code_path, code)?;
        write_atomic(&sum_path, sum.as_bytes())?;
        Ok(())
    }

    fn remove(dir: &Path, hash: &str) {
        let (code, sum) = Self::paths(dir, hash);
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
