//! The live plugin directory: add, replace, retire, bad files, slow writes, symlinks, and
//! the compiled-code cache, with real components and a real `notify` watcher.

mod runtime_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use runtime_common::*;
use swasm::activity::{ActivityType, Outcome};
use swasm::config::Config;
use swasm::registry::Registry;
use swasm::runtime::{Compiler, Runtime};

const LIMIT: Duration = Duration::from_secs(30);

struct Fixture {
    root: PathBuf,
    dir: PathBuf,
    config: Config,
}

impl Fixture {
    fn new(name: &str, extra: &str) -> Fixture {
        // The registry's log lines (loads, swaps, rejects and why, retirements), shown with
        // a failing test's output: a count that is off says which file and why.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("swasm=debug")
            .with_test_writer()
            .try_init();
        let root = scratch_root("swasm-reg", name);
        let dir = root.join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[cache]\ndir = \"cache\"\n{extra}"
        );
        let config = Config::parse(&text, &root.join("swasm.toml")).unwrap();
        Fixture { root, dir, config }
    }

    async fn start(&self) -> Arc<Registry> {
        let rt = Runtime::new(&self.config).unwrap();
        Registry::start(&self.config, rt).await.unwrap()
    }

    fn put(&self, from: &Path, name: &str) {
        // Write beside, then rename: what deploy tools do.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn ty(s: &str) -> ActivityType {
    ActivityType::parse(s).unwrap()
}

async fn echo_result(reg: &Registry, t: &str, input: &str) -> Option<String> {
    let p = reg.lookup("tl", &ty(t))?;
    match p
        .run(task(t, Some(input)), &settings(), no_heartbeat())
        .await
    {
        Outcome::Completed(r) => r,
        other => panic!("{t}: {other:?}"),
    }
}

