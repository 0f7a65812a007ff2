//! Metrics (feature `metrics`) and tracing spans (feature `tracing`)
//! around every backend call. With both features off, [`check`] is the
//! limiter's future and nothing else.
//!
//! Metrics, each labelled `limiter` (the layer's name):
//! - `ratelimit_decisions_total{outcome="allowed"|"denied"}`: counter.
//! - `ratelimit_fallback_decisions_total{reason}`: counter of decisions
//!   not made by the quota (`key_table_full`, `fail_open`, `fail_closed`,
//!   `fallback`).
//! - `ratelimit_backend_errors_total{kind="backend"|"cost_above_capacity"}`:
//!   counter.
//! - `ratelimit_backend_latency_seconds`: histogram of the time from the
//!   call to the answer.

use ratelimit_core::Decision;

use crate::limiter::{LimitError, Limiter};

/// Asks `limiter`, recording what the enabled features record.
#[cfg_attr(
    not(any(feature = "metrics", feature = "tracing")),
    allow(clippy::unused_async)
)]
pub(crate) async fn check<K, L: Limiter<K>>(
    limiter: &L,
    name: &crate::layer::Name,
    key: K,
    cost: u64,
) -> Result<Decision, LimitError> {
    let _ = name;
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let future = limiter.check(key, cost);
    #[cfg(feature = "tracing")]
    let future = tracing::Instrument::instrument(
        future,
        tracing::debug_span!("ratelimit.check", limiter = %name.plain, cost),
    );
    let result = future.await;
    #[cfg(feature = "metrics")]
    record(name, &result, started.elapsed());
    #[cfg(feature = "tracing")]
    match &result {
        Ok(d) => {
            tracing::debug!(limiter = %name.plain, allowed = d.allowed, remaining = d.remaining, reason = ?d.reason, "rate-limit decision")
        }
        Err(e) => tracing::debug!(limiter = %name.plain, error = %e, "rate-limit backend error"),
    }
    result
}

#[cfg(feature = "metrics")]
fn record(
    name: &crate::layer::Name,
    result: &Result<Decision, LimitError>,
    took: core::time::Duration,
) {
    use ratelimit_core::Reason;

    let limiter = name.label.clone();
    metrics::histogram!("ratelimit_backend_latency_seconds", "limiter" => limiter.clone())
        .record(took.as_secs_f64());
    match result {
        Ok(d) => {
            let outcome = if d.allowed { "allowed" } else { "denied" };
            metrics::counter!("ratelimit_decisions_total", "limiter" => limiter.clone(), "outcome" => outcome)
                .increment(1);
            let reason = match d.reason {
                Reason::Quota => return,
                Reason::KeyTableFull => "key_table_full",
                Reason::FailOpen => "fail_open",
                Reason::FailClosed => "fail_closed",
                Reason::Fallback => "fallback",
                _ => "other",
            };
            metrics::counter!("ratelimit_fallback_decisions_total", "limiter" => limiter, "reason" => reason)
                .increment(1);
        }
        Err(e) => {
            let kind = match e {
                LimitError::InsufficientCapacity(_) => "cost_above_capacity",
                _ => "backend",
            };
            metrics::counter!("ratelimit_backend_errors_total", "limiter" => limiter, "kind" => kind)
                .increment(1);
        }
    }
}
