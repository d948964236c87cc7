//! `swasm dev` (issue 7): swf-local + host + demo decider in one process runs to completion
//! and its summary shows completed, failed and cancelled workflows in every language.

use swasm_tests::{repo_root, swasm};

#[test]
fn swasm_dev_runs_the_demo_to_a_summary() {
    let plugins = repo_root().join("plugins/dist");
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
