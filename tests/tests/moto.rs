//! The happy path (echo completes) against moto's SWF server, as a cross-check that the host
//! speaks real SWF and not just swf-local. Skipped with a printed line when `moto_server` is
//! not installed, unless `SWASM_REQUIRE_MOTO` is set.

use std::process::{Child, Command, Stdio};
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
    let port = free_port();
    let _moto = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server"),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_until("moto to listen", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
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
