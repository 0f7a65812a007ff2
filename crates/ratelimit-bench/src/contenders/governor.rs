//! governor in every shape it has, with its defaults: `RateLimiter::direct`
//! for one key, `RateLimiter::keyed` (DashMap, default hasher) for keys,
//! the quanta clock.

use core::hint::black_box;
use core::num::NonZeroU32;
use core::time::Duration;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::worker;
use crate::measure::Worker;
use crate::shapes::{
    CHECK_N_COST, Fixture, RETURNING_CAPACITY, RETURNING_RATE_PER_S, Shape, next_index, next_key,
};

/// governor's closest quota to the allowed path: one cell per nanosecond
/// and the largest burst it takes (2^32 − 1; its burst is a `u32`).
fn allowed() -> Quota {
    Quota::with_period(Duration::from_nanos(1))
        .expect("1 ns is a valid period")
        .allow_burst(NonZeroU32::MAX)
}

fn direct(quota: Quota) -> DefaultDirectRateLimiter {
    RateLimiter::direct(quota)
}

fn keyed(fixture_keys: &[u64]) -> DefaultKeyedRateLimiter<u64> {
    keyed_with(allowed(), fixture_keys)
}

/// A keyed limiter of `quota` over `keys`, each checked once (allowed).
fn keyed_with<K: core::hash::Hash + Eq + Clone>(
    quota: Quota,
    keys: &[K],
) -> DefaultKeyedRateLimiter<K> {
    let limiter = RateLimiter::keyed(quota);
    for k in keys {
        assert!(limiter.check_key(k).is_ok());
    }
    limiter
}

/// The returning shapes' quota: one cell per nanosecond, burst 10.
fn returning() -> Quota {
    let period = 1_000_000_000 / RETURNING_RATE_PER_S;
    Quota::with_period(Duration::from_nanos(period))
        .expect("a valid period")
        .allow_burst(NonZeroU32::new(RETURNING_CAPACITY as u32).expect("not zero"))
}

/// A worker checking `u64` keys in `order`.
fn keyed_worker(limiter: DefaultKeyedRateLimiter<u64>, order: &Arc<[u64]>) -> Worker<'static> {
    let order = Arc::clone(order);
    worker((limiter, 0_usize), move |(l, cursor)| {
        let k = next_key(&order, cursor);
        let _ = black_box(l.check_key(&k)).ok();
    })
}

pub(super) fn workers(shape: Shape, fixture: &Fixture) -> Option<Vec<Worker<'static>>> {
    let w = match shape {
        Shape::CheckOneKey => worker(direct(allowed()), |l| {
            let _ = black_box(black_box(&*l).check()).ok();
        }),
        Shape::CheckNOneKey => {
            let cost = NonZeroU32::new(CHECK_N_COST as u32).expect("cost is not zero");
            worker(direct(allowed()), move |l| {
                let _ = black_box(black_box(&*l).check_n(cost)).ok();
            })
        }
        Shape::CheckOneKeyDenied => {
            let limiter = direct(Quota::per_hour(NonZeroU32::MIN));
            assert!(limiter.check().is_ok());
            assert!(limiter.check().is_err());
            worker(limiter, |l| {
                let _ = black_box(black_box(&*l).check()).ok();
            })
        }
        Shape::Keyed10k | Shape::Keyed1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed(keys), order)
        }
        Shape::Returning10k | Shape::Returning1m => {
            let (keys, order) = fixture.keyed(shape)?;
            keyed_worker(keyed_with(returning(), keys), order)
        }
        Shape::DenialFlood1m => {
            let (keys, order) = fixture.keyed(shape)?;
            let limiter = keyed_with(Quota::per_hour(NonZeroU32::MIN), keys);
            assert!(limiter.check_key(&keys[0]).is_err());
            keyed_worker(limiter, order)
        }
        Shape::ReturningStrings10k | Shape::ReturningStrings1m | Shape::StringsLive10k => {
            let (keys, order) = fixture.strings(shape)?;
            let quota = if shape == Shape::StringsLive10k {
                allowed()
            } else {
                returning()
            };
            let limiter = keyed_with(quota, keys);
            let (keys, order) = (Arc::clone(keys), Arc::clone(order));
            worker((limiter, 0_usize), move |(l, cursor)| {
                let k = &keys[next_index(&order, cursor)];
                let _ = black_box(l.check_key(k)).ok();
            })
        }
        Shape::OneKeyTwoThreads => {
            let limiter = Arc::new(direct(allowed()));
            return Some(
                (0..2)
                    .map(|_| {
                        worker(Arc::clone(&limiter), |l| {
                            let _ = black_box(l.check()).ok();
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
                            let _ = black_box(l.check_key(&k)).ok();
                        })
                    })
                    .collect(),
            );
        }
        _ => return None,
    };
    Some(vec![w])
}
