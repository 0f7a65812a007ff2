//! Every operation of a limiter, built once and without I/O: the script
//! calls it sends (from `script.rs`), what it makes of their replies (with
//! `reply.rs`), the circuit breaker's say on each call, and the failure
//! policy's answer when Redis fails. The sync and async limiters only send
//! the calls an [`Op`] hands them, as redis-rs's `ScriptInvocation` is
//! sent by `invoke` or `invoke_async`:
//!
//! ```text
//! let mut op = engine.check(key, cost, now)?;
//! while let Some(call) = op.next_call() {
//!     let reply = connection.run(call);       // .await in the async shell
//!     op.take(reply);
//! }
//! op.finish()
//! ```

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    Algorithm, AlgorithmKind, AnyAlgorithm, Decision, InsufficientCapacity, Quota, Rate, Reason,
    Reservation, Shaping, Strategy,
};

use crate::breaker::{Breaker, Permit};
use crate::config::{CircuitBreaker, DEFAULT_CLIENT_TTL_MARGIN, FailurePolicy, TimeSource};
use crate::error::RedisLimitError;
use crate::fallback::{Fallback, SharedClock};
use crate::key::RedisKey;
use crate::keyspace::{self, KeySpace};
use crate::observe::{Health, Observer, Stats};
use crate::receipt::RedisReceipt;
use crate::reply::{self, KeyState};
use crate::script::{self, Admitted, Call, Now, Params};

mod windows;

/// A limiter without its connection: settings, breaker, fallback, counters.
pub(crate) struct Engine<A: Algorithm> {
    /// This limiter's id, in its receipts.
    pub(crate) id: u64,
    pub(crate) algorithm: A,
    /// How the scripts decide `check` under this algorithm.
    pub(crate) params: Params,
    pub(crate) keys: KeySpace,
    pub(crate) time: TimeSource,
    pub(crate) policy: FailurePolicy,
    breaker: Breaker,
    observer: Observer,
    fallback: Fallback,
    clock: SharedClock,
    /// Batches are split by hash slot (a cluster) or sent whole.
    cluster: bool,
    /// The bucket quota's changes, oldest first: version `n` is the quota
    /// of change `n` (version 0, the algorithm's own quota, has none).
    changes: RwLock<Vec<Change>>,
    /// Whether calls carry quota tags: set by the first change of quota
    /// or the first call under a key's own quota, never cleared.
    tagged: AtomicBool,
    /// A window limiter's changes of quota (`op/windows.rs`).
    windows: windows::WindowQuotas,
}

/// One change of a bucket limiter's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) quota: Quota,
    pub(crate) strategy: Strategy,
    pub(crate) at_ns: u64,
}

/// What an engine is built from (the builder's checked options).
pub(crate) struct Settings<A> {
    pub(crate) algorithm: A,
    pub(crate) keys: KeySpace,
    pub(crate) time: TimeSource,
    pub(crate) policy: FailurePolicy,
    pub(crate) breaker: Option<CircuitBreaker>,
    pub(crate) clock: SharedClock,
}

impl<A: Algorithm> core::fmt::Debug for Engine<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("algorithm", &self.algorithm)
            .field("keys", &self.keys)
            .field("time", &self.time)
            .field("policy", &self.policy)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

/// `cost` against a changed window quota's `limit` (`Ok(Some)`: sent with
/// a cost of 0 all the same, to bring the key to that quota), or against
/// the engine's (an error at once).
fn over_limit(
    limit: Option<u64>,
    cost: u64,
    engine: impl FnOnce() -> u64,
) -> Result<Option<InsufficientCapacity>, InsufficientCapacity> {
    match limit {
        Some(capacity) => Ok(capacity_of(capacity, cost).err()),
        None => capacity_of(engine(), cost).map(|()| None),
    }
}

/// `cost` against a limit (capacity) of `capacity`.
fn capacity_of(capacity: u64, cost: u64) -> Result<(), InsufficientCapacity> {
    if cost > capacity {
        Err(InsufficientCapacity { cost, capacity })
    } else {
        Ok(())
    }
}

