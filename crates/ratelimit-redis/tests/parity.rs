//! The conformance scenarios of the core, unchanged, against real Redis
//! with client time: every field of every answer must match, in both files
//! (microsecond and arbitrary-nanosecond times: the scripts are exact to
//! the nanosecond), through the sync limiter and through the async one;
//! the bucket files and the window files.

#![allow(clippy::std_instead_of_core)]

mod support;

use ratelimit_redis::RedisPool;
use ratelimit_replay::{assert_every_scenario, assert_every_window_scenario};
use ratelimit_testkit::RedisServer;
use support::{AsyncFactory, Factory, run_one_on};

fn every_scenario_on<F: Factory>(factory: &F) {
    assert_every_scenario(|file, s| run_one_on(factory, file, s));
    assert_every_window_scenario(|file, s| run_one_on(factory, file, s));
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
