//! [`check_all`]: one request checked against several limits (different
//! algorithms, quotas, keys, limiters), charged to all of them or to none.
//!
//! The protocol (docs/concurrency.md, "Several limits, all or nothing"):
//!
//! 1. Take the writer of every limit whose charge may be rolled back, in
//!    address order, each once: a keyed limiter's shard's `writer` mutex,
//!    or a [`Bucket`]'s one-byte writer flag (a spin lock held for a few
//!    charges). Every writer that rewrites a keyed limiter's states takes
//!    the mutex first (converting to a new quota, moving a key between its
//!    tables, sweeping while keys lag a change), and every all-or-nothing
//!    check takes the writer of each limit it may roll back; a plain
//!    `check` takes neither. So while they are held no key involved is
//!    converted or moved, and no other rollback can touch the word: only
//!    plain admissions (and exact refunds) can land on it. The last limit
//!    of a check is never rolled back (if it denies, nothing of it was
//!    charged; if it allows, the request is), so to every other check its
//!    charge is one more admission: a bucket in last place takes no flag
//!    (a key still takes its mutex, for the conversions).
//! 2. Charge the limits one by one, each with the compare-and-swap of
//!    every decision, computed from the value it replaces (each key is first held,
//!    under the limiter's latest quota: inserted in its initial state if
//!    absent, its shard caught up with any `reconfigure` it has not seen
//!    yet, so that the check decides under the latest quota as a plain
//!    check does). If one denies, roll
//!    back those already charged, newest first, with
//!    [`Algorithm::roll_back`] (exact unless a plain admission landed on the
//!    charge meanwhile and time moved; never looser than the state without
//!    the charge), and decide the remaining limits without charging them,
//!    so that every limit that denies is reported.
//!
//! What a concurrent caller can observe: while a request that is finally
//! denied runs, the charges of the limits before the one that denies it.
//! Another `check_all` that takes the same writers never sees them (it
//! waits); a plain `check` of one of those keys at that moment, or a
//! `check_all` that has the bucket in last place, sees the units as used,
//! and may be told fewer remain or be denied. No limit is
//! ever admitted beyond its contract, and nothing of a denied request stays
//! charged (to the nanosecond while time stands still; otherwise at most
//! the time that passed while the charge was visible, on the strict side).

use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::time::Duration;

use ratelimit_core::{Algorithm, Clock, Decision, Reason};

use crate::bucket::{Bucket, update};
use crate::key::KeyBytes;
use crate::keyed::{Cell, KeyedLimiter, Refusal, ShardLock, Slot};
use crate::sync::{self, Flag, MutexGuard};
use crate::word::{Word, sealed::Word as _};

/// One limit of an all-or-nothing [`check_all`]: a key of a
/// [`KeyedLimiter`] ([`KeyedLimiter::limit`]) or a [`Bucket`]
/// ([`Bucket::limit`]), with the cost to charge it.
///
/// Sealed: implemented by [`KeyedLimit`] and [`BucketLimit`] only.
pub trait Limit: sealed::Part {}

pub(crate) mod sealed {
    use ratelimit_core::Decision;

    use crate::sync::{Flag, Mutex};

