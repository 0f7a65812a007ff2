//! [`RedisLimiter`]: one limiter type over a bucket algorithm ([`Shaping`]) and either
//! connection, its builder, and its blocking calls on a [`RedisPool`]; the
//! `async` calls on an `AsyncRedisConnection` are in `async_limiter.rs`.
//! Both only send the calls of the operations in `op.rs`.

use core::marker::PhantomData;
use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{
    Algorithm, AllowResult, Clock, Decision, FixedWindow, InsufficientCapacity, LeakyBucket, Quota,
    Rate, Reservation, Shaping, SlidingWindow, Strategy, TokenBucket,
};
use ratelimit_memory::MonotonicClock;

use crate::config::{CircuitBreaker, FailurePolicy, TimeSource};
use crate::denied::{DeniedCache, Lookup};
use crate::error::RedisLimitError;
use crate::fallback::SharedClock;
use crate::key::RedisKey;
use crate::keyspace::{DEFAULT_MAX_KEY_LEN, DEFAULT_PREFIX, KeySpace, Secret};
use crate::observe::{Health, Stats};
use crate::op::{Engine, MAX_APPENDS, Op, Request, Settings, converted_elsewhere, duration_ns};
use crate::pool::RedisPool;
use crate::receipt::RedisReceipt;
use crate::reply::KeyState;
use crate::script::{self, Now};

/// A token bucket in Redis: bursts up to the capacity, refilled at the
/// rate; `reserve` borrows from the future.
pub type TokenBucketRedis = RedisLimiter<TokenBucket>;

/// A leaky bucket in Redis: a bounded queue drained at exactly the rate;
/// `reserve` spaces requests one interval apart.
pub type LeakyBucketRedis = RedisLimiter<LeakyBucket>;

/// A fixed window in Redis: at most `L` per window, the windows aligned to
/// the Unix epoch under the server's time (a one-minute window resets at
/// the top of every minute). Policing only.
pub type FixedWindowRedis = RedisLimiter<FixedWindow>;

/// A sliding window counter in Redis: about `L` in any window-long span,
/// without the fixed window's burst at the boundary. Policing only.
pub type SlidingWindowRedis = RedisLimiter<SlidingWindow>;

mod sealed {
    pub trait Sealed {}
}

/// What a [`RedisLimiter`] sends its calls on: a [`RedisPool`] (blocking
/// calls) or an `AsyncRedisConnection` (`async` calls, feature `tokio`).
/// Sealed: the crate implements it for these two only.
pub trait Transport: sealed::Sealed + Clone + core::fmt::Debug + Send + Sync + 'static {
    /// Whether this reaches a Redis Cluster (batches split by hash slot).
    #[doc(hidden)]
    fn is_cluster_transport(&self) -> bool;
}

impl sealed::Sealed for RedisPool {}

impl Transport for RedisPool {
    fn is_cluster_transport(&self) -> bool {
        self.is_cluster()
    }
}

#[cfg(feature = "tokio")]
impl sealed::Sealed for crate::AsyncRedisConnection {}

#[cfg(feature = "tokio")]
impl Transport for crate::AsyncRedisConnection {
    fn is_cluster_transport(&self) -> bool {
        self.is_cluster()
    }
}

/// A keyed rate limiter whose state lives in Redis, shared by every process
/// that uses the same Redis, prefix and quota. Cloning is cheap and shares
/// everything.
///
/// One type, two ways to send: `RedisLimiter<A>` (the default, on a
/// [`RedisPool`]) makes blocking calls; `AsyncRedisLimiter<A>`
/// (`RedisLimiter<A, AsyncRedisConnection>`, feature `tokio`) makes the
/// same calls as `async fn`s, plus `acquire`. Both are built by the same
/// [`builder`](Self::builder) and decide exactly alike: they build each
/// script call, decode each reply and apply the failure policy and the
/// circuit breaker in one shared, I/O-free core.
///
/// Every call is one script run (one round trip), atomic in Redis. Methods
/// return `Err` for what the caller must fix (a cost above the capacity, a
/// key too long), for misconfigurations, and under
/// [`FailurePolicy::ReturnError`] for Redis failures; other policies turn
/// Redis failures into decisions whose `reason` says so.
///
/// Keys are anything [`RedisKey`]: strings, bytes, integers, IP and socket
/// addresses, tuples of these.
///
/// ```no_run
/// use ratelimit_redis::{RedisPool, TokenBucketRedis};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = TokenBucketRedis::new(100, 10.0, RedisPool::open("redis://127.0.0.1/")?)?;
/// let ip: std::net::IpAddr = "192.0.2.7".parse()?;
/// assert!(limiter.check(&ip)?.allowed);
/// assert!(limiter.check(&("tenant-7", 42u64))?.allowed);
/// # Ok(())
/// # }
/// ```
pub struct RedisLimiter<A: Algorithm, C = RedisPool> {
    inner: Arc<Inner<A, C>>,
}

