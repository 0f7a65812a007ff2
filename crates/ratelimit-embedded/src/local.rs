//! [`LocalLimiter`]: one limit owned by one execution context (a task, the
//! main loop, one interrupt handler), its state in a [`Cell`], and
//! [`apply`], the one place where either limiter of this crate stores a
//! state.

use core::cell::Cell;
use core::time::Duration;

use ratelimit_core::{
    Algorithm, Clock, Decision, InsufficientCapacity, Reservation, Shaping, Verdict,
};

/// Runs one step of the algorithm on the state in `cell` (the default state
/// while it holds `None`: a key never seen) and stores the state the step
/// asks for. The caller builds the answer from the returned verdict, outside
/// any critical section.
#[inline]
pub(crate) fn apply<A: Algorithm, D>(
    cell: &Cell<Option<A::State>>,
    step: impl FnOnce(A::State) -> Result<Verdict<A, D>, InsufficientCapacity>,
) -> Result<Verdict<A, D>, InsufficientCapacity> {
    let verdict = step(cell.get().unwrap_or_default())?;
    if let Some(next) = verdict.next() {
        cell.set(Some(next));
    }
    Ok(verdict)
}

/// A `Duration` as whole nanoseconds, saturating at `u64::MAX` (584 years).
#[inline]
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One rate limit used from a single execution context: no lock, no
/// atomics, no critical section. It is `Send` but not `Sync`: the compiler
/// refuses to share it between an interrupt handler and the main loop (use
/// a [`Limiter`](crate::Limiter) for that), or to put it in a `static`.
///
/// Use it where the context already owns it: a local of the main loop, an
/// RTIC task's local resource, an Embassy task's variable.
///
/// The time comes either from the limiter's [`Clock`] (`check`, `reserve`,
/// `peek`) or from the caller (`check_at`, `reserve_at`, `peek_at`, in
/// nanoseconds on the clock of the caller's choice, which must never go
/// backwards by much: see [`Clock`]). [`new`](Self::new) builds a limiter
/// without a clock, which has only the `_at` methods.
///
/// ```
/// use ratelimit_embedded::{LocalLimiter, Rate, TokenBucket};
///
/// // Two retransmissions, then one every 500 ms.
/// let retries = LocalLimiter::new(TokenBucket::with_rate(2, Rate::per_second(2))?);
/// let now_ns = 1_000_000_000;
/// assert!(retries.check_at(now_ns, 1)?.allowed);
/// assert!(retries.check_at(now_ns, 1)?.allowed);
/// let third = retries.check_at(now_ns, 1)?;
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after.map(|d| d.as_millis()), Some(500));
/// assert!(retries.check_at(now_ns + 500_000_000, 1)?.allowed);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LocalLimiter<A: Algorithm, C = ()> {
    algorithm: A,
    clock: C,
    /// `None` until the first step that stores a state: the default state,
    /// a key never seen (`Default::default` cannot be called in a `const
    /// fn`, and `new` must be one).
    state: Cell<Option<A::State>>,
}

impl<A: Algorithm> LocalLimiter<A> {
    /// A limiter in its initial state (a full token bucket, an empty leaky
    /// bucket or window) without a clock: give the time to each call.
    #[must_use]
    pub const fn new(algorithm: A) -> Self {
        Self::with_clock(algorithm, ())
    }
}

impl<A: Algorithm, C> LocalLimiter<A, C> {
    /// A limiter in its initial state that reads the time from `clock`.
    #[must_use]
    pub const fn with_clock(algorithm: A, clock: C) -> Self {
        Self {
            algorithm,
            clock,
            state: Cell::new(None),
        }
    }

    /// Allows or denies a request of `cost` units at `now_ns`.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the limit: such a
    /// request can never succeed, and the state is left unchanged.
    #[inline]
    pub fn check_at(&self, now_ns: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        apply(&self.state, |state| {
            self.algorithm.check_verdict(state, now_ns, cost)
        })
        .map(|verdict| verdict.decision())
    }

    /// The decision a request of cost zero would get at `now_ns`, without
    /// consuming anything: what is left and when the limit resets.
    pub fn peek_at(&self, now_ns: u64) -> Decision {
        self.algorithm.inspect(self.state(), now_ns)
    }

    /// The state the algorithm works on (the default state for a limiter
    /// that has admitted nothing yet).
    #[must_use]
    pub fn state(&self) -> A::State {
        self.state.get().unwrap_or_default()
    }

    /// Back to the initial state, as if nothing had ever been admitted.
    pub fn reset(&self) {
        self.state.set(None);
    }

    /// The algorithm (and through it the quota) this limiter enforces.
    #[must_use]
    pub const fn algorithm(&self) -> &A {
        &self.algorithm
    }

