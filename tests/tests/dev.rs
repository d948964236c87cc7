//! `swasm dev` (issue 7): swf-local + host + demo decider in one process runs to completion
//! and its summary shows completed, failed and cancelled workflows in every language; with
//! `--serve` it keeps serving, and a plugin dropped in meanwhile can be scheduled at once.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_swf::types::{CloseStatus, EventType, WorkflowExecution, WorkflowType};
use swasm_tests::{
    KillOnDrop, aws_env, bin, plugin, plugins_dist, remove_temp_dirs, run_within, swasm, temp_dir,
    wait_until,
};

#[test]
fn swasm_dev_runs_the_demo_to_a_summary() {
    let plugins = plugins_dist();
    // A page size of 3 makes the demo decider follow nextPageToken on every decision task.
    let (status, stdout, stderr) = swasm(&[
        "dev",
        "--plugins",
        plugins.to_str().unwrap(),
        "--page-size",
        "3",
        "--deadline-s",
        "300",
    ]);
    assert!(
        status.success(),
        "swasm dev failed: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    let row = |activity: &str, status: &str| {
        stdout.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&activity) && cols.get(2) == Some(&status)
        })
    };
    for echo in ["echo@1", "echo-py@1", "echo-js@1", "echo-c@1"] {
        assert!(row(echo, "COMPLETED"), "{echo} did not complete:\n{stdout}");
        assert!(
            row(echo, "FAILED"),
            "{echo} did not fail on \"fail\":\n{stdout}"
        );
    }
    for countdown in [
        "countdown@1",
        "countdown-py@1",
        "countdown-js@1",
        "countdown-c@1",
    ] {
        assert!(
            row(countdown, "COMPLETED"),
            "{countdown} did not complete:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("countdown") && l.contains("CANCELED")),
        "no countdown was cancelled half-way:\n{stdout}"
    );
    assert!(
        stdout.contains("BadInput"),
        "failures should carry the guest's reason:\n{stdout}"
    );
    // Each fetch reaches the demo's web server, the one host it is granted; its GET of a
    // host it is not granted is refused by the sandbox.
    for fetch in ["fetch@1", "fetch-py@1", "fetch-js@1"] {
        assert!(
            stdout.lines().any(|l| l.contains(fetch)
                && l.contains("COMPLETED")
                && l.contains("hello from the demo's web server")),
            "{fetch} did not reach the demo's web server:\n{stdout}"
        );
    }
    assert!(
        row("fetch-py@1", "FAILED") && stdout.contains("HttpError: HTTP-request-denied"),
        "a host not granted was not refused:\n{stdout}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary line");
    assert!(
        summary.contains("1 canceled") && summary.contains("0 other"),
        "{summary}"
    );
    // A clean run logs no error, the shutdown of the embedded endpoint included.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "swasm dev logged errors:\n{}",
        errors.join("\n")
    );
    // Progress was printed as it happened, before the summary.
    let first_progress = stdout.find("] completed:").expect("progress lines");
    assert!(first_progress < stdout.find("summary:").unwrap());
}

