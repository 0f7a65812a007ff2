//! [`Backend`]: what a limiter must offer to be replayed, and [`Model`],
//! the reference implementation straight over the core.

use core::fmt;
use core::hash::BuildHasher;
use std::collections::HashMap;

use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{
    Algorithm, AlgorithmKind, AnyAlgorithm, AnyBucket, Clock, Decision, FixedWindow,
    InsufficientCapacity, LeakyBucket, ManualClock, Reservation, Shaping, SlidingWindow, Step,
    TokenBucket,
};
use ratelimit_memory::{Bucket, KeyedLimiter, Word};

/// A limiter driven with explicit time, one event at a time.
///
/// The outer `Result` is the backend's own failure (Redis down, a `reserve`
/// under an algorithm that cannot shape, ...); the inner one is the
/// contract's answer, where a cost above the capacity is
/// [`InsufficientCapacity`].
pub trait Backend {
    /// A failure of the backend itself.
    type Error: fmt::Display;

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

/// A `reserve` event under an algorithm that cannot shape (a window
/// algorithm polices only): the error of the in-process backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotShaping(pub AlgorithmKind);

impl fmt::Display for NotShaping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reserve is not available under {}: a window algorithm only polices (check); \
             shaping needs token-bucket or leaky-bucket",
            self.0
        )
    }
}

impl core::error::Error for NotShaping {}

