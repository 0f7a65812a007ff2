//! [`KeyedLimiter`]: one bucket per key in a sharded, bounded map that
//! forgets a key only when forgetting it changes no decision, whose quota
//! can be changed while it runs and overridden per key.
//!
//! Layout: `shards` (a power of two) cache-padded shards, each a `RwLock`
//! around two SwissTables, `entries` of `(K, word)` for the keys on the
//! limiter's quota and `own` of `(K, word, quota, version)` for the keys on
//! a quota of their own, plus a `writer` mutex that every writer of the
//! tables takes before the write lock. The word is an `AtomicU64` (buckets)
//! or a 128-bit atomic (windows). A key is hashed once; bits of that hash
//! pick the shard and the rest find the entry. The hot path takes the
//! shard's read lock, finds the entry and runs the compare-and-swap of
//! [`update`]; the write lock is taken only to insert a key, to bring a
//! key (or the shard) to a changed quota, and to sweep.
//!
//! Reclamation: an entry whose state has expired (`tat ≤ now` for a
//! bucket, both counts slid out for a window: [`Algorithm::expires_at`]) is
//! equivalent to a missing key (docs/semantics.md), so it can be removed
//! without changing any decision. A shard sweeps itself, under its write
//! lock, when an insertion would grow its table or meet its share of
//! `max_keys`; nothing is swept on the read path and no pass ever covers
//! all shards. Because the swaps of checkers happen under the read lock,
//! an entry cannot be removed between the read of its state and the swap
//! that writes it.
//!
//! Reconfiguration, lazily: [`reconfigure`](KeyedLimiter::reconfigure)
//! appends a change to the limiter's history and publishes a new epoch
//! (`config.rs`); it touches no shard. A shard that sees a newer epoch
//! copies the changes it lacks under its write lock ("opens" the epoch)
//! and, if it holds keys, starts a tag per table slot: the epoch each
//! entry's state is kept under. A key whose tag is behind is converted
//! through each change, at that change's own time, at its next access
//! (under the read lock: the checker that claims the tag converts the
//! word, the others wait for it); a sweep or a growing table converts
//! them all first, under the write lock.
//! Tags exist only while some key of the shard lags (1 byte per slot);
//! a shard on the current quota has none. See docs/concurrency.md.

use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::time::Duration;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use ratelimit_core::{
    Algorithm, AllowResult, Answer, Clock, Decision, InsufficientCapacity, Reason, Reservation,
    Shaping, Strategy, Verdict,
};

use crate::bucket::{duration_ns, refund_word, update};
use crate::clock::MonotonicClock;
use crate::config::{Change, Config};
use crate::key::{DEFAULT_MAX_KEY_LEN, KeyBytes};
use crate::layout::Layout;
use crate::prefetch::Prefetch;
use crate::receipt::{Generation, Receipt, next_id};
use crate::sync::{self, AtomicU8, AtomicU64, AtomicUsize, Mutex, Ordering, RwLock};
use crate::word::{Word, sealed::Word as _};

/// The atomic cell of a state word.
pub(crate) type Cell<W> = <W as crate::word::sealed::Word>::Atomic;

/// The shards of a limiter whose keys are `K` under algorithm `A`.
type Shards<K, A> = Box<[CachePadded<ShardLock<K, A>>]>;

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

/// The most changes a shard keeps for keys not yet converted; past it, the
/// shard converts all its keys at once (tags are 8 bits, one value is
/// [`BUSY`]).
const MAX_PENDING: u64 = 254;

/// Past half of this many changes kept for shards that have not seen them,
/// each `reconfigure` brings the shard that lags most up to date (one per
/// call), so at most `MAX_HISTORY / 2 + shards` are kept.
const MAX_HISTORY: usize = 64;

/// A rate limit per key: any `K: Hash + Eq` (strings, integers, tuples,
/// IP addresses) gets its own bucket of the same algorithm, or of a quota
/// of its own.
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
/// Keys are bounded in bytes too: a key owning more than
/// [`max_key_len`](Self::max_key_len) bytes ([`KeyBytes`], default 256) is
/// refused with [`Reason::KeyTooLong`] (`retry_after: None`) before it is
/// hashed or stored. So the table holds at most `max_keys ×` (entry + key
/// bytes + allocator overhead); the crate README works the figure out.
///
/// # Changing the quota
///
/// [`reconfigure`](Self::reconfigure) replaces the quota of every key that
/// has none of its own, with a [`Strategy`] for what they have consumed;
/// it returns at once and converts each key at its next access, exactly
/// as converting at the time of the change would. A key may also be given
/// a quota of its own per call ([`check_with_quota`](Self::check_with_quota));
/// a key whose quota changes is converted with `keep-consumed`.
///
/// # Time
///
/// Decisions use the limiter's [`Clock`] ([`MonotonicClock`] by default).
/// If that clock goes backwards below the time of a shard's last sweep, or
/// of the last change of quota, the shard decides at that time instead: a
/// swept key would otherwise look fresh at an earlier time than the one it
/// was dropped at.
pub struct KeyedLimiter<K, A: Algorithm, C = MonotonicClock, S = DefaultHashBuilder>
where
    A::State: Word,
{
    pub(crate) shards: Shards<K, A>,
    /// Which shard holds a key, and each shard's share of `max_keys`.
    layout: Layout,
    max_keys: usize,
    max_key_len: usize,
    config: Config<A>,
    pub(crate) clock: C,
    hasher: S,
    /// This limiter's id, for its receipts.
    id: u64,
}

/// A shard and the locks around it.
///
/// `repr(C)`, with the read-locked table first, so that the fields a check
/// reads (the lock word, then the first of [`Shard`]'s) start at the
/// beginning of the shard's cache-aligned block; see [`Shard`].
#[repr(C)]
pub(crate) struct ShardLock<K, A: Algorithm>
where
    A::State: Word,
{
    pub(crate) table: RwLock<Shard<K, A>>,
    /// Taken before the write lock by every writer of the shard's tables,
    /// and for the whole of an all-or-nothing check of several limits
    /// (`multi.rs`), which so keeps conversions and sweeps away from the
    /// keys it charges without holding the read lock. Never taken by the
    /// hot path.
    pub(crate) writer: Mutex<()>,
    /// The shard's epoch (a copy written under the write lock), read by
    /// `reconfigure` to prune the history.
    seen: AtomicU64,
    /// Where `entries` is, for prefetching ahead of the read lock.
    prefetch: Prefetch,
}

/// One shard: its entries and the bookkeeping of its sweeps and quota
/// changes, all under the shard's lock.
///
/// `repr(C)`, hot fields first: a check reads `entries`, `epoch`, `floor`,
/// `pending`, `own`'s length and `algorithm`, which for a bucket fill the
/// shard's first 128 bytes; with the lock word before them a check touches
/// three cache lines of the shard's block, where the compiler's order of
/// the fields spread them over four (`layout_tests` checks the order).
#[repr(C)]
pub(crate) struct Shard<K, A: Algorithm>
where
    A::State: Word,
{
    /// The keys on the limiter's quota.
    entries: HashTable<(K, Cell<A::State>)>,
    /// The latest change of the limiter's quota this shard has seen.
    epoch: u64,
    /// The latest `now` of a sweep, or time of a change of quota:
    /// decisions never use an earlier time.
    floor: u64,
    /// While some entry of `entries` is kept under an older epoch.
    pending: Option<Box<Pending<A>>>,
    /// The keys on a quota of their own.
    own: HashTable<Own<K, A>>,
    /// The limiter's quota at `epoch`.
    algorithm: A,
    /// The last version given to a key's own quota.
    versions: u64,
    /// This shard's share of `max_keys`.
    limit: usize,
    /// A lower bound on every held entry's expiry time
    /// ([`Algorithm::expires_at`]; exact right after a sweep, `u64::MAX`
    /// when empty). Admissions only move expiries later; a refund or a
    /// rollback (under the read lock) lowers this bound with `fetch_min`.
    /// While `now < earliest`, a sweep would free nothing.
    earliest: AtomicU64,
    /// Entries inserted since the last sweep.
    inserted: usize,
    /// Sampled entries ([`Ghosts`]) inserted since the last choice between
    /// sweeping and growing for returning keys, and how many of them were
    /// returning (found among the ghosts).
    sampled: usize,
    returning: usize,
    /// The last choice: grow rather than sweep (at least half of the
    /// sampled insertions were returning). Kept until the next choice.
    grow: bool,
    /// A sample of the keys sweeps dropped.
    ghosts: Ghosts,
    /// The bucket of the latest insertion into `entries`, from which
    /// [`publish`](Self::publish) finds the table.
    inserted_at: usize,
}

