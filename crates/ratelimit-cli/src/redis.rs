//! The Redis backend of `replay --backend redis`: a Redis limiter driven
//! with the events' times as client time, under a fresh prefix per replay
//! unless one is given.

use core::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{AlgorithmKind, Decision, InsufficientCapacity, Reservation, Shaping};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TimeSource};
use ratelimit_replay::Backend;

/// Added to every key's TTL during a replay: virtual time may stand still
/// while real time passes, and a replay must not lose state early. A replay
/// that runs for more than this much real time could.
const REPLAY_TTL_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// A Redis limiter driven with the events' times.
pub(crate) struct RedisReplay<A: Shaping>(RedisLimiter<A>);

impl<A: Shaping> RedisReplay<A> {
    /// A limiter running `algorithm` on the Redis at `url`, under `prefix`
    /// or a fresh one. Nothing is sent to Redis yet: an unreachable server
    /// shows at the first event. The error is a configuration error (a
    /// malformed URL, ...).
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
) -> Result<Result<T, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

impl<A: Shaping> Backend for RedisReplay<A> {
    type Error = RedisLimitError;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, RedisLimitError> {
        split(self.0.check_at(key, cost, now_ns))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, RedisLimitError> {
        split(self.0.reserve_at(key, cost, max_wait_ns, now_ns))
    }

    fn algorithm(&self) -> Option<AlgorithmKind> {
        Some(self.0.algorithm().kind())
    }
}
