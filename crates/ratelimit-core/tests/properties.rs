//! Property tests of the contract's invariants, over random traffic.

use proptest::prelude::*;
use ratelimit_core::{
    Algorithm, FixedWindow, LeakyBucket, Quota, Rate, Shaping, SlidingWindow, TokenBucket,
};

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
fn run_checks(bucket: &impl Shaping, start: u64, traffic: &[(u64, u64)]) -> Vec<(u64, u64, bool)> {
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
                if let Some(wait) = s.decision.wait() {
                    prop_assert!(max_wait.is_none_or(|m| wait.as_nanos() <= u128::from(m)));
                    tat = s.next.unwrap_or(tat);
                } else {
                    let r = u64::try_from(s.decision.retry_after().unwrap().as_nanos()).unwrap();
                    prop_assert!(r > 0);
                    prop_assert!(reserve(tat, now + r, c, max_wait).decision.is_admitted());
                    prop_assert!(!reserve(tat, now + r - 1, c, max_wait).decision.is_admitted());
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
            prop_assert_eq!(s.decision.wait().map(|w| w.as_nanos()), Some(u128::from(k * q.interval_ns())));
            tat = s.next.unwrap();
        }
        prop_assert!(!b.reserve(tat, now, 1, None).unwrap().decision.is_admitted());
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
    a: &impl Shaping,
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
            if let Some(wait) = s.decision.wait() {
                prop_assert!(max_wait.is_none_or(|w| wait.as_nanos() <= u128::from(w)));
                prop_assert!(s.next.is_none_or(|next| next >= now));
            } else {
                prop_assert_eq!(s.next, None);
            }
        }
        Err(e) => prop_assert!(e.cost > q.capacity()),
    }
    Ok(())
}

/// A window algorithm with a small limit and a window from 1 ns to 1 s.
fn window() -> impl Strategy<Value = (u64, u64)> {
    (1u64..=20, 1u64..=1_000_000_000)
}

/// Window traffic: (time step in units of W/8, cost up to L + 1).
fn window_traffic() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..20, 0u64..=21), 1..96)
}

/// Replays `check`s from a fresh key with time moving forwards; returns
/// the admissions as (time, cost).
fn admissions<A: Algorithm>(a: &A, start: u64, w: u64, traffic: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut state, mut now) = (A::State::default(), start);
    let mut out = Vec::new();
    for &(step, cost) in traffic {
        now += step * w / 8;
        if let Ok(s) = a.check(state, now, cost) {
            if s.decision.allowed && cost > 0 {
                out.push((now, cost));
            }
            state = s.next.unwrap_or(state);
        }
    }
    out
}