pub(crate) fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A duration in whole nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<A: Algorithm> Engine<A> {
    pub(crate) fn new(settings: Settings<A>, params: Params, cluster: bool) -> Self {
        let observer = Observer::new(settings.keys.prefix());
        Self {
            id: crate::receipt::next_id(),
            algorithm: settings.algorithm,
            params,
            keys: settings.keys,
            time: settings.time,
            policy: settings.policy,
            breaker: Breaker::new(settings.breaker),
            observer,
            fallback: Fallback::default(),
            clock: settings.clock,
            cluster,
            changes: RwLock::new(Vec::new()),
            tagged: AtomicBool::new(false),
            windows: windows::WindowQuotas::default(),
        }
    }

    /// The `limit` of every decision.
    pub(crate) fn limit(&self) -> u64 {
        self.algorithm.limit()
    }

    fn mono_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.observer.stats()
    }

    pub(crate) fn health(&self) -> Health {
        self.observer.health(self.breaker.state(), self.mono_ns())
    }

    /// `now` for a call: the time source, or the caller's `now_ns`
    /// (client time, whatever the time source).
    pub(crate) fn now(&self, now_ns: Option<u64>) -> Now {
        match (now_ns, self.time) {
            (None, TimeSource::Server) => Now::Server,
            (None, TimeSource::Client { ttl_margin }) => Now::Client {
                now_ns: wall_clock_ns(),
                margin: ttl_margin,
            },
            (Some(now_ns), TimeSource::Client { ttl_margin }) => Now::Client {
                now_ns,
                margin: ttl_margin,
            },
            (Some(now_ns), TimeSource::Server) => Now::Client {
                now_ns,
                margin: DEFAULT_CLIENT_TTL_MARGIN,
            },
        }
    }

    fn capacity_ok(&self, cost: u64) -> Result<(), InsufficientCapacity> {
        capacity_of(self.limit(), cost)
    }

    /// The parameters a check is sent with: the algorithm's, or under a
    /// changed window quota that quota's with its tag spec (the last ARGV)
    /// and its `L` (the decisions' `limit`).
    fn check_params(
        &self,
        own: Option<&A>,
    ) -> Result<(Params, Option<(String, u64)>), RedisLimitError> {
        Ok(match self.window_target(own)? {
            Some(t) => (t.params, Some((t.spec, t.limit))),
            None => (self.params, None),
        })
    }

    // ---- the operations ----

    /// `check(key, cost)`.
    pub(crate) fn check<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        now: Now,
    ) -> Result<Op<'_, A, Check>, RedisLimitError> {
        self.check_stored(self.keys.redis_key(key)?, cost, now)
    }

    /// `check` of a key already in its Redis form.
    pub(crate) fn check_stored(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
    ) -> Result<Op<'_, A, Check>, RedisLimitError> {
        self.check_window(redis_key, cost, now, None)
    }

    /// `check` of a key in its Redis form under a key's own window `own`
    /// (a window limiter), or the limiter's quota.
    pub(crate) fn check_window(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
        own: Option<&A>,
    ) -> Result<Op<'_, A, Check>, RedisLimitError> {
        self.policing(
            redis_key,
            cost,
            now,
            own,
            script::check_call,
            CheckOne { cost },
        )
    }

    /// A policing call of `kind` on `redis_key` (`check` or its refundable
    /// form, made by `build`), under a key's own window `own` or the
    /// limiter's quota: a cost above a changed window quota's limit is sent
    /// as 0 (the key still moves to that quota) and answered with the
    /// error; the tag spec, if any, goes last.
    fn policing<S, T>(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
        own: Option<&A>,
        build: fn(&Params, &[u8], u64, Now) -> Call,
        kind: S,
    ) -> Result<Op<'_, A, One<S, T>>, RedisLimitError>
    where
        S: Single<A, Output = T>,
    {
        let (params, tagged) = self.check_params(own)?;
        let limit = tagged.as_ref().map(|t| t.1);
        let over = over_limit(limit, cost, || self.limit())?;
        params.check_now(now)?;
        let sent = if over.is_some() { 0 } else { cost };
        let mut call = build(&params, &redis_key, sent, now);
        if let Some((spec, _)) = &tagged {
            call.arg(spec.as_str());
        }
        let mut one = One::new(redis_key, kind).limited(limit);
        one.over = over;
        Ok(Op::new(self, vec![call], true, one))
    }

    /// A refundable `check(key, cost)`: the decision, and a receipt when
    /// Redis admitted a cost above zero.
    /// The key is in its Redis form.
    pub(crate) fn check_receipt(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
    ) -> Result<Op<'_, A, CheckReceipt>, RedisLimitError> {
        self.policing(
            redis_key,
            cost,
            now,
            None,
            script::check_receipt_call,
            CheckReceiptOne { cost },
        )
    }

    /// Gives back the admission `receipt` records; `None` when the receipt
    /// is another limiter's (nothing to send). Neither the breaker nor the
    /// policy apply.
    pub(crate) fn refund(
        &self,
        receipt: RedisReceipt,
        now: Now,
    ) -> Result<Option<Op<'_, A, Cancel>>, RedisLimitError> {
        if receipt.owner != self.id {
            return Ok(None);
        }
        self.params.check_now(now)?;
        let call = script::refund_call(
            &self.params,
            &receipt.redis_key,
            receipt.admitted,
            receipt.cost,
            now,
        );
        let decode = Plain(|v, _: &AnyAlgorithm| reply::cancel(v));
        Ok(Some(Op::new(
            self,
            vec![call],
            false,
            One::new(receipt.redis_key, decode),
        )))
    }

    /// The receipt of a refundable check's answer.
    pub(crate) fn receipt(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        admitted: Option<Admitted>,
    ) -> Option<RedisReceipt> {
        admitted.map(|admitted| RedisReceipt {
            owner: self.id,
            redis_key,
            cost,
            admitted,
        })
    }

    /// `check_batch`: one call on a single Redis, one per hash slot on a
    /// cluster. Costs above the capacity are answered at once; a key too
    /// long fails the whole batch before anything is sent.
    pub(crate) fn batch<K: RedisKey>(
        &self,
        requests: &[(K, u64)],
        now: Now,
    ) -> Result<Op<'_, A, Batch>, RedisLimitError> {
        let keys = requests
            .iter()
            .map(|(k, _)| self.keys.redis_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        let costs = requests.iter().map(|(_, c)| *c).collect();
        self.batch_stored(keys, costs, now)
    }

    /// `check_batch` of keys already in their Redis form, `costs[i]` for
    /// `keys[i]`.
    pub(crate) fn batch_stored(
        &self,
        keys: Vec<Vec<u8>>,
        costs: Vec<u64>,
        now: Now,
    ) -> Result<Op<'_, A, Batch>, RedisLimitError> {
        let (params, tagged) = self.check_params(None)?;
        let limit = tagged.as_ref().map_or_else(|| self.limit(), |t| t.1);
        params.check_now(now)?;
        let mut answers = vec![None; keys.len()];
        let mut over = Vec::new();
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, cost) in costs.iter().enumerate() {
            if let Err(e) = capacity_of(limit, *cost) {
                if tagged.is_none() {
                    answers[i] = Some(Err(e));
                    continue;
                }
                // Under a changed window quota the key is still sent,
                // with a cost of 0, to bring it to that quota.
                over.resize(keys.len(), None);
                over[i] = Some(e);
            }
            {
                let group = if self.cluster {
                    keyspace::slot(&keys[i])
                } else {
                    0
                };
                groups.entry(group).or_default().push(i);
            }
        }
        let groups: Vec<Vec<usize>> = groups.into_values().collect();
        let calls = groups
            .iter()
            .map(|g| {
                let sent = |i: usize| match over.get(i) {
                    Some(Some(_)) => 0,
                    _ => costs[i],
                };
                let items = g.iter().map(|&i| (keys[i].as_slice(), sent(i)));
                let mut call = script::batch_call(&params, items, now);
                if let Some((spec, _)) = &tagged {
                    call.arg(spec.as_str());
                }
                call
            })
            .collect();
        Ok(Op::new(
            self,
            calls,
            true,
            Batch {
                keys,
                costs,
                groups,
                answers,
                limit,
                over,
            },
        ))
    }

    /// `inspect(key)`: neither the breaker nor the policy apply.
    pub(crate) fn inspect<K: RedisKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Op<'_, A, Inspect>, RedisLimitError> {
        let redis_key = self.keys.redis_key(key)?;
        let call = script::inspect_call(&redis_key);
        Ok(Op::new(
            self,
            vec![call],
            false,
            One::new(redis_key, Plain(reply::inspect)),
        ))
    }

    // ---- the failure policy ----

    /// Reports `err` and answers with the failure policy in its place, for
    /// `n` requests (`answer` gives one); or returns `err` when the policy
    /// does not apply to it (`ReturnError`, not a Redis failure, a
    /// misconfiguration).
    fn on_failure<T>(
        &self,
        err: RedisLimitError,
        n: u64,
        answer: impl FnOnce(&Self, Option<Reason>) -> Result<T, InsufficientCapacity>,
    ) -> Result<T, RedisLimitError> {
        let now = self.mono_ns();
        self.observer.failed(&err, now);
        if !err.is_policy_failure() || self.policy == FailurePolicy::ReturnError {
            return Err(err);
        }
        self.observer.policy_answered(self.policy, &err, n, now);
        // Not sent at all: the reason says the breaker answered.
        let reason =
            matches!(err, RedisLimitError::CircuitOpen { .. }).then_some(Reason::CircuitOpen);
        Ok(answer(self, reason)?)
    }

    /// The failure policy's answer to `check` (the policy is not
    /// `ReturnError`).
    /// `reason` replaces the policy's own (the breaker's `CircuitOpen`).
    fn policy_check(
        &self,
        redis_key: &[u8],
        cost: u64,
        reason: Option<Reason>,
    ) -> Result<Decision, InsufficientCapacity> {
        let algorithm = self.policy_algorithm();
        let limit = algorithm.limit();
        let mut d = match self.policy {
            FailurePolicy::FailOpen => Decision {
                allowed: true,
                remaining: 0,
                retry_after: None,
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                self.fallback
                    .check(&algorithm, &self.clock, redis_key, cost)?
            }
            _ => Decision {
                allowed: false,
                remaining: 0,
                retry_after: Some(fail_closed_retry(&algorithm)),
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::FailClosed,
            },
        };
        if let Some(reason) = reason {
            d.reason = reason;
        }
        Ok(d)
    }

    /// The algorithm the failure policy answers with: the limiter's quota
    /// now, after every change it has adopted (`reconfigure`,
    /// `reconfigure_window`), not only the one it was built with. Keys on
    /// their own quota are answered under the limiter's.
    fn policy_algorithm(&self) -> AnyAlgorithm {
        let built = self.algorithm.to_any();
        if self.is_window() {
            return match self.window_current() {
                Ok((version, limit, window_ns)) if version > 0 => {
                    AnyAlgorithm::with_window(built.kind(), limit, Duration::from_nanos(window_ns))
                        .unwrap_or(built)
                }
                _ => built,
            };
        }
        match (self.current(), built) {
            (Ok((version, quota)), AnyAlgorithm::TokenBucket(_)) if version > 0 => {
                AnyAlgorithm::TokenBucket(ratelimit_core::TokenBucket::new(quota))
            }
            (Ok((version, quota)), AnyAlgorithm::LeakyBucket(_)) if version > 0 => {
                AnyAlgorithm::LeakyBucket(ratelimit_core::LeakyBucket::new(quota))
            }
            _ => built,
        }
    }

    /// The breaker's say on a call about to be sent.
    fn permit(&self) -> Permit {
        self.breaker.permit(self.mono_ns())
    }

    /// Tells the breaker and the health how a sent call went.
    fn record(&self, permit: Permit, result: &Result<redis::Value, RedisLimitError>) {
        let unavailable = result.as_ref().err().filter(|e| e.is_unavailable());
        if unavailable.is_none() {
            // Redis answered, maybe with an error it chose: it is up.
            if result.as_ref().is_ok() {
                self.observer.reached();
            }
            if let Some(t) = self.breaker.success() {
                self.observer.transition(t, None);
            }
        } else if let Some(t) = self.breaker.failure(permit, self.mono_ns()) {
            self.observer.transition(t, unavailable);
        }
    }
}

