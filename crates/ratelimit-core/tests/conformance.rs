//! The reference model passes every conformance scenario, buckets and
//! windows: the core is the contract.

use ratelimit_replay::{
    Mismatch, Model, Replayable, Scenario, Visit, assert_every_scenario,
    assert_every_window_scenario, run_scenario, visit,
};

/// Runs one scenario through the model of the scenario's algorithm.
struct OnModel<'a>(&'a Scenario);

impl Visit for OnModel<'_> {
    type Output = Result<(), Box<Mismatch>>;

    fn visit<A: Replayable>(self, algorithm: A) -> Self::Output {
        run_scenario(self.0, &mut Model::new(algorithm))
    }
}

fn on_model(_: &str, s: &Scenario) -> Result<(), Box<Mismatch>> {
    let algorithm = s.any_algorithm().expect("scenario parameters are valid");
    visit(algorithm, OnModel(s))
}

#[test]
fn model_passes_every_bucket_scenario() {
    assert_every_scenario(on_model);
}

#[test]
fn model_passes_every_window_scenario() {
    assert_every_window_scenario(on_model);
}
