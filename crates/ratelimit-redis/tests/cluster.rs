//! Redis Cluster: a three-master cluster started by the test, keys spread
//! over every node, the conformance scenarios (buckets and windows), the batch call across
//! slots, hash tags, and a killed node failing only its own slots.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::collections::BTreeSet;

use ratelimit_core::{Quota, Rate};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TokenBucket};
use ratelimit_replay::{assert_every_scenario, assert_every_window_scenario};
use ratelimit_testkit::RedisCluster;
use support::run_one_on;

#[test]
fn cluster_end_to_end() {
    let mut cluster = RedisCluster::start();
    let pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    assert!(pool.is_cluster());

    // Parity: both scenario files, every field.
    assert_every_scenario(|file, s| run_one_on(&pool, file, s));
    assert_every_window_scenario(|file, s| run_one_on(&pool, file, s));

    let limiter =
        RedisLimiter::builder(TokenBucket::new(Quota::new(2, Rate::per_hour(1)).unwrap()))
            .prefix("c")
            .build(pool.clone())
            .unwrap();
    // Keys spread over all three nodes.
    let keys: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let mut nodes = BTreeSet::new();
    for k in &keys {
        assert!(limiter.check(k).unwrap().allowed);
        nodes.insert(cluster.node_of(&format!("c|{k}")));
    }
    assert_eq!(nodes.len(), 3, "keys on every node");

    // The batch call across slots answers in order; the second check of
    // each key leaves 0.
    let batch: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let answers = limiter.check_batch(&batch).unwrap();
    assert!(answers.iter().all(|a| a.as_ref().unwrap().remaining == 0));
    // Hash tags: related keys on one node, one slot, one script call.
    let tagged = [
        ("{tenant9}:login", 1),
        ("{tenant9}:upload", 2),
        ("{tenant9}:login", 1),
    ];
    let answers = limiter.check_batch(&tagged).unwrap();
    let allowed: Vec<bool> = answers.iter().map(|a| a.unwrap().allowed).collect();
    assert_eq!(allowed, [true, true, true]);
    assert_eq!(
        cluster.node_of("c|{tenant9}:login"),
        cluster.node_of("c|{tenant9}:upload")
    );

    // One node killed: its keys fail with a clear error, the others work.
    let victim = cluster.node_of("c|user0");
    cluster.nodes[victim].kill();
    let (mut failed, mut worked) = (0, 0);
    for k in &keys {
        let node = cluster.node_of_offline(&format!("c|{k}"), victim);
        match limiter.check_n(k, 0) {
            Ok(_) => {
                assert_ne!(node, victim, "{k} is on the dead node yet answered");
                worked += 1;
            }
            Err(e) => {
                assert_eq!(node, victim, "{k} is on a live node yet failed: {e}");
                assert!(
                    matches!(
                        e,
                        RedisLimitError::Connect { .. } | RedisLimitError::ConnectionLost(_)
                    ),
                    "{e}"
                );
                failed += 1;
            }
        }
    }
    eprintln!("one node killed: {failed} keys failed (its slots), {worked} answered");
    assert!(failed > 0 && worked > 0);
}
