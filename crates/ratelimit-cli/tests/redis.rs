//! `ratelimit replay --backend redis` prints what the memory backend
//! prints on the same input, and `ratelimit inspect` shows a key's state,
//! against a `redis-server` this test starts (and kills) itself.

#![allow(clippy::std_instead_of_core)]

mod common;

use std::net::TcpListener;

use common::{ratelimit, text};
use ratelimit_replay::{BUCKET_FILES, load_scenarios};
use ratelimit_testkit::RedisServer;

#[test]
fn replay_redis_prints_what_memory_prints() {
    let server = RedisServer::start();
    let url = server.url();
    let mut compared = 0;
    for file in BUCKET_FILES {
        // Every fourth scenario keeps the run short; the crate's own parity
        // test runs them all.
        for s in load_scenarios(file).unwrap().iter().step_by(4) {
            let input = s.input();
            let capacity = s.capacity.to_string();
            let [rate_flag, rate] = s.limit_args();
            let common = [
                "replay",
                "--algorithm",
                &s.algorithm,
                "--capacity",
                &capacity,
                &rate_flag,
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

/// A URL where no Redis listens (a port just freed).
fn unreachable_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}/")
}

#[test]
fn replay_redis_errors_are_clear() {
    let url = unreachable_url();
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
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: line 1: backend error: cannot connect to Redis"),
        "{err}"
    );
}

/// `inspect` told a runtime failure (Redis down) from a usage error by
/// exiting 2 for both: now 1 for the first, 2 only for the second.
#[test]
fn inspect_exit_status_tells_runtime_from_usage() {
    let down = ratelimit(&["inspect", "--redis-url", &unreachable_url(), "k"], "");
    assert_eq!(down.status.code(), Some(1), "{}", text(&down.stderr));
    assert!(
        text(&down.stderr).starts_with("error: cannot connect to Redis"),
        "{}",
        text(&down.stderr)
    );
    assert!(down.stdout.is_empty());
    // Usage errors, found by clap or after parsing (no Redis is contacted).
    for args in [
        &["inspect", "k"][..],
        &["inspect", "--redis-url", "redis://127.0.0.1:1/"],
        &["inspect", "--redis-url", "redis://127.0.0.1:1/", "a", "b"],
        &[
            "inspect",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--capacity",
            "3",
            "k",
        ],
        &[
            "inspect",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--capacity",
            "0",
            "--rate",
            "1",
            "k",
        ],
        &["inspect", "--redis-url", "not a url", "k"],
    ] {
        let out = ratelimit(args, "");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("Usage: ratelimit inspect"), "{args:?}: {err}");
    }
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

/// Until the Redis limiter runs quota changes, a `reconfigure` event or a
/// key's own quota on `--backend redis` stops the replay with an error
/// naming the line (exit status 1), after answering the lines before it,
/// rather than answering under the wrong quota.
#[test]
fn replay_redis_refuses_quota_changes_naming_the_line() {
    let server = RedisServer::start();
    let url = server.url();
    let ok = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";
    for (line, message) in [
        (
            r#"{"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": 1}"#,
            "error: line 3: reconfigure events are not supported by this backend yet\n",
        ),
        (
            r#"{"t_ns": 2, "key": "a", "op": "reserve", "capacity": 3, "rate": 1}"#,
            "error: line 3: a key's own quota (capacity and rate on a check or reserve) is not supported by this backend yet\n",
        ),
    ] {
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
            ],
            &format!("{ok}{ok}{line}\n{ok}"),
        );
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert_eq!(text(&out.stdout).lines().count(), 2, "{line}");
        assert_eq!(text(&out.stderr), message);
    }
}
