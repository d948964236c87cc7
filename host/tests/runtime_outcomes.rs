//! Every Outcome mapping of `Plugin::run`, against real components built from source.

mod runtime_common;

use std::sync::Arc;
use std::time::Duration;

use runtime_common::*;
use swasm::activity::{Outcome, reason};
use swasm::runtime::{Compiler, Runtime};

fn runtime() -> Arc<Runtime> {
    runtime_with_slots(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_completes_and_fails_on_bad_input() {
    let rt = runtime();
    let echo = load(&rt, &example("echo@1.wasm"), "echo@1");
    let o = echo
        .run(task("echo@1", Some("hello")), &settings(), no_heartbeat())
        .await;
    assert_eq!(o, Outcome::Completed(Some("hello".into())));
    let o = echo
        .run(task("echo@1", Some("fail")), &settings(), no_heartbeat())
        .await;
    assert_eq!(failed(&o).0, "BadInput");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn countdown_heartbeats_and_honours_cancel() {
    let rt = runtime();
    let p = load(&rt, &example("countdown@1.wasm"), "countdown@1");
    let rec = Arc::new(Recorder {
        cancel_at: Some(3),
        ..Default::default()
    });
    let o = p
        .run(
            task("countdown@1", Some(r#"{"steps":10,"step_ms":1}"#)),
            &settings(),
            rec.clone(),
        )
        .await;
    assert!(matches!(o, Outcome::Canceled(_)), "{o:?}");
    let beats = rec.beats.lock().unwrap().clone();
    assert_eq!(beats.len(), 3);
    assert_eq!(beats[0].as_deref(), Some(r#"{"step":1,"of":10}"#));
    let rec = Arc::new(Recorder::default());
    let o = p
        .run(
            task("countdown@1", Some(r#"{"steps":4,"step_ms":1}"#)),
            &settings(),
            rec.clone(),
        )
        .await;
    assert_eq!(completed(&o), r#"{"done":4}"#);
    assert_eq!(rec.beats.lock().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_reports_message_and_backtrace() {
    let rt = runtime();
    let p = load(&rt, &guest("trap@1.wasm"), "trap@1");
    let o = p
        .run(task("trap@1", None), &settings(), no_heartbeat())
        .await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::TRAP);
    assert!(details.contains("unreachable"), "{details}");
    assert!(
        details.contains("wasm backtrace"),
        "no wasm backtrace in: {details}"
    );
    // The panic message is written to stderr before the trap: the details carry it.
    let tail = details
        .split_once("guest stderr, last lines:\n")
        .unwrap_or_else(|| panic!("no stderr lines in: {details}"))
        .1;
    assert!(
        tail.contains("panicked at") && tail.contains("boom"),
        "{details}"
    );
}

/// A guest that calls `exit` instead of returning is told so, without the backtrace of
/// `exit`: a choice its code made, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_instead_of_returning_is_named() {
    let rt = runtime();
    let p = load(&rt, &guest("trap@1.wasm"), "trap@1");
    let o = p
        .run(task("trap@1", Some("exit")), &settings(), no_heartbeat())
        .await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::TRAP);
    assert!(
        details.starts_with("the guest called exit(0) instead of returning from `run`"),
        "{details}"
    );
    assert!(!details.contains("wasm backtrace"), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_result_is_refused() {
    let rt = runtime();
    let p = load(&rt, &guest("bigresult@1.wasm"), "bigresult@1");
    let o = p
        .run(task("bigresult@1", None), &settings(), no_heartbeat())
        .await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::RESULT_TOO_LARGE);
    assert!(details.contains("40000"), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_guest_is_interrupted_at_the_deadline() {
    let rt = runtime();
    let p = load(&rt, &guest("spin@1.wasm"), "spin@1");
    let s = swasm::config::ActivitySettings {
        timeout_s: 1,
        ..settings()
    };
    let o = p.run(task("spin@1", None), &s, no_heartbeat()).await;
    assert_eq!(failed(&o).0, reason::TIMEOUT);
}

/// A looping guest gives its guest thread back once a tick in a way that lets the thread's
/// timers and I/O run: another run on the same thread, waiting on 20 timers in turn,
/// finishes while the loop still runs. (A guest that woke itself at once would be polled
/// again before tokio looked at its timers, which it does every 61 polls: 20 timers would
/// take 12 s at 10 ms a slice, longer than the loop's 4 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_guest_leaves_its_thread_timers_running() {
    let rt = runtime();
    let spin = load(&rt, &guest("spin@1.wasm"), "spin@1");
    let guests = swasm::guests::GuestThreads::new(1).unwrap();
    let s = swasm::config::ActivitySettings {
        timeout_s: 4,
        ..settings()
    };
    let looping = tokio::spawn(guests.run(Box::pin(async move {
        spin.run(task("spin@1", None), &s, no_heartbeat()).await
    })));
    let timers = timers_beside(&guests);
    assert_eq!(timers.await, Outcome::Completed(None));
    assert!(
        !looping.is_finished(),
        "the timers waited for the looping guest to end"
    );
    assert_eq!(failed(&looping.await.unwrap()).0, reason::TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_hits_the_limit() {
    let rt = runtime();
    let p = load(&rt, &guest("hog@1.wasm"), "hog@1");
    let s = swasm::config::ActivitySettings {
        memory_mb: 32,
        ..settings()
    };
    let o = p.run(task("hog@1", None), &s, no_heartbeat()).await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::MEMORY_LIMIT, "{details}");
    assert!(details.contains("memory_mb"), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_a_trap() {
    let rt = runtime();
    let p = load(&rt, &guest("recurse@1.wasm"), "recurse@1");
    let o = p
        .run(task("recurse@1", None), &settings(), no_heartbeat())
        .await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::TRAP);
    assert!(details.contains("stack"), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_granted_dir_fails_instantiation() {
    let rt = runtime();
    let p = load(&rt, &example("echo@1.wasm"), "echo@1");
    let gone = std::env::temp_dir().join(format!("swasm-gone-{}", std::process::id()));
    let s = swasm::config::ActivitySettings {
        dirs: vec![swasm::config::DirGrant {
            host: gone.clone(),
            guest: "/data".into(),
            read_only: true,
        }],
        ..settings()
    };
    let o = p.run(task("echo@1", Some("x")), &s, no_heartbeat()).await;
    let (r, details) = failed(&o);
    assert_eq!(r, reason::INSTANTIATE);
    assert!(details.contains(&gone.display().to_string()), "{details}");
}

/// The shutdown path drops `run` futures mid-flight: that must stop the guest and free its
/// pooling slot, so later tasks still instantiate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_mid_flight_is_safe() {
    let rt = runtime_with_slots(4);
    let spin = load(&rt, &guest("spin@1.wasm"), "spin@1");
    let echo = load(&rt, &example("echo@1.wasm"), "echo@1");
    for _ in 0..12 {
        let s = settings();
        let run = spin.run(task("spin@1", None), &s, no_heartbeat());
        assert!(
            tokio::time::timeout(Duration::from_millis(30), run)
                .await
                .is_err()
        );
    }
    let o = echo
        .run(task("echo@1", Some("after")), &settings(), no_heartbeat())
        .await;
    assert_eq!(completed(&o), "after");
}

/// Loading checks a component on an instance of its own. While tasks hold every pool slot
/// that check cannot run: the load fails as busy (the registry tries it again), not as a
/// broken file, and succeeds once a slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_while_every_slot_is_taken_is_busy_not_broken() {
    let rt = runtime_with_slots(1);
    let countdown = load(&rt, &example("countdown@1.wasm"), "countdown@1");
    let run = hold_a_slot(countdown).await;

    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    let err = rt
        .compile(&echo)
        .err()
        .expect("no slot is free for the check");
    assert!(
        matches!(err, swasm::runtime::LoadError::Busy(_)) && err.is_transient(),
        "{err}"
    );

    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    rt.compile(&echo).expect("loads once the slot is free");
}

/// Code is checked by the runtime whose engine made it; another runtime's code is an error
/// that says so.
#[test]
fn code_of_another_runtime_is_refused() {
    let echo = std::fs::read(example("echo@1.wasm")).unwrap();
    let (a, b) = (runtime_with_slots(2), runtime_with_slots(2));
    let code = a.compile_code(&echo, Compiler::Cranelift).unwrap();
    let err = b.check(&code).err().expect("another runtime's code");
    assert!(
        matches!(err, swasm::runtime::LoadError::Link(_))
            && !err.is_transient()
            && err.to_string().contains("made by another runtime"),
        "{err}"
    );
    a.check(&code).expect("its own runtime's code");
}
