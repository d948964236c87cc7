//! `echo@1`: completes with its input unchanged; the input `"fail"` fails the task with
//! reason `BadInput`, so a workflow can see both outcomes from one plugin.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use swasm::activity::types::Failure;

struct Echo;

impl Guest for Echo {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        match task.input.as_deref() {
            Some("fail") => {
                // Whatever a guest writes to stderr (or stdout) becomes a host log line
                // tagged with the task's activity id and type. Each write is a host call
                // (about a microsecond), so the happy path, the per-task cost the
                // benchmarks measure, logs nothing.
                eprintln!("echo: rejecting input \"fail\" of activity {}", task.activity_id);
                Err(ActivityError::Failed(Failure {
                    reason: "BadInput".to_string(),
                    details: Some("input was \"fail\"".to_string()),
                }))
            }
            _ => Ok(task.input),
        }
    }
}

export!(Echo);
