//! What the unit tests of several modules share.

use std::time::{Duration, Instant};

/// Waits (up to 10 s) until `f` holds, checking every millisecond, and names `what` if it
/// never does. For state another OS thread sets (a guest thread, the epoch ticker): it
/// blocks the calling thread, so it must not wait for work of the caller's own runtime.
pub(crate) fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
