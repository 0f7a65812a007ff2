//! The limiters: [`RedisLimiter`] over any [`Algorithm`], with the
//! [`TokenBucketRedis`] and [`LeakyBucketRedis`] shorthands, their builder,
//! and [`Session`], a limiter on a held connection.

use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{
    AllowResult, Decision, InsufficientCapacity, LeakyBucket, Quota, Rate, Reservation, Shaping,
    TokenBucket,
};
use redis::{ConnectionLike, ErrorKind, ServerErrorKind};

use crate::calls::{Call, Core, duration_ns};
use crate::config::{FailurePolicy, TimeSource};
use crate::error::RedisLimitError;
use crate::key::DEFAULT_PREFIX;
use crate::pool::{Pooled, RedisPool};
use crate::script::Now;

/// A token bucket in Redis: bursts up to the capacity, refilled at the
/// rate; `reserve` borrows from the future.
pub type TokenBucketRedis = RedisLimiter<TokenBucket>;

/// A leaky bucket in Redis: a bounded queue drained at exactly the rate;
/// `reserve` spaces requests one interval apart.
pub type LeakyBucketRedis = RedisLimiter<LeakyBucket>;

/// A keyed rate limiter whose state lives in Redis, shared by every process
/// that uses the same Redis, prefix and quota. Cloning is cheap and shares
/// everything.
///
/// Every call is one script run (one round trip), atomic in Redis. Methods
/// return `Err` for what the caller must fix (a cost above the capacity)
/// and, under [`FailurePolicy::ReturnError`], for Redis failures; other
/// policies turn Redis failures into decisions whose `reason` says so.
pub struct RedisLimiter<A: Shaping> {
    inner: Arc<Inner<A>>,
}

impl<A: Shaping> Clone for RedisLimiter<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<A: Shaping> {
    core: Core<A>,
    pool: RedisPool,
}