/// The operations of the buckets only (shaping).
impl<A: Shaping> Engine<A> {
    /// `reserve(key, cost, max_wait)`, with the state the reservation
    /// stored in Redis (`None` when it stored nothing, or when the failure
    /// policy answered).
    pub(crate) fn reserve<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Result<Op<'_, A, Reserve>, RedisLimitError> {
        self.reserve_stored(self.keys.redis_key(key)?, cost, max_wait_ns, now)
    }

    /// `reserve` of a key already in its Redis form.
    pub(crate) fn reserve_stored(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
    ) -> Result<Op<'_, A, Reserve>, RedisLimitError> {
        self.capacity_ok(cost)?;
        let call = script::reserve_call(&self.algorithm, &redis_key, cost, max_wait_ns, now);
        let kind = ReserveOne { cost, max_wait_ns };
        Ok(Op::new(self, vec![call], true, One::new(redis_key, kind)))
    }

    /// Undoes a reservation of `cost` on `redis_key` that stored `stored`
    /// (see `lua/cancel.lua`); neither the breaker nor the policy apply.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn cancel(&self, redis_key: &[u8], stored: u64, cost: u64) -> Op<'_, A, Cancel> {
        let call = script::cancel_call(&self.algorithm, redis_key, stored, cost, self.now(None));
        let decode = Plain(|v, _: &AnyAlgorithm| reply::cancel(v));
        Op::new(
            self,
            vec![call],
            false,
            One::new(redis_key.to_vec(), decode),
        )
    }

    /// The failure policy's answer to `reserve`.
    fn policy_reserve(
        &self,
        redis_key: &[u8],
        cost: u64,
        max_wait_ns: Option<u64>,
        reason: Option<Reason>,
    ) -> Result<Reservation, InsufficientCapacity> {
        let algorithm = self.policy_algorithm();
        let limit = algorithm.limit();
        let mut r = match self.policy {
            FailurePolicy::FailOpen => Reservation::Admitted {
                wait: Duration::ZERO,
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                let Some(bucket) = algorithm.as_bucket() else {
                    unreachable!("only the buckets shape")
                };
                self.fallback
                    .reserve(bucket, &self.clock, redis_key, cost, max_wait_ns)?
            }
            _ => Reservation::Rejected {
                retry_after: Some(fail_closed_retry(&algorithm)),
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::FailClosed,
            },
        };
        if let Some(new) = reason {
            match &mut r {
                Reservation::Admitted { reason, .. } | Reservation::Rejected { reason, .. } => {
                    *reason = new;
                }
            }
        }
        Ok(r)
    }
}

