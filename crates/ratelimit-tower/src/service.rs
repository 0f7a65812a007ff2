//! [`RateLimit`], the service a [`RateLimitLayer`](crate::RateLimitLayer)
//! wraps around an inner service: `call` extracts the key and the cost,
//! refuses what has no usable key, and starts the limiter's check; the
//! [`ResponseFuture`] does the rest.

use core::fmt;
use core::future::Future;
use core::task::{Context, Poll};
use std::sync::Arc;

use http::{Request, Response};
use tower_service::Service;

use crate::answer::sealed::Answer;
use crate::config::Config;
use crate::cost::{CostExtractor, UnitCost};
use crate::future::ResponseFuture;
use crate::key::{KeyExtractor, MissingKey, NoKey};
use crate::limiter::Limiter;
use crate::observe::{Outcome, Probe};
use crate::refusal::{OnRefusal, PlainText, Refusal};

/// The service of a [`RateLimitLayer`](crate::RateLimitLayer): checks
/// each request's key with the limiter, then calls the inner service or
/// answers for it.
pub struct RateLimit<S, L, X, K, C = UnitCost, R = PlainText> {
    inner: S,
    config: Arc<Config<L, X, K, C, R>>,
}

impl<S, L, X, K, C, R> RateLimit<S, L, X, K, C, R> {
    pub(crate) fn new(inner: S, config: Arc<Config<L, X, K, C, R>>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, L, X, K, C, R> Clone for RateLimit<S, L, X, K, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, L, X, K, C, R> fmt::Debug for RateLimit<S, L, X, K, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("name", self.config.responder.policy.name())
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody, L, X, C, R> Service<Request<B>> for RateLimit<S, L, X, X::Key, C, R>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    X: KeyExtractor<B>,
    X::Key: Clone,
    C: CostExtractor<B>,
    L: Limiter<X::Key>,
    R: OnRefusal<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, L::Future, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Self { inner, config } = self;
        let responder = &config.responder;
        responder.seen();
        let key = match config.key.extract(&request) {
            Ok(key) => key,
            Err(NoKey::Missing(source)) => match &config.missing {
                MissingKey::Shared(key) => key.clone(),
                MissingKey::Allow => {
                    responder.count(Outcome::Unlimited);
                    return ResponseFuture::calling(take(inner).call(request));
                }
                MissingKey::Reject(status) => {
                    let refusal = Refusal::for_no_key(
                        responder.policy.name(),
                        NoKey::Missing(source),
                        *status,
                    );
                    return ResponseFuture::refused(responder.refuse(refusal));
                }
            },
            // Invalid, too long, no client address: refused whatever the
            // missing-key policy, or a client could opt out of its limit.
            Err(no_key) => {
                let refusal = Refusal::for_no_key(
                    responder.policy.name(),
                    no_key,
                    http::StatusCode::BAD_REQUEST,
                );
                return ResponseFuture::refused(responder.refuse(refusal));
            }
        };
        let cost = match config.cost.cost(&request) {
            0 if !config.zero_cost => 1,
            cost => cost,
        };
        // Read before the check, for an answer that does not report the
        // quota that decided (one limit of a limiter with one quota).
        let quota = if <<L::Future as Future>::Output as Answer>::DESCRIBES_ITSELF {
            None
        } else {
            Some(config.limiter.algorithm(&key))
        };
        let probe = Probe::start(&responder.policy, cost);
        let check = config.limiter.check(key, cost);
        ResponseFuture::checking(
            check,
            probe,
            quota,
            take(inner),
            request,
            Arc::clone(responder),
        )
    }
}

/// The service that was driven ready, for the future; a fresh clone stays
/// for the next call (tower's usual pattern).
fn take<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    core::mem::replace(inner, clone)
}
