//! The two traits every algorithm implements: [`Algorithm`] (policing:
//! allow or deny now, all four algorithms) and [`Shaping`] (admit now and
//! proceed later, the two buckets only), and what a step of either returns:
//! a [`Verdict`], then a [`Step`].
//!
//! The split is the type system's way of saying that a fixed or sliding
//! window cannot shape: `reserve` does not exist on them, in the core or in
//! any backend built on it, instead of failing at run time.

use core::fmt::Debug;
use core::marker::PhantomData;
use core::str::FromStr;
use core::time::Duration;

use crate::any::AnyAlgorithm;
use crate::decision::{Decision, Reason, Reservation};
use crate::divisor::duration;
use crate::error::{InsufficientCapacity, UnknownAlgorithm};
use crate::quota::Quota;
use crate::reconfigure::Strategy;

/// A decision and the state to store after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Step<D, S = u64> {
    /// The answer for the caller.
    pub decision: D,
    /// The new state to store, or `None` when the stored state need not
    /// change (a denial, or a cost of zero).
    pub next: Option<S>,
}

/// The outcome of a step before its answer is built: whether the request
/// passes and the state to store are known; the answer ([`Decision`] or
/// [`Reservation`]) is computed by [`decision`](Verdict::decision) when
/// asked. A backend that installs the state with a compare-and-swap keeps
/// only the verdict inside its retry loop and builds the answer once, after
/// the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Verdict<A: Algorithm, D = Decision> {
    algorithm: A,
    now: u64,
    allowed: bool,
    /// The state after the step, stored or not.
    state: A::State,
    /// The new state to store, if any.
    next: Option<A::State>,
    /// Admitted reservations: the wait, in ns.
    wait: u64,
    /// Refusals: the wait until the same request would pass, in ns.
    retry_after: Option<u64>,
    answer: PhantomData<fn() -> D>,
}

impl<A: Algorithm, D> Verdict<A, D> {
    /// A verdict that admits: `state` is the state after the step, stored
    /// when `store` is true.
    #[inline]
    pub(crate) const fn admit(
        algorithm: A,
        now: u64,
        state: A::State,
        store: bool,
        wait: u64,
    ) -> Self {
        Self {
            algorithm,
            now,
            allowed: true,
            state,
            next: if store { Some(state) } else { None },
            wait,
            retry_after: None,
            answer: PhantomData,
        }
    }

    /// A verdict that refuses: the state is left as it is.
    #[inline]
    pub(crate) const fn refuse(
        algorithm: A,
        now: u64,
        state: A::State,
        retry_after: Option<u64>,
    ) -> Self {
        Self {
            algorithm,
            now,
            allowed: false,
            state,
            next: None,
            wait: 0,
            retry_after,
            answer: PhantomData,
        }
    }

    /// The same verdict, for another algorithm whose state `map` derives
    /// from this one's (how [`AnyAlgorithm`] forwards to the four).
    #[inline]
    pub(crate) fn map<B: Algorithm>(
        self,
        algorithm: B,
        map: impl Fn(A::State) -> B::State,
    ) -> Verdict<B, D> {
        Verdict {
            algorithm,
            now: self.now,
            allowed: self.allowed,
            state: map(self.state),
            next: self.next.map(map),
            wait: self.wait,
            retry_after: self.retry_after,
            answer: PhantomData,
        }
    }

    /// The new state to store, or `None` when the stored state need not
    /// change.
    #[inline]
    #[must_use]
    pub fn next(&self) -> Option<A::State> {
        self.next
    }

    /// Whether the request passes.
    #[inline]
    #[must_use]
    pub const fn allowed(&self) -> bool {
        self.allowed
    }

    /// The state after the step (stored or not): what the answer describes.
    #[inline]
    #[must_use]
    pub fn state(&self) -> A::State {
        self.state
    }

    /// The time the step was computed at, in nanoseconds.
    #[inline]
    #[must_use]
    pub const fn now(&self) -> u64 {
        self.now
    }

