//! A bad `swasm.toml` is refused with an error that names the file, the line and the key,
//! as `file:line: key: problem` (a parse error: toml's own `line N, column M`). Each file in
//! `tests/fixtures/bad-config/` starts with `# expect: <text the error must contain>`.

use std::path::Path;

use swasm::config::Config;

#[test]
fn every_bad_config_fixture_is_refused_with_its_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()));
        let error = match Config::load(&file) {
            Ok(_) => panic!("{}: accepted", file.display()),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            error.contains(&file.display().to_string()),
            "{}: the error does not name the file: {error}",
            file.display()
        );
        assert!(
            error.contains(expect),
            "{}: expected {expect:?} in: {error}",
            file.display()
        );
    }
}

#[test]
fn the_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    Config::load(&examples.join("swasm.toml")).unwrap();
    // production.toml grants a server's /srv/images; any existing dir stands in for it.
    let production = examples.join("production.toml");
    let text = std::fs::read_to_string(&production).unwrap();
    assert!(text.contains("/srv/images"));
    let here = std::env::temp_dir();
    let text = text.replace("/srv/images", here.to_str().unwrap());
    Config::parse(&text, &production).unwrap();
}

/// The examples load without a warning: each one is something a user copies.
#[test]
fn the_examples_have_no_warnings() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let minimal = Config::load(&examples.join("swasm.toml")).unwrap();
    assert_eq!(minimal.warnings(), &[] as &[String]);
    let production = examples.join("production.toml");
    let text = std::fs::read_to_string(&production).unwrap();
    let here = std::env::temp_dir();
    let text = text.replace("/srv/images", here.to_str().unwrap());
    let config = Config::parse(&text, &production).unwrap();
    assert_eq!(config.warnings(), &[] as &[String]);
}

/// The values next to each refused one in the fixtures are accepted: every form of
/// `endpoint_url` and `[metrics] listen` that works today, and the bounds themselves.
#[test]
fn values_at_the_bounds_are_accepted() {
    let dir = temp_dir("bounds");
    let path = dir.join("swasm.toml");
    let description = "d".repeat(1024);
    for (endpoint, listen) in [
        ("http://127.0.0.1:8700", "127.0.0.1:9464"),
        ("https://swf.eu-west-1.amazonaws.com", "[::1]:9464"),
        ("http://localhost:8700/", "localhost:9464"),
        ("HTTPS://SWF.EXAMPLE.COM", "0.0.0.0:0"),
    ] {
        let text = format!(
            r#"[swf]
domain = "media"
endpoint_url = "{endpoint}"

[[task_list]]
name = "a"
plugin_dir = "."
max_concurrent = 4999

[[task_list]]
name = "b"
plugin_dir = "plugins"
max_concurrent = 1
pollers = 1

[defaults]
max_stack_kb = 64
description = "{description}"

[activity."echo@1"]
max_stack_kb = 65536

[metrics]
listen = "{listen}"
"#
        );
        if let Err(e) = Config::parse(&text, &path) {
            panic!("{endpoint} / {listen} refused: {e:#}");
        }
    }
}

