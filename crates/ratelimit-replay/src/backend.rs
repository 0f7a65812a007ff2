//! [`Backend`]: what a limiter must offer to be replayed, and [`Model`],
//! the reference implementation straight over the core (with
//! reconfiguration and keys' own quotas converted eagerly, as the contract
//! words them), and [`Memory`], the keyed in-memory limiter.

use core::fmt;
use core::hash::BuildHasher;
use std::collections::HashMap;

use core::time::Duration;
use std::sync::Arc;

use ratelimit_core::{
    Algorithm, AlgorithmKind, AnyAlgorithm, AnyBucket, Clock, Decision, FixedWindow,
    InsufficientCapacity, LeakyBucket, ManualClock, Quota, Reservation, Shaping, SlidingWindow,
    Step, Strategy, TokenBucket,
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

    /// The algorithm the backend runs, when it can tell: the replay then
    /// refuses, naming the line, the events that algorithm cannot run (a
    /// `reserve` under a window algorithm, a quota with a rate under a
    /// window algorithm) before the backend sees them. `None` by default.
    fn algorithm(&self) -> Option<AlgorithmKind> {
        None
    }

    /// `check(key, cost)` at `now_ns` under the key's own `quota` (the
    /// latest a request event gave it): a key whose quota changes is
    /// converted with keep-consumed at `now_ns` (docs/semantics.md,
    /// "Changing a quota while it runs"). `Ok(None)` when the backend does
    /// not run keys' own quotas (the default).
    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, Self::Error> {
        let _ = (key, now_ns, cost, quota);
        Ok(None)
    }

    /// `reserve(key, cost, max_wait)` at `now_ns` under the key's own
    /// `quota`, as [`check_with_quota`](Self::check_with_quota). `Ok(None)`
    /// when the backend does not run keys' own quotas (the default).
    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, Self::Error> {
        let _ = (key, now_ns, cost, max_wait_ns, quota);
        Ok(None)
    }

    /// Replaces the limiter's quota at `now_ns` with `quota`, for every key
    /// without one of its own, converting each key's state with
    /// `strategy`. `Ok(false)` when the backend does not run
    /// reconfiguration (the default), `Ok(true)` once done.
    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, Self::Error> {
        let _ = (now_ns, quota, strategy);
        Ok(false)
    }
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

/// A quota (capacity and rate) given to an algorithm that takes a limit per
/// window: the error of the in-process backends for a `reconfigure` event
/// or a key's own quota under a window algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsBucket(pub AlgorithmKind);

impl fmt::Display for NeedsBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a quota of capacity and rate needs token-bucket or leaky-bucket; {} takes a limit per window",
            self.0
        )
    }
}

impl core::error::Error for NeedsBucket {}