/// A plugin dropped into `swasm dev --serve`'s dir is registered as it loads, so a workflow
/// can schedule it right away: no restart, no `swasm register` (which has no config file to
/// read here). The example command `dev` prints names a type it serves.
#[tokio::test(flavor = "multi_thread")]
async fn swasm_dev_serve_registers_a_plugin_dropped_in_later() {
    let dir = temp_dir("dev-serve");
    std::fs::copy(plugin("countdown@1.wasm"), dir.join("countdown@1.wasm")).unwrap();
    // A file that does not load: its type must never be registered.
    std::fs::write(dir.join("bad@1.wasm"), b"not a WebAssembly file").unwrap();
    let log = dir.join("dev.log");
    let mut child = KillOnDrop(
        aws_env(Command::new(bin()).args([
            "dev",
            "--serve",
            "--no-demo",
            "--listen",
            "127.0.0.1:0",
            "--plugins",
            dir.to_str().unwrap(),
        ]))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn swasm dev"),
    );
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let mut until = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    printed.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {what:?} ({e}); stdout:\n{}\nstderr:\n{}",
                    printed.join("\n"),
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
    };
    let url = until("swf-local listening on ")
        .trim_start_matches("swf-local listening on ")
        .to_string();
    let example = until("--input '");
    assert!(
        example.contains(r#""activity":"countdown@1""#),
        "the example should name the one type served: {example}"
    );

    let swf = swasm_tests::Swf::new(&url, "swasm-dev").await;
    assert!(
        swf.activity_type_registered("countdown@1").await,
        "start-up registered countdown@1"
    );
    assert!(
        !swf.activity_type_registered("echo@1").await,
        "echo@1 is not in the dir yet"
    );
    wait_until(
        "bad@1.wasm to be rejected",
        Duration::from_secs(60),
        || async {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .any(|l| l.contains("plugin rejected") && l.contains("bad@1.wasm"))
                .then_some(())
        },
    )
    .await;
    assert!(
        !swf.activity_type_registered("bad@1").await,
        "a file that does not load was registered:\n{}\n{}",
        printed.join("\n"),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Dropped in the way the README says: written aside, renamed into place.
    let tmp = dir.join(".echo@1.wasm.tmp");
    std::fs::copy(plugin("echo@1.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("echo@1.wasm")).unwrap();
    wait_until(
        "echo@1 to be registered",
        Duration::from_secs(60),
        || async { swf.activity_type_registered("echo@1").await.then_some(()) },
    )
    .await;

    // The dev decider runs it: the demo workflow's input names the activity.
    let run = start_demo_workflow(
        &swf,
        "dropped-in",
        r#"{"activity":"echo@1","task_list":"demo","input":"dropped in"}"#,
    )
    .await;
    let status = closed_as(&swf, &run, Duration::from_secs(60)).await;
    assert_eq!(status, CloseStatus::Completed);
    let history = swf
        .client
        .get_workflow_execution_history()
        .domain("swasm-dev")
        .execution(run)
        .send()
        .await
        .unwrap();
    let result = history
        .events
        .iter()
        .find(|e| e.event_type == EventType::ActivityTaskCompleted)
        .and_then(|e| e.activity_task_completed_event_attributes()?.result.clone());
    assert_eq!(result.as_deref(), Some("dropped in"));

    // An input the decider cannot use fails the workflow at once, not at its 1 h timeout.
    let run = start_demo_workflow(
        &swf,
        "bad-input",
        r#"{"activity":"echo","task_list":"demo","input":"no version"}"#,
    )
    .await;
    let status = closed_as(&swf, &run, Duration::from_secs(30)).await;
    assert_eq!(status, CloseStatus::Failed);
    until("failed: BadInput");

    let killed = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("swasm dev should exit after Ctrl-C");
    assert!(
        status.success(),
        "swasm dev exited {status} after Ctrl-C:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    remove_temp_dirs();
}

/// Runs `swasm dev ARGS` without AWS credentials in the environment (it must need none);
/// returns its exit status, stdout and stderr, or panics if it is still running after
/// `limit`.
fn dev_within(limit: Duration, args: &[&str]) -> (ExitStatus, String, String) {
    run_within(
        aws_env(Command::new(bin()).arg("dev").args(args))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY"),
        limit,
    )
}

/// A worker that cannot start (its metrics address is taken) ends `swasm dev` at once with
/// its error: the demo does not wait out its deadline for tasks no one polls, and --serve
/// does not sit without a worker until Ctrl-C.
#[test]
fn swasm_dev_ends_at_once_when_its_worker_stops() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("dev-worker");
    std::fs::copy(plugin("echo@1.wasm"), dir.join("echo@1.wasm")).unwrap();
    let dir = dir.to_str().unwrap();
    for args in [
        &[
            "--plugins",
            dir,
            "--metrics",
            &metrics,
            "--deadline-s",
            "300",
        ][..],
        &[
            "--plugins",
            dir,
            "--metrics",
            &metrics,
            "--serve",
            "--no-demo",
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let (status, stdout, stderr) = dev_within(Duration::from_secs(30), args);
        assert_eq!(
            status.code(),
            Some(1),
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains("error: the worker stopped")
                && stderr.contains(&format!("cannot bind {metrics}")),
            "{args:?}: the error should name the worker's\nstderr:\n{stderr}"
        );
    }
    remove_temp_dirs();
}

/// `swasm dev --plugins DIR`, which must exit 1 within a minute; its (stdout, stderr).
fn dev_fails(dir: &std::path::Path) -> (String, String) {
    let (status, stdout, stderr) = dev_within(
        Duration::from_secs(60),
        &["--plugins", dir.to_str().unwrap()],
    );
    assert_eq!(
        status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// A demo that would run nothing fails, naming why, instead of printing an empty summary
/// and exiting 0: a dir whose only plugin file does not load (the valid dot-file beside it
/// is a copy under way, never loaded), or whose types the demo has no workflow for.
#[test]
fn swasm_dev_fails_when_the_demo_has_nothing_to_run() {
    let broken = temp_dir("dev-broken");
    std::fs::write(broken.join("echo@1.wasm"), b"not a WebAssembly file").unwrap();
    std::fs::copy(plugin("echo@1.wasm"), broken.join(".echo@2.wasm")).unwrap();
    let (stdout, stderr) = dev_fails(&broken);
    assert!(
        stderr.contains("so the demo has nothing to run")
            && stderr.contains("echo@1.wasm: not a WebAssembly file"),
        "the error should name the file and why:\n{stderr}"
    );
    assert!(!stdout.contains("summary:"), "{stdout}");

    let unknown = temp_dir("dev-unknown");
    std::fs::copy(plugin("echo@1.wasm"), unknown.join("word@1.wasm")).unwrap();
    let (_, stderr) = dev_fails(&unknown);
    assert!(
        stderr.contains("the demo has no workflow for word@1"),
        "{stderr}"
    );
    remove_temp_dirs();
}

/// Starts the dev decider's workflow `id` with `input` in swasm dev's domain.
async fn start_demo_workflow(swf: &swasm_tests::Swf, id: &str, input: &str) -> WorkflowExecution {
    let started = swf
        .client
        .start_workflow_execution()
        .domain("swasm-dev")
        .workflow_id(id)
        .workflow_type(
            WorkflowType::builder()
                .name(swasm_demo::WORKFLOW_NAME)
                .version(swasm_demo::WORKFLOW_VERSION)
                .build()
                .unwrap(),
        )
        .input(input)
        .send()
        .await
        .unwrap();
    WorkflowExecution::builder()
        .workflow_id(id)
        .run_id(started.run_id.unwrap())
        .build()
        .unwrap()
}

/// How `run` of swasm dev's domain closed, once it has (waiting up to `limit`).
async fn closed_as(
    swf: &swasm_tests::Swf,
    run: &WorkflowExecution,
    limit: Duration,
) -> CloseStatus {
    wait_until(
        &format!("{} to close", run.workflow_id()),
        limit,
        || async {
            let d = swf
                .client
                .describe_workflow_execution()
                .domain("swasm-dev")
                .execution(run.clone())
                .send()
                .await
                .ok()?;
            d.execution_info?.close_status
        },
    )
    .await
}