    /// When refused: the wait in nanoseconds until the same request would
    /// pass if nothing else consumes (`None`: never, or admitted).
    #[inline]
    #[must_use]
    pub const fn retry_after_ns(&self) -> Option<u64> {
        self.retry_after
    }

    #[inline]
    fn reset_after(&self) -> Duration {
        duration(self.algorithm.reset_after_ns(self.state, self.now))
    }
}

impl<A: Algorithm, D: Answer> Verdict<A, D> {
    /// The answer for the caller.
    #[inline]
    pub fn decision(&self) -> D {
        D::from_verdict(self)
    }

    /// The answer and the state to store.
    #[inline]
    pub fn into_step(self) -> Step<D, A::State> {
        Step {
            decision: self.decision(),
            next: self.next,
        }
    }
}

/// What a [`Verdict`] becomes: a [`Decision`] (policing) or a
/// [`Reservation`] (shaping).
pub trait Answer: Sized {
    /// Builds the answer from a verdict.
    fn from_verdict<A: Algorithm>(verdict: &Verdict<A, Self>) -> Self;
}

impl Answer for Decision {
    #[inline]
    fn from_verdict<A: Algorithm>(v: &Verdict<A, Self>) -> Self {
        Decision {
            allowed: v.allowed,
            remaining: v.algorithm.remaining(v.state, v.now),
            retry_after: v.retry_after.map(duration),
            reset_after: v.reset_after(),
            limit: v.algorithm.limit(),
            reason: Reason::Quota,
        }
    }
}

impl Answer for Reservation {
    #[inline]
    fn from_verdict<A: Algorithm>(v: &Verdict<A, Self>) -> Self {
        if v.allowed {
            Reservation::Admitted {
                wait: duration(v.wait),
                reset_after: v.reset_after(),
                limit: v.algorithm.limit(),
                reason: Reason::Quota,
            }
        } else {
            Reservation::Rejected {
                retry_after: v.retry_after.map(duration),
                reset_after: v.reset_after(),
                limit: v.algorithm.limit(),
                reason: Reason::Quota,
            }
        }
    }
}

/// Which of the four algorithms a limiter runs.
///
/// Its [`FromStr`] is the one parser of the names used on the command line,
/// in the replay format and in configuration: `token-bucket`,
/// `leaky-bucket`, `fixed-window` and `sliding-window`.
///
/// ```
/// use ratelimit_core::AlgorithmKind;
///
/// let kind: AlgorithmKind = "sliding-window".parse()?;
/// assert_eq!(kind, AlgorithmKind::SlidingWindow);
/// assert_eq!(kind.name(), "sliding-window");
/// assert!(!kind.can_shape());
/// assert!("token_bucket".parse::<AlgorithmKind>().is_err());
/// # Ok::<(), ratelimit_core::UnknownAlgorithm>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// Exhaustive on purpose: a new algorithm must be handled by every backend,
// and the compiler points at each match that does not.
pub enum AlgorithmKind {
    /// Bursts up to the capacity, refilled at the rate.
    TokenBucket,
    /// A bounded queue drained at exactly the rate: smooth output.
    LeakyBucket,
    /// At most `L` per window, the windows aligned to the clock's epoch.
    FixedWindow,
    /// About `L` in any window-long span: the current window's count plus
    /// the previous one's, weighted by how much of it is still inside.
    SlidingWindow,
}

impl AlgorithmKind {
    /// All four, in the order of the docs.
    pub const ALL: [Self; 4] = [
        Self::TokenBucket,
        Self::LeakyBucket,
        Self::FixedWindow,
        Self::SlidingWindow,
    ];

