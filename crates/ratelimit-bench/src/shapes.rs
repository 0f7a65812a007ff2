//! The shapes of the comparison: what is measured, with which quota and
//! which keys, independent of who implements it.

use std::sync::Arc;

use crate::keys;

/// One scenario of the comparison, named `layer/scenario` like the
/// criterion groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shape {
    /// The pure algorithm step on a local `tat`: no clock, no atomic.
    CoreStep,
    /// One key, always allowed (huge capacity and rate).
    CheckOneKey,
    /// One key, always denied (bucket drained, refill one per hour).
    CheckOneKeyDenied,
    /// One key, always allowed, cost 4 (`check_n`).
    CheckNOneKey,
    /// 10 000 pre-inserted `u64` keys in a random order, always allowed.
    Keyed10k,
    /// 1 000 000 pre-inserted `u64` keys in a random order, always allowed.
    Keyed1m,
    /// Two threads on one key, always allowed: every operation a write to
    /// the same state.
    OneKeyTwoThreads,
    /// Two threads, each on its own key of one keyed limiter.
    DistinctKeysTwoThreads,
    /// `reserve` of cost 1 on one key, unbounded wait.
    ReserveOneKey,
    /// Floor: one clock read.
    ClockRead,
    /// Floor: one uncontended `AtomicU64::compare_exchange`.
    Cas,
    /// Floor: two threads each reading the clock and then moving one shared
    /// `AtomicU64` to `max(value, now) + 1` with a load + `compare_exchange`
    /// loop: a one-key limiter without its decision, for reference beside
    /// [`OneKeyTwoThreads`](Self::OneKeyTwoThreads). Not a strict bound:
    /// under contention less work per op can mean more failed swaps.
    CasTwoThreads,
}

impl Shape {
    /// Every shape, in table order.
    pub const ALL: [Self; 12] = [
        Self::CoreStep,
        Self::CheckOneKey,
        Self::CheckOneKeyDenied,
        Self::CheckNOneKey,
        Self::Keyed10k,
        Self::Keyed1m,
        Self::OneKeyTwoThreads,
        Self::DistinctKeysTwoThreads,
        Self::ReserveOneKey,
        Self::ClockRead,
        Self::Cas,
        Self::CasTwoThreads,
    ];

    /// The `layer/scenario` name, as in the criterion groups.
    #[must_use]
    pub const fn id(self) -> &'static str {
        match self {
            Self::CoreStep => "core/step",
            Self::CheckOneKey => "memory/check_one_key",
            Self::CheckOneKeyDenied => "memory/check_one_key_denied",
            Self::CheckNOneKey => "memory/check_n_one_key",
            Self::Keyed10k => "memory/keyed_10k",
            Self::Keyed1m => "memory/keyed_1m",
            Self::OneKeyTwoThreads => "memory/one_key_2_threads",
            Self::DistinctKeysTwoThreads => "memory/distinct_keys_2_threads",
            Self::ReserveOneKey => "memory/reserve_one_key",
            Self::ClockRead => "floor/clock_read",
            Self::Cas => "floor/cas_uncontended",
            Self::CasTwoThreads => "floor/clock_cas_2_threads",
        }
    }

    /// How many threads run it at once.
    #[must_use]
    pub const fn threads(self) -> usize {
        match self {
            Self::OneKeyTwoThreads | Self::DistinctKeysTwoThreads | Self::CasTwoThreads => 2,
            _ => 1,
        }
    }

    /// How many keys it spreads over.
    #[must_use]
    pub const fn keys(self) -> usize {
        match self {
            Self::Keyed10k => 10_000,
            Self::Keyed1m => 1_000_000,
            Self::DistinctKeysTwoThreads => 2,
            _ => 1,
        }
    }

    /// The criterion parameter: the key and thread counts
    /// (`keys=10000/threads=1`).
    #[must_use]
    pub fn parameter(self) -> String {
        format!("keys={}/threads={}", self.keys(), self.threads())
    }

    /// The layer it measures: `core`, `memory` or `floor`.
    #[must_use]
    pub fn layer(self) -> &'static str {
        self.id().split_once('/').map_or("", |(layer, _)| layer)
    }

    /// Whether it is a floor (no limiter, no ratio to governor).
    #[must_use]
    pub const fn is_floor(self) -> bool {
        matches!(self, Self::ClockRead | Self::Cas | Self::CasTwoThreads)
    }

    /// One line on what it measures.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::CoreStep => {
                "pure step on a local state, time advanced by hand: ours returns the full Decision \
                 (remaining, retry_after, reset_after), the naive float step a bool"
            }
            Self::CheckOneKey => "one key, allowed path (capacity 2^42, 1e9/s)",
            Self::CheckOneKeyDenied => {
                "one key, denied path (drained, refill 1/hour: no refill within the run)"
            }
            Self::CheckNOneKey => "one key, cost 4, allowed path",
            Self::Keyed10k => "10 000 pre-inserted u64 keys, uniform random order, allowed path",
            Self::Keyed1m => "1 000 000 pre-inserted u64 keys, uniform random order, allowed path",
            Self::OneKeyTwoThreads => "2 threads, one shared key, every op a write",
            Self::DistinctKeysTwoThreads => "2 threads, one keyed limiter, a key per thread",
            Self::ReserveOneKey => "reserve(1, unbounded wait) on one key, always admitted",
            Self::ClockRead => "one clock read",
            Self::Cas => "load + compare_exchange on a thread-local AtomicU64",
            Self::CasTwoThreads => {
                "2 threads, MonotonicClock read + CAS loop to max(v, now) + 1 on one shared \
                 AtomicU64: a one-key limiter minus its decision"
            }
        }
    }
}

