//! What the sync and the async limiter share, everything but the I/O: the
//! limiter's settings, `now`, the script calls each operation sends (built
//! here, sent by the caller on its own kind of connection), the decoding of
//! their replies (through `reply.rs`) and the failure policy applied to
//! their errors. A limiter is this plus a way to send a
//! [`redis::ScriptInvocation`].

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    AlgorithmKind, Decision, InsufficientCapacity, Quota, Reason, Reservation, Shaping,
};

use crate::config::{DEFAULT_CLIENT_TTL_MARGIN, FailurePolicy, TimeSource};
use crate::error::RedisLimitError;
use crate::fallback::Fallback;
use crate::key::{self, Prefix};
use crate::limiter::KeyState;
use crate::reply;
use crate::script::{self, Now, scripts};

/// A script call ready to send: the scripts live for the whole process.
pub(crate) type Call = redis::ScriptInvocation<'static>;

/// A limiter without its connection.
pub(crate) struct Core<A: Shaping> {
    pub(crate) algorithm: A,
    pub(crate) prefix: Prefix,
    pub(crate) time: TimeSource,
    pub(crate) policy: FailurePolicy,
    fallback: Fallback<A>,
    failures: AtomicU64,
}

impl<A: Shaping> core::fmt::Debug for Core<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core")
            .field("algorithm", &self.algorithm)
            .field("prefix", &self.prefix.as_str())
            .field("time", &self.time)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A duration in whole nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<A: Shaping> Core<A> {
    /// Checks the quota against the scripts' exact range and the prefix.
    pub(crate) fn new(
        algorithm: A,
        prefix: &str,
        time: TimeSource,
        policy: FailurePolicy,
    ) -> Result<Self, RedisLimitError> {
        script::check_quota(algorithm.quota())?;
        Ok(Self {
            algorithm,
            prefix: Prefix::new(prefix)?,
            time,
            policy,
            fallback: Fallback::default(),
            failures: AtomicU64::new(0),
        })
    }

    pub(crate) fn quota(&self) -> &Quota {
        self.algorithm.quota()
    }

    pub(crate) fn policy_failures(&self) -> u64 {
        // A statistic: no ordering with anything else.
        self.failures.load(Ordering::Relaxed)
    }

    /// `now` for a call without explicit time, from the time source.
    pub(crate) fn now(&self) -> Now {
        match self.time {
            TimeSource::Server => Now::Server,
            TimeSource::Client { ttl_margin } => Now::Client {
                now_ns: wall_clock_ns(),
                margin: ttl_margin,
            },
        }
    }

    /// `now` for an explicit-time (`*_at`) call.
    pub(crate) fn client_now(&self, now_ns: u64) -> Now {
        let margin = match self.time {
            TimeSource::Client { ttl_margin } => ttl_margin,
            TimeSource::Server => DEFAULT_CLIENT_TTL_MARGIN,
        };
        Now::Client { now_ns, margin }
    }

    pub(crate) fn capacity_ok(&self, cost: u64) -> Result<(), InsufficientCapacity> {
        let capacity = self.quota().capacity();
        if cost > capacity {
            Err(InsufficientCapacity { cost, capacity })
        } else {
            Ok(())
        }
    }

    // ---- check ----

    /// The `check.lua` call for `check(key, cost)` (the cost is in range).
    pub(crate) fn check_call(&self, redis_key: &[u8], cost: u64, now: Now) -> Call {
        let mut inv = scripts().check.key(redis_key);
        script::common_args(&mut inv, now, self.quota());
        inv.arg(cost);
        inv
    }

    /// The answer to `check` from the script's result: the decision, or
    /// the failure policy's answer to the error.
    pub(crate) fn check_done(
        &self,
        redis_key: &[u8],
        cost: u64,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<Decision, RedisLimitError> {
        result
            .and_then(|v| reply::decision(&reply::integers(v)?, self.quota().capacity()))
            .or_else(|e| {
                if !e.is_redis_failure() || self.policy == FailurePolicy::ReturnError {
                    return Err(e);
                }
                Ok(self.policy_check(redis_key, cost)?)
            })
    }

    /// The failure policy's answer to a `check` Redis could not decide
    /// (the policy is not `ReturnError`).
    fn policy_check(&self, redis_key: &[u8], cost: u64) -> Result<Decision, InsufficientCapacity> {
        // A statistic: no ordering with anything else.
        self.failures.fetch_add(1, Ordering::Relaxed);
        let q = self.quota();
        Ok(match self.policy {
            FailurePolicy::FailOpen => Decision {
                allowed: true,
                remaining: 0,
                retry_after: None,
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => self.fallback.check(&self.algorithm, redis_key, cost)?,
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

    // ---- reserve ----

    /// The `reserve.lua` call (the cost is in range).
    pub(crate) fn reserve_call(
        &self,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Call {
        let kind = match self.algorithm.kind() {
            AlgorithmKind::TokenBucket => "token",
            AlgorithmKind::LeakyBucket => "leaky",
            // `A: Shaping`: only the buckets reserve.
            AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow => {
                unreachable!("only the buckets shape")
            }
        };
        let mut inv = scripts().reserve.key(redis_key);
        script::common_args(&mut inv, now, self.quota());
        inv.arg(kind)
            .arg(cost)
            .arg(script::max_wait_arg(max_wait_ns));
        inv
    }

    /// The answer to `reserve` from the script's result, with the state the
    /// reservation stored in Redis (`None` when it stored nothing, or when
    /// the failure policy answered).
    pub(crate) fn reserve_done(
        &self,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(Reservation, Option<u64>), RedisLimitError> {
        result
            .and_then(|v| reply::reservation_reply(v, self.quota().capacity()))
            .or_else(|e| {
                self.reserve_failed(redis_key, cost, max_wait_ns, e)
                    .map(|r| (r, None))
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
        if !e.is_redis_failure() || self.policy == FailurePolicy::ReturnError {
            return Err(e);
        }
        // A statistic: no ordering with anything else.
        self.failures.fetch_add(1, Ordering::Relaxed);
        let q = self.quota();
        Ok(match self.policy {
            FailurePolicy::FailOpen => Reservation::Admitted {
                wait: Duration::ZERO,
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                self.fallback
                    .reserve(&self.algorithm, redis_key, cost, max_wait_ns)?
            }
            _ => Reservation::Rejected {
                retry_after: Some(q.interval()),
                reset_after: Duration::ZERO,
                limit: q.capacity(),
                reason: Reason::FailClosed,
            },
        })
    }

    #[cfg(feature = "tokio")]
    /// The `cancel.lua` call undoing a reservation of `cost` that stored
    /// `stored` (see `lua/cancel.lua`). `now` only sets the restored
    /// state's expiry: pass the time source of the reservation.
    pub(crate) fn cancel_call(&self, redis_key: &[u8], stored: u64, cost: u64, now: Now) -> Call {
        let mut inv = scripts().cancel.key(redis_key);
        script::common_args(&mut inv, now, self.quota());
        inv.arg(stored).arg(cost);
        inv
    }

    #[cfg(feature = "tokio")]
    /// Whether `cancel.lua` undid the reservation.
    pub(crate) fn cancel_done(
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<bool, RedisLimitError> {
        match result? {
            redis::Value::Int(0) => Ok(false),
            redis::Value::Int(1) => Ok(true),
            other => Err(RedisLimitError::UnexpectedReply(format!(
                "wanted 0 or 1 from cancel, got {other:?}"
            ))),
        }
    }

    // ---- inspect ----

    /// The `inspect.lua` call.
    pub(crate) fn inspect_call(redis_key: &[u8]) -> Call {
        scripts().inspect.key(redis_key)
    }

    /// The key's state from `inspect.lua`'s reply.
    pub(crate) fn inspect_done(&self, value: redis::Value) -> Result<KeyState, RedisLimitError> {
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

    // ---- batch ----

    /// Splits a batch into script calls: one on a single Redis, one per
    /// hash slot on a cluster. Costs above the capacity are answered at
    /// once.
    pub(crate) fn batch_plan<K: AsRef<[u8]>>(
        &self,
        requests: &[(K, u64)],
        cluster: bool,
        now: Now,
    ) -> BatchPlan {
        let mut answers = vec![None; requests.len()];
        let keys: Vec<Vec<u8>> = requests
            .iter()
            .map(|(k, _)| self.prefix.redis_key(k.as_ref()))
            .collect();
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, (_, cost)) in requests.iter().enumerate() {
            if let Err(e) = self.capacity_ok(*cost) {
                answers[i] = Some(Err(e));
            } else {
                let group = if cluster { key::slot(&keys[i]) } else { 0 };
                groups.entry(group).or_default().push(i);
            }
        }
        BatchPlan {
            answers,
            keys,
            costs: requests.iter().map(|(_, c)| *c).collect(),
            groups: groups.into_values().collect(),
            now,
        }
    }

    /// `check_batch`'s answers once every group of `plan` is settled.
    pub(crate) fn batch_done(plan: BatchPlan) -> Vec<Result<Decision, InsufficientCapacity>> {
        plan.answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| unreachable!("every request is answered")))
            .collect()
    }

    /// Settles group `g` of `plan` from its script result (decisions, or
    /// the failure policy's answers); `Err` fails the whole batch.
    pub(crate) fn batch_settle(
        &self,
        plan: &mut BatchPlan,
        g: usize,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(), RedisLimitError> {
        let indices = &plan.groups[g];
        match result.and_then(|v| reply::decisions(v, indices.len(), self.quota().capacity())) {
            Ok(decisions) => {
                for (&i, d) in indices.iter().zip(decisions) {
                    plan.answers[i] = Some(Ok(d));
                }
            }
            Err(e) => {
                if !e.is_redis_failure() || self.policy == FailurePolicy::ReturnError {
                    return Err(e);
                }
                for &i in indices {
                    plan.answers[i] = Some(Ok(self.policy_check(&plan.keys[i], plan.costs[i])?));
                }
            }
        }
        Ok(())
    }

    /// The `check_batch.lua` call for group `g` of `plan`.
    pub(crate) fn batch_call(&self, plan: &BatchPlan, g: usize) -> Call {
        let indices = &plan.groups[g];
        let mut inv = scripts().check_batch.prepare_invoke();
        for &i in indices {
            inv.key(plan.keys[i].as_slice());
        }
        script::common_args(&mut inv, plan.now, self.quota());
        for &i in indices {
            inv.arg(plan.costs[i]);
        }
        inv
    }
}

/// A batch split into script calls (see [`Core::batch_plan`]).
pub(crate) struct BatchPlan {
    answers: Vec<Option<Result<Decision, InsufficientCapacity>>>,
    keys: Vec<Vec<u8>>,
    costs: Vec<u64>,
    groups: Vec<Vec<usize>>,
    now: Now,
}

impl BatchPlan {
    /// How many script calls the batch needs.
    pub(crate) fn calls(&self) -> usize {
        self.groups.len()
    }
}