/// A key on a quota of its own.
struct Own<K, A: Algorithm>
where
    A::State: Word,
{
    key: K,
    state: Cell<A::State>,
    /// The quota the state is kept under.
    algorithm: A,
    /// Changes when `algorithm` does (for receipts).
    version: u64,
}

/// A shard's ghosts: the hashes of keys its sweeps dropped, so that an
/// insertion can tell a key coming back (a *returning* key, as the ghost
/// entries of ARC and 2Q caches tell) from one never seen.
///
/// Only a sample of the keys is remembered, by their hash (as SHARDS
/// samples a cache's keys): a key is sampled when the low 32 bits of its
/// hash are below `below`, so the same keys are sampled at every drop and
/// every return, and the returning share of the sampled insertions
/// estimates that of all insertions. At most [`GHOSTS`] hashes are kept:
/// when one more would not fit, `below` halves (and the hashes above it
/// go) until they do. The memory is so fixed (one `Vec` of at most
/// [`GHOSTS`] `u64`s per shard, allocated at the first drop), whatever the
/// number of keys; the membership test is exact (64-bit hashes).
struct Ghosts {
    /// The sampled hashes of keys dropped by a sweep and not inserted
    /// since, sorted.
    hashes: Vec<u64>,
    /// The sampling threshold on a hash's low 32 bits (`1 << 32`: all).
    below: u64,
}

/// The most hashes a shard's [`Ghosts`] keep.
const GHOSTS: usize = 64;

impl Ghosts {
    const fn new() -> Self {
        Self {
            hashes: Vec::new(),
            below: 1 << 32,
        }
    }

    /// Whether the key of `hash` is in the sample. The low bits: the bits
    /// that pick the shard (just below the top seven) are the same for
    /// every key of a shard.
    fn sampled(&self, hash: u64) -> bool {
        hash & 0xffff_ffff < self.below
    }

    /// Remembers the key of `hash`, dropped by a sweep, if it is sampled.
    fn add(&mut self, hash: u64) {
        if !self.sampled(hash) {
            return;
        }
        if let Err(i) = self.hashes.binary_search(&hash) {
            if self.hashes.capacity() == 0 {
                self.hashes.reserve_exact(GHOSTS + 1);
            }
            self.hashes.insert(i, hash);
            while self.hashes.len() > GHOSTS && self.below > 1 {
                self.below /= 2;
                let below = self.below;
                self.hashes.retain(|h| h & 0xffff_ffff < below);
            }
            // Only once the threshold is down to 1 (32 halvings): keep
            // the lowest hashes.
            self.hashes.truncate(GHOSTS);
        }
    }

    /// For an insertion of the key of `hash`: `None` if the key is not
    /// sampled, else whether it returns (and it is forgotten: it is held
    /// again).
    fn take(&mut self, hash: u64) -> Option<bool> {
        if !self.sampled(hash) {
            return None;
        }
        Some(match self.hashes.binary_search(&hash) {
            Ok(i) => {
                self.hashes.remove(i);
                true
            }
            Err(_) => false,
        })
    }
}

/// The changes a shard's lagging entries still need.
struct Pending<A> {
    /// The epoch of tag 0.
    base: u64,
    /// The quota at `base`.
    from: A,
    /// The changes of epochs `base + 1 ..= shard.epoch`.
    changes: Vec<Change<A>>,
    /// Per slot of `entries`: the epoch of its entry's state, minus `base`,
    /// or [`BUSY`] while a checker converts it. The table never reorganises
    /// while tags exist (it converts every entry first), so a slot keeps
    /// its entry.
    tags: Box<[AtomicU8]>,
    /// Entries whose tag is behind the shard's epoch.
    stale: AtomicUsize,
}

/// The fewest sampled insertions ([`Ghosts`]) a shard counts before it
/// chooses to grow for returning keys: a share measured on fewer would
/// swing too much. (The test is exact: a flood of keys that never return
/// counts none.)
const SAMPLE: usize = 32;

/// The most keys a shard grows to hold for returning keys. A larger
/// working set is swept as if it did not return: held, it would not stay
/// in the CPU's caches, and each visit to a key held in a large table
/// misses the cache, which costs more than inserting it again in a small
/// table that stays in the cache (`memory/returning_1m`: about 95 ns held,
/// 42 ns swept and inserted again, on a 2-core EPYC), for the memory of
/// every key held.
const RETURNING_MAX: usize = 4096;

/// The tag of an entry being converted (under a read lock) by a checker.
const BUSY: u8 = u8::MAX;

impl<A: Algorithm> Pending<A> {
    /// The quota at `epoch` (`base ..= base + changes.len()`).
    fn algorithm_at(&self, epoch: u64) -> A {
        match (epoch - self.base) as usize {
            0 => self.from,
            i => self.changes[i - 1].algorithm,
        }
    }

    /// `state`, kept under the quota of `epoch`, converted through every
    /// later change, each at its own time.
    ///
    /// A state that has expired by the time of a change is a key never
    /// seen from then on, under any quota: it becomes the initial state
    /// and the later changes are skipped (so a lagging key that expired
    /// costs one step, not one per change).
    fn convert(&self, mut state: A::State, epoch: u64) -> A::State {
        let mut from = self.algorithm_at(epoch);
        for change in &self.changes[(epoch - self.base) as usize..] {
            if from.expires_at(state) <= change.at {
                return A::State::default();
            }
            state = from.convert(state, change.at, &change.algorithm, change.strategy);
            from = change.algorithm;
        }
        state
    }
}

/// Where a key's state is, seen under its shard's lock.
pub(crate) enum Slot<'s, A: Algorithm>
where
    A::State: Word,
{
    /// Held, under this quota.
    Held {
        cell: &'s Cell<A::State>,
        algorithm: &'s A,
        generation: Generation,
    },
    /// Not held: a key in its initial state under this quota.
    Absent { algorithm: &'s A, own: bool },
    /// Kept under another quota: it must be converted (or moved between
    /// the tables) first, under the write lock.
    Stale,
}

/// Why a request was refused before its quota was consulted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    /// The key owns more than `max_key_len` bytes.
    KeyTooLong,
    /// No slot for a new key; one frees in this long.
    KeyTableFull(Duration),
}

/// What a decision did: the answer, the swap that stored it (`(before,
/// after)`) if any, the quota it was decided under and the key's hash.
pub(crate) struct Decided<D, W> {
    pub(crate) answer: D,
    pub(crate) swap: Option<(W, W)>,
    pub(crate) generation: Generation,
    pub(crate) hash: u64,
}

