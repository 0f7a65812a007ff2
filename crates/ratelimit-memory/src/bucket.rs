//! [`Bucket`]: one rate limit over one atomic word, and [`update`], the
//! compare-and-swap helper through which every write of a key's state
//! goes, here and in the keyed limiter.

use core::time::Duration;

use ratelimit_core::{
    Algorithm, Answer, Clock, Decision, InsufficientCapacity, Reservation, Shaping, Verdict,
};

use crate::clock::MonotonicClock;
use crate::receipt::{Generation, Receipt, next_id};
use crate::sync::Flag;
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
#[inline(always)]
pub(crate) fn update<A: Algorithm, D: Answer>(
    state: &<A::State as crate::word::sealed::Word>::Atomic,
    mut step: impl FnMut(A::State) -> Result<Verdict<A, D>, InsufficientCapacity>,
) -> Result<Updated<D, A::State>, InsufficientCapacity>
where
    A::State: Word,
{
    // Relaxed: pairs with nothing; a stale value only costs a retry (above).
    let mut current = A::State::load(state);
    loop {
        let verdict = step(current)?;
        let Some(next) = verdict.next() else {
            return Ok(Updated {
                answer: verdict.decision(),
                swap: None,
            });
        };
        // Relaxed on success and failure: the swap is ordered against the
        // other swaps of this word by the word's modification order alone;
        // it publishes no other memory, so there is no acquire to pair with.
        match A::State::swap_if(state, current, next) {
            Ok(_) => {
                return Ok(Updated {
                    answer: verdict.decision(),
                    swap: Some((current, next)),
                });
            }
            Err(actual) => current = actual,
        }
    }
}

/// What [`update`] did: the answer, and the swap that stored it
/// (`(before, after)`), if it stored anything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Updated<D, W> {
    pub(crate) answer: D,
    pub(crate) swap: Option<(W, W)>,
}

/// Gives back an admission recorded by a receipt on the word `state`, at
/// `now`: the state stored, if anything was given back. A compare-and-swap
/// loop like [`update`]'s: the refund is computed from the value it
/// replaces.
pub(crate) fn refund_word<A: Algorithm>(
    algorithm: &A,
    state: &<A::State as crate::word::sealed::Word>::Atomic,
    now: u64,
    cost: u64,
    admitted: A::State,
) -> Option<A::State>
where
    A::State: Word,
{
    let mut current = A::State::load(state);
    loop {
        let next = algorithm.refund_admission(current, now, cost, admitted)?;
        match A::State::swap_if(state, current, next) {
            Ok(_) => return Some(next),
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
/// algorithm, the clock, an id (for receipts) and a one-byte flag that
/// only an all-or-nothing check of several limits sets
/// ([`check_all`](crate::check_all)); it is not padded to a cache line, so wrap it in
/// [`CachePadded`](https://docs.rs/crossbeam-utils/latest/crossbeam_utils/struct.CachePadded.html)
/// if many hot buckets sit side by side in an array.
#[derive(Debug)]
pub struct Bucket<A: Algorithm, C = MonotonicClock>
where
    A::State: Word,
{
    pub(crate) state: <A::State as crate::word::sealed::Word>::Atomic,
    pub(crate) algorithm: A,
    pub(crate) clock: C,
    /// Set by an all-or-nothing check of several limits for as long as it
    /// may roll this bucket back (see `multi.rs`); never by `check`.
    pub(crate) writer: Flag,
    /// This bucket's id, for its receipts.
    pub(crate) id: u64,
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
            writer: Flag::new(),
            id: next_id(),
        }
    }

    /// Allows or denies a request of cost 1 now.
    #[inline]
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
    #[inline]
    pub fn check_n(&self, cost: u64) -> Result<Decision, InsufficientCapacity> {
        let now = self.clock.now_ns();
        update(&self.state, |state| {
            self.algorithm.check_verdict(state, now, cost)
        })
        .map(|u| u.answer)
    }

    /// [`check_n`](Self::check_n), with a [`Receipt`] when the request was
    /// admitted at a cost above zero: pass it to [`refund`](Self::refund)
    /// to give the cost back (the work it paid for failed).
    ///
    /// ```
    /// use ratelimit_memory::{Bucket, FixedWindow};
    ///
    /// let hourly = Bucket::new(FixedWindow::per_hour(100)?);
    /// let (decision, receipt) = hourly.check_refundable(10)?;
    /// assert_eq!(decision.remaining, 90);
    /// // The upload failed: give the 10 back.
    /// assert!(hourly.refund(receipt.unwrap()));
    /// assert_eq!(hourly.peek().remaining, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As for [`check_n`](Self::check_n).
    pub fn check_refundable(
        &self,
        cost: u64,
    ) -> Result<(Decision, Option<Receipt<A>>), InsufficientCapacity> {
        let now = self.clock.now_ns();
        let u = update(&self.state, |state| {
            self.algorithm.check_verdict(state, now, cost)
        })?;
        Ok((u.answer, self.receipt(cost, u.swap)))
    }

    /// Gives back the cost of the admission `receipt` records, exactly or
    /// not at all (see [`Receipt`]): whether anything was given back. A
    /// receipt of another limiter gives nothing back.
    pub fn refund(&self, receipt: Receipt<A>) -> bool {
        if receipt.owner != self.id {
            return false;
        }
        let now = self.clock.now_ns();
        refund_word(
            &self.algorithm,
            &self.state,
            now,
            receipt.cost,
            receipt.admitted,
        )
        .is_some()
    }

    /// The receipt of a swap that stored an admission.
    fn receipt(&self, cost: u64, swap: Option<(A::State, A::State)>) -> Option<Receipt<A>> {
        swap.map(|(_, admitted)| Receipt {
            owner: self.id,
            hash: 0,
            generation: Generation::Fixed,
            cost,
            admitted,
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
        self.reserve_refundable(cost, max_wait).map(|(r, _)| r)
    }

    /// [`reserve`](Self::reserve), with a [`Receipt`] when admitted at a
    /// cost above zero: [`refund`](Self::refund) gives the reservation
    /// back while nothing was admitted after it (what a dropped
    /// [`acquire`](Self::acquire_blocking) does).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn reserve_refundable(
        &self,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<(Reservation, Option<Receipt<A>>), InsufficientCapacity> {
        let now = self.clock.now_ns();
        let max_wait_ns = max_wait.map(duration_ns);
        let u = update(&self.state, |tat| {
            self.algorithm.reserve_verdict(tat, now, cost, max_wait_ns)
        })?;
        Ok((u.answer, self.receipt(cost, u.swap)))
    }
}

/// A `Duration` as whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