/// Why an in-process backend ([`Model`], [`Memory`]) cannot run an event
/// under its algorithm. The replay refuses such events itself, naming the
/// line, before they reach the backend; a caller driving a backend
/// directly gets this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsupported {
    /// A `reserve` under a window algorithm.
    NotShaping(NotShaping),
    /// A quota with a rate under a window algorithm.
    NeedsBucket(NeedsBucket),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotShaping(e) => e.fmt(f),
            Self::NeedsBucket(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Unsupported {}

impl From<NotShaping> for Unsupported {
    fn from(e: NotShaping) -> Self {
        Self::NotShaping(e)
    }
}

impl From<NeedsBucket> for Unsupported {
    fn from(e: NeedsBucket) -> Self {
        Self::NeedsBucket(e)
    }
}

/// An algorithm the replay can run: any [`Algorithm`] whose state the
/// memory backend stores, with `reserve` where the algorithm shapes and a
/// quota of capacity and rate where it takes one. The buckets do both; the
/// windows answer `reserve` with [`NotShaping`] and a quota with
/// [`NeedsBucket`].
pub trait Replayable: Algorithm<State: Word> + PartialEq {
    /// The same algorithm under `quota` (a `reconfigure` event, a key's own
    /// quota), or `None` when the algorithm takes a limit per window
    /// instead.
    fn with_quota(&self, quota: Quota) -> Option<Self>;

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

    /// `reserve` on a keyed limiter under the key's own `quota`
    /// ([`KeyedLimiter::reserve_with_quota`]), or `None` when the algorithm
    /// cannot shape.
    fn reserve_keyed_with_quota<C: Clock, S: BuildHasher>(
        limiter: &KeyedLimiter<String, Self, C, S>,
        key: &str,
        cost: u64,
        max_wait: Option<Duration>,
        quota: &Self,
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
    ($($name:ty: |$this:ident, $quota:ident| $with:expr),*) => {$(
        impl Replayable for $name {
            fn with_quota(&self, $quota: Quota) -> Option<Self> {
                let $this = self;
                Some($with)
            }

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

            fn reserve_keyed_with_quota<C: Clock, S: BuildHasher>(
                limiter: &KeyedLimiter<String, Self, C, S>,
                key: &str,
                cost: u64,
                max_wait: Option<Duration>,
                quota: &Self,
            ) -> Option<Result<Reservation, InsufficientCapacity>> {
                Some(limiter.reserve_with_quota(key, cost, max_wait, quota))
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
            fn with_quota(&self, _: Quota) -> Option<Self> {
                None
            }

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

            fn reserve_keyed_with_quota<C: Clock, S: BuildHasher>(
                _: &KeyedLimiter<String, Self, C, S>,
                _: &str,
                _: u64,
                _: Option<Duration>,
                _: &Self,
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

shaping!(
    TokenBucket: |_this, quota| TokenBucket::new(quota),
    LeakyBucket: |_this, quota| LeakyBucket::new(quota),
    AnyBucket: |this, quota| match this {
        AnyBucket::TokenBucket(_) => AnyBucket::TokenBucket(TokenBucket::new(quota)),
        AnyBucket::LeakyBucket(_) => AnyBucket::LeakyBucket(LeakyBucket::new(quota)),
    }
);
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
///
/// Quota changes are made the way the contract words them, eagerly: a
/// [`reconfigure`](Backend::reconfigure) converts every key on the
/// limiter's quota at once, and a key given a quota of its own is
/// converted with keep-consumed when that quota differs from the one it
/// followed. A key keeps its own quota from then on (a plain
/// [`check`](Backend::check) uses it too); a reconfiguration leaves it
/// alone.
#[derive(Debug, Clone)]
pub struct Model<A: Algorithm> {
    algorithm: A,
    states: HashMap<String, Entry<A>>,
}

/// A key's state in the [`Model`] and its own quota, if it has one.
#[derive(Debug, Clone, Copy)]
struct Entry<A: Algorithm> {
    state: A::State,
    own: Option<A>,
}

impl<A: Algorithm> Default for Entry<A> {
    fn default() -> Self {
        Self {
            state: A::State::default(),
            own: None,
        }
    }
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
        self.states
            .get(key)
            .map_or_else(A::State::default, |e| e.state)
    }

    /// The algorithm (with its quota) that `key` follows: its own, or the
    /// limiter's.
    pub fn algorithm_of(&self, key: &str) -> A {
        self.states
            .get(key)
            .and_then(|e| e.own)
            .unwrap_or(self.algorithm)
    }

    fn store(&mut self, key: &str, next: Option<A::State>) {
        if let Some(state) = next {
            self.states.entry(key.to_owned()).or_default().state = state;
        }
    }
}

impl<A: Replayable> Model<A> {
    /// Gives `key` the quota `quota` from `now` on, converting its state
    /// with keep-consumed when it followed another: the algorithm to
    /// decide with.
    fn own_quota(&mut self, key: &str, now: u64, quota: &Quota) -> Result<A, Unsupported> {
        let new = self
            .algorithm
            .with_quota(*quota)
            .ok_or(NeedsBucket(self.algorithm.kind()))?;
        let limiter = self.algorithm;
        let entry = self.states.entry(key.to_owned()).or_default();
        let current = entry.own.unwrap_or(limiter);
        if current != new {
            entry.state = current.convert(entry.state, now, &new, Strategy::KeepConsumed);
        }
        entry.own = Some(new);
        Ok(new)
    }

    fn check_under(
        &mut self,
        algorithm: A,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Decision, InsufficientCapacity> {
        algorithm.check(self.state(key), now_ns, cost).map(|step| {
            self.store(key, step.next);
            step.decision
        })
    }

    fn reserve_under(
        &mut self,
        algorithm: A,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Unsupported> {
        let step = algorithm
            .reserve_step(self.state(key), now_ns, cost, max_wait_ns)
            .ok_or(NotShaping(algorithm.kind()))?;
        Ok(step.map(|step| {
            self.store(key, step.next);
            step.decision
        }))
    }
}

impl<A: Replayable> Backend for Model<A> {
    type Error = Unsupported;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Unsupported> {
        let algorithm = self.algorithm_of(key);
        Ok(self.check_under(algorithm, key, now_ns, cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Unsupported> {
        let algorithm = self.algorithm_of(key);
        self.reserve_under(algorithm, key, now_ns, cost, max_wait_ns)
    }

    fn algorithm(&self) -> Option<AlgorithmKind> {
        Some(self.algorithm.kind())
    }

    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, Unsupported> {
        let algorithm = self.own_quota(key, now_ns, quota)?;
        Ok(Some(self.check_under(algorithm, key, now_ns, cost)))
    }

    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, Unsupported> {
        let algorithm = self.own_quota(key, now_ns, quota)?;
        self.reserve_under(algorithm, key, now_ns, cost, max_wait_ns)
            .map(Some)
    }

    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, Unsupported> {
        let old = self.algorithm;
        let new = old.with_quota(*quota).ok_or(NeedsBucket(old.kind()))?;
        for entry in self.states.values_mut().filter(|e| e.own.is_none()) {
            entry.state = old.convert(entry.state, now_ns, &new, strategy);
        }
        self.algorithm = new;
        Ok(true)
    }
}

/// The in-memory [`KeyedLimiter`] driven with explicit time: a
/// [`ManualClock`] set to each event's time before the call. This is what
/// `ratelimit replay` runs, and what the memory backend's conformance tests
/// run. Reconfiguration is the limiter's own (lazy) one; a key's own quota
/// is passed with each of its requests
/// ([`KeyedLimiter::check_with_quota`]).
#[derive(Debug)]
pub struct Memory<A: Algorithm<State: Word>> {
    clock: Arc<ManualClock>,
    limiter: KeyedLimiter<String, A, Arc<ManualClock>>,
    /// The limiter's algorithm's kind, which a change of quota keeps (read
    /// once: the limiter's current algorithm is behind a lock).
    kind: AlgorithmKind,
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
        let kind = limiter.algorithm().kind();
        Self {
            clock,
            limiter,
            kind,
        }
    }
}

impl<A: Replayable> Memory<A> {
    /// The limiter's algorithm under `quota`.
    fn under(&self, quota: &Quota) -> Result<A, NeedsBucket> {
        let algorithm = self.limiter.algorithm();
        algorithm
            .with_quota(*quota)
            .ok_or(NeedsBucket(algorithm.kind()))
    }
}

impl<A: Replayable> Backend for Memory<A> {
    type Error = Unsupported;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Unsupported> {
        self.clock.set_ns(now_ns);
        Ok(self.limiter.check_n(key, cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Unsupported> {
        self.clock.set_ns(now_ns);
        A::reserve_keyed(
            &self.limiter,
            key,
            cost,
            max_wait_ns.map(Duration::from_nanos),
        )
        .ok_or_else(|| NotShaping(self.kind).into())
    }

    fn algorithm(&self) -> Option<AlgorithmKind> {
        Some(self.kind)
    }

    fn check_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        quota: &Quota,
    ) -> Result<Option<Result<Decision, InsufficientCapacity>>, Unsupported> {
        let own = self.under(quota)?;
        self.clock.set_ns(now_ns);
        Ok(Some(self.limiter.check_with_quota(key, cost, &own)))
    }

    fn reserve_with_quota(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
        quota: &Quota,
    ) -> Result<Option<Result<Reservation, InsufficientCapacity>>, Unsupported> {
        let own = self.under(quota)?;
        self.clock.set_ns(now_ns);
        A::reserve_keyed_with_quota(
            &self.limiter,
            key,
            cost,
            max_wait_ns.map(Duration::from_nanos),
            &own,
        )
        .map(Some)
        .ok_or_else(|| NotShaping(own.kind()).into())
    }

    fn reconfigure(
        &mut self,
        now_ns: u64,
        quota: &Quota,
        strategy: Strategy,
    ) -> Result<bool, Unsupported> {
        let new = self.under(quota)?;
        self.clock.set_ns(now_ns);
        self.limiter.reconfigure(new, strategy);
        Ok(true)
    }
}
