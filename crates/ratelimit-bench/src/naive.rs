//! The naive peer: a straight port of the Python system's design, one
//! `Mutex<HashMap<K, (tokens: f64, last_refill: Instant)>>` for all keys,
//! refilled in floating point on every request.
//!
//! It is written the way the Python code reads, not as a strawman: the
//! clock is read before the lock, a hit does a single lookup and only a
//! miss allocates the key.

use core::borrow::Borrow;
use core::hash::Hash;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What the Python `allow_request` returned.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct NaiveResult {
    /// Whether the request may proceed (for `reserve`: was admitted).
    pub allowed: bool,
    /// Whole tokens left after the request.
    pub tokens_remaining: u64,
    /// When denied, how long until the same request would be allowed; for
    /// an admitted reservation, how long to wait before proceeding.
    pub retry_after: Option<Duration>,
}

/// A float token bucket per key behind one mutex.
#[derive(Debug)]
pub struct NaiveTokenBucket<K> {
    capacity: f64,
    rate: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> NaiveTokenBucket<K> {
    /// `capacity` tokens per key, refilled at `per_second` tokens a second.
    #[must_use]
    pub fn new(capacity: f64, per_second: f64) -> Self {
        Self {
            capacity,
            rate: per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket if it has one.
    pub fn allow_request<Q>(&self, key: &Q) -> NaiveResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_n(key, 1.0)
    }

    /// Takes `cost` tokens from `key`'s bucket if it has them.
    pub fn check_n<Q>(&self, key: &Q, cost: f64) -> NaiveResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, |tokens, rate| {
            if *tokens >= cost {
                *tokens -= cost;
                (true, None)
            } else {
                (false, Some(seconds((cost - *tokens) / rate)))
            }
        })
    }

    /// Takes `cost` tokens now, going into debt if need be, and says how
    /// long to wait before proceeding; refuses (taking nothing) when that
    /// wait would exceed `max_wait`.
    pub fn reserve<Q>(&self, key: &Q, cost: f64, max_wait: Option<Duration>) -> NaiveResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, |tokens, rate| {
            let wait = seconds(((cost - *tokens) / rate).max(0.0));
            if max_wait.is_some_and(|max| wait > max) {
                (false, Some(wait - max_wait.unwrap_or_default()))
            } else {
                *tokens -= cost;
                (true, Some(wait))
            }
        })
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (f64, Instant)>> {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_bucket<Q>(
        &self,
        key: &Q,
        take: impl FnOnce(&mut f64, f64) -> (bool, Option<Duration>),
    ) -> NaiveResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(bucket) = map.get_mut(key) {
            return self.refill_and_take(bucket, now, take);
        }
        let bucket = map.entry(key.to_owned()).or_insert((self.capacity, now));
        self.refill_and_take(bucket, now, take)
    }

    fn refill_and_take(
        &self,
        (tokens, last): &mut (f64, Instant),
        now: Instant,
        take: impl FnOnce(&mut f64, f64) -> (bool, Option<Duration>),
    ) -> NaiveResult {
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.capacity);
        *last = now;
        let (allowed, retry_after) = take(tokens, self.rate);
        NaiveResult {
            allowed,
            tokens_remaining: tokens.max(0.0) as u64,
            retry_after,
        }
    }
}

/// The float step alone, on caller-held state: the naive design's
/// equivalent of the core's pure `check`, for the `core/step` shape.
#[derive(Debug, Clone, Copy)]
pub struct NaiveStep {
    /// Tokens held.
    pub tokens: f64,
    /// Time of the last refill, in seconds on the caller's clock.
    pub last: f64,
}

impl NaiveStep {
    /// Refills up to `capacity` at `rate` per second until `now` (seconds)
    /// and takes `cost` tokens if they are there.
    pub fn check(&mut self, capacity: f64, rate: f64, now: f64, cost: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_deny() {
        let limiter = NaiveTokenBucket::<String>::new(3.0, 1.0 / 3600.0);
        for _ in 0..3 {
            assert!(limiter.allow_request("user123").allowed);
        }
        let denied = limiter.allow_request("user123");
        assert!(!denied.allowed);
        assert!(denied.retry_after.unwrap() > Duration::from_secs(3000));
        assert!(limiter.allow_request("other").allowed);
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn reserve_goes_into_debt() {
        let limiter = NaiveTokenBucket::<u64>::new(1.0, 1.0);
        assert_eq!(
            limiter.reserve(&7, 1.0, None).retry_after,
            Some(Duration::ZERO)
        );
        let second = limiter.reserve(&7, 1.0, None);
        assert!(second.allowed);
        assert!(second.retry_after.unwrap() > Duration::from_millis(900));
        assert!(
            !limiter
                .reserve(&7, 1.0, Some(Duration::from_millis(10)))
                .allowed
        );
    }

    #[test]
    fn step_refills() {
        let mut s = NaiveStep {
            tokens: 0.0,
            last: 0.0,
        };
        assert!(!s.check(2.0, 1.0, 0.5, 1.0));
        assert!(s.check(2.0, 1.0, 1.0, 1.0));
    }
}
