//! The quota-change conformance scenarios (`policies-*.jsonl.gz`:
//! `reconfigure` events and keys' own quotas, on both buckets) against
//! real Redis with client time, field for field, through the sync and
//! the async limiter; and a stale limiter on the same prefix refusing to decide a
//! key another limiter converted to a newer quota.

#![allow(clippy::std_instead_of_core)]

mod quota;

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{Quota, Rate, Strategy, TokenBucket};
use ratelimit_redis::{AsyncRedisConnection, AsyncRedisLimiter, RedisLimiter, RedisPool};
use ratelimit_replay::assert_every_policy_scenario;
use ratelimit_testkit::RedisServer;

use quota::{client_time, run_async, run_sync};

#[test]
fn every_policy_scenario_matches_exactly_async() {
    let server = RedisServer::start();
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let conn = rt
        .block_on(AsyncRedisConnection::open(&server.url()))
        .unwrap();
    assert_every_policy_scenario(|file, s| run_async(&conn, &rt, file, s));
}

#[test]
fn every_policy_scenario_matches_exactly() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    assert_every_policy_scenario(|file, s| run_sync(&pool, file, s));
}

fn bucket(capacity: u64, per_second: u64) -> Quota {
    Quota::new(capacity, Rate::per_second(per_second)).unwrap()
}

fn limiter(pool: &RedisPool, prefix: &str) -> RedisLimiter<TokenBucket> {
    RedisLimiter::builder(TokenBucket::new(bucket(10, 10)))
        .prefix(prefix)
        .time_source(client_time())
        .build(pool.clone())
        .unwrap()
}

const S: u64 = 1_000_000_000;

#[test]
fn a_key_untouched_across_changes_converts_as_if_at_each() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let l = limiter(&pool, "untouched");
    let t0 = 1_000 * S;
    // 8 of 10 used (T = 100 ms): tat = t0 + 800 ms.
    assert!(l.check_at("k", 8, t0).unwrap().allowed);
    // At t0 + 200 ms: 6 in use; keep-consumed to T = 200 ms: 6 × 200 ms.
    l.reconfigure_at(bucket(20, 5), Strategy::KeepConsumed, t0 + S / 5)
        .unwrap();
    // At t0 + 400 ms: 1 000 ms left of 4 000 (τ' = 20 × 200 ms):
    // proportional to τ'' = 10 × 100 ms: 250 ms.
    l.reconfigure_at(bucket(10, 10), Strategy::Proportional, t0 + 2 * S / 5)
        .unwrap();
    assert_eq!(l.current_quota().0, 2);
    // At t0 + 500 ms: 150 ms left: 2 in use (rounded up), 8 remaining.
    let d = l.check_at("k", 0, t0 + S / 2).unwrap();
    assert_eq!(d.remaining, 8);
    assert_eq!(d.reset_after, Duration::from_millis(150));
    assert_eq!(d.limit, 10);
}

#[test]
fn a_change_reaches_every_limiter_on_the_prefix() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let (a, b, c) = (
        limiter(&pool, "shared"),
        limiter(&pool, "shared"),
        limiter(&pool, "shared"),
    );
    let t0 = 1_000 * S;
    assert!(a.check_at("k", 5, t0).unwrap().allowed);
    a.reconfigure_at(bucket(2, 1), Strategy::KeepConsumed, t0)
        .unwrap();
    // a converts k: 5 units of 100 ms become 5 of 1 s, above the new
    // capacity of 2: refused.
    assert!(!a.check_at("k", 1, t0).unwrap().allowed);
    // b has not seen the change, and has never changed its quota: it
    // meets k's newer state, adopts the record and decides under it,
    // never under 10 per second.
    assert_eq!(b.current_quota().0, 0);
    let d = b.check_at("k", 1, t0).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.limit, 2);
    assert_eq!(b.current_quota(), (1, bucket(2, 1)));
    // c changes the quota again: it adopts a's change first, so its own
    // is version 2, converting from version 1.
    c.reconfigure_at(bucket(3, 1), Strategy::KeepConsumed, t0 + S)
        .unwrap();
    assert_eq!(c.current_quota(), (2, bucket(3, 1)));
    // c converts k (tat t0 + 5 s; 1 s per unit both): 4 in use at t0 + 1 s.
    let d = c.check_at("k", 0, t0 + S).unwrap();
    assert_eq!((d.remaining, d.limit), (0, 3));
    // a meets version 2 on k: it reloads, never deciding with version 1.
    let d = a.check_at("k", 0, t0 + 3 * S).unwrap();
    assert_eq!((d.remaining, d.limit), (1, 3));
    assert_eq!(a.current_quota().0, 2);
    // b catches up when asked to.
    assert_eq!(b.refresh_quota().unwrap(), 2);
    assert_eq!(b.check_at("k", 0, t0 + 3 * S).unwrap().remaining, 1);
}