/// The allowed-path capacity: large enough that no benchmark drains it,
/// with `τ = 2^42 ns ≈ 73 min` at one unit per nanosecond.
pub const HUGE_CAPACITY: u64 = 1 << 42;
/// The allowed-path rate: one unit per nanosecond.
pub const HUGE_RATE_PER_S: u64 = 1_000_000_000;
/// Keys are pre-inserted with this cost so their state stays ahead of the
/// clock (`tat − now ≈ 36 min`): a limiter that reclaims keys whose
/// `tat ≤ now` keeps them for the whole run, and the timed path is the
/// ordinary check of a present key, never an insert.
pub const PREFILL_COST: u64 = HUGE_CAPACITY / 2;
/// The cost of the `check_n` shape.
pub const CHECK_N_COST: u64 = 4;

/// A key set and a random order over it.
pub type KeysAndOrder<'a> = (&'a Arc<[u64]>, &'a Arc<[u64]>);

/// Keys and their random orders, built once and shared by every
/// implementation so all see the same keys in the same order.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// 10 000 distinct keys.
    pub keys_10k: Arc<[u64]>,
    /// A random order over `keys_10k` (2^16 accesses).
    pub order_10k: Arc<[u64]>,
    /// 1 000 000 distinct keys.
    pub keys_1m: Arc<[u64]>,
    /// A random order over `keys_1m` (2^21 accesses).
    pub order_1m: Arc<[u64]>,
}

impl Fixture {
    /// Builds the key sets and orders (a fixed seed: the same every run).
    #[must_use]
    pub fn new() -> Self {
        let keys_10k = keys::keys(10_000);
        let keys_1m = keys::keys(1_000_000);
        Self {
            order_10k: keys::random_order(&keys_10k, 1 << 16, 10).into(),
            order_1m: keys::random_order(&keys_1m, 1 << 21, 11).into(),
            keys_10k: keys_10k.into(),
            keys_1m: keys_1m.into(),
        }
    }

    /// The keys and the order of a keyed shape.
    #[must_use]
    pub fn keyed(&self, shape: Shape) -> Option<KeysAndOrder<'_>> {
        match shape {
            Shape::Keyed10k => Some((&self.keys_10k, &self.order_10k)),
            Shape::Keyed1m => Some((&self.keys_1m, &self.order_1m)),
            _ => None,
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Walks `order` from `cursor`, wrapping (its length is a power of two).
#[inline]
pub fn next_key(order: &[u64], cursor: &mut usize) -> u64 {
    let key = order[*cursor & (order.len() - 1)];
    *cursor = cursor.wrapping_add(1);
    key
}
