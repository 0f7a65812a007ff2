//! A quick measurement of the hot paths, without criterion: nanoseconds per
//! call, best of several runs, single thread. The project's comparison
//! (`cargo xtask bench`, governor side by side) is the reference; this
//! exists to check a change to this crate in seconds:
//!
//! ```text
//! cargo run -p ratelimit-memory --release --example hot_path [-- --two]
//! ```

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ratelimit_memory::{
    Algorithm, Bucket, Clock, KeyedLimiter, MonotonicClock, Rate, TokenBucket, check_all,
};

/// Best-of-7 nanoseconds per call of `f` over `n` calls.
fn ns_per_op(n: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn row(name: &str, ns: f64) {
    println!("{name:<34} {ns:6.1} ns");
}

fn main() {
    if std::env::args().any(|a| a == "--two") {
        two_threads();
        return;
    }
    const N: u64 = 5_000_000;
    let clock = MonotonicClock::new();
    row(
        "MonotonicClock::now_ns",
        ns_per_op(N, |_| {
            let _ = black_box(clock.now_ns());
        }),
    );
    let origin = Instant::now();
    row(
        "std Instant::elapsed",
        ns_per_op(N, |_| {
            let _ = black_box(origin.elapsed());
        }),
    );
    let roomy = TokenBucket::with_rate(1 << 42, Rate::per_second(1_000_000_000)).unwrap();
    row(
        "core step (check)",
        ns_per_op(N, |i| {
            let _ = black_box(roomy.check(black_box(i), black_box(i * 3), 1).unwrap());
        }),
    );
    let word = AtomicU64::new(0);
    row(
        "uncontended CAS",
        ns_per_op(N, |i| {
            let _ = black_box(word.compare_exchange_weak(
                i,
                i + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ));
        }),
    );
    let bucket = Bucket::new(roomy);
    row(
        "Bucket::check, allowed",
        ns_per_op(N, |_| {
            let _ = black_box(bucket.check());
        }),
    );
    let tight = Bucket::new(TokenBucket::with_rate(1, Rate::per_hour(1)).unwrap());
    row(
        "Bucket::check, denied",
        ns_per_op(N, |_| {
            let _ = black_box(tight.check());
        }),
    );
    for keys in [10_000u64, 1_000_000] {
        let limiter = KeyedLimiter::<u64, _>::builder(roomy)
            .max_keys(2 * keys as usize)
            .build();
        for k in 0..keys {
            let _ = limiter.check(&k);
        }
        // Random order: a multiplicative permutation of 0..keys.
        let order: Vec<u64> = (0..keys)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % keys)
            .collect();
        let ns = ns_per_op(N, |i| {
            let _ = black_box(limiter.check(&order[(i % keys) as usize]));
        });
        row(&format!("KeyedLimiter::check, {keys} keys"), ns);
    }
    several_limits(roomy);
}

/// One request against 1, 2 and 3 limits of 10 000 live keys each (the
/// third a global `Bucket`): `check` against `check_all`.
fn several_limits(roomy: TokenBucket) {
    const N: u64 = 2_000_000;
    const KEYS: u64 = 10_000;
    let keyed = || {
        let limiter = KeyedLimiter::<u64, _>::builder(roomy)
            .max_keys(2 * KEYS as usize)
            .build();
        for k in 0..KEYS {
            // About 18 minutes ahead: live throughout.
            let _ = limiter.check_n(&k, 1 << 40);
        }
        limiter
    };
    let (a, b) = (keyed(), keyed());
    let global = Bucket::new(roomy);
    let key = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % KEYS;
    row(
        "KeyedLimiter::check, live keys",
        ns_per_op(N, |i| {
            let _ = black_box(a.check(&key(i)));
        }),
    );
    row(
        "check_all, 2 limits",
        ns_per_op(N, |i| {
            let k = key(i);
            let _ = black_box(check_all([&a.limit(&k, 1), &b.limit(&k, 1)]));
        }),
    );
    row(
        "check_all, 3 limits",
        ns_per_op(N, |i| {
            let k = key(i);
            let _ = black_box(check_all([
                &a.limit(&k, 1),
                &b.limit(&k, 1),
                &global.limit(1),
            ]));
        }),
    );
}

/// `--two`: two threads checking one bucket (every op a write), the
/// contended case; very sensitive to other load on the machine.
fn two_threads() {
    let roomy = TokenBucket::with_rate(1 << 42, Rate::per_second(1_000_000_000)).unwrap();
    let bucket = Bucket::new(roomy);
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..2_000_000 {
                        let _ = black_box(bucket.check());
                    }
                });
            }
        });
        println!(
            "2 threads one bucket: {:.1} ns per op per thread",
            start.elapsed().as_nanos() as f64 / 2_000_000.0
        );
    }
}
