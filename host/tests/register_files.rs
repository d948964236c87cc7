//! `swasm register` registers only what loads: `register::load_files` loads every file of
//! the plugin dirs the way `swasm plugins` does, with real components, and sorts them into
//! types to register, files that do not load, and files that name no type.

mod runtime_common;

use std::path::PathBuf;

use runtime_common::*;
use swasm::activity::ActivityType;
use swasm::config::Config;
use swasm::register::{FileProblem, load_files};

/// Every kind of file a plugin dir can hold, beside good ones: only the good ones' types are
/// to be registered (a type found in two task lists once, with the first); each bad one is
/// named with its types and why; a file with no `@version` that no `[activity]` maps is
/// skipped with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_files_that_load_give_types_to_register() {
    let root = scratch_root("swasm-register", "load");
    let (first, second) = (root.join("first"), root.join("second"));
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    std::fs::write(first.join("echo@1.wasm"), &echo).unwrap();
    std::fs::write(first.join("build-42.wasm"), &echo).unwrap();
    std::fs::write(first.join("bad@1.wasm"), b"this is not wasm at all").unwrap();
    std::fs::write(first.join("trunc@1.wasm"), &echo[..echo.len() / 2]).unwrap();
    // The smallest core module: wasm, but not a component.
    std::fs::write(first.join("core@1.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(first.join("notes.wasm"), &echo).unwrap();
    std::fs::write(first.join("readme.txt"), b"not looked at").unwrap();
    std::fs::write(second.join("echo@1.wasm"), &echo).unwrap();
    std::fs::write(second.join("echo@2.wasm"), &echo).unwrap();
    let config = Config::parse(
        "[swf]\ndomain = \"d\"\n\
         [[task_list]]\nname = \"tl\"\nplugin_dir = \"first\"\n\
         [[task_list]]\nname = \"other\"\nplugin_dir = \"second\"\n\
         [cache]\ndir = \"cache\"\n\
         [activity.\"mapped@3\"]\nfile = \"build-42.wasm\"\n",
        &root.join("swasm.toml"),
    )
    .unwrap();

    let loaded = load_files(&config).await.unwrap();

    let t = |tl: &str, ty: &str| (tl.to_string(), ActivityType::parse(ty).unwrap());
    assert_eq!(
        loaded.types,
        vec![t("tl", "mapped@3"), t("tl", "echo@1"), t("other", "echo@2")]
    );
    let first = first.canonicalize().unwrap();
    let named = |problems: &[FileProblem]| -> Vec<(PathBuf, Vec<String>)> {
        problems
            .iter()
            .map(|p| {
                (
                    p.path.clone(),
                    p.types.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        named(&loaded.rejected),
        vec![
            (first.join("bad@1.wasm"), vec!["bad@1".to_string()]),
            (first.join("core@1.wasm"), vec!["core@1".to_string()]),
            (first.join("trunc@1.wasm"), vec!["trunc@1".to_string()]),
        ],
        "{:#?}",
        loaded.rejected
    );
    let why: Vec<&str> = loaded.rejected.iter().map(|p| p.why.as_str()).collect();
    assert!(why[0].contains("not a WebAssembly file"), "{why:?}");
    assert!(why[1].contains("core"), "{why:?}");
    assert!(why[2].contains("truncated"), "{why:?}");
    assert_eq!(
        named(&loaded.skipped),
        vec![(first.join("notes.wasm"), vec![])]
    );
    assert!(
        loaded.skipped[0]
            .why
            .contains("the file name must be <name>@<version>.wasm"),
        "{:?}",
        loaded.skipped[0]
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A plugin dir that cannot be read is an error before anything is registered, naming the
/// config key.
#[tokio::test]
async fn a_missing_plugin_dir_is_an_error() {
    let root = scratch_root("swasm-register", "missing");
    std::fs::create_dir_all(&root).unwrap();
    let config = Config::parse(
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"nowhere\"\n",
        &root.join("swasm.toml"),
    )
    .unwrap();
    let e = load_files(&config).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("plugin_dir: cannot read"),
        "{e:#}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
