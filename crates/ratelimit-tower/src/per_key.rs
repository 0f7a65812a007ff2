//! [`PerKeyQuota`]: a memory limiter whose quota is a function of the key
//! (a plan looked up from the account), through the memory limiter's
//! per-key quotas (`KeyedLimiter::check_with_quota`), and
//! [`QuotaHandle`]: a cloneable handle that changes a running limiter's
//! quota (`KeyedLimiter::reconfigure`) without rebuilding the layer or
//! the router.

use core::borrow::Borrow;
use core::fmt;
use core::future::{Ready, ready};
use core::hash::{BuildHasher, Hash};
use std::sync::Arc;

use ratelimit_core::{Algorithm, AnyAlgorithm, Clock, Strategy};
use ratelimit_memory::{KeyBytes, KeyedLimiter, Word};

use crate::answer::Checked;
use crate::limiter::{LimitError, Limiter, decided_under};

/// A memory limiter whose quota depends on the key: `quota(&key)` gives
/// the key's own quota (its plan's, an override), or `None` for the
/// limiter's default quota.
///
/// Built on `KeyedLimiter::check_with_quota`: when a key's quota changes
/// (the account upgrades, an override is set or lifted), what the key has
/// consumed is converted with `Strategy::KeepConsumed` at its next request:
/// the units used stay used, under the new quota, so an upgrade gives no
/// free burst and a downgrade no fresh bucket. A key on the default quota
/// costs no more memory than in a plain limiter. The response's
/// `RateLimit-Policy` field reports the key's own quota, read once with
/// the decision.
///
/// `quota` runs on every request (twice under an [`AllOf`](crate::AllOf)):
/// keep it a lookup (a map behind a read lock, a field of the key).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, RwLock};
///
/// use http::Request;
/// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
/// use ratelimit_tower::{HeaderKey, PerKeyQuota, RateLimitLayer};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let free = TokenBucket::with_rate(10, Rate::per_minute(10))?;
/// let pro = TokenBucket::with_rate(100, Rate::per_minute(100))?;
/// // Accounts on a plan of their own; the others are on the free plan.
/// let plans: Arc<RwLock<HashMap<String, TokenBucket>>> = Arc::default();
/// plans.write().unwrap().insert("acme".into(), pro);
///
/// let table = Arc::clone(&plans);
/// let limiter = PerKeyQuota::new(KeyedLimiter::<String, _>::with_algorithm(free), move |account: &String| {
///     table.read().unwrap().get(account).copied()
/// });
/// let mut service = RateLimitLayer::new(limiter, HeaderKey::api_key()).layer(service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// let request = |key: &str| Request::get("/").header("x-api-key", key).body(()).unwrap();
/// let response = service.ready().await?.call(request("acme")).await?;
/// assert_eq!(response.headers()["ratelimit-policy"], r#""default";q=100;w=60"#);
/// let response = service.ready().await?.call(request("initech")).await?;
/// assert_eq!(response.headers()["ratelimit-policy"], r#""default";q=10;w=60"#);
/// # Ok(())
/// # }
/// ```
pub struct PerKeyQuota<K, A, C, S, F>
where
    A: Algorithm<State: Word>,
{
    limiter: Arc<KeyedLimiter<K, A, C, S>>,
    quota: F,
}

impl<K, A, C, S, F> fmt::Debug for PerKeyQuota<K, A, C, S, F>
where
    A: Algorithm<State: Word>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerKeyQuota").finish_non_exhaustive()
    }
}

impl<K, A, C, S, F> PerKeyQuota<K, A, C, S, F>
where
    A: Algorithm<State: Word>,
    F: Fn(&K) -> Option<A>,
{
    /// `limiter`, with each key's quota from `quota` (`None`: the
    /// limiter's own). Pass an `Arc` of the limiter to keep a handle on
    /// it (to [`reconfigure`](KeyedLimiter::reconfigure) the default
    /// quota, say).
    pub fn new(limiter: impl Into<Arc<KeyedLimiter<K, A, C, S>>>, quota: F) -> Self {
        Self {
            limiter: limiter.into(),
            quota,
        }
    }

    /// The memory limiter.
    pub fn limiter(&self) -> &Arc<KeyedLimiter<K, A, C, S>> {
        &self.limiter
    }

    /// `key`'s own quota, if it has one.
    pub(crate) fn quota_of(&self, key: &K) -> Option<A> {
        (self.quota)(key)
    }
}

/// Memory, decided inline: `check_with_quota` under the key's own quota,
/// `check_n` under the limiter's otherwise.
impl<K, A, C, S, F> Limiter<K> for PerKeyQuota<K, A, C, S, F>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word> + PartialEq,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    F: Fn(&K) -> Option<A> + Send + Sync + 'static,
{
    type Future = Ready<Checked>;

