//! Input validation generated from botocore's SWF service model (`service-model.json`,
//! extracted by `tools/gen_model.py`): required members, length and range constraints,
//! enums, plus the rules the model states only in prose (SWF's name rule, durations). A
//! member whose JSON type is not its shape's cannot be deserialized: SerializationException,
//! as awsJson services answer, where the constraints on well-typed values give
//! ValidationException.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::error::SwfError;

#[derive(Deserialize)]
struct Model {
    /// Operation name -> input shape name.
    operations: HashMap<String, Option<String>>,
    shapes: HashMap<String, Shape>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: Vec<String>,
    min: Option<i64>,
    max: Option<i64>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    #[serde(default)]
    members: HashMap<String, Member>,
    member: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    shape: String,
    /// The model's prose says this member obeys SWF's name rule.
    #[serde(default, rename = "nameRule")]
    name_rule: bool,
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    serde_json::from_str(include_str!("service-model.json")).expect("embedded service model")
});

/// True when the service model defines `op`.
pub fn known_operation(op: &str) -> bool {
    MODEL.operations.contains_key(op)
}

/// What is wrong with a request.
#[derive(Default)]
struct Errors {
    /// Members of the wrong JSON type (SerializationException).
    types: Vec<String>,
    /// Constraint violations of well-typed values (ValidationException).
    constraints: Vec<String>,
}

/// Validates the input of `op` against the model. A member of the wrong JSON type is a
/// SerializationException naming it; otherwise the error lists the constraints broken, in
/// SWF's wording ("Value ... at 'path' failed to satisfy constraint: ...").
pub fn validate(op: &str, input: &Value) -> Result<(), SwfError> {
    let Some(Some(shape)) = MODEL.operations.get(op) else {
        return Ok(());
    };
    let mut found = Errors::default();
    walk(shape, input, "", false, &mut found);
    if let Some(first) = found.types.first() {
        return Err(SwfError::serialization(format!(
            "Cannot deserialize the {op} request: {first}"
        )));
    }
    let mut errors = found.constraints;
    if errors.is_empty() {
        return Ok(());
    }
    let n = errors.len();
    errors.truncate(10);
    Err(SwfError::validation(format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        errors.join("; ")
    )))
}

/// SWF's rule for task list names, activity/workflow/timer ids, type and domain names.
pub fn name_rule_violation(s: &str) -> Option<&'static str> {
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Some("Member must not start or end with whitespace");
    }
    if s.contains([':', '/', '|']) {
        return Some("Member must not contain ':', '/' or '|'");
    }
    if s.chars()
        .any(|c| ('\u{0}'..='\u{1f}').contains(&c) || ('\u{7f}'..='\u{9f}').contains(&c))
    {
        return Some("Member must not contain control characters");
    }
    if s == "arn" {
        return Some("Member must not be the literal string 'arn'");
    }
    None
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON type of `v`, as an error message names it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 64 {
        format!("{}...", s.chars().take(64).collect::<String>())
    } else {
        s
    }
}

fn walk(shape_name: &str, v: &Value, path: &str, name_rule: bool, found: &mut Errors) {
    let Some(shape) = MODEL.shapes.get(shape_name) else {
        return;
    };
    let fail = |found: &mut Errors, what: &str| {
        found.constraints.push(format!(
            "Value '{}' at '{path}' failed to satisfy constraint: {what}",
            shown(v)
        ))
    };
    // The member's JSON type is not its shape's: `expected` names the shape's.
    let mistyped = |found: &mut Errors, expected: &str| {
        found.types.push(format!(
            "'{path}' is {} ({}), where the model's {shape_name} is {expected}",
            json_type(v),
            shown(v)
        ))
    };
    match shape.ty.as_str() {
        "structure" => {
            let Some(obj) = v.as_object() else {
                return mistyped(found, "a structure (a JSON object)");
            };
            for r in &shape.required {
                if obj.get(r).is_none_or(Value::is_null) {
                    found.constraints.push(format!(
                        "Value null at '{}' failed to satisfy constraint: Member must not be null",
                        join(path, r)
                    ));
                }
            }
            for (name, member) in &shape.members {
                if let Some(mv) = obj.get(name).filter(|x| !x.is_null()) {
                    // A rule on a TaskList-like member applies to its `name`.
                    let rule = member.name_rule || (name_rule && name == "name");
                    walk(&member.shape, mv, &join(path, name), rule, found);
                }
            }
        }
        "string" => {
            let Some(s) = v.as_str() else {
                return mistyped(found, "a string");
            };
            let len = s.chars().count() as i64;
            if let Some(min) = shape.min.filter(|m| len < *m) {
                fail(
                    found,
                    &format!("Member must have length greater than or equal to {min}"),
                );
            }
            if let Some(max) = shape.max.filter(|m| len > *m) {
                fail(
                    found,
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
            if let Some(values) = &shape.values
                && !values.iter().any(|x| x == s)
            {
                fail(
                    found,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    ),
                );
            }
            if name_rule && let Some(why) = name_rule_violation(s) {
                fail(found, why);
            }
            if shape_name.starts_with("DurationIn") && s != "NONE" && s.parse::<u64>().is_err() {
                fail(
                    found,
                    "Member must be a whole number of seconds (days) or NONE",
                );
            }
            if shape_name == "TaskPriority" && s.parse::<i32>().is_err() {
                fail(
                    found,
                    "Member must be an integer between -2147483648 and 2147483647",
                );
            }
        }
        "integer" | "long" => {
            let Some(n) = v.as_i64() else {
                return mistyped(found, "an integer");
            };
            if let Some(min) = shape.min.filter(|m| n < *m) {
                fail(
                    found,
                    &format!("Member must have value greater than or equal to {min}"),
                );
            }
            if let Some(max) = shape.max.filter(|m| n > *m) {
                fail(
                    found,
                    &format!("Member must have value less than or equal to {max}"),
                );
            }
        }
        "boolean" if !v.is_boolean() => {
            mistyped(found, "a boolean");
        }
        "timestamp" if !v.is_number() => {
            mistyped(found, "a timestamp (a number of seconds since the epoch)");
        }
        "list" => {
            let Some(items) = v.as_array() else {
                return mistyped(found, "a list (a JSON array)");
            };
            let len = items.len() as i64;
            if let Some(min) = shape.min.filter(|m| len < *m) {
                fail(
                    found,
                    &format!("Member must have length greater than or equal to {min}"),
                );
            }
            if let Some(max) = shape.max.filter(|m| len > *m) {
                fail(
                    found,
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
            if let Some(member) = &shape.member {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        member,
                        item,
                        &format!("{path}.{}.member", i + 1),
                        name_rule,
                        found,
                    );
                }
            }
        }
        _ => {}
    }
}
