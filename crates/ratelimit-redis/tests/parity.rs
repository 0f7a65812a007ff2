//! The conformance scenarios of the core, unchanged, against real Redis
//! with client time: every field of every answer must match, in both files
//! (microsecond and arbitrary-nanosecond times: the scripts are exact to
//! the nanosecond).

mod support;

use std::time::Duration;

use ratelimit_core::{AlgorithmKind, LeakyBucket, TokenBucket};
use ratelimit_redis::{RedisLimiter, RedisPool, TimeSource};
use ratelimit_replay::{Scenario, load_scenarios, run_scenario};
use support::{RedisServer, ReplayAdapter};

fn run_file(pool: &RedisPool, file: &str) -> (usize, Vec<String>) {
    let scenarios: Vec<Scenario> = load_scenarios(file).expect("conformance files are present");
    let mut failures = Vec::new();
    // Replays keep state however long virtual time stands still.
    let time = TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    };
    for s in &scenarios {
        let quota = s.quota().expect("scenario quota is valid");
        let prefix = format!("parity:{file}:{}", s.id);
        let result = match s.kind() {
            AlgorithmKind::TokenBucket => run_scenario(
                s,
                &mut ReplayAdapter(
                    RedisLimiter::builder(TokenBucket::new(quota))
                        .prefix(prefix)
                        .time_source(time)
                        .build(pool.clone())
                        .unwrap(),
                ),
            ),
            AlgorithmKind::LeakyBucket => run_scenario(
                s,
                &mut ReplayAdapter(
                    RedisLimiter::builder(LeakyBucket::new(quota))
                        .prefix(prefix)
                        .time_source(time)
                        .build(pool.clone())
                        .unwrap(),
                ),
            ),
        };
        if let Err(m) = result {
            failures.push(format!("{file}: {m}"));
        }
    }
    (scenarios.len(), failures)
}

#[test]
fn every_scenario_matches_exactly() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut count = 0;
    let mut failures = Vec::new();
    for file in ["scenarios-us.jsonl.gz", "scenarios-ns.jsonl.gz"] {
        let (n, f) = run_file(&pool, file);
        count += n;
        failures.extend(f);
    }
    assert_eq!(count, 180);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
