//! The bucket limiters as replay backends with reconfiguration and keys'
//! own quotas (`reconfigure` events and `check_with_quota` /
//! `reserve_with_quota`), sync and async: shared by `tests/policies.rs`
//! (one Redis) and `tests/cluster_quota.rs` (a Redis Cluster).

#![allow(dead_code, unreachable_pub, clippy::std_instead_of_core)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{
    AnyAlgorithm, Decision, InsufficientCapacity, Quota, Rate, Reservation, Shaping, Strategy,
    TokenBucket,
};
use ratelimit_redis::{
    AsyncRedisConnection, AsyncRedisLimiter, RedisLimitError, RedisLimiter, RedisPool, TimeSource,
};
use ratelimit_replay::{Backend, Mismatch, Scenario, run_scenario};

fn split<T>(
    r: Result<T, RedisLimitError>,
) -> Result<Result<T, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

/// The sync bucket limiter as a replay backend, with reconfiguration and
/// keys' own quotas.
pub struct Sync<A: Shaping>(pub RedisLimiter<A>);

impl<A: Shaping> Backend for Sync<A> {
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

    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        split(self.0.check_with_quota_at(key, cost, quota, now_ns)).map(Some)
    }

    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, RedisLimitError> {
        split(
            self.0
                .reserve_with_quota_at(key, cost, max_wait_ns, quota, now_ns),
        )
        .map(Some)
    }

    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, RedisLimitError> {
        self.0.reconfigure_at(*quota, strategy, now_ns)?;
        Ok(true)
    }
}

/// The async bucket limiter as a replay backend, each call `block_on`.
pub struct Async<A: Shaping>(pub AsyncRedisLimiter<A>, pub Arc<tokio::runtime::Runtime>);

impl<A: Shaping> Backend for Async<A> {
    type Error = RedisLimitError;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, RedisLimitError> {
        split(self.1.block_on(self.0.check_at(key, cost, now_ns)))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, RedisLimitError> {
        split(
            self.1
                .block_on(self.0.reserve_at(key, cost, max_wait_ns, now_ns)),
        )
    }

    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let f = self.0.check_with_quota_at(key, cost, quota, now_ns);
        split(self.1.block_on(f)).map(Some)
    }

    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, RedisLimitError> {
        let f = self
            .0
            .reserve_with_quota_at(key, cost, max_wait_ns, quota, now_ns);
        split(self.1.block_on(f)).map(Some)
    }

    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, RedisLimitError> {
        self.1
            .block_on(self.0.reconfigure_at(*quota, strategy, now_ns))?;
        Ok(true)
    }
}

/// Replays keep state however long virtual time stands still.
pub fn client_time() -> TimeSource {
    TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    }
}

pub fn run_sync(pool: &RedisPool, file: &str, s: &Scenario) -> Result<(), Box<Mismatch>> {
    let prefix = format!("policies:{file}:{}", s.id);
    match s.any_algorithm().expect("scenario algorithm is valid") {
        AnyAlgorithm::TokenBucket(a) => {
            let l = RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(pool.clone())
                .unwrap();
            run_scenario(s, &mut Sync(l))
        }
        AnyAlgorithm::LeakyBucket(a) => {
            let l = RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(pool.clone())
                .unwrap();
            run_scenario(s, &mut Sync(l))
        }
        other => panic!("the policy files hold buckets only, not {other:?}"),
    }
}

pub fn run_async(
    conn: &AsyncRedisConnection,
    rt: &Arc<tokio::runtime::Runtime>,
    file: &str,
    s: &Scenario,
) -> Result<(), Box<Mismatch>> {
    let prefix = format!("policies-async:{file}:{}", s.id);
    match s.any_algorithm().expect("scenario algorithm is valid") {
        AnyAlgorithm::TokenBucket(a) => {
            let l = RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(conn.clone())
                .unwrap();
            run_scenario(s, &mut Async(l, Arc::clone(rt)))
        }
        AnyAlgorithm::LeakyBucket(a) => {
            let l = RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(conn.clone())
                .unwrap();
            run_scenario(s, &mut Async(l, Arc::clone(rt)))
        }
        other => panic!("the policy files hold buckets only, not {other:?}"),
    }
}

/// What [`lengthen`] calls, on the sync or the async limiter.
pub trait Lengthen {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Decision;
    fn reconfigure_at(&self, quota: Quota, strategy: Strategy, at_ns: u64);
}

impl Lengthen for RedisLimiter<TokenBucket> {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Decision {
        RedisLimiter::<TokenBucket>::check_at(self, key, cost, now_ns).unwrap()
    }
    fn reconfigure_at(&self, quota: Quota, strategy: Strategy, at_ns: u64) {
        RedisLimiter::<TokenBucket>::reconfigure_at(self, quota, strategy, at_ns).unwrap();
    }
}

impl Lengthen for Async<TokenBucket> {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Decision {
        self.1.block_on(self.0.check_at(key, cost, now_ns)).unwrap()
    }
    fn reconfigure_at(&self, quota: Quota, strategy: Strategy, at_ns: u64) {
        self.1
            .block_on(self.0.reconfigure_at(quota, strategy, at_ns))
            .unwrap();
    }
}

/// The expiry walk of `reconfigure`: keys `keys` of the prefix `root`
/// stored under 10 per second (each expires within the client-time
/// margin of 10 s plus half a second) and converted to 1 per hour with
/// keep-consumed need 5 hours, and must not vanish (and be read as fresh,
/// full buckets) when their old expiry comes. `build(prefix, bucket,
/// time)` makes the limiter; `pttl` reads a Redis key's `PTTL` from the
/// node that holds it. A key of another prefix (`<root>-other`) is not
/// touched. Explicit (client) time: nothing depends on how long the test
/// takes, short of the 10 s margin.
pub fn lengthen<L: Lengthen>(
    root: &str,
    build: impl Fn(&str, TokenBucket, TimeSource) -> L,
    keys: &[&str],
    pttl: impl Fn(&str) -> i64,
) {
    const S: u64 = 1_000_000_000;
    let time = TimeSource::Client {
        ttl_margin: Duration::from_secs(10),
    };
    let ten = Quota::new(10, Rate::per_second(10)).unwrap();
    let other_prefix = format!("{root}-other");
    let (l, other) = (
        build(root, TokenBucket::new(ten), time),
        build(&other_prefix, TokenBucket::new(ten), time),
    );
    let t0 = 1_000 * S;
    for k in keys {
        assert!(l.check_at(k, 5, t0).allowed);
    }
    assert!(other.check_at("a", 5, t0).allowed);
    let short = 0..=10_500;
    for k in keys {
        let key = format!("{root}|{k}");
        let ttl = pttl(&key);
        assert!(short.contains(&ttl), "{key}: {ttl}");
    }
    let hourly = Quota::new(10, Rate::per_hour(1)).unwrap();
    l.reconfigure_at(hourly, Strategy::KeepConsumed, t0);
    // τ′ = 10 hours: every key of the prefix lives at least that long now.
    for k in keys {
        let key = format!("{root}|{k}");
        let ttl = pttl(&key);
        assert!(ttl > 9 * 3_600_000, "{key}: {ttl}");
    }
    let ttl = pttl(&format!("{other_prefix}|a"));
    assert!(short.contains(&ttl), "another prefix is left alone: {ttl}");
    // Each converted key: 5 consumed of 10 at one an hour.
    for k in keys {
        let d = l.check_at(k, 5, t0 + S);
        assert!(d.allowed && d.remaining == 0, "{k}: {d:?}");
        assert!(!l.check_at(k, 1, t0 + S).allowed, "{k}");
    }
}
