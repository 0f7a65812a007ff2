//! [`Divisor`]: division by a constant as a multiplication, exact. The
//! division by `T` (buckets) or `W` (windows) is the costliest instruction
//! of a decision when profiled; the divisor is known when the limiter is
//! built, so its reciprocal is computed once. [`duration`] does the same
//! for the nanoseconds of a decision's `Duration`s.

use core::time::Duration;

/// A `u64` divisor `d ≥ 1` with `m = ⌊2^64 / d⌋` (0 for `d = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Divisor {
    d: u64,
    reciprocal: u64,
}

impl Divisor {
    /// The divisor `d`; `d` must be at least 1.
    pub(crate) const fn new(d: u64) -> Self {
        Self {
            d,
            reciprocal: if d <= 1 {
                0
            } else {
                ((1u128 << 64) / d as u128) as u64
            },
        }
    }

    /// `d` itself.
    #[inline]
    pub(crate) const fn get(&self) -> u64 {
        self.d
    }

    /// `⌊x / d⌋`, exactly, without a division instruction.
    ///
    /// With `m = ⌊2^64 / d⌋`, `q = ⌊x × m / 2^64⌋` satisfies
    /// `x/d − 1 < q ≤ x/d`, so `q` is `⌊x / d⌋` or one less, and one
    /// comparison of the remainder corrects it.
    #[inline]
    pub(crate) const fn divide(&self, x: u64) -> u64 {
        if self.d <= 1 {
            return x;
        }
        let q = ((x as u128 * self.reciprocal as u128) >> 64) as u64;
        // q ≤ x / d, so q × d ≤ x: no overflow.
        if x - q * self.d >= self.d { q + 1 } else { q }
    }
}

#[cfg(any(test, not(target_pointer_width = "64")))]
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One second, as a divisor.
#[cfg(any(test, not(target_pointer_width = "64")))]
const SECOND: Divisor = Divisor::new(NANOS_PER_SECOND);

/// `Duration::from_nanos(ns)`. On a 64-bit target that is the standard
/// library's own, whose division by the constant 10^9 the compiler turns
/// into a multiplication and a shift (five instructions, no correction
/// step). On a 32-bit target (Cortex-M) `from_nanos` calls the runtime's
/// 64-bit division, which is slow there and, on thumbv7em, 932 bytes of
/// code (more than a whole token-bucket check, `cargo xtask embedded`), so
/// there the division goes through [`SECOND`]'s reciprocal instead.
#[inline]
pub(crate) const fn duration(ns: u64) -> Duration {
    #[cfg(target_pointer_width = "64")]
    {
        Duration::from_nanos(ns)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        duration_by_reciprocal(ns)
    }
}

/// [`duration`] on a 32-bit target: `Duration::from_nanos` with the
/// division by 10^9 done through [`SECOND`]'s reciprocal.
#[cfg(any(test, not(target_pointer_width = "64")))]
#[inline]
const fn duration_by_reciprocal(ns: u64) -> Duration {
    let secs = SECOND.divide(ns);
    // `divide` is exact, so this is below 10^9; saying so with a `min`
    // lets the compiler drop `Duration::new`'s carry and its panic path.
    let nanos = (ns - secs * NANOS_PER_SECOND) as u32;
    let nanos = if nanos < NANOS_PER_SECOND as u32 {
        nanos
    } else {
        NANOS_PER_SECOND as u32 - 1
    };
    Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_nanoseconds_are_exact() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let edges = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            5 * NANOS_PER_SECOND - 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for ns in edges.into_iter().chain((0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        })) {
            assert_eq!(duration_by_reciprocal(ns), Duration::from_nanos(ns), "{ns}");
            assert_eq!(duration(ns), Duration::from_nanos(ns), "{ns}");
        }
    }

    #[test]
    fn division_by_reciprocal_is_exact() {
        let divisors = [
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
        for d in divisors {
            let div = Divisor::new(d);
            for probe in [
                0,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                d.wrapping_mul(2).wrapping_sub(1),
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(div.divide(probe), probe / d, "{probe} / {d}");
            }
            for _ in 0..10_000 {
                // xorshift: dividends spread over the whole range.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for dividend in [x, x >> 20, x >> 40] {
                    assert_eq!(div.divide(dividend), dividend / d, "{dividend} / {d}");
                }
            }
        }
    }
}
