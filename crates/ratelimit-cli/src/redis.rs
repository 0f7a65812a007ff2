//! The Redis backend of `replay --backend redis`: a Redis limiter driven
//! with the events' times as client time, under a fresh prefix per replay
//! unless one is given. It runs all four algorithms' `check`, and the
//! buckets' `reserve`.

use core::fmt;
use core::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    Algorithm, AlgorithmKind, Decision, FixedWindow, InsufficientCapacity, LeakyBucket, Quota,
    Reservation, SlidingWindow, Strategy, TokenBucket,
};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TimeSource};
use ratelimit_replay::{Backend, NotShaping};

/// Added to every key's TTL during a replay: virtual time may stand still
/// while real time passes, and a replay must not lose state early. A replay
/// that runs for more than this much real time could.
const REPLAY_TTL_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// An algorithm the Redis replay runs: `check` for all four; `reserve`,
/// keys' own quotas and changes of quota where the Redis limiter has them
/// (the buckets).
pub(crate) trait RedisReplayable: Algorithm {
    /// `reserve_at` on `limiter`, or `None` for a window algorithm.
    fn reserve_at(
        limiter: &RedisLimiter<Self>,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Option<Result<Reservation, RedisLimitError>>;

    /// `check_with_quota_at` on `limiter`, or `None` for a window.
    fn check_with_quota_at(
        limiter: &RedisLimiter<Self>,
        key: &str,
        cost: u64,
        quota: &Quota,
        now_ns: u64,
    ) -> Option<Result<Decision, RedisLimitError>>;

    /// `reserve_with_quota_at` on `limiter`, or `None` for a window.
    fn reserve_with_quota_at(
        limiter: &RedisLimiter<Self>,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
        now_ns: u64,
    ) -> Option<Result<Reservation, RedisLimitError>>;

    /// `reconfigure_at` on `limiter`, or `None` for a window.
    fn reconfigure_at(
        limiter: &RedisLimiter<Self>,
        quota: Quota,
        strategy: Strategy,
        at_ns: u64,
    ) -> Option<Result<(), RedisLimitError>>;
}

macro_rules! shaping {
    ($($name:ty),*) => {$(
        impl RedisReplayable for $name {
            fn reserve_at(
                limiter: &RedisLimiter<Self>,
                key: &str,
                cost: u64,
                max_wait_ns: Option<u64>,
                now_ns: u64,
            ) -> Option<Result<Reservation, RedisLimitError>> {
                Some(limiter.reserve_at(key, cost, max_wait_ns, now_ns))
            }

            fn check_with_quota_at(
                limiter: &RedisLimiter<Self>,
                key: &str,
                cost: u64,
                quota: &Quota,
                now_ns: u64,
            ) -> Option<Result<Decision, RedisLimitError>> {
                Some(limiter.check_with_quota_at(key, cost, quota, now_ns))
            }

            fn reserve_with_quota_at(
                limiter: &RedisLimiter<Self>,
                key: &str,
                cost: u64,
                max_wait_ns: Option<u64>,
                quota: &Quota,
                now_ns: u64,
            ) -> Option<Result<Reservation, RedisLimitError>> {
                Some(limiter.reserve_with_quota_at(key, cost, max_wait_ns, quota, now_ns))
            }

            fn reconfigure_at(
                limiter: &RedisLimiter<Self>,
                quota: Quota,
                strategy: Strategy,
                at_ns: u64,
            ) -> Option<Result<(), RedisLimitError>> {
                Some(limiter.reconfigure_at(quota, strategy, at_ns))
            }
        }
    )*};
}

macro_rules! policing {
    ($($name:ty),*) => {$(
        impl RedisReplayable for $name {
            fn reserve_at(
                _: &RedisLimiter<Self>,
                _: &str,
                _: u64,
                _: Option<u64>,
                _: u64,
            ) -> Option<Result<Reservation, RedisLimitError>> {
                None
            }

            fn check_with_quota_at(
                _: &RedisLimiter<Self>,
                _: &str,
                _: u64,
                _: &Quota,
                _: u64,
            ) -> Option<Result<Decision, RedisLimitError>> {
                None
            }

            fn reserve_with_quota_at(
                _: &RedisLimiter<Self>,
                _: &str,
                _: u64,
                _: Option<u64>,
                _: &Quota,
                _: u64,
            ) -> Option<Result<Reservation, RedisLimitError>> {
                None
            }

            fn reconfigure_at(
                _: &RedisLimiter<Self>,
                _: Quota,
                _: Strategy,
                _: u64,
            ) -> Option<Result<(), RedisLimitError>> {
                None
            }
        }
    )*};
}

shaping!(TokenBucket, LeakyBucket);
policing!(FixedWindow, SlidingWindow);

/// Why the Redis replay could not answer: Redis failed, or a `reserve`
/// reached a window algorithm (the replay refuses those before they get
/// here).
#[derive(Debug)]
pub(crate) enum RedisReplayError {
    /// The limiter's error.
    Redis(RedisLimitError),
    /// A `reserve` under a window algorithm.
    NotShaping(NotShaping),
}

impl fmt::Display for RedisReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => e.fmt(f),
            Self::NotShaping(e) => e.fmt(f),
        }
    }
}

