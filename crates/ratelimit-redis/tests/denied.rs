//! The denied-key cache against a real `redis-server`: once Redis denies a
//! key, checks of that key with at least that cost are denied locally
//! (Redis's script count does not move) until the denial's `retry_after`
//! has passed on the limiter's monotonic clock (a `ManualClock` here:
//! time passes when the test says so). Smaller costs, other keys and
//! explicit-time calls still go to Redis. Sync (pool) and async bodies.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{ManualClock, Quota, Rate, Reason};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TokenBucket};
use ratelimit_testkit::RedisServer;
use support::{AsyncFactory, Factory, script_calls};

fn denied_locally_until_retry_after<F: Factory>(server: &RedisServer, factory: &F) {
    let clock = Arc::new(ManualClock::new(1_000));
    let l = factory.limit(
        RedisLimiter::<_, F::Conn>::builder(TokenBucket::new(
            Quota::new(2, Rate::per_hour(1)).unwrap(),
        ))
        .prefix("denied")
        .cache_denials(1000)
        .monotonic_clock(Arc::clone(&clock)),
    );
    // A limiter without the cache on the same keys: Redis's own answer.
    let truth = factory.limit(
        RedisLimiter::<_, F::Conn>::builder(TokenBucket::new(
            Quota::new(2, Rate::per_hour(1)).unwrap(),
        ))
        .prefix("denied"),
    );
    assert!(l.check("k").unwrap().allowed);
    assert!(l.check("k").unwrap().allowed);
    let denied = l.check("k").unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.reason, Reason::Quota);
    let d = denied.retry_after.unwrap();
    assert!(d > Duration::from_secs(3000), "{d:?}");

    // Cost 1 and more: denied here, nothing sent, fields of Redis's answer.
    let sent = script_calls(server);
    for cost in [1, 1, 2, 1, 2] {
        let local = l.check_n("k", cost).unwrap();
        assert!(!local.allowed);
        assert_eq!(local.reason, Reason::Quota);
        assert_eq!(local.retry_after, Some(d));
        assert_eq!(local.remaining, denied.remaining);
        assert_eq!(local.limit, 2);
    }
    assert_eq!(script_calls(server), sent, "the cache sent nothing");
    assert_eq!(l.stats().cached_denials, 5);
    // Redis agrees with every one of them.
    assert!(!truth.check_n("k", 1).unwrap().allowed);
    let sent = sent + 1;

    // A cost above the capacity is still the caller's error.
    assert!(matches!(
        l.check_n("k", 3),
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
    // A smaller cost and another key go to Redis.
    assert!(l.check_n("k", 0).unwrap().allowed);
    assert!(l.check("other").unwrap().allowed);
    assert_eq!(script_calls(server), sent + 2);

    // The cached denial ages with the clock, and ends at send time + d.
    clock.advance(d - Duration::from_nanos(1));
    let local = l.check("k").unwrap();
    assert_eq!(local.retry_after, Some(Duration::from_nanos(1)));
    assert_eq!(script_calls(server), sent + 2);
    clock.advance(Duration::from_nanos(1));
    // Redis is asked again (its own clock has barely moved: still denied,
    // and cached again).
    let again = l.check("k").unwrap();
    assert!(!again.allowed);
    assert_eq!(script_calls(server), sent + 3);
    assert!(!l.check("k").unwrap().allowed);
    assert_eq!(script_calls(server), sent + 3);
    assert_eq!(l.stats().cached_denials, 7);
}

#[test]
fn denied_keys_on_the_pool() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    denied_locally_until_retry_after(&server, &pool);
}

#[test]
fn denied_keys_on_the_async_connection() {
    let server = RedisServer::start();
    let factory = AsyncFactory::open(&server.url());
    denied_locally_until_retry_after(&server, &factory);
}

/// Off by default: every check goes to Redis.
#[test]
fn off_by_default() {
    let server = RedisServer::start();
    let l = RedisLimiter::builder(TokenBucket::new(Quota::new(1, Rate::per_hour(1)).unwrap()))
        .build(RedisPool::open(&server.url()).unwrap())
        .unwrap();
    assert!(l.check("k").unwrap().allowed);
    let sent = script_calls(&server);
    for _ in 0..3 {
        assert!(!l.check("k").unwrap().allowed);
    }
    assert_eq!(script_calls(&server), sent + 3);
    assert_eq!(l.stats().cached_denials, 0);
}

/// A refund through the limiter forgets the key's cached denial: the
/// refunded cost is admitted at once, by Redis, not denied from the cache.
#[test]
fn a_refund_forgets_the_cached_denial() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::new(1_000));
    let l = RedisLimiter::builder(TokenBucket::new(Quota::new(1, Rate::per_hour(1)).unwrap()))
        .cache_denials(1000)
        .monotonic_clock(Arc::clone(&clock))
        .build(RedisPool::open(&server.url()).unwrap())
        .unwrap();
    let (admitted, receipt) = l.check_refundable("k", 1).unwrap();
    assert!(admitted.allowed);
    assert!(!l.check("k").unwrap().allowed, "Redis denies");
    let sent = script_calls(&server);
    assert!(!l.check("k").unwrap().allowed, "the cache denies");
    assert_eq!(script_calls(&server), sent, "from the cache");
    assert!(
        l.refund(receipt.expect("an admission has a receipt"))
            .unwrap()
    );
    let refunded = script_calls(&server);
    let after = l.check("k").unwrap();
    assert!(after.allowed, "the refunded token is admitted: {after:?}");
    assert_eq!(
        script_calls(&server),
        refunded + 1,
        "the check went to Redis"
    );
}
