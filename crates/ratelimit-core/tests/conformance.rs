//! The reference model passes every conformance scenario: the core is the
//! contract.

use ratelimit_core::{AlgorithmKind, LeakyBucket, TokenBucket};
use ratelimit_replay::{Model, load_scenarios, run_scenario};

#[test]
fn model_passes_every_scenario() {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in ["scenarios-ns.jsonl.gz", "scenarios-us.jsonl.gz"] {
        for s in load_scenarios(file).expect("conformance files are present") {
            let quota = s.quota().expect("scenario quota is valid");
            let result = match s.kind() {
                AlgorithmKind::TokenBucket => {
                    run_scenario(&s, &mut Model::new(TokenBucket::new(quota)))
                }
                AlgorithmKind::LeakyBucket => {
                    run_scenario(&s, &mut Model::new(LeakyBucket::new(quota)))
                }
            };
            if let Err(m) = result {
                failures.push(format!("{file}: {m}"));
            }
            count += 1;
        }
    }
    assert_eq!(count, 180);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
