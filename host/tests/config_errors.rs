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
