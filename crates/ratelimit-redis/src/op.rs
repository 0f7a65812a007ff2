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

use core::time::Duration;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    Algorithm, AnyAlgorithm, Decision, InsufficientCapacity, Reason, Reservation, Shaping,
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
        let capacity = self.limit();
        if cost > capacity {
            Err(InsufficientCapacity { cost, capacity })
        } else {
            Ok(())
        }
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
        self.capacity_ok(cost)?;
        self.params.check_now(now)?;
        let call = script::check_call(&self.params, &redis_key, cost, now);
        Ok(Op::new(
            self,
            vec![call],
            true,
            One::new(redis_key, CheckOne { cost }),
        ))
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
        self.capacity_ok(cost)?;
        self.params.check_now(now)?;
        let call = script::check_receipt_call(&self.params, &redis_key, cost, now);
        Ok(Op::new(
            self,
            vec![call],
            true,
            One::new(redis_key, CheckReceiptOne { cost }),
        ))
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
        self.params.check_now(now)?;
        let mut answers = vec![None; keys.len()];
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, cost) in costs.iter().enumerate() {
            if let Err(e) = self.capacity_ok(*cost) {
                answers[i] = Some(Err(e));
            } else {
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
                let items = g.iter().map(|&i| (keys[i].as_slice(), costs[i]));
                script::batch_call(&self.params, items, now)
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
        let limit = self.limit();
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
                    .check(&self.algorithm, &self.clock, redis_key, cost)?
            }
            _ => Decision {
                allowed: false,
                remaining: 0,
                retry_after: Some(self.fail_closed_retry()),
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

    /// The failure policy's `retry_after` when it denies (`FailClosed`):
    /// a bucket's interval, a window's `W / L` rounded up.
    fn fail_closed_retry(&self) -> Duration {
        match self.params {
            Params::Bucket { interval_ns, .. } => Duration::from_nanos(interval_ns),
            Params::Window {
                limit, window_ns, ..
            } => Duration::from_nanos(window_ns.div_ceil(limit)),
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
        let limit = self.limit();
        let mut r = match self.policy {
            FailurePolicy::FailOpen => Reservation::Admitted {
                wait: Duration::ZERO,
                reset_after: Duration::ZERO,
                limit,
                reason: Reason::FailOpen,
            },
            FailurePolicy::Fallback => {
                self.fallback
                    .reserve(&self.algorithm, &self.clock, redis_key, cost, max_wait_ns)?
            }
            _ => Reservation::Rejected {
                retry_after: Some(self.fail_closed_retry()),
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
    /// Decodes the reply.
    fn decode(
        &self,
        e: &Engine<A>,
        v: redis::Value,
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError>;
    /// The failure policy's answer in place of Redis's, or the error.
    fn policy(
        &self,
        e: &Engine<A>,
        redis_key: &[u8],
        err: RedisLimitError,
    ) -> Result<Self::Output, RedisLimitError>;
}

/// A [`Single`] operation on `redis_key`, with its answer once settled.
pub(crate) struct One<S, T> {
    redis_key: Vec<u8>,
    kind: S,
    answer: Option<T>,
}

impl<S, T> One<S, T> {
    fn new(redis_key: Vec<u8>, kind: S) -> Self {
        Self {
            redis_key,
            kind,
            answer: None,
        }
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
        self.answer = Some(match result.and_then(|v| self.kind.decode(e, v)) {
            Ok(a) => {
                if a.repaired {
                    e.observer.repaired(&self.redis_key, e.mono_ns());
                }
                a.value
            }
            Err(err) => self.kind.policy(e, &self.redis_key, err)?,
        });
        Ok(())
    }

    fn finish(self) -> Result<T, RedisLimitError> {
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
    ) -> Result<reply::Answer<Decision>, RedisLimitError> {
        reply::check(v, e.limit())
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
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError> {
        let window = matches!(e.params, Params::Window { .. });
        reply::check_receipt(v, e.limit(), window)
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
    ) -> Result<reply::Answer<Self::Output>, RedisLimitError> {
        reply::reserve(v, e.limit())
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

    fn decode(&self, e: &Engine<A>, v: redis::Value) -> Result<reply::Answer<T>, RedisLimitError> {
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
        match result.and_then(|v| reply::batch(v, indices.len(), e.limit())) {
            Ok(decisions) => {
                for (&i, a) in indices.iter().zip(decisions) {
                    if a.repaired {
                        e.observer.repaired(&self.keys[i], e.mono_ns());
                    }
                    self.answers[i] = Some(Ok(a.value));
                }
            }
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
        self.answers
            .into_iter()
            .map(|a| a.ok_or_else(unanswered))
            .collect()
    }
}
