//! Several limits on one request, all or nothing, in one script run
//! (`lua/check_all.lua`): [`RedisLimit`] (one limit: a limiter, a key and a
//! cost, from [`RedisLimiter::limit`]) and the pool's and the async
//! connection's `check_all`, which answer the memory backend's
//! [`MultiDecision`].
//!
//! The script decides every limit, then charges all of them or none,
//! atomically: no other call, in any process, ever sees a charge that is
//! rolled back. On a cluster the keys must share a hash slot (give them a
//! hash tag: `{user42}:second`, `{user42}:day`); otherwise the call is an
//! error before anything is sent.

use core::time::Duration;

use ratelimit_core::{Algorithm, Decision, Reason};
use ratelimit_memory::MultiDecision;

use crate::config::{DEFAULT_CLIENT_TTL_MARGIN, TimeSource};
use crate::error::RedisLimitError;
use crate::key::RedisKey;
use crate::keyspace;
use crate::limiter::{RedisLimiter, Transport};
use crate::reply;
use crate::script::{self, Call, Now, Params};

/// One limit of a multi-limit check: a limiter's quota on one key, with
/// the request's cost; from [`RedisLimiter::limit`]. Limits of different
/// algorithms, quotas and prefixes combine freely; they must be sent on
/// one Redis (or one cluster slot).
#[derive(Clone)]
pub struct RedisLimit {
    pub(crate) redis_key: Vec<u8>,
    pub(crate) cost: u64,
    pub(crate) params: Params,
    pub(crate) limit: u64,
    pub(crate) time: TimeSource,
}

impl core::fmt::Debug for RedisLimit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key may be a secret (an API key): never shown.
        f.debug_struct("RedisLimit")
            .field("cost", &self.cost)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<A: Algorithm, C: Transport> RedisLimiter<A, C> {
    /// This limiter's quota on `key` for a request of `cost`, as one limit
    /// of a multi-limit check (`RedisPool::check_all`,
    /// `AsyncRedisConnection::check_all`). A cost above the limit is not an
    /// error here: that limit denies, and so does the whole check.
    ///
    /// # Errors
    /// `KeyTooLong` for a key the limiter refuses; `InvalidOption` when
    /// this limiter's quota has changed (`reconfigure`,
    /// `reconfigure_window`, or a change adopted from another process):
    /// the multi-limit script does not convert states between quotas, and
    /// deciding with the quota the limiter was built with would be deciding
    /// with a quota it knows to be stale.
    pub fn limit<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
    ) -> Result<RedisLimit, RedisLimitError> {
        let e = self.engine();
        let version = if e.is_window() {
            e.window_current()?.0
        } else {
            e.current().map_or(0, |(version, _)| version)
        };
        if version > 0 {
            return Err(RedisLimitError::InvalidOption(format!(
                "check_all: this limiter's quota has changed (version {version}); a multi-limit check decides every limit under the quota its limiter was built with and cannot convert states, so it refuses rather than decide with a stale quota (check each limit on its own, or build a new limiter with the new quota and its own prefix)"
            )));
        }
        Ok(RedisLimit {
            redis_key: e.keys.redis_key(key)?,
            cost,
            params: e.params,
            limit: e.limit(),
            time: e.time,
        })
    }
}

/// The script call of a multi-limit check at `now_ns` (`None`: the first
/// limit's time source), after every check that needs no Redis.
pub(crate) fn call(
    limits: &[RedisLimit],
    now_ns: Option<u64>,
    cluster: bool,
) -> Result<Call, RedisLimitError> {
    let Some(first) = limits.first() else {
        return Err(RedisLimitError::InvalidOption(
            "check_all needs at least one limit".to_owned(),
        ));
    };
    for (i, l) in limits.iter().enumerate() {
        if limits[..i].iter().any(|o| o.redis_key == l.redis_key) {
            return Err(RedisLimitError::InvalidOption(format!(
                "check_all: limits {} and {i} name the same Redis key; give each limit its own prefix",
                limits[..i]
                    .iter()
                    .position(|o| o.redis_key == l.redis_key)
                    .unwrap_or(0)
            )));
        }
    }
    if cluster {
        let slot = keyspace::slot(&first.redis_key);
        if let Some(i) = limits
            .iter()
            .position(|l| keyspace::slot(&l.redis_key) != slot)
        {
            return Err(RedisLimitError::InvalidOption(format!(
                "check_all on a cluster: the keys of limits 0 and {i} are in different hash slots ({slot} and {}); give the keys one hash tag (e.g. {{user42}}:second, {{user42}}:day) so that one script can decide them together",
                keyspace::slot(&limits[i].redis_key)
            )));
        }
    }
    let margin = match first.time {
        TimeSource::Client { ttl_margin } => ttl_margin,
        TimeSource::Server => DEFAULT_CLIENT_TTL_MARGIN,
    };
    let now = match (now_ns, first.time) {
        (Some(now_ns), _) => Now::Client { now_ns, margin },
        (None, TimeSource::Server) => Now::Server,
        (None, TimeSource::Client { .. }) => Now::Client {
            now_ns: crate::op::wall_clock_ns(),
            margin,
        },
    };
    for l in limits {
        l.params.check_now(now)?;
    }
    Ok(script::check_all_call(
        limits
            .iter()
            .map(|l| (l.redis_key.as_slice(), &l.params, l.cost)),
        now,
    ))
}

