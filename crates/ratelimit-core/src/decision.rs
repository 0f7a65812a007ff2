//! The answers: [`Decision`] for policing (`check`), [`Reservation`] for
//! shaping (`reserve`), and the [`Reason`] behind each.

use core::time::Duration;

/// Which rule produced a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The quota decided: the ordinary path of every backend.
    Quota,
    /// A bounded in-memory limiter had no room for a key it had never seen,
    /// and could free none without forgetting consumption: the request is
    /// denied rather than risk admitting more than the quota.
    KeyTableFull,
    /// The key is longer than the in-memory limiter's bound on key bytes
    /// (its `max_key_len`): refused without being stored, so that the
    /// memory a flood of long keys can take stays bounded. It never
    /// succeeds: `retry_after` is `None`.
    KeyTooLong,
    /// The backend (Redis) failed and the limiter's failure policy is to
    /// allow: the request was admitted without being counted anywhere.
    FailOpen,
    /// The backend (Redis) failed and the limiter's failure policy is to
    /// deny: the request was refused without consulting the quota.
    FailClosed,
    /// The backend (Redis) failed and a local in-memory limiter with the
    /// same quota decided instead; its state is this process's alone.
    Fallback,
    /// The backend (Redis) was not asked: its circuit breaker is open after
    /// consecutive failures, and the limiter's failure policy answered at
    /// once. The other fields are that policy's answer (allow, deny, or the
    /// local limiter's decision under a fallback policy), as for
    /// [`FailOpen`](Self::FailOpen), [`FailClosed`](Self::FailClosed) and
    /// [`Fallback`](Self::Fallback), whose reasons mark a call that was
    /// tried and failed.
    CircuitOpen,
}

/// The answer to `check(key, cost)`: allowed or denied now, and what is left.
///
/// The fields are enough to fill the HTTP `RateLimit`, `RateLimit-Policy`
/// and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Decision {
    /// Whether the request may proceed now.
    pub allowed: bool,
    /// Whole units still available after this decision: tokens left in a
    /// token bucket, free queue slots in a leaky bucket, 0 while a
    /// reservation holds the bucket in debt.
    pub remaining: u64,
    /// `None` when allowed. When denied, the earliest wait after which the
    /// same request would be allowed if nothing else consumes.
    pub retry_after: Option<Duration>,
    /// The time until the bucket is back to its initial state (full token
    /// bucket, empty leaky bucket).
    pub reset_after: Duration,
    /// The capacity `C`.
    pub limit: u64,
    /// Which rule produced this decision.
    pub reason: Reason,
}

/// The answer to `reserve(key, cost, max_wait)`: admitted, to proceed after
/// a wait, or rejected, with the wait after which a retry would be admitted.
///
/// An enum so that a rejection cannot be mistaken for "go ahead after a
/// wait of zero": the wait exists only on [`Admitted`](Self::Admitted).
///
/// ```
/// # use core::time::Duration;
/// # use ratelimit_core::{Reason, Reservation};
/// # fn sleep(_: Duration) {}
/// # let reservation = Reservation::Rejected {
/// #     retry_after: Some(Duration::from_millis(200)),
/// #     reset_after: Duration::from_millis(400),
/// #     limit: 1,
/// #     reason: Reason::Quota,
/// # };
/// match reservation {
///     Reservation::Admitted { wait, .. } => sleep(wait), // then proceed
///     Reservation::Rejected { retry_after, .. } => {
///         // Not admitted: nothing was consumed.
///         assert_eq!(retry_after, Some(Duration::from_millis(200)));
///     }
/// }
/// assert_eq!(reservation.wait(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Reservation {
    /// Admitted: the cost is consumed and the caller proceeds after `wait`.
    Admitted {
        /// How long the caller must wait before proceeding (zero: at once).
        wait: Duration,
        /// The time until the bucket is back to its initial state, after
        /// this reservation.
        reset_after: Duration,
        /// The capacity `C`.
        limit: u64,
        /// Which rule produced this answer.
        reason: Reason,
    },
    /// Rejected: nothing was consumed.
    Rejected {
        /// The wait after which the same reservation would be admitted if
        /// nothing else consumes; `None` when it never can be (the cost
        /// exceeds what the backend can ever hold, or time has run out).
        retry_after: Option<Duration>,
        /// The time until the bucket is back to its initial state.
        reset_after: Duration,
        /// The capacity `C`.
        limit: u64,
        /// Which rule produced this answer.
        reason: Reason,
    },
}

impl Reservation {
    /// Whether the reservation was admitted (and its cost consumed).
    #[must_use]
    pub const fn is_admitted(&self) -> bool {
        matches!(self, Self::Admitted { .. })
    }

    /// The wait before proceeding, when admitted; `None` when rejected.
    #[must_use]
    pub const fn wait(&self) -> Option<Duration> {
        match self {
            Self::Admitted { wait, .. } => Some(*wait),
            Self::Rejected { .. } => None,
        }
    }

    /// When rejected, the wait after which the same reservation would be
    /// admitted if nothing else consumes; `None` when admitted or never.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Admitted { .. } => None,
            Self::Rejected { retry_after, .. } => *retry_after,
        }
    }

    /// The time until the bucket is back to its initial state.
    #[must_use]
    pub const fn reset_after(&self) -> Duration {
        match self {
            Self::Admitted { reset_after, .. } | Self::Rejected { reset_after, .. } => *reset_after,
        }
    }

    /// The capacity `C`.
    #[must_use]
    pub const fn limit(&self) -> u64 {
        match self {
            Self::Admitted { limit, .. } | Self::Rejected { limit, .. } => *limit,
        }
    }

    /// Which rule produced this answer.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        match self {
            Self::Admitted { reason, .. } | Self::Rejected { reason, .. } => *reason,
        }
    }
}

/// The answer of `allow_request(key)`, with the field names of the Python
/// system this project replaces: a [`Decision`] for a cost of one.
///
/// ```
/// # use core::time::Duration;
/// # use ratelimit_core::{AllowResult, Decision, Reason};
/// let decision = Decision {
///     allowed: true,
///     remaining: 9,
///     retry_after: None,
///     reset_after: Duration::from_millis(500),
///     limit: 10,
///     reason: Reason::Quota,
/// };
/// let result = AllowResult::from(decision);
/// assert_eq!(result.tokens_remaining, 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct AllowResult {
    /// Whether the request may proceed now.
    pub allowed: bool,
    /// Whole units still available: tokens for a token bucket, free queue
    /// slots for a leaky bucket.
    pub tokens_remaining: u64,
    /// `None` when allowed; when denied, how long until a retry would be
    /// allowed.
    pub retry_after: Option<Duration>,
    /// The time until the bucket is back to its initial state.
    pub reset_after: Duration,
    /// The capacity.
    pub limit: u64,
    /// Which rule produced this answer.
    pub reason: Reason,
}

impl From<Decision> for AllowResult {
    fn from(d: Decision) -> Self {
        Self {
            allowed: d.allowed,
            tokens_remaining: d.remaining,
            retry_after: d.retry_after,
            reset_after: d.reset_after,
            limit: d.limit,
            reason: d.reason,
        }
    }
}