    /// The name used on the command line, in the replay format and in
    /// configuration.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::TokenBucket => "token-bucket",
            Self::LeakyBucket => "leaky-bucket",
            Self::FixedWindow => "fixed-window",
            Self::SlidingWindow => "sliding-window",
        }
    }

    /// Whether the algorithm can shape (`reserve`): the two buckets.
    #[must_use]
    pub const fn can_shape(self) -> bool {
        matches!(self, Self::TokenBucket | Self::LeakyBucket)
    }

    /// Whether its quota is a rate (`capacity` and `rate`: the buckets) as
    /// opposed to a limit per window (`capacity` and `window`).
    #[must_use]
    pub const fn is_bucket(self) -> bool {
        self.can_shape()
    }
}

impl core::fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AlgorithmKind {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or(UnknownAlgorithm)
    }
}

/// A rate-limit algorithm: policing (`check`) over one state per key.
///
/// `state` is the stored state ([`State::default`](Default::default) for a
/// key never seen), `now` the limiter's clock in nanoseconds.
/// Implementations MUST be pure: the same inputs give the same step, so a
/// backend may retry a step after a lost compare-and-swap. A state from
/// which [`expires_at`](Self::expires_at) has passed MUST be equivalent to
/// the default state, so backends may drop it.
pub trait Algorithm: Copy + Debug + Send + Sync + 'static {
    /// The state stored per key: `u64` for the buckets (`tat`), `u128` for
    /// the windows (window index and counts, see
    /// [`WindowState`](crate::WindowState)).
    type State: Copy + Default + Eq + Debug + Send + Sync + 'static;

    /// Which algorithm this is.
    fn kind(&self) -> AlgorithmKind;

    /// The limit: a bucket's capacity `C`, a window's `L`.
    fn limit(&self) -> u64;

    /// The span over which [`limit`](Self::limit) applies, in nanoseconds:
    /// for a bucket the tolerance `τ = C × T` (the time an empty token
    /// bucket takes to fill up), for a window its length `W`. This is the
    /// `w` of the HTTP `RateLimit-Policy` field.
    fn period_ns(&self) -> u64;

    /// Policing: allow or deny a request of `cost` units now, as a verdict
    /// whose decision is built on demand.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the limit: such a
    /// request can never succeed.
    fn check_verdict(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Self>, InsufficientCapacity>;

    /// Policing: allow or deny a request of `cost` units now.
    ///
    /// # Errors
    /// As for [`check_verdict`](Self::check_verdict).
    #[inline]
    fn check(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
    ) -> Result<Step<Decision, Self::State>, InsufficientCapacity> {
        self.check_verdict(state, now, cost).map(Verdict::into_step)
    }

    /// Whole units a request could use at `now` in a key whose state is
    /// `state` (the decision's `remaining`).
    fn remaining(&self, state: Self::State, now: u64) -> u64;

    /// Nanoseconds from `now` until `state` is equivalent to a key never
    /// seen (the decision's `reset_after`).
    fn reset_after_ns(&self, state: Self::State, now: u64) -> u64;

    /// The earliest time at which `state` is equivalent to a key never
    /// seen, whatever happens before: a backend may drop the key from then
    /// on (memory sweeps it, Redis expires it).
    fn expires_at(&self, state: Self::State) -> u64;

    /// What a decision at `now` would report for `state` without consuming
    /// anything: `check` with a cost of zero, as a [`Decision`].
    #[inline]
    fn inspect(&self, state: Self::State, now: u64) -> Decision {
        match self.check_verdict(state, now, 0) {
            Ok(verdict) => verdict.decision(),
            // A cost of zero never exceeds the limit.
            Err(_) => unreachable!("a cost of zero never exceeds the limit"),
        }
    }

    /// `state`, kept under this algorithm's quota, converted at `at` to the
    /// quota of `to` with `strategy` (docs/semantics.md, "Changing a quota
    /// while it runs"). The result is what converting at `at` gives, even
    /// when it is computed later (lazily, at the key's next access).
    fn convert(&self, state: Self::State, at: u64, to: &Self, strategy: Strategy) -> Self::State;

    /// This algorithm as the enum of all four (its kind and parameters).
    fn to_any(&self) -> AnyAlgorithm;

    /// Gives back an admitted request of `cost` units exactly, or not at
    /// all: the state `state` would be had the admission never happened,
    /// when that can be known from `state` and `admitted` (the state the
    /// admission stored), else `None` (leave the state alone; the units
    /// stay consumed, the strict side). `None` too when there is nothing
    /// left to give back at `now`.
    ///
    /// - Buckets: only while the key still holds `admitted` (nothing was
    ///   admitted, refunded or rolled back on it since): then
    ///   [`Shaping::refund`]. Once another admission has been stacked on
    ///   it, the part of this one still ahead of `now` cannot be told from
    ///   a single `tat` (another refund may have moved it already), and
    ///   giving back `cost × T` regardless could admit more than the
    ///   contract allows; see docs/concurrency.md in the repository.
    /// - Windows: counts add up, so the cost comes off the count of the
    ///   admission's window for as long as that window still counts.
    ///
    /// The default gives nothing back.
    #[inline]
    fn refund_admission(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
        admitted: Self::State,
    ) -> Option<Self::State> {
        let _ = (state, now, cost, admitted);
        None
    }

    /// Rolls back an admission of `cost` units that found `before` and
    /// stored `admitted`, by a caller that has kept every other rollback
    /// of this key away meanwhile (an all-or-nothing check of several
    /// limits holds a lock for that): the state to store, never looser
    /// than the state without the admission, or `None` to leave `state`
    /// as it is.
    ///
    /// Windows: as [`refund_admission`](Self::refund_admission) (exact).
    /// Buckets: `before` when the key still holds `admitted`; otherwise
    /// admissions were stacked on it, and it gives back
    /// `min(admitted − before, admitted − now)` off the end of the
    /// schedule (exact when time has not moved past `before`; otherwise
    /// it may keep a charge of at most the time elapsed during the race,
    /// never less than the state without the admission).
    ///
    /// The default leaves the state alone.
    #[inline]
    fn roll_back(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
        before: Self::State,
        admitted: Self::State,
    ) -> Option<Self::State> {
        let _ = (state, now, cost, before, admitted);
        None
    }
}

