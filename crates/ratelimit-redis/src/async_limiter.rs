//! [`AsyncRedisLimiter`] (feature `tokio`): the limiter of `limiter.rs`
//! with `async` calls on one shared, pipelined [`AsyncRedisConnection`],
//! plus [`acquire`](AsyncRedisLimiter::acquire), which waits instead of
//! denying.
//!
//! Same contract, scripts, reply decoding, errors and failure policy as the
//! sync limiter: both are a [`Core`] (everything but the I/O) and a way to
//! send its script calls.
//!
//! # `acquire` and cancellation
//!
//! `acquire` reserves (one script call) and then sleeps the reservation's
//! wait with `tokio::time::sleep`. A dropped `acquire` future leaves no
//! consumed capacity behind, whenever it was dropped:
//!
//! - during the Redis call: the call runs in its own task
//!   (`tokio::spawn`), so it is never cut off half-way; when it has
//!   admitted the reservation, a task undoes it (`cancel.lua`) as soon as
//!   the reply is in;
//! - during the sleep: a task undoes the reservation at once.
//!
//! Undoing is exact and never returns more than was taken: `cancel.lua`
//! moves the key's state back by `cost × T` only if it still holds the
//! value this reservation stored. If anything was admitted on the key
//! since (by any process), the state is left alone and the capacity stays
//! consumed: the later admission was decided with it consumed, and giving
//! it back would let more through than the contract allows. The undo is
//! best effort beyond that: it needs a tokio runtime still running when
//! the future is dropped, and Redis reachable (a failed undo leaves the
//! capacity consumed: the safe side).

use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{
    AllowResult, Decision, InsufficientCapacity, LeakyBucket, Quota, Rate, Reservation, Shaping,
    TokenBucket,
};
use tokio::task::JoinHandle;

use crate::async_connection::AsyncRedisConnection;
use crate::calls::{Core, duration_ns};
use crate::error::RedisLimitError;
use crate::limiter::{KeyState, RedisLimiterBuilder};
use crate::script::Now;

/// An async token bucket in Redis (see [`TokenBucketRedis`](crate::TokenBucketRedis)).
pub type AsyncTokenBucketRedis = AsyncRedisLimiter<TokenBucket>;

/// An async leaky bucket in Redis (see [`LeakyBucketRedis`](crate::LeakyBucketRedis)).
pub type AsyncLeakyBucketRedis = AsyncRedisLimiter<LeakyBucket>;

/// A keyed rate limiter whose state lives in Redis, with `async` calls on
/// one shared [`AsyncRedisConnection`] (feature `tokio`). Cloning is cheap
/// and shares everything.
///
/// The same contract as [`RedisLimiter`](crate::RedisLimiter), method for
/// method: every call is one script run (one round trip, pipelined with
/// the other tasks' calls on the connection), atomic in Redis; errors and
/// the [`FailurePolicy`](crate::FailurePolicy) are the same. A call never
/// blocks the thread that polls it.
pub struct AsyncRedisLimiter<A: Shaping> {
    inner: Arc<Inner<A>>,
}

impl<A: Shaping> Clone for AsyncRedisLimiter<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<A: Shaping> {
    core: Core<A>,
    conn: AsyncRedisConnection,
}

impl<A: Shaping> core::fmt::Debug for AsyncRedisLimiter<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let core = &self.inner.core;
        f.debug_struct("AsyncRedisLimiter")
            .field("algorithm", &core.algorithm)
            .field("prefix", &core.prefix.as_str())
            .field("time", &core.time)
            .field("policy", &core.policy)
            .field("conn", &self.inner.conn)
            .finish_non_exhaustive()
    }
}

impl<A: Shaping> RedisLimiterBuilder<A> {
    /// Builds an async limiter on `conn`. Nothing is sent to Redis yet.
    pub fn build_async(
        self,
        conn: AsyncRedisConnection,
    ) -> Result<AsyncRedisLimiter<A>, RedisLimitError> {
        Ok(AsyncRedisLimiter {
            inner: Arc::new(Inner {
                core: self.core()?,
                conn,
            }),
        })
    }
}

impl AsyncRedisLimiter<TokenBucket> {
    /// A token bucket of `capacity` tokens refilled at `per_second` tokens
    /// per second, with the default options.
    pub fn new(
        capacity: u64,
        per_second: f64,
        conn: AsyncRedisConnection,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = TokenBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build_async(conn)
    }
}

impl AsyncRedisLimiter<LeakyBucket> {
    /// A leaky bucket holding `capacity` units drained at `per_second` units
    /// per second, with the default options.
    pub fn new(
        capacity: u64,
        per_second: f64,
        conn: AsyncRedisConnection,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = LeakyBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build_async(conn)
    }
}