/// What loads but most likely does not do what was meant is named, like an error, by file,
/// line and key: more pollers than slots, a `timeout_s` SWF cuts short (start-to-close or
/// schedule-to-close), an `[activity]`
/// table or `file` that matches no file in any plugin dir.
#[test]
fn doubtful_settings_are_warned_about() {
    let dir = temp_dir("warnings");
    for d in ["plugins/a", "plugins/b"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("plugins/a/echo@1.wasm"), b"").unwrap();
    std::fs::write(dir.join("plugins/b/resize-build-42.wasm"), b"").unwrap();
    let path = dir.join("swasm.toml");
    let text = r#"[swf]
domain = "d"

[[task_list]]
name = "a"
plugin_dir = "plugins/a"
max_concurrent = 2
pollers = 8

[[task_list]]
name = "b"
plugin_dir = "plugins/b"

[defaults]
timeout_s = 300
start_to_close_timeout_s = 10

[activity."echo@1"]
timeout_s = 5

[activity."ecoh@1"]
memory_mb = 64
env = { MODE = "fast" }

[activity."resize@2"]
file = "resize-build-42.wasm"
timeout_s = 600
start_to_close_timeout_s = 600

[activity."mapped@1"]
file = "mapped-build-42.wasm"

[activity."queued@1"]
file = "resize-build-42.wasm"
schedule_to_close_timeout_s = 300
"#;
    let config = Config::parse(text, &path).unwrap();
    let file = path.display().to_string();
    let expected = [
        format!(
            "{file}:8: task_list[0].pollers: 8 pollers but max_concurrent is 2: a poll waits for a free slot, so 6 of them can never poll"
        ),
        format!(
            "{file}:16: defaults.start_to_close_timeout_s: timeout_s (300) is not below start_to_close_timeout_s (10): SWF times the task out first, and refuses the host's answer"
        ),
        format!(
            "{file}:21: activity.\"ecoh@1\": no plugin dir holds ecoh@1.wasm, so these limits and grants apply to nothing yet (a typo in the name or version?); they will apply if the file is added later"
        ),
        format!(
            "{file}:28: activity.\"resize@2\".start_to_close_timeout_s: timeout_s (600) is not below start_to_close_timeout_s (600): SWF times the task out first, and refuses the host's answer"
        ),
        format!(
            "{file}:31: activity.\"mapped@1\".file: mapped-build-42.wasm is in no task list's plugin dir: mapped@1 is not served until it is"
        ),
        format!(
            "{file}:35: activity.\"queued@1\".schedule_to_close_timeout_s: timeout_s (300) is not below schedule_to_close_timeout_s (300): SWF times the task out first, and refuses the host's answer"
        ),
    ];
    assert_eq!(config.warnings(), &expected[..]);

    // With the numbers fixed and a plugin dir that cannot be read, nothing is warned about:
    // the file checks need every dir (the file may be in that one), and the missing dir is
    // reported on its own when the dirs are loaded.
    let quiet = text
        .replace("pollers = 8", "pollers = 2")
        .replace(
            "start_to_close_timeout_s = 10",
            "start_to_close_timeout_s = 900",
        )
        .replace(
            "start_to_close_timeout_s = 600",
            "start_to_close_timeout_s = 900",
        )
        .replace(
            "schedule_to_close_timeout_s = 300",
            "schedule_to_close_timeout_s = 900",
        )
        .replace("plugins/b\"", "plugins/missing\"");
    let config = Config::parse(&quiet, &path).unwrap();
    assert_eq!(config.warnings(), &[] as &[String]);
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "swasm-config-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The endpoint given outside the file is checked as `[swf] endpoint_url` is: a bad
/// `--endpoint-url` is a usage error (2), a bad AWS_ENDPOINT_URL_SWF stops `run` (1), each
/// named, instead of a worker that retries an endpoint it can never reach.
#[test]
fn an_endpoint_from_the_command_line_or_the_environment_is_checked() {
    let dir = temp_dir("endpoint-outside");
    std::fs::create_dir_all(dir.join("p")).unwrap();
    let config = dir.join("swasm.toml");
    std::fs::write(
        &config,
        "[swf]\ndomain = \"d\"\nregion = \"us-east-1\"\n\n[[task_list]]\nname = \"t\"\nplugin_dir = \"p\"\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_swasm"))
            .args(["run", "--config", config.to_str().unwrap()])
            .args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_SWF")
            .envs(env.iter().copied())
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .output()
            .unwrap()
    };
    let o = run(&["--endpoint-url", "ftp://127.0.0.1:8700"], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--endpoint-url") && stderr.contains("scheme \"ftp\""),
        "{stderr}"
    );

    let o = run(&[], &[("AWS_ENDPOINT_URL_SWF", "not a url")]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("AWS_ENDPOINT_URL_SWF: \"not a url\" must be an absolute"),
        "{stderr}"
    );
}

/// `--region` is checked as `[swf] region` is: an empty or malformed region would fail
/// every call, for ever, as a request the SDK cannot build.
#[test]
fn a_bad_region_flag_is_refused() {
    use clap::Parser;
    for bad in ["", "us east 1", "-us-east-1"] {
        let flag = format!("--region={bad}");
        let err = swasm::cli::Cli::try_parse_from(["swasm", "run", "-c", "x.toml", &flag])
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(
            err.to_string().contains("is not an AWS region name"),
            "{err}"
        );
    }
    assert!(
        swasm::cli::Cli::try_parse_from(["swasm", "run", "-c", "x.toml", "--region", "eu-west-1"])
            .is_ok()
    );
}

