//! What a limiter tells its operators: counters ([`Stats`], always on),
//! [`Health`] (is Redis in use right now), and, with the `tracing` and
//! `metrics` features, log lines and metrics.
//!
//! Why these two facades: they are the standard ones of the async Rust
//! ecosystem (ratelimit-tower uses the same), a program that installs no
//! subscriber or recorder pays a branch per event, and a program that does
//! gets the limiter's events next to its own without glue code. The
//! counters need neither, so tests and programs without either can read
//! them.
//!
//! Log lines are rate-limited per kind of event: the first is written at
//! once, then at most one every [`LOG_INTERVAL`], which says how many it
//! stands for. Circuit transitions are rare and always written.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::breaker::{State, Transition};
use crate::config::FailurePolicy;
use crate::error::RedisLimitError;

/// The shortest time between two log lines of one kind.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a limiter has counted since it was built (see
/// [`RedisLimiter::stats`](crate::RedisLimiter::stats)). Export these and
/// alert on them: the failure policies hide failures from callers by
/// design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Answers of the failure policy (`FailOpen`, `FailClosed`,
    /// `Fallback`) in place of Redis's, each key of a batch counted, the
    /// answers given while the circuit was open included.
    pub policy_decisions: u64,
    /// Calls that could reach Redis but failed (connect errors, timeouts,
    /// lost connections, out of memory, script and reply errors).
    pub redis_failures: u64,
    /// Calls not sent because the circuit breaker was open.
    pub short_circuited: u64,
    /// Times the circuit breaker opened.
    pub circuit_opened: u64,
    /// Calls that failed with a misconfiguration (credentials, database,
    /// permissions): returned as errors, never answered by the policy.
    pub misconfigurations: u64,
    /// Keys whose state in Redis was corrupt (not a rate-limit state, or
    /// beyond the horizon) and was rewritten as fully consumed.
    pub corrupt_states_repaired: u64,
    /// Checks denied by the local denied-key cache without a round trip
    /// ([`cache_denials`](crate::RedisLimiterBuilder::cache_denials)).
    pub cached_denials: u64,
}

/// Whether Redis is in use right now (see
/// [`RedisLimiter::health`](crate::RedisLimiter::health)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Calls go to Redis, and the last one reached it (or none was made).
    Up,
    /// Calls go to Redis, but the last ones could not reach it (fewer than
    /// the breaker's threshold, or no breaker).
    Failing {
        /// The failed calls in a row.
        consecutive_failures: u32,
    },
    /// The circuit breaker is open: calls are answered by the failure
    /// policy (or fail with `CircuitOpen`) without reaching Redis.
    CircuitOpen {
        /// Until the next probe.
        retry_in: Duration,
    },
    /// The cool-down is over: one call at a time probes Redis, the others
    /// are answered as while open.
    Probing,
    /// The last call was refused for its configuration (credentials,
    /// database, permissions): every call returns that error until someone
    /// fixes it.
    Misconfigured,
}

impl Health {
    /// Whether calls are being decided by Redis: [`Up`](Self::Up) or
    /// [`Failing`](Self::Failing) (still asking it).
    #[must_use]
    pub fn redis_in_use(&self) -> bool {
        matches!(self, Self::Up | Self::Failing { .. })
    }
}

/// At most one line per [`LOG_INTERVAL`] for one kind of event.
#[derive(Debug, Default)]
struct Gate {
    /// The earliest time (ns) of the next line; Relaxed: a hint, a race
    /// writes one line too many at worst.
    next: AtomicU64,
    /// Events since the last line.
    pending: AtomicU64,
}

impl Gate {
    /// `Some(n)`: write a line now, standing for `n` events (this one
    /// included).
    fn pass(&self, now: u64) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let next = self.next.load(Ordering::Relaxed);
        if now < next && next != 0 {
            return None;
        }
        let interval = u64::try_from(LOG_INTERVAL.as_nanos()).unwrap_or(u64::MAX);
        self.next
            .compare_exchange(
                next,
                now.saturating_add(interval).max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .ok()?;
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

/// The counters, the gates and the labels of one limiter.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    policy_decisions: AtomicU64,
    redis_failures: AtomicU64,
    short_circuited: AtomicU64,
    circuit_opened: AtomicU64,
    misconfigurations: AtomicU64,
    corrupt: AtomicU64,
    /// The last call failed for its configuration.
    misconfigured: AtomicBool,
    policy_gate: Gate,
    failure_gate: Gate,
    misconfig_gate: Gate,
    corrupt_gate: Gate,
    /// The prefix, as a metric label and in log lines.
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    prefix: String,
}

// Every counter is a statistic: Relaxed, no ordering with anything else.
impl Observer {
    pub(crate) fn new(prefix: &str) -> Self {
        #[cfg(feature = "metrics")]
        describe();
        Self {
            prefix: prefix.to_owned(),
            ..Self::default()
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            policy_decisions: self.policy_decisions.load(Ordering::Relaxed),
            redis_failures: self.redis_failures.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            circuit_opened: self.circuit_opened.load(Ordering::Relaxed),
            misconfigurations: self.misconfigurations.load(Ordering::Relaxed),
            corrupt_states_repaired: self.corrupt.load(Ordering::Relaxed),
            // Filled in by the limiter, which owns the cache.
            cached_denials: 0,
        }
    }

