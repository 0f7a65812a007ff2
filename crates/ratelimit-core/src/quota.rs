//! [`Quota`]: a validated capacity and rate, with the derived GCRA
//! constants `T` (emission interval) and `τ` (tolerance).

use core::time::Duration;

use crate::error::ConfigError;
use crate::rate::Rate;

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
    /// `floor(2^64 / T)` for `T ≥ 2` (0 for `T = 1`): the division by `T`
    /// that every decision makes, as a multiplication.
    reciprocal: u64,
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
                reciprocal: if interval == 1 {
                    0
                } else {
                    ((1u128 << 64) / interval as u128) as u64
                },
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

    /// `floor(x / T)`, exactly, without a division instruction (the
    /// hottest instruction of a decision when profiled).
    ///
    /// With `m = floor(2^64 / T)`, `q = floor(x × m / 2^64)` satisfies
    /// `x/T − 1 < q ≤ x/T`, so `q` is `floor(x / T)` or one less, and one
    /// comparison of the remainder corrects it.
    #[inline]
    const fn divide(&self, x: u64) -> u64 {
        if self.interval == 1 {
            return x;
        }
        let q = ((x as u128 * self.reciprocal as u128) >> 64) as u64;
        // q ≤ x / T, so q × T ≤ x: no overflow.
        if x - q * self.interval >= self.interval {
            q + 1
        } else {
            q
        }
    }

    /// Nanoseconds until a bucket whose state is `tat` is back to its initial
    /// state (full token bucket, empty leaky bucket): `max(0, tat − now)`.
    #[must_use]
    #[inline]
    pub const fn reset_after_ns(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_by_reciprocal_is_exact() {
        let intervals = [
            1,
            2,
            3,
            7,
            10,
            333_333_334,
            1_000_000_000,
            (1 << 32) + 1,
            u64::MAX / 3,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for t in intervals {
            let q = Quota::new(1, Rate::from_interval(Duration::from_nanos(t))).unwrap();
            for probe in [
                0,
                1,
                t - 1,
                t,
                t.wrapping_add(1),
                t.wrapping_mul(2).wrapping_sub(1),
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(q.divide(probe), probe / t, "{probe} / {t}");
            }
            for _ in 0..10_000 {
                // xorshift: dividends spread over the whole range.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for dividend in [x, x >> 20, x >> 40] {
                    assert_eq!(q.divide(dividend), dividend / t, "{dividend} / {t}");
                }
            }
        }
    }
}
