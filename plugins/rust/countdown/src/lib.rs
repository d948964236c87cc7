//! `countdown@1`: a long-running activity. Input `{"steps":N,"step_ms":M}` (defaults 10 and
//! 100); every step sleeps, then heartbeats its progress (`{"step":3,"of":10}`), and stops
//! with `canceled` as soon as the host says cancellation was requested.

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

struct Countdown;

impl Guest for Countdown {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let input: Input = match task.input.as_deref().map(str::trim) {
            None | Some("") => Input { steps: default_steps(), step_ms: default_step_ms() },
            Some(text) => serde_json::from_str(text).map_err(|e| {
                ActivityError::Failed(Failure {
                    reason: "BadInput".to_string(),
                    details: Some(format!(
                        "expected {{\"steps\":N,\"step_ms\":M}}: {e}"
                    )),
                })
            })?,
        };
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
