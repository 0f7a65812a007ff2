//! This project in every shape: the core's pure step, `Bucket` for one key,
//! `KeyedLimiter` for keys, all on the default `MonotonicClock`.

use core::hint::black_box;
use std::sync::Arc;

use core::time::Duration;

use ratelimit_core::{Algorithm, FixedWindow, Rate, SlidingWindow, Strategy, TokenBucket};
use ratelimit_memory::{Bucket, KeyedLimiter, Word, check_all};

use super::worker;
use crate::measure::Worker;
use crate::shapes::{
    CHECK_N_COST, Fixture, HUGE_CAPACITY, HUGE_RATE_PER_S, PREFILL_COST, RETURNING_CAPACITY,
    RETURNING_RATE_PER_S, Shape, next_index, next_key,
};

/// The allowed path: capacity 2^42, one unit per nanosecond.
fn allowed() -> TokenBucket {
    TokenBucket::with_rate(HUGE_CAPACITY, Rate::per_second(HUGE_RATE_PER_S)).expect("a valid quota")
}

/// The returning shapes' quota: a bucket back to full 1 ns after a check.
fn returning() -> TokenBucket {
    TokenBucket::with_rate(RETURNING_CAPACITY, Rate::per_second(RETURNING_RATE_PER_S))
        .expect("a valid quota")
}

/// A fixed window whose limit no run reaches.
fn fixed_window() -> FixedWindow {
    FixedWindow::new(1 << 62, Duration::from_secs(3600)).expect("a valid quota")
}

/// A sliding window whose limit no run reaches (its largest).
fn sliding_window() -> SlidingWindow {
    SlidingWindow::new(u64::from(u32::MAX), Duration::from_secs(3600)).expect("a valid quota")
}

/// A keyed limiter of `algorithm` over `u64` keys, each checked once at
/// `cost` (which must be allowed), with room for twice as many keys.
fn keyed_u64<A: Algorithm>(algorithm: A, keys: &[u64], cost: u64) -> KeyedLimiter<u64, A>
where
    A::State: Word,
{
    let limiter = KeyedLimiter::builder(algorithm)
        .max_keys(keys.len().max(1024) * 2)
        .build();
    for k in keys {
        let d = limiter.check_n(k, cost).expect("cost within capacity");
        assert!(d.allowed, "pre-insert of key {k} denied: {d:?}");
    }
    limiter
}

/// [`keyed_u64`] with `String` keys.
fn keyed_strings<A: Algorithm>(algorithm: A, keys: &[String], cost: u64) -> KeyedLimiter<String, A>
where
    A::State: Word,
{
    let limiter = KeyedLimiter::builder(algorithm)
        .max_keys(keys.len().max(1024) * 2)
        .build();
    for k in keys {
        let d = limiter
            .check_n(k.as_str(), cost)
            .expect("cost within capacity");
        assert!(d.allowed, "pre-insert of key {k} denied: {d:?}");
    }
    limiter
}

/// A worker checking a keyed limiter's `u64` keys in `order`.
fn keyed_worker<A: Algorithm + Send + Sync + 'static>(
    limiter: KeyedLimiter<u64, A>,
    order: &Arc<[u64]>,
) -> Worker<'static>
where
    A::State: Word,
{
    let order = Arc::clone(order);
    worker((limiter, 0_usize), move |(l, cursor)| {
        let k = next_key(&order, cursor);
        let _ = black_box(l.check(&k));
    })
}

/// A worker checking a keyed limiter's `String` keys (by `&str`) in the
/// index `order`.
fn strings_worker<A: Algorithm + Send + Sync + 'static>(
    limiter: KeyedLimiter<String, A>,
    keys: &Arc<[String]>,
    order: &Arc<[u32]>,
) -> Worker<'static>
where
    A::State: Word,
{
    let (keys, order) = (Arc::clone(keys), Arc::clone(order));
    worker((limiter, 0_usize), move |(l, cursor)| {
        let k = &keys[next_index(&order, cursor)];
        let _ = black_box(l.check(k.as_str()));
    })
}

/// Two quotas to alternate between: the allowed path's, and one unit less
/// of capacity (every key stays far from its limit under both).
fn reconfigure_quotas() -> [TokenBucket; 2] {
    [
        allowed(),
        TokenBucket::with_rate(HUGE_CAPACITY - 1, Rate::per_second(HUGE_RATE_PER_S))
            .expect("a valid quota"),
    ]
}

/// A keyed limiter over `keys`, each pre-inserted with a large cost so its
/// state stays ahead of the clock for the whole run (see
/// [`PREFILL_COST`]), with room for twice as many keys so the table is
/// never near its bound.
fn keyed(keys: &[u64]) -> KeyedLimiter<u64, TokenBucket> {
    let limiter = KeyedLimiter::builder(allowed())
        .max_keys(keys.len().max(1024) * 2)
        .build();
    for k in keys {
        let d = limiter
            .check_n(k, PREFILL_COST)
            .expect("cost within capacity");
        assert!(d.allowed, "pre-insert of key {k} denied: {d:?}");
    }
    limiter
}

