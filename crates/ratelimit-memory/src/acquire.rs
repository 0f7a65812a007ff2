//! `acquire`: wait until a request may proceed, for the shaping limiters
//! (token and leaky buckets), in two forms: `acquire_blocking` sleeps the
//! thread through the limiter's clock ([`Sleep`]: `std::thread::sleep`
//! for the real clocks, moving the time for a [`ManualClock`]), and
//! `acquire` (feature `tokio`) sleeps with `tokio::time::sleep`.
//!
//! Both reserve with no bound on the wait, then sleep the reservation's
//! wait. A leaky bucket whose queue is full rejects the reservation (a
//! rejection is not "wait 0"): they sleep its `retry_after` and reserve
//! again, so a worker that acquires in a loop is paced at exactly the
//! rate. They return without being admitted only when the contract can
//! never admit the request (a cost above the capacity is
//! `Err(InsufficientCapacity)`; a key that is too long, or a state at the
//! end of time, is a rejection with `retry_after: None`).
//!
//! Cancellation (`acquire` only: a blocking call cannot be cut short): if
//! the future is dropped while it sleeps an admitted reservation's wait,
//! the reservation is refunded at once, in the drop, through its
//! [`Receipt`](crate::Receipt): exactly what it took, and only while
//! nothing was admitted on the key after it (a later admission was decided
//! with these units consumed; giving them back then could admit more than
//! the contract allows, so they stay consumed, the strict side). The same
//! guarantee as the Redis limiter's `acquire`; no runtime is needed for the
//! refund. Dropped during a retry's sleep, it has nothing to give back.

use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{Clock, InsufficientCapacity, ManualClock, Reservation, Shaping};

use crate::bucket::Bucket;
use crate::clock::MonotonicClock;
use crate::key::KeyBytes;
use crate::keyed::KeyedLimiter;

/// A clock a blocking `acquire` can wait on: [`sleep`](Sleep::sleep) lets
/// `duration` pass on this clock.
///
/// [`MonotonicClock`] sleeps the thread; [`ManualClock`] moves its time
/// forward instead, so a simulation or a test of a blocking worker runs at
/// once and sees exactly the waits (share the manual clock with one
/// worker: each sleeper moves it for everyone).
///
/// ```
/// use std::sync::Arc;
/// use ratelimit_memory::{Bucket, Clock, LeakyBucket, ManualClock, Rate};
///
/// // A smooth worker: a queue of one, drained at 5 per second.
/// let clock = Arc::new(ManualClock::new(0));
/// let bucket = Bucket::with_clock(LeakyBucket::with_rate(1, Rate::per_second(5))?, Arc::clone(&clock));
/// let mut sent_at = Vec::new();
/// for _ in 0..4 {
///     bucket.acquire_blocking(1)?;
///     sent_at.push(clock.now_ns() / 1_000_000); // ms
/// }
/// assert_eq!(sent_at, [0, 200, 400, 600]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Sleep {
    /// Lets `duration` pass on this clock.
    fn sleep(&self, duration: Duration);
}

