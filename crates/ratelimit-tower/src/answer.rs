//! [`Answer`]: what a [`Limiter`](crate::Limiter)'s check yields, as the
//! layer reads it: the decision on the request (or why there is none) and
//! the items of the `RateLimit-Policy` and `RateLimit` fields that
//! describe it.
//!
//! Three answers: `Result<Decision, LimitError>`, one limit under the
//! quota [`Limiter::algorithm`](crate::Limiter::algorithm) reports (the
//! Redis limiters, limiters of your own); [`Checked`], one limit with the
//! quota that decided (the memory limiters, a per-key quota); and
//! [`Verdicts`](crate::Verdicts), several named limits
//! ([`AllOf`](crate::AllOf)).

use std::sync::Arc;

use http::HeaderMap;
use ratelimit_core::{AnyAlgorithm, Decision};

use crate::headers::RATELIMIT_POLICY;
use crate::limiter::LimitError;
use crate::policy::Policy;

/// What a limiter's check yields, for the layer: the output of
/// [`Limiter::Future`](crate::Limiter::Future).
///
/// Sealed: implemented by `Result<Decision, LimitError>` (one limit, its
/// quota from [`Limiter::algorithm`](crate::Limiter::algorithm), read
/// before the check), by [`Checked`] (one limit with the quota that
/// decided) and by
/// [`Verdicts`](crate::Verdicts) (several named limits, all or nothing).
pub trait Answer: sealed::Answer {}

pub(crate) mod sealed {
    use std::sync::Arc;

    use http::HeaderMap;
    use ratelimit_core::{AnyAlgorithm, Decision};

    use crate::limiter::LimitError;
    use crate::policy::Policy;

    /// The layer's side of an [`Answer`](super::Answer).
    pub trait Answer: Send + 'static {
        /// Whether the answer carries the quotas it describes; if not,
        /// the layer asks [`Limiter::algorithm`](crate::Limiter::algorithm)
        /// before the check and passes it to [`annotate`](Self::annotate).
        const DESCRIBES_ITSELF: bool;

        /// The decision on the request (all limits combined), or why there
        /// is none.
        fn result(&self) -> Result<&Decision, &LimitError>;

        /// The error, if [`result`](Self::result) is one.
        fn into_error(self) -> Option<LimitError>;

        /// Appends the `RateLimit-Policy` field and, unless `policy_only`,
        /// the `RateLimit` field: one item per limit, each under its own
        /// name (the layer's, `layer`, for a single limit). `quota` is the
        /// limiter's, when the answer does not describe itself.
        fn annotate(
            &self,
            headers: &mut HeaderMap,
            layer: &Policy,
            quota: Option<&AnyAlgorithm>,
            policy_only: bool,
        );

        /// The names of the limits that refused the request, when the
        /// limiter has several; empty for one limit (the layer's name).
        fn refused_by(&self) -> Vec<Arc<str>>;
    }
}

/// One limit's decision with the quota that made it: the answer of the
/// memory limiters (`KeyedLimiter`, [`PerKeyQuota`](crate::PerKeyQuota)),
/// so that the header fields describe the quota that decided (a key's own,
/// or the one a racing `reconfigure` put in place), read with the decision.
#[derive(Debug)]
pub struct Checked {
    /// The decision, or why there is none.
    pub result: Result<Decision, LimitError>,
    /// The algorithm and quota that decided.
    pub quota: AnyAlgorithm,
}

impl Answer for Result<Decision, LimitError> {}

impl sealed::Answer for Result<Decision, LimitError> {
    const DESCRIBES_ITSELF: bool = false;

    fn result(&self) -> Result<&Decision, &LimitError> {
        self.as_ref()
    }

    fn into_error(self) -> Option<LimitError> {
        self.err()
    }

    fn annotate(
        &self,
        headers: &mut HeaderMap,
        layer: &Policy,
        quota: Option<&AnyAlgorithm>,
        policy_only: bool,
    ) {
        if let Some(quota) = quota {
            annotate_one(headers, layer, self.as_ref().ok(), quota, policy_only);
        }
    }

    fn refused_by(&self) -> Vec<Arc<str>> {
        Vec::new()
    }
}

impl Answer for Checked {}

impl sealed::Answer for Checked {
    const DESCRIBES_ITSELF: bool = true;

    fn result(&self) -> Result<&Decision, &LimitError> {
        self.result.as_ref()
    }

    fn into_error(self) -> Option<LimitError> {
        self.result.err()
    }

    fn annotate(
        &self,
        headers: &mut HeaderMap,
        layer: &Policy,
        _quota: Option<&AnyAlgorithm>,
        policy_only: bool,
    ) {
        annotate_one(
            headers,
            layer,
            self.result.as_ref().ok(),
            &self.quota,
            policy_only,
        );
    }

    fn refused_by(&self) -> Vec<Arc<str>> {
        Vec::new()
    }
}

/// The fields of one limit under the layer's policy.
fn annotate_one(
    headers: &mut HeaderMap,
    layer: &Policy,
    decision: Option<&Decision>,
    quota: &AnyAlgorithm,
    policy_only: bool,
) {
    match decision {
        Some(decision) if !policy_only => layer.annotate(headers, decision, quota),
        _ => {
            headers.append(&RATELIMIT_POLICY, layer.policy_value(quota));
        }
    }
}
