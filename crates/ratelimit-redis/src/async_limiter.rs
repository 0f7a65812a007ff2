//! [`AsyncRedisLimiter`] (feature `tokio`): [`RedisLimiter`]'s `async`
//! calls on one shared, pipelined [`AsyncRedisConnection`], plus
//! [`acquire`](RedisLimiter::acquire), which waits instead of denying.
//!
//! Same contract, scripts, reply decoding, errors, failure policy and
//! circuit breaker as the blocking calls: both send the operations of
//! `op.rs` (everything but the I/O), one with `.await`.
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

use ratelimit_core::{
    Algorithm, AllowResult, Decision, FixedWindow, InsufficientCapacity, LeakyBucket, Quota,
    Reason, Reservation, Shaping, SlidingWindow, Strategy, TokenBucket,
};
use tokio::task::JoinHandle;

use crate::async_connection::AsyncRedisConnection;
use crate::denied::Lookup;
use crate::error::RedisLimitError;
use crate::key::RedisKey;
use crate::limiter::RedisLimiter;
use crate::op::{MAX_APPENDS, Op, Request, converted_elsewhere, duration_ns};
use crate::receipt::RedisReceipt;
use crate::reply::KeyState;
use crate::script::Now;

/// A [`RedisLimiter`] with `async` calls on one shared
/// [`AsyncRedisConnection`] (feature `tokio`): the same contract, method
/// for method, every call pipelined with the other tasks' calls on the
/// connection, plus [`acquire`](RedisLimiter::acquire). A call never
/// blocks the thread that polls it.
pub type AsyncRedisLimiter<A> = RedisLimiter<A, AsyncRedisConnection>;

/// An async token bucket in Redis (see [`TokenBucketRedis`](crate::TokenBucketRedis)).
pub type AsyncTokenBucketRedis = AsyncRedisLimiter<TokenBucket>;

/// An async leaky bucket in Redis (see [`LeakyBucketRedis`](crate::LeakyBucketRedis)).
pub type AsyncLeakyBucketRedis = AsyncRedisLimiter<LeakyBucket>;

/// An async fixed window in Redis (see [`FixedWindowRedis`](crate::FixedWindowRedis)).
pub type AsyncFixedWindowRedis = AsyncRedisLimiter<FixedWindow>;

/// An async sliding window counter in Redis (see
/// [`SlidingWindowRedis`](crate::SlidingWindowRedis)).
pub type AsyncSlidingWindowRedis = AsyncRedisLimiter<SlidingWindow>;

/// The `async` calls, on an [`AsyncRedisConnection`] (feature `tokio`):
/// the same as the blocking ones; `reserve` and `acquire` for the buckets.
impl<A: Algorithm> RedisLimiter<A, AsyncRedisConnection> {
    /// Sends an operation's calls.
    pub(crate) async fn run<R: Request<A>>(
        &self,
        mut op: Op<'_, A, R>,
    ) -> Result<R::Output, RedisLimitError> {
        while let Some(call) = op.next_call() {
            let reply = self.conn().run(call).await;
            op.take(reply);
        }
        op.finish()
    }

