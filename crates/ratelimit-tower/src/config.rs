//! What a built layer shares with every service it makes and every clone
//! of those: [`Config`] (the limiter, the extractors, the options) and,
//! in an `Arc` of its own so that response futures need no more,
//! [`Responder`] (the policy, the refusal hook, the once-only warnings).

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::Response;

use crate::key::MissingKey;
use crate::observe::{self, Outcome};
use crate::policy::Policy;
use crate::refusal::{OnRefusal, Refusal};

/// A layer's configuration, fixed when it is built.
pub(crate) struct Config<L, X, K, C, R> {
    pub(crate) limiter: L,
    pub(crate) key: X,
    pub(crate) cost: C,
    pub(crate) missing: MissingKey<K>,
    /// Whether a cost of 0 is checked as such (a peek) rather than as 1.
    pub(crate) zero_cost: bool,
    pub(crate) responder: Arc<Responder<R>>,
}

/// What answers for the layer: its policy and refusal hook.
pub(crate) struct Responder<R> {
    pub(crate) policy: Policy,
    hook: R,
    /// Whether the missing client address has been logged.
    warned: AtomicBool,
    /// Whether the metrics have been described.
    #[cfg(feature = "metrics")]
    described: std::sync::Once,
}

impl<R> Responder<R> {
    pub(crate) fn new(policy: Policy, hook: R) -> Self {
        Self {
            policy,
            hook,
            warned: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            described: std::sync::Once::new(),
        }
    }

    /// Called on every request: describes the metrics on the first.
    #[inline]
    pub(crate) fn seen(&self) {
        #[cfg(feature = "metrics")]
        self.described.call_once(observe::describe_metrics);
    }

    /// Counts `outcome`.
    #[inline]
    pub(crate) fn count(&self, outcome: Outcome) {
        observe::count(&self.policy, outcome);
    }

    /// The response to `refusal`, counted; a missing client address is
    /// logged the first time.
    pub(crate) fn refuse<B>(&self, refusal: Refusal) -> Response<B>
    where
        R: OnRefusal<B>,
    {
        let kind = refusal.kind();
        if kind == crate::RefusalKind::NoClientAddress
            // Relaxed: a flag that only makes the warning once; it orders
            // nothing else.
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            observe::warn_no_client_address(&self.policy);
        }
        self.count(Outcome::Refused(kind));
        self.hook.respond(refusal)
    }
}
