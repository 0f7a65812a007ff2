//! The names of the Python system this crate replaces:
//! [`TokenBucketMemory`] and [`LeakyBucketMemory`], built from a capacity
//! and a rate per second.

use core::hash::Hash;

use ratelimit_core::{ConfigError, LeakyBucket, Rate, TokenBucket};

use crate::clock::MonotonicClock;
use crate::keyed::KeyedLimiter;

/// A keyed token bucket: bursts up to the capacity, refilled at the rate.
/// Keys are `String`s by default (looked up by `&str`).
pub type TokenBucketMemory<K = String, C = MonotonicClock> = KeyedLimiter<K, TokenBucket, C>;

/// A keyed leaky bucket: a queue of at most the capacity, drained at the
/// rate. Keys are `String`s by default (looked up by `&str`).
pub type LeakyBucketMemory<K = String, C = MonotonicClock> = KeyedLimiter<K, LeakyBucket, C>;

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
