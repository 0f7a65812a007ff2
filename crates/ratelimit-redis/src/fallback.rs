//! The local limiter of [`FailurePolicy::Fallback`](crate::FailurePolicy):
//! the memory backend's [`KeyedLimiter`] with the same algorithm and quota,
//! on the limiter's monotonic clock, keyed by the full Redis key (bounded in
//! bytes: keys are at most `max_key_len` bytes, or hashed). It is built on
//! the first failure and only consulted while Redis fails; its bound on
//! keys is the memory backend's default. It follows the limiter's quota:
//! asked under a quota other than its own (the limiter adopted a change),
//! it reconfigures itself (keep-consumed) before it answers.

use core::time::Duration;
use std::sync::{Arc, OnceLock};

use ratelimit_core::{
    Algorithm, AnyAlgorithm, AnyBucket, Clock, Decision, InsufficientCapacity, Reason, Reservation,
    Strategy,
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

/// `limiter`, reconfigured to `algorithm` first if it is on another quota
/// (keep-consumed: what the local keys used stays used). Two callers racing
/// to the same quota both reconfigure; the second change is to the quota
/// the keys are already on, which converts nothing.
fn follow<A>(
    limiter: &KeyedLimiter<Vec<u8>, A, SharedClock>,
    algorithm: A,
) -> &KeyedLimiter<Vec<u8>, A, SharedClock>
where
    A: Algorithm + PartialEq,
    A::State: ratelimit_memory::Word,
{
    if limiter.algorithm() != algorithm {
        limiter.reconfigure(algorithm, Strategy::KeepConsumed);
    }
    limiter
}

impl Fallback {
    fn bucket(
        &self,
        bucket: AnyBucket,
        clock: &SharedClock,
    ) -> &KeyedLimiter<Vec<u8>, AnyBucket, SharedClock> {
        follow(self.buckets.get_or_init(|| build(bucket, clock)), bucket)
    }

    /// The local answer to `check` under `algorithm` (the limiter's quota
    /// now), marked [`Reason::Fallback`].
    pub(crate) fn check(
        &self,
        algorithm: &AnyAlgorithm,
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        let d = match algorithm.as_bucket() {
            Some(bucket) => self.bucket(bucket, clock).check_n(redis_key, cost),
            None => follow(
                self.windows.get_or_init(|| build(*algorithm, clock)),
                *algorithm,
            )
            .check_n(redis_key, cost),
        };
        d.map(|d| Decision {
            reason: Reason::Fallback,
            ..d
        })
    }

    /// The local answer to `reserve` under `bucket` (the limiter's quota
    /// now), marked [`Reason::Fallback`].
    pub(crate) fn reserve(
        &self,
        bucket: AnyBucket,
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
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
