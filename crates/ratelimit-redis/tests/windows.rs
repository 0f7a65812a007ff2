//! The window algorithms in Redis beyond the conformance files: server
//! time and the key's expiry at exactly the moment it becomes equivalent
//! to a missing key, `inspect`'s counts, batches against the core model,
//! corrupt states, and the configurations the scripts cannot run exactly.

#![allow(clippy::std_instead_of_core)]

use std::time::Duration;

use ratelimit_core::{Algorithm, FixedWindow, SlidingWindow};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TimeSource};
use ratelimit_testkit::RedisServer;
use redis::Commands;

const S: u64 = 1_000_000_000;

fn client_time() -> TimeSource {
    TimeSource::Client {
        ttl_margin: Duration::from_secs(1),
    }
}

/// `PEXPIRETIME` of a key, in Unix milliseconds.
fn expire_time_ms(conn: &mut redis::Connection, key: &[u8]) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(conn).unwrap()
}

#[test]
fn server_time_windows_expire_when_equivalent_to_a_missing_key() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();

    // One hour: the window can hardly end during the test, and the expiry
    // is checked against the window the script stored, not a clock.
    let fixed = RedisLimiter::builder(FixedWindow::per_hour(3).unwrap())
        .prefix("fw")
        .build(pool.clone())
        .unwrap();
    assert_eq!(fixed.check_n("k", 2).unwrap().remaining, 1);
    let state = fixed.inspect("k").unwrap();
    let w = state.window.expect("a window state");
    assert_eq!(w.count, 2);
    assert_eq!(w.window, state.server_now_ns / (3600 * S));
    assert_eq!(state.remaining, 1);
    let end_ns = (w.window + 1) * 3600 * S;
    assert_eq!(
        state.reset_after,
        Duration::from_nanos(end_ns - state.server_now_ns)
    );
    let key = fixed.redis_key("k").unwrap();
    assert_eq!(
        expire_time_ms(&mut conn, &key),
        i64::try_from(end_ns / 1_000_000).unwrap()
    );
    // A denial writes nothing and says when the window ends.
    let d = fixed.check_n("k", 2).unwrap();
    assert!(!d.allowed);
    assert!(d.retry_after.unwrap() <= Duration::from_secs(3600));

    let sliding = RedisLimiter::builder(SlidingWindow::per_hour(10).unwrap())
        .prefix("sw")
        .build(pool.clone())
        .unwrap();
    assert!(sliding.check_n("k", 4).unwrap().allowed);
    let state = sliding.inspect("k").unwrap();
    let w = state.window.unwrap();
    assert_eq!((w.count, w.previous), (4, 0));
    // Both counts slide out at the end of the next window.
    let gone_ns = (w.window + 2) * 3600 * S;
    let key = sliding.redis_key("k").unwrap();
    assert_eq!(
        expire_time_ms(&mut conn, &key),
        i64::try_from(gone_ns / 1_000_000).unwrap()
    );
    assert_eq!(
        state.reset_after,
        Duration::from_nanos(gone_ns - state.server_now_ns)
    );
}

#[test]
fn client_time_batches_match_the_core_and_expire_with_the_margin() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let algorithm = SlidingWindow::new(5, Duration::from_millis(1500)).unwrap();
    let limiter = RedisLimiter::builder(algorithm)
        .prefix("b")
        .time_source(client_time())
        .build(pool)
        .unwrap();

    // The same requests through the core, one state per key.
    let mut model = std::collections::HashMap::<&str, u128>::new();
    let batches: [(u64, &[(&str, u64)]); 4] = [
        (1_400_000_000, &[("a", 3), ("b", 5), ("a", 2), ("a", 1)]),
        (1_600_000_000, &[("a", 1), ("b", 0), ("c", 6)]),
        (2_999_999_999, &[("a", 2), ("b", 1)]),
        (3_700_000_123, &[("a", 4), ("b", 4), ("a", 1)]),
    ];
    for (now, requests) in batches {
        let answers = limiter.check_batch_at(requests, now).unwrap();
        for ((key, cost), answer) in requests.iter().zip(answers) {
            let state = model.entry(key).or_default();
            match algorithm.check(*state, now, *cost) {
                Ok(step) => {
                    assert_eq!(answer.unwrap(), step.decision, "{key} {cost} at {now}");
                    if let Some(next) = step.next {
                        *state = next;
                    }
                }
                Err(e) => assert_eq!(answer.unwrap_err(), e),
            }
        }
    }
    // Client time: the TTL is what is left until the key is equivalent to
    // a missing one, rounded up to a millisecond, plus the margin.
    assert!(limiter.check_at("t", 1, 1_000_000_001).unwrap().allowed);
    let pttl: i64 = conn.pttl(limiter.redis_key("t").unwrap()).unwrap();
    // The next window ends at 3 s: 1 999 999 999 ns → 2000 ms, + 1 s.
    assert!((2900..=3000).contains(&pttl), "{pttl}");
}

#[test]
fn corrupt_window_states_are_repaired_as_fully_consumed() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let limiter = RedisLimiter::builder(FixedWindow::per_second(4).unwrap())
        .prefix("c")
        .time_source(client_time())
        .build(pool)
        .unwrap();
    let key = limiter.redis_key("k").unwrap();
    for bad in ["garbage", "12", "1:2:3", "99999999999999999:1"] {
        let () = conn.set(&key, bad).unwrap();
        let d = limiter.check_at("k", 1, 5 * S).unwrap();
        assert!(!d.allowed, "{bad}");
        assert_eq!(d.remaining, 0);
        let stored: String = conn.get(&key).unwrap();
        assert_eq!(stored, "5:4", "{bad}");
    }
    assert_eq!(limiter.stats().corrupt_states_repaired, 4);
    // The next window starts afresh.
    assert!(limiter.check_at("k", 4, 6 * S).unwrap().allowed);
}