impl<D, W> Decided<D, W> {
    fn answer(answer: D, hash: u64) -> Self {
        Self {
            answer,
            swap: None,
            generation: Generation::Fixed,
            hash,
        }
    }
}

impl<K: Hash + Eq, A: Algorithm> KeyedLimiter<K, A>
where
    A::State: Word,
{
    /// An empty limiter with the defaults: [`DEFAULT_MAX_KEYS`],
    /// [`DEFAULT_MAX_KEY_LEN`], a [`MonotonicClock`] and a randomly seeded
    /// [`DefaultHashBuilder`].
    #[must_use]
    pub fn with_algorithm(algorithm: A) -> Self {
        Self::builder(algorithm).build()
    }

    /// A builder to set the bounds, the clock or the hasher.
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
            max_key_len: DEFAULT_MAX_KEY_LEN,
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
    max_key_len: usize,
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

    /// The most bytes a key may own (its [`KeyBytes::heap_bytes`]: the
    /// length of a string or byte key; integer and IP keys own none),
    /// default [`DEFAULT_MAX_KEY_LEN`] (256). A longer key is refused with
    /// [`Reason::KeyTooLong`] and never stored. `usize::MAX` lifts the
    /// bound (then memory is bounded in keys only).
    pub fn max_key_len(mut self, max_key_len: usize) -> Self {
        self.max_key_len = max_key_len;
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
            max_key_len: self.max_key_len,
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
            max_key_len: self.max_key_len,
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
                CachePadded::new(ShardLock {
                    writer: Mutex::new(()),
                    table: RwLock::new(Shard {
                        entries: HashTable::new(),
                        own: HashTable::new(),
                        algorithm: self.algorithm,
                        epoch: 0,
                        pending: None,
                        versions: 0,
                        limit,
                        floor: 0,
                        earliest: AtomicU64::new(u64::MAX),
                        inserted: 0,
                        sampled: 0,
                        returning: 0,
                        grow: false,
                        ghosts: Ghosts::new(),
                        inserted_at: 0,
                    }),
                    seen: AtomicU64::new(0),
                    prefetch: Prefetch::default(),
                })
            })
            .collect();
        KeyedLimiter {
            shards: shard_table,
            layout,
            max_keys: self.max_keys,
            max_key_len: self.max_key_len,
            config: Config::new(self.algorithm),
            clock: self.clock,
            hasher: self.hasher,
            id: next_id(),
        }
    }
}