#[test]
fn a_key_moves_to_its_own_quota_and_back() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let l = limiter(&pool, "own");
    let t0 = 1_000 * S;
    assert!(l.check_at("alice", 4, t0).unwrap().allowed);
    // An upgrade: her 4 units stay used, now of 40 at 40 per second.
    let pro = bucket(40, 40);
    let d = l.check_with_quota_at("alice", 1, &pro, t0).unwrap();
    assert!(d.allowed);
    assert_eq!((d.remaining, d.limit), (35, 40));
    // Her quota does not follow the limiter's changes.
    l.reconfigure_at(bucket(1, 1), Strategy::Reset, t0).unwrap();
    let d = l.check_with_quota_at("alice", 0, &pro, t0).unwrap();
    assert_eq!(d.remaining, 35);
    // Back on the limiter's quota (1 per second): her 5 units in use stay
    // in use, 5 s of it, above its capacity of 1.
    let d = l.check_at("alice", 1, t0).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.limit, 1);
}

#[test]
fn reconfigure_under_the_servers_time_reads_it() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    // Server time (the default): the change is at the server's TIME.
    let l = RedisLimiter::builder(TokenBucket::new(bucket(10, 1)))
        .prefix("server-time")
        .build(pool)
        .unwrap();
    assert!(l.check_n("k", 10).unwrap().allowed);
    // Keep what is available (none) of 10 per second... at 1 per hour:
    // nothing available, the next unit an hour away.
    let hourly = Quota::new(10, Rate::per_hour(1)).unwrap();
    l.reconfigure(hourly, Strategy::KeepAvailable).unwrap();
    assert_eq!(l.current_quota(), (1, hourly));
    let d = l.check("k").unwrap();
    assert!(!d.allowed);
    assert!(d.retry_after.unwrap() > Duration::from_secs(3000), "{d:?}");
    // A reset gives the key a full bucket of the new quota.
    l.reconfigure(hourly, Strategy::Reset).unwrap();
    let d = l.check("k").unwrap();
    assert!(d.allowed);
    assert_eq!((d.remaining, d.limit), (9, 10));
}

#[test]
fn the_async_limiter_converts_too() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = AsyncRedisConnection::open(&server.url()).await.unwrap();
        let l: AsyncRedisLimiter<TokenBucket> =
            RedisLimiter::builder(TokenBucket::new(bucket(10, 1)))
                .prefix("async")
                .build(conn)
                .unwrap();
        assert!(l.check_n("k", 4).await.unwrap().allowed);
        l.reconfigure(bucket(5, 1), Strategy::KeepConsumed)
            .await
            .unwrap();
        // 4 used stay used, of 5: 1 left (none refills within the test's
        // milliseconds at 1 per second... at most 1 more).
        let d = l.check_n("k", 0).await.unwrap();
        assert_eq!(d.limit, 5);
        assert!(d.remaining <= 2, "{d:?}");
        // acquire waits under the new quota and never errs on the tag.
        let r = l
            .acquire_with_max_wait("k", 1, Duration::ZERO)
            .await
            .unwrap();
        assert!(r.is_admitted() || r.retry_after().is_some());
    });
}

#[test]
fn an_async_limiter_adopts_another_ones_change() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = AsyncRedisConnection::open(&server.url()).await.unwrap();
        let make = || -> AsyncRedisLimiter<TokenBucket> {
            RedisLimiter::builder(TokenBucket::new(bucket(10, 10)))
                .prefix("async-shared")
                .time_source(client_time())
                .build(conn.clone())
                .unwrap()
        };
        let (a, b) = (make(), make());
        let t0 = 1_000 * S;
        assert!(a.check_at("k", 5, t0).await.unwrap().allowed);
        a.reconfigure_at(bucket(2, 1), Strategy::KeepConsumed, t0)
            .await
            .unwrap();
        assert_eq!(a.check_at("k", 0, t0).await.unwrap().remaining, 0);
        // b meets k at version 1 (a converted it): adopts, decides under it.
        let d = b.reserve_at("k", 1, Some(0), t0).await.unwrap();
        assert!(!d.is_admitted());
        assert_eq!(b.current_quota(), (1, bucket(2, 1)));
        let d = b.check_at("k", 1, t0 + 4 * S).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.limit, 2);
    });
}

