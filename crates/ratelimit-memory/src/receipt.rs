//! [`Receipt`]: proof that a request was admitted, which gives its cost
//! back once through the limiter's `refund` (the downstream call failed,
//! the upload was cancelled, an `acquire` future was dropped while it
//! waited).
//!
//! A receipt is not `Clone`, and `refund` takes it by value: nothing is
//! refunded twice. It names the limiter (an id drawn at construction), the
//! key (its hash), the quota the admission was decided under (a keyed
//! limiter's epoch, or the key's own quota's version) and the state the
//! admission stored; `refund` gives the cost back only when all of them
//! still match and the algorithm can do it exactly
//! ([`Algorithm::refund_admission`]).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use ratelimit_core::Algorithm;

/// Proof of one admitted request, to give its cost back with the
/// limiter's `refund` ([`Bucket::refund`](crate::Bucket::refund),
/// [`KeyedLimiter::refund`](crate::KeyedLimiter::refund)).
///
/// Dropping a receipt keeps the cost consumed; `refund` consumes it, so
/// a request is refunded at most once. A refund is exact or does nothing:
///
/// - a bucket (token or leaky) is given back the cost only while the key
///   still holds the state this admission stored, that is while nothing
///   was admitted, refunded or rolled back on the key since: the state
///   then goes back to what it was before (never fuller than a fresh
///   bucket). Once another request has been admitted on top, that request
///   was decided with these units consumed, and a single state word
///   cannot tell how much of this admission is still ahead: giving it back
///   could admit more than the quota allows;
/// - a fixed or sliding window is given back the cost off the count of
///   the admission's window, whatever was admitted since (counts add up),
///   for as long as that window still counts;
/// - nothing is given back once the key's quota has changed since the
///   admission (a reconfiguration that reached the key, or a new quota of
///   its own).
pub struct Receipt<A: Algorithm> {
    /// The id of the limiter that admitted the request.
    pub(crate) owner: u64,
    /// The hash of the key (0 for a [`Bucket`](crate::Bucket)).
    pub(crate) hash: u64,
    /// The quota the admission was decided under.
    pub(crate) generation: Generation,
    /// The cost admitted.
    pub(crate) cost: u64,
    /// The state the admission stored.
    pub(crate) admitted: A::State,
}

/// Which quota a key's state is kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    /// A single [`Bucket`](crate::Bucket): its quota never changes.
    Fixed,
    /// A keyed limiter's quota at this epoch.
    Limiter(u64),
    /// The key's own quota, at this version.
    Own(u64),
}

impl<A: Algorithm> Receipt<A> {
    /// The cost this receipt gives back.
    #[must_use]
    pub fn cost(&self) -> u64 {
        self.cost
    }
}

impl<A: Algorithm> fmt::Debug for Receipt<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("cost", &self.cost)
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

/// A fresh id for a limiter, never given twice in a process. Not a loom
/// atomic on purpose: ids need uniqueness only, not a modelled order.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