/// Units admitted with a time in window `k` (of length `w`), up to and
/// including the admission at index `upto`.
fn admitted_in(log: &[(u64, u64)], w: u64, k: u64, upto: usize) -> u64 {
    log[..=upto]
        .iter()
        .filter(|&&(t, _)| t / w == k)
        .map(|&(_, c)| c)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No fixed window ever admits more than L units.
    #[test]
    fn fixed_window_never_admits_more_than_l_per_window(
        (l, w) in window(), traffic in window_traffic(), start in 0u64..1 << 40,
    ) {
        let fw = FixedWindow::with_window_ns(l, w).unwrap();
        let log = admissions(&fw, start, w, &traffic);
        for (i, &(t, _)) in log.iter().enumerate() {
            let used = admitted_in(&log, w, t / w, i);
            prop_assert!(used <= l, "{used} > {l} in window {}", t / w);
        }
    }

    /// At every admission, the sliding counter's contract holds, computed
    /// from the log of admissions alone:
    /// `prev × (W − e) + cur × W ≤ L × W`.
    #[test]
    fn sliding_window_never_exceeds_its_contract(
        (l, w) in window(), traffic in window_traffic(), start in 0u64..1 << 40,
    ) {
        let sw = SlidingWindow::with_window_ns(l, w).unwrap();
        let log = admissions(&sw, start, w, &traffic);
        for (i, &(t, _)) in log.iter().enumerate() {
            let k = t / w;
            let e = t - k * w;
            let cur = admitted_in(&log, w, k, i);
            let prev = if k == 0 { 0 } else { admitted_in(&log, w, k - 1, i) };
            let used = u128::from(prev) * u128::from(w - e) + u128::from(cur) * u128::from(w);
            prop_assert!(used <= u128::from(l) * u128::from(w), "at {t}: prev {prev}, cur {cur}");
        }
    }

    /// A denied window check's retry_after is exact: allowed then, not 1 ns
    /// before; and a window check never panics near the end of time.
    #[test]
    fn window_retry_after_is_honest(
        (l, w) in window(), traffic in window_traffic(), cost in 0u64..=20, sliding: bool,
    ) {
        let cost = cost.min(l);
        let any = if sliding {
            ratelimit_core::AnyAlgorithm::SlidingWindow(SlidingWindow::with_window_ns(l, w).unwrap())
        } else {
            ratelimit_core::AnyAlgorithm::FixedWindow(FixedWindow::with_window_ns(l, w).unwrap())
        };
        let (mut state, mut now) = (0u128, 1u64 << 30);
        for (step, c) in traffic {
            now += step * w / 8;
            if let Ok(s) = any.check(state, now, c) {
                state = s.next.unwrap_or(state);
            }
            let d = any.check(state, now, cost).unwrap().decision;
            if let Some(wait) = d.retry_after {
                prop_assert!(!d.allowed);
                let at = now + u64::try_from(wait.as_nanos()).unwrap();
                prop_assert!(any.check(state, at, cost).unwrap().decision.allowed);
                prop_assert!(!any.check(state, at - 1, cost).unwrap().decision.allowed);
            } else {
                prop_assert!(d.allowed);
            }
        }
    }

    /// No input panics a window algorithm, whatever the state word.
    #[test]
    fn no_window_input_panics(
        l in 1u64..=u32::MAX as u64, w in 1u64..=u64::MAX,
        state in any::<u128>(), now in any::<u64>(), cost in any::<u64>(),
    ) {
        for any in [
            ratelimit_core::AnyAlgorithm::FixedWindow(FixedWindow::with_window_ns(l, w).unwrap()),
            ratelimit_core::AnyAlgorithm::SlidingWindow(SlidingWindow::with_window_ns(l, w).unwrap()),
        ] {
            match any.check(state, now, cost) {
                Ok(s) => prop_assert!(!s.decision.allowed || s.decision.retry_after.is_none()),
                Err(e) => prop_assert!(e.cost > l),
            }
            let _ = any.expires_at(state);
            let _ = any.inspect(state, now);
        }
    }

    /// Converting a bucket's state with any strategy never leaves more
    /// available than the strategy allows, and composes as one conversion
    /// at the same instant would (keep-consumed).
    #[test]
    fn conversions_round_up(
        (c, t) in (1u64..=20, 1u64..=1_000_000_000),
        (c2, t2) in (1u64..=20, 1u64..=1_000_000_000),
        d in 0u64..40_000_000_000, at in 0u64..1 << 40,
    ) {
        let old = Quota::new(c, Rate::from_interval(core::time::Duration::from_nanos(t))).unwrap();
        let new = Quota::new(c2, Rate::from_interval(core::time::Duration::from_nanos(t2))).unwrap();
        let tat = at + d;
        let kept = old.convert(tat, at, &new, ratelimit_core::Strategy::KeepConsumed);
        // The units in use (d / T, fractional) stay in use, rounded up.
        prop_assert!(u128::from(kept - at) * u128::from(t) >= u128::from(d) * u128::from(t2));
        prop_assert!(u128::from(kept - at) * u128::from(t) < (u128::from(d) + u128::from(t)) * u128::from(t2));
        let prop = old.convert(tat, at, &new, ratelimit_core::Strategy::Proportional);
        prop_assert!(u128::from(prop - at) * u128::from(old.tolerance_ns()) >= u128::from(d) * u128::from(new.tolerance_ns()));
        prop_assert_eq!(old.convert(tat, at, &new, ratelimit_core::Strategy::Reset), 0);
        // A bucket back to its initial state is unchanged by every strategy.
        for s in ratelimit_core::Strategy::ALL {
            prop_assert_eq!(old.convert(at, at, &new, s), at);
        }
    }
}

