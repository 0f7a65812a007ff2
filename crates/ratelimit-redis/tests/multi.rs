//! Several limits on one request, all or nothing, in one script: the same
//! answers as the memory backend's `check_all`, field for field, over a
//! token bucket, a fixed window and a sliding window on one key; nothing
//! charged for a denied request; a cost above one limit; the errors before
//! anything is sent; the async connection.

#![allow(clippy::std_instead_of_core)]

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{FixedWindow, ManualClock, Quota, Rate, SlidingWindow, TokenBucket};
use ratelimit_memory::{KeyedLimiter, check_all};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TimeSource};
use ratelimit_testkit::RedisServer;

const S: u64 = 1_000_000_000;

fn client_time() -> TimeSource {
    TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    }
}

#[test]
fn three_limits_match_the_memory_backend_field_for_field() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let bucket = TokenBucket::new(Quota::new(3, Rate::per_second(2)).unwrap());
    let fixed = FixedWindow::per_second(5).unwrap();
    let sliding = SlidingWindow::new(7, Duration::from_millis(2500)).unwrap();
    let r_bucket = RedisLimiter::builder(bucket)
        .prefix("m-tb")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let r_fixed = RedisLimiter::builder(fixed)
        .prefix("m-fw")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let r_sliding = RedisLimiter::builder(sliding)
        .prefix("m-sw")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let m_bucket = KeyedLimiter::<String, _>::builder(bucket)
        .clock(Arc::clone(&clock))
        .build();
    let m_fixed = KeyedLimiter::<String, _>::builder(fixed)
        .clock(Arc::clone(&clock))
        .build();
    let m_sliding = KeyedLimiter::<String, _>::builder(sliding)
        .clock(Arc::clone(&clock))
        .build();

    // A deterministic walk through time and costs, on two keys; costs up
    // to 8 exceed every limit now and then.
    let mut x: u64 = 7;
    let mut now = 10 * S;
    let (mut allowed, mut denied) = (0, 0);
    for step in 0..400 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        now += (x >> 33) % (S / 3);
        let key = if step % 3 == 0 { "a" } else { "b" };
        let costs = [
            (x >> 8) % 3,
            (x >> 12) % 4,
            if (x >> 16) % 13 == 0 {
                8
            } else {
                (x >> 20) % 3
            },
        ];
        clock.set_ns(now);
        let want = check_all([
            &m_bucket.limit(key, costs[0]),
            &m_fixed.limit(key, costs[1]),
            &m_sliding.limit(key, costs[2]),
        ]);
        let got = pool
            .check_all_at(
                [
                    r_bucket.limit(key, costs[0]).unwrap(),
                    r_fixed.limit(key, costs[1]).unwrap(),
                    r_sliding.limit(key, costs[2]).unwrap(),
                ],
                now,
            )
            .unwrap();
        assert_eq!(got, want, "step {step} at {now} on {key} with {costs:?}");
        if got.allowed() {
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    assert!(
        allowed > 50 && denied > 50,
        "{allowed} allowed, {denied} denied"
    );
}

