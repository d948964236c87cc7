//! SWF's API rate quotas (SWF-LIMITS.md, "Quotas"): a token bucket per operation for the
//! whole endpoint (SWF's are per account, and swf-local serves one account), and one per
//! workflow execution for RecordActivityTaskHeartbeat. A request that finds its bucket empty
//! is answered `ThrottlingException` ("Rate exceeded"), as SWF answers it, and changes
//! nothing.
//!
//! Also SWF's limit of 2,000 activity tasks scheduled per second on one task list (SWF
//! developer guide, "Quotas on task executions"): a ScheduleActivityTask decision over it
//! records ScheduleActivityTaskFailed with cause ACTIVITY_CREATION_RATE_EXCEEDED.
//!
//! A bucket starts full, every request takes one token, and tokens come back at the refill
//! rate up to the bucket size: a client may burst up to the bucket size, then keep to the
//! refill rate. Operations without a quota here are never throttled.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One quota: a bucket of `bucket` tokens, refilled at `refill_per_s` tokens a second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub bucket: u32,
    pub refill_per_s: f64,
}

impl Rate {
    pub const fn new(bucket: u32, refill_per_s: f64) -> Rate {
        Rate {
            bucket,
            refill_per_s,
        }
    }

    fn check(&self, what: &str) -> Result<(), String> {
        if self.refill_per_s.is_finite() && self.refill_per_s >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "{what}: refill_per_s must be a number of at least 0, not {}",
                self.refill_per_s
            ))
        }
    }
}

/// The quotas an endpoint applies (the body of `GET` and `POST /_quotas`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSet {
    /// Operation name (e.g. `PollForActivityTask`) -> its quota over all callers.
    #[serde(default)]
    pub operations: BTreeMap<String, Rate>,
    /// RecordActivityTaskHeartbeat's quota per workflow execution, on top of its
    /// operation quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeats_per_execution: Option<Rate>,
    /// ScheduleActivityTask decisions per (domain, task list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activities_scheduled_per_task_list: Option<Rate>,
}

impl QuotaSet {
    /// SWF's default quotas, as SWF-LIMITS.md lists them.
    pub fn swf() -> QuotaSet {
        let op = |name: &str, bucket, refill| (name.to_owned(), Rate::new(bucket, refill));
        QuotaSet {
            operations: BTreeMap::from([
                op("PollForActivityTask", 2000, 200.0),
                op("RecordActivityTaskHeartbeat", 2000, 160.0),
                op("RespondActivityTaskCompleted", 2000, 200.0),
                op("RespondActivityTaskFailed", 2000, 200.0),
                op("RespondActivityTaskCanceled", 2000, 200.0),
                op("RegisterActivityType", 200, 60.0),
            ]),
            heartbeats_per_execution: Some(Rate::new(1000, 1000.0)),
            activities_scheduled_per_task_list: Some(Rate::new(2000, 2000.0)),
        }
    }

    /// No quota at all: nothing is ever throttled (benchmarks, and tests that burst on
    /// purpose).
    pub fn none() -> QuotaSet {
        QuotaSet::default()
    }

    /// `"swf"`, `"none"`, or a JSON object in the shape of `GET /_quotas` (the argument of
    /// `--quotas`).
    pub fn parse(arg: &str) -> Result<QuotaSet, String> {
        let set = match arg.trim() {
            "swf" => QuotaSet::swf(),
            "none" => QuotaSet::none(),
            json => serde_json::from_str(json).map_err(|e| {
                format!("expected \"swf\", \"none\" or a JSON object like GET /_quotas shows: {e}")
            })?,
        };
        set.check()?;
        Ok(set)
    }

    /// Refuses operation names SWF does not have and rates that are not rates.
    pub fn check(&self) -> Result<(), String> {
        for (op, rate) in &self.operations {
            if !crate::validate::known_operation(op) {
                return Err(format!("operations.{op}: not an SWF operation"));
            }
            rate.check(&format!("operations.{op}"))?;
        }
        if let Some(rate) = &self.heartbeats_per_execution {
            rate.check("heartbeats_per_execution")?;
        }
        if let Some(rate) = &self.activities_scheduled_per_task_list {
            rate.check("activities_scheduled_per_task_list")?;
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.operations.is_empty()
            && self.heartbeats_per_execution.is_none()
            && self.activities_scheduled_per_task_list.is_none()
    }
}

/// A token bucket.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.bucket),
            at: now,
        }
    }

    /// Refills for the time since the last look, then takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (so forgetting it changes nothing).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.bucket)
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.refill_per_s).min(f64::from(rate.bucket));
        self.at = now;
    }
}

