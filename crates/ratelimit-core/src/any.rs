//! [`AnyAlgorithm`] and [`AnyBucket`]: an algorithm chosen at run time (from
//! a command line, a configuration file, a replay scenario), as one type,
//! so that callers match on the kind in one place instead of in every one.

use core::time::Duration;

use crate::algorithm::{Algorithm, AlgorithmKind, Shaping, Verdict};
use crate::decision::Reservation;
use crate::error::{ConfigError, InsufficientCapacity};
use crate::gcra::{LeakyBucket, TokenBucket};
use crate::quota::Quota;
use crate::rate::Rate;
use crate::reconfigure::Strategy;
use crate::window::{FixedWindow, SlidingWindow};

/// Any of the four algorithms, chosen at run time. It polices like the
/// algorithm it holds; its state is a `u128` (a bucket's `tat` in the low
/// 64 bits, a window's word as it is), 0 for a key never seen.
///
/// Shaping needs a bucket: [`as_bucket`](Self::as_bucket) gives one when
/// the algorithm is one.
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::{Algorithm, AlgorithmKind, AnyAlgorithm, Rate};
///
/// let kind: AlgorithmKind = "fixed-window".parse()?;
/// let any = AnyAlgorithm::with_window(kind, 10, Duration::from_secs(1))?;
/// assert_eq!(any.kind(), AlgorithmKind::FixedWindow);
/// assert!(any.as_bucket().is_none());
/// assert!(any.check(0, 0, 10)?.decision.allowed);
///
/// let bucket = AnyAlgorithm::with_rate("leaky-bucket".parse()?, 5, Rate::per_second(2))?;
/// assert!(bucket.as_bucket().is_some());
/// assert!(AnyAlgorithm::with_rate(kind, 5, Rate::per_second(2)).is_err());
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// Exhaustive on purpose: a new algorithm must be handled by every backend,
// and the compiler points at each match that does not.
pub enum AnyAlgorithm {
    /// A [`TokenBucket`].
    TokenBucket(TokenBucket),
    /// A [`LeakyBucket`].
    LeakyBucket(LeakyBucket),
    /// A [`FixedWindow`].
    FixedWindow(FixedWindow),
    /// A [`SlidingWindow`].
    SlidingWindow(SlidingWindow),
}

impl AnyAlgorithm {
    /// A bucket of `capacity` units at `rate`.
    ///
    /// # Errors
    /// The quota's [`ConfigError`], or [`ConfigError::NeedsWindow`] when
    /// `kind` is a window algorithm.
    pub fn with_rate(kind: AlgorithmKind, capacity: u64, rate: Rate) -> Result<Self, ConfigError> {
        let quota = Quota::new(capacity, rate);
        match kind {
            AlgorithmKind::TokenBucket => Ok(Self::TokenBucket(TokenBucket::new(quota?))),
            AlgorithmKind::LeakyBucket => Ok(Self::LeakyBucket(LeakyBucket::new(quota?))),
            AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow => {
                Err(ConfigError::NeedsWindow)
            }
        }
    }

    /// A window algorithm of `limit` units per `window`.
    ///
    /// # Errors
    /// The window's [`ConfigError`], or [`ConfigError::NeedsRate`] when
    /// `kind` is a bucket.
    pub fn with_window(
        kind: AlgorithmKind,
        limit: u64,
        window: Duration,
    ) -> Result<Self, ConfigError> {
        match kind {
            AlgorithmKind::FixedWindow => FixedWindow::new(limit, window).map(Self::FixedWindow),
            AlgorithmKind::SlidingWindow => {
                SlidingWindow::new(limit, window).map(Self::SlidingWindow)
            }
            AlgorithmKind::TokenBucket | AlgorithmKind::LeakyBucket => Err(ConfigError::NeedsRate),
        }
    }

    /// The bucket, when this is one: the algorithms that can shape.
    #[must_use]
    pub const fn as_bucket(&self) -> Option<AnyBucket> {
        match *self {
            Self::TokenBucket(b) => Some(AnyBucket::TokenBucket(b)),
            Self::LeakyBucket(b) => Some(AnyBucket::LeakyBucket(b)),
            Self::FixedWindow(_) | Self::SlidingWindow(_) => None,
        }
    }

    /// The bucket's quota, when this is a bucket.
    #[must_use]
    pub const fn quota(&self) -> Option<&Quota> {
        match self {
            Self::TokenBucket(b) => Some(b.quota()),
            Self::LeakyBucket(b) => Some(b.quota()),
            Self::FixedWindow(_) | Self::SlidingWindow(_) => None,
        }
    }

    /// The window `W`, when this is a window algorithm.
    #[must_use]
    pub const fn window(&self) -> Option<Duration> {
        match self {
            Self::FixedWindow(w) => Some(w.window()),
            Self::SlidingWindow(w) => Some(w.window()),
            Self::TokenBucket(_) | Self::LeakyBucket(_) => None,
        }
    }
}

/// Forwards one method of [`Algorithm`] to the algorithm held, converting
/// the state: a bucket's `u64` sits in the low bits of the `u128`.
macro_rules! forward {
    ($self:ident, $a:ident => $bucket:expr, $window:expr) => {
        match *$self {
            AnyAlgorithm::TokenBucket($a) => $bucket,
            AnyAlgorithm::LeakyBucket($a) => $bucket,
            AnyAlgorithm::FixedWindow($a) => $window,
            AnyAlgorithm::SlidingWindow($a) => $window,
        }
    };
}

/// A bucket's `tat` from the `u128` state of [`AnyAlgorithm`] (its low 64
/// bits: the state of a bucket never has more).
#[inline]
const fn tat(state: u128) -> u64 {
    state as u64
}

