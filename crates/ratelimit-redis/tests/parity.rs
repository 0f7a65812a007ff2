//! The conformance scenarios of the core, unchanged, against real Redis
//! with client time: every field of every answer must match, in both files
//! (microsecond and arbitrary-nanosecond times: the scripts are exact to
//! the nanosecond), through the sync limiter and through the async one.

#![allow(clippy::std_instead_of_core)]

mod support;

use ratelimit_redis::RedisPool;
use support::{AsyncFactory, Factory, RedisServer, run_file_on};

fn every_scenario_on<F: Factory>(factory: &F) {
    let mut count = 0;
    let mut failures = Vec::new();
    for file in ["scenarios-us.jsonl.gz", "scenarios-ns.jsonl.gz"] {
        let (n, f) = run_file_on(factory, file);
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

#[test]
fn every_scenario_matches_exactly() {
    let server = RedisServer::start();
    every_scenario_on(&RedisPool::open(&server.url()).unwrap());
}

#[test]
fn every_scenario_matches_exactly_async() {
    let server = RedisServer::start();
    every_scenario_on(&AsyncFactory::open(&server.url()));
}
