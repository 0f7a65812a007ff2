//! [`AllOf`]: several memory limits on one route (10 per second *and*
//! 1000 per day; per user *and* per tenant *and* global), checked all or
//! nothing by `ratelimit_memory::check_all`, each reported by name in the
//! `RateLimit-Policy` and `RateLimit` fields ([`Verdicts`]).
//!
//! A limit is a [`Named`] memory limiter (a [`KeyedLimiter`], a
//! [`Bucket`] for a global limit, a [`PerKeyQuota`], or an `Arc` of one
//! of those) with the key it counts: the request's key ([`SameKey`]) or
//! one derived from it ([`KeyBy`]).

use core::borrow::Borrow;
use core::fmt;
use core::future::{Ready, ready};
use core::hash::{BuildHasher, Hash};
use std::collections::HashSet;
use std::sync::Arc;

use http::HeaderMap;
use ratelimit_core::{Algorithm, AnyAlgorithm, Clock, Decision, InsufficientCapacity, Reason};
use ratelimit_memory::{Bucket, KeyBytes, KeyedLimiter, Limit, MultiDecision, Word, check_all};

use crate::answer::{Answer, sealed};
use crate::layer::BuildError;
use crate::limiter::{LimitError, Limiter};
use crate::per_key::PerKeyQuota;
use crate::policy::{self, Policy};

/// A memory limiter that can be one limit of an [`AllOf`]: a
/// [`KeyedLimiter`] (keyed by `K`), a [`Bucket`] (one for every request,
/// whatever `K`), a [`PerKeyQuota`], or an `Arc` of one of those (keep a
/// clone to [`reconfigure`](KeyedLimiter::reconfigure) it while it runs).
///
/// Sealed: an all-or-nothing check needs the memory limiters' own
/// protocol (`ratelimit_memory::check_all`).
pub trait MemoryLimiter<K>: sealed_memory::MemoryLimiter<K> {}

mod sealed_memory {
    use ratelimit_core::AnyAlgorithm;
    use ratelimit_memory::Limit;

    pub trait MemoryLimiter<K>: Send + Sync + 'static {
        /// Runs `f` on `key` at `cost` as one limit of `check_all`, with
        /// the quota that applies to it.
        fn with_limit<R>(
            &self,
            key: &K,
            cost: u64,
            f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
        ) -> R;

        /// The quota that applies to `key`.
        fn quota(&self, key: &K) -> AnyAlgorithm;
    }
}

impl<K, A, C, S> MemoryLimiter<K> for KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
}

impl<K, A, C, S> sealed_memory::MemoryLimiter<K> for KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn with_limit<R>(
        &self,
        key: &K,
        cost: u64,
        f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
    ) -> R {
        f(&self.limit(key, cost), self.algorithm().to_any())
    }

    fn quota(&self, _key: &K) -> AnyAlgorithm {
        self.algorithm().to_any()
    }
}

impl<K, A, C> MemoryLimiter<K> for Bucket<A, C>
where
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
{
}

impl<K, A, C> sealed_memory::MemoryLimiter<K> for Bucket<A, C>
where
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
{
    fn with_limit<R>(
        &self,
        _key: &K,
        cost: u64,
        f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
    ) -> R {
        f(&self.limit(cost), self.algorithm().to_any())
    }

    fn quota(&self, _key: &K) -> AnyAlgorithm {
        self.algorithm().to_any()
    }
}

impl<K, A, C, S, F> MemoryLimiter<K> for PerKeyQuota<K, A, C, S, F>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word> + PartialEq,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    F: Fn(&K) -> Option<A> + Send + Sync + 'static,
{
}

