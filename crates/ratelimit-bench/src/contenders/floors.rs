//! The floors: what any limiter must at least pay, a clock read and an
//! uncontended compare-and-swap.

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use governor::clock::{Clock as _, DefaultClock};
use ratelimit_core::Clock as _;
use ratelimit_memory::MonotonicClock;

use super::{Implementation, worker};
use crate::measure::Worker;
use crate::shapes::Shape;

pub(super) fn workers(which: Implementation, shape: Shape) -> Option<Vec<Worker<'static>>> {
    let w = match (which, shape) {
        (Implementation::InstantNow, Shape::ClockRead) => worker((), |()| {
            let _ = black_box(Instant::now());
        }),
        (Implementation::MonotonicClock, Shape::ClockRead) => worker(MonotonicClock::new(), |c| {
            let _ = black_box(black_box(&*c).now_ns());
        }),
        (Implementation::Quanta, Shape::ClockRead) => worker(DefaultClock::default(), |c| {
            let _ = black_box(black_box(&*c).now());
        }),
        (Implementation::AtomicCas, Shape::Cas) => worker(AtomicU64::new(0), |a| {
            let a = black_box(&*a);
            let v = a.load(Ordering::Relaxed);
            black_box(a.compare_exchange(v, v + 1, Ordering::Relaxed, Ordering::Relaxed)).ok();
        }),
        (Implementation::AtomicCas, Shape::CasTwoThreads) => {
            let shared = Arc::new(AtomicU64::new(0));
            let clock = MonotonicClock::new();
            return Some(
                (0..2)
                    .map(|_| {
                        let state = (Arc::clone(&shared), clock.clone());
                        worker(state, |(a, clock)| {
                            let now = clock.now_ns();
                            let mut v = a.load(Ordering::Relaxed);
                            while let Err(actual) = a.compare_exchange_weak(
                                v,
                                v.max(now) + 1,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            ) {
                                v = actual;
                            }
                        })
                    })
                    .collect(),
            );
        }
        _ => return None,
    };
    Some(vec![w])
}