    /// What a limit's charge is taken under (see [`Part::writer`]).
    #[derive(Debug, Clone, Copy)]
    pub enum Writer<'a> {
        /// Nothing: a charge never rolled back.
        None,
        /// A bucket's writer flag (a spin lock held for a few charges).
        Flag(&'a Flag),
        /// A keyed limiter's shard's writer mutex.
        Mutex(&'a Mutex<()>),
    }

    /// A charge: the states before and after it, widened to 128 bits.
    #[derive(Debug, Clone, Copy)]
    pub struct Charge {
        pub(crate) before: u128,
        pub(crate) after: u128,
    }

    /// One limit's side of the protocol of `check_all`.
    pub trait Part {
        /// What keeps other rollbacks (and, for a key, conversions and
        /// moves) away from this limit's state while a check may roll it
        /// back; `last` when this limit is charged last (then never rolled
        /// back).
        fn writer(&self, last: bool) -> Writer<'_>;

        /// The decision on the current state, without writing: whether it
        /// allows, and the decision to report if nothing is charged.
        fn evaluate(&self) -> (bool, Decision);

        /// Charges the limit (holding its key first, under the writer
        /// mutex the caller holds): whether it allowed; the decision goes
        /// to `decision`, and the charge, when it allowed at a cost above
        /// zero, to `charge` (out-parameters: no large value is returned
        /// through the dynamic call).
        fn charge(&self, decision: &mut Decision, charge: &mut Option<Charge>) -> bool;

        /// Rolls a charge back.
        fn roll_back(&self, charge: Charge);
    }
}

use sealed::{Charge, Part, Writer};

/// A key of a [`KeyedLimiter`] as one limit of [`check_all`]; from
/// [`KeyedLimiter::limit`].
pub struct KeyedLimit<'a, K, A: Algorithm, C, S, Q: ?Sized>
where
    A::State: Word,
{
    limiter: &'a KeyedLimiter<K, A, C, S>,
    key: &'a Q,
    /// The key's hash and shard, computed once.
    hash: u64,
    lock: &'a ShardLock<K, A>,
    cost: u64,
    quota: Option<&'a A>,
    same: fn(&A, &A) -> bool,
}

/// A [`Bucket`] as one limit of [`check_all`]; from [`Bucket::limit`].
pub struct BucketLimit<'a, A: Algorithm, C>
where
    A::State: Word,
{
    bucket: &'a Bucket<A, C>,
    cost: u64,
}

/// The answer of [`check_all`]: the combined decision and each limit's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct MultiDecision<const N: usize> {
    /// Allowed when every limit allows, and then every limit was charged;
    /// otherwise none was. `remaining` is the smallest of the limits',
    /// `reset_after` the largest, `limit` that of the limit with the fewest
    /// remaining; when denied, `retry_after` is the largest among the
    /// limits that deny, or `None` if one of them never can allow (a cost
    /// above its capacity, a key too long), and `reason` the first
    /// denying limit's reason other than the quota, if any.
    pub decision: Decision,
    /// Each limit's decision, in the order given. When the request is
    /// denied, nothing was charged: a limit that would have allowed it
    /// reports `allowed: true` with what it has left, untouched.
    pub limits: [Decision; N],
}

impl<const N: usize> MultiDecision<N> {
    /// Whether the request may proceed (every limit allowed it and was
    /// charged).
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.decision.allowed
    }

    /// The limits that denied the request, by their index in the call.
    pub fn denied_by(&self) -> impl Iterator<Item = usize> + '_ {
        self.limits
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.allowed)
            .map(|(i, _)| i)
    }
}

/// Checks one request against every limit of `limits`, and charges all of
/// them or none: allowed only if each allows it, and only then is any
/// charged. No limit ever admits more than its own contract allows, under
/// any concurrency, and nothing is left charged for a denied request. See
/// [`MultiDecision`] for how the answers combine, and the module docs of
/// the crate (docs/concurrency.md) for what a concurrent caller may see.
///
/// Order matters for speed, not for the answer: every [`Bucket`] but the
/// last one given is held for the duration of the call (a one-byte lock
/// that other all-or-nothing checks of that bucket wait for; plain checks
/// never do), while the last one is charged without it. So put a bucket
/// that many requests share (a global limit) last.
///
/// ```
/// use ratelimit_memory::{Bucket, FixedWindow, KeyedLimiter, Rate, TokenBucket, check_all};
///
/// // 2 per second per user, 3 per day per user, 1000 per second overall.
/// let per_second = KeyedLimiter::<String, _>::with_algorithm(TokenBucket::with_rate(2, Rate::per_second(2))?);
/// let per_day = KeyedLimiter::<String, _>::with_algorithm(FixedWindow::per_hour(3)?);
/// let global = Bucket::new(TokenBucket::with_rate(1000, Rate::per_second(1000))?);
///
/// let request = |user: &str| {
///     check_all([&per_second.limit(user, 1), &per_day.limit(user, 1), &global.limit(1)])
/// };
/// assert!(request("alice").allowed());
/// assert!(request("alice").allowed());
/// let third = request("alice");
/// assert!(!third.allowed());
/// assert_eq!(third.denied_by().collect::<Vec<_>>(), [0]); // the per-second limit
/// // Denied: the day's window and the global bucket keep nothing charged.
/// assert_eq!(third.limits[1].remaining, 1);
/// assert_eq!(third.limits[2].remaining, 998);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_all<const N: usize>(limits: [&dyn Limit; N]) -> MultiDecision<N> {
    // 1. The writers of every limit whose charge may be rolled back, in
    // address order, each once: every limit but the last. The last limit's
    // charge is never rolled back (if it denies, nothing of it is charged;
    // if it allows, the request is), so to the others it is one more plain
    // admission, which needs no exclusion, unless it is a key (a key's
    // writer mutex also keeps conversions and moves away, see `charge`).
    let writers: [Writer<'_>; N] = core::array::from_fn(|i| limits[i].writer(i + 1 == N));
    let mut flags: [Option<&Flag>; N] = [None; N];
    for (flag, writer) in flags.iter_mut().zip(&writers) {
        match *writer {
            Writer::None => {}
            Writer::Flag(f) => *flag = Some(f),
            Writer::Mutex(_) => return locked(&limits, writers),
        }
    }
    // Buckets only: their flags.
    let held = Flags::lock(flags);
    let decided = charge_all(&limits);
    drop(held);
    decided
}

