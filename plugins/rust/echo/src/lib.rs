//! `echo@1`: completes with its input unchanged; the input `"fail"` fails the task with
//! reason `BadInput`, so a workflow can see both outcomes from one plugin.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use swasm::activity::types::Failure;

struct Echo;

impl Guest for Echo {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        // Whatever a guest writes to stderr (or stdout) becomes a host log line tagged with
        // the task's activity id and type.
        eprintln!(
            "echo: activity {} of workflow {}",
            task.activity_id, task.workflow_execution.workflow_id
        );
        match task.input.as_deref() {
            Some("fail") => Err(ActivityError::Failed(Failure {
                reason: "BadInput".to_string(),
                details: Some("input was \"fail\"".to_string()),
            })),
            _ => Ok(task.input),
        }
    }
}

export!(Echo);