/// A bucket's step as the GCRA writes it, whatever the decision:
/// `max(tat, now) + cost × T`.
fn gcra(tat: u64, now: u64, cost: u64, t: u64) -> u64 {
    tat.max(now) + cost * t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Rolling back one admission after others were stacked on it (the
    /// all-or-nothing check of several limits) never leaves the bucket
    /// looser than had the admission never happened, and is exact while
    /// time has not moved past the state it found.
    #[test]
    fn roll_back_is_never_looser(
        q in quota(), leaky in any::<bool>(),
        before in prop::collection::vec((0u64..8, 1u64..=3), 0..8),
        ours in (0u64..8, 1u64..=3),
        after in prop::collection::vec((0u64..8, 1u64..=3), 0..8),
        late in 0u64..8,
    ) {
        let t = q.interval_ns();
        let algorithm: ratelimit_core::AnyBucket = if leaky {
            ratelimit_core::AnyBucket::LeakyBucket(LeakyBucket::new(q))
        } else {
            ratelimit_core::AnyBucket::TokenBucket(TokenBucket::new(q))
        };
        let (mut tat, mut now) = (0u64, 1u64 << 30);
        // Reservations (never refused when unbounded on a token bucket;
        // the GCRA step is the same for every admission).
        for &(step, cost) in &before {
            now += step * t / 4;
            tat = gcra(tat, now, cost, t);
        }
        now += ours.0 * t / 4;
        let (v, w) = (tat, gcra(tat, now, ours.1, t));
        let (mut with, mut without) = (w, v);
        for &(step, cost) in &after {
            now += step * t / 4;
            with = gcra(with, now, cost, t);
            without = gcra(without, now, cost, t);
        }
        now += late * t / 4;
        let rolled = algorithm.roll_back(with, now, ours.1, v, w).unwrap_or(with);
        prop_assert!(rolled <= with);
        prop_assert!(rolled.max(now) >= without.max(now), "rolled {rolled} < {without} at {now}");
        if now <= v {
            prop_assert_eq!(rolled, without);
        }
        if after.is_empty() {
            prop_assert_eq!(rolled, v);
        }
        // A refund is exact when nothing was stacked, and refused otherwise.
        let refunded = algorithm.refund_admission(with, now, ours.1, w);
        if after.is_empty() && w > now {
            prop_assert_eq!(refunded.map(|r| r.max(now)), Some(v.max(now)));
        } else {
            prop_assert_eq!(refunded, None);
        }
    }

    /// Refunding one admission of a window algorithm leaves a state that
    /// decides as if it had never been admitted (counts add up).
    #[test]
    fn window_refunds_are_exact(
        (l, w) in window(), sliding in any::<bool>(),
        traffic in window_traffic(), pick in any::<prop::sample::Index>(),
    ) {
        let any = if sliding {
            ratelimit_core::AnyAlgorithm::SlidingWindow(SlidingWindow::with_window_ns(l, w).unwrap())
        } else {
            ratelimit_core::AnyAlgorithm::FixedWindow(FixedWindow::with_window_ns(l, w).unwrap())
        };
        // Admissions: (now, cost, the state stored).
        let (mut state, mut now, mut admitted) = (0u128, 0u64, Vec::new());
        for &(step, cost) in &traffic {
            now += step * w / 4;
            if let Ok(s) = any.check(state, now, cost) {
                if let Some(next) = s.next {
                    state = next;
                    admitted.push((now, cost, next));
                }
            }
        }
        prop_assume!(!admitted.is_empty());
        let i = pick.index(admitted.len());
        let (_, cost, stored) = admitted[i];
        let mut without = 0u128;
        for (j, &(at, c, _)) in admitted.iter().enumerate() {
            if j != i {
                // Still admitted with one fewer counted: counts only shrink.
                let s = any.check(without, at, c).unwrap();
                prop_assert!(s.decision.allowed);
                without = s.next.unwrap_or(without);
            }
        }
        let refunded = any.refund_admission(state, now, cost, stored).unwrap_or(state);
        for later in [now, now + w / 3, now + w, now + 2 * w] {
            prop_assert_eq!(any.inspect(refunded, later), any.inspect(without, later));
        }
    }
}
