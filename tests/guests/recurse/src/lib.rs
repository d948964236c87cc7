//! `recurse@1`: recurses without bound until the wasm call stack is exhausted (a trap).

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct Recurse;

/// Not a tail call (the result is used after the call), so every level keeps a frame.
/// `limit` comes from the input so the compiler cannot prove the recursion endless.
#[inline(never)]
fn descend(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return depth;
    }
    descend(depth + 1, limit).wrapping_mul(3) ^ depth
}

impl Guest for Recurse {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let limit = task.input.as_deref().and_then(|s| s.trim().parse().ok()).unwrap_or(u64::MAX);
        eprintln!("recurse: descending to {limit}");
        Ok(Some(descend(0, limit).to_string()))
    }
}

export!(Recurse);