impl<K, A, C, S, F> sealed_memory::MemoryLimiter<K> for PerKeyQuota<K, A, C, S, F>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word> + PartialEq,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    F: Fn(&K) -> Option<A> + Send + Sync + 'static,
{
    fn with_limit<R>(
        &self,
        key: &K,
        cost: u64,
        f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
    ) -> R {
        let limiter = self.limiter();
        match self.quota_of(key) {
            Some(quota) => f(&limiter.limit_with_quota(key, cost, &quota), quota.to_any()),
            None => f(
                &limiter.limit(key, cost),
                KeyedLimiter::algorithm(limiter).to_any(),
            ),
        }
    }

    fn quota(&self, key: &K) -> AnyAlgorithm {
        self.quota_of(key)
            .unwrap_or_else(|| KeyedLimiter::algorithm(self.limiter()))
            .to_any()
    }
}

impl<K, T: MemoryLimiter<K>> MemoryLimiter<K> for Arc<T> {}

impl<K, T: MemoryLimiter<K>> sealed_memory::MemoryLimiter<K> for Arc<T> {
    fn with_limit<R>(
        &self,
        key: &K,
        cost: u64,
        f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
    ) -> R {
        (**self).with_limit(key, cost, f)
    }

    fn quota(&self, key: &K) -> AnyAlgorithm {
        (**self).quota(key)
    }
}

/// Which key a limit of an [`AllOf`] counts, from the request's key `K`:
/// [`SameKey`] or [`KeyBy`].
pub trait KeyMap<K>: Send + Sync + 'static {
    /// The limit's key.
    type Key;

    /// Runs `f` on the limit's key for the request's `key`.
    fn with_key<R>(&self, key: &K, f: impl FnOnce(&Self::Key) -> R) -> R;
}

/// The limit counts the request's key itself (the default of [`Named`]);
/// for a [`Bucket`] the key does not matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SameKey;

impl<K> KeyMap<K> for SameKey {
    type Key = K;

    #[inline]
    fn with_key<R>(&self, key: &K, f: impl FnOnce(&K) -> R) -> R {
        f(key)
    }
}

/// The limit counts a key derived from the request's key by a closure:
/// the tenant of a `(user, tenant)` key, say. Made by [`Named::key_by`].
#[derive(Clone, Copy)]
pub struct KeyBy<F>(pub F);

impl<F> fmt::Debug for KeyBy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBy(..)")
    }
}

impl<K, K2, F> KeyMap<K> for KeyBy<F>
where
    F: Fn(&K) -> K2 + Send + Sync + 'static,
{
    type Key = K2;

    #[inline]
    fn with_key<R>(&self, key: &K, f: impl FnOnce(&K2) -> R) -> R {
        f(&(self.0)(key))
    }
}

/// One limit of an [`AllOf`]: its name in the header fields, a memory
/// limiter, and the key it counts (by default the request's own).
///
/// ```
/// use ratelimit_memory::{Bucket, KeyedLimiter, Rate, TokenBucket};
/// use ratelimit_tower::Named;
///
/// // Per user (the request's key), per tenant (derived from it), global.
/// let per_user = Named::new("per-user", KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(10, Rate::per_second(10))?));
/// let per_tenant = Named::new("per-tenant", KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(100, Rate::per_second(100))?))
///     .key_by(|user: &String| user.split_once('@').map_or(String::new(), |(_, t)| t.to_owned()));
/// let global = Named::new("global", Bucket::new(TokenBucket::with_rate(1000, Rate::per_second(1000))?));
/// # let _ = (per_user, per_tenant, global);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Named<L, M = SameKey> {
    name: String,
    limiter: L,
    key: M,
}

impl<L, M> fmt::Debug for Named<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<L> Named<L> {
    /// The limit `name` (printable ASCII, checked by [`AllOf::new`]) of
    /// `limiter`, counting the request's key.
    pub fn new(name: impl Into<String>, limiter: L) -> Self {
        Self {
            name: name.into(),
            limiter,
            key: SameKey,
        }
    }
}