pub(super) fn workers(shape: Shape, fixture: &Fixture) -> Option<Vec<Worker<'static>>> {
    let w = match shape {
        Shape::CoreStep => {
            let algorithm = allowed();
            worker((0_u64, 0_u64), move |(tat, now)| {
                *now += 3;
                let step = black_box(&algorithm)
                    .check(*tat, black_box(*now), 1)
                    .expect("cost within capacity");
                if let Some(next) = step.next {
                    *tat = next;
                }
                let _ = black_box(step.decision);
            })
        }
        Shape::CheckOneKey => worker(Bucket::new(allowed()), |b| {
            let _ = black_box(black_box(&*b).check());
        }),
        Shape::CheckNOneKey => worker(Bucket::new(allowed()), |b| {
            let _ = black_box(black_box(&*b).check_n(CHECK_N_COST)).ok();
        }),
        Shape::ReserveOneKey => worker(Bucket::new(allowed()), |b| {
            let _ = black_box(black_box(&*b).reserve(1, None)).ok();
        }),
        Shape::CheckOneKeyDenied => {
            let bucket =
                Bucket::new(TokenBucket::with_rate(1, Rate::per_hour(1)).expect("a valid quota"));
            assert!(bucket.check().allowed);
            assert!(!bucket.check().allowed);
            worker(bucket, |b| {
                let _ = black_box(black_box(&*b).check());
            })
        }
        Shape::Keyed10k | Shape::Keyed1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed(keys), order)
        }
        Shape::Returning10k | Shape::Returning1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed_u64(returning(), keys, 1), order)
        }
        Shape::DenialFlood1m => {
            let (keys, order) = fixture.keyed(shape)?;
            let drained = TokenBucket::with_rate(1, Rate::per_hour(1)).expect("a valid quota");
            let limiter = keyed_u64(drained, keys, 1);
            assert!(!limiter.check(&keys[0]).allowed);
            keyed_worker(limiter, order)
        }
        Shape::ReturningStrings10k | Shape::ReturningStrings1m => {
            let (keys, order) = fixture.strings(shape)?;
            strings_worker(keyed_strings(returning(), keys, 1), keys, order)
        }
        Shape::StringsLive10k => {
            let (keys, order) = fixture.strings(shape)?;
            strings_worker(keyed_strings(allowed(), keys, PREFILL_COST), keys, order)
        }
        Shape::FixedWindowKeyed10k | Shape::FixedWindowKeyed1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed_u64(fixed_window(), keys, 1), order)
        }
        Shape::SlidingWindowKeyed10k | Shape::SlidingWindowKeyed1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed_u64(sliding_window(), keys, 1), order)
        }
        Shape::FixedWindowOneKey => worker(Bucket::new(fixed_window()), |b| {
            let _ = black_box(black_box(&*b).check());
        }),
        Shape::SlidingWindowOneKey => worker(Bucket::new(sliding_window()), |b| {
            let _ = black_box(black_box(&*b).check());
        }),
        Shape::CheckAll2 => {
            let buckets = [Bucket::new(allowed()), Bucket::new(allowed())];
            worker(buckets, |[a, b]| {
                let _ = black_box(check_all([&a.limit(1), &b.limit(1)]));
            })
        }
        Shape::CheckAll3 => {
            let buckets = [
                Bucket::new(allowed()),
                Bucket::new(allowed()),
                Bucket::new(allowed()),
            ];
            worker(buckets, |[a, b, c]| {
                let _ = black_box(check_all([&a.limit(1), &b.limit(1), &c.limit(1)]));
            })
        }
        Shape::Keyed1mAfterReconfigure => {
            let limiter = keyed(&fixture.keys_1m);
            let (keys, permutation) = (
                Arc::clone(&fixture.keys_1m),
                Arc::clone(&fixture.permutation_1m),
            );
            let quotas = reconfigure_quotas();
            worker((limiter, 0_usize, 0_usize), move |(l, cursor, passes)| {
                if *cursor == permutation.len() {
                    *cursor = 0;
                    *passes += 1;
                    l.reconfigure(quotas[*passes % 2], Strategy::KeepConsumed);
                }
                let k = keys[permutation[*cursor] as usize];
                *cursor += 1;
                let _ = black_box(l.check(&k));
            })
        }
        Shape::Reconfigure1m => {
            let limiter = keyed(&fixture.keys_1m);
            let quotas = reconfigure_quotas();
            worker((limiter, 0_usize), move |(l, calls)| {
                *calls += 1;
                l.reconfigure(quotas[*calls % 2], Strategy::KeepConsumed);
            })
        }
        Shape::OneKeyTwoThreads => {
            let bucket = Arc::new(Bucket::new(allowed()));
            return Some(
                (0..2)
                    .map(|_| {
                        worker(Arc::clone(&bucket), |b| {
                            let _ = black_box(b.check());
                        })
                    })
                    .collect(),
            );
        }
        Shape::DistinctKeysTwoThreads => {
            let keys = &fixture.keys_10k[..2];
            let limiter = Arc::new(keyed(keys));
            return Some(
                keys.iter()
                    .map(|&k| {
                        worker(Arc::clone(&limiter), move |l| {
                            let _ = black_box(l.check(&k));
                        })
                    })
                    .collect(),
            );
        }
        _ => return None,
    };
    Some(vec![w])
}
