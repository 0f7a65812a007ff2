//! Who is measured: this project, the peers and the floors. Each module
//! turns a [`Shape`] into the workers that run it, or `None` when the
//! implementation has no such operation.

mod floors;
mod governor;
mod naive;
mod ours;

use crate::measure::Worker;
use crate::shapes::{Fixture, Shape};

/// An implementation in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Implementation {
    /// This project: `ratelimit-core` and `ratelimit-memory`.
    Ratelimit,
    /// The `governor` crate with its defaults (quanta clock, DashMap store).
    Governor,
    /// The naive `Mutex<HashMap>` float port of the Python design.
    Naive,
    /// Floor: `std::time::Instant::now()`.
    InstantNow,
    /// Floor: this project's `MonotonicClock::now_ns()`.
    MonotonicClock,
    /// Floor: governor's default clock (quanta).
    Quanta,
    /// Floor: an uncontended `AtomicU64` compare-and-swap.
    AtomicCas,
}

impl Implementation {
    /// Every implementation, in table order within a shape.
    pub const ALL: [Self; 7] = [
        Self::Ratelimit,
        Self::Governor,
        Self::Naive,
        Self::InstantNow,
        Self::MonotonicClock,
        Self::Quanta,
        Self::AtomicCas,
    ];

    /// The name printed in the table and the JSON.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ratelimit => "ratelimit",
            Self::Governor => "governor",
            Self::Naive => "naive Mutex<HashMap>",
            Self::InstantNow => "Instant::now",
            Self::MonotonicClock => "MonotonicClock::now_ns",
            Self::Quanta => "governor clock (quanta)",
            Self::AtomicCas => "AtomicU64 CAS",
        }
    }

    /// The name as a criterion function id: no spaces or brackets.
    #[must_use]
    pub const fn slug(self) -> &'static str {
        match self {
            Self::Ratelimit => "ratelimit",
            Self::Governor => "governor",
            Self::Naive => "naive_mutex_hashmap",
            Self::InstantNow => "instant_now",
            Self::MonotonicClock => "monotonic_clock",
            Self::Quanta => "quanta",
            Self::AtomicCas => "atomic_cas",
        }
    }

    /// The workers (one per thread) that run `shape`, with the state they
    /// share already built (keys pre-inserted), or `None` when this
    /// implementation has nothing to measure for it.
    #[must_use]
    pub fn workers(self, shape: Shape, fixture: &Fixture) -> Option<Vec<Worker<'static>>> {
        match self {
            Self::Ratelimit => ours::workers(shape, fixture),
            Self::Governor => governor::workers(shape, fixture),
            Self::Naive => naive::workers(shape, fixture),
            Self::InstantNow | Self::MonotonicClock | Self::Quanta | Self::AtomicCas => {
                floors::workers(self, shape)
            }
        }
    }

    /// Why there is no row for `shape`, when that needs saying.
    #[must_use]
    pub const fn missing(self, shape: Shape) -> Option<&'static str> {
        match (self, shape) {
            (Self::Governor, Shape::CoreStep) => Some("governor exposes no pure GCRA step"),
            (Self::Governor, Shape::ReserveOneKey) => {
                Some("governor has no synchronous reserve (until_ready is async)")
            }
            (
                Self::Governor,
                Shape::FixedWindowOneKey
                | Shape::SlidingWindowOneKey
                | Shape::FixedWindowKeyed10k
                | Shape::SlidingWindowKeyed10k
                | Shape::FixedWindowKeyed1m
                | Shape::SlidingWindowKeyed1m,
            ) => Some("governor has no window algorithm (compare with the token-bucket row)"),
            (Self::Governor, Shape::CheckAll2 | Shape::CheckAll3) => {
                Some("governor has no all-or-nothing check of several limits")
            }
            (Self::Governor, Shape::Keyed1mAfterReconfigure | Shape::Reconfigure1m) => {
                Some("governor cannot change a live limiter's quota")
            }
            _ => None,
        }
    }
}

/// A worker that runs `op` once per operation on its own copy of `state`.
fn worker<S: Send + 'static>(
    mut state: S,
    mut op: impl FnMut(&mut S) + Send + 'static,
) -> Worker<'static> {
    Box::new(move |n| {
        for _ in 0..n {
            op(&mut state);
        }
    })
}