/// The writer flags of the buckets of a check, set.
struct Flags<'a, const N: usize>([Option<&'a Flag>; N]);

impl<'a, const N: usize> Flags<'a, N> {
    /// Sets `flags` in address order, each once.
    #[inline]
    fn lock(mut flags: [Option<&'a Flag>; N]) -> Self {
        let address = |f: &Option<&Flag>| f.map_or(0, |f| core::ptr::from_ref(f) as usize);
        if N > 2 {
            flags.sort_unstable_by_key(address);
        }
        for i in 0..N {
            if let Some(flag) = flags[i] {
                if flags[..i].iter().any(|f| address(f) == address(&flags[i])) {
                    // Taken already: cleared once, on drop.
                    flags[i] = None;
                } else {
                    flag.lock();
                }
            }
        }
        Self(flags)
    }
}

impl<const N: usize> Drop for Flags<'_, N> {
    #[inline]
    fn drop(&mut self) {
        for flag in self.0.iter().flatten() {
            // Our charges and rollbacks of the bucket happen before the next
            // holder's.
            flag.unlock();
        }
    }
}

/// [`check_all`] with `order`'s writers held (some of them mutexes).
#[inline(never)]
fn locked<const N: usize>(
    limits: &[&dyn Limit; N],
    mut order: [Writer<'_>; N],
) -> MultiDecision<N> {
    order.sort_unstable_by_key(Writer::address);
    let mut guards: [Option<Guard<'_>>; N] = core::array::from_fn(|_| None);
    for slot in 0..N {
        let repeat = slot > 0 && order[slot - 1].address() == order[slot].address();
        if !repeat {
            guards[slot] = order[slot].lock();
        }
    }
    let decided = charge_all(limits);
    drop(guards);
    decided
}

impl<'a> Writer<'a> {
    /// The address the writers are ordered by (0 for none).
    fn address(&self) -> usize {
        match *self {
            Writer::None => 0,
            Writer::Flag(flag) => core::ptr::from_ref(flag) as usize,
            Writer::Mutex(mutex) => core::ptr::from_ref(mutex) as usize,
        }
    }

    /// Takes the writer, if any.
    fn lock(&self) -> Option<Guard<'a>> {
        match *self {
            Writer::None => None,
            Writer::Flag(flag) => {
                flag.lock();
                Some(Guard::Flag(flag))
            }
            Writer::Mutex(mutex) => Some(Guard::Mutex(sync::lock(mutex))),
        }
    }
}

/// A writer held.
enum Guard<'a> {
    /// A bucket's flag, set: cleared on drop.
    Flag(&'a Flag),
    /// A shard's writer mutex.
    #[allow(dead_code)] // held for its drop
    Mutex(MutexGuard<'a>),
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Guard::Flag(flag) = self {
            flag.unlock();
        }
    }
}

/// Step 2 of [`check_all`]: the limits charged one by one (each key held
/// first); if one denies, those already charged are rolled back, and the
/// rest decided without charging, so that every limit that denies is
/// reported.
#[inline]
fn charge_all<const N: usize>(limits: &[&dyn Limit; N]) -> MultiDecision<N> {
    // Built in place (the answer is returned through the caller's slot):
    // each limit writes its decision straight into it.
    let mut out = MultiDecision {
        decision: PLACEHOLDER,
        limits: [PLACEHOLDER; N],
    };
    let mut charges: [Option<Charge>; N] = [None; N];
    for (i, limit) in limits.iter().enumerate() {
        if !limit.charge(&mut out.limits[i], &mut charges[i]) {
            for j in (0..i).rev() {
                if let Some(charge) = charges[j] {
                    limits[j].roll_back(charge);
                }
                out.limits[j] = limits[j].evaluate().1;
            }
            for (decision, limit) in out.limits.iter_mut().zip(limits).skip(i + 1) {
                *decision = limit.evaluate().1;
            }
            out.decision = combine(&out.limits);
            return out;
        }
    }
    out.decision = allowed(&out.limits);
    out
}

/// A decision to overwrite.
const PLACEHOLDER: Decision = Decision {
    allowed: false,
    remaining: 0,
    retry_after: None,
    reset_after: Duration::ZERO,
    limit: 0,
    reason: Reason::Quota,
};

/// The combined decision when every limit allowed (see [`combine`]).
#[inline]
fn allowed(limits: &[Decision]) -> Decision {
    let mut decision = Decision {
        allowed: true,
        remaining: u64::MAX,
        retry_after: None,
        reset_after: Duration::ZERO,
        limit: 0,
        reason: Reason::Quota,
    };
    for d in limits {
        if d.remaining < decision.remaining {
            decision.remaining = d.remaining;
            decision.limit = d.limit;
        }
        decision.reset_after = decision.reset_after.max(d.reset_after);
    }
    if limits.is_empty() {
        decision.remaining = 0;
    }
    decision
}

/// The combined decision of the limits' (see [`MultiDecision`]).
fn combine(limits: &[Decision]) -> Decision {
    let allowed = limits.iter().all(|d| d.allowed);
    let tightest = limits
        .iter()
        .min_by_key(|d| d.remaining)
        .copied()
        .unwrap_or(PLACEHOLDER);
    let deniers = || limits.iter().filter(|d| !d.allowed);
    let retry_after = if allowed || deniers().any(|d| d.retry_after.is_none()) {
        None
    } else {
        deniers().filter_map(|d| d.retry_after).max()
    };
    let reason = deniers()
        .map(|d| d.reason)
        .find(|&r| r != Reason::Quota)
        .unwrap_or(Reason::Quota);
    Decision {
        allowed,
        remaining: tightest.remaining,
        retry_after,
        reset_after: limits
            .iter()
            .map(|d| d.reset_after)
            .max()
            .unwrap_or(Duration::ZERO),
        limit: tightest.limit,
        reason,
    }
}

/// A limit's decision when `cost` exceeds its capacity: never allowed,
/// the state untouched.
fn never<A: Algorithm>(algorithm: &A, state: A::State, now: u64) -> Decision {
    Decision {
        allowed: false,
        retry_after: None,
        ..algorithm.inspect(state, now)
    }
}

/// [`Part::evaluate`] on a state.
fn evaluate<A: Algorithm>(algorithm: &A, state: A::State, now: u64, cost: u64) -> (bool, Decision) {
    match algorithm.check_verdict(state, now, cost) {
        Ok(v) if v.allowed() => (true, algorithm.inspect(state, now)),
        Ok(v) => (false, v.decision()),
        Err(_) => (false, never(algorithm, state, now)),
    }
}

/// [`Part::charge`] on a word.
#[inline]
fn charge<A: Algorithm>(
    algorithm: &A,
    cell: &Cell<A::State>,
    now: u64,
    cost: u64,
    decision: &mut Decision,
    charge: &mut Option<Charge>,
) -> bool
where
    A::State: Word,
{
    match update(cell, |state| algorithm.check_verdict(state, now, cost)) {
        Ok(u) => {
            *decision = u.answer;
            // A denial stores nothing: no swap.
            *charge = u.swap.map(|(before, after)| Charge {
                before: before.wide(),
                after: after.wide(),
            });
            u.answer.allowed
        }
        Err(_) => {
            *decision = never(algorithm, A::State::load(cell), now);
            false
        }
    }
}

/// [`Part::roll_back`] on a word: the new state, if any was stored.
fn roll_back<A: Algorithm>(
    algorithm: &A,
    cell: &Cell<A::State>,
    now: u64,
    cost: u64,
    charge: Charge,
) -> Option<A::State>
where
    A::State: Word,
{
    let (before, after) = (
        A::State::narrow(charge.before),
        A::State::narrow(charge.after),
    );
    let mut current = A::State::load(cell);
    loop {
        let next = algorithm.roll_back(current, now, cost, before, after)?;
        match A::State::swap_if(cell, current, next) {
            Ok(_) => return Some(next),
            Err(actual) => current = actual,
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
    /// `key` at `cost` as one limit of an all-or-nothing [`check_all`].
    pub fn limit<'a, Q>(&'a self, key: &'a Q, cost: u64) -> KeyedLimit<'a, K, A, C, S, Q>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let (hash, lock) = self.locate(key);
        KeyedLimit {
            limiter: self,
            key,
            hash,
            lock,
            cost,
            quota: None,
            same: |_, _| unreachable!("no quota of its own to compare"),
        }
    }

    /// `key` at `cost`, under its own `quota` (see
    /// [`check_with_quota`](KeyedLimiter::check_with_quota)), as one limit
    /// of an all-or-nothing [`check_all`].
    pub fn limit_with_quota<'a, Q>(
        &'a self,
        key: &'a Q,
        cost: u64,
        quota: &'a A,
    ) -> KeyedLimit<'a, K, A, C, S, Q>
    where
        A: PartialEq,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        let (hash, lock) = self.locate(key);
        KeyedLimit {
            limiter: self,
            key,
            hash,
            lock,
            cost,
            quota: Some(quota),
            same: A::eq,
        }
    }
}

