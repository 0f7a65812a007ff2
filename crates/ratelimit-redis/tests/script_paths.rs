//! The two ways the scripts run on the server (`ServerScripts`): Redis 7
//! functions (`FCALL` of one library) and `EVALSHA`. Every conformance
//! scenario (buckets and windows, every field) on each path, sync and
//! async, on one Redis and on a cluster, with `INFO commandstats` showing
//! that the path really was the one asked for; a library lost mid-run
//! (`FUNCTION FLUSH`, on one server or one cluster node) reloaded with no
//! request lost or counted twice; a user whom an ACL denies `FUNCTION`
//! (or `FCALL`) falling back to `EVALSHA` under `Auto`, and failing with a clear error
//! when functions are forced.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::time::Duration;

use ratelimit_core::{Quota, Rate, TokenBucket};
use ratelimit_redis::{
    AsyncRedisConnection, FailurePolicy, RedisLimiter, RedisPool, ServerScripts, TimeSource,
};
use ratelimit_replay::{assert_every_scenario, assert_every_window_scenario};
use ratelimit_testkit::{RedisCluster, RedisServer};
use support::{AsyncFactory, Factory, run_one_on, runtime};

fn every_scenario_on<F: Factory>(factory: &F) {
    assert_every_scenario(|file, s| run_one_on(factory, file, s));
    assert_every_window_scenario(|file, s| run_one_on(factory, file, s));
}

/// Empties `server` (ours, started by the test): the scenarios of each run
/// use the same keys.
fn flush(server: &RedisServer) {
    assert_eq!(server.cli(&["flushall"]).trim(), "OK");
}

fn pool(url: &str, scripts: ServerScripts) -> RedisPool {
    RedisPool::builder(url)
        .server_scripts(scripts)
        .build()
        .unwrap()
}

fn async_factory(url: &str, scripts: ServerScripts) -> AsyncFactory {
    let rt = runtime();
    let conn = rt
        .block_on(
            AsyncRedisConnection::builder(url)
                .server_scripts(scripts)
                .build(),
        )
        .unwrap();
    AsyncFactory { conn, rt }
}

fn async_cluster(urls: &[String], scripts: ServerScripts) -> AsyncFactory {
    let rt = runtime();
    let conn = rt
        .block_on(
            AsyncRedisConnection::cluster_builder(urls)
                .server_scripts(scripts)
                .build(),
        )
        .unwrap();
    AsyncFactory { conn, rt }
}

/// `calls` of `INFO commandstats` for `command` (`fcall`, `evalsha`,
/// `function|load`), 0 when never called.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.cli(&["info", "commandstats"]);
    let head = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&head))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().trim().parse().unwrap()
        })
}