impl<A: Algorithm, C> Clone for RedisLimiter<A, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<A: Algorithm, C> {
    engine: Engine<A>,
    conn: C,
    /// The denied-key cache, when turned on.
    denied: Option<DeniedCache>,
    /// The queue of coalesced checks, when turned on (async only).
    #[cfg(feature = "tokio")]
    coalescer: Option<crate::coalesce::Coalescer>,
}

impl<A: Algorithm, C: core::fmt::Debug> core::fmt::Debug for RedisLimiter<A, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("engine", &self.inner.engine)
            .field("conn", &self.inner.conn)
            .finish()
    }
}

/// Options of a [`RedisLimiter`]: prefix, key bytes, time source, failure
/// policy, circuit breaker. `C` is the connection it will be built on,
/// inferred from [`build`](Self::build)'s argument.
#[must_use]
pub struct RedisLimiterBuilder<A, C = RedisPool> {
    algorithm: A,
    prefix: String,
    time: TimeSource,
    policy: FailurePolicy,
    breaker: Option<CircuitBreaker>,
    max_key_len: usize,
    secret: Option<Secret>,
    clock: Option<SharedClock>,
    denied_keys: usize,
    /// Whether the async limiter coalesces its checks (`coalesce.rs`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) coalesce: bool,
    conn: PhantomData<fn() -> C>,
}

impl<A: Algorithm, C> core::fmt::Debug for RedisLimiterBuilder<A, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisLimiterBuilder")
            .field("algorithm", &self.algorithm)
            .field("prefix", &self.prefix)
            .field("time", &self.time)
            .field("policy", &self.policy)
            .field("breaker", &self.breaker)
            .field("max_key_len", &self.max_key_len)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm, C: Transport> RedisLimiterBuilder<A, C> {
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

    /// The circuit breaker (default: [`CircuitBreaker::default`], 5
    /// failures in a row, 1 s of cool-down); `None` turns it off, so that
    /// every call tries Redis and waits its timeouts while Redis is down.
    pub fn circuit_breaker(mut self, breaker: Option<CircuitBreaker>) -> Self {
        self.breaker = breaker;
        self
    }

    /// The longest key accepted, in bytes of its [`RedisKey`] form
    /// (default [`DEFAULT_MAX_KEY_LEN`], 256): a longer key is refused with
    /// `KeyTooLong` before anything is sent, which bounds the bytes of
    /// every Redis key (and of the fallback's keys) at the prefix plus this.
    /// Ignored with [`hash_keys`](Self::hash_keys), whose keys all have the
    /// same length.
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max;
        self
    }

    /// Stores keys hashed: the Redis key of `key` is `<prefix>|` and the
    /// first 16 bytes of HMAC-SHA-256(`secret`, key bytes) in lowercase hex
    /// (32 digits), so API keys and other secrets never become Redis key
    /// names, and keys of any length are accepted. A key with a hash tag
    /// (`{tenant9}:login`) keeps a hashed tag, `{` + the first 8 bytes of
    /// HMAC-SHA-256(`secret`, tag) in hex + `}`, so that related keys still
    /// share a cluster slot.
    ///
    /// The secret: at least 16 bytes (32 random bytes are best), the same
    /// in every process sharing the limits (in any language: Python's
    /// `hmac.new(secret, key, "sha256").hexdigest()[:32]` gives the same
    /// name), kept out of logs (`Debug` never shows it). Changing it starts
    /// every key afresh (the old states expire within the quota's period).
    pub fn hash_keys(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(Secret(secret.into()));
        self
    }

    /// The monotonic clock of the circuit breaker's cool-down, the
    /// fallback limiter and the rate of log lines (default: a
    /// [`MonotonicClock`]); a test passes an `Arc<ManualClock>` to drive
    /// them without sleeping. Decisions made by Redis never read it.
    pub fn monotonic_clock(mut self, clock: impl Clock + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Caches Redis's denials locally for up to `max_keys` keys (default
    /// 0: off). After Redis denies a check of a key with cost `c` and
    /// `retry_after` `d`, checks of that key with a cost of at least `c`
    /// are denied without a round trip until `d` has passed since the
    /// denied request was sent (on the [`monotonic_clock`](Self::monotonic_clock)).
    /// Exact as long as only this limiter's own calls move a key's state
    /// back: a refund or a reset by another process is not seen (see
    /// docs/redis.md, "Denied-key cache"). `stats().cached_denials`
    /// counts the checks it answered.
    pub fn cache_denials(mut self, max_keys: usize) -> Self {
        self.denied_keys = max_keys;
        self
    }

    /// Builds the limiter on `conn`: a [`RedisPool`] for a limiter of
    /// blocking calls, an `AsyncRedisConnection` for `async` ones. Nothing
    /// is sent to Redis (the pool or connection checked the configuration
    /// when it was built).
    pub fn build(self, conn: C) -> Result<RedisLimiter<A, C>, RedisLimitError> {
        let params = script::Params::of(&self.algorithm, self.time == TimeSource::Server)?;
        if let Some(b) = self.breaker {
            if b.failures() == 0 || b.cool_down().is_zero() {
                return Err(RedisLimitError::InvalidOption(
                    "the circuit breaker needs at least 1 failure and a cool-down above zero"
                        .to_owned(),
                ));
            }
        }
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(MonotonicClock::new()));
        let settings = Settings {
            keys: KeySpace::new(&self.prefix, self.max_key_len, self.secret.as_ref())?,
            algorithm: self.algorithm,
            time: self.time,
            policy: self.policy,
            breaker: self.breaker,
            clock: Arc::clone(&clock),
        };
        Ok(RedisLimiter {
            inner: Arc::new(Inner {
                engine: Engine::new(settings, params, conn.is_cluster_transport()),
                conn,
                denied: (self.denied_keys > 0).then(|| DeniedCache::new(self.denied_keys, clock)),
                #[cfg(feature = "tokio")]
                coalescer: self.coalesce.then(Default::default),
            }),
        })
    }
}