/// Two quotas compared, for the per-key quota methods (`A: PartialEq`);
/// the others never compare.
fn never_compared<A>(_: &A, _: &A) -> bool {
    unreachable!("only the per-key quota methods compare quotas")
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
    #[inline]
    pub fn check<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
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
    #[inline]
    pub fn check_n<Q>(&self, key: &Q, cost: u64) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        self.check_inner(key, cost, None, never_compared)
            .map(|d| d.answer)
    }

    /// [`check_n`](Self::check_n), with a [`Receipt`] when the request was
    /// admitted at a cost above zero, and under the key's own `quota` when
    /// one is given (see [`check_with_quota`](Self::check_with_quota)):
    /// pass the receipt to [`refund`](Self::refund) to give the cost back.
    ///
    /// # Errors
    /// As for [`check_n`](Self::check_n).
    pub fn check_refundable<Q>(
        &self,
        key: &Q,
        cost: u64,
        quota: Option<&A>,
    ) -> Result<(Decision, Option<Receipt<A>>), InsufficientCapacity>
    where
        A: PartialEq,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let d = self.check_inner(key, cost, quota, A::eq)?;
        let receipt = self.receipt(cost, &d);
        Ok((d.answer, receipt))
    }

    /// Allows or denies a request of `cost` units for `key` under the
    /// key's own `quota` (a plan looked up from the key, an override)
    /// instead of the limiter's. The key keeps that quota until a call
    /// gives it another (or none: [`check_n`](Self::check_n) puts it back
    /// on the limiter's quota); [`reconfigure`](Self::reconfigure) does not
    /// touch it. When a key's quota changes, its state is converted with
    /// [`Strategy::KeepConsumed`] at the time of the call: what it has
    /// consumed stays consumed, under the new quota's rate.
    ///
    /// A key on the limiter's quota costs no more memory than before; a
    /// key on its own quota stores that quota beside its state.
    ///
    /// ```
    /// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
    ///
    /// let free = TokenBucket::with_rate(2, Rate::per_minute(2))?;
    /// let pro = TokenBucket::with_rate(10, Rate::per_minute(10))?;
    /// let limiter = KeyedLimiter::<String, _>::with_algorithm(free);
    /// assert!(limiter.check_n("alice", 2)?.allowed);
    /// assert!(!limiter.check("alice").allowed); // free plan: 2 used of 2
    /// // Alice upgrades: her 2 units stay used, now of 10.
    /// let d = limiter.check_with_quota("alice", 1, &pro)?;
    /// assert!(d.allowed);
    /// assert_eq!(d.remaining, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds `quota`'s capacity.
    pub fn check_with_quota<Q>(
        &self,
        key: &Q,
        cost: u64,
        quota: &A,
    ) -> Result<Decision, InsufficientCapacity>
    where
        A: PartialEq,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        self.check_inner(key, cost, Some(quota), A::eq)
            .map(|d| d.answer)
    }

    #[inline]
    fn check_inner<Q>(
        &self,
        key: &Q,
        cost: u64,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
    ) -> Result<Decided<Decision, A::State>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        self.decide(
            key,
            quota,
            same,
            |algorithm, state, now| algorithm.check_verdict(state, now, cost),
            refused_decision,
        )
    }

    /// [`check`](Self::check) with the field names of the Python system
    /// this crate replaces (`tokens_remaining`, ...).
    pub fn allow_request<Q>(&self, key: &Q) -> AllowResult
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        AllowResult::from(self.check(key))
    }

    /// Gives back the cost of the admission `receipt` records, for `key`,
    /// exactly or not at all (see [`Receipt`]): whether anything was given
    /// back. A receipt of another limiter or another key gives nothing
    /// back.
    ///
    /// ```
    /// use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
    ///
    /// let limiter = KeyedLimiter::<String, _>::with_algorithm(
    ///     TokenBucket::with_rate(5, Rate::per_minute(5))?,
    /// );
    /// let (decision, receipt) = limiter.check_refundable("alice", 3, None)?;
    /// assert_eq!(decision.remaining, 2);
    /// // The call it paid for failed: give the 3 back, once.
    /// assert!(limiter.refund("alice", receipt.unwrap()));
    /// assert_eq!(limiter.check_n("alice", 0)?.remaining, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refund<Q>(&self, key: &Q, receipt: Receipt<A>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if receipt.owner != self.id {
            return false;
        }
        if let Generation::Limiter(epoch) = receipt.generation {
            // The limiter's quota changed since: the key's state is (or will
            // be, lazily) converted at the change, before this refund.
            if epoch != self.config.latest() {
                return false;
            }
        }
        let hash = self.hasher.hash_one(key);
        if hash != receipt.hash {
            return false;
        }
        let lock = &self.shards[self.layout.shard(hash)];
        let shard = sync::read(&lock.table);
        let now = self.clock.now_ns().max(shard.floor);
        let Some((cell, algorithm)) = shard.find_generation(hash, key, receipt.generation) else {
            return false;
        };
        match refund_word(&algorithm, cell, now, receipt.cost, receipt.admitted) {
            Some(state) => {
                shard.lower_earliest(algorithm.expires_at(state));
                true
            }
            None => false,
        }
    }

    /// Replaces the quota of every key that has none of its own with
    /// `algorithm`, from now on, converting what each key has consumed with
    /// `strategy` (docs/semantics.md, "Changing a quota while it runs").
    ///
    /// Returns at once, whatever the number of keys: each key is converted
    /// at its next access, to exactly the state converting it now would
    /// give (several changes in a row compose, each at its own time). A
    /// decision racing the change is made entirely under the old quota or
    /// entirely under the new one, never a mix. Windows keep their counts
    /// when only the limit changes; a new window length starts every key
    /// afresh, as does a change of algorithm ([`AnyAlgorithm`]).
    ///
    /// ```
    /// use ratelimit_memory::{KeyedLimiter, Rate, Strategy, TokenBucket};
    ///
    /// let limiter = KeyedLimiter::<String, _>::with_algorithm(
    ///     TokenBucket::with_rate(10, Rate::per_minute(10))?,
    /// );
    /// assert!(limiter.check_n("alice", 4)?.allowed);
    /// // An incident: everyone down to 5, what was used stays used.
    /// limiter.reconfigure(TokenBucket::with_rate(5, Rate::per_minute(5))?, Strategy::KeepConsumed);
    /// assert_eq!(limiter.check_n("alice", 0)?.remaining, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`AnyAlgorithm`]: ratelimit_core::AnyAlgorithm
    pub fn reconfigure(&self, algorithm: A, strategy: Strategy) {
        let (epoch, _) = self.config.push(algorithm, strategy, self.clock.now_ns());
        if self.config.kept() > MAX_HISTORY / 2 {
            // Bring the shard that has gone longest without an access up
            // to date, so that the history can be pruned: one shard per
            // call, never all at once, so the call stays short. Under a
            // storm of changes the shards so take turns, and the history
            // holds at most `MAX_HISTORY / 2 + shards` changes.
            let laggard = self
                .shards
                .iter()
                .min_by_key(|lock| lock.seen.load(Ordering::Relaxed));
            if let Some(lock) = laggard.filter(|l| l.seen.load(Ordering::Relaxed) < epoch) {
                let _writer = sync::lock(&lock.writer);
                let mut shard = sync::write(&lock.table);
                self.catch_up(lock, &mut shard);
            }
        }
        // Relaxed: a stale copy is older, which only prunes less.
        let oldest = self
            .shards
            .iter()
            .map(|lock| lock.seen.load(Ordering::Relaxed))
            .min()
            .unwrap_or(epoch);
        self.config.prune(oldest);
    }

    /// Runs `step` for `key` atomically, under the key's quota (`quota`,
    /// or the limiter's when `None`); `refused` answers a request refused
    /// before its quota is consulted, given the quota's limit.
    #[inline(always)]
    pub(crate) fn decide<Q, D: Answer>(
        &self,
        key: &Q,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
        step: impl Fn(&A, A::State, u64) -> Result<Verdict<A, D>, InsufficientCapacity>,
        refused: impl FnOnce(Refusal, u64) -> D,
    ) -> Result<Decided<D, A::State>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        if key.heap_bytes() > self.max_key_len {
            // Refused before hashing: hashing a huge key is work too.
            let limit = quota.map_or_else(|| self.config.current().limit(), Algorithm::limit);
            return Ok(Decided::answer(refused(Refusal::KeyTooLong, limit), 0));
        }
        let hash = self.hasher.hash_one(key);
        let lock = &self.shards[self.layout.shard(hash)];
        // Both cache lines of the lookup, requested before the lock's
        // read-modify-write and the clock read (see `prefetch.rs`).
        lock.prefetch.issue::<(K, Cell<A::State>)>(hash);
        let now = self.clock.now_ns();
        let latest = self.config.latest();
        {
            let shard = sync::read(&lock.table);
            if shard.epoch == latest {
                // Never decide before the shard's last sweep or change of
                // quota (see `Shard::floor`).
                let now = now.max(shard.floor);
                match shard.slot(hash, key, quota, same) {
                    Slot::Held {
                        cell,
                        algorithm,
                        generation,
                    } => {
                        // The read lock is held across the load and the
                        // swap in `update`: a sweep or a conversion (write
                        // lock) cannot touch this entry in between.
                        let u = update(cell, |current| step(algorithm, current, now))?;
                        return Ok(Decided {
                            answer: u.answer,
                            swap: u.swap,
                            generation,
                            hash,
                        });
                    }
                    Slot::Absent { algorithm, .. } => {
                        // A key in its initial state: it needs a slot only
                        // if this decision changes that state.
                        let fresh = step(algorithm, A::State::default(), now)?;
                        if fresh.next().is_none() {
                            return Ok(Decided::answer(fresh.decision(), hash));
                        }
                    }
                    Slot::Stale => {}
                }
            }
        }
        self.decide_exclusively(lock, hash, key, quota, same, now, step, refused)
    }

    /// [`decide`](Self::decide) under the shard's write lock: a new key, a
    /// key to convert, a shard to bring to a changed quota.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn decide_exclusively<Q, D: Answer>(
        &self,
        lock: &ShardLock<K, A>,
        hash: u64,
        key: &Q,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
        now: u64,
        step: impl Fn(&A, A::State, u64) -> Result<Verdict<A, D>, InsufficientCapacity>,
        refused: impl FnOnce(Refusal, u64) -> D,
    ) -> Result<Decided<D, A::State>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // A new key needs only the write lock. Bringing the shard or a key
        // to another quota (which rewrites states) needs the writer mutex
        // too, taken first, as every holder of both takes them: then no
        // all-or-nothing check is between its charges (`multi.rs`).
        let latest = self.config.latest();
        let rehash = |k: &K| self.hasher.hash_one(k);
        let mut shard = sync::write(&lock.table);
        // Keys converted under read locks since: the tags may go.
        shard.drop_tags_if_done();
        shard.publish(&lock.prefetch);
        let mut writer = None;
        let found = if shard.epoch == latest && shard.pending.is_none() {
            let now = now.max(shard.floor);
            match shard.slot(hash, key, quota, same) {
                Slot::Held {
                    cell,
                    algorithm,
                    generation,
                } => {
                    let u = update(cell, |current| step(algorithm, current, now))?;
                    return Ok(Decided {
                        answer: u.answer,
                        swap: u.swap,
                        generation,
                        hash,
                    });
                }
                Slot::Absent { algorithm, own } => Some((*algorithm, own)),
                Slot::Stale => None,
            }
        } else {
            None
        };
        let (algorithm, own) = match found {
            Some(absent) => absent,
            None => {
                drop(shard);
                writer = Some(sync::lock(&lock.writer));
                shard = sync::write(&lock.table);
                self.catch_up(lock, &mut shard);
                let now = now.max(shard.floor);
                shard.make_current(hash, key, quota, same, now, &rehash);
                match shard.slot(hash, key, quota, same) {
                    Slot::Held {
                        cell,
                        algorithm,
                        generation,
                    } => {
                        let u = update(cell, |current| step(algorithm, current, now))?;
                        return Ok(Decided {
                            answer: u.answer,
                            swap: u.swap,
                            generation,
                            hash,
                        });
                    }
                    Slot::Absent { algorithm, own } => (*algorithm, own),
                    Slot::Stale => unreachable!("make_current brought the key to its quota"),
                }
            }
        };
        let now = now.max(shard.floor);
        let fresh = step(&algorithm, A::State::default(), now)?;
        let Some(next) = fresh.next() else {
            return Ok(Decided::answer(fresh.decision(), hash));
        };
        if !shard.make_room(now, &rehash) {
            let wait = shard.earliest.load(Ordering::Relaxed).saturating_sub(now);
            return Ok(Decided::answer(
                refused(
                    Refusal::KeyTableFull(Duration::from_nanos(wait)),
                    algorithm.limit(),
                ),
                hash,
            ));
        }
        // Initialising a word no other thread can see yet (we hold the write
        // lock) is not a write to shared state: every later write goes
        // through `update`.
        let generation = if own {
            shard.insert_own(hash, key.to_owned(), next, algorithm, &rehash)
        } else {
            shard.insert_default(hash, key.to_owned(), next, &rehash)
        };
        shard.publish(&lock.prefetch);
        shard.lower_earliest_mut(algorithm.expires_at(next));
        shard.note_insertion(hash);
        drop(writer);
        Ok(Decided {
            answer: fresh.decision(),
            swap: Some((A::State::default(), next)),
            generation,
            hash,
        })
    }

    /// Brings `shard` (write-locked) to the limiter's latest quota.
    fn catch_up(&self, lock: &ShardLock<K, A>, shard: &mut Shard<K, A>) {
        if shard.epoch < self.config.latest() {
            shard.open(self.config.since(shard.epoch));
            lock.seen.store(shard.epoch, Ordering::Relaxed);
            shard.publish(&lock.prefetch);
        }
    }

    /// The receipt of a decision that stored an admission.
    fn receipt(&self, cost: u64, d: &Decided<impl Sized, A::State>) -> Option<Receipt<A>> {
        d.swap.map(|(_, admitted)| Receipt {
            owner: self.id,
            hash: d.hash,
            generation: d.generation,
            cost,
            admitted,
        })
    }

    /// The shard of `key` and its hash, for `multi.rs`.
    pub(crate) fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &ShardLock<K, A>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[self.layout.shard(hash)])
    }

    /// Whether `key` owns more bytes than the limiter stores.
    pub(crate) fn too_long<Q: KeyBytes + ?Sized>(&self, key: &Q) -> bool {
        key.heap_bytes() > self.max_key_len
    }

    /// The current default quota, for `multi.rs`.
    pub(crate) fn current(&self) -> A {
        self.config.current()
    }

    /// Makes sure `key` is held, under its quota and the limiter's latest
    /// one, in its shard, by a caller that holds the shard's `writer`
    /// mutex: `Err(wait)` when there is no room for it. Used by
    /// `multi.rs`, which then charges it under read locks while keeping
    /// the mutex. Under the read lock only, when it is already held.
    pub(crate) fn hold<Q>(
        &self,
        lock: &ShardLock<K, A>,
        hash: u64,
        key: &Q,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
    ) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        {
            let shard = sync::read(&lock.table);
            if shard.epoch == self.config.latest()
                && matches!(shard.slot(hash, key, quota, same), Slot::Held { .. })
            {
                return Ok(());
            }
        }
        let mut shard = sync::write(&lock.table);
        self.catch_up(lock, &mut shard);
        let now = self.clock.now_ns().max(shard.floor);
        let rehash = |k: &K| self.hasher.hash_one(k);
        shard.make_current(hash, key, quota, same, now, &rehash);
        let own = match shard.slot(hash, key, quota, same) {
            Slot::Held { .. } => return Ok(()),
            Slot::Absent { own, .. } => own,
            Slot::Stale => unreachable!("make_current brought the key to its quota"),
        };
        if !shard.make_room(now, &rehash) {
            return Err(Duration::from_nanos(
                shard.earliest.load(Ordering::Relaxed).saturating_sub(now),
            ));
        }
        let state = A::State::default();
        if own {
            let algorithm = *quota.expect("an own slot has a quota");
            shard.insert_own(hash, key.to_owned(), state, algorithm, &rehash);
        } else {
            shard.insert_default(hash, key.to_owned(), state, &rehash);
        }
        shard.publish(&lock.prefetch);
        // A fresh state expires at once: the next sweep may take it back.
        shard.lower_earliest(0);
        shard.note_insertion(hash);
        Ok(())
    }
}

