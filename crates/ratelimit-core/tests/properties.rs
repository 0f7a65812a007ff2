//! Property tests of the contract's invariants, over random traffic.

use proptest::prelude::*;
use ratelimit_core::{Algorithm, LeakyBucket, Quota, Rate, TokenBucket};

/// `reserve` of one algorithm: (tat, now, cost, max_wait) to a step.
type ReserveFn<'a> =
    dyn Fn(u64, u64, u64, Option<u64>) -> ratelimit_core::Step<ratelimit_core::Reservation> + 'a;

/// A quota with a small capacity and an interval from 1 ns to 1 s.
fn quota() -> impl Strategy<Value = Quota> {
    (1u64..=20, 1u64..=1_000_000_000).prop_map(|(c, t)| {
        Quota::new(c, Rate::from_interval(core::time::Duration::from_nanos(t))).unwrap()
    })
}

/// Events as (time step in units of T/4, cost up to C+1).
fn traffic() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..12, 0u64..=21), 1..64)
}

/// Replays `check`s from a fresh bucket; returns (time, cost, allowed).
fn run_checks(
    bucket: &impl Algorithm,
    start: u64,
    traffic: &[(u64, u64)],
) -> Vec<(u64, u64, bool)> {
    let t = bucket.quota().interval_ns();
    let (mut tat, mut now) = (0, start);
    let mut out = Vec::new();
    for &(step, cost) in traffic {
        now += step * t / 4;
        if let Ok(s) = bucket.check(tat, now, cost) {
            tat = s.next.unwrap_or(tat);
            out.push((now, cost, s.decision.allowed));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// In every window [a, b], admitted units ≤ C + floor((b − a) / T).
    #[test]
    fn never_more_than_capacity_plus_refill(q in quota(), traffic in traffic(), start in 0u64..1 << 40) {
        let log = run_checks(&TokenBucket::new(q), start, &traffic);
        for i in 0..log.len() {
            let mut admitted = 0;
            for &(b, cost, allowed) in &log[i..] {
                if allowed {
                    admitted += cost;
                }
                let bound = q.capacity() + (b - log[i].0) / q.interval_ns();
                prop_assert!(admitted <= bound, "{admitted} > {bound} in [{}, {b}]", log[i].0);
            }
        }
        // From a full bucket, the first C units at one instant are all admitted.
        let burst = run_checks(&TokenBucket::new(q), start, &vec![(0, 1); q.capacity() as usize]);
        prop_assert!(burst.iter().all(|&(_, _, allowed)| allowed));
    }

    /// A denied check's retry_after is exact: allowed then, not 1 ns before.
    #[test]
    fn retry_after_is_honest(q in quota(), traffic in traffic(), cost in 0u64..=20) {
        let cost = cost.min(q.capacity());
        let b = TokenBucket::new(q);
        let t = q.interval_ns();
        let (mut tat, mut now) = (0u64, 1u64 << 30);
        for (step, c) in traffic {
            now += step * t / 4;
            if let Ok(s) = b.check(tat, now, c) {
                tat = s.next.unwrap_or(tat);
            }
            let d = b.check(tat, now, cost).unwrap().decision;
            if let Some(wait) = d.retry_after {
                prop_assert!(!d.allowed);
                let at = now + u64::try_from(wait.as_nanos()).unwrap();
                prop_assert!(b.check(tat, at, cost).unwrap().decision.allowed);
                prop_assert!(!b.check(tat, at - 1, cost).unwrap().decision.allowed);
            } else {
                prop_assert!(d.allowed);
            }
        }
    }

    /// A rejected reservation's retry_after is exact, for both algorithms.
    #[test]
    fn reserve_retry_after_is_honest(
        q in quota(),
        traffic in prop::collection::vec((0u64..12, 0u64..=20, prop::option::of(0u64..4)), 1..48),
    ) {
        let t = q.interval_ns();
        let algorithms: [&ReserveFn<'_>; 2] = [
            &|tat, now, c, w| TokenBucket::new(q).reserve(tat, now, c, w).unwrap(),
            &|tat, now, c, w| LeakyBucket::new(q).reserve(tat, now, c, w).unwrap(),
        ];
        for reserve in algorithms {
            let (mut tat, mut now) = (0u64, 1u64 << 30);
            for &(step, c, wait_in_t) in &traffic {
                now += step * t / 4;
                let c = c.min(q.capacity());
                let max_wait = wait_in_t.map(|w| w * t);
                let s = reserve(tat, now, c, max_wait);
                if s.decision.allowed {
                    prop_assert!(max_wait.is_none_or(|m| s.decision.wait.as_nanos() <= u128::from(m)));
                    tat = s.next.unwrap_or(tat);
                } else {
                    let r = u64::try_from(s.decision.retry_after.unwrap().as_nanos()).unwrap();
                    prop_assert!(r > 0);
                    prop_assert!(reserve(tat, now + r, c, max_wait).decision.allowed);
                    prop_assert!(!reserve(tat, now + r - 1, c, max_wait).decision.allowed);
                }
            }
        }
    }

    /// Token and leaky bucket `check` make identical decisions.
    #[test]
    fn token_and_leaky_check_agree(q in quota(), traffic in traffic()) {
        prop_assert_eq!(
            run_checks(&TokenBucket::new(q), 7, &traffic),
            run_checks(&LeakyBucket::new(q), 7, &traffic)
        );
    }

    /// Requests reserved together on a leaky bucket leave exactly T apart.
    #[test]
    fn leaky_reservations_are_spaced_by_t(q in quota(), now in 0u64..1 << 50) {
        let b = LeakyBucket::new(q);
        let mut tat = 0;
        for k in 0..q.capacity() {
            let s = b.reserve(tat, now, 1, None).unwrap();
            prop_assert!(s.decision.allowed);
            prop_assert_eq!(s.decision.wait.as_nanos(), u128::from(k * q.interval_ns()));
            tat = s.next.unwrap();
        }
        prop_assert!(!b.reserve(tat, now, 1, None).unwrap().decision.allowed);
    }

    /// Time going backwards never admits more than the contract allows over
    /// the span of times seen.
    #[test]
    fn backwards_time_never_over_admits(q in quota(), jumps in prop::collection::vec((0u64..8, any::<bool>(), 0u64..=3), 1..64)) {
        let b = TokenBucket::new(q);
        let t = q.interval_ns();
        let start = 1u64 << 40;
        let (mut tat, mut now, mut admitted) = (0u64, start, 0u64);
        let (mut earliest, mut latest) = (start, start);
        for (step, back, cost) in jumps {
            now = if back { now.saturating_sub(step * t / 2) } else { now + step * t / 2 };
            earliest = earliest.min(now);
            latest = latest.max(now);
            if let Ok(s) = b.check(tat, now, cost) {
                if s.decision.allowed {
                    admitted += cost;
                }
                tat = s.next.unwrap_or(tat);
            }
            prop_assert!(admitted <= q.capacity() + (latest - earliest) / t);
        }
    }

    /// `remaining` is exactly `floor((τ − min(τ, max(0, tat − now))) / T)`.
    #[test]
    fn remaining_is_exact(c in any::<u64>(), t in 1u64..=u64::MAX, tat in any::<u64>(), now in any::<u64>()) {
        // Any capacity for which C × T fits.
        let c = 1 + c % (u64::MAX / t);
        let q = Quota::new(c, Rate::from_interval(core::time::Duration::from_nanos(t))).unwrap();
        let used = tat.saturating_sub(now).min(q.tolerance_ns());
        prop_assert_eq!(q.remaining(tat, now), (q.tolerance_ns() - used) / t);
    }

    /// No input panics, and the outputs stay within their bounds.
    #[test]
    fn no_input_panics(
        c in 1u64..=u64::MAX,
        t in 1u64..=u64::MAX,
        tat in any::<u64>(),
        now in any::<u64>(),
        cost in any::<u64>(),
        max_wait in any::<Option<u64>>(),
    ) {
        let Ok(q) = Quota::new(c, Rate::from_interval(core::time::Duration::from_nanos(t))) else {
            prop_assert!(c.checked_mul(t).is_none());
            return Ok(());
        };
        within_bounds(&TokenBucket::new(q), tat, now, cost, max_wait)?;
        within_bounds(&LeakyBucket::new(q), tat, now, cost, max_wait)?;
    }
}

fn within_bounds(
    a: &impl Algorithm,
    tat: u64,
    now: u64,
    cost: u64,
    max_wait: Option<u64>,
) -> Result<(), TestCaseError> {
    let q = a.quota();
    match a.check(tat, now, cost) {
        Ok(s) => {
            prop_assert!(s.decision.remaining <= q.capacity());
            prop_assert!(!s.decision.allowed || s.decision.retry_after.is_none());
            if let Some(next) = s.next {
                prop_assert!(next >= now && next - now <= q.tolerance_ns());
            }
        }
        Err(e) => prop_assert!(e.cost > q.capacity()),
    }
    match a.reserve(tat, now, cost, max_wait) {
        Ok(s) => {
            if s.decision.allowed {
                prop_assert!(max_wait.is_none_or(|w| s.decision.wait.as_nanos() <= u128::from(w)));
                prop_assert!(s.next.is_none_or(|next| next >= now));
            } else {
                prop_assert_eq!(s.next, None);
            }
        }
        Err(e) => prop_assert!(e.cost > q.capacity()),
    }
    Ok(())
}