impl<A: Shaping> core::fmt::Debug for RedisLimiter<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let core = &self.inner.core;
        f.debug_struct("RedisLimiter")
            .field("algorithm", &core.algorithm)
            .field("prefix", &core.prefix.as_str())
            .field("time", &core.time)
            .field("policy", &core.policy)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisLimiter`]: prefix, time source, failure policy.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisLimiterBuilder<A: Shaping> {
    algorithm: A,
    prefix: String,
    time: TimeSource,
    policy: FailurePolicy,
}

impl<A: Shaping> RedisLimiterBuilder<A> {
    /// The namespace of the limiter's keys (default `ratelimit`): every
    /// Redis key is `<prefix>|<key>`. Give each limiter (each quota) its own
    /// prefix. 1 to 256 bytes, without `|`, `{`, `}` or control characters.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Where `now` comes from (default: the server's `TIME`).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// What to answer when Redis fails (default: return the error).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the limiter on `pool`. Nothing is sent to Redis yet.
    pub fn build(self, pool: impl Into<RedisPool>) -> Result<RedisLimiter<A>, RedisLimitError> {
        Ok(RedisLimiter {
            inner: Arc::new(Inner {
                core: self.core()?,
                pool: pool.into(),
            }),
        })
    }

    /// The settings, checked.
    pub(crate) fn core(self) -> Result<Core<A>, RedisLimitError> {
        Core::new(self.algorithm, &self.prefix, self.time, self.policy)
    }
}

impl RedisLimiter<TokenBucket> {
    /// A token bucket of `capacity` tokens refilled at `per_second` tokens
    /// per second, with the default options (prefix `ratelimit`, server
    /// time, errors returned).
    pub fn new(
        capacity: u64,
        per_second: f64,
        pool: impl Into<RedisPool>,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = TokenBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build(pool)
    }
}

impl RedisLimiter<LeakyBucket> {
    /// A leaky bucket holding `capacity` units drained at `per_second` units
    /// per second, with the default options (prefix `ratelimit`, server
    /// time, errors returned).
    pub fn new(
        capacity: u64,
        per_second: f64,
        pool: impl Into<RedisPool>,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = LeakyBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build(pool)
    }
}

/// One key's state as Redis holds it, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyState {
    /// The stored `tat` in nanoseconds, `None` when the key does not exist
    /// (a full token bucket, an empty leaky bucket).
    pub tat_ns: Option<u64>,
    /// The server's `TIME` when the state was read, in nanoseconds.
    pub server_now_ns: u64,
    /// The key's remaining TTL; `None` when it has none or does not exist.
    pub ttl: Option<Duration>,
    /// `max(0, tat − server now)`: the time until the bucket is back to its
    /// initial state, on the server's clock.
    pub reset_after: Duration,
    /// Whole units available now, on the server's clock (tokens for a token
    /// bucket, free queue slots for a leaky bucket).
    pub remaining: u64,
}

impl<A: Shaping> RedisLimiter<A> {
    /// Options for a limiter running `algorithm`.
    pub fn builder(algorithm: A) -> RedisLimiterBuilder<A> {
        RedisLimiterBuilder {
            algorithm,
            prefix: DEFAULT_PREFIX.to_owned(),
            time: TimeSource::default(),
            policy: FailurePolicy::default(),
        }
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
    /// since the limiter was built: a number to export and alert on.
    pub fn policy_failures(&self) -> u64 {
        self.inner.core.policy_failures()
    }

    /// The Redis key that holds `key`'s state: `<prefix>|<key>`.
    pub fn redis_key<K: AsRef<[u8]> + ?Sized>(&self, key: &K) -> Vec<u8> {
        self.inner.core.prefix.redis_key(key.as_ref())
    }

    /// `check(key, 1)`.
    pub fn check<K: AsRef<[u8]> + ?Sized>(&self, key: &K) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1)
    }

    /// Policing: allow or deny a request of `cost` units now.
    pub fn check_n<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.check_with(None, key.as_ref(), cost, self.now())
    }

    /// `check_n` at the caller's time `now_ns` (client time, whatever the
    /// limiter's time source): replays and deterministic tests.
    pub fn check_at<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        self.check_with(None, key.as_ref(), cost, self.client_now(now_ns))
    }

    /// The answer of the Python system this replaces: `check(key, 1)` with
    /// its field names.
    pub fn allow_request<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
    ) -> Result<AllowResult, RedisLimitError> {
        self.check(key).map(AllowResult::from)
    }

    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait` (`None`: unbounded), or reject it.
    pub fn reserve<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, RedisLimitError> {
        self.reserve_with(
            None,
            key.as_ref(),
            cost,
            max_wait.map(duration_ns),
            self.now(),
        )
    }

    /// `reserve` at the caller's time `now_ns` (client time).
    pub fn reserve_at<K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        self.reserve_with(
            None,
            key.as_ref(),
            cost,
            max_wait_ns,
            self.client_now(now_ns),
        )
    }

    /// Decides many `(key, cost)` requests in one round trip (one per hash
    /// slot on a cluster), answering in order; a key given twice sees its
    /// earlier decision. A cost above the capacity is answered
    /// `Err(InsufficientCapacity)` in its slot without reaching Redis.
    ///
    /// Under [`FailurePolicy::ReturnError`], a failure fails the whole call
    /// (on a cluster, the slots decided before it have counted).
    pub fn check_batch<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.batch_with(None, requests, self.now())
    }

    /// `check_batch` at the caller's time `now_ns` (client time).
    pub fn check_batch_at<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.batch_with(None, requests, self.client_now(now_ns))
    }

    /// Reads `key`'s state without changing it, against the server's clock.
    pub fn inspect<K: AsRef<[u8]> + ?Sized>(&self, key: &K) -> Result<KeyState, RedisLimitError> {
        let call = Core::<A>::inspect_call(&self.redis_key(key));
        self.inner.core.inspect_done(self.run(None, &call)?)
    }

    /// Checks out one connection and keeps it: the calls of the returned
    /// session skip the pool, for a caller making many checks in a row.
    pub fn session(&self) -> Result<Session<'_, A>, RedisLimitError> {
        Ok(Session {
            limiter: self,
            conn: self.inner.pool.get()?,
        })
    }

    fn now(&self) -> Now {
        self.inner.core.now()
    }

    fn client_now(&self, now_ns: u64) -> Now {
        self.inner.core.client_now(now_ns)
    }

    /// Sends one script call on the held connection or a pooled one. A
    /// cluster redirect (`MOVED`/`ASK`: the script did not run) is followed
    /// once on a fresh connection, which reads the new slot map; nothing
    /// else is retried.
    fn run(&self, held: Option<&mut Pooled>, call: &Call) -> Result<redis::Value, RedisLimitError> {
        let pool = &self.inner.pool;
        let op = |con: &mut dyn ConnectionLike| call.invoke::<redis::Value>(con);
        let mut fresh;
        let is_held = held.is_some();
        let conn = match held {
            Some(conn) => conn,
            None => {
                fresh = pool.get()?;
                &mut fresh
            }
        };
        match op(conn.con()) {
            Ok(value) => Ok(value),
            Err(e) => {
                let redirected = matches!(
                    e.kind(),
                    ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
                );
                if redirected {
                    conn.mark_broken();
                    if !is_held {
                        let mut again = pool.get()?;
                        return op(again.con()).map_err(|e| pool.call_failed(&mut again, e));
                    }
                }
                Err(pool.call_failed(conn, e))
            }
        }
    }

    fn check_with(
        &self,
        held: Option<&mut Pooled>,
        key: &[u8],
        cost: u64,
        now: Now,
    ) -> Result<Decision, RedisLimitError> {
        let core = &self.inner.core;
        core.capacity_ok(cost)?;
        let redis_key = core.prefix.redis_key(key);
        let result = self.run(held, &core.check_call(&redis_key, cost, now));
        core.check_done(&redis_key, cost, result)
    }

    fn reserve_with(
        &self,
        held: Option<&mut Pooled>,
        key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Result<Reservation, RedisLimitError> {
        let core = &self.inner.core;
        core.capacity_ok(cost)?;
        let redis_key = core.prefix.redis_key(key);
        let result = self.run(held, &core.reserve_call(&redis_key, cost, max_wait_ns, now));
        core.reserve_done(&redis_key, cost, max_wait_ns, result)
            .map(|(r, _)| r)
    }

    fn batch_with<K: AsRef<[u8]>>(
        &self,
        mut held: Option<&mut Pooled>,
        requests: &[(K, u64)],
        now: Now,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let core = &self.inner.core;
        let mut plan = core.batch_plan(requests, self.inner.pool.is_cluster(), now);
        for g in 0..plan.calls() {
            let result = self.run(held.as_deref_mut(), &core.batch_call(&plan, g));
            core.batch_settle(&mut plan, g, result)?;
        }
        Ok(Core::<A>::batch_done(plan))
    }
}

