//! The local limiter of [`FailurePolicy::Fallback`](crate::FailurePolicy):
//! the memory backend's [`KeyedLimiter`] with the same algorithm and quota,
//! on the limiter's monotonic clock, keyed by the full Redis key (bounded in
//! bytes: keys are at most `max_key_len` bytes, or hashed). It is built on
//! the first failure and only consulted while Redis fails; its bound on
//! keys is the memory backend's default.

use core::time::Duration;
use std::sync::{Arc, OnceLock};

use ratelimit_core::{
    Algorithm, AnyAlgorithm, AnyBucket, Clock, Decision, InsufficientCapacity, Reason, Reservation,
    Shaping,
};
use ratelimit_memory::KeyedLimiter;

/// The clock of the breaker, the log gates and the fallback.
pub(crate) type SharedClock = Arc<dyn Clock + Send + Sync>;

/// Built lazily: most limiters never need it. A bucket's fallback shapes
/// too; a window's only polices.
#[derive(Default)]
pub(crate) struct Fallback {
    buckets: OnceLock<KeyedLimiter<Vec<u8>, AnyBucket, SharedClock>>,
    windows: OnceLock<KeyedLimiter<Vec<u8>, AnyAlgorithm, SharedClock>>,
}

/// A fallback limiter of `algorithm` on `clock`.
fn build<A: Algorithm>(algorithm: A, clock: &SharedClock) -> KeyedLimiter<Vec<u8>, A, SharedClock>
where
    A::State: ratelimit_memory::Word,
{
    KeyedLimiter::builder(algorithm)
        .clock(Arc::clone(clock))
        // The Redis key (prefix and key) is bounded by the limiter before
        // it gets here; the memory default (256) would cut a long prefix's
        // keys.
        .max_key_len(usize::MAX)
        .build()
}

impl Fallback {
    fn bucket(
        &self,
        bucket: AnyBucket,
        clock: &SharedClock,
    ) -> &KeyedLimiter<Vec<u8>, AnyBucket, SharedClock> {
        self.buckets.get_or_init(|| build(bucket, clock))
    }

    /// The local answer to `check`, marked [`Reason::Fallback`].
    pub(crate) fn check<A: Algorithm>(
        &self,
        algorithm: &A,
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        let any = algorithm.to_any();
        let d = match any.as_bucket() {
            Some(bucket) => self.bucket(bucket, clock).check_n(redis_key, cost),
            None => self
                .windows
                .get_or_init(|| build(any, clock))
                .check_n(redis_key, cost),
        };
        d.map(|d| Decision {
            reason: Reason::Fallback,
            ..d
        })
    }

    /// The local answer to `reserve`, marked [`Reason::Fallback`].
    pub(crate) fn reserve<A: Shaping>(
        &self,
        algorithm: &A,
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
        let Some(bucket) = algorithm.to_any().as_bucket() else {
            unreachable!("only the buckets shape")
        };
        self.bucket(bucket, clock)
            .reserve(redis_key, cost, max_wait_ns.map(Duration::from_nanos))
            .map(|r| match r {
                Reservation::Admitted {
                    wait,
                    reset_after,
                    limit,
                    ..
                } => Reservation::Admitted {
                    wait,
                    reset_after,
                    limit,
                    reason: Reason::Fallback,
                },
                Reservation::Rejected {
                    retry_after,
                    reset_after,
                    limit,
                    ..
                } => Reservation::Rejected {
                    retry_after,
                    reset_after,
                    limit,
                    reason: Reason::Fallback,
                },
            })
    }
}
