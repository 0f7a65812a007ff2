//! [`Limiter`]: what the layer asks of a backend, and its implementations
//! for the memory limiter (inline) and the sync Redis limiters (on tokio's
//! blocking pool).

use core::borrow::Borrow;
use core::fmt;
use core::future::{Future, Ready, ready};
use core::hash::{BuildHasher, Hash};
use core::pin::Pin;
use std::sync::Arc;

use ratelimit_core::{Algorithm, AnyAlgorithm, Clock, Decision, InsufficientCapacity};
use ratelimit_memory::{KeyBytes, KeyedLimiter, Word};

use crate::answer::{Answer, Checked};

/// A boxed, sendable future: the natural [`Limiter::Future`] of an async
/// backend.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a limiter could not decide.
///
/// A denial is not an error: it is a [`Decision`] with `allowed: false`.
#[derive(Debug)]
#[non_exhaustive]
pub enum LimitError {
    /// The request costs more than the capacity: it can never succeed.
    /// The layer refuses it with
    /// [`RefusalKind::CostAboveCapacity`](crate::RefusalKind::CostAboveCapacity)
    /// (`413 Content Too Large`).
    InsufficientCapacity(InsufficientCapacity),
    /// The backend failed and its failure policy is to return the error.
    /// The layer refuses the request with
    /// [`RefusalKind::BackendFailed`](crate::RefusalKind::BackendFailed)
    /// (`503 Service Unavailable`).
    Backend(Box<dyn core::error::Error + Send + Sync + 'static>),
}

impl LimitError {
    /// A backend failure from any error.
    pub fn backend(error: impl Into<Box<dyn core::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(error.into())
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InsufficientCapacity(e) => fmt::Display::fmt(e, f),
            Self::Backend(e) => write!(f, "the rate-limit backend failed: {e}"),
        }
    }
}

impl core::error::Error for LimitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::InsufficientCapacity(e) => Some(e),
            Self::Backend(e) => Some(&**e),
        }
    }
}

impl From<InsufficientCapacity> for LimitError {
    fn from(e: InsufficientCapacity) -> Self {
        Self::InsufficientCapacity(e)
    }
}