impl<A: Shaping> AsyncRedisLimiter<A> {
    /// Options for a limiter running `algorithm`; finish with
    /// [`build_async`](RedisLimiterBuilder::build_async).
    pub fn builder(algorithm: A) -> RedisLimiterBuilder<A> {
        crate::RedisLimiter::builder(algorithm)
    }

    /// The algorithm (and so the quota) this limiter enforces.
    pub fn algorithm(&self) -> &A {
        &self.inner.core.algorithm
    }

    /// The quota this limiter enforces.
    pub fn quota(&self) -> &Quota {
        self.inner.core.quota()
    }

    /// The key prefix (namespace).
    pub fn prefix(&self) -> &str {
        self.inner.core.prefix.as_str()
    }

    /// How many Redis failures the failure policy has turned into decisions
    /// since the limiter was built.
    pub fn policy_failures(&self) -> u64 {
        self.inner.core.policy_failures()
    }

    /// The Redis key that holds `key`'s state: `<prefix>|<key>`.
    pub fn redis_key<K: AsRef<[u8]> + ?Sized>(&self, key: &K) -> Vec<u8> {
        self.inner.core.prefix.redis_key(key.as_ref())
    }

    /// `check(key, 1)`.
    pub async fn check<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1).await
    }

    /// Policing: allow or deny a request of `cost` units now.
    pub async fn check_n<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.check_with(key.as_ref(), cost, self.inner.core.now())
            .await
    }

    /// `check_n` at the caller's time `now_ns` (client time).
    pub async fn check_at<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.check_with(key.as_ref(), cost, self.inner.core.client_now(now_ns))
            .await
    }

    /// The answer of the Python system this replaces: `check(key, 1)` with
    /// its field names.
    pub async fn allow_request<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
    ) -> Result<AllowResult, RedisLimitError> {
        self.check(key).await.map(AllowResult::from)
    }

    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait` (`None`: unbounded), or reject it. The caller
    /// does the waiting; [`acquire`](Self::acquire) waits for it.
    pub async fn reserve<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, RedisLimitError> {
        let now = self.inner.core.now();
        self.reserve_with(key.as_ref(), cost, max_wait.map(duration_ns), now)
            .await
            .map(|(r, _)| r)
    }

    /// `reserve` at the caller's time `now_ns` (client time).
    pub async fn reserve_at<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let now = self.inner.core.client_now(now_ns);
        self.reserve_with(key.as_ref(), cost, max_wait_ns, now)
            .await
            .map(|(r, _)| r)
    }

    /// Decides many `(key, cost)` requests in one round trip, answering in
    /// order; see [`RedisLimiter::check_batch`](crate::RedisLimiter::check_batch).
    pub async fn check_batch<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.batch_with(requests, self.inner.core.now()).await
    }

    /// `check_batch` at the caller's time `now_ns` (client time).
    pub async fn check_batch_at<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.batch_with(requests, self.inner.core.client_now(now_ns))
            .await
    }

    /// Reads `key`'s state without changing it, against the server's clock.
    pub async fn inspect<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
    ) -> Result<KeyState, RedisLimitError> {
        let call = Core::<A>::inspect_call(&self.redis_key(key));
        let value = self.inner.conn.run(&call).await?;
        self.inner.core.inspect_done(value)
    }

    /// Waits until a request of `cost` units may proceed, then returns its
    /// reservation (`allowed`, with the `wait` that was slept): shaping for
    /// callers that would rather be slowed down than rejected (a crawler, a
    /// client of someone else's API).
    ///
    /// A token bucket always admits (it borrows from the future); a leaky
    /// bucket whose queue is full is asked again after its `retry_after`.
    /// Not admitted only when the contract can never admit it: a cost
    /// above the capacity (`Err(InsufficientCapacity)`), or a state so far
    /// ahead that no reservation fits (`allowed: false`, `retry_after:
    /// None`). Redis failures follow the failure policy (a policy's denial
    /// is returned as it is, not waited on).
    ///
    /// Dropping the future leaves no consumed capacity behind where the
    /// contract allows it: see the module docs (`acquire` and
    /// cancellation). Sleeps on tokio's clock.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn acquire<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Reservation, RedisLimitError> {
        loop {
            let r = self.acquire_once(key.as_ref(), cost, None).await?;
            match (r.is_admitted(), r.retry_after()) {
                (false, Some(retry)) if r.reason() == ratelimit_core::Reason::Quota => {
                    tokio::time::sleep(retry).await;
                }
                _ => return Ok(r),
            }
        }
    }

    /// `acquire` with a bound on the wait: admitted only if it can proceed
    /// within `max_wait`, else rejected at once (`allowed: false`, nothing
    /// consumed, `retry_after` as for `reserve`), without waiting.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn acquire_with_max_wait<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Duration,
    ) -> Result<Reservation, RedisLimitError> {
        self.acquire_once(key.as_ref(), cost, Some(duration_ns(max_wait)))
            .await
    }

    /// One reservation, slept on, undone if the future is dropped.
    async fn acquire_once(
        &self,
        key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, RedisLimitError> {
        self.inner.core.capacity_ok(cost)?;
        let redis_key = self.redis_key(key);
        let task = {
            let this = self.clone();
            let redis_key = redis_key.clone();
            tokio::spawn(async move {
                let now = this.inner.core.now();
                let call = this
                    .inner
                    .core
                    .reserve_call(&redis_key, cost, max_wait_ns, now);
                let result = this.inner.conn.run(&call).await;
                this.inner
                    .core
                    .reserve_done(&redis_key, cost, max_wait_ns, result)
            })
        };
        let mut guard = Undo {
            limiter: self.clone(),
            redis_key,
            cost,
            stage: Stage::Reserving(task),
        };
        let Stage::Reserving(task) = &mut guard.stage else {
            unreachable!("just set")
        };
        let joined = task.await;
        guard.stage = Stage::Done;
        let (reservation, stored) = match joined {
            Ok(result) => result?,
            // The task panicked or the runtime is shutting down.
            Err(e) => {
                return Err(RedisLimitError::UnexpectedReply(format!(
                    "the reservation task failed: {e}"
                )));
            }
        };
        if let Some(wait) = reservation.wait().filter(|w| !w.is_zero()) {
            if let Some(stored) = stored {
                guard.stage = Stage::Sleeping(stored);
            }
            tokio::time::sleep(wait).await;
            guard.stage = Stage::Done;
        }
        Ok(reservation)
    }

    /// Undoes an admitted reservation that stored `stored` (see
    /// `lua/cancel.lua`): whether it was undone.
    async fn cancel(
        &self,
        redis_key: &[u8],
        stored: u64,
        cost: u64,
    ) -> Result<bool, RedisLimitError> {
        let core = &self.inner.core;
        let call = core.cancel_call(redis_key, stored, cost, core.now());
        Core::<A>::cancel_done(self.inner.conn.run(&call).await)
    }

    async fn check_with(
        &self,
        key: &[u8],
        cost: u64,
        now: Now,
    ) -> Result<Decision, RedisLimitError> {
        let core = &self.inner.core;
        core.capacity_ok(cost)?;
        let redis_key = core.prefix.redis_key(key);
        let result = self
            .inner
            .conn
            .run(&core.check_call(&redis_key, cost, now))
            .await;
        core.check_done(&redis_key, cost, result)
    }

    async fn reserve_with(
        &self,
        key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Result<(Reservation, Option<u64>), RedisLimitError> {
        let core = &self.inner.core;
        core.capacity_ok(cost)?;
        let redis_key = core.prefix.redis_key(key);
        let call = core.reserve_call(&redis_key, cost, max_wait_ns, now);
        let result = self.inner.conn.run(&call).await;
        core.reserve_done(&redis_key, cost, max_wait_ns, result)
    }

    async fn batch_with<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
        now: Now,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let core = &self.inner.core;
        let mut plan = core.batch_plan(requests, false, now);
        for g in 0..plan.calls() {
            let result = self.inner.conn.run(&core.batch_call(&plan, g)).await;
            core.batch_settle(&mut plan, g, result)?;
        }
        Ok(Core::<A>::batch_done(plan))
    }
}