/// The decision of a request refused before its quota was consulted.
fn refused_decision(refusal: Refusal, limit: u64) -> Decision {
    let (retry_after, reason) = match refusal {
        Refusal::KeyTooLong => (None, Reason::KeyTooLong),
        Refusal::KeyTableFull(wait) => (Some(wait), Reason::KeyTableFull),
    };
    Decision {
        allowed: false,
        remaining: 0,
        retry_after,
        reset_after: Duration::ZERO,
        limit,
        reason,
    }
}

/// The reservation of a request refused before its quota was consulted.
pub(crate) fn refused_reservation(refusal: Refusal, limit: u64) -> Reservation {
    let d = refused_decision(refusal, limit);
    Reservation::Rejected {
        retry_after: d.retry_after,
        reset_after: Duration::ZERO,
        limit,
        reason: d.reason,
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
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        self.reserve_inner(key, cost, max_wait, None, never_compared)
            .map(|d| d.answer)
    }

    /// [`reserve`](Self::reserve) under the key's own `quota` (see
    /// [`check_with_quota`](Self::check_with_quota)).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds `quota`'s capacity.
    pub fn reserve_with_quota<Q>(
        &self,
        key: &Q,
        cost: u64,
        max_wait: Option<Duration>,
        quota: &A,
    ) -> Result<Reservation, InsufficientCapacity>
    where
        A: PartialEq,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        self.reserve_inner(key, cost, max_wait, Some(quota), A::eq)
            .map(|d| d.answer)
    }

    /// [`reserve`](Self::reserve) with a [`Receipt`] when admitted at a
    /// cost above zero (and under the key's own `quota` when one is given):
    /// [`refund`](Self::refund) gives the reservation back while nothing
    /// was admitted on the key after it (what a dropped `acquire` does).
    ///
    /// # Errors
    /// As for [`reserve`](Self::reserve).
    pub fn reserve_refundable<Q>(
        &self,
        key: &Q,
        cost: u64,
        max_wait: Option<Duration>,
        quota: Option<&A>,
    ) -> Result<(Reservation, Option<Receipt<A>>), InsufficientCapacity>
    where
        A: PartialEq,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let d = self.reserve_inner(key, cost, max_wait, quota, A::eq)?;
        let receipt = self.receipt(cost, &d);
        Ok((d.answer, receipt))
    }

    /// [`reserve`](Self::reserve) under the limiter's quota, with a
    /// receipt (for `acquire`, which needs no `A: PartialEq`).
    #[cfg(feature = "tokio")]
    pub(crate) fn reserve_with_receipt<Q>(
        &self,
        key: &Q,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<(Reservation, Option<Receipt<A>>), InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let d = self.reserve_inner(key, cost, max_wait, None, never_compared)?;
        let receipt = self.receipt(cost, &d);
        Ok((d.answer, receipt))
    }

    fn reserve_inner<Q>(
        &self,
        key: &Q,
        cost: u64,
        max_wait: Option<Duration>,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
    ) -> Result<Decided<Reservation, u64>, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let max_wait_ns = max_wait.map(duration_ns);
        self.decide(
            key,
            quota,
            same,
            |algorithm, tat, now| algorithm.reserve_verdict(tat, now, cost, max_wait_ns),
            refused_reservation,
        )
    }
}

