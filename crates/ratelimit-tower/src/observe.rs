//! Metrics (feature `metrics`) and tracing (feature `tracing`): what the
//! layer records about each request, in one place. With both features off
//! every function here is empty and compiles to nothing.
//!
//! The metric names, types, labels and meanings are documented on
//! [`describe_metrics`].

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use ratelimit_core::Decision;

use crate::limiter::LimitError;
use crate::policy::Policy;
use crate::refusal::RefusalKind;

/// `ratelimit_requests_total`.
#[cfg(feature = "metrics")]
const REQUESTS: &str = "ratelimit_requests_total";
/// `ratelimit_fallback_decisions_total`.
#[cfg(feature = "metrics")]
const FALLBACK: &str = "ratelimit_fallback_decisions_total";
/// `ratelimit_backend_latency_seconds`.
#[cfg(feature = "metrics")]
const LATENCY: &str = "ratelimit_backend_latency_seconds";

/// Registers the descriptions (Prometheus `HELP` lines) and units of the
/// layer's metrics with the installed `metrics` recorder (feature
/// `metrics`).
///
/// Each layer calls it on its first request, so you need not; call it
/// yourself after installing the recorder to have the descriptions before
/// any request.
///
/// | metric | type | labels | meaning |
/// |---|---|---|---|
/// | `ratelimit_requests_total` | counter | `limiter`, `outcome` | every request the layer saw, once, by what it did: `allowed` (the inner service was called), `unlimited` (no key and `MissingKey::Allow`), or the refusal: `denied`, `missing_key`, `invalid_key`, `key_too_long`, `no_client_address`, `cost_above_capacity`, `backend_failed` |
/// | `ratelimit_fallback_decisions_total` | counter | `limiter`, `reason` | decisions not made by the quota: `key_table_full`, `fail_open`, `fail_closed`, `fallback` (the local limiter of a Redis limiter) |
/// | `ratelimit_backend_latency_seconds` | histogram | `limiter` | the time from asking the limiter to its answer (decision or error) |
///
/// `limiter` is the layer's policy name. `outcome` and `reason` take only
/// the values above (bounded cardinality); nothing is labelled by key.
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    use metrics::Unit;

    metrics::describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests seen by the rate-limit layer, by outcome: allowed, unlimited (no key, let through), or the refusal (denied, missing_key, invalid_key, key_too_long, no_client_address, cost_above_capacity, backend_failed)."
    );
    metrics::describe_counter!(
        FALLBACK,
        Unit::Count,
        "Rate-limit decisions not made by the quota, by reason: key_table_full, fail_open, fail_closed, fallback."
    );
    metrics::describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from asking the rate limiter to its answer."
    );
}

/// What the layer did with a request, for `ratelimit_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The inner service was called after an allowed decision.
    Allowed,
    /// No key and `MissingKey::Allow`: called without a decision.
    Unlimited,
    /// The layer answered itself.
    Refused(RefusalKind),
}

impl Outcome {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Unlimited => "unlimited",
            Self::Refused(kind) => kind.as_str(),
        }
    }
}

/// Counts `outcome` for `policy`'s layer.
#[inline]
pub(crate) fn count(policy: &Policy, outcome: Outcome) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REQUESTS, "limiter" => policy.label().clone(), "outcome" => outcome.label())
        .increment(1);
    let _ = (policy, outcome);
}

/// Logs, once per layer, that the server gives the layer no client
/// address (feature `tracing`).
pub(crate) fn warn_no_client_address(policy: &Policy) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        limiter = %policy.name(),
        "rate limiting by client IP, but requests carry no client address: with axum, serve with \
         `into_make_service_with_connect_info::<SocketAddr>()` and enable ratelimit-tower's `axum` \
         feature; with hyper or tonic, insert the peer's `SocketAddr` into the request extensions. \
         Every such request is refused with 500 (this is logged once)"
    );
    let _ = policy;
}

/// One call to the limiter, observed: a tracing span entered while the
/// call is polled, and the start time for the latency histogram.
#[derive(Debug)]
pub(crate) struct Probe {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Probe {
    /// Starts observing a check of `cost` units.
    #[inline]
    pub(crate) fn start(policy: &Policy, cost: u64) -> Self {
        let _ = (policy, cost);
        Self {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!("ratelimit.check", limiter = %policy.name(), cost),
        }
    }

    /// Polls the limiter's `future` inside the span.
    #[inline]
    pub(crate) fn poll<F: Future>(
        &self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        future.poll(cx)
    }

    /// Records the limiter's answer.
    #[inline]
    pub(crate) fn finish(&self, policy: &Policy, result: Result<&Decision, &LimitError>) {
        let _ = (policy, result);
        #[cfg(feature = "metrics")]
        record(policy, result, self.started.elapsed());
        #[cfg(feature = "tracing")]
        {
            let _entered = self.span.enter();
            match result {
                Ok(d) => tracing::debug!(
                    allowed = d.allowed,
                    remaining = d.remaining,
                    reason = ?d.reason,
                    "rate-limit decision"
                ),
                Err(e) => tracing::debug!(error = %e, "rate-limit backend error"),
            }
        }
    }
}

#[cfg(feature = "metrics")]
fn record(policy: &Policy, result: Result<&Decision, &LimitError>, took: core::time::Duration) {
    use ratelimit_core::Reason;

    let limiter = policy.label().clone();
    metrics::histogram!(LATENCY, "limiter" => limiter.clone()).record(took.as_secs_f64());
    if let Ok(d) = result {
        let reason = match d.reason {
            Reason::Quota => return,
            Reason::KeyTableFull => "key_table_full",
            Reason::FailOpen => "fail_open",
            Reason::FailClosed => "fail_closed",
            Reason::Fallback => "fallback",
            Reason::CircuitOpen => "circuit_open",
            _ => "other",
        };
        metrics::counter!(FALLBACK, "limiter" => limiter, "reason" => reason).increment(1);
    }
}
