//! Real threads on real atomics: the counts loom proves on tiny models,
//! checked at scale. Time comes from a `ManualClock` that only the test
//! moves, between barriers, so every expected count is exact.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Barrier};
use std::thread;

use ratelimit_memory::{
    Algorithm, Bucket, Clock, KeyedLimiter, LeakyBucket, ManualClock, Rate, Reason, TokenBucket,
};

const THREADS: usize = 8;
const MS: u64 = 1_000_000;

fn token(capacity: u64, per_second: u64) -> TokenBucket {
    TokenBucket::with_rate(capacity, Rate::per_second(per_second)).unwrap()
}

/// Runs `body(thread_index)` on `THREADS` threads at once and sums what
/// they return.
fn hammer(body: impl Fn(usize) -> u64 + Sync) -> u64 {
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (start, body) = (&start, &body);
                s.spawn(move || {
                    start.wait();
                    body(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn frozen_clock_one_bucket_admits_exactly_capacity() {
    for capacity in [1, 7, 1000, 5000] {
        let clock = Arc::new(ManualClock::new(3 * MS));
        let bucket = Bucket::with_clock(token(capacity, 10), clock);
        let admitted = hammer(|_| (0..1000).map(|_| u64::from(bucket.check().allowed)).sum());
        assert_eq!(
            admitted,
            capacity.min(THREADS as u64 * 1000),
            "capacity {capacity}"
        );
        assert!(!bucket.check().allowed);
    }
}

#[test]
fn frozen_clock_one_key_admits_exactly_capacity() {
    for capacity in [1, 7, 1000, 5000] {
        let clock = Arc::new(ManualClock::new(3 * MS));
        let limiter = KeyedLimiter::<String, _, _>::builder(token(capacity, 10))
            .clock(clock)
            .build();
        // All threads race to create the key too: exactly one insert wins.
        let admitted = hammer(|_| {
            (0..1000)
                .map(|_| u64::from(limiter.check("hot").allowed))
                .sum()
        });
        assert_eq!(
            admitted,
            capacity.min(THREADS as u64 * 1000),
            "capacity {capacity}"
        );
        assert_eq!(limiter.len(), 1);
    }
}

/// The clock moves between rounds by steps that are not multiples of `T`;
/// each round admits exactly what the sequential model admits.
#[test]
fn stepped_clock_admits_exactly_the_models_count() {
    let algorithm = token(50, 1000); // T = 1 ms, τ = 50 ms
    let clock = Arc::new(ManualClock::new(10 * MS));
    let bucket = Bucket::with_clock(algorithm, Arc::clone(&clock));
    let keyed = KeyedLimiter::<u32, _, _>::builder(algorithm)
        .clock(Arc::clone(&clock))
        .build();
    let mut model_bucket = 0u64;
    let mut model_keys = [0u64; 16];
    let steps = [
        0,
        7_300_000,
        999_999,
        1,
        30 * MS,
        100 * MS,
        2_500_001,
        4 * MS,
    ];
    for (round, step) in steps.iter().cycle().take(40).enumerate() {
        clock.advance(Duration::from_nanos(*step));
        let now = clock.now_ns();
        // 8 threads × 20 attempts on one bucket: more than it can hold.
        let expected = admit_all(algorithm, &mut model_bucket, now, 160);
        let got = hammer(|_| (0..20).map(|_| u64::from(bucket.check().allowed)).sum());
        assert_eq!(got, expected, "bucket, round {round}");
        // 8 threads × 16 keys × 10 attempts each, interleaved across keys.
        let expected: u64 = model_keys
            .iter_mut()
            .map(|tat| admit_all(algorithm, tat, now, 80))
            .sum();
        let got = hammer(|t| {
            (0..160u32)
                .map(|i| u64::from(keyed.check(&((i + t as u32) % 16)).allowed))
                .sum()
        });
        assert_eq!(got, expected, "keyed, round {round}");
    }
}

/// The model: `attempts` checks of cost 1 at `now`, one after the other.
fn admit_all(
    algorithm: impl Algorithm<State = u64>,
    tat: &mut u64,
    now: u64,
    attempts: u64,
) -> u64 {
    let mut admitted = 0;
    for _ in 0..attempts {
        let step = algorithm.check(*tat, now, 1).unwrap();
        if let Some(next) = step.next {
            *tat = next;
        }
        admitted += u64::from(step.decision.allowed);
    }
    admitted
}

#[test]
fn frozen_clock_many_keys_each_admit_exactly_capacity() {
    let clock = Arc::new(ManualClock::new(MS));
    let limiter = KeyedLimiter::<(u16, u16), _, _>::builder(token(3, 1))
        .clock(clock)
        .build();
    let per_key: Vec<AtomicU64> = (0..500).map(|_| AtomicU64::new(0)).collect();
    hammer(|t| {
        for i in 0..5000 {
            let k = (i * 7 + t * 13) % 500;
            if limiter.check(&(k as u16, 9)).allowed {
                per_key[k].fetch_add(1, Ordering::Relaxed);
            }
        }
        0
    });
    for (k, n) in per_key.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 3, "key {k}");
    }
    assert_eq!(limiter.len(), 500);
}

/// Token bucket reservations at one instant: the first `C` proceed at once,
/// then one every `T`, each wait handed out exactly once.
#[test]
fn contended_token_reservations_hand_out_distinct_waits() {
    let t = 1_000_000; // 1000 per second
    let clock = Arc::new(ManualClock::new(5 * MS));
    let bucket = Bucket::with_clock(token(10, 1000), Arc::clone(&clock));
    let keyed = KeyedLimiter::<String, _, _>::builder(token(10, 1000))
        .clock(clock)
        .build();
    for run in 0..2 {
        let waits = std::sync::Mutex::new(Vec::new());
        hammer(|_| {
            for _ in 0..25 {
                let r = if run == 0 {
                    bucket.reserve(1, None)
                } else {
                    keyed.reserve("k", 1, None)
                }
                .unwrap();
                let wait = r.wait().expect("admitted");
                waits.lock().unwrap().push(wait.as_nanos() as u64);
            }
            0
        });
        let mut waits = waits.into_inner().unwrap();
        waits.sort_unstable();
        let mut expected = vec![0; 10];
        expected.extend((1..=190).map(|i| i * t));
        assert_eq!(waits, expected, "run {run}");
    }
}

/// Leaky bucket reservations at one instant: a queue of `C` that leaves
/// exactly `T` apart, the first at once; the rest are refused.
#[test]
fn contended_leaky_reservations_fill_the_queue_exactly() {
    let clock = Arc::new(ManualClock::new(5 * MS));
    let bucket = Bucket::with_clock(
        LeakyBucket::with_rate(40, Rate::per_second(1000)).unwrap(),
        clock,
    );
    let waits = std::sync::Mutex::new(Vec::new());
    let refused = hammer(|_| {
        let mut refused = 0;
        for _ in 0..25 {
            let r = bucket.reserve(1, Some(Duration::from_secs(1))).unwrap();
            if let Some(wait) = r.wait() {
                waits.lock().unwrap().push(wait.as_nanos() as u64);
            } else {
                refused += 1;
            }
        }
        refused
    });
    let mut waits = waits.into_inner().unwrap();
    waits.sort_unstable();
    assert_eq!(waits, (0..40).map(|i| i * MS).collect::<Vec<_>>());
    assert_eq!(refused, 200 - 40);
}

/// Hot keys are checked while other threads flood the same shard with new
/// keys, so the shard sweeps (and removes the hot keys whenever they are
/// back to full) concurrently with the checks. Each round refills the hot
/// keys exactly; admitting more would mean a sweep forgot consumption.
#[test]
fn sweeps_concurrent_with_checks_forget_no_consumption() {
    let clock = Arc::new(ManualClock::new(MS));
    let limiter = KeyedLimiter::<String, _, _>::builder(token(5, 100)) // T = 10 ms
        .clock(Arc::clone(&clock))
        .max_keys(64)
        .shards(1)
        .build();
    for round in 0..300u64 {
        // 50 ms: every key of the previous round is back to full.
        clock.advance(Duration::from_millis(50));
        // Hot admissions in the low half of the sum, cold ones in the high.
        let sum = hammer(|t| {
            if t < THREADS / 2 {
                let key = format!("hot{}", t % 2);
                (0..40)
                    .map(|_| u64::from(limiter.check(&key).allowed))
                    .sum()
            } else {
                // 4 × 10 = 40 new keys a round; with the 2 hot keys the live
                // keys never exceed 42 < 64, so none may be refused.
                let mut admitted = 0;
                for i in 0..10 {
                    let d = limiter.check(&format!("cold-{round}-{t}-{i}"));
                    assert_ne!(d.reason, Reason::KeyTableFull, "round {round}");
                    admitted += u64::from(d.allowed);
                }
                admitted << 32
            }
        });
        let (hot, cold) = (sum & 0xffff_ffff, sum >> 32);
        assert_eq!(hot, 10, "round {round}: two hot keys of capacity 5");
        assert_eq!(cold, 40, "round {round}");
        assert!(limiter.len() <= 64);
    }
}
