//! Redis Cluster: a three-master cluster started by the test, keys spread
//! over every node, the conformance scenarios (buckets and windows), the
//! batch call across slots, hash tags, and a killed node failing only its
//! own slots, then restarted (empty) and used again. Each body runs on the
//! sync limiter (a pool of cluster connections) and on the async one (one
//! async cluster connection).

#![allow(clippy::std_instead_of_core)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ratelimit_core::{Quota, Rate};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TokenBucket};
use ratelimit_replay::{assert_every_scenario, assert_every_window_scenario};
use ratelimit_testkit::RedisCluster;
use support::{AsyncFactory, Factory, run_one_on};

/// How long a wait for something that must happen may last before the
/// test fails instead of hanging: a liveness bound, never a speed goal.
const LIVENESS: Duration = Duration::from_secs(60);

#[test]
fn cluster_end_to_end() {
    let mut cluster = RedisCluster::start();
    let pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    assert!(pool.is_cluster());
    check_all_on_one_slot(&pool);
    end_to_end(&mut cluster, &pool);
}

/// Several limits, all or nothing, on the cluster (the sync pool's
/// `check_all`): keys of one slot (a hash tag) or a clear error before
/// anything is sent.
fn check_all_on_one_slot(pool: &RedisPool) {
    let limiter =
        RedisLimiter::builder(TokenBucket::new(Quota::new(2, Rate::per_hour(1)).unwrap()))
            .prefix("all")
            .build(pool.clone())
            .unwrap();
    let window = RedisLimiter::builder(ratelimit_core::FixedWindow::per_hour(1).unwrap())
        .prefix("w")
        .build(pool.clone())
        .unwrap();
    let d = pool
        .check_all([
            limiter.limit("{tenant9}:all", 1).unwrap(),
            window.limit("{tenant9}:all", 1).unwrap(),
        ])
        .unwrap();
    assert!(d.allowed());
    let d = pool
        .check_all([
            limiter.limit("{tenant9}:all", 1).unwrap(),
            window.limit("{tenant9}:all", 1).unwrap(),
        ])
        .unwrap();
    assert_eq!(d.denied_by().collect::<Vec<_>>(), [1]);
    assert_eq!(d.limits[0].remaining, 1, "the bucket was not charged");
    match pool.check_all([
        limiter.limit("user1", 1).unwrap(),
        window.limit("user1", 1).unwrap(),
    ]) {
        Err(RedisLimitError::InvalidOption(m)) => assert!(m.contains("hash slot"), "{m}"),
        other => panic!("wanted a slot error, got {other:?}"),
    }
}

#[test]
fn cluster_end_to_end_async() {
    let mut cluster = RedisCluster::start();
    let factory = AsyncFactory::cluster(&cluster.urls());
    end_to_end(&mut cluster, &factory);
}

fn end_to_end<F: Factory>(cluster: &mut RedisCluster, factory: &F) {
    // Parity: both scenario files, every field.
    assert_every_scenario(|file, s| run_one_on(factory, file, s));
    assert_every_window_scenario(|file, s| run_one_on(factory, file, s));

    let limiter = factory.limit(
        RedisLimiter::<_, F::Conn>::builder(TokenBucket::new(
            Quota::new(2, Rate::per_hour(1)).unwrap(),
        ))
        .prefix("c")
        // Every call reaches Redis here: the breaker has tests of its own.
        .circuit_breaker(None),
    );
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
    let on_victim: Vec<bool> = keys
        .iter()
        .map(|k| cluster.node_of(&format!("c|{k}")) == victim)
        .collect();
    cluster.nodes[victim].kill();
    let (mut failed, mut worked) = (0, 0);
    for (k, &dead) in keys.iter().zip(&on_victim) {
        match limiter.check_n(k, 0) {
            Ok(d) => {
                assert!(!dead, "{k} is on the dead node yet answered");
                assert_eq!(d.remaining, 0, "{k} kept its state");
                worked += 1;
            }
            Err(e) => {
                assert!(dead, "{k} is on a live node yet failed: {e}");
                assert!(e.is_redis_failure(), "{e}");
                assert!(
                    matches!(
                        e,
                        RedisLimitError::Connect { .. }
                            | RedisLimitError::ConnectionLost(_)
                            | RedisLimitError::Timeout { .. }
                    ),
                    "{e}"
                );
                failed += 1;
            }
        }
    }
    eprintln!("one node killed: {failed} keys failed (its slots), {worked} answered");
    assert!(failed > 0 && worked > 0);

    // Restarted (empty: no persistence; it keeps its slots from its
    // cluster config file): the same limiter reaches it again, by itself.
    cluster.nodes[victim].restart();
    let t = Instant::now();
    let mut failed_after = 0;
    for (k, &dead) in keys.iter().zip(&on_victim) {
        let d = loop {
            match limiter.check_n(k, 0) {
                Ok(d) => break d,
                Err(e) => {
                    assert!(dead, "{k} is on a live node yet failed: {e}");
                    failed_after += 1;
                    assert!(t.elapsed() < LIVENESS, "{k}: no recovery: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        // The restarted node lost its state: a full bucket again there;
        // the others kept theirs.
        assert_eq!(d.remaining, if dead { 2 } else { 0 }, "{k}");
    }
    eprintln!(
        "node restarted: {failed_after} failed calls, recovered in {:?}",
        t.elapsed()
    );
}
