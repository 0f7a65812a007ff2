//! [`Word`]: the state words the in-memory limiters store, one atomic per
//! key: 64 bits for the buckets (`tat`), 128 bits for the windows (window
//! index and counts). Every load and compare-and-swap of a key's state goes
//! through this module's two implementations, so the orderings are argued
//! once (see `update` in `bucket.rs` and docs/concurrency.md).

use crate::sync::{AtomicU64, AtomicU128, Ordering};

/// A state an in-memory limiter can store in one atomic word: `u64` (the
/// buckets) or `u128` (the window algorithms, and [`AnyAlgorithm`]).
///
/// Implemented for exactly those two; generic code over the limiters
/// writes `A: Algorithm, A::State: Word`.
///
/// [`AnyAlgorithm`]: ratelimit_core::AnyAlgorithm
pub trait Word: sealed::Word {}

impl Word for u64 {}
impl Word for u128 {}

pub(crate) mod sealed {
    /// The atomic behind a [`Word`](super::Word) and the three operations
    /// the limiters use. Relaxed throughout: the word publishes nothing but
    /// itself (see `update` in `bucket.rs`).
    pub trait Word: Copy + Eq + Default + Send + Sync + 'static {
        /// The atomic cell holding the word.
        type Atomic: Send + Sync + core::fmt::Debug;

        /// A cell holding `value`, not yet shared.
        fn cell(value: Self) -> Self::Atomic;

        /// The word's current value (Relaxed).
        fn load(cell: &Self::Atomic) -> Self;

        /// Installs `new` if the word still holds `current` (Relaxed on
        /// success and failure); on failure, the value that won.
        fn swap_if(cell: &Self::Atomic, current: Self, new: Self) -> Result<Self, Self>;

        /// Overwrites the word (Relaxed). Only for a caller that excludes
        /// every other writer of the word: a keyed limiter's conversion of
        /// a key to a new quota, under its shard's write lock (every swap
        /// happens under a read lock; docs/concurrency.md).
        fn store(cell: &Self::Atomic, value: Self);

        /// The word widened to 128 bits (a `u64` in the low bits).
        fn wide(self) -> u128;

        /// The word from [`wide`](Self::wide)'s form.
        fn narrow(wide: u128) -> Self;
    }
}

impl sealed::Word for u64 {
    type Atomic = AtomicU64;

    #[inline]
    fn cell(value: Self) -> AtomicU64 {
        AtomicU64::new(value)
    }

    #[inline]
    fn load(cell: &AtomicU64) -> Self {
        cell.load(Ordering::Relaxed)
    }

    #[inline]
    fn swap_if(cell: &AtomicU64, current: Self, new: Self) -> Result<Self, Self> {
        cell.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed)
    }

    #[inline]
    fn store(cell: &AtomicU64, value: Self) {
        cell.store(value, Ordering::Relaxed);
    }

    #[inline]
    fn wide(self) -> u128 {
        u128::from(self)
    }

    #[inline]
    fn narrow(wide: u128) -> Self {
        wide as u64
    }
}

impl sealed::Word for u128 {
    type Atomic = AtomicU128;

    #[inline]
    fn cell(value: Self) -> AtomicU128 {
        AtomicU128::new(value)
    }

    #[inline]
    fn load(cell: &AtomicU128) -> Self {
        cell.load(Ordering::Relaxed)
    }

    #[inline]
    fn swap_if(cell: &AtomicU128, current: Self, new: Self) -> Result<Self, Self> {
        cell.compare_exchange_weak(current, new, Ordering::Relaxed, Ordering::Relaxed)
    }

    #[inline]
    fn store(cell: &AtomicU128, value: Self) {
        cell.store(value, Ordering::Relaxed);
    }

    #[inline]
    fn wide(self) -> u128 {
        self
    }

    #[inline]
    fn narrow(wide: u128) -> Self {
        wide
    }
}
