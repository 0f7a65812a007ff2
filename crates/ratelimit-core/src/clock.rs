//! [`Clock`]: where backends get `now`. The core itself never reads one.

#[cfg(target_has_atomic = "64")]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(target_has_atomic = "64")]
use core::time::Duration;

/// A source of time in nanoseconds since an arbitrary, fixed origin.
///
/// Implementations MUST be safe to call from many threads (limiters share
/// them) and SHOULD never go backwards. A clock that does go backwards is
/// still safe: no decision panics, and none admits more than the contract
/// allows at the later of the two times.
pub trait Clock {
    /// Nanoseconds since the clock's origin.
    fn now_ns(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

#[cfg(feature = "std")]
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

#[cfg(feature = "std")]
impl<C: Clock + ?Sized> Clock for std::boxed::Box<C> {
    #[inline]
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// A clock that moves only when told to: for tests, replays and
/// simulations. Share it by reference or `Arc` with the limiters it drives.
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_micros(2));
/// assert_eq!(clock.now_ns(), 3_000);
/// clock.set_ns(10);
/// assert_eq!(clock.now_ns(), 10);
/// ```
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
pub struct ManualClock {
    // Relaxed throughout: the clock publishes only its own value, and tests
    // that hand it between threads synchronise through their own joins.
    now: AtomicU64,
}

#[cfg(target_has_atomic = "64")]
impl ManualClock {
    /// A clock reading `now_ns`.
    #[must_use]
    pub const fn new(now_ns: u64) -> Self {
        Self {
            now: AtomicU64::new(now_ns),
        }
    }

    /// Sets the time, forwards or backwards.
    pub fn set_ns(&self, now_ns: u64) {
        self.now.store(now_ns, Ordering::Relaxed);
    }

    /// Moves the time forwards by `by`, saturating at `u64::MAX` ns.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(by))
            });
    }
}

#[cfg(target_has_atomic = "64")]
impl Clock for ManualClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}
