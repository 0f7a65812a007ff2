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
    /// 10 000 `u64` keys in a random order, each bucket refilled between
    /// visits (its state expired, `tat ≤ now`): users coming back.
    Returning10k,
    /// [`Returning10k`](Self::Returning10k) over 1 000 000 keys.
    Returning1m,
    /// [`Returning10k`](Self::Returning10k) with 12-byte `String` keys,
    /// looked up by `&str`.
    ReturningStrings10k,
    /// [`ReturningStrings10k`](Self::ReturningStrings10k) over 1 000 000
    /// keys.
    ReturningStrings1m,
    /// 10 000 pre-inserted 12-byte `String` keys, kept live, random order.
    StringsLive10k,
    /// 1 000 000 keys, each drained (refill one per hour): every check a
    /// denial.
    DenialFlood1m,
    /// One key, fixed window, allowed path.
    FixedWindowOneKey,
    /// One key, sliding window counter, allowed path.
    SlidingWindowOneKey,
    /// [`Keyed10k`](Self::Keyed10k) under a fixed window.
    FixedWindowKeyed10k,
    /// [`Keyed10k`](Self::Keyed10k) under a sliding window counter.
    SlidingWindowKeyed10k,
    /// [`Keyed1m`](Self::Keyed1m) under a fixed window.
    FixedWindowKeyed1m,
    /// [`Keyed1m`](Self::Keyed1m) under a sliding window counter.
    SlidingWindowKeyed1m,
    /// `check_all` over two one-key buckets, allowed path.
    CheckAll2,
    /// `check_all` over three one-key buckets, allowed path.
    CheckAll3,
    /// 1 000 000 live keys visited in a random permutation, the limiter
    /// reconfigured before each pass: every check is the key's first since
    /// a change of quota (the conversion included, and the reconfiguration
    /// call amortized over the pass).
    Keyed1mAfterReconfigure,
    /// Back-to-back `reconfigure` calls on a limiter holding 1 000 000
    /// live keys, no check in between: the worst case. The history fills,
    /// so each call brings the most lagging shard up to date, and a shard
    /// whose keys lag 254 changes converts them all, each through every
    /// change: `O(keys × changes)` in all, amortized over the calls. A
    /// single call is `O(shards)` (`examples/reconfigure.rs`).
    Reconfigure1m,
}

