//! A new version of a configured activity: `[activity."name@version"]` tables are per
//! version, so `echo@2.wasm` dropped beside a configured `echo@1` serves with `[defaults]`
//! only. The registry says so, once per type, naming the file and the table to copy.
//!
//! One test in this binary: it takes the process's global log subscriber to read what the
//! registry logs on its own threads.

mod runtime_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_common::*;
use swasm::activity::ActivityType;
use swasm::config::Config;
use swasm::registry::Registry;
use swasm::runtime::Runtime;

/// What the host logged, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn lines_with(&self, part: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(part))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_without_the_table_another_version_has_is_warned_about_once() {
    let logs = Logs::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish(),
    )
    .unwrap();
    let root = scratch_root("swasm-versions", "warn");
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let echo = example("echo@1.wasm");
    for (dir, name) in [
        (&a, "echo@1.wasm"),
        (&a, "other@1.wasm"),
        (&b, "echo@2.wasm"),
    ] {
        std::fs::copy(&echo, dir.join(name)).unwrap();
    }
    let path = root.join("swasm.toml");
    let config = Config::parse(
        "[swf]\ndomain = \"d\"\n\
         [[task_list]]\nname = \"a\"\nplugin_dir = \"a\"\n\
         [[task_list]]\nname = \"b\"\nplugin_dir = \"b\"\n\
         [cache]\ndir = \"cache\"\n\
         [activity.\"echo@1\"]\nenv = { MODE = \"fast\" }\n",
        &path,
    )
    .unwrap();
    let registry = Registry::start(&config, Runtime::new(&config).unwrap())
        .await
        .unwrap();
    let served = |tl: &str, ty: &str| {
        registry
            .lookup(tl, &ActivityType::parse(ty).unwrap())
            .is_some()
    };
    assert!(served("a", "echo@1") && served("b", "echo@2"));
    let warning = |ty: &str, file: &std::path::Path| {
        format!(
            "{}: {ty} has no [activity.\"{ty}\"] table in {}, so it runs with [defaults] only",
            file.display(),
            path.display()
        )
    };
    let b = b.canonicalize().unwrap();
    let at_start = logs.lines_with("has no [activity.");
    assert_eq!(at_start.len(), 1, "{at_start:#?}");
    assert!(
        at_start[0].contains(&warning("echo@2", &b.join("echo@2.wasm")))
            && at_start[0].contains("while [activity.\"echo@1\"] sets another version of echo")
            && at_start[0].contains("copy that table as [activity.\"echo@2\"]"),
        "{at_start:#?}"
    );

    // A version dropped in while the registry serves, on another task list: said as it
    // loads, once, not again when its file is replaced or when it serves on a second list.
    let a = a.canonicalize().unwrap();
    std::fs::copy(&echo, a.join(".echo@3.tmp")).unwrap();
    std::fs::rename(a.join(".echo@3.tmp"), a.join("echo@3.wasm")).unwrap();
    wait_for("echo@3 to serve", Duration::from_secs(30), || {
        served("a", "echo@3")
    })
    .await;
    let padded = {
        let mut bytes = std::fs::read(&echo).unwrap();
        // A component-level custom section: another file, the same code.
        bytes.extend_from_slice(&[0, 2, 1, b'x']);
        bytes
    };
    std::fs::write(b.join(".echo@3.tmp"), &padded).unwrap();
    std::fs::rename(b.join(".echo@3.tmp"), b.join("echo@3.wasm")).unwrap();
    std::fs::write(a.join(".echo@3.tmp"), &padded).unwrap();
    std::fs::rename(a.join(".echo@3.tmp"), a.join("echo@3.wasm")).unwrap();
    wait_for("echo@3 on b", Duration::from_secs(30), || {
        served("b", "echo@3")
    })
    .await;
    wait_for("echo@3 swapped on a", Duration::from_secs(30), || {
        registry
            .stats()
            .swaps
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    })
    .await;
    let echo3 = logs.lines_with("echo@3 has no [activity.");
    assert_eq!(echo3.len(), 1, "{echo3:#?}");
    assert!(
        echo3[0].contains(&warning("echo@3", &a.join("echo@3.wasm"))),
        "{echo3:#?}"
    );
    // Types no table names a version of, and echo@1 itself, are not warned about.
    assert!(logs.lines_with("other@1 has no").is_empty());
    assert!(logs.lines_with("echo@1 has no").is_empty());
    let _ = std::fs::remove_dir_all(&root);
}
