//! The happy path (echo completes) against moto's SWF server, as a cross-check that the host
//! speaks real SWF and not just swf-local. Skipped with a printed line when `moto_server` is
//! not installed, unless `SWASM_REQUIRE_MOTO` is set.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use swasm_tests::*;

struct Moto(Child);
impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        remove_temp_dirs();
    }
}

/// The URL in moto's `* Running on http://127.0.0.1:PORT` line, read from its stderr
/// (which is then drained, so moto never blocks on a full pipe).
fn listening_url(stderr: ChildStderr) -> String {
    let mut reader = BufReader::new(stderr);
    let mut seen = String::new();
    let url = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read moto's stderr") == 0 {
            panic!("moto_server ended before it listened:\n{seen}");
        }
        if let Some((_, url)) = line.split_once("Running on ") {
            break url.trim().to_string();
        }
        seen += &line;
    };
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_completes_against_moto() {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("SWASM_REQUIRE_MOTO").is_none(),
            "moto_server is not installed and SWASM_REQUIRE_MOTO is set"
        );
        println!(
            "SKIPPED echo_completes_against_moto: moto_server not found (pip install 'moto[server]')"
        );
        return;
    }
    // Port 0: moto (werkzeug) picks a free port and names it on stderr.
    let mut moto = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moto_server"),
    );
    let stderr = moto.0.stderr.take().expect("moto's stderr");
    let url = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || listening_url(stderr)),
    )
    .await
    .expect("moto_server did not say where it listens within a minute")
    .unwrap();
    let swf = Swf::new(&url, "moto").await;
    swf.setup(&[("echo@1", None)]).await.unwrap();
    let _decider = Decider::start(&swf);
    let config = HostConfig::new(
        &url,
        "moto",
        vec![TaskListSpec::new("main", &["echo@1.wasm"])],
    );
    let _host = Host::start(&config.write(), &[]);
    let acts = vec![
        Activity::new("e1", "echo@1", "main", Some("hi moto")),
        Activity::new("e2", "echo@1", "main", None),
    ];
    swf.start("w-moto", &acts, false).await.unwrap();
    let closed = swf.wait_closed("w-moto", 2, Duration::from_secs(90)).await;
    assert_eq!(
        closed["e1"],
        vec![Closed::Completed(Some("hi moto".into()))]
    );
    assert!(
        matches!(closed["e2"][..], [Closed::Completed(_)]),
        "{closed:?}"
    );
}
