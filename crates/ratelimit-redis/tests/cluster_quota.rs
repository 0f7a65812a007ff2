//! Changing quotas on a three-master Redis Cluster: every quota-change
//! conformance scenario (`policies-*.jsonl.gz`) field for field through the
//! sync limiter (a pool of cluster connections) and the async one (one
//! async cluster connection); a limiter adopting another one's change
//! (another pool) when it meets a converted key on another node than the
//! quota record; the window limiters' changes against the memory
//! limiter; and the expiry walk of `reconfigure` reaching the keys of
//! every master (and failing, the change made, when a master is down).

#![allow(clippy::std_instead_of_core)]

mod quota;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ratelimit_core::{FixedWindow, Quota, Rate, SlidingWindow, Strategy, TokenBucket};
use ratelimit_redis::{AsyncRedisConnection, RedisLimiter, RedisPool};
use ratelimit_replay::assert_every_policy_scenario;
use ratelimit_testkit::RedisCluster;

use quota::{AsyncWindow, client_time, run_async, run_sync, windows_match_memory};

const S: u64 = 1_000_000_000;

fn bucket(capacity: u64, per_second: u64) -> Quota {
    Quota::new(capacity, Rate::per_second(per_second)).unwrap()
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// One cluster for the scenarios, sync then async, for two limiters on
/// separate pools sharing a prefix, and for the window limiters.
#[test]
fn every_policy_scenario_matches_exactly_on_a_cluster() {
    let cluster = RedisCluster::start();
    let pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    assert!(pool.is_cluster());
    assert_every_policy_scenario(|file, s| run_sync(&pool, file, s));

    let rt = runtime();
    let conn = rt
        .block_on(AsyncRedisConnection::open_cluster(&cluster.urls()))
        .unwrap();
    assert!(conn.is_cluster());
    assert_every_policy_scenario(|file, s| run_async(&conn, &rt, file, s));

    a_change_reaches_another_pool(&cluster, &pool);

    // The window limiters' changes, against the memory limiter, with
    // another limiter (another pool, another connection) making some.
    let second = Duration::from_secs(1);
    let other_pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    let fixed = |l, w| FixedWindow::new(l, w).unwrap();
    let sliding = |l, w| SlidingWindow::new(l, w).unwrap();
    let sync_fixed = |p: &RedisPool| {
        RedisLimiter::builder(fixed(5, second))
            .prefix("wf")
            .time_source(client_time())
            .build(p.clone())
            .unwrap()
    };
    let (l, o) = (sync_fixed(&pool), sync_fixed(&other_pool));
    windows_match_memory(fixed(5, second), fixed, &l, Some(&o), 5, 1_500);
    let other_conn = rt
        .block_on(AsyncRedisConnection::open_cluster(&cluster.urls()))
        .unwrap();
    let async_sliding = |c: &AsyncRedisConnection| {
        AsyncWindow(
            RedisLimiter::builder(sliding(5, second))
                .prefix("ws")
                .time_source(client_time())
                .build(c.clone())
                .unwrap(),
            Arc::clone(&rt),
        )
    };
    let (l, o) = (async_sliding(&conn), async_sliding(&other_conn));
    windows_match_memory(sliding(5, second), sliding, &l, Some(&o), 6, 1_500);
}

/// Limiter `a` changes the quota; `b`, on a pool of its own, never told,
/// meets a key `a` converted (on another node than the record) and adopts
/// the change before deciding it.
fn a_change_reaches_another_pool(cluster: &RedisCluster, pool: &RedisPool) {
    let other_pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    let make = |p: &RedisPool| {
        RedisLimiter::builder(TokenBucket::new(bucket(10, 10)))
            .prefix("shared")
            .time_source(client_time())
            .build(p.clone())
            .unwrap()
    };
    let (a, b) = (make(pool), make(&other_pool));
    let record = cluster.node_of("shared#quota");
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| cluster.node_of(&format!("shared|{k}")) != record)
        .unwrap();
    let t0 = 1_000 * S;
    assert!(a.check_at(&key, 5, t0).unwrap().allowed);
    // b decides under 10 per second while nothing changed.
    assert!(b.check_at("untouched", 1, t0).unwrap().allowed);
    a.reconfigure_at(bucket(2, 1), Strategy::KeepConsumed, t0)
        .unwrap();
    // a converts the key: 5 units of 100 ms become 5 of 1 s, above 2.
    assert!(!a.check_at(&key, 1, t0).unwrap().allowed);
    assert_eq!(b.current_quota().0, 0);
    let d = b.check_at(&key, 1, t0).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.limit, 2);
    assert_eq!(b.current_quota(), (1, bucket(2, 1)));
    // b's own change is version 2, after a's.
    b.reconfigure_at(bucket(3, 1), Strategy::KeepConsumed, t0 + S)
        .unwrap();
    assert_eq!(b.current_quota(), (2, bucket(3, 1)));
    let d = b.check_at(&key, 0, t0 + S).unwrap();
    assert_eq!((d.remaining, d.limit), (0, 3));
    // a meets version 2: reloads, never deciding with version 1.
    let d = a.check_at(&key, 0, t0 + 3 * S).unwrap();
    assert_eq!((d.remaining, d.limit), (1, 3));
    assert_eq!(a.current_quota().0, 2);
}