impl<K, A, C, S, Q> KeyedLimit<'_, K, A, C, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    A: Algorithm,
    A::State: Word,
    C: Clock,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
{
    fn shard(&self) -> (u64, &ShardLock<K, A>) {
        (self.hash, self.lock)
    }

    /// Runs `f` on the key's slot (`Some(Some(word))` when held,
    /// `Some(None)` when absent: a key in its initial state, `None` when
    /// kept under another quota), its quota and the time, under the
    /// shard's read lock.
    fn with_slot<T>(&self, f: impl FnOnce(Option<Option<&Cell<A::State>>>, &A, u64) -> T) -> T {
        let (hash, lock) = self.shard();
        let shard = sync::read(&lock.table);
        let now = self.limiter.clock.now_ns().max(shard.floor());
        match shard.slot(hash, self.key, self.quota, self.same) {
            Slot::Held {
                cell, algorithm, ..
            } => f(Some(Some(cell)), algorithm, now),
            Slot::Absent { algorithm, .. } => f(Some(None), algorithm, now),
            Slot::Stale => f(None, &self.limiter.current(), now),
        }
    }

    /// Holds the key (under the writer mutex the caller holds), or the
    /// refusal when there is no room for it.
    fn hold(&self) -> Result<(), Decision> {
        let (hash, lock) = self.shard();
        self.limiter
            .hold(lock, hash, self.key, self.quota, self.same)
            .map_err(|wait| refusal(Refusal::KeyTableFull(wait), self.quota_limit()))
    }

    fn quota_limit(&self) -> u64 {
        self.quota
            .map_or_else(|| self.limiter.current().limit(), Algorithm::limit)
    }
}