impl<K, A: Algorithm, C, S> KeyedLimiter<K, A, C, S>
where
    A::State: Word,
{
    /// The number of keys held now, across all shards (on the limiter's
    /// quota or their own). Keys whose bucket is back to its initial state
    /// may still be counted until their shard next sweeps.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = sync::read(&s.table);
                shard.entries.len() + shard.own.len()
            })
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The most bytes a key may own ([`KeyBytes`]); longer keys are refused
    /// with [`Reason::KeyTooLong`].
    pub fn max_key_len(&self) -> usize {
        self.max_key_len
    }

    /// How many keys the tables have room for before they next grow (at
    /// least [`len`](Self::len); the memory actually allocated).
    pub fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = sync::read(&s.table);
                shard.entries.capacity() + shard.own.capacity()
            })
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

    /// The quota of every key that has none of its own: the algorithm the
    /// limiter was built with, or the latest [`reconfigure`](Self::reconfigure)d.
    pub fn algorithm(&self) -> A {
        self.config.current()
    }

    /// How many changes of quota the limiter keeps for shards that have
    /// not seen them yet (for tests and diagnostics; bounded, see
    /// docs/concurrency.md).
    #[doc(hidden)]
    pub fn changes_kept(&self) -> usize {
        self.config.kept()
    }

    /// How many keys still wait for a change of quota to reach them (for
    /// tests and diagnostics).
    #[doc(hidden)]
    pub fn keys_to_convert(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                sync::read(&s.table)
                    .pending
                    .as_ref()
                    .map_or(0, |p| p.stale.load(Ordering::Relaxed))
            })
            .sum()
    }
}

