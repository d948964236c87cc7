//! `envread@1`: reports what the sandbox grants: `{"env":{NAME:VALUE,...},"data":[names]}`
//! where `data` lists the entries of `/data` (sorted), or is the error text when `/data`
//! cannot be read (the default: no preopened dirs).

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::swasm::activity::activity::{ActivityError, ActivityTask, Guest};
use serde_json::{Map, Value, json};

struct EnvRead;

impl Guest for EnvRead {
    fn run(_task: ActivityTask) -> Result<Option<String>, ActivityError> {
        let env: Map<String, Value> = std::env::vars().map(|(k, v)| (k, Value::String(v))).collect();
        let data = match std::fs::read_dir("/data") {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                json!(names)
            }
            Err(e) => json!(format!("denied: {e}")),
        };
        Ok(Some(json!({ "env": env, "data": data }).to_string()))
    }
}

export!(EnvRead);
