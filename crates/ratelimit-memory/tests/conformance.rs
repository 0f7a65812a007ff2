//! The in-memory limiters give the answers of every conformance scenario,
//! buckets and windows, the same answers as the reference model: through
//! the keyed limiter (time from a shared `ManualClock` set before each
//! call), also bounded so tightly that it reclaims keys all the time, and
//! through one `Bucket` per key.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use ratelimit_memory::{
    Bucket, Decision, InsufficientCapacity, KeyedLimiter, ManualClock, Reservation,
};
use ratelimit_replay::{
    Backend, Memory, Mismatch, NotShaping, Replayable, Scenario, Visit, assert_every_scenario,
    assert_every_window_scenario, run_scenario, visit,
};

/// One `Bucket` per key.
struct Buckets<A: Replayable> {
    algorithm: A,
    clock: Arc<ManualClock>,
    buckets: HashMap<String, Bucket<A, Arc<ManualClock>>>,
}

impl<A: Replayable> Buckets<A> {
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

impl<A: Replayable> Backend for Buckets<A> {
    type Error = NotShaping;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, NotShaping> {
        Ok(self.bucket(key, now_ns).check_n(cost))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, NotShaping> {
        let kind = self.algorithm.kind();
        let bucket = self.bucket(key, now_ns);
        A::reserve_bucket(bucket, cost, max_wait_ns.map(Duration::from_nanos))
            .ok_or(NotShaping(kind))
    }
}

/// Which in-memory backend a scenario runs on.
#[derive(Clone, Copy)]
enum Shape {
    /// The keyed limiter with the default bound.
    Keyed,
    /// One shard bounded at 5 keys, the most any scenario uses: it sweeps
    /// when its table would grow past 3 and whenever it holds 5, so keys
    /// are reclaimed throughout; reclamation must change no answer.
    Tiny,
    /// One `Bucket` per key.
    PerKey,
}

struct Run<'a>(Shape, &'a Scenario);

impl Visit for Run<'_> {
    type Output = Result<(), Box<Mismatch>>;

    fn visit<A: Replayable>(self, a: A) -> Self::Output {
        let Run(shape, s) = self;
        match shape {
            Shape::Keyed => {
                run_scenario(s, &mut Memory::new(a, ratelimit_memory::DEFAULT_MAX_KEYS))
            }
            Shape::Tiny => {
                let clock = Arc::new(ManualClock::new(0));
                let limiter = KeyedLimiter::builder(a)
                    .clock(Arc::clone(&clock))
                    .max_keys(5)
                    .shards(1)
                    .build();
                run_scenario(s, &mut Memory::from_parts(clock, limiter))
            }
            Shape::PerKey => run_scenario(s, &mut Buckets::new(a)),
        }
    }
}

/// Every bucket and window scenario on `shape`.
fn run_all(shape: Shape) {
    let run = |_: &str, s: &Scenario| {
        let algorithm = s.any_algorithm().expect("scenario parameters are valid");
        visit(algorithm, Run(shape, s))
    };
    assert_every_scenario(run);
    assert_every_window_scenario(run);
}

#[test]
fn keyed_limiter_passes_every_scenario() {
    run_all(Shape::Keyed);
}

#[test]
fn keyed_limiter_with_constant_reclamation_passes_every_scenario() {
    run_all(Shape::Tiny);
}

#[test]
fn one_bucket_per_key_passes_every_scenario() {
    run_all(Shape::PerKey);
}