/// A Redis limiter driven with the events' times.
pub(crate) struct RedisReplay<A: Algorithm>(RedisLimiter<A>);

impl<A: Algorithm> RedisReplay<A> {
    /// A limiter running `algorithm` on the Redis at `url`, under `prefix`
    /// or a fresh one. Nothing is sent to Redis yet: an unreachable server
    /// shows at the first event. The error is a configuration error (a
    /// malformed URL, a window the scripts cannot run exactly, ...).
    pub(crate) fn open(
        algorithm: A,
        url: &str,
        prefix: Option<&str>,
    ) -> Result<Self, RedisLimitError> {
        let pool = RedisPool::open(url)?;
        RedisLimiter::builder(algorithm)
            .prefix(replay_prefix(prefix))
            .time_source(TimeSource::Client {
                ttl_margin: REPLAY_TTL_MARGIN,
            })
            .build(pool)
            .map(Self)
    }
}

/// A fresh namespace per replay unless one is given, so that the same
/// input gives the same output as the memory backend, run after run.
fn replay_prefix(given: Option<&str>) -> String {
    given.map_or_else(
        || {
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("ratelimit-replay:{}-{ns}", std::process::id())
        },
        str::to_owned,
    )
}

/// A cost above the capacity is the contract's answer, not a failure.
fn split<T>(
    r: Result<T, RedisLimitError>,
) -> Result<Result<T, InsufficientCapacity>, RedisReplayError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(RedisReplayError::Redis(e)),
    }
}

impl<A: RedisReplayable> Backend for RedisReplay<A> {
    type Error = RedisReplayError;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, RedisReplayError> {
        split(self.0.check_at(key, cost, now_ns))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, RedisReplayError> {
        let reserved = A::reserve_at(&self.0, key, cost, max_wait_ns, now_ns).ok_or(
            RedisReplayError::NotShaping(NotShaping(self.0.algorithm().kind())),
        )?;
        split(reserved)
    }

    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, RedisReplayError> {
        A::check_with_quota_at(&self.0, key, cost, quota, now_ns)
            .map(split)
            .transpose()
    }

    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, RedisReplayError> {
        A::reserve_with_quota_at(&self.0, key, cost, max_wait_ns, quota, now_ns)
            .map(split)
            .transpose()
    }

    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, RedisReplayError> {
        match A::reconfigure_at(&self.0, *quota, strategy, now_ns) {
            Some(r) => r.map(|()| true).map_err(RedisReplayError::Redis),
            None => Ok(false),
        }
    }

    fn algorithm(&self) -> Option<AlgorithmKind> {
        Some(self.0.algorithm().kind())
    }
}