/// The decisions of a multi-limit check's reply, combined.
pub(crate) fn decode<const N: usize>(
    value: Result<redis::Value, RedisLimitError>,
    limits: &[RedisLimit; N],
) -> Result<MultiDecision<N>, RedisLimitError> {
    let answers = reply::batch(value?, N, 0)?;
    let mut decisions = [Decision {
        allowed: false,
        remaining: 0,
        retry_after: None,
        reset_after: Duration::ZERO,
        limit: 0,
        reason: Reason::Quota,
    }; N];
    for ((d, a), l) in decisions.iter_mut().zip(answers).zip(limits) {
        *d = Decision {
            limit: l.limit,
            ..a.value
        };
    }
    Ok(combine(decisions))
}

/// Every limit's decision as one: allowed when all allow; the fewest
/// remaining (and that limit's `limit`); the longest `reset_after`; when
/// denied, the longest `retry_after` of the limits that deny, `None` if one
/// of them never can allow.
fn combine<const N: usize>(limits: [Decision; N]) -> MultiDecision<N> {
    let allowed = limits.iter().all(|d| d.allowed);
    let tightest = limits.iter().min_by_key(|d| d.remaining).copied();
    let deniers = || limits.iter().filter(|d| !d.allowed);
    let retry_after = if allowed || deniers().any(|d| d.retry_after.is_none()) {
        None
    } else {
        deniers().filter_map(|d| d.retry_after).max()
    };
    MultiDecision {
        decision: Decision {
            allowed,
            remaining: tightest.map_or(0, |d| d.remaining),
            retry_after,
            reset_after: limits
                .iter()
                .map(|d| d.reset_after)
                .max()
                .unwrap_or(Duration::ZERO),
            limit: tightest.map_or(0, |d| d.limit),
            reason: Reason::Quota,
        },
        limits,
    }
}

impl crate::RedisPool {
    /// Checks one request against every limit of `limits` and charges all
    /// of them or none, in one script run (one round trip, atomic): allowed
    /// only if each allows it, and only then is any charged. See
    /// [`MultiDecision`] for how the answers combine (`denied_by` says
    /// which limits denied). The circuit breakers and failure policies of
    /// the limiters do not apply: a Redis failure is returned.
    ///
    /// ```no_run
    /// use ratelimit_redis::{FixedWindow, Quota, Rate, RedisLimiter, RedisPool, TokenBucket};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = RedisPool::open("redis://127.0.0.1/")?;
    /// let per_second = RedisLimiter::builder(TokenBucket::new(Quota::new(10, Rate::per_second(10))?))
    ///     .prefix("api-second")
    ///     .build(pool.clone())?;
    /// let per_day = RedisLimiter::builder(FixedWindow::new(1000, std::time::Duration::from_secs(86_400))?)
    ///     .prefix("api-day")
    ///     .build(pool.clone())?;
    /// let d = pool.check_all([per_second.limit("user42", 1)?, per_day.limit("user42", 1)?])?;
    /// if !d.allowed() {
    ///     println!("denied by {:?}", d.denied_by().collect::<Vec<_>>());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `InvalidOption` before anything is sent for no limits, two limits
    /// on one Redis key, or (cluster) keys in different hash slots; the
    /// Redis failures of any call.
    pub fn check_all<const N: usize>(
        &self,
        limits: [RedisLimit; N],
    ) -> Result<MultiDecision<N>, RedisLimitError> {
        let call = call(&limits, None, self.is_cluster())?;
        decode(self.run(&call), &limits)
    }

    /// `check_all` at the caller's time `now_ns` (client time).
    pub fn check_all_at<const N: usize>(
        &self,
        limits: [RedisLimit; N],
        now_ns: u64,
    ) -> Result<MultiDecision<N>, RedisLimitError> {
        let call = call(&limits, Some(now_ns), self.is_cluster())?;
        decode(self.run(&call), &limits)
    }
}

#[cfg(feature = "tokio")]
impl crate::AsyncRedisConnection {
    /// Checks one request against every limit of `limits` and charges all
    /// of them or none, in one script run; see `RedisPool::check_all`.
    ///
    /// # Errors
    /// As for `RedisPool::check_all`.
    pub async fn check_all<const N: usize>(
        &self,
        limits: [RedisLimit; N],
    ) -> Result<MultiDecision<N>, RedisLimitError> {
        let call = call(&limits, None, false)?;
        decode(self.run(&call).await, &limits)
    }

    /// `check_all` at the caller's time `now_ns` (client time).
    ///
    /// # Errors
    /// As for `RedisPool::check_all`.
    pub async fn check_all_at<const N: usize>(
        &self,
        limits: [RedisLimit; N],
        now_ns: u64,
    ) -> Result<MultiDecision<N>, RedisLimitError> {
        let call = call(&limits, Some(now_ns), false)?;
        decode(self.run(&call).await, &limits)
    }
}