/// Where an `acquire` is, for its drop.
enum Stage {
    /// The reservation is in flight, in its own task.
    Reserving(JoinHandle<Result<(Reservation, Option<u64>), RedisLimitError>>),
    /// Admitted, storing this state; sleeping its wait.
    Sleeping(u64),
    /// Nothing to undo.
    Done,
}

/// Undoes the reservation of a dropped `acquire`.
struct Undo<A: Shaping> {
    limiter: AsyncRedisLimiter<A>,
    redis_key: Vec<u8>,
    cost: u64,
    stage: Stage,
}

impl<A: Shaping> Drop for Undo<A> {
    fn drop(&mut self) {
        let stage = core::mem::replace(&mut self.stage, Stage::Done);
        if matches!(stage, Stage::Done) {
            return;
        }
        // No runtime (dropped outside one): nothing can be sent; the
        // capacity stays consumed, the safe side.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limiter = self.limiter.clone();
        let redis_key = core::mem::take(&mut self.redis_key);
        let cost = self.cost;
        runtime.spawn(async move {
            let stored = match stage {
                Stage::Reserving(task) => match task.await {
                    Ok(Ok((r, Some(stored)))) if r.is_admitted() => stored,
                    _ => return,
                },
                Stage::Sleeping(stored) => stored,
                Stage::Done => return,
            };
            // Best effort: a failure leaves the capacity consumed.
            let _ = limiter.cancel(&redis_key, stored, cost).await;
        });
    }
}
