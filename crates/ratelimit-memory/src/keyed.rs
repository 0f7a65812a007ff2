//! [`KeyedLimiter`]: one bucket per key in a sharded, bounded map that
//! forgets a key only when forgetting it changes no decision.
//!
//! Layout: `shards` (a power of two) cache-padded `RwLock`s, each around a
//! SwissTable of `(K, word)`, the word an `AtomicU64` (buckets) or a 128-bit
//! atomic (windows). A key is hashed once; bits of that hash
//! pick the shard and the rest find the entry. The hot path takes the
//! shard's read lock, finds the entry and runs the compare-and-swap of
//! [`update`]; only a key that must be stored and is not yet takes the
//! write lock.
//!
//! Reclamation: an entry whose state has expired (`tat ≤ now` for a
//! bucket, both counts slid out for a window: [`Algorithm::expires_at`]) is
//! equivalent to a missing key (docs/semantics.md), so it can be removed
//! without changing any decision.
//! A shard sweeps itself, under its write lock, when an insertion would
//! grow its table or meet its share of `max_keys`; nothing is swept on the
//! read path and no pass ever covers all shards. Because the swaps of
//! checkers happen under the read lock, an entry cannot be removed between
//! the read of its state and the swap that writes it.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::time::Duration;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use ratelimit_core::{
    Algorithm, AllowResult, Answer, Clock, Decision, InsufficientCapacity, Reason, Reservation,
    Shaping, Verdict,
};

use crate::bucket::{duration_ns, update};
use crate::clock::MonotonicClock;
use crate::layout::Layout;
use crate::sync::{self, RwLock};
use crate::word::{Word, sealed::Word as _};

/// The atomic cell of a state word.
type Cell<W> = <W as crate::word::sealed::Word>::Atomic;

/// The shards of a limiter whose keys are `K` and states `W`.
type Shards<K, W> = Box<[CachePadded<RwLock<Shard<K, W>>>]>;

/// The hasher a [`KeyedLimiter`] uses unless given another: hashbrown's
/// default, `foldhash` seeded at random per limiter. It is several times
/// faster than the standard library's SipHash on short keys, and its random
/// seed keeps an attacker who cannot read the seed from choosing keys that
/// collide (hash flooding).
pub type DefaultHashBuilder = hashbrown::DefaultHashBuilder;

/// The default bound on the number of keys held at once: 2^20 (1 048 576).
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

/// The most shards a limiter is built with.
const MAX_SHARDS: usize = 64;

/// A shard is split no smaller than this many keys of its `max_keys` share,
/// so a small bound is not spread over shards too small to be useful.
const MIN_KEYS_PER_SHARD: usize = 64;

/// A rate limit per key: any `K: Hash + Eq` (strings, integers, tuples,
/// IP addresses) gets its own bucket of the same algorithm.
///
/// ```
/// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
///
/// let limiter = KeyedLimiter::<String, _>::with_algorithm(
///     TokenBucket::with_rate(1, Rate::per_minute(30))?,
/// );
/// assert!(limiter.check("alice").allowed);
/// assert!(!limiter.check("alice").allowed);
/// assert!(limiter.check("bob").allowed); // another key, another bucket
/// assert_eq!(limiter.len(), 2);
/// # Ok::<(), ratelimit_memory::ConfigError>(())
/// ```
///
/// # Memory bound and the `max_keys` policy
///
/// A key takes a slot only when a decision changes its state (a cost of
/// zero, a denial and a cost above the capacity store nothing), and gives
/// it back as soon as its bucket is back to the initial state (`tat ≤
/// now`): from then on it is indistinguishable from a key never seen, so
/// dropping it is lossless. At most [`max_keys`](Self::max_keys) keys are
/// held at once (default [`DEFAULT_MAX_KEYS`]); the bound is split across
/// the shards in proportion to the keys each receives, and each shard
/// holds at most its share.
///
/// When a new key needs a slot, its shard is full, and no key of the shard
/// can be dropped losslessly, the request is **denied** with
/// [`Reason::KeyTableFull`]: `allowed: false`, `remaining: 0`,
/// `reset_after: 0` (the key's own bucket is untouched), and `retry_after`
/// the time until the shard's earliest-expiring key frees its slot. Keys
/// already held are never evicted early, because forgetting live state could
/// admit more than the quota; the map never grows past the bound. Size
/// `max_keys` for the number of keys active within one reset period
/// (`capacity / rate`).
///
/// # Time
///
/// Decisions use the limiter's [`Clock`] ([`MonotonicClock`] by default).
/// If that clock goes backwards below the time of a shard's last sweep, the
/// shard decides at the sweep's time instead: a swept key would otherwise
/// look fresh at an earlier time than the one it was dropped at.
pub struct KeyedLimiter<K, A: Algorithm, C = MonotonicClock, S = DefaultHashBuilder>
where
    A::State: Word,
{
    shards: Shards<K, A::State>,
    /// Which shard holds a key, and each shard's share of `max_keys`.
    layout: Layout,
    max_keys: usize,
    algorithm: A,
    clock: C,
    hasher: S,
}

