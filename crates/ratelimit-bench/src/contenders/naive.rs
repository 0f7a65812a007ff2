//! The naive `Mutex<HashMap>` port in every shape it has: string keys for
//! one key (as the Python system used), `u64` keys for the keyed shapes.

use core::hint::black_box;
use core::time::Duration;
use std::sync::Arc;

use crate::measure::Worker;
use crate::naive::{NaiveStep, NaiveTokenBucket};
use crate::shapes::{CHECK_N_COST, Fixture, HUGE_CAPACITY, HUGE_RATE_PER_S, Shape, next_key};

use super::worker;

const KEY: &str = "user123";

fn allowed<K: core::hash::Hash + Eq>() -> NaiveTokenBucket<K> {
    NaiveTokenBucket::new(HUGE_CAPACITY as f64, HUGE_RATE_PER_S as f64)
}

pub(super) fn workers(shape: Shape, fixture: &Fixture) -> Option<Vec<Worker<'static>>> {
    let one = |op: fn(&NaiveTokenBucket<String>)| {
        let limiter = allowed::<String>();
        worker(limiter, move |l| op(black_box(&*l)))
    };
    let w = match shape {
        Shape::CoreStep => {
            let (capacity, rate) = (HUGE_CAPACITY as f64, HUGE_RATE_PER_S as f64);
            let state = (
                NaiveStep {
                    tokens: capacity,
                    last: 0.0,
                },
                0.0_f64,
            );
            worker(state, move |(step, now)| {
                *now += 3e-9;
                let _ = black_box(step.check(black_box(capacity), rate, *now, 1.0));
            })
        }
        Shape::CheckOneKey => one(|l| {
            let _ = black_box(l.allow_request(KEY));
        }),
        Shape::CheckNOneKey => one(|l| {
            let _ = black_box(l.check_n(KEY, CHECK_N_COST as f64));
        }),
        Shape::ReserveOneKey => one(|l| {
            let _ = black_box(l.reserve(KEY, 1.0, None::<Duration>));
        }),
        Shape::CheckOneKeyDenied => {
            let limiter = NaiveTokenBucket::<String>::new(1.0, 1.0 / 3600.0);
            assert!(limiter.allow_request(KEY).allowed);
            assert!(!limiter.allow_request(KEY).allowed);
            worker(limiter, |l| {
                let _ = black_box(black_box(&*l).allow_request(KEY));
            })
        }
        Shape::Keyed10k | Shape::Keyed1m => {
            let (keys, order) = fixture.keyed(shape)?;
            let limiter = allowed::<u64>();
            for k in keys.iter() {
                assert!(limiter.allow_request(k).allowed);
            }
            let order = Arc::clone(order);
            worker((limiter, 0_usize), move |(l, cursor)| {
                let k = next_key(&order, cursor);
                let _ = black_box(l.allow_request(&k));
            })
        }
        Shape::OneKeyTwoThreads => {
            let limiter = Arc::new(allowed::<String>());
            let _ = limiter.allow_request(KEY);
            return Some(
                (0..2)
                    .map(|_| {
                        worker(Arc::clone(&limiter), |l| {
                            let _ = black_box(l.allow_request(KEY));
                        })
                    })
                    .collect(),
            );
        }
        Shape::DistinctKeysTwoThreads => {
            let limiter = Arc::new(allowed::<u64>());
            return Some(
                fixture.keys_10k[..2]
                    .iter()
                    .map(|&k| {
                        let _ = limiter.allow_request(&k);
                        worker(Arc::clone(&limiter), move |l| {
                            let _ = black_box(l.allow_request(&k));
                        })
                    })
                    .collect(),
            );
        }
        _ => return None,
    };
    Some(vec![w])
}
