//! What Redis deployments do to a limiter: a server killed mid-run and
//! restarted, a hung server, `SCRIPT FLUSH`, `maxmemory` with
//! `noeviction`, passwords. Each test prints what it measured. The
//! killed, hung and flushed server bodies run against the sync limiter
//! (pool) and the async one (one shared connection).

#![allow(clippy::std_instead_of_core)]

mod support;

use std::time::{Duration, Instant};

use ratelimit_core::{Quota, Rate, Reason};
use ratelimit_redis::{
    AsyncRedisConnection, FailurePolicy, RedisLimitError, RedisLimiter, RedisLimiterBuilder,
    RedisPool, TokenBucket, TokenBucketRedis, Transport,
};
use ratelimit_testkit::RedisServer;
use support::{AsyncFactory, Factory, Limit};

const S: u64 = 1_000_000_000;
const TIMEOUT: Duration = Duration::from_millis(200);
/// How long a wait for something that must happen may last before the test
/// fails instead of hanging: a liveness bound, never a speed goal.
const LIVENESS: Duration = Duration::from_secs(60);

fn pool(server: &RedisServer) -> RedisPool {
    support::pool_with_timeout(server, TIMEOUT)
}

fn builder<C: Transport>(policy: FailurePolicy) -> RedisLimiterBuilder<TokenBucket, C> {
    RedisLimiter::builder(TokenBucket::new(Quota::new(3, Rate::per_hour(1)).unwrap()))
        .prefix(format!("{policy:?}"))
        .failure_policy(policy)
        // Every call tries Redis here: the breaker has tests of its own.
        .circuit_breaker(None)
}

fn limiter(pool: &RedisPool, policy: FailurePolicy) -> TokenBucketRedis {
    builder(policy).build(pool.clone()).unwrap()
}

/// The async limiter's connection, with the same timeouts as `pool`.
fn async_factory(server: &RedisServer) -> AsyncFactory {
    support::async_with_timeout(server, TIMEOUT)
}

#[test]
fn killed_then_restarted_server() {
    let mut server = RedisServer::start();
    let pool = pool(&server);
    killed_then_restarted(&mut server, &pool);
}

#[test]
fn killed_then_restarted_server_async() {
    let mut server = RedisServer::start();
    let factory = async_factory(&server);
    killed_then_restarted(&mut server, &factory);
}