    /// The health, from the breaker's state.
    pub(crate) fn health(&self, state: State, now: u64) -> Health {
        if self.misconfigured.load(Ordering::Relaxed) {
            return Health::Misconfigured;
        }
        match state {
            State::Closed(0) => Health::Up,
            State::Closed(n) => Health::Failing {
                consecutive_failures: n,
            },
            State::Open(until) if now < until => Health::CircuitOpen {
                retry_in: Duration::from_nanos(until - now),
            },
            State::Open(_) | State::HalfOpen(_) => Health::Probing,
        }
    }

    /// A call reached Redis and got an answer (maybe an error it answered).
    pub(crate) fn reached(&self) {
        if self.misconfigured.load(Ordering::Relaxed) {
            self.misconfigured.store(false, Ordering::Relaxed);
        }
    }

    /// A call failed with `e` (before the policy looks at it).
    pub(crate) fn failed(&self, e: &RedisLimitError, now: u64) {
        if e.is_misconfiguration() {
            self.misconfigured.store(true, Ordering::Relaxed);
            self.misconfigurations.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            metrics::counter!("ratelimit_redis_misconfigurations_total", "prefix" => self.prefix.clone())
                .increment(1);
            if let Some(_n) = self.misconfig_gate.pass(now) {
                #[cfg(feature = "tracing")]
                tracing::error!(prefix = %self.prefix, error = %e, calls = _n, "Redis refuses the rate limiter's configuration: every call fails until it is fixed");
            }
            return;
        }
        if matches!(e, RedisLimitError::CircuitOpen { .. }) {
            self.short_circuited.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            metrics::counter!("ratelimit_redis_short_circuited_total", "prefix" => self.prefix.clone())
                .increment(1);
            return;
        }
        if e.is_redis_failure() {
            self.redis_failures.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            metrics::counter!("ratelimit_redis_failures_total", "prefix" => self.prefix.clone(), "kind" => e.kind())
                .increment(1);
            if let Some(_n) = self.failure_gate.pass(now) {
                #[cfg(feature = "tracing")]
                tracing::warn!(prefix = %self.prefix, error = %e, failures = _n, "Redis call failed");
            }
        }
    }

    /// The failure policy answered `n` requests in place of Redis, after `e`.
    pub(crate) fn policy_answered(
        &self,
        policy: FailurePolicy,
        e: &RedisLimitError,
        n: u64,
        now: u64,
    ) {
        self.policy_decisions.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("ratelimit_redis_policy_decisions_total", "prefix" => self.prefix.clone(), "policy" => policy_name(policy))
            .increment(n);
        if let Some(_n) = self.policy_gate.pass(now) {
            #[cfg(feature = "tracing")]
            tracing::warn!(prefix = %self.prefix, policy = policy_name(policy), error = %e, answers = _n, "Redis did not decide; the failure policy answered");
        }
        let _ = (policy, e);
    }

    /// A key's corrupt state was rewritten as fully consumed.
    pub(crate) fn repaired(&self, redis_key: &[u8], now: u64) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("ratelimit_redis_corrupt_states_total", "prefix" => self.prefix.clone())
            .increment(1);
        if let Some(_n) = self.corrupt_gate.pass(now) {
            #[cfg(feature = "tracing")]
            tracing::warn!(prefix = %self.prefix, key = %key_for_log(redis_key), repaired = _n, "a corrupt rate-limit state in Redis was rewritten as fully consumed (it expires within the quota's period)");
        }
        let _ = redis_key;
    }