impl<K, A, C, S, Q> Part for KeyedLimit<'_, K, A, C, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    A: Algorithm,
    A::State: Word,
    C: Clock,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
{
    fn writer(&self, _last: bool) -> Writer<'_> {
        Writer::Mutex(&self.shard().1.writer)
    }

    fn evaluate(&self) -> (bool, Decision) {
        if self.limiter.too_long(self.key) {
            return (false, refusal(Refusal::KeyTooLong, self.quota_limit()));
        }
        // A key held is first brought to the limiter's latest quota (see
        // `charge`; it is held, so nothing is inserted); an absent key is
        // evaluated in its initial state under the latest quota, and not
        // inserted for a request that charges it nothing. Nothing can
        // sweep the key in between: we hold the writer mutex.
        let absent = self.with_slot(|slot, _, _| matches!(slot, Some(None)));
        if !absent {
            if let Err(refused) = self.hold() {
                return (false, refused);
            }
        }
        loop {
            let evaluated = self.with_slot(|slot, algorithm, now| match slot {
                Some(Some(cell)) => Some(evaluate(algorithm, A::State::load(cell), now, self.cost)),
                Some(None) => {
                    let latest = self
                        .quota
                        .copied()
                        .unwrap_or_else(|| self.limiter.current());
                    Some(evaluate(&latest, A::State::default(), now, self.cost))
                }
                None => None,
            });
            if let Some(evaluated) = evaluated {
                return evaluated;
            }
            // Kept under another quota: converted first (we hold the
            // writer mutex).
            if let Err(refused) = self.hold() {
                return (false, refused);
            }
        }
    }

    fn charge(&self, decision: &mut Decision, charged: &mut Option<Charge>) -> bool {
        match self.charge_key(charged) {
            Ok(d) => {
                *decision = d;
                true
            }
            Err(d) => {
                *decision = d;
                false
            }
        }
    }

    fn roll_back(&self, charge: Charge) {
        self.roll_back_key(charge);
    }
}

