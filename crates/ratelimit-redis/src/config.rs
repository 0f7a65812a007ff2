//! What a limiter is told beyond its quota: where time comes from
//! ([`TimeSource`]), what to answer when Redis fails ([`FailurePolicy`]),
//! and when to stop asking it ([`CircuitBreaker`]).

use core::time::Duration;

/// The default margin added to every key's TTL under client time.
pub const DEFAULT_CLIENT_TTL_MARGIN: Duration = Duration::from_secs(60);

/// Where a limiter's `now` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimeSource {
    /// The Redis server's `TIME` (microseconds), read inside the script:
    /// every application server shares one timeline, whatever its own
    /// clock says. Keys expire exactly when they become equivalent to a
    /// missing key (`PXAT` at `tat`, rounded up to a millisecond).
    #[default]
    Server,
    /// This process's wall clock (`SystemTime`, nanoseconds since 1970),
    /// sent with each call. Every process sharing a key must have a
    /// synchronised clock. Keys expire `reset_after` (rounded up to a
    /// millisecond) plus `ttl_margin` after the call, on the server's clock:
    /// the server cannot know when the caller's clock passes `tat`, so the
    /// margin must cover the clock skew between callers and the server.
    Client {
        /// Added to every TTL.
        ttl_margin: Duration,
    },
}

impl TimeSource {
    /// Client time with the default TTL margin (60 s).
    #[must_use]
    pub const fn client() -> Self {
        Self::Client {
            ttl_margin: DEFAULT_CLIENT_TTL_MARGIN,
        }
    }
}

/// What a limiter answers when Redis fails (cannot connect, times out,
/// loses the connection, is out of memory, fails the script), and while
/// the [`CircuitBreaker`] is open.
///
/// The decision says which path produced it in its `reason`
/// (`Reason::FailOpen`, `Reason::FailClosed`, `Reason::Fallback`);
/// see docs/redis.md for the trade-offs. A misconfiguration (credentials
/// refused, unknown database, missing permissions) is never answered by
/// the policy: it is returned as an error on every call, so that it cannot
/// hide behind the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Return the error: the caller decides (the default).
    #[default]
    ReturnError,
    /// Deny: nothing gets through while Redis is down. `retry_after` is
    /// one emission interval, `remaining` 0.
    FailClosed,
    /// Allow: everything gets through while Redis is down, uncounted.
    /// `remaining` and `reset_after` are 0.
    FailOpen,
    /// Decide with a local in-memory limiter of the same quota (the memory
    /// backend's `KeyedLimiter`, on this process's monotonic clock). Each
    /// process then enforces the quota on its own: with `N` processes up to
    /// `N ×` the quota gets through while Redis is down, and the local
    /// state is forgotten when Redis is back.
    Fallback,
}

/// The circuit breaker of a limiter: after `failures` calls in a row that
/// could not reach Redis (connect errors, timeouts, lost connections), stop
/// calling it for `cool_down` and answer every call at once with the
/// failure policy; then let one call through as a probe (half-open), and
/// close on its success (reopen on its failure).
///
/// The default: 5 failures, 1 s of cool-down. While Redis is down, a call
/// then costs nothing but the policy's answer, and one call per cool-down
/// pays the connect timeout as the probe. Errors that Redis answered (out
/// of memory, a script error) show it is up and do not count.
///
/// ```
/// use std::time::Duration;
/// use ratelimit_redis::CircuitBreaker;
///
/// let breaker = CircuitBreaker::new(3, Duration::from_millis(500));
/// assert_eq!(breaker.failures(), 3);
/// assert_eq!(CircuitBreaker::default(), CircuitBreaker::new(5, Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    failures: u32,
    cool_down: Duration,
}

impl CircuitBreaker {
    /// Opens after `failures` consecutive failures (at least 1), for
    /// `cool_down` (more than zero); checked when the limiter is built.
    #[must_use]
    pub const fn new(failures: u32, cool_down: Duration) -> Self {
        Self {
            failures,
            cool_down,
        }
    }

    /// The consecutive failures that open the circuit.
    #[must_use]
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// How long the circuit stays open before a probe.
    #[must_use]
    pub const fn cool_down(&self) -> Duration {
        self.cool_down
    }
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(1))
    }
}