/// The quotas of a running endpoint; clones share the buckets, so a test can keep one and
/// change the quotas while the server runs.
#[derive(Clone, Debug)]
pub struct Quotas {
    /// False while the set is empty: the request path then takes no lock.
    any: Arc<AtomicBool>,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    set: QuotaSet,
    operations: HashMap<String, Bucket>,
    /// Execution id -> its heartbeat bucket.
    executions: Keyed<u64>,
    /// (domain, task list) -> its bucket of activity tasks to schedule.
    task_lists: Keyed<(String, String)>,
    /// Requests throttled so far, by operation (`GET /_stats`).
    throttled: BTreeMap<String, u64>,
}

/// Buckets by key (an execution, a task list), each forgotten once full again: a full
/// bucket and no bucket behave the same.
#[derive(Debug)]
struct Keyed<K> {
    buckets: HashMap<K, Bucket>,
    /// When `buckets` grows to this size, the full ones are forgotten. It then doubles
    /// what is left (at least [`PRUNE_AT`]), so pruning stays amortised O(1).
    prune_at: usize,
}

impl<K> Default for Keyed<K> {
    fn default() -> Self {
        Keyed {
            buckets: HashMap::new(),
            prune_at: PRUNE_AT,
        }
    }
}

impl<K: std::hash::Hash + Eq> Keyed<K> {
    fn take(&mut self, key: K, rate: Rate, now: Instant) -> bool {
        if self.buckets.len() >= self.prune_at {
            self.buckets.retain(|_, b| !b.is_full(rate, now));
            self.prune_at = (2 * self.buckets.len()).max(PRUNE_AT);
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }
}

/// How many keyed buckets are kept before the full ones are forgotten.
const PRUNE_AT: usize = 1024;

impl Default for Quotas {
    /// SWF's quotas ([`QuotaSet::swf`]).
    fn default() -> Self {
        Quotas::new(QuotaSet::swf())
    }
}

impl Quotas {
    pub fn new(set: QuotaSet) -> Quotas {
        let q = Quotas {
            any: Arc::new(AtomicBool::new(false)),
            inner: Arc::default(),
        };
        q.set(set);
        q
    }

    /// Applies `set` from now on, every bucket full (the throttle counts are kept).
    pub fn set(&self, set: QuotaSet) {
        let mut inner = self.inner.lock().unwrap();
        self.any.store(!set.is_empty(), Ordering::Relaxed);
        let throttled = std::mem::take(&mut inner.throttled);
        *inner = Inner {
            set,
            throttled,
            ..Inner::default()
        };
    }

    pub fn get(&self) -> QuotaSet {
        self.inner.lock().unwrap().set.clone()
    }

    /// How many requests were throttled so far, by operation.
    pub fn throttled(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap().throttled.clone()
    }

    /// Takes a token for one request of `operation`; false = throttle it.
    pub fn take(&self, operation: &str) -> bool {
        let now = Instant::now();
        self.take_from(operation, |inner| {
            let rate = *inner.set.operations.get(operation)?;
            let bucket = inner
                .operations
                .entry(operation.to_owned())
                .or_insert_with(|| Bucket::full(rate, now));
            Some(bucket.take(rate, now))
        })
    }

    /// Takes a token from the heartbeat bucket of execution `exec`; false = throttle it.
    pub fn take_heartbeat(&self, exec: u64) -> bool {
        self.take_heartbeat_at(exec, Instant::now())
    }

    fn take_heartbeat_at(&self, exec: u64, now: Instant) -> bool {
        self.take_from("RecordActivityTaskHeartbeat", |inner| {
            let rate = inner.set.heartbeats_per_execution?;
            Some(inner.executions.take(exec, rate, now))
        })
    }

    /// Takes a token for one activity task scheduled on `task_list` of `domain`; false =
    /// fail the ScheduleActivityTask decision (counted in `throttled` as
    /// "ScheduleActivityTask").
    pub fn take_scheduled(&self, domain: &str, task_list: &str) -> bool {
        self.take_scheduled_at(domain, task_list, Instant::now())
    }

    fn take_scheduled_at(&self, domain: &str, task_list: &str, now: Instant) -> bool {
        self.take_from("ScheduleActivityTask", |inner| {
            let rate = inner.set.activities_scheduled_per_task_list?;
            let key = (domain.to_owned(), task_list.to_owned());
            Some(inner.task_lists.take(key, rate, now))
        })
    }