/// A limiter on one held connection (see [`RedisLimiter::session`]): the
/// same calls, without a pool check-out each. If Redis fails, the failure
/// policy applies as usual; a session whose connection broke keeps failing,
/// so drop it and start another.
pub struct Session<'a, A: Shaping> {
    limiter: &'a RedisLimiter<A>,
    conn: Pooled,
}

impl<A: Shaping> core::fmt::Debug for Session<'_, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("limiter", self.limiter)
            .finish_non_exhaustive()
    }
}

impl<A: Shaping> Session<'_, A> {
    /// `check(key, 1)`.
    pub fn check<K: AsRef<[u8]> + ?Sized>(&mut self, key: &K) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1)
    }

    /// Policing: allow or deny a request of `cost` units now.
    pub fn check_n<K: AsRef<[u8]> + ?Sized>(
        &mut self,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        let now = self.limiter.now();
        self.limiter
            .check_with(Some(&mut self.conn), key.as_ref(), cost, now)
    }

    /// The answer of the Python system this replaces.
    pub fn allow_request<K: AsRef<[u8]> + ?Sized>(
        &mut self,
        key: &K,
    ) -> Result<AllowResult, RedisLimitError> {
        self.check(key).map(AllowResult::from)
    }

    /// Shaping: see [`RedisLimiter::reserve`].
    pub fn reserve<K: AsRef<[u8]> + ?Sized>(
        &mut self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, RedisLimitError> {
        let now = self.limiter.now();
        self.limiter.reserve_with(
            Some(&mut self.conn),
            key.as_ref(),
            cost,
            max_wait.map(duration_ns),
            now,
        )
    }

    /// Many checks in one round trip: see [`RedisLimiter::check_batch`].
    pub fn check_batch<K: AsRef<[u8]>>(
        &mut self,
        requests: &[(K, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let now = self.limiter.now();
        self.limiter.batch_with(Some(&mut self.conn), requests, now)
    }
}