/// An algorithm the replay can run: any [`Algorithm`] whose state the
/// memory backend stores, with `reserve` where the algorithm shapes. The
/// buckets shape; the windows answer `reserve` with [`NotShaping`].
pub trait Replayable: Algorithm<State: Word> {
    /// `reserve` over a bare state, or `None` when the algorithm cannot
    /// shape.
    fn reserve_step(
        &self,
        state: Self::State,
        now: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Option<Result<Step<Reservation, Self::State>, InsufficientCapacity>>;

    /// `reserve` on a keyed limiter, or `None` when the algorithm cannot
    /// shape.
    fn reserve_keyed<C: Clock, S: BuildHasher>(
        limiter: &KeyedLimiter<String, Self, C, S>,
        key: &str,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Option<Result<Reservation, InsufficientCapacity>>;

    /// `reserve` on a single [`Bucket`], or `None` when the algorithm
    /// cannot shape.
    fn reserve_bucket<C: Clock>(
        bucket: &Bucket<Self, C>,
        cost: u64,
        max_wait: Option<Duration>,
    ) -> Option<Result<Reservation, InsufficientCapacity>>;
}

macro_rules! shaping {
    ($($name:ty),*) => {$(
        impl Replayable for $name {
            fn reserve_step(
                &self,
                state: u64,
                now: u64,
                cost: u64,
                max_wait_ns: Option<u64>,
            ) -> Option<Result<Step<Reservation>, InsufficientCapacity>> {
                Some(self.reserve(state, now, cost, max_wait_ns))
            }

            fn reserve_keyed<C: Clock, S: BuildHasher>(
                limiter: &KeyedLimiter<String, Self, C, S>,
                key: &str,
                cost: u64,
                max_wait: Option<Duration>,
            ) -> Option<Result<Reservation, InsufficientCapacity>> {
                Some(limiter.reserve(key, cost, max_wait))
            }

            fn reserve_bucket<C: Clock>(
                bucket: &Bucket<Self, C>,
                cost: u64,
                max_wait: Option<Duration>,
            ) -> Option<Result<Reservation, InsufficientCapacity>> {
                Some(bucket.reserve(cost, max_wait))
            }
        }
    )*};
}

macro_rules! policing {
    ($($name:ty),*) => {$(
        impl Replayable for $name {
            fn reserve_step(
                &self,
                _: u128,
                _: u64,
                _: u64,
                _: Option<u64>,
            ) -> Option<Result<Step<Reservation, u128>, InsufficientCapacity>> {
                None
            }

            fn reserve_keyed<C: Clock, S: BuildHasher>(
                _: &KeyedLimiter<String, Self, C, S>,
                _: &str,
                _: u64,
                _: Option<Duration>,
            ) -> Option<Result<Reservation, InsufficientCapacity>> {
                None
            }

            fn reserve_bucket<C: Clock>(
                _: &Bucket<Self, C>,
                _: u64,
                _: Option<Duration>,
            ) -> Option<Result<Reservation, InsufficientCapacity>> {
                None
            }
        }
    )*};
}

shaping!(TokenBucket, LeakyBucket, AnyBucket);
policing!(FixedWindow, SlidingWindow);

/// Generic code to run over an algorithm chosen at run time: [`visit`]
/// hands it the concrete algorithm an [`AnyAlgorithm`] holds.
pub trait Visit {
    /// What the visit returns.
    type Output;

    /// Runs with the concrete algorithm.
    fn visit<A: Replayable>(self, algorithm: A) -> Self::Output;
}

/// Runs `visitor` with the concrete algorithm `any` holds: the one place
/// that matches on the four kinds for the replay, the CLI and the tests.
pub fn visit<V: Visit>(any: AnyAlgorithm, visitor: V) -> V::Output {
    match any {
        AnyAlgorithm::TokenBucket(a) => visitor.visit(a),
        AnyAlgorithm::LeakyBucket(a) => visitor.visit(a),
        AnyAlgorithm::FixedWindow(a) => visitor.visit(a),
        AnyAlgorithm::SlidingWindow(a) => visitor.visit(a),
    }
}

/// The reference backend: the core's pure functions over a `HashMap` of
/// states, single-threaded and obviously right. Other backends are checked
/// against it.
#[derive(Debug, Clone)]
pub struct Model<A: Algorithm> {
    algorithm: A,
    states: HashMap<String, A::State>,
}

impl<A: Algorithm> Model<A> {
    /// An empty model running `algorithm`.
    pub fn new(algorithm: A) -> Self {
        Self {
            algorithm,
            states: HashMap::new(),
        }
    }

    /// The stored state of `key` (the default state when never seen).
    pub fn state(&self, key: &str) -> A::State {
        self.states.get(key).copied().unwrap_or_default()
    }

    fn store(&mut self, key: &str, next: Option<A::State>) {
        if let Some(state) = next {
            self.states.insert(key.to_owned(), state);
        }
    }
}

impl<A: Replayable> Backend for Model<A> {
    type Error = NotShaping;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, NotShaping> {
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
    ) -> Result<Result<Reservation, InsufficientCapacity>, NotShaping> {
        let step = self
            .algorithm
            .reserve_step(self.state(key), now_ns, cost, max_wait_ns)
            .ok_or(NotShaping(self.algorithm.kind()))?;
        Ok(step.map(|step| {
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
pub struct Memory<A: Algorithm<State: Word>> {
    clock: Arc<ManualClock>,
    limiter: KeyedLimiter<String, A, Arc<ManualClock>>,
}

impl<A: Algorithm<State: Word>> Memory<A> {
    /// A limiter holding at most `max_keys` keys at once, of any length
    /// (a replay decides every key of its input, however long; the
    /// limiter's default bound on key bytes is for untrusted traffic).
    pub fn new(algorithm: A, max_keys: usize) -> Self {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = KeyedLimiter::builder(algorithm)
            .clock(Arc::clone(&clock))
            .max_keys(max_keys)
            .max_key_len(usize::MAX)
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

impl<A: Replayable> Backend for Memory<A> {
    type Error = NotShaping;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, NotShaping> {
        self.clock.set_ns(now_ns);
        Ok(self.limiter.check_n(key, cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, NotShaping> {
        self.clock.set_ns(now_ns);
        A::reserve_keyed(
            &self.limiter,
            key,
            cost,
            max_wait_ns.map(Duration::from_nanos),
        )
        .ok_or(NotShaping(self.limiter.algorithm().kind()))
    }
}