    /// Runs `take` (None: no quota applies) unless no quota is set at all, and counts a
    /// refusal under `counted_as`.
    fn take_from(&self, counted_as: &str, take: impl FnOnce(&mut Inner) -> Option<bool>) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return true;
        }
        let mut inner = self.inner.lock().unwrap();
        let taken = take(&mut inner).unwrap_or(true);
        if !taken {
            inner.count_throttled(counted_as);
        }
        taken
    }
}

impl Inner {
    fn count_throttled(&mut self, operation: &str) {
        match self.throttled.get_mut(operation) {
            Some(n) => *n += 1,
            None => {
                self.throttled.insert(operation.to_owned(), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_gives_its_size_at_once_then_its_refill_rate() {
        let rate = Rate::new(3, 2.0);
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        assert!((0..3).all(|_| b.take(rate, t0)));
        assert!(!b.take(rate, t0), "empty after the burst");
        let half = t0 + Duration::from_millis(500);
        assert!(b.take(rate, half), "one token back after 0.5 s at 2/s");
        assert!(!b.take(rate, half));
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(rate, later)), "refilled to its size");
        assert!(!b.take(rate, later), "never above its size");
    }

    #[test]
    fn a_zero_bucket_throttles_everything() {
        let rate = Rate::new(0, 0.0);
        let t0 = Instant::now();
        let mut b = Bucket::full(rate, t0);
        assert!(!b.take(rate, t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn quotas_parse_presets_and_json_and_name_what_is_wrong() {
        assert_eq!(QuotaSet::parse("swf").unwrap(), QuotaSet::swf());
        assert_eq!(QuotaSet::parse("none").unwrap(), QuotaSet::none());
        let set = QuotaSet::parse(
            r#"{"operations":{"PollForActivityTask":{"bucket":5,"refill_per_s":1}}}"#,
        )
        .unwrap();
        assert_eq!(
            set.operations["PollForActivityTask"],
            Rate::new(5, 1.0),
            "{set:?}"
        );
        let err =
            QuotaSet::parse(r#"{"operations":{"PollForTask":{"bucket":5,"refill_per_s":1}}}"#)
                .unwrap_err();
        assert!(err.contains("operations.PollForTask"), "{err}");
        let err = QuotaSet::parse(r#"{"heartbeats_per_execution":{"bucket":5,"refill_per_s":-1}}"#)
            .unwrap_err();
        assert!(err.contains("heartbeats_per_execution"), "{err}");
        assert!(QuotaSet::parse("sfw").is_err());
    }

    #[test]
    fn heartbeat_buckets_are_per_execution_and_full_ones_are_forgotten() {
        let q = Quotas::new(QuotaSet {
            heartbeats_per_execution: Some(Rate::new(2, 1000.0)),
            ..QuotaSet::none()
        });
        let t0 = Instant::now();
        assert!(q.take_heartbeat_at(1, t0) && q.take_heartbeat_at(1, t0));
        assert!(!q.take_heartbeat_at(1, t0), "execution 1 used its bucket");
        assert!(q.take_heartbeat_at(2, t0), "execution 2 has its own bucket");
        for exec in 3..PRUNE_AT as u64 {
            q.take_heartbeat_at(exec, t0);
        }
        assert_eq!(
            q.inner.lock().unwrap().executions.buckets.len(),
            PRUNE_AT - 1
        );
        // One second later every bucket is full again: the next new one prunes them all.
        assert!(q.take_heartbeat_at(PRUNE_AT as u64, t0));
        assert!(q.take_heartbeat_at(1, t0 + Duration::from_secs(1)));
        let kept = q.inner.lock().unwrap().executions.buckets.len();
        assert!(kept <= 2, "{kept} buckets kept");
    }

    #[test]
    fn scheduling_has_a_bucket_per_domain_and_task_list() {
        let q = Quotas::new(QuotaSet {
            activities_scheduled_per_task_list: Some(Rate::new(2, 0.0)),
            ..QuotaSet::none()
        });
        let t0 = Instant::now();
        assert!(q.take_scheduled_at("d", "a", t0) && q.take_scheduled_at("d", "a", t0));
        assert!(!q.take_scheduled_at("d", "a", t0));
        assert!(q.take_scheduled_at("d", "b", t0), "another task list");
        assert!(
            q.take_scheduled_at("e", "a", t0),
            "the same name in another domain"
        );
        assert_eq!(q.throttled()["ScheduleActivityTask"], 1);
    }

    #[test]
    fn no_quota_means_never_throttled() {
        let q = Quotas::new(QuotaSet::none());
        assert!((0..10_000).all(|_| q.take("PollForActivityTask")));
        let q = Quotas::default();
        assert!((0..10_000).all(|_| q.take("DescribeDomain")));
    }
}
