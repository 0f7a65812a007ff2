//! `acquire` on the async limiter: it sleeps the reservation's wait (on
//! tokio's paused clock, no real sleeps), and a dropped `acquire` gives its
//! capacity back exactly (during the sleep, and during the Redis call).
//!
//! The connection is made before the clock is paused and has no response
//! timeout: a paused clock jumps to the next timer whenever every task
//! waits, which would fire a response timeout while a reply is on its way.
//! For the same reason, the tests watch Redis through a sync limiter (a
//! blocking call keeps the runtime busy, so the clock stays put) while an
//! `acquire` sleeps.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::time::Duration;

use ratelimit_core::{LeakyBucket, Quota, Rate, TokenBucket};
use ratelimit_redis::{
    AsyncRedisConnection, AsyncRedisLimiter, RedisLimitError, RedisLimiter, RedisPool,
};
use ratelimit_testkit::RedisServer;
use tokio::time::Instant;

async fn conn(server: &RedisServer) -> AsyncRedisConnection {
    AsyncRedisConnection::builder(&server.url())
        .no_response_timeout()
        .build()
        .await
        .unwrap()
}

fn hourly(conn: &AsyncRedisConnection, capacity: u64) -> AsyncRedisLimiter<TokenBucket> {
    AsyncRedisLimiter::builder(TokenBucket::new(
        Quota::new(capacity, Rate::per_hour(1)).unwrap(),
    ))
    .prefix("acquire")
    .build(conn.clone())
    .unwrap()
}

/// The sync twin of `hourly`, to watch the state without letting the
/// paused clock jump.
fn probe(server: &RedisServer) -> RedisLimiter<TokenBucket> {
    RedisLimiter::builder(TokenBucket::new(Quota::new(1, Rate::per_hour(1)).unwrap()))
        .prefix("acquire")
        .build(RedisPool::open(&server.url()).unwrap())
        .unwrap()
}

/// Reads `key`'s stored state (blocking) until `done` holds, letting the
/// other tasks run in between without moving the paused clock.
async fn until_state(
    probe: &RedisLimiter<TokenBucket>,
    key: &str,
    mut done: impl FnMut(Option<u64>) -> bool,
) -> Option<u64> {
    for _ in 0..10_000 {
        let tat = probe.inspect(key).unwrap().tat_ns;
        if done(tat) {
            return tat;
        }
        tokio::task::yield_now().await;
    }
    panic!("the state of {key} never settled");
}

