//! `componentize-c`: what a C guest needs besides clang, without installing the
//! `wit-bindgen-cli` and `wasm-tools` binaries.
//!
//! ```text
//! componentize-c bindings <wit-dir> <world> <out-dir>   C bindings (wit-bindgen's C generator)
//! componentize-c component <core.wasm> <out.wasm>       core module -> component, with the
//!                                                       WASI preview 1 reactor adapter
//! componentize-c check <file.wasm>...                   is each file a component exporting
//!                                                       swasm:activity/activity@0.1.x? prints
//!                                                       its imports
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use wit_component::{ComponentEncoder, DecodedWasm, WitPrinter};
use wit_parser::{Resolve, WorldItem, WorldKey};

/// The interface every swasm plugin must export, up to its patch version: the host serves a
/// component built against any 0.1.x of the WIT (it looks the export up semver-compatibly,
/// `host/src/runtime/validate.rs`), so `check` must not fail one built against 0.1.1.
const ACTIVITY_EXPORT_PREFIX: &str = "swasm:activity/activity@0.1.";

/// Whether `name` (`package/interface@version`) is the activity export the host accepts.
fn is_activity_export(name: &str) -> bool {
    name.starts_with(ACTIVITY_EXPORT_PREFIX)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize-c: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        ["check", files @ ..] if !files.is_empty() => check(files),
        ["wit", file] => print_wit(Path::new(file)),
        _ => bail!(
            "usage:\n  componentize-c bindings <wit-dir> <world> <out-dir>\n  \
             componentize-c component <core.wasm> <out.wasm>\n  \
             componentize-c check <file.wasm>...\n  componentize-c wit <file.wasm>"
        ),
    }
}

/// Writes `<world>.h`, `<world>.c` and `<world>_component_type.o` into `out`.
fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading WIT from {}", wit.display()))?;
    let world_id = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("world {world:?} in {}", wit.display()))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Wraps a core module (built against the bindings' component type object) into a
/// component; its WASI preview 1 imports are satisfied by the reactor adapter.
fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let bytes = ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .with_context(|| {
            format!(
                "{}: not a core module with component type info",
                core.display()
            )
        })?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .with_context(|| format!("encoding a component from {}", core.display()))?;
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Decodes a component's world, or says why the file is not one.
fn decode(file: &Path) -> Result<(Resolve, wit_parser::WorldId, usize)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    match wit_component::decode(&bytes)
        .with_context(|| format!("{}: not a wasm component", file.display()))?
    {
        DecodedWasm::Component(resolve, world) => Ok((resolve, world, bytes.len())),
        DecodedWasm::WitPackage(..) => bail!("{}: a WIT package, not a component", file.display()),
    }
}

fn item_names(resolve: &Resolve, items: &[(&WorldKey, &WorldItem)]) -> Vec<String> {
    items
        .iter()
        .map(|(key, item)| match item {
            WorldItem::Interface { id, .. } => resolve
                .id_of(*id)
                .unwrap_or_else(|| resolve.name_world_key(key)),
            _ => resolve.name_world_key(key),
        })
        .collect()
}

/// One line per file (problems on stderr); fails when any file is not a component
/// exporting the activity.
fn check(files: &[&str]) -> Result<()> {
    let mut bad = Vec::new();
    for file in files {
        match decode(Path::new(file)) {
            Ok((resolve, world, size)) => {
                let w = &resolve.worlds[world];
                let exports = item_names(&resolve, &w.exports.iter().collect::<Vec<_>>());
                let imports = item_names(
                    &resolve,
                    &w.imports
                        .iter()
                        .filter(|(_, i)| matches!(i, WorldItem::Interface { .. }))
                        .collect::<Vec<_>>(),
                );
                if exports.iter().any(|e| is_activity_export(e)) {
                    println!("{file}: ok, {size} bytes, imports {}", imports.join(" "));
                } else {
                    eprintln!("{file}: component without {ACTIVITY_EXPORT_PREFIX}x (exports: {exports:?})");
                    bad.push(*file);
                }
            }
            Err(e) => {
                eprintln!("{e:#}");
                bad.push(*file);
            }
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} of {} files are not swasm plugins",
            bad.len(),
            files.len()
        );
    }
    Ok(())
}

/// Prints the world a component targets, as WIT text.
fn print_wit(file: &Path) -> Result<()> {
    let (resolve, world, _) = decode(file)?;
    let package = resolve.worlds[world]
        .package
        .context("decoded world has no package")?;
    let mut printer = WitPrinter::default();
    printer.print(&resolve, package, &[])?;
    print!("{}", printer.output);
    Ok(())
}