/// One shard: its entries and the bookkeeping of its sweeps, all under the
/// shard's lock.
struct Shard<K, W: Word> {
    entries: HashTable<(K, Cell<W>)>,
    /// This shard's share of `max_keys`.
    limit: usize,
    /// The latest `now` of a sweep: decisions never use an earlier time.
    floor: u64,
    /// A lower bound on every held entry's expiry time
    /// ([`Algorithm::expires_at`]; exact right after a sweep, `u64::MAX`
    /// when empty). States only grow, so it stays a lower bound: while
    /// `now < earliest`, a sweep would free nothing.
    earliest: u64,
    /// Entries inserted since the last sweep.
    inserted: usize,
}

impl<K: Hash + Eq, A: Algorithm> KeyedLimiter<K, A>
where
    A::State: Word,
{
    /// An empty limiter with the defaults: [`DEFAULT_MAX_KEYS`], a
    /// [`MonotonicClock`] and a randomly seeded [`DefaultHashBuilder`].
    #[must_use]
    pub fn with_algorithm(algorithm: A) -> Self {
        Self::builder(algorithm).build()
    }

    /// A builder to set the bound, the clock or the hasher.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ratelimit_memory::{KeyedLimiter, LeakyBucket, ManualClock, Rate};
    ///
    /// let clock = Arc::new(ManualClock::new(0));
    /// let limiter = KeyedLimiter::<u64, _>::builder(LeakyBucket::with_rate(5, Rate::per_second(2))?)
    ///     .max_keys(10_000)
    ///     .clock(Arc::clone(&clock))
    ///     .build();
    /// assert_eq!(limiter.max_keys(), 10_000);
    /// # Ok::<(), ratelimit_memory::ConfigError>(())
    /// ```
    pub fn builder(algorithm: A) -> KeyedBuilder<K, A> {
        KeyedBuilder {
            algorithm,
            max_keys: DEFAULT_MAX_KEYS,
            shards: None,
            clock: MonotonicClock::new(),
            hasher: DefaultHashBuilder::default(),
            key: PhantomData,
        }
    }
}

/// Builds a [`KeyedLimiter`]; from [`KeyedLimiter::builder`].
#[must_use]
pub struct KeyedBuilder<K, A, C = MonotonicClock, S = DefaultHashBuilder> {
    algorithm: A,
    max_keys: usize,
    shards: Option<usize>,
    clock: C,
    hasher: S,
    key: PhantomData<fn(K)>,
}

