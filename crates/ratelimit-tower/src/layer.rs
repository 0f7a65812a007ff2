//! [`RateLimitLayer`] and the [`RateLimit`] service it wraps around an
//! inner service.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use ratelimit_core::{Decision, Quota};
use tower_layer::Layer;
use tower_service::Service;

use crate::cost::{CostExtractor, UnitCost};
use crate::headers::{self, RATELIMIT, RATELIMIT_POLICY};
use crate::key::MissingKey;
use crate::limiter::{LimitError, Limiter};
use crate::observe;

/// The default policy name, in `RateLimit-Policy` and `RateLimit`.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// A policy name that cannot be a Structured Fields String.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPolicyName(String);

impl fmt::Display for InvalidPolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rate-limit policy name {:?}: only printable ASCII (0x20 to 0x7E) is allowed",
            self.0
        )
    }
}

impl core::error::Error for InvalidPolicyName {}

/// The layer's name in its three forms.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    /// As given.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) plain: Arc<str>,
    /// As a Structured Fields String, quoted.
    sf: Box<str>,
    /// As a metrics label value.
    #[cfg(feature = "metrics")]
    pub(crate) label: metrics::SharedString,
}

impl Name {
    fn new(name: &str) -> Result<Self, InvalidPolicyName> {
        let sf = headers::sf_string(name).ok_or_else(|| InvalidPolicyName(name.to_owned()))?;
        Ok(Self {
            plain: Arc::from(name),
            sf: sf.into_boxed_str(),
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::from(name.to_owned()),
        })
    }
}

/// Everything the clones of a service share, behind one `Arc`.
struct Shared<L, X, C, K> {
    limiter: L,
    key: X,
    cost: C,
    name: Name,
    missing: MissingKey<K>,
    over_capacity: StatusCode,
    /// The `RateLimit-Policy` value of the first quota seen: a limiter
    /// with one quota builds it once; another quota is formatted per
    /// response.
    policy: OnceLock<(Quota, HeaderValue)>,
}

impl<L, X, C, K> Shared<L, X, C, K> {
    fn policy(&self, quota: &Quota) -> HeaderValue {
        let (first, value) = self
            .policy
            .get_or_init(|| (*quota, headers::policy(&self.name.sf, quota)));
        if first == quota {
            value.clone()
        } else {
            headers::policy(&self.name.sf, quota)
        }
    }

    /// Adds `RateLimit-Policy` and `RateLimit` (appended, so that the
    /// items of nested layers with other names add up to one list each).
    fn annotate(&self, headers: &mut HeaderMap, decision: &Decision, quota: &Quota) {
        headers.reserve(2);
        headers.append(&RATELIMIT_POLICY, self.policy(quota));
        if let Some(value) = headers::ratelimit(&self.name.sf, decision, quota) {
            headers.append(&RATELIMIT, value);
        }
    }
}

/// A [`tower_layer::Layer`] that rate limits requests by key with a
/// [`Limiter`], answering `429 Too Many Requests` with `Retry-After` when
/// denied and adding `RateLimit-Policy` and `RateLimit` to every response.
///
/// `X` extracts the key ([`HeaderKey`](crate::HeaderKey),
/// [`ClientIp`](crate::ClientIp), [`RouteKey`](crate::RouteKey),
/// [`KeyFn`](crate::KeyFn)), `C` the cost ([`UnitCost`] by default,
/// [`CostFn`](crate::CostFn)).
///
/// The limiter, extractors and options live in one `Arc`: every service
/// the layer makes, and every clone of those (axum clones the service per
/// connection), counts against the same buckets.
///
/// Answers of the layer itself (their bodies are `ResBody::default()`,
/// empty for axum and hyper bodies):
///
/// | case | status | headers |
/// |---|---|---|
/// | denied | 429 | `Retry-After`, `RateLimit-Policy`, `RateLimit` |
/// | cost above the capacity | 413 ([`cost_above_capacity`](Self::cost_above_capacity)) | `RateLimit-Policy` |
/// | no key | 400 ([`missing_key`](Self::missing_key)) | none |
/// | limiter error (after its failure policy) | 503 | none |
pub struct RateLimitLayer<L, X, K, C = UnitCost> {
    shared: Arc<Shared<L, X, C, K>>,
}

impl<L, X, K, C> Clone for RateLimitLayer<L, X, K, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<L, X, K, C> fmt::Debug for RateLimitLayer<L, X, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("name", &self.shared.name.plain)
            .field("over_capacity", &self.shared.over_capacity)
            .finish_non_exhaustive()
    }
}

impl<L, X, K> RateLimitLayer<L, X, K, UnitCost> {
    /// Limits with `limiter`, by the key `key` extracts, one unit per
    /// request, under the policy name `"default"`; requests without a key
    /// get `400 Bad Request`.
    ///
    /// The key type `K` is the extractor's (`String` for
    /// [`HeaderKey`](crate::HeaderKey), `IpAddr` for
    /// [`ClientIp`](crate::ClientIp)), and `limiter` must implement
    /// [`Limiter<K>`].
    pub fn new(limiter: L, key: X) -> Self
    where
        L: Limiter<K>,
    {
        Self {
            shared: Arc::new(Shared {
                limiter,
                key,
                cost: UnitCost,
                name: Name::new(DEFAULT_POLICY_NAME).expect("the default name is valid"),
                missing: MissingKey::default(),
                over_capacity: StatusCode::PAYLOAD_TOO_LARGE,
                policy: OnceLock::new(),
            }),
        }
    }
}

