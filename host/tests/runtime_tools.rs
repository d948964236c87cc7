//! `swasm invoke`, `swasm check`, `swasm plugins` as a user runs them: the real binary, on
//! every language's example output and on bad files.

mod runtime_common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use runtime_common::*;

fn swasm(args: &[&str]) -> Output {
    swasm_with_env(args, &[])
}

/// `swasm ARGS` with `env` added to the test's environment. Panics, with what it printed, if
/// it still runs after 2 minutes (it is killed first), so a hung command fails its test
/// instead of the whole run's time limit.
fn swasm_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    const LIMIT: Duration = Duration::from_secs(120);
    let cache = std::env::temp_dir().join("swasm-tools-test-cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_swasm"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("RUST_LOG", "warn,swasm::guest=info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run swasm");
    // Read on threads, so the child never blocks on a full pipe while it is waited for.
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for swasm") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status: status.unwrap_or_else(|| ExitStatus::from_raw(9)),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    if status.is_none() {
        panic!(
            "swasm {args:?} still ran after {LIMIT:?}\n{}",
            text(&output)
        );
    }
    output
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

const LANGS: &[&str] = &["", "-py", "-js", "-c"];

#[test]
fn invoke_echo_in_every_language() {
    for lang in LANGS {
        let file = example(&format!("echo{lang}@1.wasm"));
        let o = swasm(&["invoke", path(&file), "--input", "hi there"]);
        assert_eq!(o.status.code(), Some(0), "{lang}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("completed: hi there"),
            "{lang}: {}",
            text(&o)
        );
        let o = swasm(&[
            "invoke",
            path(&file),
            "--input",
            "fail",
            "--log-format",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(1), "{lang}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("failed: BadInput"),
            "{lang}: {}",
            text(&o)
        );
        // Every echo writes a line to stderr on this path: the host logs it, tagged.
        let tagged = String::from_utf8_lossy(&o.stderr).lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v["target"] == "swasm::guest"
                    && v["activity_type"] == format!("echo{lang}@1").as_str()
                    && v["message"].as_str().is_some_and(|m| m.contains("echo"))
            })
        });
        assert!(tagged, "{lang}: no tagged guest log line: {}", text(&o));
    }
}

/// `swasm invoke ... | head -1`: a reader that closed its end of stdout ends the output,
/// not the command. The exit code still says how the task went (1: failed), and nothing
/// panics. The pipe's read end is closed before the command writes a line: it compiles the
/// component first.
#[test]
fn invoke_into_a_closed_pipe_keeps_its_exit_code() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_swasm"))
        .args(["invoke", path(&example("echo@1.wasm")), "--input", "fail"])
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("swasm-tools-test-cache"),
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run swasm");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("A panic occurred"),
        "{stderr}"
    );
}

#[test]
fn invoke_countdown_lists_heartbeats_and_simulates_cancel() {
    for lang in LANGS {
        let file = example(&format!("countdown{lang}@1.wasm"));
        let o = swasm(&[
            "invoke",
            path(&file),
            "--input",
            r#"{"steps":5,"step_ms":1}"#,
            "--cancel-after",
            "2",
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(2), "{lang}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{lang}: {e}: {}", text(&o)));
        assert_eq!(v["outcome"], "canceled", "{lang}: {v}");
        let beats = v["heartbeats"].as_array().unwrap();
        assert_eq!(beats.len(), 2, "{lang}: {v}");
        assert_eq!(beats[1]["cancel_requested"], true);
        assert!(
            beats[0]["details"].as_str().unwrap().contains('1'),
            "{lang}: {v}"
        );
    }
}

/// A trap's details name the panic and the wasm frames, never the host's own Rust
/// backtrace, which wasmtime captures when the host runs with `RUST_BACKTRACE=1`.
#[test]
fn a_trap_reports_the_guest_panic_without_the_host_backtrace() {
    let trap = guest("trap@1.wasm");
    let o = swasm_with_env(
        &["invoke", path(&trap), "--input", "x"],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("failed: swasm.Trap"), "{out}");
    assert!(out.contains("boom"), "{out}");
    assert!(out.contains("wasm backtrace"), "{out}");
    assert!(
        !out.contains("Stack backtrace") && !out.contains("wasmtime::runtime"),
        "the host's backtrace reached the details: {out}"
    );
}