/// Shaping: admit a request now, to proceed after a wait, or reject it.
/// Only the two buckets shape; a window algorithm has no `reserve`.
pub trait Shaping: Algorithm<State = u64> {
    /// The quota (capacity and rate) the bucket enforces.
    fn quota(&self) -> &Quota;

    /// Shaping, as a verdict whose reservation is built on demand: admit a
    /// request of `cost` units to proceed after a wait of at most
    /// `max_wait_ns` (`None`: unbounded), or reject it.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    fn reserve_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Verdict<Self, Reservation>, InsufficientCapacity>;

    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait_ns` (`None`: unbounded), or reject it.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    #[inline]
    fn reserve(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Step<Reservation>, InsufficientCapacity> {
        self.reserve_verdict(tat, now, cost, max_wait_ns)
            .map(Verdict::into_step)
    }

    /// The arithmetic of a bucket refund: `tat` with `cost × T` taken off
    /// its end at `now`, never below `now` (never fuller than the bucket's
    /// initial state); a bucket already back to its initial state is left
    /// as it is.
    ///
    /// Exact only while `tat` is still the state the refunded admission
    /// stored: once another admission has been stacked on it (or another
    /// refund taken off it), taking `cost × T` off the end can admit more
    /// than the contract allows (capacity 1, `T` = 1 s: A admitted at 0,
    /// B at 1 s, A refunded at 1 s, and C would pass at 1 s too). Callers
    /// go through [`Algorithm::refund_admission`], which checks that
    /// precondition and gives nothing back otherwise.
    #[must_use]
    fn refund(&self, tat: u64, now: u64, cost: u64) -> u64 {
        if tat <= now {
            return tat;
        }
        let back = cost.saturating_mul(self.quota().interval_ns());
        tat.saturating_sub(back).max(now)
    }
}
