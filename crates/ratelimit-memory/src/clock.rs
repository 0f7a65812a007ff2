//! [`MonotonicClock`]: the default time source of the in-memory limiters.

use std::time::Instant;

use ratelimit_core::Clock;

/// The operating system's monotonic clock (`std::time::Instant`), in
/// nanoseconds since the clock was created.
///
/// It never goes backwards and reads the true time to the nanosecond, so
/// decisions are exactly those of the contract at the moment of the read.
/// Clones share the origin, so limiters built from clones of one clock share
/// one timeline.
///
/// ```
/// use ratelimit_memory::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let a = clock.now_ns();
/// let b = clock.clone().now_ns();
/// assert!(b >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        // 2^64 ns is 584 years of uptime: saturate rather than wrap.
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