/// Lets the other tasks take in their replies (a yield polls the I/O
/// driver and never moves the paused clock).
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn acquire_sleeps_exactly_the_wait() {
    let server = RedisServer::start();
    let conn = conn(&server).await;
    tokio::time::pause();
    let l = hourly(&conn, 2);
    // Real time (not the paused clock) brackets the server's clock: the
    // server reads `TIME` for each call between these two readings.
    let real = std::time::Instant::now();
    for _ in 0..2 {
        let t = Instant::now();
        let r = l.acquire("k", 1).await.unwrap();
        assert!(r.is_admitted());
        assert_eq!(r.wait().unwrap(), Duration::ZERO);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
    // The bucket is empty: the third waits about one interval (server
    // time has moved on by the few milliseconds of the calls).
    let t = Instant::now();
    let r = l.acquire("k", 1).await.unwrap();
    let slept = t.elapsed();
    let server_moved_at_most = real.elapsed();
    assert!(r.is_admitted());
    // One interval less the server time between the first call and this
    // one, which is at most the real time around them (plus the server's
    // microsecond `TIME` resolution).
    let wait = r.wait().unwrap();
    assert!(
        wait + server_moved_at_most + Duration::from_micros(2) >= Duration::from_secs(3600)
            && wait <= Duration::from_secs(3600),
        "wait {wait:?}, {server_moved_at_most:?} of real time"
    );
    // tokio's timers tick in milliseconds: the wait, rounded up.
    assert!(
        slept >= r.wait().unwrap() && slept <= r.wait().unwrap() + Duration::from_millis(2),
        "slept {slept:?} for a wait of {:?}",
        r.wait().unwrap()
    );

    // Bounded: rejected at once, nothing consumed, nothing slept.
    let before = l.inspect("k").await.unwrap().tat_ns;
    let t = Instant::now();
    let r = l
        .acquire_with_max_wait("k", 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!r.is_admitted());
    assert!(r.retry_after().unwrap() > Duration::from_secs(3600));
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(l.inspect("k").await.unwrap().tat_ns, before);
    // A cost above the capacity is an error, as for every call.
    assert!(matches!(
        l.acquire("k", 3).await,
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
}

#[tokio::test]
async fn dropped_during_the_sleep_gives_the_capacity_back() {
    let server = RedisServer::start();
    let conn = conn(&server).await;
    let probe = probe(&server);
    tokio::time::pause();
    let l = hourly(&conn, 1);
    assert_eq!(
        l.acquire("k", 1).await.unwrap().wait().unwrap(),
        Duration::ZERO
    );
    let original = probe.inspect("k").unwrap().tat_ns.unwrap();

    let task = tokio::spawn({
        let l = l.clone();
        async move { l.acquire("k", 1).await }
    });
    // The reservation lands (one more interval of debt), then the task
    // takes in the reply and sleeps about an hour.
    let reserved = until_state(&probe, "k", |tat| tat != Some(original))
        .await
        .unwrap();
    assert_eq!(reserved - original, 3_600_000_000_000);
    settle().await;
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(!task.is_finished());
    task.abort();
    let joined = task.await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_cancelled()),
        "{joined:?}"
    );
    // Undone exactly: the state this reservation found.
    let after = until_state(&probe, "k", |tat| tat != Some(reserved)).await;
    assert_eq!(after, Some(original));
    // So the next caller waits one interval, not two.
    let r = l.reserve("k", 1, None).await.unwrap();
    assert!(
        r.wait().unwrap() <= Duration::from_secs(3600),
        "{:?}",
        r.wait().unwrap()
    );
}

#[tokio::test]
async fn dropped_during_the_redis_call_gives_the_capacity_back() {
    let server = RedisServer::start();
    let conn = conn(&server).await;
    let probe = probe(&server);
    tokio::time::pause();
    let l = hourly(&conn, 1);
    assert!(l.acquire("k", 1).await.unwrap().is_admitted());
    let original = probe.inspect("k").unwrap().tat_ns.unwrap();
    // Redis frozen: the reservation is sent and stays in flight while the
    // caller gives up (the timeout fires as soon as every task waits).
    server.pause();
    let gave_up = tokio::time::timeout(Duration::from_millis(10), l.acquire("k", 1)).await;
    assert!(gave_up.is_err(), "the acquire was still in its Redis call");
    server.resume();
    // The reservation counts when Redis wakes up, then is undone. Read on
    // the same connection, which the reservation was written to first (no
    // timer is pending now, so async reads leave the clock alone): reading
    // the original state means the undo ran.
    let mut reads = 0;
    while l.inspect("k").await.unwrap().tat_ns != Some(original) {
        reads += 1;
        assert!(reads < 10_000, "never undone");
    }
    settle().await;
    assert_eq!(probe.inspect("k").unwrap().tat_ns, Some(original));
}

#[tokio::test]
async fn the_undo_leaves_later_admissions_alone() {
    let server = RedisServer::start();
    let conn = conn(&server).await;
    let probe = probe(&server);
    tokio::time::pause();
    let l = hourly(&conn, 2);
    assert!(l.acquire("k", 1).await.unwrap().is_admitted());
    assert!(l.acquire("k", 1).await.unwrap().is_admitted());
    let original = probe.inspect("k").unwrap().tat_ns;
    let task = tokio::spawn({
        let l = l.clone();
        async move { l.acquire("k", 1).await }
    });
    let reserved = until_state(&probe, "k", |tat| tat != original).await;
    settle().await;
    // Another caller is admitted on top of the sleeping reservation (a
    // blocking call: the clock stays put): the capacity it was decided
    // with stays consumed.
    let sync = RedisLimiter::builder(*l.algorithm())
        .prefix("acquire")
        .build(RedisPool::open(&server.url()).unwrap())
        .unwrap();
    assert!(sync.reserve("k", 1, None).unwrap().is_admitted());
    let later = probe.inspect("k").unwrap().tat_ns;
    assert_ne!(later, reserved);
    assert!(!task.is_finished());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    settle().await;
    for _ in 0..20 {
        settle().await;
        assert_eq!(probe.inspect("k").unwrap().tat_ns, later);
    }
}

/// A leaky bucket whose queue is full is asked again after `retry_after`
/// (real time here: the server's clock must move for the queue to drain).
#[tokio::test]
async fn a_full_leaky_queue_is_waited_out() {
    let server = RedisServer::start();
    let conn = conn(&server).await;
    let l = AsyncRedisLimiter::builder(LeakyBucket::new(
        Quota::new(1, Rate::per_second(50)).unwrap(),
    ))
    .prefix("leaky")
    .build(conn)
    .unwrap();
    let t = std::time::Instant::now();
    assert!(l.acquire("k", 1).await.unwrap().is_admitted());
    let r = l.acquire("k", 1).await.unwrap();
    assert!(r.is_admitted());
    // The second request left one interval (20 ms) after the first.
    assert!(
        t.elapsed() >= Duration::from_millis(19),
        "{:?}",
        t.elapsed()
    );
}