/// `invoke --memory-mb` above the run-time default of 256 is the limit the guest meets.
#[test]
fn invoke_honours_a_memory_limit_above_the_default() {
    let hog = guest("hog@1.wasm");
    let o = swasm(&["invoke", path(&hog), "--memory-mb", "600"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("failed: swasm.MemoryLimit"), "{out}");
    assert!(
        out.contains(
            "(limit 629145600 bytes = memory_mb, for all the task's memories and tables together)"
        ),
        "the guest did not reach its own 600 MiB limit: {out}"
    );
}

#[test]
fn check_accepts_every_language() {
    for lang in LANGS {
        let file = example(&format!("echo{lang}@1.wasm"));
        let o = swasm(&["check", path(&file)]);
        assert_eq!(o.status.code(), Some(0), "{lang}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("swasm:activity/plugin: ok"), "{out}");
        assert!(out.contains("sha256:"), "{out}");
        assert!(
            out.contains("imports:") && out.contains("wasi:cli/"),
            "{out}"
        );
    }
}

#[test]
fn bad_files_are_explained() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("text@1.wasm", b"hello", "not a WebAssembly file"),
        ("core@1.wasm", b"\0asm\x01\0\0\0", "core WebAssembly module"),
        (
            "empty@1.wasm",
            b"\0asm\x0d\0\x01\0",
            "does not export `swasm:activity/activity@0.1.0`",
        ),
        ("half@1.wasm", &echo[..echo.len() / 2], "truncated"),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = swasm(&["check", path(&p)]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(expect), "{name}: {}", text(&o));
        let o = swasm(&["invoke", path(&p)]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", text(&o));
        assert!(text(&o).contains(expect), "{name}: {}", text(&o));
    }

    // `swasm plugins` lists good and bad files of a config's plugin dirs.
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(example("echo@1.wasm"), plugins.join("echo@1.wasm")).unwrap();
    std::fs::write(plugins.join("core@1.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let cfg = dir.join("swasm.toml");
    std::fs::write(&cfg, "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[cache]\ndir = \"cache\"\n").unwrap();
    let o = swasm(&["plugins", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let echo_line = out.lines().find(|l| l.contains("echo@1.wasm")).expect(&out);
    assert!(echo_line.contains("\tok"), "{out}");
    let core_line = out.lines().find(|l| l.contains("core@1.wasm")).expect(&out);
    assert!(
        core_line.contains("ERROR") && core_line.contains("core WebAssembly module"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--json` reports a file whose path is not UTF-8 (Linux allows any bytes but `/` and NUL)
/// like any other, with the path's undecodable bytes replaced, instead of panicking.
#[test]
fn json_reports_paths_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("swasm-tools-bytes-{}", std::process::id()));
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"\xff"));
    let plugins = odd.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let echo = plugins.join("echo@1.wasm");
    std::fs::copy(example("echo@1.wasm"), &echo).unwrap();
    let cfg = odd.join("swasm.toml");
    std::fs::write(&cfg, "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[cache]\ndir = \"cache\"\n").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_swasm"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run swasm")
    };
    for args in [
        vec!["check".as_ref(), "--json".as_ref(), echo.as_os_str()],
        vec![
            "plugins".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)));
        assert!(v["file"].as_str().unwrap().contains("\u{fffd}/"), "{v}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A `plugin_dir` that does not exist stops `swasm run` with the file, the line and the key,
/// as a config validation error does.
#[test]
fn a_missing_plugin_dir_is_named_with_its_line() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-nodir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("swasm.toml");
    std::fs::write(
        &cfg,
        "[swf]\ndomain = \"d\"\n\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"nope\"\n",
    )
    .unwrap();
    let o = swasm(&["run", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let expect = format!("{}:6: task_list[0].plugin_dir:", cfg.display());
    assert!(text(&o).contains(&expect), "{expect:?} in {}", text(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A malformed `--env` or `--type` is a usage error (exit 2), as README's exit codes say.
#[test]
fn bad_invoke_flags_are_usage_errors() {
    let echo = example("echo@1.wasm");
    for (flag, value, expect) in [
        ("--env", "C", "must be KEY=VALUE"),
        ("--env", "=v", "must be KEY=VALUE"),
        ("--type", "echo", "must be name@version"),
        ("--cancel-after", "0", "not in 1.."),
    ] {
        let o = swasm(&["invoke", path(&echo), flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", text(&o));
        assert!(text(&o).contains(expect), "{flag} {value}: {}", text(&o));
    }
    // A file that is not there is no plugin swasm can load: 3, not the guest's failure (1).
    let o = swasm(&["invoke", "/nonexistent/echo@1.wasm"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("cannot read /nonexistent/echo@1.wasm"),
        "{}",
        text(&o)
    );
}

/// `--memory-mb` below what a component needs at start refuses the file for the type (exit
/// 3, the setting named), as `swasm run` does, instead of failing a task it never runs.
#[test]
fn invoke_below_the_initial_memory_is_refused_as_run_refuses_it() {
    let echo = example("echo@1.wasm");
    let o = swasm(&[
        "invoke",
        path(&echo),
        "--memory-mb",
        "1",
        "--input",
        "\"x\"",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let expect = format!("error: {}: echo@1: the component needs", echo.display());
    assert!(text(&o).contains(&expect), "{expect:?} in {}", text(&o));
    assert!(text(&o).contains("memory_mb = 1"), "{}", text(&o));
    assert!(!text(&o).contains("swasm.MemoryLimit"), "{}", text(&o));
}

/// `swasm plugins` flags a type whose `memory_mb` is below what its component needs to
/// start, naming the type and the setting, as the host rejects it.
#[test]
fn plugins_flags_a_memory_mb_too_small_to_start() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-tight-{}", std::process::id()));
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(example("echo@1.wasm"), plugins.join("echo@1.wasm")).unwrap();
    let cfg = dir.join("swasm.toml");
    std::fs::write(
        &cfg,
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[activity.\"echo@1\"]\nmemory_mb = 1\n",
    )
    .unwrap();
    let o = swasm(&["plugins", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().find(|l| l.contains("echo@1.wasm")).expect(&out);
    assert!(
        line.contains("ERROR echo@1: the component needs") && line.contains("memory_mb = 1"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `echo@1.wasm` with a component-level custom section that makes it `size` bytes or more:
/// as big as a Python or JavaScript component, as quick to compile as echo.
fn padded_echo(size: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut bytes = std::fs::read(example("echo@1.wasm")).unwrap();
    let name = b"padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.resize(size.saturating_sub(bytes.len()), 0);
    bytes.push(0); // custom section
    leb(payload.len(), &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

/// `invoke` and `check` compile a big component with Cranelift, as `swasm run` ends up
/// serving it, not Winch first: the only compiled code they leave in the cache is
/// Cranelift's.
#[test]
fn invoke_and_check_compile_big_components_with_cranelift() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("echo@1.wasm");
    std::fs::write(&file, padded_echo(2 << 20)).unwrap();
    for (tool, args) in [
        ("invoke", vec!["invoke", path(&file), "--input", "hi"]),
        ("check", vec!["check", path(&file)]),
    ] {
        let cache = dir.join(format!("cache-{tool}"));
        let o = swasm_with_env(&args, &[("XDG_CACHE_HOME", path(&cache))]);
        assert_eq!(o.status.code(), Some(0), "{tool}: {}", text(&o));
        let engines: Vec<String> = std::fs::read_dir(cache.join("swasm"))
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            engines.len() == 1 && engines[0].contains("cranelift"),
            "{tool}: cache entries of {engines:?}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `invoke` shows the answer `swasm run` would send: failure details longer than SWF
/// accepts are cut to its 32768 characters, as run cuts them.
#[test]
fn invoke_cuts_failure_details_to_what_swf_accepts() {
    let email = "x".repeat(40_000);
    let input = format!(r#"{{"email":"{email}"}}"#);
    let o = swasm(&[
        "invoke",
        path(&example("validate@1.wasm")),
        "--input",
        &input,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["reason"], "BadInput", "{v}");
    let details = v["details"].as_str().expect("details");
    assert!(
        details.starts_with("field \"email\" has no '@'"),
        "{details}"
    );
    assert_eq!(details.chars().count(), 32768);
}

/// `swasm plugins` (and so `swasm register`, which loads files the same way) warns about a
/// version without the `[activity]` table another version of its name has: it would serve,
/// and be registered, with `[defaults]` only. Once per type, naming the file and the table.
#[test]
fn plugins_warns_about_a_version_without_its_names_table() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (sub, name) in [
        ("a", "envread@1.wasm"),
        ("a", "envread@2.wasm"),
        ("b", "envread@2.wasm"),
        ("a", "echo@1.wasm"),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::copy(example("echo@1.wasm"), dir.join(sub).join(name)).unwrap();
    }
    let cfg = dir.join("swasm.toml");
    std::fs::write(
        &cfg,
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"a\"\nplugin_dir = \"a\"\n\
         [[task_list]]\nname = \"b\"\nplugin_dir = \"b\"\n[cache]\ndir = \"cache\"\n\
         [activity.\"envread@1\"]\nenv = { GREETING = \"hello\" }\n",
    )
    .unwrap();
    let o = swasm(&["plugins", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("has no [activity."))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let file = dir.canonicalize().unwrap().join("a/envread@2.wasm");
    assert!(
        warnings[0].contains(&format!(
            "{}: envread@2 has no [activity.\"envread@2\"] table in {}",
            file.display(),
            cfg.display()
        )) && warnings[0].contains("[activity.\"envread@1\"] sets another version of envread"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `swasm plugins` lists, under a header row, the files of a plugin dir it passes over by
/// their names (not `*.wasm` in lower case, hidden), each with why, instead of leaving them
/// out silently; they fail nothing. `--json` says the same, one object per file with the
/// same keys.
#[test]
fn plugins_lists_the_files_it_ignores_under_a_header() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-ignored-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(plugins.join(".builds")).unwrap();
    for name in [
        "echo@1.wasm",
        "Echo@2.WASM",
        "echo@1.wasm.bak",
        "README.txt",
        ".echo@3.wasm.tmp",
    ] {
        std::fs::copy(example("echo@1.wasm"), plugins.join(name)).unwrap();
    }
    // A name that is not UTF-8 (an activity type is text), shown with U+FFFD for the byte.
    let raw = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"echo\xff@1.wasm");
    std::fs::copy(example("echo@1.wasm"), plugins.join(raw)).unwrap();
    let cfg = dir.join("swasm.toml");
    std::fs::write(&cfg, "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"tl\"\nplugin_dir = \"plugins\"\n[cache]\ndir = \"cache\"\n").unwrap();
    let o = swasm(&["plugins", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "TASK LIST\tFILE\tTYPES\tSIZE\tSHA256\tSTATUS",
        "{out}"
    );
    let row = |name: &str| -> Vec<&str> {
        let suffix = format!("/{name}");
        lines
            .iter()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|cells| cells.get(1).is_some_and(|f| f.ends_with(&suffix)))
            .unwrap_or_else(|| panic!("no row for {name} in {out}"))
    };
    assert_eq!(row("echo@1.wasm")[5], "ok", "{out}");
    assert_eq!(row("echo@1.wasm").len(), 6, "as many cells as the header");
    for (name, why) in [
        (
            "Echo@2.WASM",
            "IGNORED the name must end in \".wasm\" in lower case: rename it to Echo@2.wasm",
        ),
        (
            "echo@1.wasm.bak",
            "IGNORED the name does not end in \".wasm\"",
        ),
        ("README.txt", "IGNORED not a plugin"),
        (".echo@3.wasm.tmp", "IGNORED hidden"),
        ("echo\u{fffd}@1.wasm", "IGNORED its name is not UTF-8 text"),
    ] {
        let cells = row(name);
        assert_eq!(cells.len(), 6, "{out}");
        assert_eq!(cells[2], "-", "{out}");
        assert!(cells[5].starts_with(why), "{name}: {why:?} in {out}");
    }
    assert!(
        !out.contains(".builds"),
        "directories are not listed: {out}"
    );
    // The ignored files come after the plugins.
    assert!(lines[1].contains("/echo@1.wasm\t"), "{out}");

    let o = swasm(&["plugins", "--json", "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 6, "{objects:#?}");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert!(
        objects.iter().all(|o| keys(o) == keys(&objects[0])),
        "{objects:#?}"
    );
    assert!(objects[0]["ignored"].is_null() && objects[0]["error"].is_null());
    let bak = objects
        .iter()
        .find(|o| o["file"].as_str().unwrap().ends_with("/echo@1.wasm.bak"))
        .unwrap();
    assert!(
        bak["ignored"]
            .as_str()
            .unwrap()
            .starts_with("the name does not end in \".wasm\""),
        "{bak}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `swasm invoke --config` runs the component in the sandbox `swasm run` gives its type:
/// the `[activity]` table's env and dirs over `[defaults]`, with `--env` extending and
/// `--timeout-s` overriding it; a config that does not load exits 3 (nothing ran), naming it.
#[test]
fn invoke_with_a_config_gets_the_types_grants() {
    let dir =
        std::env::temp_dir().join(format!("swasm-tools-invoke-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::create_dir_all(dir.join("shared")).unwrap();
    std::fs::write(dir.join("shared/report.csv"), "a,b\n").unwrap();
    let cfg = dir.join("swasm.toml");
    std::fs::write(
        &cfg,
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"a\"\nplugin_dir = \"plugins\"\n\
         [defaults]\ntimeout_s = 60\n\
         [activity.\"envread@1\"]\nenv = { GREETING = \"hello\" }\n\
         dirs = [{ host = \"shared\", guest = \"/data\", read_only = true }]\n",
    )
    .unwrap();
    let plugin = guest("envread@1.wasm");
    let o = swasm(&[
        "invoke",
        path(&plugin),
        "--config",
        path(&cfg),
        "--env",
        "EXTRA=1",
        "--timeout-s",
        "5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let result: serde_json::Value =
        serde_json::from_str(out["result"].as_str().expect("a result")).unwrap();
    assert_eq!(
        result,
        serde_json::json!({"env": {"GREETING": "hello", "EXTRA": "1"}, "data": ["report.csv"]})
    );

    // Without --config nothing is granted.
    let o = swasm(&["invoke", path(&plugin), "--json"]);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let result: serde_json::Value = serde_json::from_str(out["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["env"], serde_json::json!({}));
    assert!(
        result["data"].as_str().unwrap().starts_with("denied"),
        "{result}"
    );

    // The stack is the engine's, as under `run`: another table's max_stack_kb raises it.
    let recurse = guest("recurse@1.wasm");
    let deep = ["invoke", path(&recurse), "--input", "100000"];
    assert_eq!(swasm(&deep).status.code(), Some(1), "512 KiB is too little");
    std::fs::write(
        &cfg,
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"a\"\nplugin_dir = \"plugins\"\n\
         [activity.\"other@1\"]\nmax_stack_kb = 32768\n",
    )
    .unwrap();
    let o = swasm(&[&deep[..], &["--config", path(&cfg)]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    std::fs::write(&cfg, "[swf]\ndomain = \"d\"\nbogus = 1\n").unwrap();
    let o = swasm(&["invoke", path(&plugin), "--config", path(&cfg)]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains(&cfg.display().to_string()),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The files under `dir`, at any depth (none when it does not exist).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files = vec![];
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(files_under(&p));
        } else {
            files.push(p);
        }
    }
    files
}

/// `swasm invoke --config` compiles through the config's `[cache]`, as `swasm run` under it
/// would: into its `dir`, or nowhere when `enabled = false`; never into the default cache
/// (the child's HOME and XDG_CACHE_HOME point at a directory of the test's own).
#[test]
fn invoke_with_a_config_uses_its_cache() {
    let dir = std::env::temp_dir().join(format!("swasm-tools-invoke-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = [("HOME", path(&home)), ("XDG_CACHE_HOME", path(&home))];
    let cfg = dir.join("swasm.toml");
    let plugin = guest("envread@1.wasm");
    let invoke = ["invoke", path(&plugin), "--config", path(&cfg)];
    let task_list =
        "[swf]\ndomain = \"d\"\n[[task_list]]\nname = \"a\"\nplugin_dir = \"plugins\"\n";

    std::fs::write(&cfg, format!("{task_list}[cache]\ndir = \"cache\"\n")).unwrap();
    let o = swasm_with_env(&invoke, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !files_under(&dir.join("cache")).is_empty(),
        "nothing cached in [cache] dir"
    );
    assert_eq!(files_under(&home), Vec::<std::path::PathBuf>::new());

    std::fs::remove_dir_all(dir.join("cache")).unwrap();
    std::fs::write(
        &cfg,
        format!("{task_list}[cache]\ndir = \"cache\"\nenabled = false\n"),
    )
    .unwrap();
    let o = swasm_with_env(&invoke, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        files_under(&dir.join("cache")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(files_under(&home), Vec::<std::path::PathBuf>::new());
    std::fs::remove_dir_all(dir).unwrap();
}
