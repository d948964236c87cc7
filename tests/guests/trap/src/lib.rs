//! `trap@1`: panics with the message "boom" (a wasm trap after the panic message is
//! written to stderr).

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct Trap;

impl Guest for Trap {
    fn run(_task: ActivityTask) -> Result<Option<String>, ActivityError> {
        panic!("boom")
    }
}

export!(Trap);
