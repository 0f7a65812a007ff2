//! [`Strategy`]: how a key's state carries over when the quota that applies
//! to it changes while it runs (bucket4j's `TokensInheritanceStrategy`).
//! The conversion itself is [`Quota::convert`](crate::Quota::convert) for
//! the buckets; a window keeps its counts.

use core::fmt;
use core::str::FromStr;

/// How a bucket's consumption carries over to a new quota.
///
/// Its [`FromStr`] parses the names of the replay format and the command
/// line: `keep-consumed` (the default), `keep-available`, `proportional`,
/// `reset`.
///
/// ```
/// use ratelimit_core::Strategy;
///
/// assert_eq!(Strategy::default(), Strategy::KeepConsumed);
/// assert_eq!("proportional".parse(), Ok(Strategy::Proportional));
/// assert_eq!(Strategy::KeepAvailable.name(), "keep-available");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// The units in use stay in use (a customer who used 4 of 10 has used
    /// 4 of 20 after an upgrade). The default: no key gains a burst.
    #[default]
    KeepConsumed,
    /// The units still available stay available, at most the new capacity
    /// (a customer who had 6 left still has 6 left).
    KeepAvailable,
    /// The same fraction of the bucket stays in use (40 % of 10 becomes
    /// 40 % of 20).
    Proportional,
    /// Every key starts afresh: full token buckets, empty leaky buckets.
    Reset,
}

impl Strategy {
    /// All four, in the order of the docs.
    pub const ALL: [Self; 4] = [
        Self::KeepConsumed,
        Self::KeepAvailable,
        Self::Proportional,
        Self::Reset,
    ];

    /// The name used in the replay format and on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::KeepConsumed => "keep-consumed",
            Self::KeepAvailable => "keep-available",
            Self::Proportional => "proportional",
            Self::Reset => "reset",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy name other than the four of [`Strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownStrategy;

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown strategy: expected keep-consumed, keep-available, proportional or reset",
        )
    }
}

impl core::error::Error for UnknownStrategy {}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or(UnknownStrategy)
    }
}