/// One operation in progress: its calls, and what it makes of their
/// replies.
pub(crate) struct Op<'e, A: Algorithm, R> {
    engine: &'e Engine<A>,
    calls: Vec<Call>,
    /// The next call to settle.
    next: usize,
    /// Whether the breaker and the policy apply (not for operator reads
    /// and undos).
    guarded: bool,
    /// The breaker's permit of the call in flight.
    permit: Permit,
    /// Whether this operation's probe was already sent a second time.
    probe_retried: bool,
    /// Whether `next_call` must hand out the same call again.
    resend: bool,
    /// The error that ended the operation.
    failed: Option<RedisLimitError>,
    request: R,
}

/// What one kind of operation makes of its replies.
pub(crate) trait Request<A: Algorithm> {
    /// The operation's answer.
    type Output;
    /// Takes in the result of call `i`; `Err` ends the operation with it.
    fn settle(
        &mut self,
        engine: &Engine<A>,
        i: usize,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(), RedisLimitError>;
    /// The answer, once every call is settled.
    fn finish(self) -> Result<Self::Output, RedisLimitError>;
    /// A call to send after those so far (a call sent again with a
    /// conversion), taken once the last one is settled.
    fn more(&mut self) -> Option<Call> {
        None
    }
}

impl<'e, A: Algorithm, R: Request<A>> Op<'e, A, R> {
    fn new(engine: &'e Engine<A>, calls: Vec<Call>, guarded: bool, request: R) -> Self {
        Self {
            engine,
            calls,
            next: 0,
            guarded,
            permit: Permit::Call,
            probe_retried: false,
            resend: false,
            failed: None,
            request,
        }
    }

    /// The next call to send, or `None` when the operation is settled.
    /// While the circuit breaker is open, calls are settled here, by the
    /// failure policy, without being handed out.
    pub(crate) fn next_call(&mut self) -> Option<&Call> {
        if self.resend {
            // The probe's second attempt (see `take`), still the probe.
            self.resend = false;
            return self.calls.get(self.next);
        }
        while self.failed.is_none() && self.next < self.calls.len() {
            self.permit = if self.guarded {
                self.engine.permit()
            } else {
                Permit::Call
            };
            if let Permit::Refused(left) = self.permit {
                self.settle(Err(RedisLimitError::CircuitOpen {
                    retry_in: Duration::from_nanos(left),
                }));
            } else {
                return self.calls.get(self.next);
            }
        }
        None
    }

    /// Takes in the reply to the call `next_call` handed out.
    ///
    /// A probe that could not connect is sent once more before it counts
    /// as failed: nothing was sent, so it cannot count twice, and a
    /// connection that reconnects lazily (the async one) reports the
    /// failure of its last attempt, made while Redis was still down, on
    /// the first call after Redis is back.
    pub(crate) fn take(&mut self, result: Result<redis::Value, RedisLimitError>) {
        if self.permit == Permit::Probe
            && !self.probe_retried
            && matches!(result, Err(RedisLimitError::Connect { .. }))
        {
            self.probe_retried = true;
            self.resend = true;
            return;
        }
        if self.guarded {
            self.engine.record(self.permit, &result);
        }
        self.settle(result);
    }

    fn settle(&mut self, result: Result<redis::Value, RedisLimitError>) {
        let i = self.next;
        self.next += 1;
        if let Err(e) = self.request.settle(self.engine, i, result) {
            self.failed = Some(e);
        } else if let Some(call) = self.request.more() {
            // The script asked for a conversion: the call again, with it.
            self.calls.push(call);
        }
    }

    /// The operation's answer.
    pub(crate) fn finish(self) -> Result<R::Output, RedisLimitError> {
        match self.failed {
            Some(e) => Err(e),
            None => self.request.finish(),
        }
    }
}

fn unanswered() -> RedisLimitError {
    RedisLimitError::UnexpectedReply("the operation ended without an answer".to_owned())
}

/// An operation of one call on one key: how its reply is decoded and what
/// the failure policy answers in its place.
pub(crate) trait Single<A: Algorithm> {
    /// The operation's answer.
    type Output;
    /// Decodes the reply; `limit` is the capacity (or limit) of the quota
    /// the call ran under.
    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
        limit: u64,
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError>;
    /// The failure policy's answer in place of Redis's, or the error.
    fn policy(
        &self,
        e: &Engine<A>,
        redis_key: &[u8],
        err: RedisLimitError,
    ) -> Result<Self::Output, RedisLimitError>;
}

/// The failure policy's `retry_after` when it denies (`FailClosed`): a
/// bucket's interval, a window's `W / L` rounded up.
fn fail_closed_retry(algorithm: &AnyAlgorithm) -> Duration {
    match (algorithm.quota(), algorithm.window()) {
        (Some(quota), _) => Duration::from_nanos(quota.interval_ns()),
        (None, Some(window)) => {
            let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(window_ns.div_ceil(algorithm.limit().max(1)))
        }
        (None, None) => Duration::ZERO,
    }
}

/// A [`Single`] operation on `redis_key`, with its answer once settled.
pub(crate) struct One<S, T> {
    redis_key: Vec<u8>,
    kind: S,
    answer: Option<T>,
    /// The decision's `limit` when not the engine's (a changed window
    /// quota).
    limit: Option<u64>,
    /// The cost is above a changed window quota's limit: the call is sent
    /// with a cost of 0, only to bring the key to that quota (it changes
    /// at this call all the same), and the answer is this error.
    over: Option<InsufficientCapacity>,
}

impl<S, T> One<S, T> {
    fn new(redis_key: Vec<u8>, kind: S) -> Self {
        Self {
            redis_key,
            kind,
            answer: None,
            limit: None,
            over: None,
        }
    }

    /// Decided under `limit` (when given) rather than the engine's.
    fn limited(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }
}

impl<A: Algorithm, S: Single<A, Output = T>, T> Request<A> for One<S, T> {
    type Output = T;

