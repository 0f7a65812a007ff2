//! Changing a window limiter's quota in Redis (`reconfigure_window`): the
//! counts carry over a change of `L`, a new `W` starts every key afresh,
//! field for field against the memory limiter (sync and async, fixed and
//! sliding, with another limiter on the same prefix making some of the
//! changes); by hand; and a limiter that never changed its quota meeting
//! a key stored under a newer one.

#![allow(clippy::std_instead_of_core)]

mod quota;

use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{FixedWindow, Quota, Rate, SlidingWindow, TokenBucket};
use ratelimit_redis::{AsyncRedisConnection, RedisLimitError, RedisLimiter, RedisPool};
use ratelimit_testkit::RedisServer;

use quota::{AsyncWindow, client_time, windows_match_memory};

const S: u64 = 1_000_000_000;

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    )
}

fn fixed(limit: u64, window: Duration) -> FixedWindow {
    FixedWindow::new(limit, window).unwrap()
}

fn sliding(limit: u64, window: Duration) -> SlidingWindow {
    SlidingWindow::new(limit, window).unwrap()
}

fn sync_limiter<A: ratelimit_core::Algorithm>(
    pool: &RedisPool,
    prefix: &str,
    a: A,
) -> RedisLimiter<A> {
    RedisLimiter::builder(a)
        .prefix(prefix)
        .time_source(client_time())
        .build(pool.clone())
        .unwrap()
}

#[test]
fn window_changes_match_the_memory_limiter() {
    let server = RedisServer::start();
    let (pool, other_pool) = (
        RedisPool::open(&server.url()).unwrap(),
        RedisPool::open(&server.url()).unwrap(),
    );
    let second = Duration::from_secs(1);
    for (seed, other) in [(1, false), (2, true)] {
        let prefix = format!("fixed{seed}");
        let l = sync_limiter(&pool, &prefix, fixed(5, second));
        let o = sync_limiter(&other_pool, &prefix, fixed(5, second));
        windows_match_memory(
            fixed(5, second),
            fixed,
            &l,
            other.then_some(&o),
            seed,
            3_000,
        );
        let prefix = format!("sliding{seed}");
        let l = sync_limiter(&pool, &prefix, sliding(5, second));
        let o = sync_limiter(&other_pool, &prefix, sliding(5, second));
        windows_match_memory(
            sliding(5, second),
            sliding,
            &l,
            other.then_some(&o),
            seed,
            3_000,
        );
    }
}

#[test]
fn window_changes_match_the_memory_limiter_async() {
    let server = RedisServer::start();
    let rt = runtime();
    let open = || {
        rt.block_on(AsyncRedisConnection::open(&server.url()))
            .unwrap()
    };
    let (conn, other_conn) = (open(), open());
    let second = Duration::from_secs(1);
    let make = |conn: &AsyncRedisConnection, prefix: &str, a| {
        AsyncWindow(
            RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(conn.clone())
                .unwrap(),
            Arc::clone(&rt),
        )
    };
    let (l, o) = (
        make(&conn, "fixed", fixed(5, second)),
        make(&other_conn, "fixed", fixed(5, second)),
    );
    windows_match_memory(fixed(5, second), fixed, &l, Some(&o), 3, 2_000);
    let make = |conn: &AsyncRedisConnection, prefix: &str, a| {
        AsyncWindow(
            RedisLimiter::builder(a)
                .prefix(prefix)
                .time_source(client_time())
                .build(conn.clone())
                .unwrap(),
            Arc::clone(&rt),
        )
    };
    let (l, o) = (
        make(&conn, "sliding", sliding(5, second)),
        make(&other_conn, "sliding", sliding(5, second)),
    );
    windows_match_memory(sliding(5, second), sliding, &l, Some(&o), 4, 2_000);
}

/// docs/semantics.md: only `L` changes, the count stands; `W` changes, it
/// is gone, and does not come back when `W` does.
#[test]
fn a_new_limit_keeps_the_counts_a_new_window_drops_them() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let minute = Duration::from_secs(60);
    let l = sync_limiter(&pool, "hand", fixed(10, minute));
    let t0 = 600 * S;
    assert!(l.check_at("a", 8, t0).unwrap().allowed);
    assert!(l.check_at("b", 8, t0).unwrap().allowed);
    l.reconfigure_window_at(fixed(20, minute), t0).unwrap();
    let d = l.check_at("a", 0, t0).unwrap();
    assert_eq!((d.remaining, d.limit), (12, 20));
    // Another W and back, `b` untouched meanwhile: its count is gone.
    l.reconfigure_window_at(fixed(20, Duration::from_secs(3600)), t0)
        .unwrap();
    assert_eq!(l.check_at("a", 0, t0).unwrap().remaining, 20);
    l.reconfigure_window_at(fixed(20, minute), t0).unwrap();
    let d = l.check_at("b", 0, t0).unwrap();
    assert_eq!((d.remaining, d.limit), (20, 20));
    assert_eq!(l.current_window().unwrap().0, 3);
    // A cost above the new limit: refused before anything is sent.
    match l.check_at("a", 21, t0) {
        Err(RedisLimitError::InsufficientCapacity(e)) => assert_eq!(e.capacity, 20),
        other => panic!("{other:?}"),
    }
}

