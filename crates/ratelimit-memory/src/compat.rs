//! The names of the Python system this crate replaces:
//! [`TokenBucketMemory`] and [`LeakyBucketMemory`], built from a capacity
//! and a rate per second.

use core::hash::Hash;

use ratelimit_core::{ConfigError, LeakyBucket, Rate, TokenBucket};

use crate::clock::MonotonicClock;
use crate::keyed::KeyedLimiter;

/// A keyed token bucket: bursts up to the capacity, refilled at the rate,
/// with `String` keys (looked up by `&str`). For other keys, name the
/// limiter: `KeyedLimiter::<u64, TokenBucket>::new(10, 2.0)`.
///
/// Not generic on purpose: `TokenBucketMemory::new(..)` then compiles
/// wherever it is written, even before any key is used.
///
/// ```
/// use ratelimit_memory::TokenBucketMemory;
///
/// // Alone, before any key is used:
/// let limiter = TokenBucketMemory::new(10, 2.0)?;
/// // In an assert:
/// assert!(TokenBucketMemory::new(0, 1.0).is_err());
/// // In a struct field:
/// struct Api {
///     limiter: TokenBucketMemory,
/// }
/// let api = Api { limiter };
/// assert!(api.limiter.allow_request("user123").allowed);
/// # Ok::<(), ratelimit_memory::ConfigError>(())
/// ```
pub type TokenBucketMemory = KeyedLimiter<String, TokenBucket, MonotonicClock>;

/// A keyed leaky bucket: a queue of at most the capacity, drained at the
/// rate, with `String` keys (looked up by `&str`). For other keys, name the
/// limiter: `KeyedLimiter::<u64, LeakyBucket>::new(5, 2.0)`.
///
/// ```
/// use ratelimit_memory::LeakyBucketMemory;
///
/// let limiter = LeakyBucketMemory::new(5, 2.0)?;
/// assert!(LeakyBucketMemory::new(5, f64::NAN).is_err());
/// struct Worker {
///     limiter: LeakyBucketMemory,
/// }
/// let worker = Worker { limiter };
/// assert!(worker.limiter.allow_request("queue").allowed);
/// # Ok::<(), ratelimit_memory::ConfigError>(())
/// ```
pub type LeakyBucketMemory = KeyedLimiter<String, LeakyBucket, MonotonicClock>;

impl<K: Hash + Eq> KeyedLimiter<K, TokenBucket> {
    /// `capacity` tokens per key, refilled at `per_second` tokens per
    /// second (`2.0`, `0.5`).
    ///
    /// # Errors
    /// [`ConfigError`] for a zero capacity; a zero, negative, NaN or
    /// infinite rate; a rate above one token per nanosecond; or a
    /// `capacity × interval` beyond 2^64 ns.
    pub fn new(capacity: u64, per_second: f64) -> Result<Self, ConfigError> {
        Self::with_rate(capacity, Rate::from_per_second_f64(per_second))
    }

    /// `capacity` tokens per key, refilled at `rate`
    /// (`Rate::per_minute(30)`, ...).
    ///
    /// # Errors
    /// As for [`new`](Self::new).
    pub fn with_rate(capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        TokenBucket::with_rate(capacity, rate).map(Self::with_algorithm)
    }
}

impl<K: Hash + Eq> KeyedLimiter<K, LeakyBucket> {
    /// A queue of `capacity` units per key, drained at `per_second` units
    /// per second.
    ///
    /// # Errors
    /// As for [`TokenBucketMemory::new`].
    pub fn new(capacity: u64, per_second: f64) -> Result<Self, ConfigError> {
        Self::with_rate(capacity, Rate::from_per_second_f64(per_second))
    }

    /// A queue of `capacity` units per key, drained at `rate`.
    ///
    /// # Errors
    /// As for [`TokenBucketMemory::new`].
    pub fn with_rate(capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        LeakyBucket::with_rate(capacity, rate).map(Self::with_algorithm)
    }
}
