//! Fault injection: make the endpoint misbehave on demand so a worker's retry, backoff and
//! recovery paths can be tested against a real server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an injected fault does to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 500 with an SWF-style `InternalFailure` body.
    Status500,
    /// HTTP 503 with an SWF-style `ServiceUnavailableException` body.
    Status503,
    /// HTTP 400 `ThrottlingException`.
    Throttle,
    /// Close the connection without writing a response.
    Reset,
    /// Hold the request for `ms` milliseconds, then serve it normally.
    Hang { ms: u64 },
    /// Serve the request at once (its effect lands), then hold the response for `ms`
    /// milliseconds: a client that gives up meanwhile does not learn that it was taken,
    /// as when a reply is lost on its way back.
    LateResponse { ms: u64 },
    /// HTTP 400 `OperationNotPermittedFault`.
    OperationNotPermitted,
    /// HTTP 400 `UnknownResourceFault`.
    UnknownResource,
    /// HTTP 400 `ExpiredTokenException`: the caller's temporary credentials ran out.
    ExpiredToken,
}

impl FaultKind {
    pub fn hang(d: Duration) -> Self {
        FaultKind::Hang {
            ms: d.as_millis() as u64,
        }
    }
}

/// One rule: which requests it hits, what it does, and how many times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// SWF operation name (e.g. `PollForActivityTask`); absent = every operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The access key id a request is signed with (its SigV4 `Authorization` header's
    /// `Credential=`); absent = any. With `expired_token`, the endpoint refuses one set of
    /// keys and takes the next, as SWF does after keys are rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Hit the next `count` matching requests, then disappear; absent = until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

impl FaultRule {
    /// A rule naming an operation SWF does not have would never hit anything: a typo in a
    /// test's set-up, said at once instead of a fault that silently never fires.
    pub fn check(&self) -> Result<(), String> {
        match &self.operation {
            Some(op) if !crate::validate::known_operation(op) => Err(format!(
                "operation {op:?} is not an SWF operation (e.g. \"PollForActivityTask\")"
            )),
            _ => Ok(()),
        }
    }
}

/// Handle to the active fault rules; clones share them, so tests keep one and change it
/// while the server runs.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Rules in the order added; the first that matches a request applies.
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl Faults {
    /// Adds a rule (see [`FaultRule`]).
    pub fn add(&self, rule: FaultRule) {
        if rule.count == Some(0) {
            return;
        }
        self.rules.lock().unwrap().push(rule);
    }

    /// Shorthand for [`Faults::add`]: `operation` None = all operations, `count` None = until cleared.
    pub fn inject(&self, operation: Option<&str>, kind: FaultKind, count: Option<u32>) {
        self.add(FaultRule {
            operation: operation.map(str::to_owned),
            access_key_id: None,
            kind,
            count,
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// The rules still active.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.lock().unwrap().clone()
    }

    /// The fault to apply to one request of `operation` signed with the key `access_key_id`
    /// gives (asked only while there are rules), if any (uses up one count).
    pub fn take<'a>(
        &self,
        operation: &str,
        access_key_id: impl FnOnce() -> Option<&'a str>,
    ) -> Option<FaultKind> {
        let mut rules = self.rules.lock().unwrap();
        if rules.is_empty() {
            return None;
        }
        let access_key_id = access_key_id();
        let i = rules.iter().position(|r| {
            r.operation.as_deref().is_none_or(|o| o == operation)
                && r.access_key_id
                    .as_deref()
                    .is_none_or(|k| Some(k) == access_key_id)
        })?;
        let kind = rules[i].kind.clone();
        if let Some(n) = rules[i].count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(i);
            }
        }
        Some(kind)
    }
}

/// Body of `POST /_faults`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsRequest {
    /// Remove all rules before adding `rules`.
    #[serde(default)]
    pub clear: bool,
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}