    /// The clock this limiter reads (`()` for none).
    #[must_use]
    pub const fn clock(&self) -> &C {
        &self.clock
    }
}

impl<A: Algorithm, C: Clock> LocalLimiter<A, C> {
    /// Allows or denies a request of cost 1 now.
    pub fn check(&self) -> Decision {
        match self.check_n(1) {
            Ok(decision) => decision,
            // Every algorithm's limit is at least 1 (the core refuses zero).
            Err(_) => unreachable!("a cost of 1 never exceeds a limit of at least 1"),
        }
    }

    /// Allows or denies a request of `cost` units now.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the limit.
    pub fn check_n(&self, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.check_at(self.clock.now_ns(), cost)
    }

    /// The decision a request of cost zero would get now.
    pub fn peek(&self) -> Decision {
        self.peek_at(self.clock.now_ns())
    }
}

impl<A: Shaping, C> LocalLimiter<A, C> {
    /// Admits a request of `cost` units at `now_ns`, to proceed after the
    /// wait of the returned [`Reservation::Admitted`] if that wait is at
    /// most `max_wait_ns` (`None`: any wait), or rejects it. Only the
    /// buckets shape.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    #[inline]
    pub fn reserve_at(
        &self,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, InsufficientCapacity> {
        apply(&self.state, |tat| {
            self.algorithm
                .reserve_verdict(tat, now_ns, cost, max_wait_ns)
        })
        .map(|verdict| verdict.decision())
    }
}

impl<A: Shaping, C: Clock> LocalLimiter<A, C> {
    /// Admits a request of `cost` units now, to proceed after a wait of at
    /// most `max_wait` (`None`: any wait), or rejects it.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn reserve(
        &self,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, InsufficientCapacity> {
        self.reserve_at(self.clock.now_ns(), cost, max_wait.map(duration_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};
    use ratelimit_core::{FixedWindow, LeakyBucket, Rate, TokenBucket};

    const S: u64 = 1_000_000_000;

    /// A clock the test moves by hand (the core's `ManualClock` would do on
    /// the host; this one shows what a firmware's timer clock looks like).
    struct Ticks(AtomicU64);

    impl Clock for Ticks {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_burst_then_the_refill() {
        let clock = Ticks(AtomicU64::new(S));
        let limiter = LocalLimiter::with_clock(
            TokenBucket::with_rate(3, Rate::per_second(2)).unwrap(),
            clock,
        );
        for left in [2, 1, 0] {
            let d = limiter.check();
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let denied = limiter.check();
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(Duration::from_millis(500)));
        // One nanosecond early is still too early.
        limiter.clock().0.store(S + S / 2 - 1, Ordering::Relaxed);
        assert!(!limiter.check().allowed);
        limiter.clock().0.store(S + S / 2, Ordering::Relaxed);
        assert!(limiter.check().allowed);
        assert_eq!(limiter.state(), S + 2 * S);
    }

    #[test]
    fn errors_and_denials_store_nothing() {
        let limiter = LocalLimiter::new(TokenBucket::with_rate(2, Rate::per_second(1)).unwrap());
        assert_eq!(
            limiter.check_at(S, 3),
            Err(InsufficientCapacity {
                cost: 3,
                capacity: 2
            })
        );
        assert_eq!(limiter.state(), 0);
        assert!(limiter.check_at(S, 2).unwrap().allowed);
        let tat = limiter.state();
        assert!(!limiter.check_at(S, 1).unwrap().allowed);
        assert_eq!(limiter.state(), tat);
        assert_eq!(limiter.peek_at(S).remaining, 0);
        limiter.reset();
        assert_eq!(limiter.peek_at(S).remaining, 2);
    }

    #[test]
    fn a_leaky_bucket_spaces_reservations() {
        let limiter = LocalLimiter::new(LeakyBucket::with_rate(3, Rate::per_second(10)).unwrap());
        for k in 0..3 {
            let r = limiter.reserve_at(S, 1, None).unwrap();
            assert_eq!(r.wait(), Some(Duration::from_millis(100 * k)));
        }
        let full = limiter.reserve_at(S, 1, None).unwrap();
        assert!(!full.is_admitted());
        assert_eq!(full.retry_after(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_window_resets_at_its_end() {
        let limiter = LocalLimiter::new(FixedWindow::per_second(2).unwrap());
        assert!(limiter.check_at(S + 1, 2).unwrap().allowed);
        let denied = limiter.check_at(S + 2, 1).unwrap();
        assert_eq!(denied.retry_after, Some(Duration::from_nanos(S - 2)));
        assert!(limiter.check_at(2 * S, 2).unwrap().allowed);
    }
}
