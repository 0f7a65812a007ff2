//! [`Quota`]: a validated capacity and rate, with the derived GCRA
//! constants `T` (emission interval) and `τ` (tolerance).

use core::time::Duration;

use crate::divisor::Divisor;
use crate::error::ConfigError;
use crate::rate::Rate;
use crate::reconfigure::Strategy;

/// A capacity `C` and a rate, checked once so that no decision can overflow.
///
/// `T` is the rate's emission interval in whole nanoseconds (rounded up)
/// and `τ = C × T` the burst tolerance: the longest a bucket can take to
/// return to its initial state.
///
/// ```
/// use ratelimit_core::{ConfigError, Quota, Rate};
///
/// let quota = Quota::new(10, Rate::per_second(2))?;
/// assert_eq!(quota.interval_ns(), 500_000_000);
/// assert_eq!(quota.tolerance_ns(), 5_000_000_000);
/// assert_eq!(Quota::new(0, Rate::per_second(2)), Err(ConfigError::ZeroCapacity));
/// assert_eq!(Quota::new(u64::MAX, Rate::per_second(2)), Err(ConfigError::ToleranceOverflow));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    capacity: u64,
    interval: u64,
    tolerance: u64,
    /// `T` again, with its reciprocal: the division by `T` that every
    /// decision makes, as a multiplication.
    divisor: Divisor,
}

impl Quota {
    /// A quota of `capacity` units, refilled or drained at `rate`.
    pub const fn new(capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        if capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        let interval = match rate.interval_ns() {
            Ok(interval) => interval,
            Err(e) => return Err(e),
        };
        match capacity.checked_mul(interval) {
            Some(tolerance) => Ok(Self {
                capacity,
                interval,
                tolerance,
                divisor: Divisor::new(interval),
            }),
            None => Err(ConfigError::ToleranceOverflow),
        }
    }

    /// The capacity `C`: the burst size of a token bucket, the queue length
    /// of a leaky bucket.
    #[must_use]
    pub const fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The emission interval `T` in nanoseconds: the time one unit takes.
    #[must_use]
    pub const fn interval_ns(&self) -> u64 {
        self.interval
    }

    /// The emission interval `T`.
    #[must_use]
    pub const fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The tolerance `τ = C × T` in nanoseconds.
    #[must_use]
    pub const fn tolerance_ns(&self) -> u64 {
        self.tolerance
    }

    /// Whole units available at `now` in a bucket whose state is `tat`:
    /// `max(0, floor((τ − max(0, tat − now)) / T))`.
    #[must_use]
    #[inline]
    pub const fn remaining(&self, tat: u64, now: u64) -> u64 {
        let used = tat.saturating_sub(now);
        if used >= self.tolerance {
            0
        } else {
            self.divide(self.tolerance - used)
        }
    }

    /// `floor(x / T)`, exactly.
    #[inline]
    const fn divide(&self, x: u64) -> u64 {
        self.divisor.divide(x)
    }

    /// Nanoseconds until a bucket whose state is `tat` is back to its initial
    /// state (full token bucket, empty leaky bucket): `max(0, tat − now)`.
    #[must_use]
    #[inline]
    pub const fn reset_after_ns(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }

    /// A bucket's state `tat` under this quota, converted at time `at` to
    /// the quota `to` with `strategy` (docs/semantics.md, "Changing a quota
    /// while it runs"). With `d = tat − at`: a bucket back to its initial
    /// state (`d ≤ 0`) is unchanged; otherwise `tat' = at + d'` where, every
    /// division rounded up (stricter, never looser),
    ///
    /// - `KeepConsumed`: `d' = ⌈d × T' / T⌉` (the units in use stay in use);
    /// - `KeepAvailable`: `d' = max(0, ⌈((C' − C) × T + d) × T' / T⌉)` (the
    ///   units still available stay available, at most `C'`);
    /// - `Proportional`: `d' = ⌈d × τ' / τ⌉` (the same fraction in use);
    /// - `Reset`: a fresh bucket (`tat' = 0`).
    ///
    /// `tat` is a time, so the result is the same whether the conversion is
    /// made at `at` or later, lazily, as long as it is computed with `at`.
    /// A result beyond `u64::MAX` saturates there (the bucket then refuses
    /// everything until the end of time: stricter, never looser).
    ///
    /// ```
    /// use ratelimit_core::{Quota, Rate, Strategy};
    ///
    /// let old = Quota::new(10, Rate::per_second(10))?; // T = 100 ms
    /// let new = Quota::new(20, Rate::per_second(5))?; //  T = 200 ms
    /// let at = 1_000_000_000;
    /// let tat = at + 400_000_000; // 4 units in use
    /// // Keep the 4 units in use: 4 × 200 ms.
    /// assert_eq!(old.convert(tat, at, &new, Strategy::KeepConsumed), at + 800_000_000);
    /// // Keep the 6 units available: 20 − 6 = 14 in use.
    /// assert_eq!(old.convert(tat, at, &new, Strategy::KeepAvailable), at + 2_800_000_000);
    /// // 40 % in use stays 40 %: 8 units.
    /// assert_eq!(old.convert(tat, at, &new, Strategy::Proportional), at + 1_600_000_000);
    /// assert_eq!(old.convert(tat, at, &new, Strategy::Reset), 0);
    /// # Ok::<(), ratelimit_core::ConfigError>(())
    /// ```
    #[must_use]
    pub const fn convert(&self, tat: u64, at: u64, to: &Quota, strategy: Strategy) -> u64 {
        if tat <= at {
            return tat;
        }
        let d = (tat - at) as u128;
        let (t, t2) = (self.interval as u128, to.interval as u128);
        let d2 = match strategy {
            Strategy::KeepConsumed => ceil_div(d * t2, t),
            Strategy::KeepAvailable => {
                // ⌈((C' − C) × T + d) × T' / T⌉ = (C' − C) × T' + ⌈d × T' / T⌉,
                // as (C' × T' + ⌈d × T' / T⌉) − C × T' in unsigned terms:
                // C' × T' = τ' < 2^64 and C × T' < 2^128 never overflow; the
                // sum saturates only far beyond u64, where the result does.
                let up = (to.tolerance as u128).saturating_add(ceil_div(d * t2, t));
                up.saturating_sub(self.capacity as u128 * t2)
            }
            Strategy::Proportional => {
                // d < 2^64 and τ' < 2^64: the product fits in u128.
                ceil_div(d * to.tolerance as u128, self.tolerance as u128)
            }
            Strategy::Reset => return 0,
        };
        let converted = at as u128 + d2;
        if converted > u64::MAX as u128 {
            u64::MAX
        } else {
            converted as u64
        }
    }
}

/// `⌈a / b⌉` for `b > 0`.
const fn ceil_div(a: u128, b: u128) -> u128 {
    a / b + (a % b != 0) as u128
}