impl<C: Transport> RedisLimiter<TokenBucket, C> {
    /// A token bucket of `capacity` tokens refilled at `per_second` tokens
    /// per second, with the default options (prefix `ratelimit`, server
    /// time, errors returned, the default circuit breaker).
    pub fn new(
        capacity: u64,
        per_second: f64,
        conn: impl Into<C>,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = TokenBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build(conn.into())
    }
}

impl<A: Shaping, C: Transport> RedisLimiter<A, C> {
    /// The quota (capacity and rate) this bucket was built with; after a
    /// [`reconfigure`](RedisLimiter::reconfigure),
    /// [`current_quota`](Self::current_quota) is the one it enforces.
    pub fn quota(&self) -> &Quota {
        self.inner.engine.algorithm.quota()
    }

    /// The quota this bucket enforces now (for keys without their own),
    /// and its version: 0 as built, one more at each change.
    pub fn current_quota(&self) -> (u64, Quota) {
        let (version, quota) = self
            .inner
            .engine
            .current()
            .unwrap_or((0, *self.inner.engine.algorithm.quota()));
        (u64::try_from(version).unwrap_or(u64::MAX), quota)
    }
}

impl<A: Algorithm, C: Transport> RedisLimiter<A, C> {
    /// A window limiter's quota now (the window algorithm with its current
    /// `L` and `W`) and its version: 0 as built, one more at each change
    /// (`reconfigure_window`). `None` on a bucket limiter (see
    /// `current_quota`).
    pub fn current_window(&self) -> Option<(u64, ratelimit_core::AnyAlgorithm)> {
        let e = &self.inner.engine;
        let (version, limit, window_ns) = e.window_current().ok()?;
        let any = ratelimit_core::AnyAlgorithm::with_window(
            e.algorithm.kind(),
            limit,
            Duration::from_nanos(window_ns),
        )
        .ok()?;
        Some((u64::try_from(version).unwrap_or(u64::MAX), any))
    }
}

impl<C: Transport> RedisLimiter<FixedWindow, C> {
    /// A fixed window of at most `limit` units per `window`, with the
    /// default options (prefix `ratelimit`, server time, errors returned,
    /// the default circuit breaker).
    pub fn new(limit: u64, window: Duration, conn: impl Into<C>) -> Result<Self, RedisLimitError> {
        Self::builder(FixedWindow::new(limit, window)?).build(conn.into())
    }
}

impl<C: Transport> RedisLimiter<SlidingWindow, C> {
    /// A sliding window counter of about `limit` units per `window`, with
    /// the default options.
    pub fn new(limit: u64, window: Duration, conn: impl Into<C>) -> Result<Self, RedisLimitError> {
        Self::builder(SlidingWindow::new(limit, window)?).build(conn.into())
    }
}