/// A read-write `dirs` grant that holds, is, or lies inside the compiled-code cache dir or
/// a plugin dir would let a guest put native code or a plugin where the host runs it:
/// refused at load, naming the file, the line, the table and both paths, however the
/// overlap is spelled (a symlink, `..`). Read-only grants of them are fine, and so is any
/// grant of the cache dir when the cache is off.
#[test]
fn read_write_grants_of_code_the_host_runs_are_refused() {
    let dir = temp_dir("rw-grants");
    for d in ["plugins/images", "plugins/x", "cache", "data", "secrets"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::os::unix::fs::symlink(dir.join("plugins/images"), dir.join("link")).unwrap();
    // `..` after a link is where the link leads's parent: `away/../images` opens
    // plugins/images, though written it reads as a sibling `images` of the config.
    std::os::unix::fs::symlink(dir.join("plugins/x"), dir.join("away")).unwrap();
    let path = dir.join("swasm.toml");
    let file = path.display().to_string();
    let config = |grant: &str, cache: &str| {
        format!(
            "[swf]\ndomain = \"d\"\n\n[[task_list]]\nname = \"images\"\nplugin_dir = \"plugins/images\"\n\n\
             [cache]\n{cache}\n\n[activity.\"resize@2\"]\nmemory_mb = 64\ndirs = [\n  \
             {{ host = \"secrets\", guest = \"/secrets\" }},\n  {grant},\n]\n"
        )
    };
    let cache_dir = "dir = \"cache\"";
    let canonical = |p: &str| dir.join(p).canonicalize().unwrap().display().to_string();
    let plugin_dir = "the plugin_dir of task list \"images\"";
    let cache = "the compiled-code cache dir ([cache] dir)";
    // (grant, the grant as the error names it, how it overlaps, what, that dir)
    for (grant, named, relation, what, guarded) in [
        (".", "", "contains", cache, "cache"),
        ("cache", "cache", "is", cache, "cache"),
        (
            "plugins",
            "plugins",
            "contains",
            plugin_dir,
            "plugins/images",
        ),
        ("link", "link", "is", plugin_dir, "plugins/images"),
        (
            "data/../plugins/images",
            "plugins/images",
            "is",
            plugin_dir,
            "plugins/images",
        ),
        (
            "away/../images",
            "images",
            "is",
            plugin_dir,
            "plugins/images",
        ),
    ] {
        let text = config(
            &format!("{{ host = \"{grant}\", guest = \"/rw\", read_only = false }}"),
            cache_dir,
        );
        let error = format!("{:#}", Config::parse(&text, &path).unwrap_err());
        let named = if named.is_empty() {
            dir.clone()
        } else {
            dir.join(named)
        };
        let expect = format!(
            "{file}:15: activity.\"resize@2\".dirs[1]: the read-write grant of {}",
            named.display()
        );
        assert!(error.starts_with(&expect), "{grant}: {expect:?} in {error}");
        assert!(
            error.contains(&format!("{relation} {what}, ")) && error.contains(&canonical(guarded)),
            "{grant}: {error}"
        );
        assert!(error.contains("read_only = true"), "{error}");
    }
    // Inside the cache dir: the grant's own line, and the cache dir by name.
    std::fs::create_dir_all(dir.join("cache/wasmtime-x")).unwrap();
    let text = config(
        "{ host = \"cache/wasmtime-x\", guest = \"/rw\", read_only = false }",
        cache_dir,
    );
    let error = format!("{:#}", Config::parse(&text, &path).unwrap_err());
    assert!(
        error.contains("lies inside the compiled-code cache dir ([cache] dir)"),
        "{error}"
    );
    // The default cache dir counts too, made or not (`swasm plugins` reads the config as
    // `run` does, in a process of its own with XDG_CACHE_HOME set).
    let home_cache = temp_dir("rw-grants-xdg");
    let text = config(
        &format!(
            "{{ host = \"{}\", guest = \"/rw\", read_only = false }}",
            home_cache.display()
        ),
        "",
    );
    std::fs::write(&path, text).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_swasm"))
        .args(["plugins", "--config", path.to_str().unwrap()])
        .env("XDG_CACHE_HOME", &home_cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}:15: activity.\"resize@2\".dirs[1]: the read-write grant of {} contains \
             the compiled-code cache dir ([cache] dir), {}",
            home_cache.display(),
            home_cache.join("swasm").display()
        )),
        "{stderr}"
    );

    // Read-only grants of the same dirs, a read-write grant elsewhere, and a read-write
    // grant of the cache dir with the cache off, all load.
    for (grant, cache) in [
        ("{ host = \".\", guest = \"/all\" }", cache_dir),
        (
            "{ host = \"plugins/images\", guest = \"/p\", read_only = true }",
            cache_dir,
        ),
        (
            "{ host = \"cache\", guest = \"/c\", read_only = true }",
            cache_dir,
        ),
        (
            "{ host = \"data\", guest = \"/rw\", read_only = false }",
            cache_dir,
        ),
        (
            "{ host = \"cache\", guest = \"/rw\", read_only = false }",
            "dir = \"cache\"\nenabled = false",
        ),
    ] {
        if let Err(e) = Config::parse(&config(grant, cache), &path) {
            panic!("{grant} refused: {e:#}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&home_cache);
}

/// The two parse errors a new user meets first keep toml's message and location, and say
/// what to write: `[task_list]` with one pair of brackets, and an `[activity]` key with
/// `@` (or a dotted version) not in quotes.
#[test]
fn parse_errors_of_new_users_say_what_to_write() {
    let dir = temp_dir("hints");
    let path = dir.join("swasm.toml");
    let head = "[swf]\ndomain = \"d\"\n\n";
    let tl = "[[task_list]]\nname = \"tl\"\nplugin_dir = \"p\"\n\n";
    for (text, location, message, hint) in [
        (
            format!("{head}[task_list]\nname = \"tl\"\nplugin_dir = \"p\"\n"),
            "line 4, column 1",
            "invalid type: map, expected a sequence",
            "hint: write [[task_list]] (two pairs of brackets)",
        ),
        (
            format!("{head}{tl}[activity.echo@1]\ntimeout_s = 5\n"),
            "line 8, column 15",
            "invalid unquoted key",
            "hint: quote a key with characters other than letters, digits, '-' and '_': [activity.\"echo@1\"]",
        ),
        (
            format!("{head}{tl}[activity.resize@1.2]\ntimeout_s = 5\n"),
            "line 8, column 17",
            "invalid unquoted key",
            "[activity.\"resize@1.2\"]",
        ),
        (
            format!("{head}{tl}[activity]\necho@1.timeout_s = 5\n"),
            "line 9, column 5",
            "invalid unquoted key",
            "hint: quote a key with characters other than letters, digits, '-' and '_': \"echo@1\".timeout_s = 5",
        ),
    ] {
        let error = format!("{:#}", Config::parse(&text, &path).unwrap_err());
        assert!(
            error.starts_with(&format!(
                "{}: TOML parse error at {location}",
                path.display()
            )),
            "{error}"
        );
        assert!(error.contains(message), "{error}");
        assert!(error.contains(hint), "{hint:?} in {error}");
    }
    // Other parse errors get no hint.
    let error = format!(
        "{:#}",
        Config::parse(&format!("{head}{tl}[swf]\n"), &path).unwrap_err()
    );
    assert!(!error.contains("hint:"), "{error}");
}

/// `[activity."name"]` applies to every version of the name without a table of its own, so
/// a version dropped in while the host runs gets its grants with no restart; a version's
/// own table overrides it member by member (`env`, `dirs`, `allowed_hosts` each whole).
/// A name table that matches no file in any plugin dir is warned about like a version's.
#[test]
fn a_name_table_applies_to_every_version_without_its_own() {
    use swasm::activity::ActivityType;
    let dir = temp_dir("name-table");
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::create_dir_all(dir.join("shared")).unwrap();
    std::fs::write(dir.join("plugins/resize@1.wasm"), b"").unwrap();
    let path = dir.join("swasm.toml");
    let text = r#"[swf]
domain = "d"

[[task_list]]
name = "a"
plugin_dir = "plugins"

[defaults]
memory_mb = 128
timeout_s = 60

[activity.resize]
memory_mb = 512
env = { BUCKET = "images" }
dirs = [{ host = "shared", guest = "/data" }]
start_to_close_timeout_s = 900

[activity."resize@3"]
timeout_s = 120
env = { BUCKET = "thumbs" }

[activity.missing]
memory_mb = 64
"#;
    let config = Config::parse(text, &path).unwrap();
    // A version with no table (here one dropped in later): the name's table over [defaults].
    let v2 = config.settings_for(&ActivityType::new("resize", "2"));
    assert_eq!((v2.memory_mb, v2.timeout_s), (512, 60));
    assert_eq!(v2.env["BUCKET"], "images");
    assert_eq!(v2.dirs.len(), 1);
    assert_eq!(v2.registration.start_to_close_timeout_s, Some(900));
    // A version's own table over its name's.
    let v3 = config.settings_for(&ActivityType::new("resize", "3"));
    assert_eq!((v3.memory_mb, v3.timeout_s), (512, 120));
    assert_eq!(v3.env["BUCKET"], "thumbs");
    assert_eq!(v3.dirs.len(), 1);
    // Another name: [defaults] only.
    let other = config.settings_for(&ActivityType::new("echo", "1"));
    assert_eq!(
        (other.memory_mb, other.env.len(), other.dirs.len()),
        (128, 0, 0)
    );
    // The engine is sized for the name table's memory too.
    assert!(config.all_settings().iter().any(|s| s.memory_mb == 512));
    let warnings = config.warnings();
    assert!(
        warnings.iter().any(|w| w.contains(
            "activity.missing: no plugin dir holds a version of missing (missing@VERSION.wasm)"
        )),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("activity.resize")),
        "{warnings:?}"
    );
    // A version without a table of its own does not get the new-version warning: its
    // name's table covers it.
    assert!(
        config
            .unconfigured_version_warning(&ActivityType::new("resize", "2"), &dir.join("x"))
            .is_none()
    );
}