impl<K, A: Algorithm, C, S> KeyedBuilder<K, A, C, S>
where
    A::State: Word,
{
    /// The most keys held at once (default [`DEFAULT_MAX_KEYS`]); see the
    /// policy on [`KeyedLimiter`]. Zero is allowed and means no key is ever
    /// stored, so every request that would store state is denied.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The number of shards: rounded down to a power of two, at least 1,
    /// at most 64 and at most `max_keys`. By default the limiter uses 64,
    /// fewer when `max_keys` is small (each shard holds at least 64 keys of
    /// the bound). More shards mean less lock contention between threads
    /// and smaller sweeps; the bound is split between them in proportion to
    /// the keys each receives.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The clock decisions read, e.g. an `Arc<ManualClock>` shared with a
    /// test or a replay that sets the time before each call.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedBuilder<K, A, C2, S> {
        KeyedBuilder {
            algorithm: self.algorithm,
            max_keys: self.max_keys,
            shards: self.shards,
            clock,
            hasher: self.hasher,
            key: PhantomData,
        }
    }

    /// The hasher for keys. Keep it seeded at random if keys come from
    /// untrusted input, so that nobody can pick keys that collide.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> KeyedBuilder<K, A, C, S2> {
        KeyedBuilder {
            algorithm: self.algorithm,
            max_keys: self.max_keys,
            shards: self.shards,
            clock: self.clock,
            hasher,
            key: PhantomData,
        }
    }

    /// The limiter, empty.
    pub fn build(self) -> KeyedLimiter<K, A, C, S> {
        let wanted = match self.shards {
            // Never more shards than keys: a shard with no share of the
            // bound would refuse every key that hashes to it.
            Some(n) => n.min(self.max_keys),
            None => self.max_keys / MIN_KEYS_PER_SHARD,
        };
        // The largest power of two not above `wanted`, within [1, 64].
        let shards = 1 << wanted.clamp(1, MAX_SHARDS).ilog2();
        let layout = Layout::new(shards, self.max_keys);
        let shard_table = layout
            .limits
            .iter()
            .map(|&limit| {
                CachePadded::new(RwLock::new(Shard {
                    entries: HashTable::new(),
                    limit,
                    floor: 0,
                    earliest: u64::MAX,
                    inserted: 0,
                }))
            })
            .collect();
        KeyedLimiter {
            shards: shard_table,
            layout,
            max_keys: self.max_keys,
            algorithm: self.algorithm,
            clock: self.clock,
            hasher: self.hasher,
        }
    }
}

impl<K, A, C, S> KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq,
    A: Algorithm,
    A::State: Word,
    C: Clock,
    S: BuildHasher,
{
    /// Allows or denies a request of cost 1 for `key` now.
    pub fn check<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.check_n(key, 1) {
            Ok(decision) => decision,
            Err(_) => unreachable!("a cost of 1 never exceeds a capacity of at least 1"),
        }
    }

    /// Allows or denies a request of `cost` units for `key` now.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity: such a
    /// request can never succeed, and nothing is stored.
    pub fn check_n<Q>(&self, key: &Q, cost: u64) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limit = self.algorithm.limit();
        self.decide(
            key,
            |state, now| self.algorithm.check_verdict(state, now, cost),
            |retry_after| Decision {
                allowed: false,
                remaining: 0,
                retry_after: Some(retry_after),
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::KeyTableFull,
            },
        )
    }

    /// [`check`](Self::check) with the field names of the Python system
    /// this crate replaces (`tokens_remaining`, ...).
    pub fn allow_request<Q>(&self, key: &Q) -> AllowResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        AllowResult::from(self.check(key))
    }

    /// Runs `step` for `key` atomically; `full` answers a new key that
    /// finds no room, given the wait until a slot frees.
    #[inline]
    fn decide<Q, D: Answer>(
        &self,
        key: &Q,
        step: impl Fn(A::State, u64) -> Result<Verdict<A, D>, InsufficientCapacity>,
        full: impl FnOnce(Duration) -> D,
    ) -> Result<D, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let lock = &self.shards[self.layout.shard(hash)];
        let now = self.clock.now_ns();
        let eq = |entry: &(K, Cell<A::State>)| entry.0.borrow() == key;
        {
            let shard = sync::read(lock);
            // Never decide before the shard's last sweep (see `Shard::floor`).
            let now = now.max(shard.floor);
            if let Some((_, state)) = shard.entries.find(hash, eq) {
                // The read lock is held across the load and the swap in
                // `update`: a sweep (write lock) cannot remove this entry in
                // between, so a swap never lands on a forgotten entry.
                return update(state, |current| step(current, now));
            }
            // Not held: it is a key in its initial state. It needs a slot
            // only if this decision changes that state.
            let fresh = step(A::State::default(), now)?;
            if fresh.next().is_none() {
                return Ok(fresh.decision());
            }
        }
        let mut shard = sync::write(lock);
        let now = now.max(shard.floor);
        // Another thread may have stored it between the two locks.
        if let Some((_, state)) = shard.entries.find(hash, eq) {
            return update(state, |current| step(current, now));
        }
        let fresh = step(A::State::default(), now)?;
        let Some(next) = fresh.next() else {
            return Ok(fresh.decision());
        };
        if !shard.make_room(now, &self.algorithm) {
            return Ok(full(Duration::from_nanos(
                shard.earliest.saturating_sub(now),
            )));
        }
        // Initialising a word no other thread can see yet (we hold the write
        // lock) is not a write to shared state: every later write goes
        // through `update`.
        let rehash = |entry: &(K, Cell<A::State>)| self.hasher.hash_one(&entry.0);
        shard
            .entries
            .insert_unique(hash, (key.to_owned(), A::State::cell(next)), rehash);
        shard.earliest = shard.earliest.min(self.algorithm.expires_at(next));
        shard.inserted += 1;
        Ok(fresh.decision())
    }
}