impl<C: Transport> RedisLimiter<LeakyBucket, C> {
    /// A leaky bucket holding `capacity` units drained at `per_second` units
    /// per second, with the default options.
    pub fn new(
        capacity: u64,
        per_second: f64,
        conn: impl Into<C>,
    ) -> Result<Self, RedisLimitError> {
        let algorithm = LeakyBucket::with_rate(capacity, Rate::from_per_second_f64(per_second))?;
        Self::builder(algorithm).build(conn.into())
    }
}

impl<A: Algorithm, C: Transport> RedisLimiter<A, C> {
    /// Options for a limiter running `algorithm`.
    pub fn builder(algorithm: A) -> RedisLimiterBuilder<A, C> {
        RedisLimiterBuilder {
            algorithm,
            prefix: DEFAULT_PREFIX.to_owned(),
            time: TimeSource::default(),
            policy: FailurePolicy::default(),
            breaker: Some(CircuitBreaker::default()),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            secret: None,
            clock: None,
            denied_keys: 0,
            coalesce: false,
            conn: PhantomData,
        }
    }

    /// The algorithm (and so the quota) this limiter enforces.
    pub fn algorithm(&self) -> &A {
        &self.inner.engine.algorithm
    }

    /// The key prefix (namespace).
    pub fn prefix(&self) -> &str {
        self.inner.engine.keys.prefix()
    }

    /// The longest key accepted (not hashed), in bytes.
    pub fn max_key_len(&self) -> usize {
        self.inner.engine.keys.max_key_len()
    }

    /// Whether keys are stored hashed ([`RedisLimiterBuilder::hash_keys`]).
    pub fn hashes_keys(&self) -> bool {
        self.inner.engine.keys.hashed()
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.engine.policy
    }

    /// What the limiter has counted since it was built: the failure
    /// policy's answers, Redis failures, calls the open circuit kept from
    /// Redis, misconfigurations, corrupt states repaired.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.engine.stats();
        stats.cached_denials = self.inner.denied.as_ref().map_or(0, DeniedCache::hits);
        stats
    }

    /// Whether Redis is in use right now, and if not why: the circuit
    /// breaker's state, or a misconfiguration.
    pub fn health(&self) -> Health {
        self.inner.engine.health()
    }

    /// The Redis key that holds `key`'s state: `<prefix>|<key bytes>`, or
    /// the hashed form; `KeyTooLong` for a key the limiter refuses.
    pub fn redis_key<K: RedisKey + ?Sized>(&self, key: &K) -> Result<Vec<u8>, RedisLimitError> {
        self.inner.engine.keys.redis_key(key)
    }

    pub(crate) fn engine(&self) -> &Engine<A> {
        &self.inner.engine
    }

    pub(crate) fn conn(&self) -> &C {
        &self.inner.conn
    }

    /// The denied-key cache, when turned on.
    pub(crate) fn denied(&self) -> Option<&DeniedCache> {
        self.inner.denied.as_ref()
    }

    /// The queue of coalesced checks, when turned on.
    #[cfg(feature = "tokio")]
    pub(crate) fn coalescer(&self) -> Option<&crate::coalesce::Coalescer> {
        self.inner.coalescer.as_ref()
    }
}

/// The blocking calls, on a [`RedisPool`]. Each call blocks its thread for
/// one round trip (at most the pool's timeouts; while the circuit breaker
/// is open, not at all).
impl<A: Algorithm> RedisLimiter<A, RedisPool> {
    /// Sends an operation's calls.
    pub(crate) fn run<R: Request<A>>(
        &self,
        mut op: Op<'_, A, R>,
    ) -> Result<R::Output, RedisLimitError> {
        while let Some(call) = op.next_call() {
            let reply = self.conn().run(call);
            op.take(reply);
        }
        op.finish()
    }

