//! [`State`]: everything a server serves, separable from the server so a test can stop a
//! server and start another on the same state ("endpoint restarts mid-run").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::Core;

pub(crate) struct Shared {
    pub core: Mutex<Core>,
    /// Wakes the timer driver (see `timers::drive`).
    pub timer_wake: Arc<Notify>,
    /// SWF calls received per operation, faulted ones included (`GET /_stats`).
    pub calls: Mutex<BTreeMap<String, u64>>,
    /// The timer driver is spawned by the first server that binds this state.
    driver: Once,
}

/// The service's in-memory state (domains, types, executions, queues, timers); clones
/// share it. Hand it to [`crate::Server::bind_with_state`] to keep it across restarts.
#[derive(Clone)]
pub struct State {
    pub(crate) shared: Arc<Shared>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn lock_core(&self) -> std::sync::MutexGuard<'_, Core> {
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        core.enforce_event_limit();
        core
    }
}

impl State {
    pub fn new() -> State {
        let timer_wake = Arc::new(Notify::new());
        State {
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new(timer_wake.clone())),
                timer_wake,
                calls: Mutex::new(BTreeMap::new()),
                driver: Once::new(),
            }),
        }
    }

    /// Starts the timer driver on the current tokio runtime (once per state).
    pub(crate) fn ensure_driver(&self) {
        let weak = Arc::downgrade(&self.shared);
        self.shared.driver.call_once(|| {
            tokio::spawn(crate::timers::drive(weak));
        });
    }

    /// The state, with every run whose history reached SWF's limit terminated first.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.shared.lock_core()
    }

    /// How many long polls are held now on task list `task_list` of `domain`, as
    /// (activity polls, decision polls); for tests and debugging.
    pub fn pollers(&self, domain: &str, task_list: &str) -> (usize, usize) {
        let core = self.lock();
        let key = (domain.to_owned(), task_list.to_owned());
        let held = |q: &std::collections::HashMap<_, crate::model::TaskQueue>| {
            q.get(&key).map_or(0, |q| q.pollers)
        };
        (
            held(&core.sched.activity_queues),
            held(&core.sched.decision_queues),
        )
    }

    /// How many calls of `operation` arrived so far.
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// All call counts, by operation.
    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        self.shared.calls.lock().unwrap().clone()
    }

    pub(crate) fn count_call(&self, operation: &str) {
        let mut calls = self.shared.calls.lock().unwrap();
        match calls.get_mut(operation) {
            Some(n) => *n += 1,
            None => {
                calls.insert(operation.to_owned(), 1);
            }
        }
    }

    /// How many open executions a domain may have (SWF: 100,000); tests lower it to reach
    /// the limit with a few.
    pub fn set_open_executions_limit(&self, limit: usize) {
        self.lock().open_executions_limit = limit;
    }

    /// Lifetime of `nextPageToken`s (SWF: 60 s); tests shorten it to see expiry.
    pub fn set_page_token_lifetime(&self, lifetime: Duration) {
        self.lock().sched.page_token_lifetime = lifetime;
    }
}
