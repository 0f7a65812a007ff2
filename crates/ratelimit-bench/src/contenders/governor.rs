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
use crate::shapes::{CHECK_N_COST, Fixture, Shape, next_key};

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
    let limiter = RateLimiter::keyed(allowed());
    for k in fixture_keys {
        assert!(limiter.check_key(k).is_ok());
    }
    limiter
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
            let limiter = keyed(keys);
            let order = Arc::clone(order);
            worker((limiter, 0_usize), move |(l, cursor)| {
                let k = next_key(&order, cursor);
                let _ = black_box(l.check_key(&k)).ok();
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
