//! `bigresult@1`: completes with 40000 'x' characters, over SWF's 32768 limit for results.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct BigResult;

impl Guest for BigResult {
    fn run(_task: ActivityTask) -> Result<Option<String>, ActivityError> {
        Ok(Some("x".repeat(40_000)))
    }
}

export!(BigResult);