impl Sleep for MonotonicClock {
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl Sleep for ManualClock {
    /// Moves the time forward by `duration` (no thread sleeps).
    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

impl<T: Sleep + ?Sized> Sleep for &T {
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

impl<T: Sleep + ?Sized> Sleep for Arc<T> {
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

impl<T: Sleep + ?Sized> Sleep for Box<T> {
    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration);
    }
}

/// What to do after a reservation.
enum Next {
    /// Admitted: proceed after this wait.
    Proceed(Duration),
    /// Rejected for now: reserve again after this wait.
    Retry(Duration),
    /// Rejected for good.
    GiveUp,
}

fn next(r: &Reservation) -> Next {
    match *r {
        Reservation::Admitted { wait, .. } => Next::Proceed(wait),
        Reservation::Rejected {
            retry_after: Some(retry),
            ..
        } => Next::Retry(retry),
        Reservation::Rejected {
            retry_after: None, ..
        } => Next::GiveUp,
    }
}

impl<A: Shaping, C: Clock + Sleep> Bucket<A, C> {
    /// Waits, on the bucket's clock ([`Sleep`]), until a request of `cost`
    /// units may proceed, and returns its admitted reservation (`wait`:
    /// the last wait slept; a full leaky bucket is asked again after each
    /// rejection's `retry_after`). Returns a rejection only when the
    /// request can never be admitted (`retry_after: None`).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn acquire_blocking(&self, cost: u64) -> Result<Reservation, InsufficientCapacity> {
        loop {
            let r = self.reserve(cost, None)?;
            match next(&r) {
                Next::Proceed(wait) => {
                    if !wait.is_zero() {
                        self.clock.sleep(wait);
                    }
                    return Ok(r);
                }
                Next::Retry(retry) => self.clock.sleep(retry),
                Next::GiveUp => return Ok(r),
            }
        }
    }
}

impl<K, A, C, S> KeyedLimiter<K, A, C, S>
where
    K: Hash + Eq,
    A: Shaping,
    C: Clock + Sleep,
    S: BuildHasher,
{
    /// Waits, on the limiter's clock ([`Sleep`]), until a request of `cost`
    /// units for `key` may proceed; see [`Bucket::acquire_blocking`].
    ///
    /// # Errors
    /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
    pub fn acquire_blocking<Q>(
        &self,
        key: &Q,
        cost: u64,
    ) -> Result<Reservation, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
    {
        loop {
            let r = self.reserve(key, cost, None)?;
            match next(&r) {
                Next::Proceed(wait) => {
                    if !wait.is_zero() {
                        self.clock.sleep(wait);
                    }
                    return Ok(r);
                }
                Next::Retry(retry) => self.clock.sleep(retry),
                Next::GiveUp => return Ok(r),
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub use self::tokio_impl::TokioClock;

#[cfg(feature = "tokio")]
mod tokio_impl {
    use super::{Next, next};

    use core::borrow::Borrow;
    use core::hash::{BuildHasher, Hash};
    use core::time::Duration;

    use ratelimit_core::{Clock, InsufficientCapacity, Reservation, Shaping};

    use crate::bucket::{Bucket, duration_ns};
    use crate::key::KeyBytes;
    use crate::keyed::KeyedLimiter;

    /// A clock reading tokio's time ([`tokio::time::Instant`]), in
    /// nanoseconds since it was made: what a limiter needs to agree with
    /// `acquire`'s sleeps when tokio's clock is paused in tests
    /// (`#[tokio::test(start_paused = true)]`). With real time it reads the
    /// OS monotonic clock.
    #[derive(Debug, Clone, Copy)]
    pub struct TokioClock {
        origin: tokio::time::Instant,
    }

    impl TokioClock {
        /// A clock whose origin is tokio's now.
        #[must_use]
        pub fn new() -> Self {
            Self {
                origin: tokio::time::Instant::now(),
            }
        }
    }

    impl Default for TokioClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Clock for TokioClock {
        fn now_ns(&self) -> u64 {
            duration_ns(self.origin.elapsed())
        }
    }

    /// Runs its closure when dropped, unless disarmed: the refund of a
    /// dropped `acquire`.
    struct OnDrop<F: FnOnce()>(Option<F>);

    impl<F: FnOnce()> OnDrop<F> {
        fn disarm(mut self) {
            self.0 = None;
        }
    }

    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }

    impl<A: Shaping, C: Clock> Bucket<A, C> {
        /// Waits (with `tokio::time::sleep`) until a request of `cost`
        /// units may proceed, and returns its admitted reservation; see
        /// [`acquire_blocking`](Self::acquire_blocking) for the loop, and
        /// the crate docs for cancellation: dropped while it sleeps an
        /// admitted wait, it refunds the reservation at once, exactly, if
        /// nothing was admitted after it.
        ///
        /// The limiter's clock should follow tokio's: the default
        /// [`MonotonicClock`](crate::MonotonicClock) does in real time; in
        /// tests on tokio's paused clock use a [`TokioClock`].
        ///
        /// # Errors
        /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
        pub async fn acquire(&self, cost: u64) -> Result<Reservation, InsufficientCapacity> {
            loop {
                let (r, receipt) = self.reserve_refundable(cost, None)?;
                match next(&r) {
                    Next::Proceed(wait) => {
                        self.sleep_admitted(wait, receipt).await;
                        return Ok(r);
                    }
                    Next::Retry(retry) => tokio::time::sleep(retry).await,
                    Next::GiveUp => return Ok(r),
                }
            }
        }

        /// Admitted only if the request can proceed within `max_wait`, and
        /// then waits; otherwise rejected at once, consuming nothing
        /// (`retry_after` as for [`reserve`](Self::reserve)). Dropped while
        /// it waits, it refunds as [`acquire`](Self::acquire) does.
        ///
        /// # Errors
        /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
        pub async fn acquire_with_max_wait(
            &self,
            cost: u64,
            max_wait: Duration,
        ) -> Result<Reservation, InsufficientCapacity> {
            let (r, receipt) = self.reserve_refundable(cost, Some(max_wait))?;
            if let Reservation::Admitted { wait, .. } = r {
                self.sleep_admitted(wait, receipt).await;
            }
            Ok(r)
        }

        async fn sleep_admitted(&self, wait: Duration, receipt: Option<crate::Receipt<A>>) {
            if wait.is_zero() {
                return;
            }
            let guard = OnDrop(receipt.map(|receipt| {
                move || {
                    let _ = self.refund(receipt);
                }
            }));
            tokio::time::sleep(wait).await;
            guard.disarm();
        }
    }

    impl<K, A, C, S> KeyedLimiter<K, A, C, S>
    where
        K: Hash + Eq,
        A: Shaping,
        C: Clock,
        S: BuildHasher,
    {
        /// Waits (with `tokio::time::sleep`) until a request of `cost`
        /// units for `key` may proceed; see [`Bucket::acquire`], whose
        /// cancellation guarantee it shares.
        ///
        /// # Errors
        /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
        pub async fn acquire<Q>(
            &self,
            key: &Q,
            cost: u64,
        ) -> Result<Reservation, InsufficientCapacity>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
        {
            loop {
                let (r, receipt) = self.reserve_with_receipt(key, cost, None)?;
                match next(&r) {
                    Next::Proceed(wait) => {
                        self.sleep_admitted(key, wait, receipt).await;
                        return Ok(r);
                    }
                    Next::Retry(retry) => tokio::time::sleep(retry).await,
                    Next::GiveUp => return Ok(r),
                }
            }
        }

        /// [`Bucket::acquire_with_max_wait`] for `key`.
        ///
        /// # Errors
        /// [`InsufficientCapacity`] when `cost` exceeds the capacity.
        pub async fn acquire_with_max_wait<Q>(
            &self,
            key: &Q,
            cost: u64,
            max_wait: Duration,
        ) -> Result<Reservation, InsufficientCapacity>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ToOwned<Owned = K> + KeyBytes + ?Sized,
        {
            let (r, receipt) = self.reserve_with_receipt(key, cost, Some(max_wait))?;
            if let Reservation::Admitted { wait, .. } = r {
                self.sleep_admitted(key, wait, receipt).await;
            }
            Ok(r)
        }

        async fn sleep_admitted<Q>(
            &self,
            key: &Q,
            wait: Duration,
            receipt: Option<crate::Receipt<A>>,
        ) where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            if wait.is_zero() {
                return;
            }
            let guard = OnDrop(receipt.map(|receipt| {
                move || {
                    let _ = self.refund(key, receipt);
                }
            }));
            tokio::time::sleep(wait).await;
            guard.disarm();
        }
    }
}
