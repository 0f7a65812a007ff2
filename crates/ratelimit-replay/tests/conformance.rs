//! Both in-process backends of the replay, the reference [`Model`] and the
//! keyed in-memory limiter ([`Memory`]), pass every conformance scenario
//! field for field through the replay's own event loop: buckets, windows
//! and quota changes (`reconfigure` events, keys' own quotas). The model
//! converts eagerly, as the contract words it; the memory limiter lazily,
//! and also while reclaiming keys all the time (one shard of 5 keys).

use std::sync::Arc;

use ratelimit_core::ManualClock;
use ratelimit_memory::KeyedLimiter;
use ratelimit_replay::{
    ALL_FILES, Memory, Mismatch, Model, Replayable, Scenario, Visit, assert_every_policy_scenario,
    assert_every_scenario, assert_every_window_scenario, assert_scenarios, run_scenario, visit,
};

/// Which backend a scenario runs on.
#[derive(Clone, Copy)]
enum On {
    Model,
    Memory,
    /// One shard bounded at 5 keys, the most a scenario uses: it sweeps
    /// (and so converts every lagging key) all the time.
    TinyMemory,
}

struct Run<'a>(On, &'a Scenario);

impl Visit for Run<'_> {
    type Output = Result<(), Box<Mismatch>>;

    fn visit<A: Replayable>(self, a: A) -> Self::Output {
        let Run(on, s) = self;
        match on {
            On::Model => run_scenario(s, &mut Model::new(a)),
            On::Memory => run_scenario(s, &mut Memory::new(a, usize::MAX)),
            On::TinyMemory => {
                let clock = Arc::new(ManualClock::new(0));
                let limiter = KeyedLimiter::builder(a)
                    .clock(Arc::clone(&clock))
                    .max_keys(5)
                    .shards(1)
                    .build();
                run_scenario(s, &mut Memory::from_parts(clock, limiter))
            }
        }
    }
}

fn on(backend: On) -> impl FnMut(&str, &Scenario) -> Result<(), Box<Mismatch>> {
    move |_, s| {
        visit(
            s.any_algorithm().expect("valid parameters"),
            Run(backend, s),
        )
    }
}

#[test]
fn model_passes_every_policy_scenario() {
    assert_every_policy_scenario(on(On::Model));
}

#[test]
fn memory_passes_every_policy_scenario() {
    assert_every_policy_scenario(on(On::Memory));
}

#[test]
fn reclaiming_memory_passes_every_policy_scenario() {
    assert_every_policy_scenario(on(On::TinyMemory));
}

#[test]
fn model_and_memory_pass_every_bucket_and_window_scenario() {
    for backend in [On::Model, On::Memory] {
        assert_every_scenario(on(backend));
        assert_every_window_scenario(on(backend));
    }
}

#[test]
fn every_file_is_covered() {
    // 180 bucket, 180 window, 120 policy scenarios: all of them, once.
    assert_scenarios(&ALL_FILES, 480, |_, _| Ok(()));
}
