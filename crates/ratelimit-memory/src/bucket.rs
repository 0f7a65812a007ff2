//! [`Bucket`]: one rate limit over one atomic word, and [`update`], the
//! compare-and-swap helper through which every write of a key's state
//! goes, here and in the keyed limiter.

use core::time::Duration;

use ratelimit_core::{
    Algorithm, Answer, Clock, Decision, InsufficientCapacity, Reservation, Shaping, Verdict,
};

use crate::clock::MonotonicClock;
use crate::word::{Word, sealed::Word as _};

/// Runs one step of the algorithm on `state` atomically and returns its
/// verdict: the only place that writes a bucket's state once it can be
/// shared.
///
/// `step` is the pure algorithm applied to the current `tat`, as a
/// [`Verdict`] (the state to store, without the decision's division and
/// conversions: the shorter the time between the load and the swap, the
/// fewer swaps fail under contention). The caller builds the decision once,
/// from the verdict that won. When the step asks
/// for a new state, a compare-and-swap installs it only if `tat` is still
/// the one the decision was computed from, and otherwise the step is
/// recomputed from the value that won. So no admission is ever lost or
/// double-counted: the admissions are exactly those of the steps applied
/// one after the other in the order of the swaps. A step that writes
/// nothing (a denial, a cost of zero, cost above capacity) returns at once.
///
/// Every ordering here is `Relaxed`, and that suffices: the word publishes
/// nothing but itself (no other memory is read on the strength of its
/// value), and what the algorithm needs, that no two swaps install a state
/// computed from the same predecessor, is given by the atomicity of the
/// read-modify-write on a single location, whatever its ordering. A stale
/// load can only be older, i.e. a smaller `tat` (states only grow), which
/// makes the step more lenient and is then refused by the swap; a denial is
/// computed from a value the word really held. The keyed limiter's
/// reclamation gets its ordering from the shard lock, not from this word
/// (see `keyed.rs` and `docs/concurrency.md`).
#[inline]
pub(crate) fn update<A: Algorithm, D: Answer>(
    state: &<A::State as crate::word::sealed::Word>::Atomic,
    mut step: impl FnMut(A::State) -> Result<Verdict<A, D>, InsufficientCapacity>,
) -> Result<D, InsufficientCapacity>
where
    A::State: Word,
{
    // Relaxed: pairs with nothing; a stale value only costs a retry (above).
    let mut current = A::State::load(state);
    loop {
        let verdict = step(current)?;
        let Some(next) = verdict.next() else {
            return Ok(verdict.decision());
        };
        // Relaxed on success and failure: the swap is ordered against the
        // other swaps of this word by the word's modification order alone;
        // it publishes no other memory, so there is no acquire to pair with.
        match A::State::swap_if(state, current, next) {
            Ok(_) => return Ok(verdict.decision()),
            Err(actual) => current = actual,
        }
    }
}

/// One rate limit: a single atomic word of state (64 bits for a bucket, 128
/// for a window algorithm), an algorithm and a clock.
///
/// Every method is lock-free and takes `&self`: share a `Bucket` between
/// threads by reference or in an `Arc`. For one limit per user, IP or API
/// key, use a [`KeyedLimiter`](crate::KeyedLimiter).
///
/// ```
/// use ratelimit_memory::{Bucket, Rate, TokenBucket};
///
/// let bucket = Bucket::new(TokenBucket::with_rate(2, Rate::per_second(1))?);
/// assert!(bucket.check().allowed);
/// assert!(bucket.check().allowed);
/// let third = bucket.check();
/// assert!(!third.allowed);
/// assert!(third.retry_after.is_some());
/// # Ok::<(), ratelimit_memory::ConfigError>(())
/// ```
///
/// A `Bucket` is 8 bytes of state (16 for a window algorithm) plus the
/// algorithm and the clock; it is not padded to a cache line, so wrap it in
/// [`CachePadded`](https://docs.rs/crossbeam-utils/latest/crossbeam_utils/struct.CachePadded.html)
/// if many hot buckets sit side by side in an array.
#[derive(Debug)]
pub struct Bucket<A: Algorithm, C = MonotonicClock>
where
    A::State: Word,
{
    state: <A::State as crate::word::sealed::Word>::Atomic,
    algorithm: A,
    clock: C,
}

impl<A: Algorithm> Bucket<A>
where
    A::State: Word,
{
    /// A full token bucket, or an empty leaky bucket, on a fresh
    /// [`MonotonicClock`].
    #[must_use]
    pub fn new(algorithm: A) -> Self {
        Self::with_clock(algorithm, MonotonicClock::new())
    }
}

impl<A: Algorithm, C: Clock> Bucket<A, C>
where
    A::State: Word,
{
    /// A bucket reading time from `clock`, e.g. an `Arc<ManualClock>` for
    /// tests and replays.
    #[must_use]
    pub fn with_clock(algorithm: A, clock: C) -> Self {
        Self {
            // A key never seen: the default state (docs/semantics.md).
            state: A::State::cell(A::State::default()),
            algorithm,
            clock,
        }
    }

    /// Allows or denies a request of cost 1 now.
    pub fn check(&self) -> Decision {
        match self.check_n(1) {
            Ok(decision) => decision,
            // The capacity is at least 1 (`Quota` refuses zero).
            Err(_) => unreachable!("a cost of 1 never exceeds a capacity of at least 1"),
        }
    }

    /// Allows or denies a request of `cost` units now.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity: such a
    /// request can never succeed, and the state is left unchanged.
    pub fn check_n(&self, cost: u64) -> Result<Decision, InsufficientCapacity> {
        let now = self.clock.now_ns();
        update(&self.state, |state| {
            self.algorithm.check_verdict(state, now, cost)
        })
    }

    /// The decision a request of cost zero would get now, without
    /// consuming anything: what is left and when the limit resets.
    pub fn peek(&self) -> Decision {
        self.algorithm
            .inspect(A::State::load(&self.state), self.clock.now_ns())
    }

    /// The algorithm (and through it the quota) this bucket enforces.
    pub fn algorithm(&self) -> &A {
        &self.algorithm
    }

    /// The clock this bucket reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<A: Shaping, C: Clock> Bucket<A, C> {
    /// Admits a request of `cost` units to proceed after the wait of the
    /// returned [`Reservation::Admitted`], if that wait is at most
    /// `max_wait` (`None`: any wait), or rejects it. Only the buckets shape.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn reserve(
        &self,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, InsufficientCapacity> {
        let now = self.clock.now_ns();
        let max_wait_ns = max_wait.map(duration_ns);
        update(&self.state, |tat| {
            self.algorithm.reserve_verdict(tat, now, cost, max_wait_ns)
        })
    }
}

/// A `Duration` as whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