impl<K, A: Algorithm> Shard<K, A>
where
    A::State: Word,
{
    /// Where `key` is, for a call under `quota` (the limiter's when
    /// `None`).
    #[inline(always)]
    pub(crate) fn slot<'s, Q>(
        &'s self,
        hash: u64,
        key: &Q,
        quota: Option<&'s A>,
        same: fn(&A, &A) -> bool,
    ) -> Slot<'s, A>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match quota {
            None => {
                if !self.own.is_empty() && self.own.find(hash, |o| o.key.borrow() == key).is_some()
                {
                    // Back to the limiter's quota: moved and converted first.
                    return Slot::Stale;
                }
                self.default_slot(hash, key)
            }
            Some(q) => {
                if let Some(o) = self.own.find(hash, |o| o.key.borrow() == key) {
                    return if same(&o.algorithm, q) {
                        Slot::Held {
                            cell: &o.state,
                            algorithm: &o.algorithm,
                            generation: Generation::Own(o.version),
                        }
                    } else {
                        Slot::Stale
                    };
                }
                if self.entries.find(hash, |e| e.0.borrow() == key).is_some() {
                    // From the limiter's quota to its own: converted first.
                    return Slot::Stale;
                }
                Slot::Absent {
                    algorithm: q,
                    own: true,
                }
            }
        }
    }

    /// Where `key` is among the keys on the limiter's quota. A key kept
    /// under an older quota is converted here, under the read lock (see
    /// [`convert_shared`](Self::convert_shared)).
    #[inline(always)]
    fn default_slot<Q>(&self, hash: u64, key: &Q) -> Slot<'_, A>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let eq = |e: &(K, Cell<A::State>)| e.0.borrow() == key;
        let held = match &self.pending {
            // Acquire: pairs with the Release of the last conversion's
            // decrement, so every word is seen converted.
            Some(p) if p.stale.load(Ordering::Acquire) != 0 => {
                match self.entries.find_bucket_index(hash, eq) {
                    Some(i) => {
                        let entry = self.entries.get_bucket(i);
                        if let Some((_, cell)) = entry {
                            self.convert_shared(p, i, cell);
                        }
                        entry
                    }
                    None => None,
                }
            }
            // No tags, or every key converted: a plain lookup.
            _ => self.entries.find(hash, eq),
        };
        match held {
            Some((_, cell)) => Slot::Held {
                cell,
                algorithm: &self.algorithm,
                generation: Generation::Limiter(self.epoch),
            },
            None => Slot::Absent {
                algorithm: &self.algorithm,
                own: false,
            },
        }
    }

    /// Brings the entry in slot `i` (word `cell`) to the shard's epoch,
    /// under the read lock, if it is behind: the checker that turns its tag
    /// from behind to [`BUSY`] converts the word (a compare-and-swap loop:
    /// only a refund of the old epoch can race it) and then publishes the
    /// current tag with Release; the others wait for it. A checker that
    /// reads the current tag with Acquire sees the converted word, so no
    /// step ever runs on a state of another quota. The shard's epoch
    /// cannot change meanwhile: opening one takes the write lock.
    #[cold]
    fn convert_shared(&self, p: &Pending<A>, i: usize, cell: &Cell<A::State>) {
        let current = (self.epoch - p.base) as u8;
        let tag = &p.tags[i];
        let mut seen = tag.load(Ordering::Acquire);
        let mut spins = 0u32;
        while seen != current {
            if seen == BUSY {
                // Another checker is converting it: a few instructions.
                spins += 1;
                if spins % 64 == 0 {
                    sync::yield_now();
                } else {
                    core::hint::spin_loop();
                }
                seen = tag.load(Ordering::Acquire);
                continue;
            }
            match tag.compare_exchange(seen, BUSY, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let from = p.base + u64::from(seen);
                    let mut state = A::State::load(cell);
                    let converted = loop {
                        let next = p.convert(state, from);
                        match A::State::swap_if(cell, state, next) {
                            Ok(_) => break next,
                            Err(actual) => state = actual,
                        }
                    };
                    tag.store(current, Ordering::Release);
                    // Release: a checker that reads 0 here skips the tags
                    // and must see every conversion (see `default_slot`).
                    p.stale.fetch_sub(1, Ordering::Release);
                    self.lower_earliest(self.algorithm.expires_at(converted));
                    return;
                }
                Err(actual) => seen = actual,
            }
        }
    }

    /// The state of `key` and its quota, if it is still kept under the
    /// quota `generation` names (for refunds).
    fn find_generation<Q>(
        &self,
        hash: u64,
        key: &Q,
        generation: Generation,
    ) -> Option<(&Cell<A::State>, A)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match generation {
            Generation::Limiter(epoch) => {
                let i = self
                    .entries
                    .find_bucket_index(hash, |e| e.0.borrow() == key)?;
                let (_, cell) = self.entries.get_bucket(i)?;
                let algorithm = match &self.pending {
                    // A tag of the receipt's epoch; not BUSY (being
                    // converted), which no epoch equals.
                    Some(p) if p.base + u64::from(p.tags[i].load(Ordering::Acquire)) == epoch => {
                        p.algorithm_at(epoch)
                    }
                    Some(_) => return None,
                    None if self.epoch == epoch => self.algorithm,
                    None => return None,
                };
                Some((cell, algorithm))
            }
            Generation::Own(version) => {
                let o = self.own.find(hash, |o| o.key.borrow() == key)?;
                (o.version == version).then_some((&o.state, o.algorithm))
            }
            Generation::Fixed => None,
        }
    }

    /// [`lower_earliest`](Self::lower_earliest) under the write lock.
    fn lower_earliest_mut(&mut self, expires_at: u64) {
        if expires_at < self.earliest.load(Ordering::Relaxed) {
            self.earliest.store(expires_at, Ordering::Relaxed);
        }
    }

    /// The state of `key` and its quota, held and current (for `multi.rs`,
    /// after [`KeyedLimiter::hold`]).
    pub(crate) fn held<'s, Q>(
        &'s self,
        hash: u64,
        key: &Q,
        quota: Option<&'s A>,
        same: fn(&A, &A) -> bool,
    ) -> Option<(&'s Cell<A::State>, A)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        match self.slot(hash, key, quota, same) {
            Slot::Held {
                cell, algorithm, ..
            } => Some((cell, *algorithm)),
            Slot::Absent { .. } | Slot::Stale => None,
        }
    }

    /// The time decisions in this shard may not go below.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// Lowers the bound on the earliest expiry (a refund or a rollback may
    /// make a state expire sooner). Safe under the read lock.
    pub(crate) fn lower_earliest(&self, expires_at: u64) {
        // A load first: `fetch_min` is a compare-and-swap loop on x86-64,
        // and the bound rarely moves.
        if expires_at < self.earliest.load(Ordering::Relaxed) {
            self.earliest.fetch_min(expires_at, Ordering::Relaxed);
        }
    }

    /// Copies the changes the shard has not seen (the limiter's epochs
    /// `epoch + 1 ..`) and makes the last one its quota. Its keys are
    /// converted later, one by one.
    fn open(&mut self, changes: Vec<Change<A>>) {
        let Some(last) = changes.last().copied() else {
            return;
        };
        if !self.entries.is_empty() {
            let (epoch, algorithm, buckets) =
                (self.epoch, self.algorithm, self.entries.num_buckets());
            let p = self.pending.get_or_insert_with(|| {
                Box::new(Pending {
                    base: epoch,
                    from: algorithm,
                    changes: Vec::new(),
                    // Zeroed: every entry is at `epoch`, the base.
                    tags: (0..buckets).map(|_| AtomicU8::new(0)).collect(),
                    stale: AtomicUsize::new(0),
                })
            });
            p.changes.extend(changes.iter().copied());
            // Every entry is now behind, including those that were current.
            p.stale.store(self.entries.len(), Ordering::Relaxed);
            // A conversion may bring an expiry forward (a faster rate, a
            // smaller capacity): `earliest` is no longer a bound until the
            // next sweep, which converts every entry and recomputes it.
            self.earliest.store(0, Ordering::Relaxed);
        }
        self.epoch += changes.len() as u64;
        self.algorithm = last.algorithm;
        // Decisions under the new quota are made at or after the change.
        self.floor = self.floor.max(last.at);
        if self
            .pending
            .as_ref()
            .is_some_and(|p| self.epoch - p.base > MAX_PENDING)
        {
            self.flush();
        }
    }

    /// Converts the entry in slot `i` to the shard's epoch, if it is behind
    /// (under the write lock: no checker is converting it).
    fn convert_slot(&mut self, i: usize) {
        let epoch = self.epoch;
        let Some(p) = self.pending.as_deref_mut() else {
            return;
        };
        let from = p.base + u64::from(p.tags[i].load(Ordering::Relaxed));
        if from == epoch {
            return;
        }
        let Some((_, cell)) = self.entries.get_bucket(i) else {
            return;
        };
        // We hold the write lock: no swap is in flight on this word (every
        // swap happens under a read lock), so a plain store is exact.
        let state = p.convert(A::State::load(cell), from);
        A::State::store(cell, state);
        p.tags[i].store((epoch - p.base) as u8, Ordering::Relaxed);
        p.stale.fetch_sub(1, Ordering::Relaxed);
        let expires = self.algorithm.expires_at(state);
        self.earliest.fetch_min(expires, Ordering::Relaxed);
        self.drop_tags_if_done();
    }

    /// Drops the tags once no entry is behind (write lock).
    fn drop_tags_if_done(&mut self) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.stale.load(Ordering::Relaxed) == 0)
        {
            self.pending = None;
        }
    }

    /// Converts every entry that is behind, and drops the tags.
    fn flush(&mut self) {
        if self.pending.is_none() {
            return;
        }
        let slots: Vec<usize> = self.entries.iter_buckets().collect();
        for i in slots {
            self.convert_slot(i);
        }
        self.pending = None;
    }

    /// Brings `key` to the quota of a call under `quota`: converts it if it
    /// is behind the shard's epoch, moves it between the two tables when it
    /// gains or loses a quota of its own, converts it when its own quota
    /// changes (`keep-consumed`, at `now`).
    fn make_current<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        quota: Option<&A>,
        same: fn(&A, &A) -> bool,
        now: u64,
        rehash: &impl Fn(&K) -> u64,
    ) where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.pending.is_some() {
            if let Some(i) = self
                .entries
                .find_bucket_index(hash, |e| e.0.borrow() == key)
            {
                self.convert_slot(i);
            }
        }
        match quota {
            None => {
                if self.own.is_empty() {
                    return;
                }
                if let Ok(entry) = self.own.find_entry(hash, |o| o.key.borrow() == key) {
                    let (own, _) = entry.remove();
                    let state = own.algorithm.convert(
                        A::State::load(&own.state),
                        now,
                        &self.algorithm,
                        Strategy::KeepConsumed,
                    );
                    self.lower_earliest(self.algorithm.expires_at(state));
                    self.insert_default(hash, own.key, state, rehash);
                }
            }
            Some(q) => {
                self.versions += 1;
                let version = self.versions;
                if let Some(o) = self.own.find_mut(hash, |o| o.key.borrow() == key) {
                    if !same(&o.algorithm, q) {
                        let state = o.algorithm.convert(
                            A::State::load(&o.state),
                            now,
                            q,
                            Strategy::KeepConsumed,
                        );
                        A::State::store(&o.state, state);
                        o.algorithm = *q;
                        o.version = version;
                        self.earliest
                            .fetch_min(q.expires_at(state), Ordering::Relaxed);
                    }
                } else if let Ok(entry) = self.entries.find_entry(hash, |e| e.0.borrow() == key) {
                    // Current (converted above): a plain move.
                    let ((k, cell), _) = entry.remove();
                    let state = self.algorithm.convert(
                        A::State::load(&cell),
                        now,
                        q,
                        Strategy::KeepConsumed,
                    );
                    self.lower_earliest(q.expires_at(state));
                    self.insert_own(hash, k, state, *q, rehash);
                }
            }
        }
    }

    /// Inserts a key on the limiter's quota (not held yet).
    fn insert_default(
        &mut self,
        hash: u64,
        key: K,
        state: A::State,
        rehash: &impl Fn(&K) -> u64,
    ) -> Generation {
        if self.pending.is_some() && self.entries.len() == self.entries.capacity() {
            // The insertion will reorganise the table and move entries out
            // of their slots: convert them all first, and drop the tags.
            self.flush();
        }
        let i = self
            .entries
            .insert_unique(hash, (key, A::State::cell(state)), |e| rehash(&e.0))
            .bucket_index();
        self.inserted_at = i;
        if let Some(p) = self.pending.as_deref_mut() {
            p.tags[i].store((self.epoch - p.base) as u8, Ordering::Relaxed);
        }
        Generation::Limiter(self.epoch)
    }

    /// Tells `hint` where `entries` is now, from the latest insertion's
    /// entry (nothing if that bucket has been emptied since), and where
    /// its tags are, if it has any.
    fn publish(&self, hint: &Prefetch) {
        if let Some(entry) = self.entries.get_bucket(self.inserted_at) {
            hint.note(&self.entries, self.inserted_at, entry);
        }
        hint.note_tags(self.pending.as_deref().map(|p| &p.tags[..]));
    }

    /// Inserts a key on a quota of its own (not held yet).
    fn insert_own(
        &mut self,
        hash: u64,
        key: K,
        state: A::State,
        algorithm: A,
        rehash: &impl Fn(&K) -> u64,
    ) -> Generation {
        self.versions += 1;
        let version = self.versions;
        self.own.insert_unique(
            hash,
            Own {
                key,
                state: A::State::cell(state),
                algorithm,
                version,
            },
            |o| rehash(&o.key),
        );
        Generation::Own(version)
    }

    /// Counts an insertion of the key of `hash`, and whether it returns.
    fn note_insertion(&mut self, hash: u64) {
        self.inserted += 1;
        if let Some(returning) = self.ghosts.take(hash) {
            self.sampled += 1;
            self.returning += usize::from(returning);
        }
    }

    /// Whether a new entry may be inserted, after a sweep if one can help.
    ///
    /// A sweep runs only if some entry may have expired (`now ≥ earliest`),
    /// and then:
    /// - when the shard holds its share of `max_keys`, always: a new key is
    ///   refused only if no entry can be dropped;
    /// - when the insertion would grow the table, if at least an eighth of
    ///   the entries were inserted since the last sweep: the `O(len)` sweep
    ///   is paid for by those insertions (amortized `O(1)` each), unless
    ///   at least half of the last [`SAMPLE`] or more sampled insertions were
    ///   returning keys (dropped by a recent sweep, see [`Ghosts`]) and
    ///   they are at most [`RETURNING_MAX`]: the keys that keep coming
    ///   back are more than the table holds, and sweeping would only drop
    ///   them to insert them again. Otherwise the table grows (or
    ///   rehashes in place, if erased slots allow).
    fn make_room(&mut self, now: u64, rehash: &impl Fn(&K) -> u64) -> bool {
        let len = self.entries.len() + self.own.len();
        let at_limit = len >= self.limit;
        let would_grow = self.entries.len() == self.entries.capacity();
        let paid_for = self.inserted >= len / 8;
        let earliest = self.earliest.load(Ordering::Relaxed);
        let mut sweep = now >= earliest && (at_limit || (would_grow && paid_for));
        if would_grow && !at_limit {
            // The keys that come back: those held, and those away (the
            // sampled ghosts, scaled by the sample's share).
            let away = (u128::try_from(self.ghosts.hashes.len()).unwrap_or(u128::MAX) << 32)
                / u128::from(self.ghosts.below);
            let working = usize::try_from(away)
                .unwrap_or(usize::MAX)
                .saturating_add(len);
            if self.sampled >= SAMPLE {
                self.grow = self.returning * 2 >= self.sampled && working <= RETURNING_MAX;
                (self.sampled, self.returning) = (0, 0);
            }
            if self.grow && len < RETURNING_MAX {
                // Grow to hold them, within the shard's share of
                // `max_keys`.
                sweep = false;
                let want = working.min(RETURNING_MAX).min(self.limit);
                if want > self.entries.capacity() {
                    // The table reorganises: convert lagging entries first.
                    self.flush();
                    self.entries
                        .reserve(want - self.entries.len(), |e| rehash(&e.0));
                }
            }
        }
        if sweep {
            self.sweep(now, rehash);
        }
        self.entries.len() + self.own.len() < self.limit
    }

    /// Removes every entry whose state has expired at `now` (equivalent
    /// to a key never seen), remembers their hashes among the ghosts, and
    /// makes `earliest` exact. Converts every entry that is behind first:
    /// a state is read under its own quota.
    fn sweep(&mut self, now: u64, rehash: &impl Fn(&K) -> u64) {
        self.flush();
        let mut earliest = u64::MAX;
        let algorithm = self.algorithm;
        let ghosts = &mut self.ghosts;
        // Relaxed loads: we hold the write lock, and every swap of these
        // words was made under a read lock released before we acquired it,
        // so the lock orders them before these loads, which read the last.
        self.entries.retain(|(key, state)| {
            let expires = algorithm.expires_at(A::State::load(state));
            let keep = expires > now;
            if keep {
                earliest = earliest.min(expires);
            } else {
                ghosts.add(rehash(key));
            }
            keep
        });
        self.own.retain(|o| {
            let expires = o.algorithm.expires_at(A::State::load(&o.state));
            let keep = expires > now;
            if keep {
                earliest = earliest.min(expires);
            } else {
                ghosts.add(rehash(&o.key));
            }
            keep
        });
        self.earliest.store(earliest, Ordering::Relaxed);
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
            .field("algorithm", &self.algorithm())
            .field("clock", &self.clock)
            .field("max_keys", &self.max_keys)
            .field("max_key_len", &self.max_key_len)
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
            .field("max_key_len", &self.max_key_len)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(ratelimit_loom)))]
