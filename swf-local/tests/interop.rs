//! Other clients and the reference: boto3 unchanged against swf-local, and the same
//! happy-path workflow against swf-local and moto's server giving the same event types.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_swf::Client;
use common::*;

#[tokio::test]
async fn boto3_smoke_script_passes() {
    let env = Env::start(1000).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/scripts/boto3_smoke.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg("--endpoint")
        .arg(&env.url)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "boto3_smoke.py failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Schedule 3 activities, complete one, fail one, heartbeat and complete one, complete
/// the workflow; returns the history's event types.
async fn happy_path(c: &Client) -> Vec<String> {
    setup(c, "diff", ["60", "120", "60", "30"]).await;
    let exec = start_and_decide(c, "diff", "wf", schedules(["a1", "a2", "a3"])).await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(next_activity(c, "diff").await);
    }
    tasks.sort_by(|a, b| a.activity_id.cmp(&b.activity_id));
    activity_completed(c, &tasks[0].task_token)
        .result("ok")
        .send()
        .await
        .unwrap();
    activity_failed(c, &tasks[1].task_token)
        .reason("bad")
        .send()
        .await
        .unwrap();
    heartbeat(c, &tasks[2].task_token)
        .details("half")
        .send()
        .await
        .unwrap();
    activity_completed(c, &tasks[2].task_token)
        .result("ok")
        .send()
        .await
        .unwrap();
    let dt = next_decision(c, "diff").await;
    decide(c, &dt.task_token, vec![complete_wf("done")]).await;
    event_types(c, "diff", &exec).await
}

#[tokio::test]
async fn same_event_types_as_moto() {
    let Ok(moto) = which("moto_server") else {
        assert!(
            std::env::var_os("SWASM_REQUIRE_MOTO").is_none(),
            "SWASM_REQUIRE_MOTO is set but moto_server is not on PATH (pip install -r tests/requirements.txt)"
        );
        println!("SKIP same_event_types_as_moto: moto_server not on PATH");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("moto_server starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moto_types = happy_path(&client(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(20),
    ))
    .await;
    child.kill().await.ok();

    let env = Env::start(1000).await;
    let ours = happy_path(&env.client).await;
    assert_eq!(
        ours,
        one_scheduled_decision(&ours),
        "swf-local scheduled a second decision task while one was pending"
    );
    assert_eq!(
        ours,
        one_scheduled_decision(&moto_types),
        "swf-local and moto disagree on the event sequence"
    );
    assert_eq!(
        ours.last().map(String::as_str),
        Some("WorkflowExecutionCompleted")
    );
}

/// moto records a DecisionTaskScheduled for every new event even while a decision task is
/// already scheduled; SWF (and swf-local) keeps at most one. Drop moto's extra ones.
fn one_scheduled_decision(types: &[String]) -> Vec<String> {
    let mut pending = false;
    let mut out = Vec::new();
    for t in types {
        match t.as_str() {
            "DecisionTaskScheduled" if pending => continue,
            "DecisionTaskScheduled" => pending = true,
            "DecisionTaskStarted" => pending = false,
            _ => {}
        }
        out.push(t.clone());
    }
    out
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