impl<L, X, K, C> RateLimitLayer<L, X, K, C> {
    /// Rebuilds the shared state with one part changed. Only called while
    /// configuring, before the layer is cloned.
    fn map<C2>(
        self,
        f: impl FnOnce(Shared<L, X, C, K>) -> Shared<L, X, C2, K>,
    ) -> RateLimitLayer<L, X, K, C2> {
        let shared = match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared,
            Err(_) => panic!("configure a RateLimitLayer before cloning it"),
        };
        RateLimitLayer {
            shared: Arc::new(f(shared)),
        }
    }

    /// The cost of each request, from `cost` (default: one unit).
    ///
    /// # Panics
    /// If the layer has been cloned already: configure it first.
    pub fn cost<C2>(self, cost: C2) -> RateLimitLayer<L, X, K, C2> {
        self.map(|s| Shared {
            limiter: s.limiter,
            key: s.key,
            cost,
            name: s.name,
            missing: s.missing,
            over_capacity: s.over_capacity,
            policy: s.policy,
        })
    }

    /// The policy name in `RateLimit-Policy` and `RateLimit` (default
    /// `"default"`), also the `limiter` label of the metrics. Give nested
    /// layers distinct names.
    ///
    /// # Errors
    /// [`InvalidPolicyName`] unless `name` is printable ASCII.
    ///
    /// # Panics
    /// If the layer has been cloned already: configure it first.
    pub fn name(self, name: &str) -> Result<Self, InvalidPolicyName> {
        let name = Name::new(name)?;
        Ok(self.map(|s| Shared {
            name,
            policy: OnceLock::new(),
            ..s
        }))
    }

    /// What to do with a request that has no key (default:
    /// `MissingKey::Reject(400 Bad Request)`).
    ///
    /// # Panics
    /// If the layer has been cloned already: configure it first.
    pub fn missing_key(self, missing: MissingKey<K>) -> Self {
        self.map(|s| Shared { missing, ..s })
    }

    /// The status for a request whose cost exceeds the capacity, which can
    /// never succeed (default `413 Content Too Large`, without
    /// `Retry-After`).
    ///
    /// # Panics
    /// If the layer has been cloned already: configure it first.
    pub fn cost_above_capacity(self, status: StatusCode) -> Self {
        self.map(|s| Shared {
            over_capacity: status,
            ..s
        })
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.shared.limiter
    }
}

impl<S, L, X, K, C> Layer<S> for RateLimitLayer<L, X, K, C> {
    type Service = RateLimit<S, L, X, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of a [`RateLimitLayer`]: checks each request's key with
/// the limiter, then calls the inner service or answers for it.
pub struct RateLimit<S, L, X, K, C = UnitCost> {
    inner: S,
    shared: Arc<Shared<L, X, C, K>>,
}

impl<S: Clone, L, X, K, C> Clone for RateLimit<S, L, X, K, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, L, X, K, C> fmt::Debug for RateLimit<S, L, X, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("name", &self.shared.name.plain)
            .finish_non_exhaustive()
    }
}

/// The response future of [`RateLimit`].
pub struct ResponseFuture<T, E> {
    inner: Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>,
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

fn answer<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

impl<S, B, ResBody, L, X, C> Service<Request<B>> for RateLimit<S, L, X, X::Key, C>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
    X: crate::key::KeyExtractor<B>,
    X::Key: Clone + Sync,
    C: CostExtractor<B>,
    L: Limiter<X::Key>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was driven ready goes into the future; a fresh
        // clone stays for the next call (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let key = shared.key.extract(&request);
        let cost = shared.cost.cost(&request);
        ResponseFuture {
            inner: Box::pin(async move {
                let key = match key {
                    Some(key) => key,
                    None => match &shared.missing {
                        MissingKey::Shared(key) => key.clone(),
                        MissingKey::Allow => return inner.call(request).await,
                        MissingKey::Reject(status) => return Ok(answer(*status)),
                    },
                };
                let quota = shared.limiter.quota(&key);
                match observe::check(&shared.limiter, &shared.name, key, cost).await {
                    Ok(decision) if decision.allowed => {
                        let mut response = inner.call(request).await?;
                        shared.annotate(response.headers_mut(), &decision, &quota);
                        Ok(response)
                    }
                    Ok(decision) => {
                        let mut response = answer(StatusCode::TOO_MANY_REQUESTS);
                        let headers = response.headers_mut();
                        if let Some(wait) = decision.retry_after {
                            headers.insert(http::header::RETRY_AFTER, headers::retry_after(wait));
                        }
                        shared.annotate(headers, &decision, &quota);
                        Ok(response)
                    }
                    Err(LimitError::InsufficientCapacity(_)) => {
                        let mut response = answer(shared.over_capacity);
                        response
                            .headers_mut()
                            .append(&RATELIMIT_POLICY, shared.policy(&quota));
                        Ok(response)
                    }
                    Err(_) => Ok(answer(StatusCode::SERVICE_UNAVAILABLE)),
                }
            }),
        }
    }
}
