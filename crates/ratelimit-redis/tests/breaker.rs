//! The circuit breaker against a real `redis-server` that is killed and
//! restarted (issue: a Redis outage must not cost every call the connect
//! timeout). Time for the breaker is a `ManualClock`: the cool-down passes
//! when the test says so, never by sleeping. The bodies run on the sync
//! limiter (pool) and the async one (one connection).

#![allow(clippy::std_instead_of_core)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{ManualClock, Quota, Rate, Reason};
use ratelimit_redis::{
    CircuitBreaker, FailurePolicy, Health, RedisLimitError, RedisLimiter, RedisPool, TokenBucket,
};
use ratelimit_testkit::RedisServer;
use support::{AsyncFactory, Factory, script_calls};

const TIMEOUT: Duration = Duration::from_millis(200);
const COOL_DOWN: Duration = Duration::from_secs(30);

fn pool(server: &RedisServer) -> RedisPool {
    support::pool_with_timeout(server, TIMEOUT)
}

fn async_factory(server: &RedisServer) -> AsyncFactory {
    support::async_with_timeout(server, TIMEOUT)
}

fn opens_short_circuits_probes_and_closes<F: Factory>(
    server: &mut RedisServer,
    factory: &F,
    policy: FailurePolicy,
) {
    let clock = Arc::new(ManualClock::new(0));
    let l = factory.limit(
        RedisLimiter::builder(TokenBucket::new(Quota::new(5, Rate::per_hour(1)).unwrap()))
            .prefix(format!("breaker:{policy:?}"))
            .failure_policy(policy)
            .circuit_breaker(Some(CircuitBreaker::new(3, COOL_DOWN)))
            .monotonic_clock(Arc::clone(&clock)),
    );
    assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
    assert_eq!(l.health(), Health::Up);

    server.kill();
    // Three calls try Redis and fail; the third opens the circuit.
    for n in 1..=3u32 {
        let answer = l.check("k");
        assert!(
            matches!(&answer, Err(e) if e.is_policy_failure())
                // Tried and failed: the policy's own reason.
                || matches!(&answer, Ok(d) if matches!(d.reason, Reason::Fallback | Reason::FailClosed)),
            "{answer:?}"
        );
        if n < 3 {
            assert_eq!(
                l.health(),
                Health::Failing {
                    consecutive_failures: n
                }
            );
        }
    }
    let stats = l.stats();
    assert_eq!((stats.redis_failures, stats.circuit_opened), (3, 1));
    assert_eq!(
        l.health(),
        Health::CircuitOpen {
            retry_in: COOL_DOWN
        }
    );
    assert!(!l.health().redis_in_use());

    // Redis is back, but the circuit is open: calls are answered by the
    // policy at once and none reaches Redis.
    server.restart();
    let sent = script_calls(server);
    for _ in 0..10 {
        match l.check("k") {
            // Not tried: the reason says the breaker answered.
            Ok(d) => assert_eq!(d.reason, Reason::CircuitOpen),
            Err(e) => assert!(
                matches!(e, RedisLimitError::CircuitOpen { retry_in } if retry_in == COOL_DOWN),
                "{e}"
            ),
        }
    }
    assert_eq!(script_calls(server), sent, "the open circuit sent nothing");
    assert_eq!(l.stats().short_circuited, 10);
    if policy != FailurePolicy::ReturnError {
        assert_eq!(l.stats().policy_decisions, 13);
    }

    // After the cool-down, one probe goes: Redis answers, the circuit
    // closes, Redis decides again.
    clock.advance(COOL_DOWN);
    assert_eq!(l.health(), Health::Probing);
    // (The async connection reports its last failed reconnection first:
    // the probe connects a second time before it counts as failed.)
    assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
    assert_eq!(l.health(), Health::Up);
    assert!(script_calls(server) > sent, "the probe reached Redis");
    assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
}

#[test]
fn breaker_on_the_pool() {
    let mut server = RedisServer::start();
    let pool = pool(&server);
    for policy in [FailurePolicy::Fallback, FailurePolicy::ReturnError] {
        opens_short_circuits_probes_and_closes(&mut server, &pool, policy);
    }
}

#[test]
fn breaker_on_the_async_connection() {
    let mut server = RedisServer::start();
    let factory = async_factory(&server);
    for policy in [FailurePolicy::ReturnError, FailurePolicy::FailClosed] {
        opens_short_circuits_probes_and_closes(&mut server, &factory, policy);
    }
}

/// A probe that fails opens the circuit for another cool-down.
#[test]
fn a_failed_probe_opens_again() {
    let mut server = RedisServer::start();
    let pool = pool(&server);
    let clock = Arc::new(ManualClock::new(0));
    let l = RedisLimiter::builder(TokenBucket::new(Quota::new(5, Rate::per_hour(1)).unwrap()))
        .failure_policy(FailurePolicy::FailOpen)
        .circuit_breaker(Some(CircuitBreaker::new(1, COOL_DOWN)))
        .monotonic_clock(Arc::clone(&clock))
        .build(pool)
        .unwrap();
    server.kill();
    assert_eq!(l.check("k").unwrap().reason, Reason::FailOpen);
    assert_eq!(l.stats().circuit_opened, 1);
    clock.advance(COOL_DOWN);
    // The probe: Redis still down.
    assert_eq!(l.check("k").unwrap().reason, Reason::FailOpen);
    assert_eq!(l.stats().redis_failures, 2);
    assert_eq!(l.stats().circuit_opened, 2);
    assert_eq!(
        l.health(),
        Health::CircuitOpen {
            retry_in: COOL_DOWN
        }
    );
    // The others are not sent: allowed (the policy), marked as the
    // breaker's answer.
    let d = l.check("k").unwrap();
    assert!(d.allowed);
    assert_eq!(d.reason, Reason::CircuitOpen);
    assert_eq!(l.stats().redis_failures, 2);
    assert_eq!(l.stats().short_circuited, 1);
    server.restart();
    clock.advance(COOL_DOWN);
    assert_eq!(l.check("k").unwrap().reason, Reason::Quota);
    assert_eq!(l.health(), Health::Up);
}

/// Without a breaker, every call tries Redis (the old behaviour).
#[test]
fn no_breaker_keeps_asking_redis() {
    let mut server = RedisServer::start();
    let pool = pool(&server);
    let l = RedisLimiter::builder(TokenBucket::new(Quota::new(5, Rate::per_hour(1)).unwrap()))
        .failure_policy(FailurePolicy::FailOpen)
        .circuit_breaker(None)
        .build(pool)
        .unwrap();
    server.kill();
    for _ in 0..6 {
        assert_eq!(l.check("k").unwrap().reason, Reason::FailOpen);
    }
    assert_eq!(l.stats().redis_failures, 6);
    assert_eq!(l.stats().short_circuited, 0);
    assert_eq!(
        l.health(),
        Health::Failing {
            consecutive_failures: 6
        }
    );
}