/// A change that makes states last longer raises their expiry at the
/// change (`quota::lengthen`, on one Redis).
#[test]
fn a_change_that_lengthens_states_raises_their_expiry() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let keys = ["a", "b", "c"];
    let build = |prefix: &str, bucket, time| {
        RedisLimiter::builder(bucket)
            .prefix(prefix)
            .time_source(time)
            .build(pool.clone())
            .unwrap()
    };
    quota::lengthen("lengthen", build, &keys, |key| {
        server.cli(&["pttl", key]).trim().parse().unwrap()
    });
}

/// While Redis is down, the failure policies answer under the quota the
/// limiter enforces now, not the one it was built with: the fallback's
/// local limiter follows a change, fail-closed's `limit` and retry are the
/// new quota's (buckets and windows).
#[test]
fn the_failure_policies_answer_under_the_quota_now() {
    use ratelimit_core::{FixedWindow, Reason};
    use ratelimit_redis::FailurePolicy;

    let mut server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let build = |prefix: &str, policy| {
        RedisLimiter::builder(TokenBucket::new(
            Quota::new(10, Rate::per_hour(10)).unwrap(),
        ))
        .prefix(prefix)
        .failure_policy(policy)
        .circuit_breaker(None)
        .build(pool.clone())
        .unwrap()
    };
    let fallback = build("fb", FailurePolicy::Fallback);
    let closed = build("fc", FailurePolicy::FailClosed);
    let window = RedisLimiter::builder(FixedWindow::new(10, Duration::from_secs(3600)).unwrap())
        .prefix("fw")
        .failure_policy(FailurePolicy::Fallback)
        .circuit_breaker(None)
        .build(pool.clone())
        .unwrap();
    let tighter = Quota::new(3, Rate::per_hour(1)).unwrap();
    fallback
        .reconfigure(tighter, Strategy::KeepConsumed)
        .unwrap();
    closed.reconfigure(tighter, Strategy::KeepConsumed).unwrap();
    window
        .reconfigure_window(FixedWindow::new(2, Duration::from_secs(3600)).unwrap())
        .unwrap();
    server.kill();

    let answers: Vec<_> = (0..4).map(|_| fallback.check("k").unwrap()).collect();
    assert!(
        answers
            .iter()
            .all(|d| d.reason == Reason::Fallback && d.limit == 3)
    );
    assert_eq!(
        answers.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, true, true, false],
        "the local limiter admits the new capacity, not the built one"
    );
    let d = closed.check("k").unwrap();
    assert!(!d.allowed);
    assert_eq!((d.reason, d.limit), (Reason::FailClosed, 3));
    assert_eq!(d.retry_after, Some(Duration::from_secs(3600)));
    let w: Vec<_> = (0..3).map(|_| window.check("k").unwrap()).collect();
    assert!(
        w.iter()
            .all(|d| d.reason == Reason::Fallback && d.limit == 2)
    );
    assert_eq!(w.iter().filter(|d| d.allowed).count(), 2);
}

/// `check_batch` under a changed bucket quota answers as single checks do:
/// each key converted, none decided with the quota the limiter was built
/// with (sync and async).
#[test]
fn a_batch_after_a_change_converts_each_key() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let hourly = |c| Quota::new(c, Rate::per_hour(c)).unwrap();
    let sync = RedisLimiter::builder(TokenBucket::new(hourly(10)))
        .prefix("batch-sync")
        .time_source(client_time())
        .build(pool)
        .unwrap();
    assert_eq!(sync.check_at("a", 4, S).unwrap().remaining, 6);
    sync.reconfigure_at(hourly(20), Strategy::KeepConsumed, 2 * S)
        .unwrap();
    let answers = sync
        .check_batch_at(&[("a", 1), ("b", 1), ("a", 21)], 3 * S)
        .unwrap();
    assert_eq!(answers[0].as_ref().unwrap().remaining, 20 - 4 - 1);
    assert_eq!(answers[1].as_ref().unwrap().remaining, 19);
    assert!(answers[2].is_err(), "a cost above the new capacity");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = AsyncRedisConnection::open(&server.url()).await.unwrap();
        let limiter = AsyncRedisLimiter::builder(TokenBucket::new(hourly(10)))
            .prefix("batch-async")
            .time_source(client_time())
            .build(conn)
            .unwrap();
        assert_eq!(limiter.check_at("a", 4, S).await.unwrap().remaining, 6);
        limiter
            .reconfigure_at(hourly(20), Strategy::KeepConsumed, 2 * S)
            .await
            .unwrap();
        let answers = limiter
            .check_batch_at(&[("a", 1), ("b", 1)], 3 * S)
            .await
            .unwrap();
        assert_eq!(answers[0].as_ref().unwrap().remaining, 15);
        assert_eq!(answers[1].as_ref().unwrap().remaining, 19);
    });
}