impl<L, M> Named<L, M> {
    /// Counts the key `key` derives from the request's key instead.
    pub fn key_by<K, K2, F>(self, key: F) -> Named<L, KeyBy<F>>
    where
        F: Fn(&K) -> K2 + Send + Sync + 'static,
    {
        Named {
            name: self.name,
            limiter: self.limiter,
            key: KeyBy(key),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

/// A limit of an [`AllOf`] for requests keyed by `K`: a [`Named`] memory
/// limiter whose key comes from `K`. Sealed.
pub trait Member<K>: sealed_member::Member<K> {}

mod sealed_member {
    use ratelimit_core::AnyAlgorithm;
    use ratelimit_memory::Limit;

    pub trait Member<K>: Send + Sync + 'static {
        fn with_limit<R>(
            &self,
            key: &K,
            cost: u64,
            f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
        ) -> R;
        fn quota(&self, key: &K) -> AnyAlgorithm;
    }
}

impl<K, L, M> Member<K> for Named<L, M>
where
    M: KeyMap<K>,
    L: MemoryLimiter<M::Key>,
{
}

impl<K, L, M> sealed_member::Member<K> for Named<L, M>
where
    M: KeyMap<K>,
    L: MemoryLimiter<M::Key>,
{
    #[inline]
    fn with_limit<R>(
        &self,
        key: &K,
        cost: u64,
        f: impl FnOnce(&dyn Limit, AnyAlgorithm) -> R,
    ) -> R {
        self.key
            .with_key(key, |k| self.limiter.with_limit(k, cost, f))
    }

    fn quota(&self, key: &K) -> AnyAlgorithm {
        self.key.with_key(key, |k| self.limiter.quota(k))
    }
}

/// Several limits on one route, all or nothing: a [`Limiter`] over a tuple
/// of two to four [`Named`] memory limits.
///
/// A request is allowed only if every limit allows it, and only then is
/// any charged (`ratelimit_memory::check_all`: no limit admits more than
/// its own quota under any concurrency, and nothing stays charged for a
/// denied request; a plain check of one of those keys racing it may see
/// the charge for a moment before it is rolled back). The response's
/// `RateLimit-Policy` and `RateLimit` fields list every limit under its
/// own name; a refusal names the limits that denied it
/// ([`Refusal::refused_by`](crate::Refusal::refused_by)); `Retry-After` is
/// the longest wait among them. A cost above any limit's capacity is
/// `413`, naming that limit.
///
/// ```
/// use http::Request;
/// use ratelimit_memory::{FixedWindow, KeyedLimiter, Rate, TokenBucket};
/// use ratelimit_tower::{AllOf, HeaderKey, Named, RateLimitLayer};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 2 per second and 3 per hour, per API key.
/// let limits = AllOf::new((
///     Named::new("per-second", KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(2, Rate::per_second(2))?)),
///     Named::new("per-hour", KeyedLimiter::<String, _>::with_algorithm(FixedWindow::per_hour(3)?)),
/// ))?;
/// let layer = RateLimitLayer::new(limits, HeaderKey::api_key());
/// let mut service = layer.layer(service_fn(|_req: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
/// }));
/// let request = || Request::get("/").header("x-api-key", "alice").body(String::new()).unwrap();
/// let response = service.ready().await?.call(request()).await?;
/// assert_eq!(response.headers()["ratelimit-policy"], r#""per-second";q=2;w=1, "per-hour";q=3;w=3600"#);
/// assert_eq!(response.headers()["ratelimit"], r#""per-second";r=1;t=1, "per-hour";r=2;t=3600"#);
/// # Ok(())
/// # }
/// ```
pub struct AllOf<T> {
    limits: T,
    policies: Arc<[Policy]>,
}

impl<T> fmt::Debug for AllOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.policies.iter().map(|p| &**p.name()).collect();
        f.debug_struct("AllOf")
            .field("limits", &names)
            .finish_non_exhaustive()
    }
}

