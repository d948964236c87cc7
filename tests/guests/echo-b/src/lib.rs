//! `echo-b.wasm`: an echo whose result is "B:" + input, so hot-swap tests can tell which
//! version of a plugin answered.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct EchoB;

impl Guest for EchoB {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        eprintln!("echo-b: {}", task.activity_id);
        Ok(Some(format!("B:{}", task.input.unwrap_or_default())))
    }
}

export!(EchoB);
