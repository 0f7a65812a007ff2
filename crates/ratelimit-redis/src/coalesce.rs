//! Coalescing (feature `tokio`, opt-in:
//! [`coalesce`](crate::RedisLimiterBuilder::coalesce)): the async
//! limiter's concurrent `check`s share round trips. A check joins a queue;
//! a task sends what is queued as one `check_batch` call (up to
//! [`MAX_BATCH`] checks; one call per hash slot on a cluster) and hands
//! each caller its own answer. Up to [`MAX_IN_FLIGHT`] batches are in
//! flight at once, so that the next batch gathers and is sent while the
//! server decides the previous one (the client's work and the server's
//! overlap), but never two batches with a key in common: a queued check
//! whose key is in flight waits, and so does every later check of that
//! key, for the batch that holds it to return.
//!
//! Exactness and order: the batch script decides its checks one after the
//! other in queue order, which is arrival order; a key is in at most one
//! batch in flight, and its later checks go in a later batch, so checks of
//! one key are decided in the order they were made, each against the state
//! its predecessors left, exactly as one call each would be (batches in
//! flight together share no key, so their order does not matter, even when
//! one is sent again after a lost script). A Redis failure is settled per
//! check by the failure policy, as for `check_batch`; under `ReturnError`
//! every caller of the batch gets the error.
//!
//! The batch runs in its own task (`tokio::spawn`), so a caller that drops
//! its future never strands the others.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use ratelimit_core::{Algorithm, Decision, InsufficientCapacity};
use tokio::sync::oneshot;

use crate::async_connection::AsyncRedisConnection;
use crate::error::RedisLimitError;
use crate::key::RedisKey;
use crate::limiter::RedisLimiter;

/// The most checks one coalesced call carries.
pub(crate) const MAX_BATCH: usize = 256;

/// The most coalesced calls in flight at once (each from its own task).
pub(crate) const MAX_IN_FLIGHT: usize = 2;

type Answer = Result<Decision, RedisLimitError>;

/// One queued check.
struct Waiter {
    redis_key: Vec<u8>,
    cost: u64,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    /// How many tasks are sending batches (at most [`MAX_IN_FLIGHT`]).
    senders: usize,
    /// The keys of the batches in flight.
    in_flight: HashSet<Vec<u8>>,
}

impl Queue {
    /// Whether a new sender would find something to send: a queued check
    /// whose key is not in flight.
    fn sendable(&self) -> bool {
        self.waiting
            .iter()
            .any(|w| !self.in_flight.contains(&w.redis_key))
    }

    /// Takes the next batch: the queued checks, in order, whose key is not
    /// in a batch in flight (up to [`MAX_BATCH`]); their keys are in flight
    /// from now on. A check left behind keeps its key's later checks
    /// behind it, since that key stays in flight.
    fn take_batch(&mut self) -> Vec<Waiter> {
        let mut batch = Vec::new();
        let mut kept = Vec::with_capacity(self.waiting.len());
        let mut taken = HashSet::new();
        for w in self.waiting.drain(..) {
            if batch.len() < MAX_BATCH && !self.in_flight.contains(&w.redis_key) {
                taken.insert(w.redis_key.clone());
                batch.push(w);
            } else {
                // The batch is full (so is it for every later check), or
                // the key is in flight (and stays so for every later check
                // of it in this pass): the key's order holds.
                kept.push(w);
            }
        }
        self.waiting = kept;
        self.in_flight.extend(taken);
        batch
    }
}

/// The queue of one limiter's coalesced checks.
#[derive(Default)]
pub(crate) struct Coalescer {
    queue: Mutex<Queue>,
}

impl core::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl Coalescer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<A: Algorithm> RedisLimiter<A, AsyncRedisConnection> {
    /// `check_n` through the coalescer `c`.
    pub(crate) async fn check_coalesced<K: RedisKey + ?Sized>(
        &self,
        c: &Coalescer,
        key: &K,
        cost: u64,
    ) -> Result<Decision, RedisLimitError> {
        let redis_key = self.redis_key(key)?;
        let capacity = self.engine().limit();
        if cost > capacity {
            return Err(InsufficientCapacity { cost, capacity }.into());
        }
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = c.lock();
            q.waiting.push(Waiter {
                redis_key,
                cost,
                reply,
            });
            let start = q.senders < MAX_IN_FLIGHT && q.sendable();
            if start {
                q.senders += 1;
            }
            start
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.send_batches().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(RedisLimitError::UnexpectedReply(
                "the coalesced batch task ended without an answer".to_owned(),
            ))
        })
    }

    /// Sends the queue as batches until it is empty.
    async fn send_batches(&self) {
        let Some(c) = self.coalescer() else {
            return;
        };
        let mut sent: Vec<Vec<u8>> = Vec::new();
        loop {
            let batch: Vec<Waiter> = {
                let mut q = c.lock();
                for key in sent.drain(..) {
                    q.in_flight.remove(&key);
                }
                let batch = q.take_batch();
                if batch.is_empty() {
                    q.senders -= 1;
                    return;
                }
                batch
            };
            let mut keys = Vec::with_capacity(batch.len());
            let mut costs = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for w in batch {
                sent.push(w.redis_key.clone());
                keys.push(w.redis_key);
                costs.push(w.cost);
                replies.push(w.reply);
            }
            let e = self.engine();
            let result = match e.batch_stored(keys, costs, e.now(None)) {
                Ok(op) => self.run(op).await,
                Err(err) => Err(err),
            };
            match result {
                Ok(answers) => {
                    for (reply, a) in replies.into_iter().zip(answers) {
                        let _ = reply.send(a.map_err(RedisLimitError::from));
                    }
                }
                Err(err) => {
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }
}

impl<A: Algorithm> crate::RedisLimiterBuilder<A, AsyncRedisConnection> {
    /// Coalesces concurrent `check`/`check_n` calls into shared batch
    /// calls (default off): while one batch is in flight, the checks made
    /// meanwhile queue up and go together in the next one (up to
    /// 256), each caller getting its own answer, checks of one
    /// key decided in the order they were made. Fewer round trips and less
    /// Redis CPU per check under concurrency; a lone check waits for the
    /// batch in flight, if any. Coalesced checks bypass the denied-key
    /// cache.
    pub fn coalesce(mut self, on: bool) -> Self {
        self.coalesce = on;
        self
    }
}
