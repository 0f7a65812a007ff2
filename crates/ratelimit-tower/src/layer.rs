//! [`RateLimitLayer`], its [`RateLimitLayerBuilder`], and the
//! [`Layer`] impl that wraps a service in a [`RateLimit`].
//!
//! Configuration happens on the builder, which owns everything and cannot
//! fail or panic until [`build`](RateLimitLayerBuilder::build) checks it
//! all at once; a built layer is immutable and cheap to clone.

use core::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::{Config, Responder};
use crate::cost::UnitCost;
use crate::key::MissingKey;
use crate::limiter::Limiter;
use crate::per_key::{QuotaHandle, Reconfigure};
use crate::policy::{DEFAULT_POLICY_NAME, Policy};
use crate::refusal::PlainText;
use crate::service::RateLimit;

/// A configuration that [`RateLimitLayerBuilder::build`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The policy name cannot be a Structured Fields String: only
    /// printable ASCII (0x20 to 0x7E) is allowed.
    InvalidPolicyName(String),
    /// Two limits of an [`AllOf`](crate::AllOf) have the same name: their
    /// items in the header fields could not be told apart.
    DuplicateLimitName(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPolicyName(name) => {
                fmt::Display::fmt(&crate::policy::InvalidName(name.clone()), f)
            }
            Self::DuplicateLimitName(name) => write!(
                f,
                "two rate limits are named {name:?}: each limit of a route needs a name of its own"
            ),
        }
    }
}

impl core::error::Error for BuildError {}

/// A [`tower_layer::Layer`] that rate limits requests by key with a
/// [`Limiter`], answering `429 Too Many Requests` with `Retry-After` when
/// denied and adding `RateLimit-Policy` and `RateLimit` to every response.
///
/// `X` extracts the key ([`HeaderKey`](crate::HeaderKey),
/// [`ClientIp`](crate::ClientIp), [`RouteKey`](crate::RouteKey),
/// [`KeyFn`](crate::KeyFn)), `C` the cost ([`UnitCost`] by default,
/// [`CostFn`](crate::CostFn)), `R` the answers the layer sends itself
/// ([`PlainText`] by default, see [`OnRefusal`](crate::OnRefusal)).
///
/// [`new`](Self::new) makes a layer with the defaults;
/// [`builder`](Self::builder) configures one. The limiter, extractors and
/// options live in one `Arc`: every service the layer makes, and every
/// clone of those (axum clones the service per connection), counts
/// against the same buckets.
pub struct RateLimitLayer<L, X, K, C = UnitCost, R = PlainText> {
    config: Arc<Config<L, X, K, C, R>>,
}

impl<L, X, K, C, R> Clone for RateLimitLayer<L, X, K, C, R> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<L, X, K, C, R> fmt::Debug for RateLimitLayer<L, X, K, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("name", self.config.responder.policy.name())
            .field("zero_cost", &self.config.zero_cost)
            .finish_non_exhaustive()
    }
}

impl<L, X, K> RateLimitLayer<L, X, K> {
    /// Limits with `limiter`, by the key `key` extracts, one unit per
    /// request, under the policy name `"default"`; requests without a key
    /// get `400 Bad Request`; refusals have a `text/plain` body.
    ///
    /// The key type `K` is the extractor's (`String` for
    /// [`HeaderKey`](crate::HeaderKey), `IpAddr` for
    /// [`ClientIp`](crate::ClientIp)), and `limiter` must implement
    /// [`Limiter<K>`].
    pub fn new(limiter: L, key: X) -> Self
    where
        L: Limiter<K>,
    {
        Self::from_parts(
            limiter,
            key,
            UnitCost,
            MissingKey::default(),
            false,
            Responder::new(Policy::default(), PlainText),
        )
    }

    /// A builder for a layer over `limiter` and `key`, with the defaults
    /// of [`new`](Self::new) until changed.
    pub fn builder(limiter: L, key: X) -> RateLimitLayerBuilder<L, X, K>
    where
        L: Limiter<K>,
    {
        RateLimitLayerBuilder {
            limiter,
            key,
            cost: UnitCost,
            missing: MissingKey::default(),
            zero_cost: false,
            name: DEFAULT_POLICY_NAME.to_owned(),
            hook: PlainText,
        }
    }
}

impl<L, X, K, C, R> RateLimitLayer<L, X, K, C, R> {
    fn from_parts(
        limiter: L,
        key: X,
        cost: C,
        missing: MissingKey<K>,
        zero_cost: bool,
        responder: Responder<R>,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                limiter,
                key,
                cost,
                missing,
                zero_cost,
                responder: Arc::new(responder),
            }),
        }
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.config.limiter
    }

    /// The policy name.
    pub fn policy_name(&self) -> &str {
        self.config.responder.policy.name()
    }

    /// A cloneable handle that changes the limiter's quota while the layer
    /// runs, without rebuilding it or the router it is in: see
    /// [`QuotaHandle`]. The handle keeps the layer's shared state alive.
    pub fn quota_handle<A: 'static>(&self) -> QuotaHandle<A>
    where
        L: Reconfigure<A>,
        X: Send + Sync + 'static,
        K: Send + Sync + 'static,
        C: Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        QuotaHandle::new(Arc::new(LayerLimiter(Arc::clone(&self.config))))
    }
}