    fn settle(
        &mut self,
        e: &Engine<A>,
        _: usize,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(), RedisLimitError> {
        let limit = self.limit.unwrap_or_else(|| e.limit());
        self.answer = Some(match result.and_then(|v| self.kind.decode(e, v, limit)) {
            Ok(a) => {
                if a.repaired {
                    e.observer.repaired(&self.redis_key, e.mono_ns());
                }
                a.value
            }
            // Not a failure of Redis: the key is of a changed quota this
            // limiter has not adopted yet (it adopts it and calls again).
            Err(err) if converted_elsewhere(&err) => return Err(err),
            Err(err) => self.kind.policy(e, &self.redis_key, err)?,
        });
        Ok(())
    }

    fn finish(self) -> Result<T, RedisLimitError> {
        if let Some(e) = self.over {
            return Err(e.into());
        }
        self.answer.ok_or_else(unanswered)
    }
}

/// `check`.
pub(crate) struct CheckOne {
    cost: u64,
}

/// `check`: one key, one call.
pub(crate) type Check = One<CheckOne, Decision>;

impl<A: Algorithm> Single<A> for CheckOne {
    type Output = Decision;

    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
        limit: u64,
    ) -> Result<reply::Answer<Decision>, RedisLimitError> {
        let _ = e;
        reply::check(v, limit)
    }

    fn policy(
        &self,
        e: &Engine<A>,
        key: &[u8],
        err: RedisLimitError,
    ) -> Result<Decision, RedisLimitError> {
        e.on_failure(err, 1, |e, reason| e.policy_check(key, self.cost, reason))
    }
}

/// A refundable `check`.
pub(crate) struct CheckReceiptOne {
    cost: u64,
}

/// A refundable `check`: the decision and what the admission stored.
pub(crate) type CheckReceipt = One<CheckReceiptOne, (Decision, Option<Admitted>)>;

impl<A: Algorithm> Single<A> for CheckReceiptOne {
    type Output = (Decision, Option<Admitted>);

    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
        limit: u64,
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError> {
        let window = matches!(e.params, Params::Window { .. });
        reply::check_receipt(v, limit, window)
    }

    fn policy(
        &self,
        e: &Engine<A>,
        key: &[u8],
        err: RedisLimitError,
    ) -> Result<Self::Output, RedisLimitError> {
        let d = e.on_failure(err, 1, |e, reason| e.policy_check(key, self.cost, reason))?;
        Ok((d, None))
    }
}

/// `reserve`.
pub(crate) struct ReserveOne {
    cost: u64,
    max_wait_ns: Option<u64>,
}

/// `reserve`: one key, one call; the reservation and the state it stored.
pub(crate) type Reserve = One<ReserveOne, (Reservation, Option<u64>)>;

impl<A: Shaping> Single<A> for ReserveOne {
    type Output = (Reservation, Option<u64>);

    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
        limit: u64,
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError> {
        let _ = e;
        reply::reserve(v, limit)
    }

    fn policy(
        &self,
        e: &Engine<A>,
        key: &[u8],
        err: RedisLimitError,
    ) -> Result<Self::Output, RedisLimitError> {
        let r = e.on_failure(err, 1, |e, reason| {
            e.policy_reserve(key, self.cost, self.max_wait_ns, reason)
        })?;
        Ok((r, None))
    }
}

/// `inspect` and the undo of a reservation: read a reply, no policy.
pub(crate) struct Plain<T>(fn(redis::Value, &AnyAlgorithm) -> Result<T, RedisLimitError>);

impl<A: Algorithm, T> Single<A> for Plain<T> {
    type Output = T;

    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
        _: u64,
    ) -> Result<reply::Answer<T>, RedisLimitError> {
        Ok(reply::Answer {
            value: (self.0)(v, &e.algorithm.to_any())?,
            repaired: false,
        })
    }

    fn policy(&self, _: &Engine<A>, _: &[u8], err: RedisLimitError) -> Result<T, RedisLimitError> {
        Err(err)
    }
}

/// `inspect`: one key's state, read only.
pub(crate) type Inspect = One<Plain<KeyState>, KeyState>;

/// The undo of a reservation: whether it was undone.
pub(crate) type Cancel = One<Plain<bool>, bool>;

/// `check_batch`: many keys, one call per group (slot).
pub(crate) struct Batch {
    keys: Vec<Vec<u8>>,
    costs: Vec<u64>,
    groups: Vec<Vec<usize>>,
    answers: Vec<Option<Result<Decision, InsufficientCapacity>>>,
    /// The decisions' `limit`.
    limit: u64,
    /// Empty, or per key the error of a cost above a changed window
    /// quota's limit (sent with a cost of 0, answered with this error).
    over: Vec<Option<InsufficientCapacity>>,
}

impl<A: Algorithm> Request<A> for Batch {
    type Output = Vec<Result<Decision, InsufficientCapacity>>;