impl Algorithm for AnyAlgorithm {
    type State = u128;

    fn kind(&self) -> AlgorithmKind {
        forward!(self, a => a.kind(), a.kind())
    }

    fn limit(&self) -> u64 {
        forward!(self, a => a.limit(), a.limit())
    }

    fn period_ns(&self) -> u64 {
        forward!(self, a => a.period_ns(), a.period_ns())
    }

    fn check_verdict(
        &self,
        state: u128,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Self>, InsufficientCapacity> {
        forward!(self,
            a => a.check_verdict(tat(state), now, cost).map(|v| v.map(*self, u128::from)),
            a.check_verdict(state, now, cost).map(|v| v.map(*self, |s| s)))
    }

    fn remaining(&self, state: u128, now: u64) -> u64 {
        forward!(self, a => a.remaining(tat(state), now), a.remaining(state, now))
    }

    fn reset_after_ns(&self, state: u128, now: u64) -> u64 {
        forward!(self, a => a.reset_after_ns(tat(state), now), a.reset_after_ns(state, now))
    }

    fn expires_at(&self, state: u128) -> u64 {
        forward!(self, a => a.expires_at(tat(state)), a.expires_at(state))
    }

    /// Converts between two quotas of the same algorithm; a change of
    /// algorithm starts every key afresh.
    fn convert(&self, state: u128, at: u64, to: &Self, strategy: Strategy) -> u128 {
        match (self, to) {
            (Self::TokenBucket(a), Self::TokenBucket(b)) => {
                u128::from(a.convert(tat(state), at, b, strategy))
            }
            (Self::LeakyBucket(a), Self::LeakyBucket(b)) => {
                u128::from(a.convert(tat(state), at, b, strategy))
            }
            (Self::FixedWindow(a), Self::FixedWindow(b)) => a.convert(state, at, b, strategy),
            (Self::SlidingWindow(a), Self::SlidingWindow(b)) => a.convert(state, at, b, strategy),
            _ => 0,
        }
    }

    fn to_any(&self) -> AnyAlgorithm {
        *self
    }

    fn refund_admission(&self, state: u128, now: u64, cost: u64, admitted: u128) -> Option<u128> {
        forward!(self,
            a => a.refund_admission(tat(state), now, cost, tat(admitted)).map(u128::from),
            a.refund_admission(state, now, cost, admitted))
    }

    fn roll_back(
        &self,
        state: u128,
        now: u64,
        cost: u64,
        before: u128,
        admitted: u128,
    ) -> Option<u128> {
        forward!(self,
            a => a.roll_back(tat(state), now, cost, tat(before), tat(admitted)).map(u128::from),
            a.roll_back(state, now, cost, before, admitted))
    }
}

/// Either bucket, chosen at run time: polices and shapes like the bucket
/// it holds, over the same `u64` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnyBucket {
    /// A [`TokenBucket`].
    TokenBucket(TokenBucket),
    /// A [`LeakyBucket`].
    LeakyBucket(LeakyBucket),
}

macro_rules! forward_bucket {
    ($self:ident, $a:ident => $e:expr) => {
        match *$self {
            AnyBucket::TokenBucket($a) => $e,
            AnyBucket::LeakyBucket($a) => $e,
        }
    };
}

impl Algorithm for AnyBucket {
    type State = u64;

    fn kind(&self) -> AlgorithmKind {
        forward_bucket!(self, a => a.kind())
    }

    fn limit(&self) -> u64 {
        forward_bucket!(self, a => a.limit())
    }

    fn period_ns(&self) -> u64 {
        forward_bucket!(self, a => a.period_ns())
    }

    fn check_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Self>, InsufficientCapacity> {
        forward_bucket!(self, a => a.check_verdict(tat, now, cost).map(|v| v.map(*self, |s| s)))
    }

    fn remaining(&self, tat: u64, now: u64) -> u64 {
        forward_bucket!(self, a => a.remaining(tat, now))
    }

    fn reset_after_ns(&self, tat: u64, now: u64) -> u64 {
        forward_bucket!(self, a => a.reset_after_ns(tat, now))
    }

    fn expires_at(&self, tat: u64) -> u64 {
        tat
    }

    /// Converts between the two quotas; a change between token and leaky
    /// bucket keeps `tat` under the same rule, since both read it alike.
    fn convert(&self, tat: u64, at: u64, to: &Self, strategy: Strategy) -> u64 {
        self.quota().convert(tat, at, to.quota(), strategy)
    }

    fn to_any(&self) -> AnyAlgorithm {
        forward_bucket!(self, a => a.to_any())
    }

    fn refund_admission(&self, tat: u64, now: u64, cost: u64, admitted: u64) -> Option<u64> {
        forward_bucket!(self, a => a.refund_admission(tat, now, cost, admitted))
    }

    fn roll_back(&self, tat: u64, now: u64, cost: u64, before: u64, admitted: u64) -> Option<u64> {
        forward_bucket!(self, a => a.roll_back(tat, now, cost, before, admitted))
    }
}

impl Shaping for AnyBucket {
    fn quota(&self) -> &Quota {
        match self {
            Self::TokenBucket(b) => b.quota(),
            Self::LeakyBucket(b) => b.quota(),
        }
    }

    fn reserve_verdict(
        &self,
        tat: u64,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Verdict<Self, Reservation>, InsufficientCapacity> {
        forward_bucket!(self, a => a
            .reserve_verdict(tat, now, cost, max_wait_ns)
            .map(|v| v.map(*self, |s| s)))
    }
}