/// The limiter of a built layer, as a [`Reconfigure`] for its handle.
struct LayerLimiter<L, X, K, C, R>(Arc<Config<L, X, K, C, R>>);

impl<A, L, X, K, C, R> Reconfigure<A> for LayerLimiter<L, X, K, C, R>
where
    L: Reconfigure<A>,
    X: Send + Sync + 'static,
    K: Send + Sync + 'static,
    C: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    fn reconfigure(&self, quota: A, strategy: ratelimit_core::Strategy) {
        self.0.limiter.reconfigure(quota, strategy);
    }

    fn quota(&self) -> A {
        self.0.limiter.quota()
    }
}

impl<S, L, X, K, C, R> Layer<S> for RateLimitLayer<L, X, K, C, R> {
    type Service = RateLimit<S, L, X, K, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.config))
    }
}

/// Configures a [`RateLimitLayer`]: made by
/// [`RateLimitLayer::builder`], checked by [`build`](Self::build).
///
/// ```
/// use http::{Request, StatusCode};
/// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
/// use ratelimit_tower::{CostFn, HeaderKey, MissingKey, RateLimitLayer};
///
/// let limiter = KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(10, Rate::per_second(1))?);
/// let layer = RateLimitLayer::builder(limiter, HeaderKey::api_key())
///     .name("api")
///     .missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
///     .cost(CostFn(|req: &Request<()>| if req.method() == "POST" { 2 } else { 1 }))
///     .build()?;
/// assert_eq!(layer.policy_name(), "api");
///
/// // Errors surface at build, never once the layer is shared.
/// let limiter = KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(10, Rate::per_second(1))?);
/// let err = RateLimitLayer::builder(limiter, HeaderKey::api_key()).name("caf\u{e9}").build().unwrap_err();
/// assert!(err.to_string().contains("printable ASCII"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until built"]
pub struct RateLimitLayerBuilder<L, X, K, C = UnitCost, R = PlainText> {
    limiter: L,
    key: X,
    cost: C,
    missing: MissingKey<K>,
    zero_cost: bool,
    name: String,
    hook: R,
}

impl<L, X, K, C, R> fmt::Debug for RateLimitLayerBuilder<L, X, K, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field("name", &self.name)
            .field("zero_cost", &self.zero_cost)
            .finish_non_exhaustive()
    }
}

impl<L, X, K, C, R> RateLimitLayerBuilder<L, X, K, C, R> {
    /// The policy name in `RateLimit-Policy` and `RateLimit` (default
    /// `"default"`), also the `limiter` label of the metrics. Give nested
    /// layers distinct names. Printable ASCII only, checked by
    /// [`build`](Self::build).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The cost of each request, from `cost` (default: one unit).
    pub fn cost<C2>(self, cost: C2) -> RateLimitLayerBuilder<L, X, K, C2, R> {
        RateLimitLayerBuilder {
            limiter: self.limiter,
            key: self.key,
            cost,
            missing: self.missing,
            zero_cost: self.zero_cost,
            name: self.name,
            hook: self.hook,
        }
    }

    /// Checks a cost of 0 as a peek (allowed unless the bucket is in debt,
    /// consuming nothing) instead of counting it as 1, the default.
    ///
    /// Only for a cost function whose 0 means "free" on purpose: a cost
    /// parsed from the request (`?n=0`) would make any request free.
    pub fn allow_zero_cost(mut self) -> Self {
        self.zero_cost = true;
        self
    }

    /// What to do with a request that has no key (default:
    /// `MissingKey::Reject(400 Bad Request)`).
    pub fn missing_key(mut self, missing: MissingKey<K>) -> Self {
        self.missing = missing;
        self
    }

    /// The hook that makes the answers the layer sends itself (default
    /// [`PlainText`]): see [`OnRefusal`](crate::OnRefusal).
    pub fn on_refusal<R2>(self, hook: R2) -> RateLimitLayerBuilder<L, X, K, C, R2> {
        RateLimitLayerBuilder {
            limiter: self.limiter,
            key: self.key,
            cost: self.cost,
            missing: self.missing,
            zero_cost: self.zero_cost,
            name: self.name,
            hook,
        }
    }

    /// The layer.
    ///
    /// # Errors
    /// [`BuildError::InvalidPolicyName`] unless the name is printable
    /// ASCII.
    pub fn build(self) -> Result<RateLimitLayer<L, X, K, C, R>, BuildError> {
        let policy = Policy::new(&self.name).map_err(|e| BuildError::InvalidPolicyName(e.0))?;
        Ok(RateLimitLayer::from_parts(
            self.limiter,
            self.key,
            self.cost,
            self.missing,
            self.zero_cost,
            Responder::new(policy, self.hook),
        ))
    }
}
