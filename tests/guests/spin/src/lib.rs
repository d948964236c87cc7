//! `spin@1`: loops forever and never heartbeats, so only the host's deadline (epoch
//! interruption) or a cancel by dropping the call can end it.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct Spin;

impl Guest for Spin {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        eprintln!("spin: spinning forever for {}", task.activity_id);
        let mut n: u64 = 0;
        loop {
            // black_box keeps the optimiser from proving the loop has no effect.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(Spin);
