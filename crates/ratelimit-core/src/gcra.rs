//! The Generic Cell Rate Algorithm over one `u64` state, `tat`: the
//! [`TokenBucket`] and [`LeakyBucket`] of docs/semantics.md as pure functions of
//! `(tat, now, cost[, max_wait])`.
//!
//! All arithmetic is done in `u128` from `u64` inputs, so nothing wraps or
//! panics. A state that would not fit in `u64` (a clock within `τ` of
//! `u64::MAX` ns, about 584 years) is never stored: the request is refused
//! with `retry_after: None`, which can only make the limiter stricter.
//!
//! Each function first computes a [`Verdict`] (whether the request passes
//! and the state to store: a few additions and comparisons) and only then,
//! on demand, the full decision (remaining units need a division).

use crate::algorithm::{Algorithm, AlgorithmKind, Shaping, Verdict};
use crate::any::AnyAlgorithm;
use crate::decision::{Decision, Reservation};
use crate::error::{ConfigError, InsufficientCapacity};
use crate::quota::Quota;
use crate::rate::Rate;
use crate::reconfigure::Strategy;

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

    /// The quota (capacity and rate) the bucket enforces.
    #[must_use]
    pub const fn quota(&self) -> &Quota {
        &self.quota
    }
}

/// What the two buckets share: policing, the views of a state and the
/// conversion between quotas. Only `reserve` differs.
macro_rules! bucket_algorithm {
    ($name:ident, $kind:ident) => {
        impl Algorithm for $name {
            type State = u64;

            #[inline]
            fn kind(&self) -> AlgorithmKind {
                AlgorithmKind::$kind
            }

            #[inline]
            fn limit(&self) -> u64 {
                self.quota.capacity()
            }

            #[inline]
            fn period_ns(&self) -> u64 {
                self.quota.tolerance_ns()
            }

            #[inline]
            fn check_verdict(
                &self,
                tat: u64,
                now: u64,
                cost: u64,
            ) -> Result<Verdict<Self>, InsufficientCapacity> {
                police(*self, &self.quota, tat, now, cost)
            }

            #[inline]
            fn remaining(&self, tat: u64, now: u64) -> u64 {
                self.quota.remaining(tat, now)
            }

            #[inline]
            fn reset_after_ns(&self, tat: u64, now: u64) -> u64 {
                self.quota.reset_after_ns(tat, now)
            }

            #[inline]
            fn expires_at(&self, tat: u64) -> u64 {
                tat
            }

            fn convert(&self, tat: u64, at: u64, to: &Self, strategy: Strategy) -> u64 {
                self.quota.convert(tat, at, &to.quota, strategy)
            }

            fn to_any(&self) -> AnyAlgorithm {
                AnyAlgorithm::$kind(*self)
            }

            #[inline]
            fn refund_admission(
                &self,
                tat: u64,
                now: u64,
                cost: u64,
                admitted: u64,
            ) -> Option<u64> {
                refund_admission(&self.quota, tat, now, cost, admitted)
            }

            #[inline]
            fn roll_back(
                &self,
                tat: u64,
                now: u64,
                _cost: u64,
                before: u64,
                admitted: u64,
            ) -> Option<u64> {
                roll_back(tat, now, before, admitted)
            }
        }
    };
}

/// [`Algorithm::refund_admission`] for a bucket: exact, and only while the
/// key still holds what the admission stored.
#[inline]
pub(crate) fn refund_admission(
    q: &Quota,
    tat: u64,
    now: u64,
    cost: u64,
    admitted: u64,
) -> Option<u64> {
    if cost == 0 || tat != admitted || admitted <= now {
        return None;
    }
    // What `Shaping::refund` computes: the units come off the end of the
    // schedule, never below `now` (never fuller than a fresh bucket).
    Some(
        admitted
            .saturating_sub(cost.saturating_mul(q.interval_ns()))
            .max(now),
    )
}

/// [`Algorithm::roll_back`] for a bucket.
///
/// With `w = admitted`, `v = before`, and the admissions stacked on it
/// since (all at or before `now`) moving the state to `tat = f(w)`: a GCRA
/// state is a max-plus expression, `f(x) = max(x + Σ, R)` with `Σ` the
/// stacked costs and `R ≤ now + Σ` the terms of requests that found the
/// bucket idle. Without the admission the state is `f(v)`. If `tat > w +
/// Σ` then `tat = R = f(v)` and `w ≤ now`, so nothing is given back.
/// Otherwise `tat − δ` with `δ = min(w − v, w − now)` is `v + Σ` (when
/// `v ≥ now`, then `R ≤ v + Σ`) or `now + Σ ≥ R` and `> v + Σ`: never
/// below `f(v)`, and equal to it while time has not passed `v`.
#[inline]
pub(crate) fn roll_back(tat: u64, now: u64, before: u64, admitted: u64) -> Option<u64> {
    if tat == admitted {
        return (before != admitted).then_some(before);
    }
    if tat < admitted {
        // Not a state stacked on this admission: leave it alone.
        return None;
    }
    let back = (admitted - before.min(admitted)).min(admitted.saturating_sub(now));
    (back > 0).then(|| tat - back)
}