    /// `check_n(key, 1)`.
    pub fn check<K: RedisKey + ?Sized>(&self, key: &K) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1)
    }

    /// Policing: allow or deny a request of `cost` units now.
    pub fn check_n<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if let Some(target) = e.target(None)? {
            // Under a changed quota: no denied-key cache (its denials may
            // be of the former quota).
            let now = e.now(None);
            return self.run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?);
        }
        if e.window_tagged() {
            // Under a changed window quota: no denied-key cache either.
            let r = self.run(e.check(key, cost, e.now(None))?);
            if self.caught_up(&r)? {
                return self.check_n(key, cost);
            }
            return r;
        }
        if let Some(cache) = self.denied() {
            return match cache.check(e, key, cost)? {
                Lookup::Hit(d) => Ok(d),
                Lookup::Miss(op, sent) => {
                    let r = self.run(op);
                    if self.caught_up(&r)? {
                        return self.check_n(key, cost);
                    }
                    let d = r?;
                    cache.learn(&sent, &d);
                    Ok(d)
                }
            };
        }
        let r = self.run(e.check(key, cost, e.now(None))?);
        if self.caught_up(&r)? {
            return self.check_n(key, cost);
        }
        r
    }

    /// After a call without quota tags met a key that another limiter on
    /// the prefix converted to a changed quota: adopts the quota record,
    /// and says whether to call again (now with tags).
    fn caught_up<T>(&self, r: &Result<T, RedisLimitError>) -> Result<bool, RedisLimitError> {
        match r {
            Err(err) if converted_elsewhere(err) && self.engine().is_window() => {
                let e = self.engine();
                let (version, _, _) = e.window_current()?;
                let was_tagged = e.window_tagged();
                self.refresh_window()?;
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
                let entries = self.run(e.quota_record(version, ""))?.unwrap_or_default();
                e.adopt(version, &entries)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Replaces a window limiter's `L` and `W` (those of `window`) from
    /// `at_ns` on (the time the scripts' `now` is counted in), for every
    /// key: a change that keeps `W` keeps every key's counts, under the new
    /// limit; a new `W` starts every key afresh (docs/semantics.md,
    /// "Changing a quota while it runs"; windows have no strategies).
    /// Returns after one call, whatever the number of keys: each key is
    /// brought to the new quota at its next call, by its tag.
    ///
    /// The change is appended to the prefix's quota record
    /// (`<prefix>#quota`), as a bucket's; another limiter on the prefix
    /// adopts it when it meets a key stored under it (it never decides
    /// such a key with its older quota), or at
    /// [`refresh_window`](Self::refresh_window). No expiry walk: a kept
    /// state keeps its window, and so its expiry. The batch call, the
    /// refundable check and `check_all` after a change: see docs/redis.md,
    /// "Changing quotas".
    ///
    /// # Errors
    /// `InvalidOption` on a bucket limiter (its quota changes with
    /// `reconfigure`) or for a window the scripts cannot run exactly; a
    /// Redis failure (the change is then not made).
    pub fn reconfigure_window_at(&self, window: A, at_ns: u64) -> Result<(), RedisLimitError> {
        let e = self.engine();
        for _ in 0..MAX_APPENDS {
            let (version, change) = e.window_change(&window, at_ns)?;
            match self.run(e.quota_record(version, &change.entry()))? {
                None => {
                    if !e.window_push(version, change) {
                        // A clone adopted it from the record first.
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

    /// `check_n(key, cost)` of a window limiter under the key's own
    /// `window` (its `L` and `W`: a plan, an override) instead of the
    /// limiter's. When the quota a key is decided under changes (its own
    /// changes, or it gets or loses one) its counts carry over if `W` is
    /// the same, else it starts afresh, in the same call. A key on its own
    /// window does not follow [`reconfigure_window`](Self::reconfigure_window).
    ///
    /// # Errors
    /// `InvalidOption` on a bucket limiter (see `check_with_quota`) or for
    /// a window the scripts cannot run exactly; `InsufficientCapacity`
    /// when `cost` is above the window's `L` (after a call with cost 0 that
    /// still moves the key to `window`); a Redis failure as `check_n`.
    pub fn check_with_window<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        window: &A,
    ) -> Result<Decision, RedisLimitError> {
        let now = self.engine().now(None);
        self.check_own_window(key, cost, window, now)
    }

    /// `check_with_window` at the caller's time `now_ns` (client time).
    ///
    /// # Errors
    /// As `check_with_window`.
    pub fn check_with_window_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        window: &A,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let now = self.engine().now(Some(now_ns));
        self.check_own_window(key, cost, window, now)
    }

    fn check_own_window<K: RedisKey + ?Sized>(
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
            let r = self.run(e.check_window(redis_key.clone(), cost, now, Some(window))?);
            if !self.caught_up(&r)? {
                return r;
            }
        }
    }

    /// [`reconfigure_window_at`](Self::reconfigure_window_at) now: the
    /// server's time (one call to read it), or the caller's clock under
    /// client time.
    ///
    /// # Errors
    /// As `reconfigure_window_at`.
    pub fn reconfigure_window(&self, window: A) -> Result<(), RedisLimitError> {
        let e = self.engine();
        let at_ns = match e.now(None) {
            Now::Server => self.run(e.server_time())?,
            Now::Client { now_ns, .. } => now_ns,
        };
        self.reconfigure_window_at(window, at_ns)
    }

    /// Adopts the changes of a window limiter's quota other limiters on
    /// the prefix made (one call to the quota record): the version it is
    /// at afterwards.
    ///
    /// # Errors
    /// `InvalidOption` on a bucket limiter (see `refresh_quota`); a Redis
    /// failure; `Misconfigured` when the record disagrees with a change
    /// this limiter made.
    pub fn refresh_window(&self) -> Result<u64, RedisLimitError> {
        let e = self.engine();
        let (version, _, _) = e.window_current()?;
        let entries = self.run(e.quota_record(version, ""))?.unwrap_or_default();
        e.window_adopt(version, &entries)?;
        Ok(u64::try_from(e.window_current()?.0).unwrap_or(u64::MAX))
    }

    /// `check_n` at the caller's time `now_ns` (client time, whatever the
    /// limiter's time source): replays and deterministic tests.
    pub fn check_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        if let Some(target) = e.target(None)? {
            let now = e.now(Some(now_ns));
            return self.run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?);
        }
        let r = self.run(e.check(key, cost, e.now(Some(now_ns)))?);
        if self.caught_up(&r)? {
            return self.check_at(key, cost, now_ns);
        }
        r
    }

    /// The answer of the Python system this replaces: `check(key, 1)` with
    /// its field names.
    pub fn allow_request<K: RedisKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<AllowResult, RedisLimitError> {
        self.check(key).map(AllowResult::from)
    }

    /// `check_n` that can be undone: the decision, and when Redis
    /// admitted a cost above zero a [`RedisReceipt`] to give it back with
    /// [`refund`](Self::refund) (the work it paid for did not happen).
    /// A failure policy's answer carries no receipt.
    pub fn check_refundable<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<(Decision, Option<RedisReceipt>), RedisLimitError> {
        let e = self.engine();
        self.check_refundable_now(key, cost, e.now(None))
    }

    /// `check_refundable` at the caller's time `now_ns` (client time).
    pub fn check_refundable_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now_ns: u64,
    ) -> Result<(Decision, Option<RedisReceipt>), RedisLimitError> {
        let e = self.engine();
        self.check_refundable_now(key, cost, e.now(Some(now_ns)))
    }

    fn check_refundable_now<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
    ) -> Result<(Decision, Option<RedisReceipt>), RedisLimitError> {
        let e = self.engine();
        let redis_key = e.keys.redis_key(key)?;
        let (d, admitted) = match e.target(None)? {
            Some(target) => {
                self.run(e.check_receipt_tagged(redis_key.clone(), cost, now, target)?)?
            }
            None => self.run(e.check_receipt(redis_key.clone(), cost, now)?)?,
        };
        Ok((d, e.receipt(redis_key, cost, admitted)))
    }

    /// Gives back the cost of the admission `receipt` records, exactly or
    /// not at all (see [`RedisReceipt`]): whether anything was given back.
    /// A receipt of another limiter gives nothing back. Neither the
    /// circuit breaker nor the failure policy apply: a failure is returned
    /// (and the cost stays consumed, the safe side).
    pub fn refund(&self, receipt: RedisReceipt) -> Result<bool, RedisLimitError> {
        if let Some(cache) = self.denied() {
            // The state moves back: a cached denial may no longer hold.
            cache.forget(&receipt.redis_key);
        }
        let e = self.engine();
        match e.refund(receipt, e.now(None))? {
            Some(op) => self.run(op),
            None => Ok(false),
        }
    }

    /// `refund` at the caller's time `now_ns` (client time): which windows
    /// still count, and a restored bucket's expiry.
    pub fn refund_at(&self, receipt: RedisReceipt, now_ns: u64) -> Result<bool, RedisLimitError> {
        if let Some(cache) = self.denied() {
            // The state moves back: a cached denial may no longer hold.
            cache.forget(&receipt.redis_key);
        }
        let e = self.engine();
        match e.refund(receipt, e.now(Some(now_ns)))? {
            Some(op) => self.run(op),
            None => Ok(false),
        }
    }

    /// Decides many `(key, cost)` requests in one round trip (one per hash
    /// slot on a cluster), answering in order; a key given twice sees its
    /// earlier decision. A cost above the capacity is answered
    /// `Err(InsufficientCapacity)` in its slot without reaching Redis; a
    /// key too long fails the whole call before anything is sent.
    ///
    /// Under [`FailurePolicy::ReturnError`], a failure fails the whole call
    /// (on a cluster, the slots decided before it have counted).
    pub fn check_batch<K: RedisKey>(
        &self,
        requests: &[(K, u64)],
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let e = self.engine();
        if e.bucket_changed() {
            return one_by_one(requests, |k, c| self.check_n(k, c));
        }
        let r = self.run(e.batch(requests, e.now(None))?);
        if self.window_batch_again(&r)? {
            return self.check_batch(requests);
        }
        r
    }

    /// After a window batch met a key stored under a quota this limiter
    /// had not seen (the script charged nothing): adopts it, and says
    /// whether to send the batch again (one Redis: one call, which failed
    /// whole; on a cluster the other slots' calls were decided, so the
    /// error is returned).
    fn window_batch_again<T>(
        &self,
        r: &Result<T, RedisLimitError>,
    ) -> Result<bool, RedisLimitError> {
        let e = self.engine();
        Ok(e.is_window() && self.caught_up(r)? && !e.is_cluster())
    }

    /// `check_batch` at the caller's time `now_ns` (client time).
    pub fn check_batch_at<K: RedisKey>(
        &self,
        requests: &[(K, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        let e = self.engine();
        if e.bucket_changed() {
            return one_by_one(requests, |k, c| self.check_at(k, c, now_ns));
        }
        let r = self.run(e.batch(requests, e.now(Some(now_ns)))?);
        if self.window_batch_again(&r)? {
            return self.check_batch_at(requests, now_ns);
        }
        r
    }

    /// Reads `key`'s state without changing it, against the server's
    /// clock (the circuit breaker and the failure policy do not apply).
    pub fn inspect<K: RedisKey + ?Sized>(&self, key: &K) -> Result<KeyState, RedisLimitError> {
        self.run(self.engine().inspect(key)?)
    }
}

/// Shaping, blocking: the buckets only.
impl<A: Shaping> RedisLimiter<A, RedisPool> {
    /// Shaping: admit a request of `cost` units to proceed after a wait of
    /// at most `max_wait` (`None`: unbounded), or reject it.
    pub fn reserve<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait.map(duration_ns), e.now(None), None)
    }

    /// `reserve` at the caller's time `now_ns` (client time).
    pub fn reserve_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait_ns, e.now(Some(now_ns)), None)
    }

    fn reserve_under<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
        own: Option<&Quota>,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        match e.target(own)? {
            Some(target) => {
                let op =
                    e.reserve_tagged(e.keys.redis_key(key)?, cost, max_wait_ns, now, target)?;
                self.run(op).map(|(r, _)| r)
            }
            None => self
                .run(e.reserve(key, cost, max_wait_ns, now)?)
                .map(|(r, _)| r),
        }
    }

    fn check_under<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
        own: &Quota,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        match e.target(Some(own))? {
            Some(target) => self.run(e.check_tagged(e.keys.redis_key(key)?, cost, now, target)?),
            None => Err(RedisLimitError::UnexpectedReply(
                "a key's own quota always has a target".to_owned(),
            )),
        }
    }

    /// Replaces the quota of every key without one of its own with
    /// `quota` from `at_ns` on (the time the scripts' `now` is counted
    /// in: the server's, or the caller's), converting what each key has
    /// consumed with `strategy` (docs/semantics.md, "Changing a quota while
    /// it runs"). Returns after one call: each key is converted
    /// at its next call, exactly as converting it at `at_ns` would (several
    /// changes compose, each at its own time). A time before the previous
    /// change's counts as that change's.
    ///
    /// The change is appended to the prefix's quota record
    /// (`<prefix>#quota`, one call; after the changes of other limiters on
    /// the prefix not seen yet, which this one adopts first). Another
    /// limiter on the prefix adopts it when it meets a key converted to it
    /// (it never decides such a key with its older quota), or at
    /// [`refresh_quota`](Self::refresh_quota). See docs/redis.md,
    /// "Changing quotas".
    ///
    /// A converted state can outlive the expiry it was written with (a
    /// slower rate under keep-consumed, say), so the call then walks the
    /// prefix's keys once (`SCAN`, 1 000 keys per script call; on a
    /// cluster, every master in turn, found with `CLUSTER SLOTS`, which
    /// needs Redis 7) and raises each expiry to the new `τ′` (plus the
    /// client-time margin): O(keys) work in the call, not on any check. A
    /// `reset` needs no walk. If the walk fails, the change is made (it is
    /// in the record) and the error is returned: calling
    /// [`refresh_quota`](Self::refresh_quota) shows it is there (see
    /// docs/redis.md, "Changing quotas").
    ///
    /// # Errors
    /// `InvalidOption` when the scripts cannot run `quota` exactly (τ of
    /// 2^53 ns or more); a Redis failure (the change is then not made).
    pub fn reconfigure_at(
        &self,
        quota: Quota,
        strategy: Strategy,
        at_ns: u64,
    ) -> Result<(), RedisLimitError> {
        let e = self.engine();
        for _ in 0..MAX_APPENDS {
            let (version, change) = e.next_change(quota, strategy, at_ns)?;
            match self.run(e.quota_record(version, &change.entry()))? {
                None => {
                    if !e.push_change(version, change) {
                        // A clone adopted it from the record first.
                        e.adopt(version, &[change.entry()])?;
                    }
                    if strategy != Strategy::Reset {
                        // Converted states may outlive the expiry they were
                        // written with: raise every key's to what the new
                        // quota may need (a reset state is a fresh one).
                        let least = e.least_expiry_ms(&quota);
                        if e.is_cluster() {
                            // Every master, each with its own cursor.
                            let pool = self.conn();
                            crate::walk::walk(
                                |cmd, routing| pool.route(cmd, routing),
                                &e.walk_pattern(),
                                least,
                            )?;
                        }
                        let mut cursor = "0".to_owned();
                        while let Some(op) = e.extend_expiry(&cursor, least) {
                            cursor = self.run(op)?;
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

    /// Adopts the changes of quota other limiters on the prefix made (one
    /// call to the quota record): the version it is at afterwards.
    pub fn refresh_quota(&self) -> Result<u64, RedisLimitError> {
        let e = self.engine();
        let (version, _) = e.current()?;
        let entries = self.run(e.quota_record(version, ""))?.unwrap_or_default();
        e.adopt(version, &entries)?;
        Ok(self.current_quota().0)
    }

    /// [`reconfigure_at`](Self::reconfigure_at) now: the server's time
    /// (one call to read it), or the caller's clock under client time.
    pub fn reconfigure(&self, quota: Quota, strategy: Strategy) -> Result<(), RedisLimitError> {
        let e = self.engine();
        let at_ns = match e.now(None) {
            Now::Server => self.run(e.server_time())?,
            Now::Client { now_ns, .. } => now_ns,
        };
        self.reconfigure_at(quota, strategy, at_ns)
    }

    /// `check_n(key, cost)` under the key's own `quota` (a plan, an
    /// override) instead of the limiter's. When the quota a key is
    /// decided under changes (its own changes, or it gets or loses one),
    /// its state is converted with keep-consumed at the call's time, in
    /// the same call. A key on its own quota does not follow
    /// [`reconfigure`](Self::reconfigure).
    pub fn check_with_quota<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        quota: &Quota,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        self.check_under(key, cost, e.now(None), quota)
    }

    /// `check_with_quota` at the caller's time `now_ns` (client time).
    pub fn check_with_quota_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Decision, RedisLimitError> {
        let e = self.engine();
        self.check_under(key, cost, e.now(Some(now_ns)), quota)
    }

    /// `reserve(key, cost, max_wait)` under the key's own `quota`, as
    /// [`check_with_quota`](Self::check_with_quota).
    pub fn reserve_with_quota<K: RedisKey + ?Sized>(
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
    }

    /// `reserve_with_quota` at the caller's time `now_ns` (client time).
    pub fn reserve_with_quota_at<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        let e = self.engine();
        self.reserve_under(key, cost, max_wait_ns, e.now(Some(now_ns)), Some(quota))
    }
}

/// `check_batch` under a changed bucket quota: the batch script does not
/// convert states between quotas, so each request is one `check` (which
/// does), in order: the same answers, one round trip each. A Redis failure
/// the failure policy does not answer fails the whole batch, as it would
/// the batch call.
pub(crate) fn one_by_one<K: RedisKey>(
    requests: &[(K, u64)],
    mut check: impl FnMut(&K, u64) -> Result<Decision, RedisLimitError>,
) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
    requests
        .iter()
        .map(|(key, cost)| as_element(check(key, *cost)))
        .collect()
}

/// One check's answer as a batch element: its own `InsufficientCapacity`,
/// or the batch's error.
pub(crate) fn as_element(
    r: Result<Decision, RedisLimitError>,
) -> Result<Result<Decision, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(d) => Ok(Ok(d)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}