/// The names of the function libraries on `server`.
fn libraries(server: &RedisServer) -> Vec<String> {
    let list = server.cli(&["function", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "library_name")
        .map(|w| w[1].to_owned())
        .collect()
}

#[test]
fn every_scenario_on_functions_sync_and_async() {
    let server = RedisServer::start();
    let p = pool(&server.url(), ServerScripts::Functions);
    every_scenario_on(&p);
    assert!(p.uses_functions());
    flush(&server);
    every_scenario_on(&async_factory(&server.url(), ServerScripts::Functions));
    assert!(calls(&server, "fcall") > 0);
    assert_eq!(calls(&server, "evalsha"), 0);
    assert_eq!(calls(&server, "eval"), 0);
    let libs = libraries(&server);
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert!(libs[0].starts_with("ratelimit_"), "{libs:?}");
}

#[test]
fn every_scenario_on_evalsha_sync_and_async() {
    let server = RedisServer::start();
    let p = pool(&server.url(), ServerScripts::Eval);
    every_scenario_on(&p);
    assert!(!p.uses_functions());
    flush(&server);
    every_scenario_on(&async_factory(&server.url(), ServerScripts::Eval));
    assert!(calls(&server, "evalsha") > 0);
    assert_eq!(calls(&server, "fcall"), 0);
    assert!(libraries(&server).is_empty());
}

#[test]
fn the_default_is_functions_where_the_server_runs_them() {
    let server = RedisServer::start();
    let p = RedisPool::open(&server.url()).unwrap();
    let limiter =
        RedisLimiter::builder(TokenBucket::new(Quota::new(3, Rate::per_hour(1)).unwrap()))
            .build(p.clone())
            .unwrap();
    assert!(limiter.check("k").unwrap().allowed);
    assert!(p.uses_functions());
    assert_eq!(
        calls(&server, "fcall"),
        2,
        "one answered Function not found"
    );
    assert_eq!(calls(&server, "function|load"), 1);
    assert_eq!(calls(&server, "evalsha"), 0);
}

#[test]
fn every_scenario_on_a_cluster_on_each_path_sync_and_async() {
    let cluster = RedisCluster::start();
    for scripts in [ServerScripts::Functions, ServerScripts::Eval] {
        let p = RedisPool::cluster_builder(&cluster.urls())
            .server_scripts(scripts)
            .build()
            .unwrap();
        every_scenario_on(&p);
        cluster.nodes.iter().for_each(flush);
        every_scenario_on(&async_cluster(&cluster.urls(), scripts));
        cluster.nodes.iter().for_each(flush);
    }
    for node in &cluster.nodes {
        // Every master served FCALLs and EVALSHAs, and holds the library.
        assert!(calls(node, "fcall") > 0);
        assert!(calls(node, "evalsha") > 0);
        assert_eq!(libraries(node).len(), 1);
    }
}

/// A token bucket of 10 per hour under a fixed client time: each admission
/// leaves exactly one less, whatever happens to the library in between.
fn bucket<C: ratelimit_redis::Transport>(conn: C, prefix: &str) -> RedisLimiter<TokenBucket, C> {
    RedisLimiter::builder(TokenBucket::new(
        Quota::new(10, Rate::per_hour(10)).unwrap(),
    ))
    .prefix(prefix)
    .time_source(TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    })
    .failure_policy(FailurePolicy::ReturnError)
    .build(conn)
    .unwrap()
}

const T0: u64 = 1_700_000_000_123_456_789;

