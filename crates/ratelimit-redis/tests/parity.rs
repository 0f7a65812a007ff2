//! The conformance scenarios of the core, unchanged, against real Redis
//! with client time: every field of every answer must match, in both files
//! (microsecond and arbitrary-nanosecond times: the scripts are exact to
//! the nanosecond).

#![allow(clippy::std_instead_of_core)]

mod support;

use ratelimit_redis::RedisPool;
use support::{RedisServer, run_file};

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