mod layout_tests {
    use super::*;
    use ratelimit_core::{Rate, SlidingWindow, TokenBucket};

    /// Where `field` ends, in bytes from `base`.
    fn end<T>(base: *const u8, field: &T) -> usize {
        (field as *const T as usize + size_of::<T>()) - base as usize
    }

    /// The fields a check reads end within the shard's first 128 bytes
    /// (two cache lines, for a bucket's quota); the cold ones come after.
    #[test]
    fn a_check_reads_the_first_two_lines_of_a_bucket_shard() {
        let limiter: KeyedLimiter<u64, TokenBucket> =
            KeyedLimiter::with_algorithm(TokenBucket::with_rate(10, Rate::per_second(1)).unwrap());
        let shard = sync::read(&limiter.shards[0].table);
        let base = &*shard as *const Shard<u64, TokenBucket> as *const u8;
        let hot = [
            end(base, &shard.entries),
            end(base, &shard.epoch),
            end(base, &shard.floor),
            end(base, &shard.pending),
            end(base, &shard.own),
            end(base, &shard.algorithm),
        ];
        assert_eq!(hot.iter().max(), Some(&128), "{hot:?}");
        let cold = (&shard.limit as *const usize as usize) - base as usize;
        assert!(cold >= 128, "{cold}");
    }

    /// After a change of quota, a shard that holds keys has tags, and its
    /// prefetch hint points at them; once every key is converted and the
    /// tags are dropped, the hint says so.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_hint_follows_the_tags() {
        let clock = std::sync::Arc::new(ratelimit_core::ManualClock::new(1_000_000_000));
        let quota = |c| TokenBucket::with_rate(c, Rate::per_second(1)).unwrap();
        let limiter: KeyedLimiter<u64, TokenBucket, _> = KeyedLimiter::builder(quota(10))
            .shards(1)
            .clock(std::sync::Arc::clone(&clock))
            .build();
        for k in 0..100 {
            assert!(limiter.check(&k).allowed);
        }
        let lock = &limiter.shards[0];
        assert_eq!(lock.prefetch.tags_address(), 0, "no tags before a change");
        limiter.reconfigure(quota(5), Strategy::KeepConsumed);
        assert!(limiter.check(&0).allowed);
        let tags = {
            let shard = sync::read(&lock.table);
            shard.pending.as_deref().map(|p| p.tags.as_ptr() as usize)
        };
        assert!(tags.is_some(), "the shard keeps tags while keys lag");
        assert_eq!(Some(lock.prefetch.tags_address()), tags);
        // Every key converted; the next write-locked pass drops the tags.
        for k in 0..100 {
            let _ = limiter.check(&k);
        }
        assert!(
            limiter.check(&1000).allowed,
            "a new key takes the write lock"
        );
        assert!(sync::read(&lock.table).pending.is_none());
        assert_eq!(lock.prefetch.tags_address(), 0);
    }

    /// The same order for a window's larger quota: the algorithm is the last
    /// hot field, so only it spills over.
    #[test]
    fn the_algorithm_is_the_last_hot_field() {
        let window = SlidingWindow::new(10, core::time::Duration::from_secs(1)).unwrap();
        let limiter: KeyedLimiter<u64, SlidingWindow> = KeyedLimiter::with_algorithm(window);
        let shard = sync::read(&limiter.shards[0].table);
        let base = &*shard as *const Shard<u64, SlidingWindow> as *const u8;
        let algorithm_start = end(base, &shard.algorithm) - size_of::<SlidingWindow>();
        assert_eq!(algorithm_start, end(base, &shard.own));
        assert!(algorithm_start <= 96, "{algorithm_start}");
    }
}