/// Waits until `t` answers `input` with `expected`.
async fn wait_result(reg: &Registry, t: &str, input: &str, expected: &str) {
    let end = std::time::Instant::now() + LIMIT;
    loop {
        if echo_result(reg, t, input).await.as_deref() == Some(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "{t} never answered {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The start-up load of a small file goes straight to Cranelift; a file dropped in while the
/// registry serves, with no cached code, serves from Winch code at once and is then upgraded
/// to Cranelift code compiled in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_loads_serve_winch_code_first_then_upgrade() {
    let f = Fixture::new("tier", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    let compiler = || reg.lookup("tl", &ty("echo@1")).unwrap().compiler;
    assert_eq!(compiler(), Compiler::Cranelift);
    assert_eq!(reg.stats().winch_loads.load(Ordering::Relaxed), 0);

    f.put(&guest("echo-b.wasm"), "echo@1.wasm");
    wait_result(&reg, "echo@1", "x", "B:x").await;
    assert_eq!(reg.stats().winch_loads.load(Ordering::Relaxed), 1);
    wait_for("the Cranelift upgrade", LIMIT, || {
        compiler() == Compiler::Cranelift
    })
    .await;
    assert_eq!(reg.stats().upgrades.load(Ordering::Relaxed), 1);
    assert_eq!(
        echo_result(&reg, "echo@1", "y").await.as_deref(),
        Some("B:y")
    );
}

/// Cranelift code that is ready while tasks hold every instance slot cannot be checked
/// (that takes an instance): the upgrade is put off, not dropped. The Winch code serves
/// meanwhile, and the upgrade lands once a slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_finds_every_slot_taken_lands_once_one_is_free() {
    let f = Fixture::new("busy", "");
    f.put(&example("countdown@1.wasm"), "countdown@1.wasm");
    let reg = Registry::start(&f.config, runtime_with_slots(2))
        .await
        .unwrap();
    let stats = reg.stats();
    let countdown = reg.lookup("tl", &ty("countdown@1")).unwrap();
    let first = hold_a_slot(countdown.clone()).await;
    // Both slots are taken before the file comes, so the upgrade cannot find one free
    // however soon its background compile ends. The Winch load is checked in the Winch
    // engine's own pool, which the held tasks do not fill.
    let second = hold_a_slot(countdown).await;

    f.put(&guest("hostile@1.wasm"), "hostile@1.wasm");
    wait_for("the Winch load", LIMIT, || {
        stats.winch_loads.load(Ordering::Relaxed) == 1
    })
    .await;
    wait_for("the upgrade to find every slot taken", LIMIT, || {
        stats.busy.load(Ordering::Relaxed) >= 1
    })
    .await;
    let compiler = || reg.lookup("tl", &ty("hostile@1")).unwrap().compiler;
    assert_eq!(compiler(), Compiler::Winch);
    assert_eq!(stats.upgrades.load(Ordering::Relaxed), 0);

    second.abort();
    wait_for("the upgrade once a slot is free", LIMIT, || {
        compiler() == Compiler::Cranelift
    })
    .await;
    assert_eq!(stats.upgrades.load(Ordering::Relaxed), 1);
    assert_eq!(stats.rejects.load(Ordering::Relaxed), 0);
    first.abort();
}

/// A file dropped in while tasks hold every instance slot cannot be checked yet (that takes
/// an instance): its load is put off, not rejected, and tried again until a slot is free.
/// Its code is compiled, or read from the cache, once for all those tries, a cached entry
/// stays in the cache, and a file changed meanwhile loads its new content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_load_that_finds_every_slot_taken_is_compiled_once_and_lands_once_a_slot_is_free() {
    let f = Fixture::new("busyload", "");
    f.put(&example("countdown@1.wasm"), "countdown@1.wasm");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    // One slot, and Cranelift for live loads too: a Winch load would be checked in the
    // Winch engine's own pool, which the held task does not fill.
    let rt = Runtime::with_options(swasm::runtime::RuntimeOptions {
        max_instances: 1,
        winch_first_min_bytes: None,
        ..Default::default()
    })
    .unwrap();
    let reg = Registry::start(&f.config, rt).await.unwrap();
    let stats = reg.stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    std::fs::remove_file(f.dir.join("echo@1.wasm")).unwrap();
    wait_for("echo@1 retired", LIMIT, || {
        reg.lookup("tl", &ty("echo@1")).is_none()
    })
    .await;
    let cached = cache_entries(&f.root);
    assert_eq!(cached.len(), 2, "{cached:?}");
    let held = hold_a_slot(reg.lookup("tl", &ty("countdown@1")).unwrap()).await;
    let (compiles, hits) = (count(&stats.compiles), count(&stats.cache_hits));

    // New content (compiled), and content whose code is cached (echo@1, loaded at start).
    f.put(&guest("echo-b.wasm"), "other@1.wasm");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    wait_for("each file to find every slot taken twice", LIMIT, || {
        count(&stats.busy) >= 4
    })
    .await;
    assert_eq!(
        count(&stats.compiles),
        compiles + 1,
        "compiled again on a retry"
    );
    assert_eq!(count(&stats.cache_hits), hits + 1, "read again on a retry");
    assert_eq!(
        cache_entries(&f.root),
        cached,
        "the cached entry was dropped"
    );
    assert!(reg.lookup("tl", &ty("other@1")).is_none());
    assert!(reg.lookup("tl", &ty("echo@1")).is_none());

    // A file changed while it waits: its new content is compiled, the kept code dropped.
    f.put(&guest("echo-b.wasm"), "echo@1.wasm");
    wait_for("the changed file compiled", LIMIT, || {
        count(&stats.compiles) == compiles + 2
    })
    .await;
    let busy = count(&stats.busy);
    wait_for("both files tried again", LIMIT, || {
        count(&stats.busy) >= busy + 2
    })
    .await;
    assert_eq!(
        count(&stats.compiles),
        compiles + 2,
        "compiled again on a retry"
    );

    held.abort();
    wait_result(&reg, "other@1", "x", "B:x").await;
    wait_result(&reg, "echo@1", "x", "B:x").await;
    assert_eq!(count(&stats.compiles), compiles + 2);
    assert_eq!(count(&stats.cache_hits), hits + 1);
    assert_eq!(count(&stats.rejects), 0);
    // The compiled code was cached once it served.
    wait_for("echo-b's code cached", LIMIT, || {
        cache_entries(&f.root).len() == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_replace_retire() {
    let f = Fixture::new("arr", "");
    let reg = f.start().await;
    assert!(reg.served("tl").is_empty());

    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    wait_result(&reg, "echo@1", "x", "x").await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
    assert_eq!(reg.stats().loads.load(Ordering::Relaxed), 1);

    // A long task on the old code keeps running through the swap.
    f.put(&example("countdown@1.wasm"), "countdown@1.wasm");
    wait_for("countdown@1 loaded", LIMIT, || {
        reg.lookup("tl", &ty("countdown@1")).is_some()
    })
    .await;
    let old = reg.lookup("tl", &ty("countdown@1")).unwrap();
    let running = tokio::spawn(async move {
        old.run(
            task("countdown@1", Some(r#"{"steps":20,"step_ms":25}"#)),
            &settings(),
            no_heartbeat(),
        )
        .await
    });
    f.put(&guest("echo-b.wasm"), "countdown@1.wasm");
    f.put(&guest("echo-b.wasm"), "echo@1.wasm");
    wait_result(&reg, "echo@1", "x", "B:x").await;
    wait_result(&reg, "countdown@1", "y", "B:y").await;
    assert_eq!(
        running.await.unwrap(),
        Outcome::Completed(Some(r#"{"done":20}"#.into()))
    );
    assert_eq!(reg.stats().swaps.load(Ordering::Relaxed), 2);

    let info = reg.plugins();
    assert_eq!(info.len(), 2);
    assert!(
        info.iter()
            .all(|i| i.task_list == "tl" && i.hash.len() == 64)
    );

    std::fs::remove_file(f.dir.join("echo@1.wasm")).unwrap();
    wait_for("echo@1 retired", LIMIT, || {
        reg.lookup("tl", &ty("echo@1")).is_none()
    })
    .await;
    assert_eq!(reg.stats().retirements.load(Ordering::Relaxed), 1);
    assert_eq!(reg.served("tl"), vec![ty("countdown@1")]);
    assert_eq!(reg.stats().rejects.load(Ordering::Relaxed), 0);
}

/// A file's type is its name without the one `.wasm` it ends in: `echo@1.wasm.wasm` is
/// `echo@1.wasm`, not a second file for `echo@1` (which one served would depend on the
/// order the dir is read in, and removing it would retire `echo@1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_wasm_of_a_file_name_is_its_suffix() {
    let f = Fixture::new("suffix", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    f.put(&guest("echo-b.wasm"), "echo@1.wasm.wasm");
    let reg = f.start().await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1"), ty("echo@1.wasm")]);
    assert_eq!(echo_result(&reg, "echo@1", "x").await.as_deref(), Some("x"));
    assert_eq!(
        echo_result(&reg, "echo@1.wasm", "x").await.as_deref(),
        Some("B:x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_while_the_old_version_serves() {
    let f = Fixture::new("bad", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    assert_eq!(echo_result(&reg, "echo@1", "a").await.as_deref(), Some("a"));
    let good_hash = reg.plugins()[0].hash.clone();

    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("not wasm", b"#!/bin/sh\necho hi\n".to_vec()),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("wrong world", b"\0asm\x0d\0\x01\0".to_vec()),
        ("truncated", echo[..echo.len() / 2].to_vec()),
    ];
    for (i, (what, bytes)) in bad.into_iter().enumerate() {
        let tmp = f.dir.join(".bad.tmp");
        std::fs::write(&tmp, &bytes).unwrap();
        std::fs::rename(&tmp, f.dir.join("echo@1.wasm")).unwrap();
        let n = i as u64 + 1;
        wait_for(what, LIMIT, || {
            reg.stats().rejects.load(Ordering::Relaxed) == n
        })
        .await;
        assert_eq!(
            echo_result(&reg, "echo@1", what).await.as_deref(),
            Some(what),
            "{what}"
        );
        assert_eq!(reg.plugins()[0].hash, good_hash, "{what}");
        // `/status` lists the file that does not serve, with the latest reason.
        let rejected = reg.rejected();
        assert_eq!(rejected.len(), 1, "{what}: {rejected:?}");
        assert_eq!(rejected[0].path, f.dir.join("echo@1.wasm"), "{what}");
    }

    // A name without @version is not served.
    f.put(&example("echo@1.wasm"), "noversion.wasm");
    wait_for("noversion rejected", LIMIT, || {
        reg.stats().rejects.load(Ordering::Relaxed) == 5
    })
    .await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
    let rejected: Vec<_> = reg.rejected().into_iter().map(|r| r.path).collect();
    assert_eq!(
        rejected,
        vec![f.dir.join("echo@1.wasm"), f.dir.join("noversion.wasm")]
    );

    // Fixing the file brings new code in and takes it off the list; so does removing one.
    f.put(&guest("echo-b.wasm"), "echo@1.wasm");
    wait_result(&reg, "echo@1", "z", "B:z").await;
    std::fs::remove_file(f.dir.join("noversion.wasm")).unwrap();
    wait_for("no rejected file left", LIMIT, || reg.rejected().is_empty()).await;

    // A directory named like a plugin is said to be one, not silently passed over.
    std::fs::create_dir(f.dir.join("unpacked@2.wasm")).unwrap();
    wait_for("the directory rejected", LIMIT, || {
        !reg.rejected().is_empty()
    })
    .await;
    let rejected = reg.rejected();
    assert!(
        rejected[0].why.contains("a directory, not a file"),
        "{rejected:?}"
    );
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_copy_is_loaded_only_when_complete() {
    let f = Fixture::new("slow", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    let b = std::fs::read(guest("echo-b.wasm")).unwrap();
    {
        use std::io::Write;
        // `cp` onto the served file, in pieces with pauses: the watcher sees partial files.
        let mut out = std::fs::File::create(f.dir.join("echo@1.wasm")).unwrap();
        for chunk in b.chunks(b.len() / 4 + 1) {
            out.write_all(chunk).unwrap();
            out.flush().unwrap();
            // Between the pieces, every lookup still answers (old or new code, never broken).
            for _ in 0..5 {
                let r = echo_result(&reg, "echo@1", "s").await;
                assert!(matches!(r.as_deref(), Some("s") | Some("B:s")), "{r:?}");
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
    wait_result(&reg, "echo@1", "s", "B:s").await;
    assert_eq!(
        reg.stats().rejects.load(Ordering::Relaxed),
        0,
        "a partial copy was rejected instead of awaited"
    );
}

/// A copy whose writer stops half-way for longer than a file needs to settle (a stalled
/// network copy) is not rejected: a truncated file gets longer to be finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_pauses_half_way_is_not_rejected() {
    let f = Fixture::new("pause", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    let b = std::fs::read(guest("echo-b.wasm")).unwrap();
    let (first, rest) = b.split_at(b.len() / 2);
    let mut out = std::fs::File::create(f.dir.join("echo@1.wasm")).unwrap();
    {
        use std::io::Write;
        out.write_all(first).unwrap();
        out.flush().unwrap();
        // The pause is the scenario: three times the 0.5 s a file gets to settle.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            reg.stats().rejects.load(Ordering::Relaxed),
            0,
            "the half-written file was rejected during the writer's pause"
        );
        out.write_all(rest).unwrap();
    }
    drop(out);
    wait_result(&reg, "echo@1", "p", "B:p").await;
    assert_eq!(reg.stats().rejects.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_are_followed_only_inside_the_dir() {
    let f = Fixture::new("link", "[activity.\"mapped@1\"]\nfile = \"echo-b.wasm\"\n");
    let outside = f.root.join("outside@1.wasm");
    std::fs::copy(example("echo@1.wasm"), &outside).unwrap();
    std::fs::copy(guest("echo-b.wasm"), f.dir.join("echo-b.wasm")).unwrap();
    std::os::unix::fs::symlink(&outside, f.dir.join("evil@1.wasm")).unwrap();
    std::fs::copy(example("echo@1.wasm"), f.dir.join("echo@1.wasm")).unwrap();
    std::os::unix::fs::symlink(f.dir.join("echo@1.wasm"), f.dir.join("alias@1.wasm")).unwrap();
    let reg = f.start().await;
    assert_eq!(
        reg.served("tl"),
        vec![ty("alias@1"), ty("echo@1"), ty("mapped@1")]
    );
    assert_eq!(reg.stats().rejects.load(Ordering::Relaxed), 1);
    assert_eq!(
        echo_result(&reg, "alias@1", "q").await.as_deref(),
        Some("q")
    );
    assert_eq!(
        echo_result(&reg, "mapped@1", "q").await.as_deref(),
        Some("B:q")
    );
}

/// `plugin_dir` as a symlink to a release dir, switched atomically to the next release (the
/// usual deploy): the new release's files serve, and removing the old release changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_dir_symlink_switched_to_another_release_is_followed() {
    let f = Fixture::new("release", "");
    std::fs::remove_dir(&f.dir).unwrap();
    let (v1, v2) = (f.root.join("releases/v1"), f.root.join("releases/v2"));
    for (dir, files) in [
        (&v1, vec![(example("echo@1.wasm"), "echo@1.wasm")]),
        (
            &v2,
            vec![
                (guest("echo-b.wasm"), "echo@1.wasm"),
                (example("validate@1.wasm"), "validate@1.wasm"),
            ],
        ),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        for (from, name) in files {
            std::fs::copy(from, dir.join(name)).unwrap();
        }
    }
    std::os::unix::fs::symlink("releases/v1", &f.dir).unwrap();
    let reg = f.start().await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
    assert_eq!(echo_result(&reg, "echo@1", "x").await.as_deref(), Some("x"));

    let next = f.root.join("plugins.next");
    std::os::unix::fs::symlink("releases/v2", &next).unwrap();
    std::fs::rename(&next, &f.dir).unwrap();
    wait_result(&reg, "echo@1", "x", "B:x").await;
    wait_for("validate@1 from the new release", LIMIT, || {
        reg.served("tl") == vec![ty("echo@1"), ty("validate@1")]
    })
    .await;
    let served_from = reg.lookup("tl", &ty("echo@1")).unwrap().path.clone();
    assert!(
        served_from.ends_with("releases/v2/echo@1.wasm"),
        "{served_from:?}"
    );

    std::fs::remove_dir_all(&v1).unwrap();
    // A change in the new release is seen, and the old release's removal retired nothing.
    std::fs::copy(
        example("countdown@1.wasm"),
        v2.join(".countdown@1.wasm.tmp"),
    )
    .unwrap();
    std::fs::rename(
        v2.join(".countdown@1.wasm.tmp"),
        v2.join("countdown@1.wasm"),
    )
    .unwrap();
    wait_for("countdown@1 from the new release", LIMIT, || {
        reg.lookup("tl", &ty("countdown@1")).is_some()
    })
    .await;
    assert_eq!(
        reg.served("tl"),
        vec![ty("countdown@1"), ty("echo@1"), ty("validate@1")]
    );
    assert_eq!(reg.stats().retirements.load(Ordering::Relaxed), 0);
}

/// A broken file whose modification time lies in the future (copied from a machine whose
/// clock is ahead) is rejected, not taken for a file still being written and compiled
/// again every half second until the clock catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_from_the_future_is_rejected() {
    let f = Fixture::new("future", "");
    let reg = f.start().await;
    let tmp = f.dir.join(".bad@1.wasm.tmp");
    std::fs::write(&tmp, b"\0asm but not a component").unwrap();
    let ahead = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    std::fs::rename(&tmp, f.dir.join("bad@1.wasm")).unwrap();
    wait_for("bad@1.wasm rejected", LIMIT, || {
        reg.stats().rejects.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(reg.served("tl").is_empty());
}

/// A release switch is a swap of every file at once, and a broken file never replaces a
/// working version: a type whose file in the new release does not load keeps serving from
/// the old release until it does, and is retired once the new release drops the file. A
/// type the new release does not have is retired at the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_switch_keeps_a_type_whose_new_file_does_not_load() {
    let f = Fixture::new("release-broken", "");
    std::fs::remove_dir(&f.dir).unwrap();
    let (v1, v2) = (f.root.join("releases/v1"), f.root.join("releases/v2"));
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::copy(example("echo@1.wasm"), v1.join("echo@1.wasm")).unwrap();
    std::fs::copy(example("countdown@1.wasm"), v1.join("countdown@1.wasm")).unwrap();
    std::fs::write(v2.join("echo@1.wasm"), b"\0asm but not a component").unwrap();
    std::fs::copy(example("validate@1.wasm"), v2.join("validate@1.wasm")).unwrap();
    std::os::unix::fs::symlink("releases/v1", &f.dir).unwrap();
    let reg = f.start().await;
    assert_eq!(reg.served("tl"), vec![ty("countdown@1"), ty("echo@1")]);

    let next = f.root.join("plugins.next");
    std::os::unix::fs::symlink("releases/v2", &next).unwrap();
    std::fs::rename(&next, &f.dir).unwrap();
    wait_for("the new release's scan", LIMIT, || {
        reg.lookup("tl", &ty("validate@1")).is_some()
    })
    .await;
    // Young, the broken file is taken for one still being written; then it is rejected.
    assert_eq!(reg.served("tl"), vec![ty("echo@1"), ty("validate@1")]);
    wait_for("the new echo@1.wasm rejected", LIMIT, || {
        reg.stats().rejects.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1"), ty("validate@1")]);
    let echo = reg.lookup("tl", &ty("echo@1")).unwrap();
    assert!(
        echo.path.ends_with("releases/v1/echo@1.wasm"),
        "{:?}",
        echo.path
    );
    assert_eq!(echo_result(&reg, "echo@1", "x").await.as_deref(), Some("x"));

    std::fs::remove_file(v2.join("echo@1.wasm")).unwrap();
    wait_for("echo@1 retired", LIMIT, || {
        reg.lookup("tl", &ty("echo@1")).is_none()
    })
    .await;
    assert_eq!(reg.served("tl"), vec![ty("validate@1")]);
}

/// A registry serving echo@1 from a plugin dir that was then moved away, once a scan has
/// found the dir gone; and where the dir went.
async fn serving_echo_from_a_dir_that_then_vanishes(
    name: &str,
) -> (Fixture, Arc<Registry>, PathBuf) {
    let f = Fixture::new(name, "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    // Moved away in one step, as an unmount does: `remove_dir_all` deletes the files before
    // the dir, and a scan in between (the one the watcher makes as it starts) rightly sees
    // a readable dir without echo@1.wasm, which retires the type.
    let elsewhere = f.root.join("elsewhere");
    std::fs::rename(&f.dir, &elsewhere).unwrap();
    wait_for("a scan of the vanished dir", LIMIT, || {
        reg.stats().unreadable.load(Ordering::Relaxed) > 0
    })
    .await;
    (f, reg, elsewhere)
}

/// A plugin dir that cannot be read (removed, unmounted, permissions) says nothing about
/// which files it holds: the plugins loaded keep serving, and the dir is read again when it
/// comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_dir_that_cannot_be_read_keeps_its_plugins_serving() {
    let (f, reg, elsewhere) = serving_echo_from_a_dir_that_then_vanishes("unreadable").await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
    assert_eq!(echo_result(&reg, "echo@1", "x").await.as_deref(), Some("x"));

    // Back, with one more plugin: the watcher of the dir holding it sees the rename.
    std::fs::copy(
        example("countdown@1.wasm"),
        elsewhere.join("countdown@1.wasm"),
    )
    .unwrap();
    std::fs::rename(&elsewhere, &f.dir).unwrap();
    wait_for("countdown@1 once the dir is back", LIMIT, || {
        reg.lookup("tl", &ty("countdown@1")).is_some()
    })
    .await;
    assert_eq!(reg.served("tl"), vec![ty("countdown@1"), ty("echo@1")]);
    assert_eq!(reg.stats().retirements.load(Ordering::Relaxed), 0);
}

/// A plugin dir that went away and is back as another dir at the same path (made again, a
/// release renamed into place): its files serve, and a file dropped in later is loaded, so
/// the host watches the new dir, not the one that went away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_dir_made_again_is_watched_again() {
    let (f, reg, _) = serving_echo_from_a_dir_that_then_vanishes("madeagain").await;
    dir_renamed_into_place_is_watched(&f, &reg, &guest("echo-b.wasm"), "B:x").await;
    assert_eq!(reg.stats().retirements.load(Ordering::Relaxed), 0);
}

/// Renames a new plugin dir holding echo@1 (from `echo`, answering "x" with `answer`) into
/// place, then checks that a file dropped into it later is loaded.
async fn dir_renamed_into_place_is_watched(f: &Fixture, reg: &Registry, echo: &Path, answer: &str) {
    let next = f.root.join("plugins.next");
    std::fs::create_dir(&next).unwrap();
    std::fs::copy(echo, next.join("echo@1.wasm")).unwrap();
    std::fs::rename(&next, &f.dir).unwrap();
    wait_result(reg, "echo@1", "x", answer).await;
    // Once the looks this asked for are made, only a watch on the new dir sees the next file.
    wait_for("the planned scans", LIMIT, || !reg.scan_planned("tl")).await;

    f.put(&example("countdown@1.wasm"), "countdown@1.wasm");
    wait_for("countdown@1 dropped into the new dir", LIMIT, || {
        reg.lookup("tl", &ty("countdown@1")).is_some()
    })
    .await;
}

/// A plugin dir replaced by another at the same path without any scan finding the path
/// empty (`rm -rf plugins && mv plugins.new plugins` between two scans; here one rename onto
/// the empty dir, so no scan can fall in between): the host watches the new dir, so a file
/// dropped in later is loaded. Then the same for `rm -rf plugins; mkdir plugins`, where the
/// new dir may even get the old one's inode number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_dir_replaced_between_two_scans_is_watched_again() {
    let f = Fixture::new("replaced", "");
    let reg = f.start().await;
    assert!(reg.served("tl").is_empty());
    dir_renamed_into_place_is_watched(&f, &reg, &example("echo@1.wasm"), "x").await;
    assert_eq!(reg.stats().unreadable.load(Ordering::Relaxed), 0);
    assert_eq!(reg.served("tl"), vec![ty("countdown@1"), ty("echo@1")]);

    std::fs::remove_dir_all(&f.dir).unwrap();
    std::fs::create_dir(&f.dir).unwrap();
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    wait_for("echo@1 alone in the dir made again", LIMIT, || {
        reg.served("tl") == vec![ty("echo@1")]
    })
    .await;
    wait_for("the planned scans", LIMIT, || !reg.scan_planned("tl")).await;
    f.put(&example("validate@1.wasm"), "validate@1.wasm");
    wait_for("validate@1 dropped into the dir made again", LIMIT, || {
        reg.lookup("tl", &ty("validate@1")).is_some()
    })
    .await;
}

/// A new version of a file with the same size and modification time, renamed into place
/// (`cp -p`, `rsync -a`, reproducible builds), is loaded: its inode tells it apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_with_the_same_size_and_mtime_is_loaded() {
    use sha2::{Digest, Sha256};
    let f = Fixture::new("samestamp", "");
    // Two versions of one component, told apart by a custom section of the same length.
    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    let version = |fill: u8| {
        let mut bytes = echo.clone();
        // Custom section: id 0, size 17, name "pad" (length 3), 13 bytes of `fill`.
        bytes.extend_from_slice(&[0, 17, 3, b'p', b'a', b'd']);
        bytes.extend_from_slice(&[fill; 13]);
        bytes
    };
    let served = f.dir.join("echo@1.wasm");
    std::fs::write(&served, version(b'a')).unwrap();
    let reg = f.start().await;
    let mtime = std::fs::metadata(&served).unwrap().modified().unwrap();

    let next = f.dir.join(".echo@1.wasm.tmp");
    let b = version(b'b');
    std::fs::write(&next, &b).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&next, &served).unwrap();
    let want = hex::encode(Sha256::digest(&b));
    wait_for("the new version's hash", LIMIT, || {
        reg.lookup("tl", &ty("echo@1"))
            .is_some_and(|p| p.hash == want)
    })
    .await;
    assert_eq!(reg.stats().swaps.load(Ordering::Relaxed), 1);
}

/// A type that `[activity] file` maps to a file is served from that file, even when a
/// `<name>@<version>.wasm` of the same type lies beside it; removing that other file
/// retires nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_type_is_served_from_its_mapped_file_only() {
    let f = Fixture::new("mapped", "[activity.\"echo@1\"]\nfile = \"echo-b.wasm\"\n");
    f.put(&guest("echo-b.wasm"), "echo-b.wasm");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let reg = f.start().await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
    assert_eq!(
        echo_result(&reg, "echo@1", "q").await.as_deref(),
        Some("B:q")
    );
    assert_eq!(reg.stats().rejects.load(Ordering::Relaxed), 1);

    std::fs::remove_file(f.dir.join("echo@1.wasm")).unwrap();
    f.put(&example("validate@1.wasm"), "validate@1.wasm");
    wait_for("validate@1", LIMIT, || {
        reg.lookup("tl", &ty("validate@1")).is_some()
    })
    .await;
    assert_eq!(
        echo_result(&reg, "echo@1", "q").await.as_deref(),
        Some("B:q")
    );
    assert_eq!(reg.stats().retirements.load(Ordering::Relaxed), 0);
}

fn cache_entries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(root.join("cache")).unwrap().flatten() {
        for e in std::fs::read_dir(d.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "cwasm") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_cache_skips_compiling_and_corrupt_entries_are_recompiled() {
    let f = Fixture::new("cache", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    f.put(&example("countdown@1.wasm"), "countdown@1.wasm");
    let cold = Registry::load(&f.config, Runtime::new(&f.config).unwrap())
        .await
        .unwrap();
    assert_eq!(cold.stats().compiles.load(Ordering::Relaxed), 2);
    assert_eq!(cold.stats().cache_hits.load(Ordering::Relaxed), 0);
    drop(cold);

    let warm = Registry::load(&f.config, Runtime::new(&f.config).unwrap())
        .await
        .unwrap();
    assert_eq!(warm.stats().compiles.load(Ordering::Relaxed), 0);
    assert_eq!(warm.stats().cache_hits.load(Ordering::Relaxed), 2);
    assert_eq!(
        echo_result(&warm, "echo@1", "w").await.as_deref(),
        Some("w")
    );
    drop(warm);

    let entries = cache_entries(&f.root);
    assert_eq!(entries.len(), 2);
    for e in &entries {
        let mut bytes = std::fs::read(e).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xff);
        std::fs::write(e, bytes).unwrap();
    }
    let healed = Registry::load(&f.config, Runtime::new(&f.config).unwrap())
        .await
        .unwrap();
    assert_eq!(healed.stats().compiles.load(Ordering::Relaxed), 2);
    assert_eq!(healed.stats().cache_hits.load(Ordering::Relaxed), 0);
    assert_eq!(
        echo_result(&healed, "echo@1", "h").await.as_deref(),
        Some("h")
    );
    drop(healed);

    let again = Registry::load(&f.config, Runtime::new(&f.config).unwrap())
        .await
        .unwrap();
    assert_eq!(
        again.stats().cache_hits.load(Ordering::Relaxed),
        2,
        "the recompiled code was not cached again"
    );
}

/// A file still being written when the host starts (young and not yet valid) is looked at
/// again once it settles, and rejected if it stays broken: it is never left pending
/// unreported just because no later change reached the watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_half_written_at_start_is_settled_later() {
    let f = Fixture::new("young", "");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    std::fs::write(f.dir.join("half@1.wasm"), &echo[..echo.len() / 2]).unwrap();
    let reg = f.start().await;
    assert_eq!(echo_result(&reg, "echo@1", "a").await.as_deref(), Some("a"));
    wait_for("the half-written file rejected", LIMIT, || {
        reg.stats().rejects.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(reg.served("tl"), vec![ty("echo@1")]);
}

/// A type whose `memory_mb` is below what its component needs to start is not served (every
/// task would fail): the load is rejected naming the setting, and the other types of the
/// dir serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_whose_memory_mb_cannot_start_its_component_is_rejected() {
    let f = Fixture::new("tight", "[activity.\"echo@1\"]\nmemory_mb = 1\n");
    f.put(&example("echo@1.wasm"), "echo@1.wasm");
    f.put(&example("echo@1.wasm"), "echo@2.wasm");
    let reg = f.start().await;
    assert_eq!(reg.served("tl"), vec![ty("echo@2")]);
    assert_eq!(reg.stats().rejects.load(Ordering::Relaxed), 1);
    assert_eq!(echo_result(&reg, "echo@2", "m").await.as_deref(), Some("m"));
}
