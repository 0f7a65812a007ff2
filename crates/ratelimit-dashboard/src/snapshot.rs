//! [`Snapshot`]: what the page shows, as the JSON endpoint serves it and
//! as processes publish it to Redis for the fleet view.

use serde::{Deserialize, Serialize};

/// Decisions counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Allowed by the quota.
    pub allowed: u64,
    /// Denied by the quota (or by a memory limiter's key table being
    /// full, or a key too long).
    pub denied: u64,
    /// Decided by the failure policy, the backend having failed: fail
    /// open, fail closed, or the local fallback limiter.
    pub failure_policy: u64,
    /// No decision: the limiter returned an error (backend failure,
    /// cost above capacity).
    pub error: u64,
}

impl Counts {
    /// The counts of both, added.
    #[must_use]
    pub fn plus(self, o: Self) -> Self {
        Self {
            allowed: self.allowed + o.allowed,
            denied: self.denied + o.denied,
            failure_policy: self.failure_policy + o.failure_policy,
            error: self.error + o.error,
        }
    }

    /// `self − earlier`, each field saturating at 0.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            allowed: self.allowed.saturating_sub(earlier.allowed),
            denied: self.denied.saturating_sub(earlier.denied),
            failure_policy: self.failure_policy.saturating_sub(earlier.failure_policy),
            error: self.error.saturating_sub(earlier.error),
        }
    }
}

/// The decisions of one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// The second's end, in Unix seconds.
    pub t: u64,
    /// What was decided in it.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One of the most denied keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopKey {
    /// The key, as text (attacker-chosen: the page inserts it as text).
    pub key: String,
    /// Whether the key was longer than the bytes kept (then `key` ends
    /// with `…`).
    pub truncated: bool,
    /// Denials counted, an upper bound.
    pub count: u64,
    /// The most by which `count` may exceed the true number.
    pub error: u64,
    /// Units left at its last denial (tokens, or free queue slots).
    pub remaining: u64,
    /// The quota's limit.
    pub limit: u64,
    /// Milliseconds from its last denial until it is back to its initial
    /// state.
    pub reset_after_ms: u64,
    /// When it was last denied, in Unix seconds.
    pub last_seen: u64,
}

/// A quota in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaInfo {
    /// The name it was registered under (a layer's policy name).
    pub name: String,
    /// `token-bucket`, `leaky-bucket`, `fixed-window`, `sliding-window`.
    pub algorithm: String,
    /// The capacity or limit.
    pub limit: u64,
    /// The time in which `limit` units accrue (a bucket) or the window, in
    /// milliseconds.
    pub period_ms: u64,
}

/// A key of the Redis backend, read by the fleet view's `SCAN` sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisKeyInfo {
    /// The limiter's key (the Redis key without `<prefix>|`), as text.
    pub key: String,
    /// Milliseconds until it is back to its initial state (the larger,
    /// the closer to empty).
    pub reset_after_ms: u64,
    /// Units available now, when the fleet publishes exactly one bucket
    /// quota (otherwise unknown).
    pub remaining: Option<u64>,
}

/// What Redis itself knows about a prefix (the fleet view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisView {
    /// The prefix.
    pub prefix: String,
    /// Keys under the prefix seen by the last `SCAN` pass (a lower bound
    /// when the pass stopped at its budget).
    pub keys: u64,
    /// Whether the pass covered the whole key space.
    pub complete: bool,
    /// The keys closest to empty among those read.
    pub closest_to_empty: Vec<RedisKeyInfo>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `process` (one recorder) or `fleet` (merged from Redis).
    pub source: String,
    /// Unix seconds of the newest data.
    pub now: u64,
    /// The time span of `top_denied`, in seconds.
    pub span_secs: u64,
    /// Decisions per second, oldest first.
    pub series: Vec<Second>,
    /// Decisions since the recorder was made.
    pub totals: Counts,
    /// The most denied keys in the span, most first.
    pub top_denied: Vec<TopKey>,
    /// The quotas in force.
    pub quotas: Vec<QuotaInfo>,
    /// Processes merged (1 for a process's own page).
    pub processes: u64,
    /// What Redis knows (the fleet view only).
    pub redis: Option<RedisView>,
}

impl Snapshot {
    /// The JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // A `Snapshot` has only strings, numbers and lists: serialising it
        // cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}