    fn settle(
        &mut self,
        e: &Engine<A>,
        g: usize,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(), RedisLimitError> {
        let Some(indices) = self.groups.get(g) else {
            return Err(unanswered());
        };
        match result.and_then(|v| reply::batch(v, indices.len(), self.limit)) {
            Ok(decisions) => {
                for (&i, a) in indices.iter().zip(decisions) {
                    if a.repaired {
                        e.observer.repaired(&self.keys[i], e.mono_ns());
                    }
                    self.answers[i] = Some(Ok(a.value));
                }
            }
            // A key of a changed quota: never the failure policy's answer.
            Err(err) if converted_elsewhere(&err) => return Err(err),
            Err(err) => {
                let n = u64::try_from(indices.len()).unwrap_or(u64::MAX);
                let (keys, costs, answers) = (&self.keys, &self.costs, &mut self.answers);
                e.on_failure(err, n, |e, reason| {
                    for &i in indices {
                        answers[i] = Some(Ok(e.policy_check(&keys[i], costs[i], reason)?));
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Self::Output, RedisLimitError> {
        let over = self.over;
        self.answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| match over.get(i) {
                Some(Some(e)) => Ok(Err(*e)),
                _ => a.ok_or_else(unanswered),
            })
            .collect()
    }
}

// ---- changing quotas (docs/redis.md, "Changing quotas") ----

/// How many times one call is sent again with a conversion before it
/// gives up: each resend follows another process's write to the same key
/// between the ask and the resend.
const MAX_CONVERSIONS: u32 = 8;

/// The quota a tagged call decides under: the limiter's at `version`, or
/// a key's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The limiter's quota version the caller is at.
    version: usize,
    /// The quota the call decides under.
    quota: Quota,
    /// The key's own quota, when it has one (then `quota` is it).
    own: Option<Quota>,
    /// The tag of `quota` (`lua/gcra.lua`).
    tag: String,
}

/// Where a stored state's tag says it was converted to.
enum Source {
    Version(usize),
    Own(Quota),
}

fn version_tag(version: usize) -> String {
    if version == 0 {
        String::new()
    } else {
        format!("v{version}")
    }
}

fn own_tag(quota: &Quota) -> String {
    format!("q{}x{}", quota.capacity(), quota.interval_ns())
}

/// A quota the scripts can run exactly (τ below 2^53 ns).
fn scriptable(quota: &Quota) -> Result<(), RedisLimitError> {
    if quota.tolerance_ns() >= script::MAX_TOLERANCE_NS {
        return Err(RedisLimitError::InvalidOption(format!(
            "capacity × interval is {} ns; the Redis scripts compute exactly in doubles and need it below 2^53 ns (about 104 days)",
            quota.tolerance_ns()
        )));
    }
    Ok(())
}

impl Change {
    /// The change as the quota record holds it.
    pub(crate) fn entry(&self) -> String {
        format!(
            "{} {} {} {}",
            self.quota.capacity(),
            self.quota.interval_ns(),
            self.strategy.name(),
            self.at_ns
        )
    }
}

/// A change of the quota record.
fn parse_change(entry: &str) -> Result<Change, RedisLimitError> {
    let bad = || RedisLimitError::UnexpectedReply(format!("a quota record entry: {entry:?}"));
    let mut parts = entry.split(' ');
    let (Some(c), Some(t), Some(strategy), Some(at), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let (Ok(c), Ok(t), Ok(strategy), Ok(at_ns)) = (
        c.parse::<u64>(),
        t.parse::<u64>(),
        strategy.parse::<Strategy>(),
        at.parse::<u64>(),
    ) else {
        return Err(bad());
    };
    let quota = Quota::new(c, Rate::from_interval(Duration::from_nanos(t))).map_err(|_| bad())?;
    scriptable(&quota)?;
    Ok(Change {
        quota,
        strategy,
        at_ns,
    })
}

fn bad_state(stored: &str) -> RedisLimitError {
    RedisLimitError::UnexpectedReply(format!(
        "wanted a stored state `tat` or `tat:tag`, got {stored:?}"
    ))
}

/// The tag of a stored state as where it was converted to.
fn source(tag: &str) -> Result<Option<Source>, RedisLimitError> {
    if tag.is_empty() {
        return Ok(Some(Source::Version(0)));
    }
    if let Some(n) = tag.strip_prefix('v') {
        return Ok(n.parse().ok().map(Source::Version));
    }
    let Some((c, t)) = tag.strip_prefix('q').and_then(|q| q.split_once('x')) else {
        return Ok(None);
    };
    let (Ok(c), Ok(t)) = (c.parse::<u64>(), t.parse::<u64>()) else {
        return Ok(None);
    };
    Ok(Quota::new(c, Rate::from_interval(Duration::from_nanos(t)))
        .ok()
        .map(Source::Own))
}

impl<A: Algorithm> Engine<A> {
    /// The limiter's bucket quota at `version`.
    fn quota_at(&self, version: usize, changes: &[Change]) -> Result<Quota, RedisLimitError> {
        match version.checked_sub(1) {
            None => self.algorithm.to_any().quota().copied().ok_or_else(|| {
                RedisLimitError::InvalidOption(
                    "a quota of capacity and rate needs token-bucket or leaky-bucket".to_owned(),
                )
            }),
            Some(i) => changes.get(i).map(|c| c.quota).ok_or_else(|| {
                RedisLimitError::UnexpectedReply(format!("no quota version {version}"))
            }),
        }
    }

    /// Whether this is a bucket limiter whose quota has changed (a change
    /// of its own or one it adopted): its batch script cannot convert.
    pub(crate) fn bucket_changed(&self) -> bool {
        !self.is_window()
            && !self
                .changes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
    }

    /// The limiter's current quota version and quota.
    pub(crate) fn current(&self) -> Result<(usize, Quota), RedisLimitError> {
        let changes = self.changes.read().unwrap_or_else(PoisonError::into_inner);
        Ok((changes.len(), self.quota_at(changes.len(), &changes)?))
    }

    /// The quota a call decides under: `own`, or the limiter's; `None`
    /// when calls need no tag (no change yet, no key's own quota).
    pub(crate) fn target(&self, own: Option<&Quota>) -> Result<Option<Target>, RedisLimitError> {
        if let Some(q) = own {
            scriptable(q)?;
            self.tagged.store(true, Ordering::Release);
        } else if !self.tagged.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (version, current) = self.current()?;
        Ok(Some(match own {
            Some(q) => Target {
                version,
                quota: *q,
                own: Some(*q),
                tag: own_tag(q),
            },
            None => Target {
                version,
                quota: current,
                own: None,
                tag: version_tag(version),
            },
        }))
    }

    /// The text to store in place of `stored` for a call under `target`
    /// at `now_ns`: the state converted change by change, each at its own
    /// time, then (keep-consumed, at `now_ns`) from the limiter's quota to
    /// the key's own or back. An error when `stored` is of a newer version
    /// than `target`: this limiter has not seen that change, and must not
    /// decide with its older quota: `Ok(Err(version))`, the state's newer
    /// version.
    pub(crate) fn convert_stored(
        &self,
        stored: &str,
        target: &Target,
        now_ns: u64,
    ) -> Result<Result<String, usize>, RedisLimitError> {
        let (tat, tag) = stored.split_once(':').unwrap_or((stored, ""));
        let mut tat: u64 = tat.parse().map_err(|_| bad_state(stored))?;
        let changes = self.changes.read().unwrap_or_else(PoisonError::into_inner);
        let limiter = self.quota_at(target.version, &changes)?;
        let from = match source(tag)?.ok_or_else(|| bad_state(stored))? {
            Source::Version(v) if v > target.version => return Ok(Err(v)),
            Source::Version(v) => {
                let mut quota = self.quota_at(v, &changes)?;
                for c in changes.get(v..target.version).unwrap_or_default() {
                    tat = quota.convert(tat, c.at_ns, &c.quota, c.strategy);
                    quota = c.quota;
                }
                quota
            }
            Source::Own(q) => q,
        };
        let to = target.own.unwrap_or(limiter);
        if from != to || target.own.is_some() != tag.starts_with('q') {
            tat = from.convert(tat, now_ns, &to, Strategy::KeepConsumed);
        }
        Ok(Ok(if target.tag.is_empty() {
            tat.to_string()
        } else {
            format!("{tat}:{}", target.tag)
        }))
    }

    /// The server's time in ns (`time.lua`), for a change of quota under
    /// the server's time.
    pub(crate) fn server_time(&self) -> Op<'_, A, One<Plain<u64>, u64>> {
        let decode = Plain(|v, _: &AnyAlgorithm| reply::time(v));
        Op::new(
            self,
            vec![script::time_call()],
            false,
            One::new(Vec::new(), decode),
        )
    }

    /// The Redis key of this prefix's quota record (no state key has it:
    /// state keys are `<prefix>|...`).
    pub(crate) fn record_key(&self) -> Vec<u8> {
        format!("{}#quota", self.keys.prefix()).into_bytes()
    }

    /// One step of the walk that raises the expiry of every state key of
    /// the prefix to at least `least_ms` after a change of quota (standalone
    /// Redis; `None` on a cluster, whose masters are walked one by one by
    /// `crate::walk`):
    /// the next cursor, `"0"` when done.
    pub(crate) fn extend_expiry(
        &self,
        cursor: &str,
        least_ms: u64,
    ) -> Option<Op<'_, A, One<Plain<String>, String>>> {
        if self.cluster {
            return None;
        }
        let pattern = self.walk_pattern();
        let decode = Plain(|v, _: &AnyAlgorithm| reply::cursor(v));
        Some(Op::new(
            self,
            vec![script::extend_call(cursor, &pattern, least_ms, 1000)],
            false,
            One::new(Vec::new(), decode),
        ))
    }

    /// Whether the limiter sends to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The `SCAN` pattern of the prefix's state keys (`<prefix>|*`, glob
    /// characters of the prefix escaped).
    pub(crate) fn walk_pattern(&self) -> String {
        let mut pattern = String::new();
        for c in self.keys.prefix().chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("|*");
        pattern
    }

    /// The least expiry, in milliseconds, that keeps every state alive as
    /// long as its conversion to `quota` may need: `τ′` (a converted state
    /// never ends more than `τ′` after the change) rounded up, plus the
    /// client-time margin.
    pub(crate) fn least_expiry_ms(&self, quota: &Quota) -> u64 {
        let tau_ns = quota.capacity().saturating_mul(quota.interval_ns());
        let margin_ms = match self.time {
            TimeSource::Client { ttl_margin } => {
                u64::try_from(ttl_margin.as_millis()).unwrap_or(u64::MAX)
            }
            TimeSource::Server => 0,
        };
        tau_ns
            .div_ceil(1_000_000)
            .saturating_add(1)
            .saturating_add(margin_ms)
    }

    /// Reads the quota record from `version` on, appending `change` if
    /// the record is at `version` (`""`: only read).
    pub(crate) fn quota_record(&self, version: usize, change: &str) -> Op<'_, A, QuotaRecord> {
        let call = script::quota_call(&self.record_key(), version, change);
        let decode = Plain(|v, _: &AnyAlgorithm| reply::quota_record(v));
        Op::new(self, vec![call], false, One::new(self.record_key(), decode))
    }

    /// Adopts the record's changes from version `from + 1` on (`entries`,
    /// as `quota.lua` answers them); those already known must match.
    pub(crate) fn adopt(&self, from: usize, entries: &[String]) -> Result<(), RedisLimitError> {
        let mut changes = self.changes.write().unwrap_or_else(PoisonError::into_inner);
        for (i, entry) in entries.iter().enumerate() {
            let change = parse_change(entry)?;
            match changes.get(from + i) {
                Some(known) if *known == change => {}
                Some(_) => {
                    return Err(RedisLimitError::Misconfigured {
                        message: format!(
                            "the quota record of the prefix `{}` disagrees with this limiter's change {}",
                            self.keys.prefix(),
                            from + i + 1
                        ),
                        source: None,
                    });
                }
                None if changes.len() == from + i => changes.push(change),
                None => return Err(unanswered()),
            }
        }
        self.tagged.store(true, Ordering::Release);
        Ok(())
    }

    /// Appends `change` as version `version + 1` locally, if this limiter
    /// is still at `version`.
    pub(crate) fn push_change(&self, version: usize, change: Change) -> bool {
        let mut changes = self.changes.write().unwrap_or_else(PoisonError::into_inner);
        if changes.len() != version {
            return false;
        }
        changes.push(change);
        self.tagged.store(true, Ordering::Release);
        true
    }

    /// The change of quota to `quota` at `at_ns` as this limiter would
    /// make it now: its version and the change (a time before the last
    /// change's counts as that change's).
    pub(crate) fn next_change(
        &self,
        quota: Quota,
        strategy: Strategy,
        at_ns: u64,
    ) -> Result<(usize, Change), RedisLimitError> {
        scriptable(&quota)?;
        self.current()?;
        let changes = self.changes.read().unwrap_or_else(PoisonError::into_inner);
        let at_ns = changes.last().map_or(at_ns, |c| c.at_ns.max(at_ns));
        Ok((
            changes.len(),
            Change {
                quota,
                strategy,
                at_ns,
            },
        ))
    }
}

/// Whether a call without quota tags failed on a key converted to a
/// changed quota (`load_rel` in `lua/gcra.lua`): another limiter on the
/// prefix changed it.
pub(crate) fn converted_elsewhere(e: &RedisLimitError) -> bool {
    matches!(e, RedisLimitError::Script(_)) && e.to_string().contains("converted to another quota")
}

/// A read of (or an append to) the quota record: `None` when appended,
/// else the changes not seen yet.
pub(crate) type QuotaRecord = One<Plain<Option<Vec<String>>>, Option<Vec<String>>>;

/// How many times `reconfigure` tries to append its change to the quota
/// record, adopting others' changes in between.
pub(crate) const MAX_APPENDS: usize = 8;

/// A state of a newer version than the record holds for this limiter.
fn stale<A: Algorithm>(e: &Engine<A>, newer: usize, version: usize) -> RedisLimitError {
    RedisLimitError::Misconfigured {
        message: format!(
            "this key's state is at quota version {newer}, and this limiter at version {version} \
             after reading the quota record `{}#quota`: the record lost changes (deleted?); \
             this limiter will not decide the key with an older quota",
            e.keys.prefix()
        ),
        source: None,
    }
}

/// What a tagged call is, to build it again with a conversion.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Check {
        receipt: bool,
    },
    Reserve {
        leaky: bool,
        max_wait_ns: Option<u64>,
    },
}

/// A [`Single`] bucket operation under a [`Target`] quota: sent with the
/// quota's tag; when the script asks for a conversion, the state is
/// converted here, exactly, and the call sent again with it.
pub(crate) struct Versioned<S, T> {
    one: One<S, T>,
    target: Target,
    shape: Shape,
    cost: u64,
    now: Now,
    pending: Option<Call>,
    conversions: u32,
    /// Whether the call in flight reads the quota record (the key was of
    /// a newer version than this limiter's).
    reloading: bool,
    /// The cost is above the quota's capacity: the call is sent with a
    /// cost of 0, only to convert the key to its quota (the change happens
    /// at this call all the same), and the answer is that error.
    over: Option<InsufficientCapacity>,
}

impl<S, T> Versioned<S, T> {
    fn call(&self, swap: Option<(&str, &str)>) -> Call {
        let tagged = script::Tagged {
            quota: &self.target.quota,
            tag: &self.target.tag,
            swap,
        };
        let key = &self.one.redis_key;
        let cost = if self.over.is_some() { 0 } else { self.cost };
        match self.shape {
            Shape::Check { receipt } => {
                script::check_tagged_call(key, cost, receipt, self.now, tagged)
            }
            Shape::Reserve { leaky, max_wait_ns } => {
                script::reserve_tagged_call(leaky, key, cost, max_wait_ns, self.now, tagged)
            }
        }
    }
}

impl<A: Algorithm, S: Single<A, Output = T>, T> Request<A> for Versioned<S, T> {
    type Output = T;

