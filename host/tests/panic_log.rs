//! The panic hook `swasm::logging::init` installs, in a test binary of its own: a panic
//! hook is process-wide, and other tests' failure messages must not go through it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;

/// What the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Panics inside `span` with the log filtered by `filter`; returns what the log got.
fn panic_under(filter: &str) -> String {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("task", activity_id = "act-7", workflow_id = "wf-3");
        let _entered = span.enter();
        let result = std::panic::catch_unwind(|| panic!("a bug while answering"));
        assert!(result.is_err());
    });
    String::from_utf8(log.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_panic_is_a_log_event_that_names_its_task_or_goes_to_the_hook_before() {
    // Stands for Rust's default hook (stderr), so the test can see it was called.
    let fallback_calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let calls = fallback_calls.clone();
    std::panic::set_hook(Box::new(move |info| {
        calls.lock().unwrap().push(info.to_string());
    }));
    swasm::logging::log_panics();

    let logged = panic_under("info");
    // Nothing asserted until the hooks are back: a failed assertion must print.
    let shown_elsewhere = fallback_calls.lock().unwrap().len();
    let filtered_out = panic_under("swasm=debug");
    let fallback = fallback_calls.lock().unwrap().clone();
    drop(std::panic::take_hook());

    let line: serde_json::Value = serde_json::from_str(logged.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {logged}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["panic.payload"], "a bug while answering", "{line}");
    assert!(
        line["panic.location"]
            .as_str()
            .is_some_and(|l| l.contains("panic_log.rs")),
        "{line}"
    );
    assert_eq!(line["span"]["activity_id"], "act-7", "{line}");
    assert_eq!(line["span"]["workflow_id"], "wf-3", "{line}");
    assert_eq!(
        shown_elsewhere, 0,
        "logged and also sent to the hook before"
    );

    // A filter that hides the event: the hook before reports the panic.
    assert_eq!(filtered_out, "", "{filtered_out}");
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert!(
        fallback[0].contains("a bug while answering"),
        "{fallback:?}"
    );
}
