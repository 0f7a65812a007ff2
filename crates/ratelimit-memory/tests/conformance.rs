//! The in-memory limiters give the answers of every conformance scenario,
//! the same answers as the reference model: through the keyed limiter
//! (time from a shared `ManualClock` set before each call), and through
//! one `Bucket` per key.

use core::convert::Infallible;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use ratelimit_core::AlgorithmKind;
use ratelimit_memory::{
    Algorithm, Bucket, Decision, InsufficientCapacity, KeyedLimiter, LeakyBucket, ManualClock,
    Reservation, TokenBucket,
};
use ratelimit_replay::{Backend, Memory, assert_every_scenario, run_scenario};

/// One `Bucket` per key.
struct Buckets<A> {
    algorithm: A,
    clock: Arc<ManualClock>,
    buckets: HashMap<String, Bucket<A, Arc<ManualClock>>>,
}

impl<A: Algorithm> Buckets<A> {
    fn new(algorithm: A) -> Self {
        Self {
            algorithm,
            clock: Arc::new(ManualClock::new(0)),
            buckets: HashMap::new(),
        }
    }

    fn bucket(&mut self, key: &str, now_ns: u64) -> &Bucket<A, Arc<ManualClock>> {
        self.clock.set_ns(now_ns);
        let (algorithm, clock) = (self.algorithm, &self.clock);
        self.buckets
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::with_clock(algorithm, Arc::clone(clock)))
    }
}

impl<A: Algorithm> Backend for Buckets<A> {
    type Error = Infallible;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, Infallible> {
        Ok(self.bucket(key, now_ns).check_n(cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, Infallible> {
        Ok(self
            .bucket(key, now_ns)
            .reserve(cost, max_wait_ns.map(Duration::from_nanos)))
    }
}

/// Runs every scenario through the backend `make_*` builds for it.
fn run_all<B1: Backend, B2: Backend>(
    mut make_token: impl FnMut(TokenBucket) -> B1,
    mut make_leaky: impl FnMut(LeakyBucket) -> B2,
) {
    assert_every_scenario(|_, s| {
        let quota = s.quota().expect("scenario quota is valid");
        match s.kind() {
            AlgorithmKind::TokenBucket => run_scenario(s, &mut make_token(TokenBucket::new(quota))),
            AlgorithmKind::LeakyBucket => run_scenario(s, &mut make_leaky(LeakyBucket::new(quota))),
        }
    });
}

#[test]
fn keyed_limiter_passes_every_scenario() {
    run_all(
        |a| Memory::new(a, ratelimit_memory::DEFAULT_MAX_KEYS),
        |a| Memory::new(a, ratelimit_memory::DEFAULT_MAX_KEYS),
    );
}

/// One shard bounded at 5 keys, the most any scenario uses: it sweeps when
/// its table would grow past 3 and whenever it holds 5, so keys are
/// reclaimed throughout; reclamation must change no answer.
#[test]
fn keyed_limiter_with_constant_reclamation_passes_every_scenario() {
    fn tiny<A: Algorithm>(a: A) -> Memory<A> {
        let clock = Arc::new(ManualClock::new(0));
        let limiter = KeyedLimiter::builder(a)
            .clock(Arc::clone(&clock))
            .max_keys(5)
            .shards(1)
            .build();
        Memory::from_parts(clock, limiter)
    }
    run_all(tiny, tiny);
}

#[test]
fn one_bucket_per_key_passes_every_scenario() {
    run_all(Buckets::new, Buckets::new);
}