    fn settle(
        &mut self,
        e: &Engine<A>,
        _: usize,
        result: Result<redis::Value, RedisLimitError>,
    ) -> Result<(), RedisLimitError> {
        if self.reloading {
            // The quota record, read after meeting a newer version: adopt
            // its changes, then send the call again under the newest.
            self.reloading = false;
            let entries = reply::quota_record(result?)?.unwrap_or_default();
            e.adopt(self.target.version, &entries)?;
            let own = self.target.own;
            self.target = e.target(own.as_ref())?.ok_or_else(unanswered)?;
            self.pending = Some(self.call(None));
            return Ok(());
        }
        if let Ok(v) = &result {
            if let Some((stored, server_now)) = reply::convert_ask(v)? {
                self.conversions += 1;
                if self.conversions > MAX_CONVERSIONS {
                    return Err(RedisLimitError::UnexpectedReply(format!(
                        "the key's state changed under {MAX_CONVERSIONS} conversions in a row"
                    )));
                }
                let now_ns = match self.now {
                    Now::Client { now_ns, .. } => now_ns,
                    Now::Server => server_now,
                };
                match e.convert_stored(&stored, &self.target, now_ns)? {
                    Ok(converted) => {
                        self.pending = Some(self.call(Some((&stored, &converted))));
                    }
                    Err(newer) if self.conversions == 1 => {
                        // Another limiter on the prefix changed the quota:
                        // never decide with the older one; reload first.
                        let _ = newer;
                        self.reloading = true;
                        let record = e.record_key();
                        self.pending = Some(script::quota_call(&record, self.target.version, ""));
                    }
                    Err(newer) => return Err(stale(e, newer, self.target.version)),
                }
                return Ok(());
            }
        }
        let limit = self.target.quota.capacity();
        let one = &mut self.one;
        one.answer = Some(match result.and_then(|v| one.kind.decode(e, v, limit)) {
            Ok(a) => {
                if a.repaired {
                    e.observer.repaired(&one.redis_key, e.mono_ns());
                }
                a.value
            }
            Err(err) => one.kind.policy(e, &one.redis_key, err)?,
        });
        Ok(())
    }

