//! Coalescing on the async limiter against a real `redis-server`:
//! concurrent checks share one batch call (Redis's count of script calls proves
//! it), each caller gets its own answer, and checks of one key are decided
//! in the order they were made. On a current-thread runtime the order is
//! the spawn order (tokio runs spawned tasks first in, first out), so the
//! test knows which caller was first.

#![allow(clippy::std_instead_of_core)]

mod support;

use ratelimit_core::{Quota, Rate, Reason, TokenBucket};
use ratelimit_redis::{AsyncRedisConnection, AsyncRedisLimiter, FailurePolicy, RedisLimitError};
use ratelimit_testkit::RedisServer;
use support::script_calls;

async fn limiter(
    server: &RedisServer,
    capacity: u64,
    policy: FailurePolicy,
) -> AsyncRedisLimiter<TokenBucket> {
    let conn = AsyncRedisConnection::open(&server.url()).await.unwrap();
    AsyncRedisLimiter::builder(TokenBucket::new(
        Quota::new(capacity, Rate::per_hour(1)).unwrap(),
    ))
    .prefix("coalesce")
    .failure_policy(policy)
    .circuit_breaker(None)
    .coalesce(true)
    .build(conn)
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_checks_share_one_call_in_order() {
    let server = RedisServer::start();
    let l = limiter(&server, 10, FailurePolicy::ReturnError).await;
    // Loads the script.
    assert!(l.check("warm").await.unwrap().allowed);
    let sent = script_calls(&server);

    // 64 callers on one key and 32 on two others, interleaved.
    let keys: Vec<&'static str> = (0..96)
        .map(|i| match i % 3 {
            0 | 1 => "hot",
            _ => {
                if i % 2 == 0 {
                    "a"
                } else {
                    "b"
                }
            }
        })
        .collect();
    let tasks: Vec<_> = keys
        .iter()
        .map(|&k| {
            let l = l.clone();
            tokio::spawn(async move { l.check(k).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().unwrap());
    }
    assert_eq!(script_calls(&server), sent + 1, "one batch call");
    // Per key: the first 10 callers allowed, in order, remaining 9..0.
    for key in ["hot", "a", "b"] {
        let mine: Vec<_> = keys
            .iter()
            .zip(&answers)
            .filter(|(k, _)| **k == key)
            .map(|(_, d)| d)
            .collect();
        for (n, d) in mine.iter().enumerate() {
            assert_eq!(d.reason, Reason::Quota);
            assert_eq!(d.allowed, n < 10, "{key} caller {n}");
            if n < 10 {
                assert_eq!(d.remaining, 9 - n as u64, "{key} caller {n}");
            } else {
                assert!(d.retry_after.is_some());
            }
        }
    }
    // A lone check afterwards: its own call.
    assert!(!l.check("hot").await.unwrap().allowed);
    assert_eq!(script_calls(&server), sent + 2);
    // A cost above the capacity: the caller's error, nothing sent.
    assert!(matches!(
        l.check_n("hot", 11).await,
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
    assert_eq!(script_calls(&server), sent + 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_batch_answers_every_caller() {
    let mut server = RedisServer::start();
    let closed = limiter(&server, 10, FailurePolicy::FailClosed).await;
    let error = limiter(&server, 10, FailurePolicy::ReturnError).await;
    assert!(closed.check("k").await.unwrap().allowed);
    assert!(error.check("k").await.unwrap().allowed);
    server.kill();
    let spawn = |l: &AsyncRedisLimiter<TokenBucket>| {
        (0..8)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.check("k").await })
            })
            .collect::<Vec<_>>()
    };
    for t in spawn(&closed) {
        let d = t.await.unwrap().unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reason, Reason::FailClosed);
    }
    for t in spawn(&error) {
        let e = t.await.unwrap().unwrap_err();
        assert!(e.is_redis_failure(), "{e}");
    }
}

/// Lets every other task of the current-thread runtime run until it waits
/// (tokio runs them first in, first out; a paused server answers nothing,
/// so nothing else can wake).
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_batch_goes_while_one_is_in_flight_but_never_with_its_keys() {
    let server = RedisServer::start();
    let l = limiter(&server, 2, FailurePolicy::ReturnError).await;
    assert!(l.check("warm").await.unwrap().allowed);
    let sent = script_calls(&server);
    server.pause();
    let spawn = |key: &'static str| {
        let l = l.clone();
        tokio::spawn(async move { l.check(key).await })
    };
    // In flight: {x}. Then x again (waits for x's batch) and y (goes in a
    // second batch at once), then x a third time.
    let x1 = spawn("x");
    settle().await;
    let x2 = spawn("x");
    let y = spawn("y");
    let x3 = spawn("x");
    settle().await;
    server.resume();
    let x1 = x1.await.unwrap().unwrap();
    let y = y.await.unwrap().unwrap();
    let x2 = x2.await.unwrap().unwrap();
    let x3 = x3.await.unwrap().unwrap();
    // x decided in the order of the calls: 1, 0 left, then denied.
    assert_eq!((x1.allowed, x1.remaining), (true, 1));
    assert_eq!((x2.allowed, x2.remaining), (true, 0));
    assert!(!x3.allowed);
    assert_eq!((y.allowed, y.remaining), (true, 1));
    // {x1}, {y} while x1 was in flight, then {x2, x3}.
    assert_eq!(script_calls(&server), sent + 3);
}
