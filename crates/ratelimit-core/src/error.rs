//! The two errors of the core: a quota that cannot be built, and a request
//! that can never succeed. A denial is not an error: it is a [`Decision`].
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