/// The tuples of [`Named`] limits an [`AllOf`] takes (two to four).
/// Sealed.
pub trait Limits: sealed_limits::Limits {}

mod sealed_limits {
    pub trait Limits {
        fn names(&self) -> Vec<&str>;
    }
}

impl<T> AllOf<T> {
    /// All of `limits` (a tuple of two to four [`Named`] limits), in that
    /// order in the header fields.
    ///
    /// # Errors
    /// [`BuildError::InvalidPolicyName`] unless every name is printable
    /// ASCII; [`BuildError::DuplicateLimitName`] when two limits share a
    /// name (their header items could not be told apart).
    pub fn new(limits: T) -> Result<Self, BuildError>
    where
        T: Limits,
    {
        let names = limits.names();
        let mut seen = HashSet::with_capacity(names.len());
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            if !seen.insert(name) {
                return Err(BuildError::DuplicateLimitName(name.to_owned()));
            }
            policies.push(Policy::new(name).map_err(|e| BuildError::InvalidPolicyName(e.0))?);
        }
        Ok(Self {
            limits,
            policies: policies.into(),
        })
    }

    /// The limits, as given (to reach a limiter: `all.limits().1.limiter()`).
    pub fn limits(&self) -> &T {
        &self.limits
    }
}

/// What an [`AllOf`] answers: the combined decision, and each limit's by
/// name. The layer writes its header fields from it.
pub struct Verdicts<const N: usize> {
    policies: Arc<[Policy]>,
    quotas: [AnyAlgorithm; N],
    multi: MultiDecision<N>,
    /// A cost above a limit's capacity: the limit, and the error.
    over: Option<(usize, LimitError)>,
}

impl<const N: usize> fmt::Debug for Verdicts<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdicts")
            .field("decision", &self.multi.decision)
            .field("limits", &self.limits().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Verdicts<N> {
    /// The combined decision (see `ratelimit_memory::MultiDecision`).
    pub fn decision(&self) -> &Decision {
        &self.multi.decision
    }

    /// Each limit's name and decision, in the order of the [`AllOf`].
    pub fn limits(&self) -> impl Iterator<Item = (&str, &Decision)> + '_ {
        self.policies
            .iter()
            .map(|p| &**p.name())
            .zip(self.multi.limits.iter())
    }

    /// The names of the limits that denied the request.
    pub fn denied_by(&self) -> impl Iterator<Item = &str> + '_ {
        self.limits().filter(|(_, d)| !d.allowed).map(|(n, _)| n)
    }

    fn new(
        policies: &Arc<[Policy]>,
        quotas: [AnyAlgorithm; N],
        multi: MultiDecision<N>,
        cost: u64,
    ) -> Self {
        // A limit that can never allow this cost (check_all reports it as
        // a denial without a retry, under the limit that decided).
        let over = multi.limits.iter().position(|d| {
            !d.allowed && d.retry_after.is_none() && d.reason == Reason::Quota && cost > d.limit
        });
        let over = over.map(|i| {
            let capacity = multi.limits[i].limit;
            (
                i,
                LimitError::InsufficientCapacity(InsufficientCapacity { cost, capacity }),
            )
        });
        Self {
            policies: Arc::clone(policies),
            quotas,
            multi,
            over,
        }
    }
}

impl<const N: usize> Answer for Verdicts<N> {}

impl<const N: usize> sealed::Answer for Verdicts<N> {
    const DESCRIBES_ITSELF: bool = true;

    fn result(&self) -> Result<&Decision, &LimitError> {
        match &self.over {
            Some((_, e)) => Err(e),
            None => Ok(&self.multi.decision),
        }
    }

    fn into_error(self) -> Option<LimitError> {
        self.over.map(|(_, e)| e)
    }

