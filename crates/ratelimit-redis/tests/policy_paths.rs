//! The quota-change conformance scenarios (`policies-*.jsonl.gz`) on each
//! way the scripts run (`ServerScripts::Functions` and `::Eval`), through
//! the sync and the async limiter, field for field. (`tests/policies.rs`
//! runs them on the default, `Auto`; the adapters below are its own.)

#![allow(clippy::std_instead_of_core)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{
    AnyAlgorithm, Decision, InsufficientCapacity, Quota, Reservation, Shaping, Strategy,
};
use ratelimit_redis::{
    AsyncRedisConnection, AsyncRedisLimiter, RedisLimitError, RedisLimiter, RedisPool,
    ServerScripts, TimeSource,
};
use ratelimit_replay::{Backend, Mismatch, Scenario, assert_every_policy_scenario, run_scenario};
use ratelimit_testkit::RedisServer;

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
struct Sync<A: Shaping>(RedisLimiter<A>);

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
struct Async<A: Shaping>(AsyncRedisLimiter<A>, Arc<tokio::runtime::Runtime>);

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
fn client_time() -> TimeSource {
    TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    }
}

fn run_sync(pool: &RedisPool, file: &str, s: &Scenario) -> Result<(), Box<Mismatch>> {
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

fn run_async(
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

fn on_path(scripts: ServerScripts) {
    let server = RedisServer::start();
    let pool = RedisPool::builder(&server.url())
        .server_scripts(scripts)
        .build()
        .unwrap();
    assert_every_policy_scenario(|file, s| run_sync(&pool, file, s));
    assert_eq!(pool.uses_functions(), scripts == ServerScripts::Functions);
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let conn = rt
        .block_on(
            AsyncRedisConnection::builder(&server.url())
                .server_scripts(scripts)
                .build(),
        )
        .unwrap();
    assert_every_policy_scenario(|file, s| run_async(&conn, &rt, file, s));
    assert_eq!(conn.uses_functions(), scripts == ServerScripts::Functions);
}

#[test]
fn every_policy_scenario_on_functions() {
    on_path(ServerScripts::Functions);
}

#[test]
fn every_policy_scenario_on_evalsha() {
    on_path(ServerScripts::Eval);
}
