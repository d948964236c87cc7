//! The plain-Rust vocabulary shared by the SWF side (`swf`, `poller`, `dispatch`, `heartbeat`)
//! and the WebAssembly side (`runtime`, `registry`).
//!
//! Nothing here mentions wasmtime or aws-sdk-swf: each side converts at its own edge, so
//! neither ever sees the other's types.

use std::fmt;
use std::sync::Arc;

/// An SWF activity type: what a task is routed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityType {
    pub name: String,
    pub version: String,
}

impl ActivityType {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    /// Parses `name@version` (the file stem of a plugin, the key of `[activity."..."]`).
    /// The version is what follows the last `@`; both parts must be non-empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (name, version) = s.rsplit_once('@')?;
        (!name.is_empty() && !version.is_empty()).then(|| Self::new(name, version))
    }
}

impl fmt::Display for ActivityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// One ActivityTask as PollForActivityTask returned it, less the task token, which stays
/// on the SWF side (in `dispatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityTask {
    pub activity_id: String,
    pub activity_type: ActivityType,
    pub workflow_id: String,
    pub run_id: String,
    pub started_event_id: i64,
    pub task_list: String,
    pub input: Option<String>,
}

/// How a task ended, as the guest (or the host on its behalf) decided.
/// `dispatch` turns it into RespondActivityTaskCompleted / Failed / Canceled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed(Option<String>),
    Failed {
        reason: String,
        details: Option<String>,
    },
    Canceled(Option<String>),
}

impl Outcome {
    /// `completed`, `failed` or `canceled`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Completed(_) => "completed",
            Outcome::Failed { .. } => "failed",
            Outcome::Canceled(_) => "canceled",
        }
    }

    pub fn failed(reason: impl Into<String>, details: impl Into<Option<String>>) -> Self {
        Outcome::Failed {
            reason: reason.into(),
            details: details.into(),
        }
    }
}

/// Failure reasons the host itself answers with. Guests choose their own reasons.
pub mod reason {
    pub const UNKNOWN_ACTIVITY_TYPE: &str = "swasm.UnknownActivityType";
    pub const TRAP: &str = "swasm.Trap";
    pub const TIMEOUT: &str = "swasm.Timeout";
    pub const MEMORY_LIMIT: &str = "swasm.MemoryLimit";
    pub const RESULT_TOO_LARGE: &str = "swasm.ResultTooLarge";
    pub const SHUTDOWN: &str = "swasm.Shutdown";
    pub const INSTANTIATE: &str = "swasm.InstantiateFailed";
    /// SWF refused the answer itself (ValidationException): the task is failed with why,
    /// rather than left to time out.
    pub const ANSWER_REFUSED: &str = "swasm.AnswerRefused";
    /// The host panicked while handling the task (a bug in swasm, not the guest's doing):
    /// failed now, so the workflow need not wait for the task's timeout.
    pub const HOST_ERROR: &str = "swasm.HostError";

    /// Every reason the host gives (a guest may give one that starts with `swasm.` too).
    pub const ALL: &[&str] = &[
        UNKNOWN_ACTIVITY_TYPE,
        TRAP,
        TIMEOUT,
        MEMORY_LIMIT,
        RESULT_TOO_LARGE,
        SHUTDOWN,
        INSTANTIATE,
        ANSWER_REFUSED,
        HOST_ERROR,
    ];
}

/// What a guest's `heartbeat(details)` reaches. Implemented by the `heartbeat` module for
/// SWF, and by `swasm invoke` for local runs.
///
/// `beat` must not block: it records the latest details (the implementation throttles and
/// sends them) and returns the latest known "cancel requested or task gone" flag.
pub trait Heartbeat: Send + Sync {
    fn beat(&self, details: Option<String>) -> bool;
}

/// A heartbeat sink that records nothing and never cancels.
pub struct NoHeartbeat;

impl Heartbeat for NoHeartbeat {
    fn beat(&self, _details: Option<String>) -> bool {
        false
    }
}

pub type HeartbeatHandle = Arc<dyn Heartbeat>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_at_version() {
        assert_eq!(
            ActivityType::parse("echo@1"),
            Some(ActivityType::new("echo", "1"))
        );
        assert_eq!(
            ActivityType::parse("a@b@2.0"),
            Some(ActivityType::new("a@b", "2.0"))
        );
        assert_eq!(ActivityType::parse("echo"), None);
        assert_eq!(ActivityType::parse("@1"), None);
        assert_eq!(ActivityType::parse("echo@"), None);
    }
}