    fn annotate(
        &self,
        headers: &mut HeaderMap,
        _layer: &Policy,
        _quota: Option<&AnyAlgorithm>,
        policy_only: bool,
    ) {
        let limits = self
            .policies
            .iter()
            .zip(self.multi.limits.iter())
            .zip(self.quotas.iter())
            .map(|((p, d), q)| (p, Some(d), q));
        policy::annotate_all(headers, limits, policy_only);
    }

    fn refused_by(&self) -> Vec<Arc<str>> {
        match &self.over {
            Some((i, _)) => vec![Arc::clone(self.policies[*i].name())],
            None => self
                .policies
                .iter()
                .zip(self.multi.limits.iter())
                .filter(|(_, d)| !d.allowed)
                .map(|(p, _)| Arc::clone(p.name()))
                .collect(),
        }
    }
}

/// Nests each limit's `with_limit`, then checks them all at once.
macro_rules! nest {
    ($limits:ident, $key:ident, $cost:ident; [$($l:ident $q:ident)*];) => {
        {
            let multi = check_all([$($l),*]);
            (multi, [$($q),*])
        }
    };
    ($limits:ident, $key:ident, $cost:ident; [$($l:ident $q:ident)*]; $i:tt $nl:ident $nq:ident $(, $ri:tt $rl:ident $rq:ident)*) => {
        sealed_member::Member::with_limit(&$limits.$i, &$key, $cost, |$nl: &dyn Limit, $nq: AnyAlgorithm| {
            nest!($limits, $key, $cost; [$($l $q)* $nl $nq]; $($ri $rl $rq),*)
        })
    };
}

macro_rules! all_of {
    ($n:literal; $($m:ident $i:tt $l:ident $q:ident),+) => {
        impl<$($m),+> Limits for ($($m,)+) where $($m: sealed_member_names::Name),+ {}

        impl<$($m),+> sealed_limits::Limits for ($($m,)+) where $($m: sealed_member_names::Name),+ {
            fn names(&self) -> Vec<&str> {
                vec![$(self.$i.name_of()),+]
            }
        }

        /// All or nothing over the limits of the tuple, answered inline.
        impl<K, $($m),+> Limiter<K> for AllOf<($($m,)+)>
        where
            K: Send + Sync + 'static,
            $($m: Member<K>,)+
        {
            type Future = Ready<Verdicts<$n>>;

            fn check(&self, key: K, cost: u64) -> Self::Future {
                let limits = &self.limits;
                let (multi, mut quotas) = nest!(limits, key, cost; []; $($i $l $q),+);
                // Each quota was read just before the check: if a change
                // raced it, the decision's limit says so, and the quota
                // read now describes it (see `decided_under`).
                $(
                    if multi.limits[$i].limit != quotas[$i].limit() {
                        let after = sealed_member::Member::quota(&limits.$i, &key);
                        if after.limit() == multi.limits[$i].limit {
                            quotas[$i] = after;
                        }
                    }
                )+
                ready(Verdicts::new(&self.policies, quotas, multi, cost))
            }

            /// The quota of the limit with the smallest limit for `key`.
            fn algorithm(&self, key: &K) -> AnyAlgorithm {
                let quotas = [$(sealed_member::Member::quota(&self.limits.$i, key)),+];
                quotas
                    .into_iter()
                    .min_by_key(|q| q.limit())
                    .expect("at least two limits")
            }
        }
    };
}

mod sealed_member_names {
    /// A limit's name, whatever the key type (for [`AllOf::new`](super::AllOf::new)).
    pub trait Name {
        fn name_of(&self) -> &str;
    }

    impl<L, M> Name for super::Named<L, M> {
        fn name_of(&self) -> &str {
            &self.name
        }
    }
}

all_of!(2; M0 0 l0 q0, M1 1 l1 q1);
all_of!(3; M0 0 l0 q0, M1 1 l1 q1, M2 2 l2 q2);
all_of!(4; M0 0 l0 q0, M1 1 l1 q1, M2 2 l2 q2, M3 3 l3 q3);
