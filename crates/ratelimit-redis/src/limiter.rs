//! The limiters: [`RedisLimiter`] over any [`Algorithm`], with the
//! [`TokenBucketRedis`] and [`LeakyBucketRedis`] shorthands, their builder,
//! and [`Session`], a limiter on a held connection.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    Algorithm, AllowResult, Decision, InsufficientCapacity, LeakyBucket, Quota, Rate, Reason,
    Reservation, TokenBucket,
};
use redis::{ConnectionLike, ErrorKind, ServerErrorKind};

use crate::config::{DEFAULT_CLIENT_TTL_MARGIN, FailurePolicy, TimeSource};
use crate::error::RedisLimitError;
use crate::fallback::Fallback;
use crate::key::{self, DEFAULT_PREFIX, Prefix};
use crate::pool::{Pooled, RedisPool};
use crate::reply;
use crate::script::{self, Now, scripts};

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
pub struct RedisLimiter<A> {
    inner: Arc<Inner<A>>,
}

impl<A> Clone for RedisLimiter<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<A> {
    algorithm: A,
    prefix: Prefix,
    time: TimeSource,
    policy: FailurePolicy,
    pool: RedisPool,
    fallback: Fallback<A>,
    failures: AtomicU64,
}

impl<A: Algorithm> core::fmt::Debug for RedisLimiter<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("algorithm", &self.inner.algorithm)
            .field("prefix", &self.inner.prefix.as_str())
            .field("time", &self.inner.time)
            .field("policy", &self.inner.policy)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisLimiter`]: prefix, time source, failure policy.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisLimiterBuilder<A> {
    algorithm: A,
    prefix: String,
    time: TimeSource,
    policy: FailurePolicy,
}

impl<A: Algorithm> RedisLimiterBuilder<A> {
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
        script::check_quota(self.algorithm.quota())?;
        Ok(RedisLimiter {
            inner: Arc::new(Inner {
                algorithm: self.algorithm,
                prefix: Prefix::new(&self.prefix)?,
                time: self.time,
                policy: self.policy,
                pool: pool.into(),
                fallback: Fallback::default(),
                failures: AtomicU64::new(0),
            }),
        })
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

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<A: Algorithm> RedisLimiter<A> {
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
        &self.inner.algorithm
    }

    /// The quota this limiter enforces.
    pub fn quota(&self) -> &Quota {
        self.inner.algorithm.quota()
    }

    /// The key prefix (namespace).
    pub fn prefix(&self) -> &str {
        self.inner.prefix.as_str()
    }

    /// How many Redis failures the failure policy has turned into decisions
    /// since the limiter was built: a number to export and alert on.
    pub fn policy_failures(&self) -> u64 {
        // A statistic: no ordering with anything else.
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// The Redis key that holds `key`'s state: `<prefix>|<key>`.
    pub fn redis_key<K: AsRef<[u8]> + ?Sized>(&self, key: &K) -> Vec<u8> {
        self.inner.prefix.redis_key(key.as_ref())
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
        let redis_key = self.redis_key(key);
        let value = self.run(None, |con| {
            scripts().inspect.key(redis_key.as_slice()).invoke(con)
        })?;
        let raw = reply::raw_state(value)?;
        let q = self.quota();
        let tat = raw.tat_ns.unwrap_or(0);
        Ok(KeyState {
            tat_ns: raw.tat_ns,
            server_now_ns: raw.server_now_ns,
            ttl: u64::try_from(raw.pttl_ms).ok().map(Duration::from_millis),
            reset_after: Duration::from_nanos(q.reset_after_ns(tat, raw.server_now_ns)),
            remaining: q.remaining(tat, raw.server_now_ns),
        })
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
        match self.inner.time {
            TimeSource::Server => Now::Server,
            TimeSource::Client { ttl_margin } => Now::Client {
                now_ns: wall_clock_ns(),
                margin: ttl_margin,
            },
        }
    }

    fn client_now(&self, now_ns: u64) -> Now {
        let margin = match self.inner.time {
            TimeSource::Client { ttl_margin } => ttl_margin,
            TimeSource::Server => DEFAULT_CLIENT_TTL_MARGIN,
        };
        Now::Client { now_ns, margin }
    }

    fn capacity_ok(&self, cost: u64) -> Result<(), InsufficientCapacity> {
        let capacity = self.quota().capacity();
        if cost > capacity {
            Err(InsufficientCapacity { cost, capacity })
        } else {
            Ok(())
        }
    }

    /// Runs one script call on the held connection or a pooled one. A
    /// cluster redirect (`MOVED`/`ASK`: the script did not run) is followed
    /// once on a fresh connection, which reads the new slot map; nothing
    /// else is retried.
    fn run(
        &self,
        held: Option<&mut Pooled>,
        op: impl Fn(&mut dyn ConnectionLike) -> redis::RedisResult<redis::Value>,
    ) -> Result<redis::Value, RedisLimitError> {
        let pool = &self.inner.pool;
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
        self.capacity_ok(cost)?;
        let redis_key = self.inner.prefix.redis_key(key);
        let quota = self.quota();
        let result = self
            .run(held, |con| {
                let mut inv = scripts().check.key(redis_key.as_slice());
                script::common_args(&mut inv, now, quota);
                inv.arg(cost).invoke(con)
            })
            .and_then(|v| reply::decision(&reply::integers(v)?, quota.capacity()));
        result.or_else(|e| self.check_failed(&redis_key, cost, e))
    }

    fn reserve_with(
        &self,
        held: Option<&mut Pooled>,
        key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Result<Reservation, RedisLimitError> {
        self.capacity_ok(cost)?;
        let redis_key = self.inner.prefix.redis_key(key);
        let quota = self.quota();
        let kind = match self.inner.algorithm.kind() {
            ratelimit_core::AlgorithmKind::TokenBucket => "token",
            ratelimit_core::AlgorithmKind::LeakyBucket => "leaky",
        };
        let max_wait = script::max_wait_arg(max_wait_ns);
        let result = self
            .run(held, |con| {
                let mut inv = scripts().reserve.key(redis_key.as_slice());
                script::common_args(&mut inv, now, quota);
                inv.arg(kind).arg(cost).arg(max_wait.as_str()).invoke(con)
            })
            .and_then(|v| reply::reservation(&reply::integers(v)?, quota.capacity()));
        result.or_else(|e| self.reserve_failed(&redis_key, cost, max_wait_ns, e))
    }

    fn batch_with<K: AsRef<[u8]>>(
        &self,
        mut held: Option<&mut Pooled>,
        requests: &[(K, u64)],
        now: Now,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let quota = self.quota();
        let mut answers: Vec<Option<Result<Decision, InsufficientCapacity>>> =
            vec![None; requests.len()];
        let keys: Vec<Vec<u8>> = requests
            .iter()
            .map(|(k, _)| self.inner.prefix.redis_key(k.as_ref()))
            .collect();
        // Groups of request indices that one script call may decide: all of
        // them on one Redis, one group per hash slot on a cluster.
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        let cluster = self.inner.pool.is_cluster();
        for (i, (_, cost)) in requests.iter().enumerate() {
            if let Err(e) = self.capacity_ok(*cost) {
                answers[i] = Some(Err(e));
            } else {
                let group = if cluster { key::slot(&keys[i]) } else { 0 };
                groups.entry(group).or_default().push(i);
            }
        }
        for indices in groups.values() {
            let result = self
                .run(held.as_deref_mut(), |con| {
                    let mut inv = scripts().check_batch.prepare_invoke();
                    for &i in indices {
                        inv.key(keys[i].as_slice());
                    }
                    script::common_args(&mut inv, now, quota);
                    for &i in indices {
                        inv.arg(requests[i].1);
                    }
                    inv.invoke(con)
                })
                .and_then(|v| reply::decisions(v, indices.len(), quota.capacity()));
            match result {
                Ok(decisions) => {
                    for (&i, d) in indices.iter().zip(decisions) {
                        answers[i] = Some(Ok(d));
                    }
                }
                Err(e) => {
                    if !e.is_redis_failure() || self.inner.policy == FailurePolicy::ReturnError {
                        return Err(e);
                    }
                    for &i in indices {
                        answers[i] = Some(Ok(self.policy_check(&keys[i], requests[i].1)?));
                    }
                }
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| unreachable!("every request is answered")))
            .collect())
    }

    /// Applies the failure policy to a failed `check`.
    fn check_failed(
        &self,
        redis_key: &[u8],
        cost: u64,
        e: RedisLimitError,
    ) -> Result<Decision, RedisLimitError> {
        if !e.is_redis_failure() || self.inner.policy == FailurePolicy::ReturnError {
            return Err(e);
        }
        Ok(self.policy_check(redis_key, cost)?)
    }

    /// The failure policy's answer to a `check` Redis could not decide
    /// (the policy is not `ReturnError`).
    fn policy_check(&self, redis_key: &[u8], cost: u64) -> Result<Decision, InsufficientCapacity> {
        // A statistic: no ordering with anything else.
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let q = self.quota();
        Ok(match self.inner.policy {
            FailurePolicy::FailOpen => Decision {
                allowed: true,
                remaining: 0,
                retry_after: None,
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                self.inner
                    .fallback
                    .check(&self.inner.algorithm, redis_key, cost)?
            }
            _ => Decision {
                allowed: false,
                remaining: 0,
                retry_after: Some(q.interval()),
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailClosed,
            },
        })
    }

    /// Applies the failure policy to a failed `reserve`.
    fn reserve_failed(
        &self,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        e: RedisLimitError,
    ) -> Result<Reservation, RedisLimitError> {
        if !e.is_redis_failure() || self.inner.policy == FailurePolicy::ReturnError {
            return Err(e);
        }
        // A statistic: no ordering with anything else.
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let q = self.quota();
        Ok(match self.inner.policy {
            FailurePolicy::FailOpen => Reservation {
                allowed: true,
                wait: Duration::ZERO,
                retry_after: None,
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                self.inner
                    .fallback
                    .reserve(&self.inner.algorithm, redis_key, cost, max_wait_ns)?
            }
            _ => Reservation {
                allowed: false,
                wait: Duration::ZERO,
                retry_after: Some(q.interval()),
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailClosed,
            },
        })
    }
}

/// A limiter on one held connection (see [`RedisLimiter::session`]): the
/// same calls, without a pool check-out each. If Redis fails, the failure
/// policy applies as usual; a session whose connection broke keeps failing,
/// so drop it and start another.
pub struct Session<'a, A> {
    limiter: &'a RedisLimiter<A>,
    conn: Pooled,
}

impl<A: Algorithm> core::fmt::Debug for Session<'_, A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("limiter", self.limiter)
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm> Session<'_, A> {
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
