//! `hog@1`: allocates and touches memory 1 MiB at a time until allocation fails (the
//! host's memory limit), which aborts the guest with a trap.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};

struct Hog;

impl Guest for Hog {
    fn run(_task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            // vec![1; n] writes every byte, so the pages are really touched.
            held.push(std::hint::black_box(vec![1u8; 1 << 20]));
            if held.len() % 64 == 0 {
                eprintln!("hog: holding {} MiB", held.len());
            }
        }
    }
}

export!(Hog);
