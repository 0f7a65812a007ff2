//! The local limiter of [`FailurePolicy::Fallback`](crate::FailurePolicy):
//! the memory backend's [`KeyedLimiter`] with the same algorithm and quota,
//! on this process's monotonic clock, keyed by the full Redis key. It is
//! built on the first failure and only consulted while Redis fails; its
//! bound on keys is the memory backend's default.

use core::time::Duration;
use std::sync::OnceLock;

use ratelimit_core::{Decision, InsufficientCapacity, Reason, Reservation, Shaping};
use ratelimit_memory::KeyedLimiter;

/// Built lazily: most limiters never need it.
#[derive(Debug)]
pub(crate) struct Fallback<A: Shaping> {
    limiter: OnceLock<KeyedLimiter<Vec<u8>, A>>,
}

impl<A: Shaping> Default for Fallback<A> {
    fn default() -> Self {
        Self {
            limiter: OnceLock::new(),
        }
    }
}

impl<A: Shaping> Fallback<A> {
    fn limiter(&self, algorithm: &A) -> &KeyedLimiter<Vec<u8>, A> {
        self.limiter
            .get_or_init(|| KeyedLimiter::with_algorithm(*algorithm))
    }

    /// The local answer to `check`, marked [`Reason::Fallback`].
    pub(crate) fn check(
        &self,
        algorithm: &A,
        redis_key: &[u8],
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        self.limiter(algorithm)
            .check_n(redis_key, cost)
            .map(|d| Decision {
                reason: Reason::Fallback,
                ..d
            })
    }

    /// The local answer to `reserve`, marked [`Reason::Fallback`].
    pub(crate) fn reserve(
        &self,
        algorithm: &A,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
        self.limiter(algorithm)
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
