//! The bucket limiters as replay backends with reconfiguration and keys'
//! own quotas (`reconfigure` events and `check_with_quota` /
//! `reserve_with_quota`), sync and async: shared by `tests/policies.rs`
//! (one Redis) and `tests/cluster_quota.rs` (a Redis Cluster).

#![allow(dead_code, unreachable_pub, clippy::std_instead_of_core)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{
    Algorithm, AnyAlgorithm, Clock, Decision, InsufficientCapacity, Quota, Rate, Reservation,
    Shaping, Strategy, TokenBucket,
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

/// What the window tests call, on the sync or the async window limiter.
pub trait WindowOps<A> {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError>;
    fn batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError>;
    fn reconfigure_window_at(&self, window: A, at_ns: u64) -> Result<(), RedisLimitError>;
    fn check_own_at(
        &self,
        key: &str,
        cost: u64,
        window: &A,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError>;
    fn version(&self) -> u64;
    fn refresh(&self) -> u64;
}

impl<A: Algorithm> WindowOps<A> for RedisLimiter<A> {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        RedisLimiter::<A>::check_at(self, key, cost, now_ns)
    }
    fn batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        RedisLimiter::<A>::check_batch_at(self, requests, now_ns)
    }
    fn reconfigure_window_at(&self, window: A, at_ns: u64) -> Result<(), RedisLimitError> {
        RedisLimiter::<A>::reconfigure_window_at(self, window, at_ns)
    }
    fn check_own_at(
        &self,
        key: &str,
        cost: u64,
        window: &A,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.check_with_window_at(key, cost, window, now_ns)
    }
    fn version(&self) -> u64 {
        self.current_window().unwrap().0
    }
    fn refresh(&self) -> u64 {
        self.refresh_window().unwrap()
    }
}

/// The async window limiter, each call `block_on`.
pub struct AsyncWindow<A: Algorithm>(pub AsyncRedisLimiter<A>, pub Arc<tokio::runtime::Runtime>);

impl<A: Algorithm> WindowOps<A> for AsyncWindow<A> {
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        self.1.block_on(self.0.check_at(key, cost, now_ns))
    }
    fn batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.1.block_on(self.0.check_batch_at(requests, now_ns))
    }
    fn reconfigure_window_at(&self, window: A, at_ns: u64) -> Result<(), RedisLimitError> {
        self.1.block_on(self.0.reconfigure_window_at(window, at_ns))
    }
    fn check_own_at(
        &self,
        key: &str,
        cost: u64,
        window: &A,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.1
            .block_on(self.0.check_with_window_at(key, cost, window, now_ns))
    }
    fn version(&self) -> u64 {
        self.0.current_window().unwrap().0
    }
    fn refresh(&self) -> u64 {
        self.1.block_on(self.0.refresh_window()).unwrap()
    }
}

/// A fixed-seed generator: the same sequence on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn split_capacity<T>(r: Result<T, RedisLimitError>) -> Result<T, InsufficientCapacity> {
    match r {
        Ok(v) => Ok(v),
        Err(RedisLimitError::InsufficientCapacity(e)) => Err(e),
        Err(e) => panic!("Redis failed: {e}"),
    }
}

/// The window limiter `redis` (a fresh prefix, client time) against the
/// memory limiter, field for field: random checks (and batches) of a few
/// keys (and rarely touched ones) as time moves on, with a change of
/// quota every so often (mostly another `L` with the same `W`: the counts
/// carry over; sometimes another `W`: every key starts afresh). `new`
/// builds a window of `L` per `W`. Some checks are under a key's own
/// window (one of three plans: two of the first `W`, one of another),
/// moving keys to and from the limiter's quota. Every third change is made by `other`
/// (another limiter on the same prefix, on its own connection) when
/// given, and read by `redis` from the quota record.
pub fn windows_match_memory<A: Algorithm + PartialEq, L: WindowOps<A>>(
    initial: A,
    new: fn(u64, Duration) -> A,
    redis: &L,
    other: Option<&L>,
    seed: u64,
    steps: usize,
) where
    A::State: ratelimit_memory::Word,
{
    const S: u64 = 1_000_000_000;
    let clock = Arc::new(ratelimit_core::ManualClock::new(1_000 * S));
    let memory = ratelimit_memory::KeyedLimiter::<String, _, _>::builder(initial)
        .clock(Arc::clone(&clock))
        .build();
    let mut rng = Rng(seed);
    let (mut changes, mut resets, mut batches, mut by_other) = (0_u64, 0, 0, 0);
    let mut window = initial.to_any().period_ns();
    let plans = [
        new(3, Duration::from_nanos(window)),
        new(9, Duration::from_nanos(window)),
        new(4, Duration::from_nanos(window / 2)),
    ];
    let mut owns = 0;
    let key_of = |rng: &mut Rng| {
        if rng.below(10) == 0 {
            format!("rare{}", rng.below(200))
        } else {
            format!("k{}", rng.below(12))
        }
    };
    for i in 0..steps {
        clock.advance(Duration::from_nanos(rng.below(60_000_000)));
        let now = clock.now_ns();
        match rng.below(25) {
            0 => {
                if rng.below(4) == 0 {
                    window = 500_000_000 * (1 + rng.below(3));
                    resets += 1;
                }
                let to = new(1 + rng.below(8), Duration::from_nanos(window));
                memory.reconfigure(to, Strategy::KeepConsumed);
                match other {
                    Some(o) if changes % 3 == 2 => {
                        o.reconfigure_window_at(to, now).unwrap();
                        // A process that has not met a key stored under
                        // the change decides untouched keys with its older
                        // quota until it does (or refreshes): the memory
                        // limiter, one process, has no such lag.
                        assert_eq!(redis.refresh(), changes + 1);
                        by_other += 1;
                    }
                    _ => redis.reconfigure_window_at(to, now).unwrap(),
                }
                changes += 1;
            }
            1 | 2 => {
                let names: Vec<String> = (0..1 + rng.below(4)).map(|_| key_of(&mut rng)).collect();
                let requests: Vec<(&str, u64)> =
                    names.iter().map(|k| (k.as_str(), rng.below(4))).collect();
                let got = redis.batch_at(&requests, now).unwrap();
                for ((key, cost), got) in requests.iter().zip(got) {
                    let want = memory.check_n(*key, *cost);
                    assert_eq!(got, want, "step {i}: batch {key} cost {cost} at {now}");
                }
                batches += 1;
            }
            3..=6 => {
                // Plan keys overlap the others: keys move both ways.
                let key = format!("k{}", rng.below(6));
                let plan = &plans[rng.below(3) as usize];
                let cost = rng.below(5);
                let want = memory.check_with_quota(&key, cost, plan);
                let got = split_capacity(redis.check_own_at(&key, cost, plan, now));
                assert_eq!(got, want, "step {i}: own {key} cost {cost} at {now}");
                owns += 1;
            }
            _ => {
                let key = key_of(&mut rng);
                let cost = rng.below(5);
                let want = memory.check_n(&key, cost);
                let got = split_capacity(redis.check_at(&key, cost, now));
                assert_eq!(got, want, "step {i}: check {key} cost {cost} at {now}");
            }
        }
    }
    assert!(
        changes > steps as u64 / 40 && resets > 0 && batches > 0 && owns > 0,
        "{changes} {resets} {batches} {owns}"
    );
    if other.is_some() {
        assert!(by_other > 0);
    }
    assert_eq!(redis.version(), changes);
}