#[test]
fn a_library_flushed_mid_run_is_reloaded_and_nothing_counts_twice() {
    let server = RedisServer::start();
    let p = pool(&server.url(), ServerScripts::Functions);
    let limiter = bucket(p, "flush");
    let f = async_factory(&server.url(), ServerScripts::Functions);
    let alimiter = bucket(f.conn.clone(), "aflush");
    for i in 0..4u64 {
        let d = limiter.check_at("k", 1, T0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
        let d = f.rt.block_on(alimiter.check_at("k", 1, T0)).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
    }
    assert_eq!(server.cli(&["function", "flush"]).trim(), "OK");
    assert!(libraries(&server).is_empty());
    for i in 4..10u64 {
        let d = limiter.check_at("k", 1, T0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
        let d = f.rt.block_on(alimiter.check_at("k", 1, T0)).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
    }
    assert!(!limiter.check_at("k", 1, T0).unwrap().allowed);
    assert!(
        !f.rt
            .block_on(alimiter.check_at("k", 1, T0))
            .unwrap()
            .allowed
    );
    // Loaded once at the start, once after the flush (the first of the
    // two limiters to find it missing; the other found it back).
    let loads = calls(&server, "function|load");
    assert!((2..=3).contains(&loads), "{loads} loads");
    assert_eq!(libraries(&server).len(), 1);
    assert_eq!(calls(&server, "evalsha"), 0);
}

#[test]
fn a_cluster_node_that_lost_the_library_gets_it_back() {
    let cluster = RedisCluster::start();
    let p = RedisPool::cluster_builder(&cluster.urls())
        .server_scripts(ServerScripts::Functions)
        .build()
        .unwrap();
    let limiter = bucket(p, "cflush");
    let f = async_cluster(&cluster.urls(), ServerScripts::Functions);
    let alimiter = bucket(f.conn.clone(), "acflush");
    // Keys on every node.
    let keys: Vec<String> = (0..30).map(|i| format!("user{i}")).collect();
    let run = |expect_remaining: u64| {
        for k in &keys {
            let d = limiter.check_at(k.as_str(), 1, T0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expect_remaining, "{k}");
            let d = f.rt.block_on(alimiter.check_at(k.as_str(), 1, T0)).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expect_remaining, "{k}");
        }
    };
    run(9);
    for node in &cluster.nodes {
        assert_eq!(libraries(node).len(), 1);
    }
    assert_eq!(cluster.nodes[1].cli(&["function", "flush"]).trim(), "OK");
    assert!(libraries(&cluster.nodes[1]).is_empty());
    run(8);
    run(7);
    for node in &cluster.nodes {
        assert_eq!(libraries(node).len(), 1);
        assert_eq!(calls(node, "evalsha"), 0);
    }
}

/// `redis://nofunc:pw@127.0.0.1:PORT/`: a user whom an ACL denies the
/// `FUNCTION` command (so `FUNCTION LOAD`), but not `FCALL`.
fn denied_url(server: &RedisServer) -> String {
    let out = server.cli(&[
        "acl",
        "setuser",
        "nofunc",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-function",
    ]);
    assert_eq!(out.trim(), "OK");
    server.url().replacen("redis://", "redis://nofunc:pw@", 1)
}

#[test]
fn a_user_denied_functions_falls_back_to_evalsha() {
    let server = RedisServer::start();
    let url = denied_url(&server);
    let p = pool(&url, ServerScripts::Auto);
    let limiter = bucket(p.clone(), "acl");
    let f = async_factory(&url, ServerScripts::Auto);
    let alimiter = bucket(f.conn.clone(), "aacl");
    for i in 0..10u64 {
        let d = limiter.check_at("k", 1, T0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
        let d = f.rt.block_on(alimiter.check_at("k", 1, T0)).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
    }
    assert!(!limiter.check_at("k", 1, T0).unwrap().allowed);
    assert!(!p.uses_functions());
    assert!(!f.conn.uses_functions());
    assert!(libraries(&server).is_empty());
    // One FCALL each found the library missing, then EVALSHA only.
    assert_eq!(calls(&server, "fcall"), 2);
    assert!(calls(&server, "evalsha") >= 21);
    // The scenarios on that fallback, every field.
    flush(&server);
    every_scenario_on(&p);

    // Forced functions: every call fails, with the server's reason.
    let forced = bucket(pool(&url, ServerScripts::Functions), "forced");
    let err = forced.check_at("k", 1, T0).unwrap_err().to_string();
    assert!(
        err.contains("NOPERM") || err.contains("permission"),
        "{err}"
    );
    let f = async_factory(&url, ServerScripts::Functions);
    let aforced = bucket(f.conn.clone(), "aforced");
    let err =
        f.rt.block_on(aforced.check_at("k", 1, T0))
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("NOPERM") || err.contains("permission"),
        "{err}"
    );
    assert!(libraries(&server).is_empty());
}

#[test]
fn a_user_denied_fcall_falls_back_to_evalsha() {
    let server = RedisServer::start();
    let out = server.cli(&[
        "acl", "setuser", "nofcall", "on", ">pw", "~*", "&*", "+@all", "-fcall",
    ]);
    assert_eq!(out.trim(), "OK");
    let url = server.url().replacen("redis://", "redis://nofcall:pw@", 1);
    let p = pool(&url, ServerScripts::Auto);
    let limiter = bucket(p.clone(), "nofcall");
    for i in 0..10u64 {
        let d = limiter.check_at("k", 1, T0).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9 - i);
    }
    assert!(!limiter.check_at("k", 1, T0).unwrap().allowed);
    assert!(!p.uses_functions());
    // 11 checks, and the first EVALSHA answered NOSCRIPT (loaded, sent
    // again); the one refused FCALL never ran.
    assert_eq!(calls(&server, "evalsha"), 12);
    assert_eq!(calls(&server, "fcall"), 0);
}
