//! This project in every shape: the core's pure step, `Bucket` for one key,
//! `KeyedLimiter` for keys, all on the default `MonotonicClock`.

use core::hint::black_box;
use std::sync::Arc;

use ratelimit_core::{Algorithm as _, Rate, TokenBucket};
use ratelimit_memory::{Bucket, KeyedLimiter};

use super::worker;
use crate::measure::Worker;
use crate::shapes::{
    CHECK_N_COST, Fixture, HUGE_CAPACITY, HUGE_RATE_PER_S, PREFILL_COST, Shape, next_key,
};

/// The allowed path: capacity 2^42, one unit per nanosecond.
fn allowed() -> TokenBucket {
    TokenBucket::with_rate(HUGE_CAPACITY, Rate::per_second(HUGE_RATE_PER_S)).expect("a valid quota")
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
            let limiter = keyed(keys);
            let order = Arc::clone(order);
            worker((limiter, 0_usize), move |(l, cursor)| {
                let k = next_key(&order, cursor);
                let _ = black_box(l.check(&k));
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