    /// `check_n(key, 1)`.
    pub async fn check<K: RedisKey + ?Sized>(&self, key: &K) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1).await
    }

    /// Policing: allow or deny a request of `cost` units now.
    pub async fn check_n<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if let Some(target) = e.target(None)? {
            // Under a changed quota: neither the coalescer nor the
            // denied-key cache (their scripts and denials are of the
            // first quota).
            let now = e.now(None);
            return self
                .run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?)
                .await;
        }
        if e.window_tagged() {
            // Under a changed window quota: neither the coalescer nor the
            // denied-key cache either.
            return self.window_check(key, cost, e.now(None)).await;
        }
        if let Some(c) = self.coalescer() {
            return self.check_coalesced(c, key, cost).await;
        }
        let e = self.engine();
        if let Some(cache) = self.denied() {
            return match cache.check(e, key, cost)? {
                Lookup::Hit(d) => Ok(d),
                Lookup::Miss(op, sent) => {
                    let r = self.run(op).await;
                    if self.caught_up(&r).await? {
                        return self.check_after_catching_up(key, cost, e.now(None)).await;
                    }
                    let d = r?;
                    cache.learn(&sent, &d);
                    Ok(d)
                }
            };
        }
        let r = self.run(e.check(key, cost, e.now(None))?).await;
        if self.caught_up(&r).await? {
            return self.check_after_catching_up(key, cost, e.now(None)).await;
        }
        r
    }

    /// After a call without quota tags met a key that another limiter on
    /// the prefix converted to a changed quota: adopts the quota record,
    /// and says whether to call again (now with tags).
    async fn caught_up<T>(&self, r: &Result<T, RedisLimitError>) -> Result<bool, RedisLimitError> {
        match r {
            Err(err) if converted_elsewhere(err) && self.engine().is_window() => {
                let e = self.engine();
                let (version, _, _) = e.window_current()?;
                let was_tagged = e.window_tagged();
                self.refresh_window().await?;
                if e.window_current()?.0 == version {
                    if was_tagged {
                        return Err(e.window_stale(version));
                    }
                    // No change to adopt: a key under its own window.
                    e.window_tag_calls();
                }
                Ok(true)
            }
            Err(err) if converted_elsewhere(err) => {
                let e = self.engine();
                let (version, _) = e.current()?;
                let entries = self
                    .run(e.quota_record(version, ""))
                    .await?
                    .unwrap_or_default();
                e.adopt(version, &entries)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `check` with tags, once caught up.
    async fn check_after_catching_up<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if e.is_window() {
            return self.window_check(key, cost, now).await;
        }
        let target = e.target(None)?.ok_or_else(|| {
            RedisLimitError::UnexpectedReply("caught up without a quota version".to_owned())
        })?;
        self.run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?)
            .await
    }

    /// `check_n` at the caller's time `now_ns` (client time).
    pub async fn check_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if let Some(target) = e.target(None)? {
            let now = e.now(Some(now_ns));
            return self
                .run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?)
                .await;
        }
        let now = e.now(Some(now_ns));
        let r = self.run(e.check(key, cost, now)?).await;
        if self.caught_up(&r).await? {
            return self.check_after_catching_up(key, cost, now).await;
        }
        r
    }

    /// The answer of the Python system this replaces: `check(key, 1)` with
    /// its field names.
    pub async fn allow_request<K: RedisKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<AllowResult, RedisLimitError> {
        self.check(key).await.map(AllowResult::from)
    }

    /// `check_n` that can be undone: the decision, and when Redis
    /// admitted a cost above zero a [`RedisReceipt`] for
    /// [`refund`](Self::refund); see the blocking `check_refundable`.
    pub async fn check_refundable<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<(Decision, Option<RedisReceipt>), RedisLimitError> {
        let e = self.engine();
        let redis_key = e.keys.redis_key(key)?;
        let now = e.now(None);
        let (d, admitted) = match e.target(None)? {
            Some(t) => {
                self.run(e.check_receipt_tagged(redis_key.clone(), cost, now, t)?)
                    .await?
            }
            None => {
                self.run(e.check_receipt(redis_key.clone(), cost, now)?)
                    .await?
            }
        };
        Ok((d, e.receipt(redis_key, cost, admitted)))
    }

    /// `check_refundable` at the caller's time `now_ns` (client time).
    pub async fn check_refundable_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<(Decision, Option<RedisReceipt>), RedisLimitError> {
        let e = self.engine();
        let redis_key = e.keys.redis_key(key)?;
        let now = e.now(Some(now_ns));
        let (d, admitted) = match e.target(None)? {
            Some(t) => {
                self.run(e.check_receipt_tagged(redis_key.clone(), cost, now, t)?)
                    .await?
            }
            None => {
                self.run(e.check_receipt(redis_key.clone(), cost, now)?)
                    .await?
            }
        };
        Ok((d, e.receipt(redis_key, cost, admitted)))
    }

    /// Gives back the cost of the admission `receipt` records, exactly or
    /// not at all; see the blocking `refund`.
    pub async fn refund(&self, receipt: RedisReceipt) -> Result<bool, RedisLimitError> {
        if let Some(cache) = self.denied() {
            // The state moves back: a cached denial may no longer hold.
            cache.forget(&receipt.redis_key);
        }
        let e = self.engine();
        match e.refund(receipt, e.now(None))? {
            Some(op) => self.run(op).await,
            None => Ok(false),
        }
    }

    /// `refund` at the caller's time `now_ns` (client time).
    pub async fn refund_at(
        &self,
        receipt: RedisReceipt,
        now_ns: u64,
    ) -> Result<bool, RedisLimitError> {
        if let Some(cache) = self.denied() {
            // The state moves back: a cached denial may no longer hold.
            cache.forget(&receipt.redis_key);
        }
        let e = self.engine();
        match e.refund(receipt, e.now(Some(now_ns)))? {
            Some(op) => self.run(op).await,
            None => Ok(false),
        }
    }

    /// Decides many `(key, cost)` requests in one round trip, answering in
    /// order; see the blocking `check_batch`.
    pub async fn check_batch<K: RedisKey>(
        &self,
        requests: &[(K, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let e = self.engine();
        if e.bucket_changed() {
            // As the blocking `check_batch`: one converting check each.
            let mut out = Vec::with_capacity(requests.len());
            for (key, cost) in requests {
                out.push(crate::limiter::as_element(self.check_n(key, *cost).await)?);
            }
            return Ok(out);
        }
        let now = e.now(None);
        loop {
            let r = self.run(e.batch(requests, now)?).await;
            if !self.window_batch_again(&r).await? {
                return r;
            }
        }
    }

    /// A window `check` under the window quota this limiter is at, again
    /// after adopting a newer one it met.
    async fn window_check<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        loop {
            let r = self.run(e.check(key, cost, now)?).await;
            if !self.caught_up(&r).await? {
                return r;
            }
        }
    }

    /// After a window batch met a key stored under a quota this limiter
    /// had not seen: adopts it, and says whether to send the batch again;
    /// see the blocking limiter's.
    async fn window_batch_again<T>(
        &self,
        r: &Result<T, RedisLimitError>,
    ) -> Result<bool, RedisLimitError> {
        let e = self.engine();
        Ok(e.is_window() && self.caught_up(r).await? && !e.is_cluster())
    }

    /// Replaces a window limiter's `L` and `W`; see the blocking
    /// [`reconfigure_window_at`](RedisLimiter::reconfigure_window_at).
    ///
    /// # Errors
    /// As the blocking `reconfigure_window_at`.
    pub async fn reconfigure_window_at(
        &self,
        window: A,
        at_ns: u64,
    ) -> Result<(), RedisLimitError> {
        let e = self.engine();
        for _ in 0..MAX_APPENDS {
            let (version, change) = e.window_change(&window, at_ns)?;
            match self.run(e.quota_record(version, &change.entry())).await? {
                None => {
                    if !e.window_push(version, change) {
                        e.window_adopt(version, &[change.entry()])?;
                    }
                    return Ok(());
                }
                Some(entries) => e.window_adopt(version, &entries)?,
            }
        }
        Err(RedisLimitError::UnexpectedReply(
            "the quota record kept changing; the change was not made".to_owned(),
        ))
    }

    /// `check_n(key, cost)` under the key's own `window`; see the blocking
    /// [`check_with_window`](RedisLimiter::check_with_window).
    ///
    /// # Errors
    /// As the blocking `check_with_window`.
    pub async fn check_with_window<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        window: &A,
    ) -> Result<Decision, RedisLimitError> {
        let now = self.engine().now(None);
        self.check_own_window(key, cost, window, now).await
    }

    /// `check_with_window` at the caller's time `now_ns` (client time).
    ///
    /// # Errors
    /// As the blocking `check_with_window`.
    pub async fn check_with_window_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        window: &A,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let now = self.engine().now(Some(now_ns));
        self.check_own_window(key, cost, window, now).await
    }

    async fn check_own_window<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        window: &A,
        now: Now,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if !e.is_window() {
            return Err(RedisLimitError::InvalidOption(
                "check_with_window is for the window algorithms; a bucket's is check_with_quota"
                    .to_owned(),
            ));
        }
        let redis_key = e.keys.redis_key(key)?;
        loop {
            let r = self
                .run(e.check_window(redis_key.clone(), cost, now, Some(window))?)
                .await;
            if !self.caught_up(&r).await? {
                return r;
            }
        }
    }

    /// [`reconfigure_window_at`](RedisLimiter::reconfigure_window_at) now:
    /// the server's time (one call to read it), or the caller's clock
    /// under client time.
    ///
    /// # Errors
    /// As the blocking `reconfigure_window_at`.
    pub async fn reconfigure_window(&self, window: A) -> Result<(), RedisLimitError> {
        let e = self.engine();
        let at_ns = match e.now(None) {
            Now::Server => self.run(e.server_time()).await?,
            Now::Client { now_ns, .. } => now_ns,
        };
        self.reconfigure_window_at(window, at_ns).await
    }

    /// Adopts the changes of a window limiter's quota other limiters on
    /// the prefix made; see the blocking
    /// [`refresh_window`](RedisLimiter::refresh_window).
    ///
    /// # Errors
    /// As the blocking `refresh_window`.
    pub async fn refresh_window(&self) -> Result<u64, RedisLimitError> {
        let e = self.engine();
        let (version, _, _) = e.window_current()?;
        let entries = self
            .run(e.quota_record(version, ""))
            .await?
            .unwrap_or_default();
        e.window_adopt(version, &entries)?;
        Ok(u64::try_from(e.window_current()?.0).unwrap_or(u64::MAX))
    }

    /// `check_batch` at the caller's time `now_ns` (client time).
    pub async fn check_batch_at<K: RedisKey>(
        &self,
        requests: &[(K, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let e = self.engine();
        if e.bucket_changed() {
            let mut out = Vec::with_capacity(requests.len());
            for (key, cost) in requests {
                out.push(crate::limiter::as_element(
                    self.check_at(key, *cost, now_ns).await,
                )?);
            }
            return Ok(out);
        }
        let now = e.now(Some(now_ns));
        loop {
            let r = self.run(e.batch(requests, now)?).await;
            if !self.window_batch_again(&r).await? {
                return r;
            }
        }
    }

    /// Reads `key`'s state without changing it, against the server's clock.
    pub async fn inspect<K: RedisKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<KeyState, RedisLimitError> {
        self.run(self.engine().inspect(key)?).await
    }
}

/// Shaping, `async`: the buckets only.
impl<A: Shaping> RedisLimiter<A, AsyncRedisConnection> {
    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait` (`None`: unbounded), or reject it. The caller
    /// does the waiting; [`acquire`](Self::acquire) waits for it.
    pub async fn reserve<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait.map(duration_ns), e.now(None), None)
            .await
    }

    /// `reserve` at the caller's time `now_ns` (client time).
    pub async fn reserve_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait_ns, e.now(Some(now_ns)), None)
            .await
    }

    async fn reserve_under<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
        own: Option<&Quota>,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        let redis_key = e.keys.redis_key(key)?;
        self.reserve_key(redis_key, cost, max_wait_ns, now, own)
            .await
            .map(|(r, _)| r)
    }

    /// `reserve` of a key in its Redis form, under `own` or the limiter's
    /// quota, with the state it stored.
    async fn reserve_key(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
        own: Option<&Quota>,
    ) -> Result<(Reservation, Option<u64>), RedisLimitError> {
        let e = self.engine();
        match e.target(own)? {
            Some(t) => {
                self.run(e.reserve_tagged(redis_key, cost, max_wait_ns, now, t)?)
                    .await
            }
            None => {
                let r = self
                    .run(e.reserve_stored(redis_key.clone(), cost, max_wait_ns, now)?)
                    .await;
                if self.caught_up(&r).await? {
                    let target = e.target(own)?.ok_or_else(|| {
                        RedisLimitError::UnexpectedReply(
                            "caught up without a quota version".to_owned(),
                        )
                    })?;
                    return self
                        .run(e.reserve_tagged(redis_key, cost, max_wait_ns, now, target)?)
                        .await;
                }
                r
            }
        }
    }

    /// Replaces the quota of every key without one of its own from
    /// `at_ns` on, appending the change to the prefix's quota record; see
    /// the blocking `reconfigure_at`.
    pub async fn reconfigure_at(
        &self,
        quota: Quota,
        strategy: Strategy,
        at_ns: u64,
    ) -> Result<(), RedisLimitError> {
        let e = self.engine();
        for _ in 0..MAX_APPENDS {
            let (version, change) = e.next_change(quota, strategy, at_ns)?;
            match self.run(e.quota_record(version, &change.entry())).await? {
                None => {
                    if !e.push_change(version, change) {
                        e.adopt(version, &[change.entry()])?;
                    }
                    if strategy != Strategy::Reset {
                        // As the blocking `reconfigure_at`: raise every
                        // key's expiry to what the new quota may need.
                        let least = e.least_expiry_ms(&quota);
                        if e.is_cluster() {
                            let pattern = e.walk_pattern();
                            crate::walk::walk_async(self.conn(), &pattern, least).await?;
                        }
                        let mut cursor = "0".to_owned();
                        while let Some(op) = e.extend_expiry(&cursor, least) {
                            cursor = self.run(op).await?;
                            if cursor == "0" {
                                break;
                            }
                        }
                    }
                    return Ok(());
                }
                Some(entries) => e.adopt(version, &entries)?,
            }
        }
        Err(RedisLimitError::UnexpectedReply(
            "the quota record kept changing; the change was not made".to_owned(),
        ))
    }

    /// Adopts the changes of quota other limiters on the prefix made; see
    /// the blocking `refresh_quota`.
    pub async fn refresh_quota(&self) -> Result<u64, RedisLimitError> {
        let e = self.engine();
        let (version, _) = e.current()?;
        let entries = self
            .run(e.quota_record(version, ""))
            .await?
            .unwrap_or_default();
        e.adopt(version, &entries)?;
        Ok(self.current_quota().0)
    }

    /// [`reconfigure_at`](RedisLimiter::reconfigure_at) now: the server's
    /// time (one call to read it), or the caller's clock under client
    /// time; see the blocking `reconfigure`.
    pub async fn reconfigure(
        &self,
        quota: Quota,
        strategy: Strategy,
    ) -> Result<(), RedisLimitError> {
        let e = self.engine();
        let at_ns = match e.now(None) {
            Now::Server => self.run(e.server_time()).await?,
            Now::Client { now_ns, .. } => now_ns,
        };
        self.reconfigure_at(quota, strategy, at_ns).await
    }

    /// `check_n(key, cost)` under the key's own `quota`; see the blocking
    /// `check_with_quota`.
    pub async fn check_with_quota<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        quota: &Quota,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        self.check_under(key, cost, e.now(None), quota).await
    }

    /// `check_with_quota` at the caller's time `now_ns` (client time).
    pub async fn check_with_quota_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        self.check_under(key, cost, e.now(Some(now_ns)), quota)
            .await
    }

    async fn check_under<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
        own: &Quota,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        let redis_key = e.keys.redis_key(key)?;
        match e.target(Some(own))? {
            Some(t) => self.run(e.check_tagged(redis_key, cost, now, t)?).await,
            None => Err(RedisLimitError::UnexpectedReply(
                "a key's own quota always has a target".to_owned(),
            )),
        }
    }

    /// `reserve` under the key's own `quota`; see the blocking
    /// `reserve_with_quota`.
    pub async fn reserve_with_quota<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
        quota: &Quota,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(
            key,
            cost,
            max_wait.map(duration_ns),
            e.now(None),
            Some(quota),
        )
        .await
    }

    /// `reserve_with_quota` at the caller's time `now_ns` (client time).
    pub async fn reserve_with_quota_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait_ns, e.now(Some(now_ns)), Some(quota))
            .await
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
    pub async fn acquire<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let redis_key = self.redis_key(key)?;
        loop {
            let r = self.acquire_once(&redis_key, cost, None).await?;
            match (r.is_admitted(), r.retry_after()) {
                (false, Some(retry)) if r.reason() == Reason::Quota => {
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
    pub async fn acquire_with_max_wait<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Duration,
    ) -> Result<Reservation, RedisLimitError> {
        let redis_key = self.redis_key(key)?;
        self.acquire_once(&redis_key, cost, Some(duration_ns(max_wait)))
            .await
    }

    /// One reservation of the Redis key `redis_key`, slept on, undone if
    /// the future is dropped.
    async fn acquire_once(
        &self,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Reservation, RedisLimitError> {
        let task = {
            let this = self.clone();
            let redis_key = redis_key.to_vec();
            tokio::spawn(async move {
                let e = this.engine();
                let now = e.now(None);
                this.reserve_key(redis_key, cost, max_wait_ns, now, None)
                    .await
            })
        };
        let mut guard = Undo {
            limiter: self.clone(),
            redis_key: redis_key.to_vec(),
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
        if let Some(cache) = self.denied() {
            // The state moves back: a cached denial may no longer hold.
            cache.forget(redis_key);
        }
        self.run(self.engine().cancel(redis_key, stored, cost))
            .await
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