#[test]
fn a_denied_request_charges_nothing_and_says_which_limit_denied() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let per_second = RedisLimiter::builder(TokenBucket::new(
        Quota::new(2, Rate::per_second(2)).unwrap(),
    ))
    .prefix("s")
    .time_source(client_time())
    .build(pool.clone())
    .unwrap();
    let per_hour = RedisLimiter::builder(FixedWindow::per_hour(3).unwrap())
        .prefix("h")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let t = 3600 * S;
    let both = |cost: u64, now: u64| {
        pool.check_all_at(
            [
                per_second.limit("u", cost).unwrap(),
                per_hour.limit("u", cost).unwrap(),
            ],
            now,
        )
        .unwrap()
    };
    assert!(both(1, t).allowed());
    assert!(both(1, t).allowed());
    let d = both(1, t);
    assert!(!d.allowed());
    assert_eq!(d.denied_by().collect::<Vec<_>>(), [0]);
    // The hour's window was not charged for the denied request.
    assert_eq!(d.limits[1].remaining, 1);
    assert!(d.limits[1].allowed);
    assert_eq!(d.decision.retry_after, Some(Duration::from_millis(500)));
    // A second later the bucket has room, the window one unit left.
    assert!(both(1, t + S).allowed());
    let d = both(1, t + 2 * S);
    assert_eq!(d.denied_by().collect::<Vec<_>>(), [1]);
    assert_eq!(
        d.limits[0].remaining, 2,
        "the bucket refilled and was not charged"
    );
    assert_eq!(
        d.decision.retry_after,
        Some(Duration::from_secs(3600) - Duration::from_secs(2))
    );
    // A cost above one limit: never, nothing charged.
    let d = both(3, t + 3 * S);
    assert_eq!(d.denied_by().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(d.decision.retry_after, None);

    // Errors before anything is sent.
    let invalid = |r: Result<_, RedisLimitError>| {
        assert!(matches!(r, Err(RedisLimitError::InvalidOption(_))), "{r:?}");
    };
    invalid(pool.check_all::<0>([]).map(drop));
    invalid(
        pool.check_all([
            per_hour.limit("u", 1).unwrap(),
            per_hour.limit("u", 1).unwrap(),
        ])
        .map(drop),
    );
}

#[test]
fn async_check_all() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(ratelimit_redis::AsyncRedisConnection::open(&server.url()))
        .unwrap();
    let a = RedisLimiter::builder(FixedWindow::per_hour(1).unwrap())
        .prefix("a")
        .build(conn.clone())
        .unwrap();
    let b = RedisLimiter::builder(SlidingWindow::per_hour(5).unwrap())
        .prefix("b")
        .build(conn.clone())
        .unwrap();
    rt.block_on(async {
        let d = conn
            .check_all([a.limit("k", 1).unwrap(), b.limit("k", 1).unwrap()])
            .await
            .unwrap();
        assert!(d.allowed());
        let d = conn
            .check_all([a.limit("k", 1).unwrap(), b.limit("k", 1).unwrap()])
            .await
            .unwrap();
        assert_eq!(d.denied_by().collect::<Vec<_>>(), [0]);
        assert_eq!(b.inspect("k").await.unwrap().window.unwrap().count, 1);
    });
}

/// A limiter whose quota changed is refused as a limit of a multi-limit
/// check, before anything is sent: the script would decide it with the
/// quota the limiter was built with, which it knows to be stale.
#[test]
fn a_limiter_whose_quota_changed_is_refused_not_decided_stale() {
    use ratelimit_core::Strategy;

    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let bucket = RedisLimiter::builder(TokenBucket::new(
        Quota::new(3, Rate::per_second(2)).unwrap(),
    ))
    .prefix("rq-tb")
    .time_source(client_time())
    .build(pool.clone())
    .unwrap();
    let window = RedisLimiter::builder(FixedWindow::per_second(5).unwrap())
        .prefix("rq-fw")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let d = pool
        .check_all_at(
            [bucket.limit("k", 1).unwrap(), window.limit("k", 1).unwrap()],
            S,
        )
        .unwrap();
    assert!(d.allowed());
    bucket
        .reconfigure_at(
            Quota::new(1, Rate::per_second(1)).unwrap(),
            Strategy::KeepConsumed,
            2 * S,
        )
        .unwrap();
    window
        .reconfigure_window_at(FixedWindow::per_second(1).unwrap(), 2 * S)
        .unwrap();
    for err in [
        bucket.limit("k", 1).unwrap_err(),
        window.limit("k", 1).unwrap_err(),
    ] {
        assert!(
            matches!(&err, RedisLimitError::InvalidOption(m) if m.contains("quota has changed")),
            "{err}"
        );
    }
}
