//! `trap@1`: panics with the message "boom" (a wasm trap after the panic message is
//! written to stderr); with the input "exit", calls `exit(0)` instead of returning.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct Trap;

impl Guest for Trap {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        if task.input.as_deref() == Some("exit") {
            std::process::exit(0);
        }
        panic!("boom")
    }
}

export!(Trap);