/// A limiter that never changed its quota (it sends no tags) meets a key
/// another limiter on the prefix stored under a newer quota: it adopts
/// the record and decides under it, never under its first quota; its
/// batches too.
#[test]
fn a_limiter_that_never_changed_adopts_a_change_it_meets() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let minute = Duration::from_secs(60);
    let a = sync_limiter(&pool, "shared", sliding(10, minute));
    let b = sync_limiter(&pool, "shared", sliding(10, minute));
    let c = sync_limiter(&pool, "shared", sliding(10, minute));
    let t0 = 600 * S;
    assert!(a.check_at("k", 6, t0).unwrap().allowed);
    a.reconfigure_window_at(sliding(7, minute), t0).unwrap();
    // a stores k under version 1.
    let d = a.check_at("k", 1, t0).unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 0, 7));
    assert_eq!(b.current_window().unwrap().0, 0);
    let d = b.check_at("k", 1, t0).unwrap();
    assert_eq!((d.allowed, d.limit), (false, 7));
    assert_eq!(b.current_window().unwrap().0, 1);
    // c, in a batch: the batch is sent again once adopted, charging once.
    let d = c.check_batch_at(&[("j", 3), ("k", 0)], t0).unwrap();
    assert_eq!(d[0].unwrap().remaining, 4);
    assert_eq!((d[1].unwrap().remaining, d[1].unwrap().limit), (0, 7));
    assert_eq!(c.check_at("j", 0, t0).unwrap().remaining, 4);
    assert_eq!(c.refresh_window().unwrap(), 1);
    // b, now at version 1 (it sends tags), meets k under version 2: a new
    // W, every count gone. It adopts version 2 before deciding.
    a.reconfigure_window_at(sliding(3, 2 * minute), t0).unwrap();
    let d = a.check_at("k", 1, t0).unwrap();
    assert_eq!((d.remaining, d.limit), (2, 3));
    let d = b.check_at("k", 1, t0).unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 1, 3));
    assert_eq!(b.current_window().unwrap().0, 2);
    // c, at version 1, meets j (untouched under version 2) by itself: a
    // key of version 1 decided by a limiter at version 1, with its count.
    assert_eq!(c.check_at("j", 0, t0).unwrap().remaining, 4);
    // Once c knows version 2, j's count is gone.
    assert_eq!(c.refresh_window().unwrap(), 2);
    assert_eq!(c.check_at("j", 0, t0).unwrap().remaining, 3);
}

#[test]
fn window_changes_are_for_windows() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let bucket = TokenBucket::new(Quota::new(10, Rate::per_second(1)).unwrap());
    let l = sync_limiter(&pool, "bucket", bucket);
    assert!(matches!(
        l.reconfigure_window_at(bucket, S),
        Err(RedisLimitError::InvalidOption(_))
    ));
    assert!(l.current_window().is_none());
    // A window the scripts cannot run exactly: refused, nothing changed.
    let w = sync_limiter(&pool, "w", fixed(10, Duration::from_secs(1)));
    let huge = fixed(u64::MAX / 4, Duration::from_secs(1));
    assert!(matches!(
        w.reconfigure_window_at(huge, S),
        Err(RedisLimitError::InvalidOption(_))
    ));
    assert_eq!(w.current_window().unwrap().0, 0);
}

/// A key on a window of its own: its counts carry over to and from it
/// when `W` is the same, it does not follow the limiter's changes, and a
/// limiter that never used own windows meets such a key by itself.
#[test]
fn a_key_moves_to_its_own_window_and_back() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let minute = Duration::from_secs(60);
    let l = sync_limiter(&pool, "own", fixed(10, minute));
    let t0 = 600 * S;
    assert!(l.check_at("alice", 4, t0).unwrap().allowed);
    // An upgrade: her 4 stay counted, now of 40.
    let pro = fixed(40, minute);
    let d = l.check_with_window_at("alice", 1, &pro, t0).unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 35, 40));
    // Not the limiter's changes.
    l.reconfigure_window_at(fixed(2, minute), t0).unwrap();
    assert_eq!(
        l.check_with_window_at("alice", 0, &pro, t0)
            .unwrap()
            .remaining,
        35
    );
    // Another limiter on the prefix that never changed its quota nor used
    // own windows meets her key: it decides it under the record's quota
    // (version 1, L = 2), her 5 counted: refused.
    let m = sync_limiter(&pool, "own", fixed(10, minute));
    let d = m.check_at("alice", 1, t0).unwrap();
    assert_eq!((d.allowed, d.limit), (false, 2));
    // The same with no change of quota at all on the prefix: nothing to
    // adopt, the key moves back to the limiter's quota with its counts.
    let (l2, m2) = (
        sync_limiter(&pool, "own2", fixed(10, minute)),
        sync_limiter(&pool, "own2", fixed(10, minute)),
    );
    assert!(l2.check_with_window_at("bob", 7, &pro, t0).unwrap().allowed);
    let d = m2.check_at("bob", 1, t0).unwrap();
    assert_eq!((d.allowed, d.remaining, d.limit), (true, 2, 10));
    assert_eq!(m2.current_window().unwrap().0, 0);
    // A plan of another W: a fresh window.
    let hourly = fixed(100, Duration::from_secs(3600));
    let d = l.check_with_window_at("alice", 1, &hourly, t0).unwrap();
    assert_eq!((d.remaining, d.limit), (99, 100));
    // A cost above her plan: refused, and she is on it all the same (her
    // count of 1 under the hourly window is dropped by the move).
    assert!(matches!(
        l.check_with_window_at("alice", 5, &fixed(3, minute), t0),
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
    let d = l
        .check_with_window_at("alice", 0, &fixed(3, minute), t0)
        .unwrap();
    assert_eq!(d.remaining, 3);
    // On a bucket limiter: an error.
    let bucket = TokenBucket::new(Quota::new(10, Rate::per_second(1)).unwrap());
    let b = sync_limiter(&pool, "bucket", bucket);
    assert!(matches!(
        b.check_with_window_at("k", 1, &bucket, t0),
        Err(RedisLimitError::InvalidOption(_))
    ));
}
