//! `validate@1`: fails with reason `BadInput` (and details saying what is wrong) unless the
//! input is a JSON object whose `"email"` is a string containing '@'; otherwise completes
//! with the object normalised: email trimmed and lower-cased, keys sorted, compact.

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use serde_json::Value;
use swasm::activity::types::Failure;

struct Validate;

fn bad_input(details: impl Into<String>) -> ActivityError {
    let details = details.into();
    eprintln!("validate: rejected: {details}");
    ActivityError::Failed(Failure { reason: "BadInput".to_string(), details: Some(details) })
}

impl Guest for Validate {
    fn run(task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let text = task.input.ok_or_else(|| bad_input("no input: expected a JSON object"))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| bad_input(format!("input is not JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(bad_input("input is not a JSON object"));
        };
        let email = match object.get("email") {
            None => return Err(bad_input("field \"email\" is missing")),
            Some(Value::String(email)) => email.trim().to_lowercase(),
            Some(_) => return Err(bad_input("field \"email\" is not a string")),
        };
        if !email.contains('@') {
            return Err(bad_input(format!("field \"email\" has no '@': {email:?}")));
        }
        object.insert("email".to_string(), Value::String(email));
        // serde_json's Map is a BTreeMap by default, so keys come out sorted.
        let normalized = Value::Object(object).to_string();
        eprintln!("validate: ok");
        Ok(Some(normalized))
    }
}

export!(Validate);
