//! [`RedisReceipt`]: proof of one admission by a Redis limiter's
//! refundable check, which gives its cost back once through `refund`.

use crate::script::Admitted;

/// Proof of one admitted request of a [`RedisLimiter`](crate::RedisLimiter)
/// (from `check_refundable`), to give its cost back with `refund` when the
/// work it paid for did not happen (the downstream call failed, the upload
/// was cancelled).
///
/// Not `Clone`, and `refund` takes it by value: nothing is refunded twice
/// by one process. A refund is exact or does nothing, whichever process
/// admitted what since:
///
/// - a bucket is given the cost back only while its key still holds the
///   state this admission stored (`cancel.lua` compares it), that is while
///   nothing was admitted or refunded on the key since; the state then goes
///   back to what it was before, never fuller than a fresh bucket. Once
///   another request was admitted on top, that request was decided with
///   these units consumed, and giving them back could admit more than the
///   quota allows;
/// - a fixed or sliding window is given the cost back off the count of
///   the admission's window, whatever was admitted since (counts add up),
///   while that window still counts.
///
/// Dropping a receipt keeps the cost consumed.
pub struct RedisReceipt {
    /// The id of the limiter that admitted the request.
    pub(crate) owner: u64,
    /// The Redis key of the admission.
    pub(crate) redis_key: Vec<u8>,
    /// The cost admitted.
    pub(crate) cost: u64,
    /// What the admission stored.
    pub(crate) admitted: Admitted,
}

impl RedisReceipt {
    /// The cost this receipt gives back.
    #[must_use]
    pub fn cost(&self) -> u64 {
        self.cost
    }
}

impl core::fmt::Debug for RedisReceipt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key may be a secret (an API key): never shown.
        f.debug_struct("RedisReceipt")
            .field("cost", &self.cost)
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

/// A fresh id for a limiter, never given twice in a process.
pub(crate) fn next_id() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
