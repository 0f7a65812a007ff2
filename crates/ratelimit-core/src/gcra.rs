//! The Generic Cell Rate Algorithm over one `u64` state, `tat`: the
//! [`TokenBucket`] and [`LeakyBucket`] of SEMANTICS.md as pure functions of
//! `(tat, now, cost[, max_wait])`.
//!
//! All arithmetic is done in `u128` from `u64` inputs, so nothing wraps or
//! panics. A state that would not fit in `u64` (a clock within `τ` of
//! `u64::MAX` ns, about 584 years) is never stored: the request is refused
//! with `retry_after: None`, which can only make the limiter stricter.
//!
//! Each function first computes a [`Verdict`] (whether the request passes
//! and the state to store: a few additions and comparisons) and only then,
//! on demand, the full decision (remaining units need a division). A
//! backend that installs the state with a compare-and-swap computes the
//! verdict inside its retry loop and the decision once, after the swap.

use core::fmt::Debug;
use core::marker::PhantomData;
use core::time::Duration;

use crate::decision::{Decision, Reason, Reservation};
use crate::error::{ConfigError, InsufficientCapacity};
use crate::quota::Quota;
use crate::rate::Rate;

/// A decision and the state to store after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Step<D> {
    /// The answer for the caller.
    pub decision: D,
    /// The new `tat` to store, or `None` when the stored state need not
    /// change (a denial, or a cost of zero).
    pub next: Option<u64>,
}

/// The outcome of a step before its decision is built: the state to store
/// is known, the decision ([`Decision`] or [`Reservation`]) is computed by
/// [`decision`](Verdict::decision) when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Verdict<D> {
    quota: Quota,
    now: u64,
    allowed: bool,
    /// `tat` after the step, stored or not.
    state: u64,
    /// The new `tat` to store, if any.
    next: Option<u64>,
    /// Admitted reservations: the wait, in ns.
    wait: u64,
    /// Refusals: the wait until the same request would pass, in ns.
    retry_after: Option<u64>,
    answer: PhantomData<fn() -> D>,
}

impl<D> Verdict<D> {
    /// The new `tat` to store, or `None` when the stored state need not
    /// change.
    #[inline]
    #[must_use]
    pub const fn next(&self) -> Option<u64> {
        self.next
    }

    /// Whether the request passes.
    #[inline]
    #[must_use]
    pub const fn allowed(&self) -> bool {
        self.allowed
    }

    #[inline]
    fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.quota.reset_after_ns(self.state, self.now))
    }
}

impl<D: Answer> Verdict<D> {
    /// The answer for the caller.
    #[inline]
    pub fn decision(&self) -> D {
        D::from_verdict(self)
    }

    /// The answer and the state to store.
    #[inline]
    pub fn into_step(self) -> Step<D> {
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
    fn from_verdict(verdict: &Verdict<Self>) -> Self;
}

impl Answer for Decision {
    #[inline]
    fn from_verdict(v: &Verdict<Self>) -> Self {
        Decision {
            allowed: v.allowed,
            remaining: v.quota.remaining(v.state, v.now),
            retry_after: v.retry_after.map(Duration::from_nanos),
            reset_after: v.reset_after(),
            limit: v.quota.capacity(),
            reason: Reason::Quota,
        }
    }
}

impl Answer for Reservation {
    #[inline]
    fn from_verdict(v: &Verdict<Self>) -> Self {
        Reservation {
            allowed: v.allowed,
            wait: Duration::from_nanos(v.wait),
            retry_after: v.retry_after.map(Duration::from_nanos),
            reset_after: v.reset_after(),
            limit: v.quota.capacity(),
            reason: Reason::Quota,
        }
    }
}

/// Which of the two algorithms a limiter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmKind {
    /// Bursts up to the capacity, refilled at the rate.
    TokenBucket,
    /// A bounded queue drained at exactly the rate: smooth output.
    LeakyBucket,
}

impl AlgorithmKind {
    /// The name used on the command line and in the replay format:
    /// `token-bucket` or `leaky-bucket`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::TokenBucket => "token-bucket",
            Self::LeakyBucket => "leaky-bucket",
        }
    }
}

