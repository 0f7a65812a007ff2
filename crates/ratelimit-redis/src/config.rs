//! What a limiter is told beyond its quota: where time comes from
//! ([`TimeSource`]) and what to answer when Redis fails
//! ([`FailurePolicy`]).

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
/// loses the connection, is out of memory, fails the script).
///
/// The decision says which path produced it in its `reason`
/// (`Reason::FailOpen`, `Reason::FailClosed`, `Reason::Fallback`);
/// see docs/redis.md for the trade-offs.
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