/// The keys of the prefix spread over the three masters, and the walk of
/// `reconfigure` raises the expiry of every one (`quota::lengthen`),
/// sync and async.
#[test]
fn a_change_that_lengthens_states_raises_their_expiry_on_every_node() {
    let mut cluster = RedisCluster::start();
    let names: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    for root in ["lengthen", "lengthen-async"] {
        let nodes: BTreeSet<usize> = keys
            .iter()
            .map(|k| cluster.node_of(&format!("{root}|{k}")))
            .collect();
        assert_eq!(nodes.len(), 3, "keys on every node");
    }
    let pttl = |key: &str| -> i64 {
        cluster.nodes[cluster.node_of(key)]
            .cli(&["pttl", key])
            .trim()
            .parse()
            .unwrap()
    };

    let pool = RedisPool::cluster_builder(&cluster.urls()).build().unwrap();
    let build = |prefix: &str, bucket, time| {
        RedisLimiter::builder(bucket)
            .prefix(prefix)
            .time_source(time)
            .build(pool.clone())
            .unwrap()
    };
    quota::lengthen("lengthen", build, &keys, pttl);

    let rt = runtime();
    let conn = rt
        .block_on(AsyncRedisConnection::open_cluster(&cluster.urls()))
        .unwrap();
    let build = |prefix: &str, bucket, time| {
        quota::Async(
            RedisLimiter::builder(bucket)
                .prefix(prefix)
                .time_source(time)
                .build(conn.clone())
                .unwrap(),
            Arc::clone(&rt),
        )
    };
    quota::lengthen("lengthen-async", build, &keys, pttl);

    // A master down during the walk: the change is made (it is in the
    // record, on a live node), and `reconfigure` says the walk failed.
    let l = RedisLimiter::builder(TokenBucket::new(bucket(10, 10)))
        .prefix("down")
        .time_source(client_time())
        .build(pool.clone())
        .unwrap();
    let record = cluster.node_of("down#quota");
    let victim = (record + 1) % 3;
    cluster.nodes[victim].kill();
    let err = l
        .reconfigure_at(bucket(10, 1), Strategy::KeepConsumed, 1_000 * S)
        .unwrap_err();
    assert!(err.is_redis_failure(), "{err}");
    assert_eq!(l.current_quota(), (1, bucket(10, 1)));
    let other = RedisLimiter::builder(TokenBucket::new(bucket(10, 10)))
        .prefix("down")
        .build(RedisPool::cluster_builder(&cluster.urls()).build().unwrap())
        .unwrap();
    assert_eq!(other.refresh_quota().unwrap(), 1);
}