#[test]
fn configurations_the_scripts_cannot_run_exactly_are_refused() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let invalid = |r: Result<_, RedisLimitError>| match r {
        Err(RedisLimitError::InvalidOption(m)) => m,
        Err(e) => panic!("wanted InvalidOption, got {e}"),
        Ok(_) => panic!("wanted InvalidOption, got a limiter"),
    };
    // (L + 1) × W beyond 2^53.
    let m = invalid(
        RedisLimiter::builder(SlidingWindow::per_hour(3_000).unwrap())
            .build(pool.clone())
            .map(drop),
    );
    assert!(m.contains("2^53"), "{m}");
    assert!(
        RedisLimiter::builder(SlidingWindow::per_hour(2_000).unwrap())
            .build(pool.clone())
            .is_ok()
    );
    // A window of 7 ns under server time: gcd(7 ns, 1 s) = 1 ns.
    let seven = FixedWindow::with_window_ns(3, 7).unwrap();
    let m = invalid(RedisLimiter::builder(seven).build(pool.clone()).map(drop));
    assert!(m.contains("gcd"), "{m}");
    // Under client time it runs, while the caller's time stays in range;
    // beyond, the call is refused before anything is sent.
    let limiter = RedisLimiter::builder(seven)
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    assert!(limiter.check_at("k", 1, 1_000_000_007).unwrap().allowed);
    let m = invalid(limiter.check_at("k", 1, u64::MAX / 2).map(drop));
    assert!(m.contains("2^53"), "{m}");
    assert!(limiter.check_batch_at(&[("k", 1)], u64::MAX / 2).is_err());
    // Whole microseconds always run under server time.
    assert!(
        RedisLimiter::builder(FixedWindow::with_window_ns(3, 1_000).unwrap())
            .build(pool)
            .is_ok()
    );
}

#[test]
fn async_windows_decide_like_the_sync_ones() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(ratelimit_redis::AsyncRedisConnection::open(&server.url()))
        .unwrap();
    let limiter = RedisLimiter::builder(FixedWindow::per_minute(2).unwrap())
        .prefix("a")
        .build(conn)
        .unwrap();
    rt.block_on(async {
        assert!(limiter.check("k").await.unwrap().allowed);
        assert!(limiter.check("k").await.unwrap().allowed);
        assert!(!limiter.check("k").await.unwrap().allowed);
        let w = limiter.inspect("k").await.unwrap().window.unwrap();
        assert_eq!(w.count, 2);
    });
}

#[test]
fn any_algorithm_chosen_at_run_time_decides_like_the_typed_limiter() {
    use ratelimit_core::AnyAlgorithm;

    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let sliding = SlidingWindow::new(4, Duration::from_millis(10)).unwrap();
    let typed = RedisLimiter::builder(sliding)
        .prefix("typed")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let any = RedisLimiter::builder(AnyAlgorithm::SlidingWindow(sliding))
        .prefix("any")
        .time_source(client_time())
        .build(pool)
        .unwrap();
    for (i, now) in (0..40u64).map(|i| (i, 1_000_000_000 + i * 1_700_000)) {
        let cost = i % 3;
        assert_eq!(
            any.check_at("k", cost, now).unwrap(),
            typed.check_at("k", cost, now).unwrap(),
            "request {i}"
        );
    }
}

/// Exactness at today's times (about 2^60.6 ns since the epoch, far beyond
/// the conformance files' times): many windows, costs, steps forward and
/// back, both algorithms, every answer field for field against the core.
#[test]
fn windows_at_wall_clock_times_match_the_core_exactly() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let windows_ns: [u64; 7] = [
        1_000,
        1_000_000,
        250_000_000,
        S,
        1_500_000_000,
        60 * S,
        3600 * S,
    ];
    let mut x: u64 = 12_345;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 16
    };
    for (i, &w) in windows_ns.iter().enumerate() {
        let fixed = FixedWindow::with_window_ns(9, w).unwrap();
        let sliding = SlidingWindow::with_window_ns(9, w).unwrap();
        let r_fixed = RedisLimiter::builder(fixed)
            .prefix(format!("wall-f{i}"))
            .time_source(client_time())
            .build(pool.clone())
            .unwrap();
        let r_sliding = RedisLimiter::builder(sliding)
            .prefix(format!("wall-s{i}"))
            .time_source(client_time())
            .build(pool.clone())
            .unwrap();
        let (mut f_state, mut s_state) = (0u128, 0u128);
        // 2025-11-30 and a bit, in nanoseconds.
        let mut now: u64 = 1_764_460_800_123_456_789;
        for step in 0..150 {
            let r = next();
            // Mostly forward by up to 1.5 windows, sometimes back a little.
            if r % 11 == 0 {
                now -= (r >> 8) % (w / 3 + 1);
            } else {
                now += (r >> 8) % (w + w / 2 + 1);
            }
            let cost = (r >> 40) % 5;
            let want = fixed.check(f_state, now, cost).unwrap();
            let got = r_fixed.check_at("k", cost, now).unwrap();
            assert_eq!(got, want.decision, "fixed W={w} step {step} at {now}");
            f_state = want.next.unwrap_or(f_state);
            let want = sliding.check(s_state, now, cost).unwrap();
            let got = r_sliding.check_at("k", cost, now).unwrap();
            assert_eq!(got, want.decision, "sliding W={w} step {step} at {now}");
            s_state = want.next.unwrap_or(s_state);
        }
    }
}