bucket_algorithm!(TokenBucket, TokenBucket);
bucket_algorithm!(LeakyBucket, LeakyBucket);

impl Shaping for TokenBucket {
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
    ) -> Result<Verdict<Self, Reservation>, InsufficientCapacity> {
        let q = &self.quota;
        let new_tat = next_tat(q, tat, now, cost)?;
        let Ok(stored) = u64::try_from(new_tat) else {
            return Ok(Verdict::refuse(*self, now, tat, None));
        };
        // new_tat fits in u64, so does the wait.
        let wait = (stored - now).saturating_sub(q.tolerance_ns());
        match max_wait_ns {
            Some(max) if wait > max => Ok(Verdict::refuse(*self, now, tat, Some(wait - max))),
            _ => Ok(Verdict::admit(*self, now, stored, cost > 0, wait)),
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

    /// The quota (capacity and rate) the bucket enforces.
    #[must_use]
    pub const fn quota(&self) -> &Quota {
        &self.quota
    }
}

impl Shaping for LeakyBucket {
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
    ) -> Result<Verdict<Self, Reservation>, InsufficientCapacity> {
        let q = &self.quota;
        let new_tat = next_tat(q, tat, now, cost)?;
        let Ok(stored) = u64::try_from(new_tat) else {
            return Ok(Verdict::refuse(*self, now, tat, None));
        };
        // The request departs when the queue ahead of it has drained.
        let wait = tat.saturating_sub(now);
        let over_queue = (stored - now).saturating_sub(q.tolerance_ns());
        let over_wait = max_wait_ns.map_or(0, |max| wait.saturating_sub(max));
        let retry_after = over_queue.max(over_wait);
        if retry_after == 0 {
            Ok(Verdict::admit(*self, now, stored, cost > 0, wait))
        } else {
            Ok(Verdict::refuse(*self, now, tat, Some(retry_after)))
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
fn police<A: Algorithm<State = u64>>(
    algorithm: A,
    q: &Quota,
    tat: u64,
    now: u64,
    cost: u64,
) -> Result<Verdict<A, Decision>, InsufficientCapacity> {
    let new_tat = next_tat(q, tat, now, cost)?;
    Ok(match u64::try_from(new_tat) {
        Ok(stored) => match (stored - now).checked_sub(q.tolerance_ns()) {
            None | Some(0) => Verdict::admit(algorithm, now, stored, cost > 0, 0),
            Some(over) => Verdict::refuse(algorithm, now, tat, Some(over)),
        },
        // The state would not fit in u64: refused, never wrapped.
        Err(_) => Verdict::refuse(algorithm, now, tat, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

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
            assert_eq!(s.decision.wait(), Some(Duration::from_millis(100 * k)));
            tat = s.next.unwrap();
        }
        // The queue is full: room again after one departure.
        let s = b.reserve(tat, S, 1, None).unwrap();
        assert!(!s.decision.is_admitted());
        assert_eq!(s.decision.retry_after(), Some(Duration::from_millis(100)));
        // A bounded wait: the queue drains in 300 ms, 50 ms is allowed.
        let s = b
            .reserve(tat, S + 100_000_000, 1, Some(50_000_000))
            .unwrap();
        assert_eq!(s.decision.retry_after(), Some(Duration::from_millis(150)));
    }

    #[test]
    fn token_reserve_goes_into_debt() {
        let b = token(2, 10);
        let mut tat = 0;
        let waits: [u64; 4] = [0, 0, 100, 200];
        for w in waits {
            let s = b.reserve(tat, S, 1, None).unwrap();
            assert_eq!(s.decision.wait(), Some(Duration::from_millis(w)));
            tat = s.next.unwrap();
        }
        let s = b.reserve(tat, S, 1, Some(250_000_000)).unwrap();
        assert!(!s.decision.is_admitted());
        assert_eq!(s.decision.retry_after(), Some(Duration::from_millis(50)));
    }

    #[test]
    fn the_end_of_time_refuses_instead_of_wrapping() {
        let b = token(5, 1);
        let end = u64::MAX - 1;
        let s = b.check(0, end, 1).unwrap();
        assert!(!s.decision.allowed);
        assert_eq!(s.decision.retry_after, None);
        let r = b.reserve(u64::MAX, u64::MAX, 5, None).unwrap();
        assert!(!r.decision.is_admitted());
        let r = leaky(5, 1).reserve(u64::MAX, 0, 5, Some(u64::MAX)).unwrap();
        assert!(!r.decision.is_admitted());
        // Just inside the range still works.
        assert!(b.check(0, u64::MAX - 5 * S, 5).unwrap().decision.allowed);
    }
}
