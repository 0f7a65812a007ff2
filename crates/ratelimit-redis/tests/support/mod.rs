//! Test support: the servers and cluster of `ratelimit-testkit` (real
//! `redis-server` processes owned by the tests), the calls shared by the
//! sync and async limiters, and the replay adapter for the conformance
//! scenarios. A missing `redis-server` fails the tests: CI installs it.

#![allow(dead_code, unreachable_pub, clippy::std_instead_of_core)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{
    Algorithm, AnyAlgorithm, Decision, FixedWindow, InsufficientCapacity, LeakyBucket, Reservation,
    SlidingWindow, TokenBucket,
};
use ratelimit_redis::{
    AsyncRedisConnection, AsyncRedisLimiter, Health, RedisLimitError, RedisLimiter,
    RedisLimiterBuilder, RedisPool, Stats, TimeSource, Transport,
};
use ratelimit_replay::{Mismatch, Scenario, run_scenario};

/// The calls the shared test bodies make, on either limiter: the sync one
/// directly, the async one through `Blocking` (each call `block_on` a
/// tokio runtime), so one body tests both.
pub trait Limit {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError>;
    fn check(&self, key: &str) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError>;
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError>;
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError>;
    fn check_batch(
        &self,
        requests: &[(&str, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError>;
    fn stats(&self) -> Stats;
    fn health(&self) -> Health;
}

/// The four algorithms, with `reserve` where they shape (a window's
/// `reserve` is an error here: the limiter has no such method).
pub trait Alg: Algorithm {
    fn reserve_sync(
        l: &RedisLimiter<Self>,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError>;
    fn reserve_async(
        l: &AsyncRedisLimiter<Self>,
        rt: &tokio::runtime::Runtime,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError>;
}

macro_rules! shaping {
    ($($t:ty),*) => {$(
        impl Alg for $t {
            fn reserve_sync(
                l: &RedisLimiter<Self>,
                key: &str,
                cost: u64,
                max_wait_ns: Option<u64>,
                now_ns: u64,
            ) -> Result<Reservation, RedisLimitError> {
                l.reserve_at(key, cost, max_wait_ns, now_ns)
            }
            fn reserve_async(
                l: &AsyncRedisLimiter<Self>,
                rt: &tokio::runtime::Runtime,
                key: &str,
                cost: u64,
                max_wait_ns: Option<u64>,
                now_ns: u64,
            ) -> Result<Reservation, RedisLimitError> {
                rt.block_on(l.reserve_at(key, cost, max_wait_ns, now_ns))
            }
        }
    )*};
}

macro_rules! policing {
    ($($t:ty),*) => {$(
        impl Alg for $t {
            fn reserve_sync(
                _: &RedisLimiter<Self>,
                _: &str,
                _: u64,
                _: Option<u64>,
                _: u64,
            ) -> Result<Reservation, RedisLimitError> {
                Err(RedisLimitError::InvalidOption("a window cannot reserve".into()))
            }
            fn reserve_async(
                _: &AsyncRedisLimiter<Self>,
                _: &tokio::runtime::Runtime,
                _: &str,
                _: u64,
                _: Option<u64>,
                _: u64,
            ) -> Result<Reservation, RedisLimitError> {
                Err(RedisLimitError::InvalidOption("a window cannot reserve".into()))
            }
        }
    )*};
}

shaping!(TokenBucket, LeakyBucket);
policing!(FixedWindow, SlidingWindow);

impl<A: Alg> Limit for RedisLimiter<A> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        RedisLimiter::<A>::check_n(self, key, cost)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        RedisLimiter::<A>::check_at(self, key, cost, now_ns)
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        A::reserve_sync(self, key, cost, max_wait_ns, now_ns)
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        RedisLimiter::<A>::check_batch_at(self, requests, now_ns)
    }
    fn check_batch(
        &self,
        requests: &[(&str, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        RedisLimiter::<A>::check_batch(self, requests)
    }
    fn stats(&self) -> Stats {
        RedisLimiter::stats(self)
    }
    fn health(&self) -> Health {
        RedisLimiter::health(self)
    }
}

impl<L: Limit + ?Sized> Limit for Box<L> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        (**self).check_n(key, cost)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        (**self).check_at(key, cost, now_ns)
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        (**self).reserve_at(key, cost, max_wait_ns, now_ns)
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        (**self).check_batch_at(requests, now_ns)
    }
    fn check_batch(
        &self,
        requests: &[(&str, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        (**self).check_batch(requests)
    }
    fn stats(&self) -> Stats {
        (**self).stats()
    }
    fn health(&self) -> Health {
        (**self).health()
    }
}

/// A tokio runtime for the async limiter's tests driven from plain test
/// code (one worker thread runs the connection's tasks).
pub fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    )
}

/// The async limiter, each call run to completion on `rt`.
pub struct Blocking<A: Algorithm> {
    pub limiter: AsyncRedisLimiter<A>,
    pub rt: Arc<tokio::runtime::Runtime>,
}

impl<A: Alg> Limit for Blocking<A> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        self.rt.block_on(self.limiter.check_n(key, cost))
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        self.rt.block_on(self.limiter.check_at(key, cost, now_ns))
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        A::reserve_async(&self.limiter, &self.rt, key, cost, max_wait_ns, now_ns)
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.rt
            .block_on(self.limiter.check_batch_at(requests, now_ns))
    }
    fn check_batch(
        &self,
        requests: &[(&str, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.rt.block_on(self.limiter.check_batch(requests))
    }
    fn stats(&self) -> Stats {
        self.limiter.stats()
    }
    fn health(&self) -> Health {
        self.limiter.health()
    }
}

/// A limiter driven with explicit (client) time, for the replay runner.
pub struct ReplayAdapter<L>(pub L);

fn split<T>(
    r: Result<T, RedisLimitError>,
) -> Result<Result<T, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

impl<L: Limit> ratelimit_replay::Backend for ReplayAdapter<L> {
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
}

/// Builds the limiter a scenario runs on, from its options.
pub trait Factory {
    /// What the limiters send on.
    type Conn: Transport;
    fn limit<A: Alg>(&self, builder: RedisLimiterBuilder<A, Self::Conn>) -> Box<dyn Limit>;
}

impl Factory for RedisPool {
    type Conn = RedisPool;
    fn limit<A: Alg>(&self, builder: RedisLimiterBuilder<A, RedisPool>) -> Box<dyn Limit> {
        Box::new(builder.build(self.clone()).unwrap())
    }
}

/// A pool with both timeouts set to `timeout`.
pub fn pool_with_timeout(server: &ratelimit_testkit::RedisServer, timeout: Duration) -> RedisPool {
    RedisPool::builder(&server.url())
        .connect_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .unwrap()
}

/// The async limiter's connection with both timeouts set to `timeout`.
pub fn async_with_timeout(
    server: &ratelimit_testkit::RedisServer,
    timeout: Duration,
) -> AsyncFactory {
    let rt = runtime();
    let conn = rt
        .block_on(
            AsyncRedisConnection::builder(&server.url())
                .connect_timeout(timeout)
                .response_timeout(timeout)
                .build(),
        )
        .unwrap();
    AsyncFactory { conn, rt }
}

/// The async limiter on one shared connection.
pub struct AsyncFactory {
    pub conn: AsyncRedisConnection,
    pub rt: Arc<tokio::runtime::Runtime>,
}

impl AsyncFactory {
    pub fn open(url: &str) -> Self {
        let rt = runtime();
        let conn = rt.block_on(AsyncRedisConnection::open(url)).unwrap();
        Self { conn, rt }
    }

    /// One async connection to the cluster reachable through `urls`.
    pub fn cluster(urls: &[String]) -> Self {
        let rt = runtime();
        let conn = rt
            .block_on(AsyncRedisConnection::open_cluster(urls))
            .unwrap();
        assert!(conn.is_cluster());
        Self { conn, rt }
    }
}

impl Factory for AsyncFactory {
    type Conn = AsyncRedisConnection;
    fn limit<A: Alg>(
        &self,
        builder: RedisLimiterBuilder<A, AsyncRedisConnection>,
    ) -> Box<dyn Limit> {
        Box::new(Blocking {
            limiter: builder.build(self.conn.clone()).unwrap(),
            rt: Arc::clone(&self.rt),
        })
    }
}

/// Runs one conformance scenario of `file` on the limiters `factory`
/// builds, with client time and a prefix of its own.
pub fn run_one_on<F: Factory>(factory: &F, file: &str, s: &Scenario) -> Result<(), Box<Mismatch>> {
    // Replays keep state however long virtual time stands still.
    let time = TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    };
    let prefix = format!("parity:{file}:{}", s.id);
    let limiter = match s.any_algorithm().expect("scenario algorithm is valid") {
        AnyAlgorithm::TokenBucket(a) => factory.limit(
            RedisLimiter::<_, F::Conn>::builder(a)
                .prefix(prefix)
                .time_source(time),
        ),
        AnyAlgorithm::LeakyBucket(a) => factory.limit(
            RedisLimiter::<_, F::Conn>::builder(a)
                .prefix(prefix)
                .time_source(time),
        ),
        AnyAlgorithm::FixedWindow(a) => factory.limit(
            RedisLimiter::<_, F::Conn>::builder(a)
                .prefix(prefix)
                .time_source(time),
        ),
        AnyAlgorithm::SlidingWindow(a) => factory.limit(
            RedisLimiter::<_, F::Conn>::builder(a)
                .prefix(prefix)
                .time_source(time),
        ),
    };
    run_scenario(s, &mut ReplayAdapter(limiter))
}

/// Script calls that ran (`EVALSHA` or `FCALL`, whichever way the scripts
/// go; a `FCALL` answered `Function not found` did not run and is counted
/// by Redis as failed).
pub fn script_calls(server: &ratelimit_testkit::RedisServer) -> u64 {
    let stats = server.cli(&["info", "commandstats"]);
    let field = |line: &str, name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name))
            .map_or(0, |n| n.parse().unwrap())
    };
    ["cmdstat_evalsha:", "cmdstat_fcall:"]
        .iter()
        .filter_map(|head| stats.lines().find_map(|l| l.strip_prefix(head)))
        .map(|l| field(l, "calls=") - field(l, "failed_calls="))
        .sum()
}
