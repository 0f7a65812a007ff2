//! The local cache of denied keys (opt-in: [`cache_denials`]): after
//! Redis has answered "denied, retry after `d`" to a check of key `k` with
//! cost `c`, a check of `k` with a cost of at least `c` is denied here,
//! without a round trip, until `sent + d`, where `sent` is the limiter's
//! monotonic clock read *before* the denied request was sent.
//!
//! Why this never denies what Redis would admit: Redis decided at some
//! instant after `sent`, so its `d` runs from a later point than `sent`,
//! and until then a request of that cost cannot be admitted unless the
//! key's state moves back. The bucket scripts only move a state forward
//! (admissions add to it, time passes); a larger cost needs at least as
//! long. The exceptions are the calls that move a state back: this
//! limiter's own undo of a dropped `acquire` and its refunds forget the
//! key here; a
//! refund or a reset made by another process is not seen, which is why
//! the cache is opt-in (see docs/redis.md, "Denied-key cache").
//!
//! Answers from the cache are exact denials with the fields Redis gave,
//! aged: `retry_after` and `reset_after` shrink by the time since `sent`
//! (so they never overstate Redis's), `remaining` is Redis's, and the
//! reason is [`Reason::Quota`]. Calls with an explicit time (`check_at`)
//! bypass the cache: their time is not the limiter's clock.
//!
//! [`cache_denials`]: crate::RedisLimiterBuilder::cache_denials

use core::hash::BuildHasher;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::{Mutex, PoisonError};

use ratelimit_core::{Algorithm, Decision, Reason};

use crate::error::RedisLimitError;
use crate::fallback::SharedClock;
use crate::key::RedisKey;
use crate::op::{Check, Engine, Op};

/// Locks per cache, so that threads checking different keys rarely meet.
const SHARDS: usize = 16;

/// One denial Redis gave.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The cost that was denied: costs at least this large are denied.
    cost: u64,
    /// The monotonic time the denial holds until.
    until_ns: u64,
    /// The monotonic time the denied request was sent.
    sent_ns: u64,
    /// Redis's answer.
    decision: Decision,
}

/// The cache: a bounded map per shard from Redis key to its last denial.
pub(crate) struct DeniedCache {
    shards: Vec<Mutex<HashMap<Vec<u8>, Entry>>>,
    hasher: RandomState,
    /// Keys per shard at most; a full shard drops its expired entries, and
    /// if none has expired the new denial is not cached (a miss only costs
    /// a round trip).
    per_shard: usize,
    clock: SharedClock,
    hits: AtomicU64,
}

impl core::fmt::Debug for DeniedCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeniedCache")
            .field("max_keys", &(self.per_shard * SHARDS))
            .field("hits", &self.hits())
            .finish_non_exhaustive()
    }
}

/// What the cache says about a check before it is sent.
// Short-lived, on the stack of one call, and `Miss` the common answer:
// boxing it would allocate on every call for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lookup<'e, A: Algorithm> {
    /// Denied here: nothing to send.
    Hit(Decision),
    /// Send the operation; then give its answer and the [`Sent`] to
    /// [`DeniedCache::learn`].
    Miss(Op<'e, A, Check>, Sent),
}

/// A check that was not answered from the cache: what `learn` needs.
pub(crate) struct Sent {
    redis_key: Vec<u8>,
    cost: u64,
    sent_ns: u64,
}

impl DeniedCache {
    /// A cache of up to `max_keys` keys (at least one per shard).
    pub(crate) fn new(max_keys: usize, clock: SharedClock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            clock,
            hits: AtomicU64::new(0),
        }
    }

    /// Checks answered here, without a round trip.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn shard(&self, redis_key: &[u8]) -> &Mutex<HashMap<Vec<u8>, Entry>> {
        let i = usize::try_from(self.hasher.hash_one(redis_key) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    /// `check(key, cost)` at the limiter's time source: denied here if a
    /// cached denial covers it, else the operation to send. Errors (a cost
    /// above the capacity, a key too long) come first, as without the
    /// cache.
    pub(crate) fn check<'e, A: Algorithm, K: RedisKey + ?Sized>(
        &self,
        engine: &'e Engine<A>,
        key: &K,
        cost: u64,
    ) -> Result<Lookup<'e, A>, RedisLimitError> {
        let redis_key = engine.keys.redis_key(key)?;
        // Read before the request is built and sent: the denial's `d` runs
        // from a later instant.
        let sent_ns = self.clock.now_ns();
        let op = engine.check_stored(redis_key.clone(), cost, engine.now(None))?;
        if let Some(d) = self.lookup(&redis_key, cost, sent_ns) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Lookup::Hit(d));
        }
        Ok(Lookup::Miss(
            op,
            Sent {
                redis_key,
                cost,
                sent_ns,
            },
        ))
    }

    fn lookup(&self, redis_key: &[u8], cost: u64, now_ns: u64) -> Option<Decision> {
        let mut shard = self
            .shard(redis_key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = *shard.get(redis_key)?;
        if now_ns >= entry.until_ns {
            shard.remove(redis_key);
            return None;
        }
        if cost < entry.cost {
            return None;
        }
        let aged = Duration::from_nanos(now_ns.saturating_sub(entry.sent_ns));
        Some(Decision {
            retry_after: Some(Duration::from_nanos(entry.until_ns - now_ns)),
            reset_after: entry.decision.reset_after.saturating_sub(aged),
            ..entry.decision
        })
    }

    /// Takes in Redis's answer to a check the cache did not answer: a
    /// denial by the quota with a `retry_after` is remembered.
    pub(crate) fn learn(&self, pending: &Sent, decision: &Decision) {
        let Some(retry) = decision.retry_after.filter(|_| !decision.allowed) else {
            return;
        };
        if decision.reason != Reason::Quota || retry.is_zero() {
            return;
        }
        let until_ns = pending
            .sent_ns
            .saturating_add(u64::try_from(retry.as_nanos()).unwrap_or(u64::MAX));
        let entry = Entry {
            cost: pending.cost,
            until_ns,
            sent_ns: pending.sent_ns,
            decision: *decision,
        };
        let mut shard = self
            .shard(&pending.redis_key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&pending.redis_key) {
            let now = self.clock.now_ns();
            shard.retain(|_, e| now < e.until_ns);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        // The newest denial replaces an older one: both are true, and the
        // newer is the one Redis gave last.
        shard.insert(pending.redis_key.clone(), entry);
    }

    /// Forgets `redis_key`: its state was moved back (an undo).
    pub(crate) fn forget(&self, redis_key: &[u8]) {
        self.shard(redis_key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(redis_key);
    }
}
