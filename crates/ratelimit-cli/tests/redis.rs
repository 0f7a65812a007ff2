//! `ratelimit replay --backend redis` prints what the memory backend
//! prints on the same input, and `ratelimit inspect` shows a key's state,
//! against a `redis-server` this test starts (and kills) itself.

#![allow(clippy::std_instead_of_core)]

mod common;

use std::net::TcpListener;

use common::ratelimit;
use ratelimit_replay::load_scenarios;
use ratelimit_testkit::RedisServer;

#[test]
fn replay_redis_prints_what_memory_prints() {
    let server = RedisServer::start();
    let url = server.url();
    let mut compared = 0;
    for file in ["scenarios-us.jsonl.gz", "scenarios-ns.jsonl.gz"] {
        // Every fourth scenario keeps the run short; the crate's own parity
        // test runs them all.
        for s in load_scenarios(file).unwrap().iter().step_by(4) {
            let input: String = s
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let (rate, capacity) = (
                s.rate.as_ref().expect("a bucket scenario").to_string(),
                s.capacity.to_string(),
            );
            let common = [
                "replay",
                "--algorithm",
                &s.algorithm,
                "--capacity",
                &capacity,
                "--rate",
                &rate,
                "--summary",
            ];
            let memory = ratelimit(&common, &input);
            let mut args = common.to_vec();
            args.extend(["--backend", "redis", "--redis-url", &url]);
            let redis = ratelimit(&args, &input);
            assert!(
                redis.status.success(),
                "{}",
                String::from_utf8_lossy(&redis.stderr)
            );
            assert_eq!(redis.stdout, memory.stdout, "{file} scenario {}", s.id);
            assert_eq!(
                redis.stderr, memory.stderr,
                "{file} scenario {}: summary",
                s.id
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 45);
}

#[test]
fn replay_redis_errors_are_clear() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "2",
            "--rate",
            "1",
            "--backend",
            "redis",
            "--redis-url",
            &url,
        ],
        "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: backend error: cannot connect to Redis"),
        "{err}"
    );
}

#[test]
fn inspect_shows_tokens_ttl_and_reset() {
    let server = RedisServer::start();
    let url = server.url();
    let input = "{\"t_ns\": 1000000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 2}\n";
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "5",
            "--rate",
            "1",
            "--backend",
            "redis",
            "--redis-url",
            &url,
            "--prefix",
            "ops",
        ],
        input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ratelimit(
        &[
            "inspect",
            "--redis-url",
            &url,
            "--prefix",
            "ops",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "5",
            "--rate",
            "1",
            "user1",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["redis_key"], "ops|user1");
    assert_eq!(v["exists"], true);
    // Replayed at t = 1 s with cost 2 at T = 1 s: tat = 3 s.
    assert_eq!(v["tat_ns"], 3_000_000_000_u64);
    // The replay's TTL: 2 s plus the replay margin of a day.
    let ttl = v["ttl_ms"].as_u64().unwrap();
    assert!(ttl > 86_000_000 && ttl <= 86_402_000, "{ttl}");
    // On the server's clock (2026), 1970's tat is long past: a full bucket.
    assert_eq!(v["tokens"], 5);
    assert_eq!(v["reset_after_ns"], 0);
    let missing = ratelimit(&["inspect", "--redis-url", &url, "nobody"], "");
    let v: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(v["exists"], false);
    assert_eq!(v["ttl_ms"], serde_json::Value::Null);
}
