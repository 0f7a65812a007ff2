//! The local limiter of [`FailurePolicy::Fallback`](crate::FailurePolicy):
//! the memory backend's [`KeyedLimiter`] with the same algorithm and quota,
//! on the limiter's monotonic clock, keyed by the full Redis key (bounded in
//! bytes: keys are at most `max_key_len` bytes, or hashed). It is built on
//! the first failure and only consulted while Redis fails; its bound on
//! keys is the memory backend's default.

use core::time::Duration;
use std::sync::{Arc, OnceLock};

use ratelimit_core::{Clock, Decision, InsufficientCapacity, Reason, Reservation, Shaping};
use ratelimit_memory::KeyedLimiter;

/// The clock of the breaker, the log gates and the fallback.
pub(crate) type SharedClock = Arc<dyn Clock + Send + Sync>;

/// Built lazily: most limiters never need it.
pub(crate) struct Fallback<A: Shaping> {
    limiter: OnceLock<KeyedLimiter<Vec<u8>, A, SharedClock>>,
}

impl<A: Shaping> Default for Fallback<A> {
    fn default() -> Self {
        Self {
            limiter: OnceLock::new(),
        }
    }
}

impl<A: Shaping> Fallback<A> {
    fn limiter(
        &self,
        algorithm: &A,
        clock: &SharedClock,
    ) -> &KeyedLimiter<Vec<u8>, A, SharedClock> {
        self.limiter.get_or_init(|| {
            KeyedLimiter::builder(*algorithm)
                .clock(Arc::clone(clock))
                // The Redis key (prefix and key) is bounded by the limiter
                // before it gets here; the memory default (256) would cut
                // a long prefix's keys.
                .max_key_len(usize::MAX)
                .build()
        })
    }

    /// The local answer to `check`, marked [`Reason::Fallback`].
    pub(crate) fn check(
        &self,
        algorithm: &A,
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        self.limiter(algorithm, clock)
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
        clock: &SharedClock,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
        self.limiter(algorithm, clock)
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