impl<K, A, C, S, Q> KeyedLimit<'_, K, A, C, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    A: Algorithm,
    A::State: Word,
    C: Clock,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
{
    /// [`Part::charge`]: the decision, `Err` when it denies.
    fn charge_key(&self, charged: &mut Option<Charge>) -> Result<Decision, Decision> {
        if self.limiter.too_long(self.key) {
            return Err(refusal(Refusal::KeyTooLong, self.quota_limit()));
        }
        // Held, and its shard brought to the limiter's latest quota, first:
        // a shard learns of a change lazily, and `with_slot` reads it as it
        // is, so without this a shard no plain check had touched since a
        // `reconfigure` would decide under the quota it saw last. No change
        // can be converted into the shard while we hold its writer mutex;
        // a change made after this point is later than the decision.
        self.hold()?;
        loop {
            let done = self.with_slot(|slot, algorithm, now| {
                slot.flatten().map(|cell| {
                    let mut decision = PLACEHOLDER;
                    let allowed = charge(algorithm, cell, now, self.cost, &mut decision, charged);
                    if allowed { Ok(decision) } else { Err(decision) }
                })
            });
            if let Some(done) = done {
                return done;
            }
            // Not held (or under another quota): held, then charged.
            self.hold()?;
        }
    }

    /// [`Part::roll_back`].
    fn roll_back_key(&self, charge: Charge) {
        let (hash, lock) = self.shard();
        let shard = sync::read(&lock.table);
        let now = self.limiter.clock.now_ns().max(shard.floor());
        if let Some((cell, algorithm)) = shard.held(hash, self.key, self.quota, self.same) {
            if let Some(state) = roll_back(&algorithm, cell, now, self.cost, charge) {
                shard.lower_earliest(algorithm.expires_at(state));
            }
        }
    }
}

impl<K, A, C, S, Q> Limit for KeyedLimit<'_, K, A, C, S, Q>
where
    K: Hash + Eq + Borrow<Q>,
    A: Algorithm,
    A::State: Word,
    C: Clock,
    S: BuildHasher,
    Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
{
}

/// The decision of a limit refused before its quota was consulted.
fn refusal(refusal: Refusal, limit: u64) -> Decision {
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

impl<A: Algorithm, C: Clock> Bucket<A, C>
where
    A::State: Word,
{
    /// This bucket at `cost` as one limit of an all-or-nothing
    /// [`check_all`].
    pub fn limit(&self, cost: u64) -> BucketLimit<'_, A, C> {
        BucketLimit { bucket: self, cost }
    }
}

impl<A: Algorithm, C: Clock> Part for BucketLimit<'_, A, C>
where
    A::State: Word,
{
    fn writer(&self, last: bool) -> Writer<'_> {
        if last {
            Writer::None
        } else {
            Writer::Flag(&self.bucket.writer)
        }
    }

    fn evaluate(&self) -> (bool, Decision) {
        let b = self.bucket;
        evaluate(
            &b.algorithm,
            A::State::load(&b.state),
            b.clock.now_ns(),
            self.cost,
        )
    }

    fn charge(&self, decision: &mut Decision, charged: &mut Option<Charge>) -> bool {
        let b = self.bucket;
        charge(
            &b.algorithm,
            &b.state,
            b.clock.now_ns(),
            self.cost,
            decision,
            charged,
        )
    }

    fn roll_back(&self, charge: Charge) {
        let b = self.bucket;
        let _ = roll_back(&b.algorithm, &b.state, b.clock.now_ns(), self.cost, charge);
    }
}

impl<A: Algorithm, C: Clock> Limit for BucketLimit<'_, A, C> where A::State: Word {}