/// A keyed rate limiter the layer can call: `check(key, cost)` now, as a
/// future.
///
/// The layer holds the limiter in one `Arc` shared by every clone of the
/// service, so one budget holds across all connections.
///
/// Implementations:
/// - [`KeyedLimiter`] (memory): decides inline and returns a ready future;
///   it never blocks.
/// - `RedisLimiter` (feature `redis`): the sync call runs on tokio's
///   blocking pool (`tokio::task::spawn_blocking`), never on an executor
///   thread.
/// - `AsyncRedisLimiter` (feature `redis`): checked on the request's task,
///   on its one shared, pipelined connection.
/// - Any other async backend implements it with
///   `type Future = BoxFuture<Result<Decision, LimitError>>` and an `async
///   move` block over a clone of its connection handle; see the example
///   below.
/// - `Arc<L>` for any `L: Limiter`, so a caller can keep a handle (to
///   inspect or reconfigure) while the layer uses it.
/// - [`PerKeyQuota`](crate::PerKeyQuota) (memory, a quota per key) and
///   [`AllOf`](crate::AllOf) (several memory limits, all or nothing).
///
/// Implementations MUST return `Err(LimitError::InsufficientCapacity)` for
/// a cost above the capacity, MUST apply their own failure policy before
/// returning `Err(LimitError::Backend)`, and MUST report through
/// [`algorithm`](Self::algorithm) the algorithm and quota that decide for `key`.
///
/// Keys: the memory limiter takes any `Hash + Eq` key (`String`,
/// `IpAddr`, tuples); the Redis limiters take keys with a byte form
/// (`AsRef<[u8]>`: `String`, `Vec<u8>`), so with [`ClientIp`](crate::ClientIp)
/// use [`ClientIp::as_text`](crate::ClientIp::as_text) in front of Redis.
///
/// ```
/// use ratelimit_core::{AnyAlgorithm, Decision, Quota, Reason, TokenBucket};
/// use ratelimit_tower::{BoxFuture, LimitError, Limiter};
///
/// /// A stand-in for an async client (say, a Redis connection manager).
/// #[derive(Clone)]
/// struct AsyncBackend { quota: Quota }
///
/// impl AsyncBackend {
///     async fn check_n(&self, _key: &str, cost: u64) -> Result<Decision, std::io::Error> {
///         Ok(Decision {
///             allowed: true,
///             remaining: self.quota.capacity() - cost,
///             retry_after: None,
///             reset_after: self.quota.interval() * cost as u32,
///             limit: self.quota.capacity(),
///             reason: Reason::Quota,
///         })
///     }
/// }
///
/// impl Limiter<String> for AsyncBackend {
///     type Future = BoxFuture<Result<Decision, LimitError>>;
///
///     fn check(&self, key: String, cost: u64) -> Self::Future {
///         let this = self.clone();
///         Box::pin(async move { this.check_n(&key, cost).await.map_err(LimitError::backend) })
///     }
///
///     fn algorithm(&self, _key: &String) -> AnyAlgorithm {
///         AnyAlgorithm::TokenBucket(TokenBucket::new(self.quota))
///     }
/// }
/// ```
pub trait Limiter<K>: Send + Sync + 'static {
    /// The answer, as a future. It MUST NOT block the thread that polls it.
    ///
    /// Its output is an [`Answer`]: `Result<Decision, LimitError>` for a
    /// limiter with one limit (the layer describes it with
    /// [`algorithm`](Self::algorithm), under the layer's name), as the
    /// Redis limiters and any of your own answer;
    /// [`Checked`](crate::Checked) for one limit that reports the quota
    /// that decided (the memory `KeyedLimiter`,
    /// [`PerKeyQuota`](crate::PerKeyQuota));
    /// [`Verdicts`](crate::Verdicts) for several named limits
    /// ([`AllOf`](crate::AllOf)).
    type Future: Future<Output: Answer> + Send + 'static;

    /// Allows or denies a request of `cost` units for `key` now.
    fn check(&self, key: K, cost: u64) -> Self::Future;

    /// The algorithm and quota that decide for `key`: its limit and period
    /// fill the `RateLimit-Policy` header (`q` and `w`), and with the
    /// decision the `t` of `RateLimit`.
    fn algorithm(&self, key: &K) -> AnyAlgorithm;
}

impl<K, L: Limiter<K> + ?Sized> Limiter<K> for Arc<L> {
    type Future = L::Future;

    #[inline]
    fn check(&self, key: K, cost: u64) -> Self::Future {
        (**self).check(key, cost)
    }

    #[inline]
    fn algorithm(&self, key: &K) -> AnyAlgorithm {
        (**self).algorithm(key)
    }
}

/// Memory: the decision is made inline (a few tens of nanoseconds, no
/// lock held across an await) and returned as a ready future, with the
/// quota that made it (a `Checked`: the quota read before the check, or
/// after it when a racing `reconfigure` shows in the decision's limit).
impl<K, A, C, S> Limiter<K> for KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq + Clone + Borrow<K> + KeyBytes + Send + Sync + 'static,
    A: Algorithm<State: Word>,
    C: Clock + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    type Future = Ready<Checked>;

    #[inline]
    fn check(&self, key: K, cost: u64) -> Self::Future {
        let before = self.algorithm();
        let result = self.check_n(&key, cost).map_err(LimitError::from);
        let quota = decided_under(&result, before, || self.algorithm());
        ready(Checked {
            result,
            quota: quota.to_any(),
        })
    }

    #[inline]
    fn algorithm(&self, _key: &K) -> AnyAlgorithm {
        self.algorithm().to_any()
    }
}

/// The quota a memory decision was made under, for the header fields:
/// `before`, read just before the check, unless a `reconfigure` raced the
/// check and the decision's limit says so; then the quota read after it
/// (`after`), if that one has the decision's limit. A race that changes
/// the rate alone cannot be told from the decision: that one response may
/// then describe the other quota's `w` and `t`; its `r` is exact.
pub(crate) fn decided_under<A: Algorithm>(
    result: &Result<Decision, LimitError>,
    before: A,
    after: impl FnOnce() -> A,
) -> A {
    match result {
        Ok(d) if d.limit != before.limit() => {
            let after = after();
            if after.limit() == d.limit {
                after
            } else {
                before
            }
        }
        _ => before,
    }
}