impl<K, A, C, S> KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq,
    A: Shaping,
    C: Clock,
    S: BuildHasher,
{
    /// Admits a request of `cost` units for `key` to proceed after the wait
    /// of the returned [`Reservation::Admitted`], if that wait is at most
    /// `max_wait` (`None`: any wait), or rejects it. Only the buckets shape.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn reserve<Q>(
        &self,
        key: &Q,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limit = self.algorithm.limit();
        let max_wait_ns = max_wait.map(duration_ns);
        self.decide(
            key,
            |tat, now| self.algorithm.reserve_verdict(tat, now, cost, max_wait_ns),
            |retry_after| Reservation::Rejected {
                retry_after: Some(retry_after),
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::KeyTableFull,
            },
        )
    }
}

impl<K, A: Algorithm, C, S> KeyedLimiter<K, A, C, S>
where
    A::State: Word,
{
    /// The number of keys held now, across all shards. Keys whose bucket is
    /// back to its initial state may still be counted until their shard
    /// next sweeps.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| sync::read(s).entries.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| sync::read(s).entries.is_empty())
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How many keys the tables have room for before they next grow (at
    /// least [`len`](Self::len); the memory actually allocated).
    pub fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| sync::read(s).entries.capacity())
            .sum()
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The clock decisions read.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The algorithm (and through it the quota) every key's bucket enforces.
    pub fn algorithm(&self) -> &A {
        &self.algorithm
    }
}

impl<K, W: Word> Shard<K, W> {
    /// Whether a new entry may be inserted, after a sweep if one can help.
    ///
    /// A sweep runs only if some entry may have expired (`now ≥ earliest`),
    /// and then:
    /// - when the shard holds its share of `max_keys`, always: a new key is
    ///   refused only if no entry can be dropped;
    /// - when the insertion would grow the table, if at least an eighth of
    ///   the entries were inserted since the last sweep: the `O(len)` sweep
    ///   is paid for by those insertions (amortized `O(1)` each). Otherwise
    ///   the table grows (or rehashes in place, if erased slots allow).
    fn make_room<A: Algorithm<State = W>>(&mut self, now: u64, algorithm: &A) -> bool {
        let len = self.entries.len();
        let at_limit = len >= self.limit;
        let would_grow = len == self.entries.capacity();
        let paid_for = self.inserted >= len / 8;
        if now >= self.earliest && (at_limit || (would_grow && paid_for)) {
            self.sweep(now, algorithm);
        }
        self.entries.len() < self.limit
    }

    /// Removes every entry whose state has expired at `now` (equivalent
    /// to a key never seen), and makes `earliest` exact.
    fn sweep<A: Algorithm<State = W>>(&mut self, now: u64, algorithm: &A) {
        let mut earliest = u64::MAX;
        self.entries.retain(|(_, state)| {
            // Relaxed: we hold the write lock, and every swap of this word
            // was made under a read lock released before we acquired it, so
            // the lock orders them before this load, which reads the last.
            let expires = algorithm.expires_at(W::load(state));
            let keep = expires > now;
            if keep {
                earliest = earliest.min(expires);
            }
            keep
        });
        self.earliest = earliest;
        self.floor = self.floor.max(now);
        self.inserted = 0;
    }
}

impl<K, A: Algorithm, C: fmt::Debug, S> fmt::Debug for KeyedLimiter<K, A, C, S>
where
    A::State: Word,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("algorithm", &self.algorithm)
            .field("clock", &self.clock)
            .field("max_keys", &self.max_keys)
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K, A: fmt::Debug, C: fmt::Debug, S> fmt::Debug for KeyedBuilder<K, A, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("algorithm", &self.algorithm)
            .field("clock", &self.clock)
            .field("max_keys", &self.max_keys)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}
