//! [`State`]: everything a server serves, separable from the server so a test can stop a
//! server and start another on the same state ("endpoint restarts mid-run").

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, Once};
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

/// The locked [`Core`]. Releasing it first terminates the runs whose history the operation
/// filled up ([`Core::enforce_event_limit`]): the operation that fills a history terminates
/// its run, so no one sees the run open, and its parent and children learn of it at once.
pub(crate) struct CoreGuard<'a>(MutexGuard<'a, Core>);

impl Deref for CoreGuard<'_> {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.0
    }
}

impl DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.0
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.enforce_event_limit();
        }
    }
}

impl Shared {
    pub(crate) fn lock_core(&self) -> CoreGuard<'_> {
        CoreGuard(self.core.lock().unwrap_or_else(|e| e.into_inner()))
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

    /// The state; see [`CoreGuard`] for what releasing it does.
    pub(crate) fn lock(&self) -> CoreGuard<'_> {
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

    /// Makes every live `nextPageToken` `by` older, so tests see tokens expire (after 60 s
    /// for PollForDecisionTask's, 24 hours for the others') without waiting.
    pub fn age_page_tokens(&self, by: Duration) {
        self.lock().sched.page_tokens.age(by);
    }

    /// How many events one history may hold, its termination included (SWF: 25,000,
    /// [`crate::model::MAX_HISTORY_EVENTS`]); tests lower it to reach it with a few events.
    pub fn set_max_history_events(&self, max: usize) {
        self.lock().event_limit.set_max(max);
    }
}
