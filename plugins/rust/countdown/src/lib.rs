//! `countdown@1`: a long-running activity. Input `{"steps":N,"step_ms":M}` (defaults 10 and
//! 100); every step sleeps, then heartbeats its progress (`{"step":3,"of":10}`), and stops
//! with `canceled` as soon as the host says cancellation was requested.
//!
//! The input rule, which the Python, JavaScript and C countdowns follow too: no input, or
//! only JSON white space (space, tab, LF, CR), runs the defaults; anything else must be one
//! JSON object whose keys are only `steps` and `step_ms`, each at most once, each an integer
//! literal (no fraction, no exponent, not negative, not `null`, `true` or a string), `steps`
//! at most 4294967295 and `step_ms` at most 18446744073709551615 (`u32` and `u64`). Any other
//! input fails with reason `BadInput`.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use std::time::Duration;

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use swasm::activity::host::heartbeat;
use swasm::activity::types::Failure;

/// The input; every field is optional so `{}` or no input at all runs the defaults.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_steps")]
    steps: u32,
    #[serde(default = "default_step_ms")]
    step_ms: u64,
}

fn default_steps() -> u32 {
    10
}

fn default_step_ms() -> u64 {
    100
}

/// The input under the rule above, or the details of a `BadInput` failure.
fn read_input(input: Option<&str>) -> Result<Input, String> {
    let text = input.unwrap_or("").trim_matches([' ', '\t', '\n', '\r']);
    if text.is_empty() {
        return Ok(Input {
            steps: default_steps(),
            step_ms: default_step_ms(),
        });
    }
    // serde would also take an array for a struct (`[5,10]` as steps 5, step_ms 10).
    if !text.starts_with('{') {
        return Err(r#"expected a JSON object {"steps":N,"step_ms":M}"#.to_string());
    }
    serde_json::from_str(text).map_err(|e| format!(r#"expected {{"steps":N,"step_ms":M}}: {e}"#))
}

struct Countdown;

impl Guest for Countdown {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let input = read_input(task.input.as_deref()).map_err(|details| {
            ActivityError::Failed(Failure {
                reason: "BadInput".to_string(),
                details: Some(details),
            })
        })?;
        eprintln!("countdown: {} steps of {} ms", input.steps, input.step_ms);
        for step in 1..=input.steps {
            // std::thread::sleep maps to wasi:clocks/monotonic-clock subscribe + poll.
            std::thread::sleep(Duration::from_millis(input.step_ms));
            let progress = format!(r#"{{"step":{step},"of":{}}}"#, input.steps);
            if heartbeat(Some(&progress)) {
                eprintln!("countdown: cancel requested at step {step}");
                return Err(ActivityError::Canceled(Some(progress)));
            }
        }
        Ok(Some(format!(r#"{{"done":{}}}"#, input.steps)))
    }
}

export!(Countdown);