#[cfg(feature = "redis")]
mod redis_impl {
    use ratelimit_core::{Algorithm, AnyAlgorithm, Decision};
    use ratelimit_redis::{AsyncRedisLimiter, RedisKey, RedisLimitError, RedisLimiter};

    use super::{BoxFuture, LimitError, Limiter};

    /// The sync Redis limiters, run with [`tokio::task::spawn_blocking`].
    ///
    /// `spawn_blocking` rather than `block_in_place`: it works on every
    /// runtime flavour (`block_in_place` panics on a current-thread
    /// runtime, the default of `#[tokio::test]` and common in tonic
    /// services), and it never stalls the other tasks of the worker that
    /// polls the request. The cost is a hand-off to the blocking pool per
    /// call (a few microseconds), small beside the Redis round trip. The
    /// pool's connections bound the number of blocking threads busy with
    /// Redis at once.
    ///
    /// Cancellation: if the request future is dropped while Redis is being
    /// asked, the blocking call still completes, so the request may have
    /// counted.
    ///
    /// # Panics
    /// `check` panics when called outside a tokio runtime.
    impl<K, A> Limiter<K> for RedisLimiter<A>
    where
        K: RedisKey + Send + 'static,
        A: Algorithm,
    {
        type Future = BoxFuture<Result<Decision, LimitError>>;

        fn check(&self, key: K, cost: u64) -> Self::Future {
            let limiter = self.clone();
            let task = tokio::task::spawn_blocking(move || limiter.check_n(&key, cost));
            Box::pin(async move {
                match task.await {
                    Ok(Ok(decision)) => Ok(decision),
                    Ok(Err(RedisLimitError::InsufficientCapacity(e))) => Err(e.into()),
                    Ok(Err(e)) => Err(LimitError::backend(e)),
                    Err(join) => Err(LimitError::backend(join)),
                }
            })
        }

        fn algorithm(&self, _key: &K) -> AnyAlgorithm {
            RedisLimiter::algorithm(self).to_any()
        }
    }

    /// The async Redis limiters: the check runs on the request's task, on
    /// the limiter's one shared, pipelined connection; nothing blocks.
    ///
    /// Cancellation: if the request future is dropped while Redis is being
    /// asked, the request may have counted.
    impl<K, A> Limiter<K> for AsyncRedisLimiter<A>
    where
        K: RedisKey + Send + Sync + 'static,
        A: Algorithm,
    {
        type Future = BoxFuture<Result<Decision, LimitError>>;

        fn check(&self, key: K, cost: u64) -> Self::Future {
            let limiter = self.clone();
            Box::pin(async move {
                match limiter.check_n(&key, cost).await {
                    Ok(decision) => Ok(decision),
                    Err(RedisLimitError::InsufficientCapacity(e)) => Err(e.into()),
                    Err(e) => Err(LimitError::backend(e)),
                }
            })
        }

        fn algorithm(&self, _key: &K) -> AnyAlgorithm {
            AsyncRedisLimiter::algorithm(self).to_any()
        }
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use ratelimit_core::{Rate, Reason, TokenBucket};

    use super::*;

    #[test]
    fn a_racing_change_is_told_by_the_decision_limit() {
        let old = TokenBucket::with_rate(10, Rate::per_minute(10)).unwrap();
        let new = TokenBucket::with_rate(5, Rate::per_minute(5)).unwrap();
        let decided = |limit| {
            Ok(Decision {
                allowed: true,
                remaining: 1,
                retry_after: None,
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::Quota,
            })
        };
        // No race: the quota read before, without a second read.
        assert_eq!(decided_under(&decided(10), old, || unreachable!()), old);
        // Decided under the change: the quota read after.
        assert_eq!(decided_under(&decided(5), old, || new), new);
        // The quota after is yet another: the one before stays.
        assert_eq!(decided_under(&decided(7), old, || new), old);
        // No decision: the quota before (a 413 lists it).
        let err: Result<Decision, LimitError> =
            Err(LimitError::backend(std::io::Error::other("x")));
        assert_eq!(decided_under(&err, old, || unreachable!()), old);
    }
}