impl Shape {
    /// Every shape, in table order.
    pub const ALL: [Self; 28] = [
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
        Self::Returning10k,
        Self::Returning1m,
        Self::ReturningStrings10k,
        Self::ReturningStrings1m,
        Self::StringsLive10k,
        Self::DenialFlood1m,
        Self::FixedWindowOneKey,
        Self::SlidingWindowOneKey,
        Self::FixedWindowKeyed10k,
        Self::SlidingWindowKeyed10k,
        Self::FixedWindowKeyed1m,
        Self::SlidingWindowKeyed1m,
        Self::CheckAll2,
        Self::CheckAll3,
        Self::Keyed1mAfterReconfigure,
        Self::Reconfigure1m,
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
            Self::Returning10k => "memory/returning_10k",
            Self::Returning1m => "memory/returning_1m",
            Self::ReturningStrings10k => "memory/returning_strings_10k",
            Self::ReturningStrings1m => "memory/returning_strings_1m",
            Self::StringsLive10k => "memory/strings_live_10k",
            Self::DenialFlood1m => "memory/denial_flood_1m",
            Self::FixedWindowOneKey => "memory/fixed_window_one_key",
            Self::SlidingWindowOneKey => "memory/sliding_window_one_key",
            Self::FixedWindowKeyed10k => "memory/fixed_window_keyed_10k",
            Self::SlidingWindowKeyed10k => "memory/sliding_window_keyed_10k",
            Self::FixedWindowKeyed1m => "memory/fixed_window_keyed_1m",
            Self::SlidingWindowKeyed1m => "memory/sliding_window_keyed_1m",
            Self::CheckAll2 => "memory/check_all_2_limits",
            Self::CheckAll3 => "memory/check_all_3_limits",
            Self::Keyed1mAfterReconfigure => "memory/keyed_1m_after_reconfigure",
            Self::Reconfigure1m => "memory/reconfigure_storm_1m",
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
            Self::Keyed10k
            | Self::Returning10k
            | Self::ReturningStrings10k
            | Self::StringsLive10k
            | Self::FixedWindowKeyed10k
            | Self::SlidingWindowKeyed10k => 10_000,
            Self::Keyed1m
            | Self::Returning1m
            | Self::ReturningStrings1m
            | Self::DenialFlood1m
            | Self::FixedWindowKeyed1m
            | Self::SlidingWindowKeyed1m
            | Self::Keyed1mAfterReconfigure
            | Self::Reconfigure1m => 1_000_000,
            Self::CheckAll2 => 2,
            Self::CheckAll3 => 3,
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
            Self::Returning10k => {
                "10 000 u64 keys, random order, each bucket refilled between visits (capacity 10, \
                 one unit per ns: expired 10 ns after a check)"
            }
            Self::Returning1m => "as returning_10k, over 1 000 000 u64 keys",
            Self::ReturningStrings10k => {
                "as returning_10k, 12-byte String keys looked up by &str (governor: by &String)"
            }
            Self::ReturningStrings1m => "as returning_strings_10k, over 1 000 000 String keys",
            Self::StringsLive10k => {
                "10 000 pre-inserted 12-byte String keys kept live, random order, allowed path"
            }
            Self::DenialFlood1m => {
                "1 000 000 keys, each drained (capacity 1, refill 1/hour), random order: all denied"
            }
            Self::FixedWindowOneKey => "one key, fixed window (limit 2^62 per hour), allowed path",
            Self::SlidingWindowOneKey => {
                "one key, sliding window counter (limit 2^32-1 per hour), allowed path"
            }
            Self::FixedWindowKeyed10k => "as keyed_10k, fixed window",
            Self::SlidingWindowKeyed10k => "as keyed_10k, sliding window counter",
            Self::FixedWindowKeyed1m => "as keyed_1m, fixed window",
            Self::SlidingWindowKeyed1m => "as keyed_1m, sliding window counter",
            Self::CheckAll2 => "check_all over 2 one-key token buckets, allowed path",
            Self::CheckAll3 => "check_all over 3 one-key token buckets, allowed path",
            Self::Keyed1mAfterReconfigure => {
                "1 000 000 live keys in a random permutation, reconfigured before each pass: every \
                 check the key's first after a change of quota (reconfigure call amortized)"
            }
            Self::Reconfigure1m => {
                "back-to-back reconfigure calls (two quotas in turn) on 1 000 000 live keys, no \
                 traffic: every key converted through up to 254 changes, amortized over the calls"
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

/// String keys and a random order of indices into them.
pub type StringsAndOrder<'a> = (&'a Arc<[String]>, &'a Arc<[u32]>);

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
    /// 10 000 distinct 12-byte string keys.
    pub strings_10k: Arc<[String]>,
    /// 1 000 000 distinct 12-byte string keys.
    pub strings_1m: Arc<[String]>,
    /// A random order of indices into `strings_10k` (2^16 accesses).
    pub index_order_10k: Arc<[u32]>,
    /// A random order of indices into `strings_1m` (2^21 accesses).
    pub index_order_1m: Arc<[u32]>,
    /// A random permutation of `0..1 000 000`: each key once per pass.
    pub permutation_1m: Arc<[u32]>,
}

impl Fixture {
    /// Builds the key sets and orders (a fixed seed: the same every run).
    #[must_use]
    pub fn new() -> Self {
        let keys_10k = keys::keys(10_000);
        let keys_1m = keys::keys(1_000_000);
        let indices = |n: usize, len: usize, seed: u64| -> Arc<[u32]> {
            let all: Vec<u64> = (0..n as u64).collect();
            keys::random_order(&all, len, seed)
                .into_iter()
                .map(|i| i as u32)
                .collect()
        };
        Self {
            order_10k: keys::random_order(&keys_10k, 1 << 16, 10).into(),
            order_1m: keys::random_order(&keys_1m, 1 << 21, 11).into(),
            keys_10k: keys_10k.into(),
            keys_1m: keys_1m.into(),
            strings_10k: keys::strings(10_000).into(),
            strings_1m: keys::strings(1_000_000).into(),
            index_order_10k: indices(10_000, 1 << 16, 12),
            index_order_1m: indices(1_000_000, 1 << 21, 13),
            permutation_1m: keys::permutation(1_000_000, 14).into(),
        }
    }

    /// The keys and the order of a keyed shape.
    #[must_use]
    pub fn keyed(&self, shape: Shape) -> Option<KeysAndOrder<'_>> {
        match shape {
            Shape::Keyed10k
            | Shape::Returning10k
            | Shape::FixedWindowKeyed10k
            | Shape::SlidingWindowKeyed10k => Some((&self.keys_10k, &self.order_10k)),
            Shape::Keyed1m
            | Shape::Returning1m
            | Shape::DenialFlood1m
            | Shape::FixedWindowKeyed1m
            | Shape::SlidingWindowKeyed1m => Some((&self.keys_1m, &self.order_1m)),
            _ => None,
        }
    }

    /// The string keys and the index order of a string-keyed shape.
    #[must_use]
    pub fn strings(&self, shape: Shape) -> Option<StringsAndOrder<'_>> {
        match shape {
            Shape::ReturningStrings10k | Shape::StringsLive10k => {
                Some((&self.strings_10k, &self.index_order_10k))
            }
            Shape::ReturningStrings1m => Some((&self.strings_1m, &self.index_order_1m)),
            _ => None,
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The returning shapes' capacity: small, so a key's state expires soon.
pub const RETURNING_CAPACITY: u64 = 10;
/// The returning shapes' rate, one unit per nanosecond: a bucket checked
/// once is back to full (expired) 1 ns later, long before any key of
/// 10 000 comes round again.
pub const RETURNING_RATE_PER_S: u64 = 1_000_000_000;

/// Walks `order` from `cursor`, wrapping (its length is a power of two).
#[inline]
pub fn next_key(order: &[u64], cursor: &mut usize) -> u64 {
    let key = order[*cursor & (order.len() - 1)];
    *cursor = cursor.wrapping_add(1);
    key
}

/// Walks an index `order` from `cursor`, wrapping (its length is a power of
/// two).
#[inline]
pub fn next_index(order: &[u32], cursor: &mut usize) -> usize {
    let index = order[*cursor & (order.len() - 1)];
    *cursor = cursor.wrapping_add(1);
    index as usize
}
