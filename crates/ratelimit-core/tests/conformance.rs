//! The reference model passes every conformance scenario: the core is the
//! contract.

use ratelimit_core::{AlgorithmKind, LeakyBucket, TokenBucket};
use ratelimit_replay::{Model, assert_every_scenario, run_scenario};

#[test]
fn model_passes_every_scenario() {
    assert_every_scenario(|_, s| {
        let quota = s.quota().expect("scenario quota is valid");
        match s.kind() {
            AlgorithmKind::TokenBucket => run_scenario(s, &mut Model::new(TokenBucket::new(quota))),
            AlgorithmKind::LeakyBucket => run_scenario(s, &mut Model::new(LeakyBucket::new(quota))),
        }
    });
}
