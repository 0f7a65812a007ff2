//! [`Backend`]: what a limiter must offer to be replayed, and [`Model`],
//! the reference implementation straight over the core.

use core::convert::Infallible;
use std::collections::HashMap;

use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{Algorithm, Decision, InsufficientCapacity, ManualClock, Reservation};
use ratelimit_memory::KeyedLimiter;

/// A limiter driven with explicit time, one event at a time.
///
/// The outer `Result` is the backend's own failure (Redis down, ...); the
/// inner one is the contract's answer, where a cost above the capacity is
/// [`InsufficientCapacity`].
pub trait Backend {
    /// A failure of the backend itself.
    type Error: core::fmt::Display;

    /// `check(key, cost)` at `now_ns`.
    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Self::Error>;

    /// `reserve(key, cost, max_wait)` at `now_ns`.
    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Self::Error>;
}

/// The reference backend: the core's pure functions over a `HashMap` of
/// states, single-threaded and obviously right. Other backends are checked
/// against it.
#[derive(Debug, Clone)]
pub struct Model<A> {
    algorithm: A,
    states: HashMap<String, u64>,
}

impl<A: Algorithm> Model<A> {
    /// An empty model running `algorithm`.
    pub fn new(algorithm: A) -> Self {
        Self {
            algorithm,
            states: HashMap::new(),
        }
    }

    /// The stored state of `key` (0 when never seen).
    pub fn state(&self, key: &str) -> u64 {
        self.states.get(key).copied().unwrap_or(0)
    }

    fn store(&mut self, key: &str, next: Option<u64>) {
        if let Some(tat) = next {
            self.states.insert(key.to_owned(), tat);
        }
    }
}

impl<A: Algorithm> Backend for Model<A> {
    type Error = Infallible;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Infallible> {
        Ok(self
            .algorithm
            .check(self.state(key), now_ns, cost)
            .map(|step| {
                self.store(key, step.next);
                step.decision
            }))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Infallible> {
        Ok(self
            .algorithm
            .reserve(self.state(key), now_ns, cost, max_wait_ns)
            .map(|step| {
                self.store(key, step.next);
                step.decision
            }))
    }
}

/// The in-memory [`KeyedLimiter`] driven with explicit time: a
/// [`ManualClock`] set to each event's time before the call. This is what
/// `ratelimit replay` runs, and what the memory backend's conformance tests
/// run.
#[derive(Debug)]
pub struct Memory<A> {
    clock: Arc<ManualClock>,
    limiter: KeyedLimiter<String, A, Arc<ManualClock>>,
}

impl<A: Algorithm> Memory<A> {
    /// A limiter holding at most `max_keys` keys at once.
    pub fn new(algorithm: A, max_keys: usize) -> Self {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = KeyedLimiter::builder(algorithm)
            .clock(Arc::clone(&clock))
            .max_keys(max_keys)
            .build();
        Self::from_parts(clock, limiter)
    }

    /// A limiter built elsewhere (other shards, bound or hasher), on the
    /// `clock` it reads.
    pub fn from_parts(
        clock: Arc<ManualClock>,
        limiter: KeyedLimiter<String, A, Arc<ManualClock>>,
    ) -> Self {
        Self { clock, limiter }
    }
}

impl<A: Algorithm> Backend for Memory<A> {
    type Error = Infallible;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Infallible> {
        self.clock.set_ns(now_ns);
        Ok(self.limiter.check_n(key, cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Infallible> {
        self.clock.set_ns(now_ns);
        Ok(self
            .limiter
            .reserve(key, cost, max_wait_ns.map(Duration::from_nanos)))
    }
}
