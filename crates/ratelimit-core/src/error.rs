//! The errors of the core: a quota that cannot be built, a request that can
//! never succeed, and a name that is not an algorithm's. A denial is not an
//! error: it is a [`Decision`].
//!
//! [`Decision`]: crate::Decision

use core::fmt;

/// Why a [`Quota`](crate::Quota) or a [`Rate`](crate::Rate) is not usable.
///
/// Every variant is reported when the limiter is built, never at decision
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity (burst size, queue length) is zero.
    ZeroCapacity,
    /// The rate is zero, negative, NaN or infinite.
    InvalidRate,
    /// The rate's text is not a decimal number such as `2`, `0.5` or `2.5e6`,
    /// or has more than 19 significant digits.
    RateSyntax,
    /// The rate is so high that one unit would be emitted in less than a
    /// nanosecond, the resolution of every clock here.
    RateTooHigh,
    /// The rate is so low that the interval between two units does not fit
    /// in 64 bits of nanoseconds (about 584 years).
    RateTooLow,
    /// `capacity × interval` (the burst tolerance) does not fit in 64 bits of
    /// nanoseconds.
    ToleranceOverflow,
    /// A window algorithm's window is zero.
    ZeroWindow,
    /// A window algorithm's window does not fit in 64 bits of nanoseconds
    /// (about 584 years).
    WindowTooLong,
    /// A sliding window's limit is 2^32 or more: its two counts must each
    /// fit in 32 bits, so that a key's state is one 128-bit word.
    LimitTooLarge,
    /// A window algorithm was given a rate: it takes a limit per window.
    NeedsWindow,
    /// A bucket was given a window: it takes a capacity and a rate.
    NeedsRate,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroCapacity => "capacity must be at least 1",
            Self::InvalidRate => "rate must be a finite number greater than zero",
            Self::RateSyntax => {
                "rate must be a decimal number such as 2, 0.5 or 2.5e6 (at most 19 significant digits)"
            }
            Self::RateTooHigh => "rate is above one unit per nanosecond",
            Self::RateTooLow => "rate is below one unit per 2^64 nanoseconds (about 584 years)",
            Self::ToleranceOverflow => {
                "capacity times the emission interval overflows 2^64 nanoseconds (about 584 years)"
            }
            Self::ZeroWindow => "window must be at least 1 ns",
            Self::WindowTooLong => "window is longer than 2^64 nanoseconds (about 584 years)",
            Self::LimitTooLarge => {
                "a sliding window's limit must be below 2^32 (4 294 967 296) per window"
            }
            Self::NeedsWindow => "a window algorithm takes a window (such as 60s), not a rate",
            Self::NeedsRate => "a bucket takes a rate (units per second), not a window",
        })
    }
}

impl core::error::Error for ConfigError {}

/// The request costs more than the bucket's capacity: it can never succeed,
/// however long the caller waits. The bucket is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InsufficientCapacity {
    /// The cost that was asked for.
    pub cost: u64,
    /// The bucket's capacity, which the cost exceeds.
    pub capacity: u64,
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cost {} exceeds the capacity {}: the request can never succeed",
            self.cost, self.capacity
        )
    }
}

impl core::error::Error for InsufficientCapacity {}

/// An algorithm name other than `token-bucket`, `leaky-bucket`,
/// `fixed-window` and `sliding-window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownAlgorithm;

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown algorithm: expected token-bucket, leaky-bucket, fixed-window or sliding-window",
        )
    }
}

impl core::error::Error for UnknownAlgorithm {}