    fn finish(self) -> Result<T, RedisLimitError> {
        if let Some(e) = self.over {
            return Err(e.into());
        }
        self.one.answer.ok_or_else(unanswered)
    }

    fn more(&mut self) -> Option<Call> {
        self.pending.take()
    }
}

/// `check` under a [`Target`] quota.
pub(crate) type CheckTagged = Versioned<CheckOne, Decision>;
/// A refundable `check` under a [`Target`] quota.
pub(crate) type CheckReceiptTagged = Versioned<CheckReceiptOne, (Decision, Option<Admitted>)>;
/// `reserve` under a [`Target`] quota.
pub(crate) type ReserveTagged = Versioned<ReserveOne, (Reservation, Option<u64>)>;

impl<A: Algorithm> Engine<A> {
    fn versioned<S: Single<A, Output = T>, T>(
        &self,
        redis_key: Vec<u8>,
        kind: S,
        target: Target,
        shape: Shape,
        cost: u64,
        now: Now,
    ) -> Result<Op<'_, A, Versioned<S, T>>, RedisLimitError> {
        let capacity = target.quota.capacity();
        let over = (cost > capacity).then_some(InsufficientCapacity { cost, capacity });
        let v = Versioned {
            one: One::new(redis_key, kind),
            target,
            shape,
            cost,
            now,
            pending: None,
            conversions: 0,
            reloading: false,
            over,
        };
        let call = v.call(None);
        Ok(Op::new(self, vec![call], true, v))
    }

    /// `check` under `target` (see [`Engine::target`]).
    pub(crate) fn check_tagged(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
        target: Target,
    ) -> Result<Op<'_, A, CheckTagged>, RedisLimitError> {
        let shape = Shape::Check { receipt: false };
        self.versioned(redis_key, CheckOne { cost }, target, shape, cost, now)
    }

    /// A refundable `check` under `target`.
    pub(crate) fn check_receipt_tagged(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        now: Now,
        target: Target,
    ) -> Result<Op<'_, A, CheckReceiptTagged>, RedisLimitError> {
        let shape = Shape::Check { receipt: true };
        self.versioned(
            redis_key,
            CheckReceiptOne { cost },
            target,
            shape,
            cost,
            now,
        )
    }
}

impl<A: Shaping> Engine<A> {
    /// `reserve` under `target`.
    pub(crate) fn reserve_tagged(
        &self,
        redis_key: Vec<u8>,
        cost: u64,
        max_wait_ns: Option<u64>,
        now: Now,
        target: Target,
    ) -> Result<Op<'_, A, ReserveTagged>, RedisLimitError> {
        let shape = Shape::Reserve {
            leaky: self.algorithm.kind() == AlgorithmKind::LeakyBucket,
            max_wait_ns,
        };
        let kind = ReserveOne { cost, max_wait_ns };
        self.versioned(redis_key, kind, target, shape, cost, now)
    }
}