    /// The breaker changed state.
    pub(crate) fn transition(&self, t: Transition, _e: Option<&RedisLimitError>) {
        if t == Transition::Opened {
            self.circuit_opened.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            if t == Transition::Opened {
                metrics::counter!("ratelimit_redis_circuit_opened_total", "prefix" => self.prefix.clone())
                    .increment(1);
            }
            metrics::gauge!("ratelimit_redis_circuit_open", "prefix" => self.prefix.clone())
                .set(if t == Transition::Opened { 1.0 } else { 0.0 });
        }
        #[cfg(feature = "tracing")]
        match t {
            Transition::Opened => {
                tracing::warn!(prefix = %self.prefix, error = _e.map(tracing::field::display), "Redis keeps failing: circuit breaker open, the failure policy answers without calling Redis until a probe succeeds")
            }
            Transition::Closed => {
                tracing::warn!(prefix = %self.prefix, "Redis answers again: circuit breaker closed")
            }
        }
    }
}

/// The policy's name, for logs and labels.
#[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
fn policy_name(policy: FailurePolicy) -> &'static str {
    match policy {
        FailurePolicy::ReturnError => "return_error",
        FailurePolicy::FailClosed => "fail_closed",
        FailurePolicy::FailOpen => "fail_open",
        FailurePolicy::Fallback => "fallback",
    }
}

/// A Redis key as a log shows it: printable ASCII as it is, other bytes
/// escaped, at most 80 bytes of it.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
fn key_for_log(key: &[u8]) -> String {
    let shown = key.get(..80).unwrap_or(key);
    let mut out: String = shown.escape_ascii().to_string();
    if shown.len() < key.len() {
        out.push_str(&format!("… ({} bytes)", key.len()));
    }
    out
}

/// Registers the metrics' descriptions (`HELP` lines).
#[cfg(feature = "metrics")]
fn describe() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "ratelimit_redis_policy_decisions_total",
            "Answers of a Redis limiter's failure policy in place of Redis's, by prefix and policy."
        );
        metrics::describe_counter!(
            "ratelimit_redis_failures_total",
            "Redis calls of a limiter that failed, by prefix and kind of error."
        );
        metrics::describe_counter!(
            "ratelimit_redis_short_circuited_total",
            "Calls a Redis limiter did not send because its circuit breaker was open."
        );
        metrics::describe_counter!(
            "ratelimit_redis_circuit_opened_total",
            "Times a Redis limiter's circuit breaker opened."
        );
        metrics::describe_gauge!(
            "ratelimit_redis_circuit_open",
            "1 while a Redis limiter's circuit breaker is open or probing, 0 when closed."
        );
        metrics::describe_counter!(
            "ratelimit_redis_misconfigurations_total",
            "Calls refused by Redis for the limiter's configuration (credentials, database, permissions)."
        );
        metrics::describe_counter!(
            "ratelimit_redis_corrupt_states_total",
            "Corrupt rate-limit states found in Redis and rewritten as fully consumed."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_gate_writes_one_line_per_interval_counting_the_rest() {
        let g = Gate::default();
        assert_eq!(g.pass(5), Some(1));
        assert_eq!(g.pass(6), None);
        assert_eq!(g.pass(9 * S), None);
        assert_eq!(g.pass(10 * S + 5), Some(3));
        assert_eq!(g.pass(10 * S + 6), None);
        assert_eq!(g.pass(20 * S + 5), Some(2));
    }

    #[test]
    fn keys_are_escaped_and_cut_in_logs() {
        assert_eq!(key_for_log(b"p|a\n\x1b[31m"), "p|a\\n\\x1b[31m");
        let long = key_for_log(&[b'x'; 100]);
        assert!(long.ends_with("… (100 bytes)") && long.starts_with(&"x".repeat(80)));
    }

    #[test]
    fn health_follows_the_breaker_and_misconfiguration() {
        let o = Observer::new("p");
        assert_eq!(o.health(State::Closed(0), 0), Health::Up);
        assert_eq!(
            o.health(State::Closed(2), 0),
            Health::Failing {
                consecutive_failures: 2
            }
        );
        let h = o.health(State::Open(3 * S), S);
        assert_eq!(
            h,
            Health::CircuitOpen {
                retry_in: Duration::from_secs(2)
            }
        );
        assert!(!h.redis_in_use());
        assert_eq!(o.health(State::HalfOpen(9), 0), Health::Probing);
        let e = RedisLimitError::Misconfigured {
            message: String::new(),
            source: None,
        };
        o.failed(&e, 0);
        assert_eq!(o.health(State::Closed(0), 0), Health::Misconfigured);
        assert_eq!(o.stats().misconfigurations, 1);
        o.reached();
        assert!(o.health(State::Closed(0), 0).redis_in_use());
    }
}