fn killed_then_restarted<F: Factory>(server: &mut RedisServer, factory: &F) {
    let policies = [
        FailurePolicy::ReturnError,
        FailurePolicy::FailClosed,
        FailurePolicy::FailOpen,
        FailurePolicy::Fallback,
    ];
    let limiters: Vec<_> = policies
        .iter()
        .map(|&p| factory.limit(builder(p)))
        .collect();
    for l in &limiters {
        assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
    }

    server.kill();
    // Which answer each policy gives, and how many: no timing. (A call
    // that hung would hang the test; how fast the calls return is a
    // benchmark's question, not this test's.)
    // Return the error: typed, no panic.
    for _ in 0..3 {
        let e = limiters[0].check("k").unwrap_err();
        assert!(
            matches!(
                e,
                RedisLimitError::Connect { .. } | RedisLimitError::ConnectionLost(_)
            ),
            "{e}"
        );
        assert!(e.is_redis_failure());
    }
    let d = limiters[1].check("k").unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reason, Reason::FailClosed);
    let d = limiters[2].check("k").unwrap();
    assert!(d.allowed);
    assert_eq!(d.reason, Reason::FailOpen);
    // The local fallback enforces the same quota, on its own.
    let fallback: Vec<_> = (0..4).map(|_| limiters[3].check("k").unwrap()).collect();
    assert!(fallback.iter().all(|d| d.reason == Reason::Fallback));
    assert_eq!(
        fallback.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, true, true, false]
    );
    // A cost above the capacity is still the caller's error, not a policy.
    assert!(matches!(
        limiters[2].check_n("k", 4),
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
    assert_eq!(limiters[3].stats().policy_decisions, 4);

    // Restarted (empty: no persistence): the same pool recovers by itself.
    server.restart();
    // A liveness bound only (a broken reconnect must fail, not hang):
    // far above any scheduling delay, and never reached by a working one.
    let t = Instant::now();
    let mut failed = 0;
    let recovered = loop {
        match limiters[0].check("k") {
            Ok(d) => break d,
            Err(_) => failed += 1,
        }
        assert!(t.elapsed() < LIVENESS, "no recovery");
    };
    eprintln!(
        "restarted: {failed} failed calls, recovered in {:?}",
        t.elapsed()
    );
    assert_eq!(recovered.reason, Reason::Quota);
    // The state was lost with the server: a full bucket again.
    assert_eq!(recovered.remaining, 2);
    for l in &limiters[1..] {
        assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
    }
}

#[test]
fn hung_server_times_out_and_is_not_retried() {
    let server = RedisServer::start();
    let pool = pool(&server);
    hung_server(&server, &pool);
}

#[test]
fn hung_server_times_out_and_is_not_retried_async() {
    let server = RedisServer::start();
    let factory = async_factory(&server);
    hung_server(&server, &factory);
}

fn hung_server<F: Factory>(server: &RedisServer, factory: &F) {
    let l = factory.limit(builder(FailurePolicy::ReturnError));
    let now = 100 * S;
    assert_eq!(l.check_at("k", 1, now).unwrap().remaining, 2);
    server.pause();
    // The answer is what matters: a timeout (the kind of error, whose
    // outcome is unknown), not a hang and not a retry. How long it took is
    // printed, not asserted: a loaded machine can deschedule the caller.
    let t = Instant::now();
    let e = l.check_at("k", 1, now).unwrap_err();
    let took = t.elapsed();
    server.resume();
    eprintln!("hung server: {e} after {took:?}");
    assert!(matches!(e, RedisLimitError::Timeout { .. }), "{e}");
    assert!(e.outcome_unknown());
    // The request reached Redis and counted once it woke up: retrying it
    // would have counted it twice. The woken server answers the stale
    // request and this one in either order, so read until it has counted
    // (bounded), then demand exactly one count.
    let deadline = Instant::now() + LIVENESS;
    let mut d_at = l.check_at("k", 0, now).unwrap();
    while d_at.remaining == 2 && Instant::now() < deadline {
        std::thread::yield_now();
        d_at = l.check_at("k", 0, now).unwrap();
    }
    assert_eq!(
        d_at.remaining, 1,
        "the timed-out request counted exactly once"
    );
}

#[test]
fn script_flush_is_transparent() {
    let server = RedisServer::start();
    let pool = pool(&server);
    script_flush(&server, &pool);
}

#[test]
fn script_flush_is_transparent_async() {
    let server = RedisServer::start();
    let factory = async_factory(&server);
    script_flush(&server, &factory);
}

fn script_flush<F: Factory>(server: &RedisServer, factory: &F) {
    let l = factory.limit(builder(FailurePolicy::ReturnError));
    assert_eq!(l.check_at("k", 1, S).unwrap().remaining, 2);
    assert_eq!(server.cli(&["script", "flush"]).trim(), "OK");
    assert_eq!(l.check_at("k", 1, S).unwrap().remaining, 1);
    assert_eq!(
        l.check_batch_at(&[("k", 1)], S).unwrap()[0]
            .unwrap()
            .remaining,
        0
    );
    assert_eq!(server.cli(&["script", "flush"]).trim(), "OK");
    assert!(
        l.reserve_at("k", 1, Some(0), S)
            .unwrap()
            .retry_after()
            .is_some()
    );
}

#[test]
fn maxmemory_with_noeviction_is_a_clear_error() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let pool = pool(&server);
    let l = limiter(&pool, FailurePolicy::ReturnError);
    assert!(l.check("before").unwrap().allowed);
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // 4 MiB of data, then a limit below it: Redis refuses every write.
    let _: () = redis::cmd("SET")
        .arg("filler")
        .arg(vec![b'x'; 4 << 20])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("2mb")
        .query(&mut con)
        .unwrap();
    let e = l.check("after").unwrap_err();
    eprintln!("maxmemory: {e}");
    assert!(matches!(e, RedisLimitError::OutOfMemory(_)), "{e}");
    assert!(e.to_string().contains("out of memory"));
    // The policy applies to it like to any Redis failure.
    let open = limiter(&pool, FailurePolicy::FailOpen);
    assert_eq!(open.check("after").unwrap().reason, Reason::FailOpen);
}

#[test]
fn passwords_in_the_url() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    // The right password (from the URL) works.
    let l = limiter(&pool(&server), FailurePolicy::ReturnError);
    assert!(l.check("k").unwrap().allowed);
    // A wrong one is refused when the pool is built, clearly.
    let wrong = format!("redis://:nope@127.0.0.1:{}/", server.port);
    let e = RedisPool::open(&wrong).unwrap_err();
    eprintln!("wrong password: {e}");
    assert!(matches!(e, RedisLimitError::Authentication(_)), "{e}");
    assert!(e.to_string().contains("credentials"));
    // None at all: refused when the pool is built too (a PING probe).
    let e = RedisPool::open(&format!("redis://127.0.0.1:{}/", server.port)).unwrap_err();
    eprintln!("no password: {e}");
    assert!(matches!(e, RedisLimitError::Authentication(_)), "{e}");
}

#[test]
fn passwords_in_the_url_async() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let factory = async_factory(&server);
    let l = factory.limit(builder(FailurePolicy::ReturnError));
    assert!(l.check("k").unwrap().allowed);
    let wrong = format!("redis://:nope@127.0.0.1:{}/", server.port);
    let e = factory
        .rt
        .block_on(AsyncRedisConnection::open(&wrong))
        .unwrap_err();
    eprintln!("wrong password (async): {e}");
    assert!(matches!(e, RedisLimitError::Authentication(_)), "{e}");
}