    fn check(&self, key: K, cost: u64) -> Self::Future {
        let (result, quota) = match self.quota_of(&key) {
            // Decided under exactly this quota.
            Some(quota) => (
                self.limiter
                    .check_with_quota(&key, cost, &quota)
                    .map_err(LimitError::from),
                quota,
            ),
            None => {
                let before = KeyedLimiter::algorithm(&self.limiter);
                let result = self.limiter.check_n(&key, cost).map_err(LimitError::from);
                let quota =
                    decided_under(&result, before, || KeyedLimiter::algorithm(&self.limiter));
                (result, quota)
            }
        };
        ready(Checked {
            result,
            quota: quota.to_any(),
        })
    }

    fn algorithm(&self, key: &K) -> AnyAlgorithm {
        self.quota_of(key)
            .unwrap_or_else(|| KeyedLimiter::algorithm(&self.limiter))
            .to_any()
    }
}

/// A limiter whose quota can change while it runs: the memory
/// [`KeyedLimiter`] (every key without a quota of its own), a
/// [`PerKeyQuota`] (its default quota), an `Arc` of either.
pub trait Reconfigure<A>: Send + Sync + 'static {
    /// Replaces the quota with `quota` from now on, converting what each
    /// key has consumed with `strategy` (docs/semantics.md, "Changing a
    /// quota while it runs").
    fn reconfigure(&self, quota: A, strategy: Strategy);

    /// The quota now.
    fn quota(&self) -> A;
}

impl<K, A, C, S> Reconfigure<A> for KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn reconfigure(&self, quota: A, strategy: Strategy) {
        KeyedLimiter::reconfigure(self, quota, strategy);
    }

    fn quota(&self) -> A {
        self.algorithm()
    }
}

impl<K, A, C, S, F> Reconfigure<A> for PerKeyQuota<K, A, C, S, F>
where
    K: Hash + Eq + Send + Sync + 'static,
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    F: Send + Sync + 'static,
{
    fn reconfigure(&self, quota: A, strategy: Strategy) {
        KeyedLimiter::reconfigure(&self.limiter, quota, strategy);
    }

    fn quota(&self) -> A {
        KeyedLimiter::algorithm(&self.limiter)
    }
}

impl<A, T: Reconfigure<A> + ?Sized> Reconfigure<A> for Arc<T> {
    fn reconfigure(&self, quota: A, strategy: Strategy) {
        (**self).reconfigure(quota, strategy);
    }

    fn quota(&self) -> A {
        (**self).quota()
    }
}

/// A cloneable handle on a running limiter's quota: an admin endpoint, a
/// configuration watcher or an incident script changes it with
/// [`set`](Self::set), and the very next request is decided under the new
/// quota, through the same layer and router. From
/// [`RateLimitLayer::quota_handle`](crate::RateLimitLayer::quota_handle),
/// or [`new`](Self::new) over any `Arc` of a [`Reconfigure`].
///
/// A request racing the change is decided entirely under the old quota or
/// entirely under the new one; no key gains a burst or loses consumption
/// beyond what the strategy says. Memory limiters convert each key at its
/// next request, so `set` returns at once, whatever the number of keys.
///
/// ```
/// use ratelimit_memory::{KeyedLimiter, Rate, Strategy, TokenBucket};
/// use ratelimit_tower::{HeaderKey, RateLimitLayer};
///
/// let limiter = KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(100, Rate::per_second(10))?);
/// let layer = RateLimitLayer::new(limiter, HeaderKey::api_key());
/// let handle = layer.quota_handle();
/// // ... the router with `layer` serves; during an incident:
/// handle.set(TokenBucket::with_rate(10, Rate::per_second(1))?, Strategy::KeepConsumed);
/// assert_eq!(layer.limiter().algorithm().quota().capacity(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct QuotaHandle<A> {
    target: Arc<dyn Reconfigure<A>>,
}

impl<A> Clone for QuotaHandle<A> {
    fn clone(&self) -> Self {
        Self {
            target: Arc::clone(&self.target),
        }
    }
}

impl<A> fmt::Debug for QuotaHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaHandle").finish_non_exhaustive()
    }
}

impl<A: 'static> QuotaHandle<A> {
    /// A handle on `target`.
    pub fn new<T: Reconfigure<A>>(target: Arc<T>) -> Self {
        Self { target }
    }

    /// Replaces the quota with `quota` from now on, converting each key's
    /// consumption with `strategy` (`Strategy::KeepConsumed`: the units
    /// used stay used).
    pub fn set(&self, quota: A, strategy: Strategy) {
        self.target.reconfigure(quota, strategy);
    }

    /// The quota now.
    pub fn get(&self) -> A {
        self.target.quota()
    }
}
