//! A pool whose Redis refuses connections (killed, not yet restarted) does
//! not make its calls wait out the connect timeout: with a 60 s connect
//! timeout, twenty calls during the outage all fail with `Connect` (or
//! `ConnectionLost` for the one in flight) well within a liveness bound
//! that a single waited-out timeout would exceed; and the first call after
//! the restart is answered by Redis. No time is measured: the bound only
//! turns a hang into a failure.

#![allow(clippy::std_instead_of_core)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ratelimit_core::{Quota, Rate, Reason};
use ratelimit_redis::{FailurePolicy, RedisLimitError, RedisLimiter, RedisPool};
use ratelimit_testkit::RedisServer;

/// Longer than the liveness bound: a call that waited it out fails the test.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A liveness bound, never a speed goal.
const LIVENESS: Duration = Duration::from_secs(30);

#[test]
fn calls_fail_at_once_while_redis_refuses_and_reach_it_after_the_restart() {
    let mut server = RedisServer::start();
    let pool = RedisPool::builder(&server.url())
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .unwrap();
    let limiter = RedisLimiter::builder(ratelimit_core::TokenBucket::new(
        Quota::new(100, Rate::per_hour(1)).unwrap(),
    ))
    .failure_policy(FailurePolicy::ReturnError)
    // Every call goes to the pool: the breaker would hide the wait.
    .circuit_breaker(None)
    .build(pool)
    .unwrap();
    assert!(limiter.check("k").unwrap().allowed);

    server.kill();
    let (tx, rx) = mpsc::channel();
    let outage = limiter.clone();
    thread::spawn(move || {
        let errors: Vec<RedisLimitError> =
            (0..20).map(|_| outage.check("k").unwrap_err()).collect();
        tx.send(errors).unwrap();
    });
    let errors = rx
        .recv_timeout(LIVENESS)
        .expect("calls waited for a connection while Redis refused them");
    for e in &errors[1..] {
        assert!(matches!(e, RedisLimitError::Connect { .. }), "{e}");
    }
    assert!(
        matches!(
            errors[0],
            RedisLimitError::Connect { .. } | RedisLimitError::ConnectionLost(_)
        ),
        "{}",
        errors[0]
    );

    server.restart();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(limiter.check("k")).unwrap());
    let d = rx
        .recv_timeout(LIVENESS)
        .expect("the call after the restart hung")
        .unwrap();
    // The new server is empty: a full bucket, decided by Redis.
    assert_eq!(
        (d.allowed, d.remaining, d.reason),
        (true, 99, Reason::Quota)
    );
}
