//! Refunds: a refundable check's receipt gives its cost back once, exactly
//! or not at all, bounded (a bucket never fuller than fresh, nothing given
//! back twice or after an admission stacked on a bucket's), for the four
//! algorithms, sync and async, against real Redis with client time.

#![allow(clippy::std_instead_of_core)]

use std::time::Duration;

use ratelimit_core::{FixedWindow, LeakyBucket, Quota, Rate, SlidingWindow, TokenBucket};
use ratelimit_redis::{RedisLimiter, RedisPool, TimeSource};
use ratelimit_testkit::RedisServer;

const S: u64 = 1_000_000_000;

fn client_time() -> TimeSource {
    TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    }
}

#[test]
fn buckets_are_refunded_while_the_key_holds_the_admission() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let quota = Quota::new(3, Rate::per_second(1)).unwrap();
    let token = RedisLimiter::builder(TokenBucket::new(quota))
        .prefix("tb")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let t0 = 1000 * S;
    let (d, receipt) = token.check_refundable_at("k", 2, t0).unwrap();
    assert_eq!(d.remaining, 1);
    let receipt = receipt.expect("an admission has a receipt");
    assert_eq!(receipt.cost(), 2);
    assert!(token.refund_at(receipt, t0).unwrap());
    assert_eq!(token.check_at("k", 0, t0).unwrap().remaining, 3);

    // An admission stacked on top: the refund gives nothing back.
    let (_, first) = token.check_refundable_at("k", 2, t0).unwrap();
    assert!(token.check_at("k", 1, t0).unwrap().allowed);
    assert!(!token.refund_at(first.unwrap(), t0).unwrap());
    assert_eq!(token.check_at("k", 0, t0).unwrap().remaining, 0);

    // A refund long after never makes the bucket fuller than fresh.
    let (_, late) = token.check_refundable_at("j", 3, t0).unwrap();
    assert!(token.refund_at(late.unwrap(), t0 + 10 * S).unwrap());
    let d = token.check_at("j", 0, t0 + 10 * S).unwrap();
    assert_eq!((d.remaining, d.reset_after), (3, Duration::ZERO));

    // Denials and zero costs carry no receipt.
    assert!(token.check_refundable_at("k", 1, t0).unwrap().1.is_none());
    assert!(token.check_refundable_at("z", 0, t0).unwrap().1.is_none());

    // A receipt of another limiter gives nothing back.
    let leaky = RedisLimiter::builder(LeakyBucket::new(quota))
        .prefix("lb")
        .time_source(client_time())
        .build(pool)
        .unwrap();
    let (_, r) = leaky.check_refundable_at("k", 1, t0).unwrap();
    let r = r.unwrap();
    let (_, other) = token.check_refundable_at("m", 1, t0).unwrap();
    assert!(!leaky.refund_at(other.unwrap(), t0).unwrap());
    assert!(leaky.refund_at(r, t0 + S / 2).unwrap());
    assert_eq!(leaky.check_at("k", 0, t0 + S / 2).unwrap().remaining, 3);
}

#[test]
fn windows_are_refunded_off_the_admission_window() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let fixed = RedisLimiter::builder(FixedWindow::per_second(5).unwrap())
        .prefix("fw")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let t = 10 * S + S / 4;
    let (_, a) = fixed.check_refundable_at("k", 2, t).unwrap();
    // Counts add up: a refund is exact whatever was admitted since.
    assert!(fixed.check_at("k", 3, t).unwrap().allowed);
    assert!(fixed.refund_at(a.unwrap(), t + 1).unwrap());
    assert_eq!(fixed.check_at("k", 0, t + 1).unwrap().remaining, 2);
    // After the window's end nothing is given back.
    let (_, b) = fixed.check_refundable_at("k", 1, t).unwrap();
    assert!(!fixed.refund_at(b.unwrap(), 11 * S).unwrap());
    assert_eq!(fixed.check_at("k", 0, 11 * S).unwrap().remaining, 5);

    let sliding = RedisLimiter::builder(SlidingWindow::per_second(4).unwrap())
        .prefix("sw")
        .time_source(client_time())
        .build(pool)
        .unwrap();
    let (_, a) = sliding.check_refundable_at("k", 4, t).unwrap();
    // Next window, half-way: the previous window's 4 weigh 2.
    let mid = 11 * S + S / 2;
    assert_eq!(sliding.check_at("k", 1, mid).unwrap().remaining, 1);
    // Refunded off the previous window's count: nothing weighs any more.
    assert!(sliding.refund_at(a.unwrap(), mid).unwrap());
    assert_eq!(sliding.check_at("k", 0, mid).unwrap().remaining, 3);
    // Two windows later the admission no longer weighs: nothing to give.
    let (_, c) = sliding.check_refundable_at("k", 1, mid).unwrap();
    assert!(!sliding.refund_at(c.unwrap(), 13 * S).unwrap());
}

#[test]
fn async_refunds() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(ratelimit_redis::AsyncRedisConnection::open(&server.url()))
        .unwrap();
    let limiter =
        RedisLimiter::builder(TokenBucket::new(Quota::new(2, Rate::per_hour(1)).unwrap()))
            .build(conn)
            .unwrap();
    rt.block_on(async {
        let (d, r) = limiter.check_refundable("k", 2).await.unwrap();
        assert_eq!(d.remaining, 0);
        assert!(limiter.refund(r.unwrap()).await.unwrap());
        assert_eq!(limiter.check_n("k", 0).await.unwrap().remaining, 2);
    });
}
