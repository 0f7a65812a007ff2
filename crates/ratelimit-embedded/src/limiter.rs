//! [`Limiter`]: one limit shared between execution contexts (the main
//! loop, interrupt handlers, cores) through a critical section, so it needs
//! no atomics: it runs on a Cortex-M0 (`thumbv6m`, 32-bit atomic loads and
//! stores only) as on any other target.

use core::cell::Cell;
use core::time::Duration;

use critical_section::Mutex;
use ratelimit_core::{
    Algorithm, Answer, Clock, Decision, InsufficientCapacity, Reservation, Shaping, Verdict,
};

use crate::local::{apply, duration_ns};

/// One rate limit that any context may use: a `static` shared by the main
/// loop and interrupt handlers.
///
/// Each call loads the state, runs the algorithm's step and stores the new
/// state inside one [`critical_section::with`]: a few dozen instructions
/// with interrupts masked (on a single-core Cortex-M), during which no
/// other context can interleave, so no admission is lost or counted twice.
/// The answer (the division behind `remaining`, the conversions to
/// `Duration`) is built after the critical section ends, and the clock is
/// read before it starts.
///
/// The firmware provides the critical section implementation, as for any
/// crate that uses [`critical_section`]: on a single-core Cortex-M, enable
/// the `critical-section-single-core` feature of `cortex-m`; a HAL for a
/// multi-core chip provides its own.
///
/// ```
/// use ratelimit_embedded::{Clock, Limiter, Rate, TokenBucket};
///
/// /// The firmware's time: here a stand-in for a hardware timer.
/// struct Ticks;
///
/// impl Clock for Ticks {
///     fn now_ns(&self) -> u64 {
///         1_000_000_000 // e.g. a 1 MHz timer's count × 1_000
///     }
/// }
///
/// // Checked when the firmware is compiled: a bad quota does not build.
/// const BUCKET: TokenBucket = match TokenBucket::with_rate(2, Rate::per_second(1)) {
///     Ok(bucket) => bucket,
///     Err(_) => panic!("invalid quota"),
/// };
///
/// /// At most 2 log lines at once, then one per second, from any context.
/// static LOG_LINES: Limiter<TokenBucket, Ticks> = Limiter::with_clock(BUCKET, Ticks);
///
/// assert!(LOG_LINES.check().allowed);
/// assert!(LOG_LINES.check().allowed);
/// assert!(!LOG_LINES.check().allowed);
/// ```
#[derive(Debug)]
pub struct Limiter<A: Algorithm, C = ()> {
    algorithm: A,
    clock: C,
    /// `None`: the default state (see `LocalLimiter`).
    state: Mutex<Cell<Option<A::State>>>,
}

impl<A: Algorithm> Limiter<A> {
    /// A limiter in its initial state (a full token bucket, an empty leaky
    /// bucket or window) without a clock: give the time to each call.
    #[must_use]
    pub const fn new(algorithm: A) -> Self {
        Self::with_clock(algorithm, ())
    }
}

impl<A: Algorithm, C> Limiter<A, C> {
    /// A limiter in its initial state that reads the time from `clock`.
    #[must_use]
    pub const fn with_clock(algorithm: A, clock: C) -> Self {
        Self {
            algorithm,
            clock,
            state: Mutex::new(Cell::new(None)),
        }
    }

    /// Runs one step in a critical section and returns its verdict.
    #[inline]
    fn step<D: Answer>(
        &self,
        step: impl FnOnce(A::State) -> Result<Verdict<A, D>, InsufficientCapacity>,
    ) -> Result<D, InsufficientCapacity> {
        critical_section::with(|cs| apply(self.state.borrow(cs), step))
            .map(|verdict| verdict.decision())
    }

    /// Allows or denies a request of `cost` units at `now_ns`.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the limit: such a
    /// request can never succeed, and the state is left unchanged.
    #[inline]
    pub fn check_at(&self, now_ns: u64, cost: u64) -> Result<Decision, InsufficientCapacity> {
        self.step(|state| self.algorithm.check_verdict(state, now_ns, cost))
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
        critical_section::with(|cs| self.state.borrow(cs).get()).unwrap_or_default()
    }

    /// Back to the initial state, as if nothing had ever been admitted.
    pub fn reset(&self) {
        critical_section::with(|cs| self.state.borrow(cs).set(None));
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

impl<A: Algorithm, C: Clock> Limiter<A, C> {
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

impl<A: Shaping, C> Limiter<A, C> {
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
        self.step(|tat| {
            self.algorithm
                .reserve_verdict(tat, now_ns, cost, max_wait_ns)
        })
    }
}

impl<A: Shaping, C: Clock> Limiter<A, C> {
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
    extern crate std;

    use super::*;
    use ratelimit_core::{LeakyBucket, Rate, SlidingWindow, TokenBucket};
    use std::thread;

    const S: u64 = 1_000_000_000;

    const BUCKET: TokenBucket = match TokenBucket::with_rate(100, Rate::per_second(1)) {
        Ok(bucket) => bucket,
        Err(_) => panic!("invalid quota"),
    };

    /// A `static`, as in a firmware: built at compile time, shared by
    /// reference.
    static SHARED: Limiter<TokenBucket> = Limiter::new(BUCKET);

    #[test]
    fn contexts_sharing_one_limiter_admit_exactly_the_capacity() {
        // Four threads stand in for interrupt handlers: the host's
        // critical section is a global mutex, as masking interrupts is on
        // a single core. 4 × 40 attempts at one instant: exactly 100 pass.
        let admitted: u64 = thread::scope(|s| {
            let handles: std::vec::Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..40)
                            .filter(|_| SHARED.check_at(S, 1).unwrap().allowed)
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
        assert_eq!(SHARED.peek_at(S).remaining, 0);
        assert_eq!(SHARED.state(), S + 100 * S);
    }

    #[test]
    fn reserve_and_reset() {
        let limiter = Limiter::new(LeakyBucket::with_rate(2, Rate::per_second(4)).unwrap());
        assert_eq!(
            limiter.reserve_at(S, 1, None).unwrap().wait(),
            Some(Duration::ZERO)
        );
        let second = limiter.reserve_at(S, 1, Some(100_000_000)).unwrap();
        // The queue ahead drains in 250 ms, more than the 100 ms allowed.
        assert_eq!(second.retry_after(), Some(Duration::from_millis(150)));
        assert_eq!(
            limiter.reserve_at(S, 1, None).unwrap().wait(),
            Some(Duration::from_millis(250))
        );
        assert!(limiter.reserve_at(S, 3, None).is_err());
        limiter.reset();
        assert_eq!(limiter.state(), 0);
    }

    #[test]
    fn a_sliding_window_in_a_critical_section() {
        let limiter = Limiter::new(SlidingWindow::per_second(10).unwrap());
        assert!(limiter.check_at(S / 2, 10).unwrap().allowed);
        // Half of the previous window still weighs: 5 of 10 in use.
        assert_eq!(limiter.peek_at(S + S / 2).remaining, 5);
        assert!(!limiter.check_at(S + S / 2, 6).unwrap().allowed);
        assert!(limiter.check_at(S + S / 2, 5).unwrap().allowed);
    }
}