/// A rate-limit algorithm over one `u64` state per key.
///
/// `tat` is the stored state (0 for a key never seen), `now` the limiter's
/// clock in nanoseconds. Implementations MUST be pure: the same inputs give
/// the same step, so a backend may retry a step after a lost
/// compare-and-swap.
pub trait Algorithm: Copy + Debug + Send + Sync + 'static {
    /// Which algorithm this is.
    fn kind(&self) -> AlgorithmKind;

    /// The quota it enforces.
    fn quota(&self) -> &Quota;

    /// Policing: allow or deny a request of `cost` units now, as a verdict
    /// whose decision is built on demand.
    ///
    /// Both algorithms make identical `check` decisions for the same quota.
    #[inline]
    fn check_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Decision>, InsufficientCapacity> {
        police(self.quota(), tat, now, cost)
    }

    /// Policing: allow or deny a request of `cost` units now.
    #[inline]
    fn check(&self, tat: u64, now: u64, cost: u64) -> Result<Step<Decision>, InsufficientCapacity> {
        self.check_verdict(tat, now, cost).map(Verdict::into_step)
    }

    /// Shaping, as a verdict whose reservation is built on demand: admit a
    /// request of `cost` units to proceed after a wait of at most
    /// `max_wait_ns` (`None`: unbounded), or reject it.
    fn reserve_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Verdict<Reservation>, InsufficientCapacity>;

    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait_ns` (`None`: unbounded), or reject it.
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
}

/// A token bucket: up to `C` units at once, refilled one every `T`.
/// `reserve` borrows from the future (the bucket may go into debt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenBucket {
    quota: Quota,
}

impl TokenBucket {
    /// A token bucket enforcing `quota`.
    #[must_use]
    pub const fn new(quota: Quota) -> Self {
        Self { quota }
    }

    /// A token bucket of `capacity` tokens refilled at `rate`.
    pub const fn with_rate(capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        match Quota::new(capacity, rate) {
            Ok(quota) => Ok(Self::new(quota)),
            Err(e) => Err(e),
        }
    }
}

impl Algorithm for TokenBucket {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::TokenBucket
    }

    #[inline]
    fn quota(&self) -> &Quota {
        &self.quota
    }

    #[inline]
    fn reserve_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Verdict<Reservation>, InsufficientCapacity> {
        let q = &self.quota;
        let new_tat = next_tat(q, tat, now, cost)?;
        let Ok(stored) = u64::try_from(new_tat) else {
            return Ok(refuse(q, tat, now, None));
        };
        // new_tat fits in u64, so does the wait.
        let wait = (stored - now).saturating_sub(q.tolerance_ns());
        match max_wait_ns {
            Some(max) if wait > max => Ok(refuse(q, tat, now, Some(wait - max))),
            _ => Ok(admit(q, stored, now, cost, wait)),
        }
    }
}

/// A leaky bucket: a queue of at most `C` units drained at one every `T`.
/// `reserve` schedules requests exactly `T` apart, with no bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeakyBucket {
    quota: Quota,
}

impl LeakyBucket {
    /// A leaky bucket enforcing `quota`.
    #[must_use]
    pub const fn new(quota: Quota) -> Self {
        Self { quota }
    }

    /// A leaky bucket holding `capacity` units, drained at `rate`.
    pub const fn with_rate(capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        match Quota::new(capacity, rate) {
            Ok(quota) => Ok(Self::new(quota)),
            Err(e) => Err(e),
        }
    }
}

impl Algorithm for LeakyBucket {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::LeakyBucket
    }

    #[inline]
    fn quota(&self) -> &Quota {
        &self.quota
    }

    #[inline]
    fn reserve_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Verdict<Reservation>, InsufficientCapacity> {
        let q = &self.quota;
        let new_tat = next_tat(q, tat, now, cost)?;
        let Ok(stored) = u64::try_from(new_tat) else {
            return Ok(refuse(q, tat, now, None));
        };
        // The request departs when the queue ahead of it has drained.
        let wait = tat.saturating_sub(now);
        let over_queue = (stored - now).saturating_sub(q.tolerance_ns());
        let over_wait = max_wait_ns.map_or(0, |max| wait.saturating_sub(max));
        let retry_after = over_queue.max(over_wait);
        if retry_after == 0 {
            Ok(admit(q, stored, now, cost, wait))
        } else {
            Ok(refuse(q, tat, now, Some(retry_after)))
        }
    }
}

/// `max(tat, now) + cost × T`, after refusing a cost above the capacity.
#[inline]
fn next_tat(q: &Quota, tat: u64, now: u64, cost: u64) -> Result<u128, InsufficientCapacity> {
    if cost > q.capacity() {
        return Err(InsufficientCapacity {
            cost,
            capacity: q.capacity(),
        });
    }
    // cost ≤ C, so cost × T ≤ τ fits in u64.
    Ok(u128::from(tat.max(now)) + u128::from(cost * q.interval_ns()))
}

#[inline]
fn police(
    q: &Quota,
    tat: u64,
    now: u64,
    cost: u64,
) -> Result<Verdict<Decision>, InsufficientCapacity> {
    let new_tat = next_tat(q, tat, now, cost)?;
    let (allowed, state, retry_after) = match u64::try_from(new_tat) {
        Ok(stored) => match (stored - now).checked_sub(q.tolerance_ns()) {
            None | Some(0) => (true, stored, None),
            Some(over) => (false, tat, Some(over)),
        },
        Err(_) => (false, tat, None),
    };
    Ok(Verdict {
        quota: *q,
        now,
        allowed,
        state,
        next: if allowed && cost > 0 {
            Some(state)
        } else {
            None
        },
        wait: 0,
        retry_after,
        answer: PhantomData,
    })
}

#[inline]
fn admit(q: &Quota, new_tat: u64, now: u64, cost: u64, wait: u64) -> Verdict<Reservation> {
    Verdict {
        quota: *q,
        now,
        allowed: true,
        state: new_tat,
        next: if cost > 0 { Some(new_tat) } else { None },
        wait,
        retry_after: None,
        answer: PhantomData,
    }
}

#[inline]
fn refuse(q: &Quota, tat: u64, now: u64, retry_after: Option<u64>) -> Verdict<Reservation> {
    Verdict {
        quota: *q,
        now,
        allowed: false,
        state: tat,
        next: None,
        wait: 0,
        retry_after,
        answer: PhantomData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn token(c: u64, per_second: u64) -> TokenBucket {
        TokenBucket::with_rate(c, Rate::per_second(per_second)).unwrap()
    }

    fn leaky(c: u64, per_second: u64) -> LeakyBucket {
        LeakyBucket::with_rate(c, Rate::per_second(per_second)).unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let b = token(3, 2); // T = 500 ms, τ = 1.5 s
        let mut tat = 0;
        for left in [2, 1, 0] {
            let s = b.check(tat, S, 1).unwrap();
            assert!(s.decision.allowed);
            assert_eq!(s.decision.remaining, left);
            tat = s.next.unwrap();
        }
        let s = b.check(tat, S, 1).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, Some(Duration::from_millis(500)));
        assert_eq!(s.decision.reset_after, Duration::from_millis(1500));
        assert_eq!(s.next, None);
        // Honest retry_after: one nanosecond early is still too early.
        assert!(!b.check(tat, S + S / 2 - 1, 1).unwrap().decision.allowed);
        assert!(b.check(tat, S + S / 2, 1).unwrap().decision.allowed);
    }

    #[test]
    fn cost_above_capacity_is_an_error() {
        let b = token(3, 2);
        assert_eq!(
            b.check(0, S, 4),
            Err(InsufficientCapacity {
                cost: 4,
                capacity: 3
            })
        );
        assert!(b.reserve(0, S, 4, None).is_err());
        assert!(leaky(3, 2).reserve(0, S, u64::MAX, Some(0)).is_err());
    }

    #[test]
    fn zero_cost_writes_nothing_and_fails_only_in_debt() {
        let b = token(2, 1);
        let s = b.check(0, S, 0).unwrap();
        assert!(s.decision.allowed);
        assert_eq!(s.next, None);
        assert_eq!(s.decision.remaining, 2);
        // Put the bucket 2 s into debt with a reservation.
        let mut tat = 0;
        for _ in 0..4 {
            tat = b.reserve(tat, S, 1, None).unwrap().next.unwrap();
        }
        let s = b.check(tat, S, 0).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(s.decision.remaining, 0);
    }

    #[test]
    fn leaky_reserve_spaces_requests_by_t() {
        let b = leaky(3, 10); // T = 100 ms
        let mut tat = 0;
        for k in 0..3 {
            let s = b.reserve(tat, S, 1, None).unwrap();
            assert!(s.decision.allowed);
            assert_eq!(s.decision.wait, Duration::from_millis(100 * k));
            tat = s.next.unwrap();
        }
        // The queue is full: room again after one departure.
        let s = b.reserve(tat, S, 1, None).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, Some(Duration::from_millis(100)));
        // A bounded wait: the queue drains in 300 ms, 50 ms is allowed.
        let s = b
            .reserve(tat, S + 100_000_000, 1, Some(50_000_000))
            .unwrap();
        assert_eq!(s.decision.retry_after, Some(Duration::from_millis(150)));
    }

    #[test]
    fn token_reserve_goes_into_debt() {
        let b = token(2, 10);
        let mut tat = 0;
        let waits: [u64; 4] = [0, 0, 100, 200];
        for w in waits {
            let s = b.reserve(tat, S, 1, None).unwrap();
            assert_eq!(s.decision.wait, Duration::from_millis(w));
            tat = s.next.unwrap();
        }
        let s = b.reserve(tat, S, 1, Some(250_000_000)).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, Some(Duration::from_millis(50)));
    }

    #[test]
    fn the_end_of_time_refuses_instead_of_wrapping() {
        let b = token(5, 1);
        let end = u64::MAX - 1;
        let s = b.check(0, end, 1).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, None);
        let r = b.reserve(u64::MAX, u64::MAX, 5, None).unwrap();
        assert!(!r.decision.allowed);
        let r = leaky(5, 1).reserve(u64::MAX, 0, 5, Some(u64::MAX)).unwrap();
        assert!(!r.decision.allowed);
        // Just inside the range still works.
        assert!(b.check(0, u64::MAX - 5 * S, 5).unwrap().decision.allowed);
    }
}
