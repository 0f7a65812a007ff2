//! `ratelimit replay --backend redis` prints what the memory backend
//! prints on the same input, and `ratelimit inspect` shows a key's state,
//! against a `redis-server` this test starts (and kills) itself.

#![allow(clippy::std_instead_of_core)]

mod common;

use std::net::TcpListener;

use common::{every_scenario_through_the_binary, ratelimit, text};
use ratelimit_replay::{BUCKET_FILES, POLICY_FILES, WINDOW_FILES, load_scenarios};
use ratelimit_testkit::RedisServer;

#[test]
fn replay_redis_prints_what_memory_prints() {
    let server = RedisServer::start();
    let url = server.url();
    let mut compared = 0;
    for file in BUCKET_FILES.into_iter().chain(WINDOW_FILES) {
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
    assert_eq!(compared, 90);
}

/// Both window files, every scenario, through the binary on Redis, field
/// for field.
#[test]
fn replay_redis_passes_every_window_scenario() {
    let server = RedisServer::start();
    let url = server.url();
    every_scenario_through_the_binary(
        &WINDOW_FILES,
        180,
        &["--backend", "redis", "--redis-url", &url],
    );
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
        &[
            "inspect",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--algorithm",
            "sliding-window",
            "k",
        ],
        &[
            "inspect",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--window",
            "1s",
            "k",
        ],
        &[
            "inspect",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--algorithm",
            "fixed-window",
            "--window",
            "1s",
            "--capacity",
            "3",
            "--rate",
            "1",
            "k",
        ],
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

/// Both policies files (changes of quota and keys' own quotas), every
/// scenario, through the binary on Redis, field for field: the Redis
/// limiter's `reconfigure_at` and `check/reserve_with_quota_at` at the
/// events' times.
#[test]
fn replay_redis_passes_every_policy_scenario() {
    let server = RedisServer::start();
    let url = server.url();
    every_scenario_through_the_binary(
        &POLICY_FILES,
        120,
        &["--backend", "redis", "--redis-url", &url],
    );
}

/// `inspect` reads a window's key: the stored window index and counts
/// (the previous window's too for a sliding window), its TTL and, given
/// the limit, what is left of it on the server's clock.
#[test]
fn inspect_shows_a_window_keys_counts() {
    let server = RedisServer::start();
    let url = server.url();
    let limit = |algorithm: &'static str| {
        [
            "--algorithm",
            algorithm,
            "--capacity",
            "5",
            "--window",
            "1s",
        ]
    };
    for (algorithm, input) in [
        (
            "fixed-window",
            "{\"t_ns\": 1500000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 2}\n",
        ),
        (
            "sliding-window",
            "{\"t_ns\": 1500000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 2}\n\
             {\"t_ns\": 2500000000, \"key\": \"user1\", \"op\": \"check\", \"cost\": 1}\n",
        ),
    ] {
        let prefix = format!("ops-{algorithm}");
        let mut args = vec!["replay"];
        args.extend(limit(algorithm));
        args.extend([
            "--backend",
            "redis",
            "--redis-url",
            &url,
            "--prefix",
            &prefix,
        ]);
        let out = ratelimit(&args, input);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut args = vec!["inspect", "--redis-url", &url, "--prefix", &prefix];
        args.extend(limit(algorithm));
        args.push("user1");
        let out = ratelimit(&args, "");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["redis_key"], format!("{prefix}|user1"));
        assert_eq!(v["exists"], true);
        assert_eq!(v["window_ns"], 1_000_000_000_u64);
        assert!(v.get("tat_ns").is_none(), "{v}");
        if algorithm == "fixed-window" {
            // Replayed at 1.5 s: window 1 holds 2.
            assert_eq!((&v["window_index"], &v["count"]), (&1.into(), &2.into()));
            assert!(v.get("previous_count").is_none(), "{v}");
        } else {
            // 2 in window 1, then 1 in window 2.
            assert_eq!(
                (&v["window_index"], &v["count"], &v["previous_count"]),
                (&2.into(), &1.into(), &2.into())
            );
        }
        // The replay's TTL carries its margin of a day.
        let ttl = v["ttl_ms"].as_u64().unwrap();
        assert!(ttl > 86_000_000 && ttl <= 86_402_000, "{ttl}");
        // On the server's clock (2026), 1970's windows have slid out.
        assert_eq!(v["remaining"], 5);
        assert_eq!(v["reset_after_ns"], 0);
        // Without --capacity: the counts, and no `remaining`.
        let out = ratelimit(
            &[
                "inspect",
                "--redis-url",
                &url,
                "--prefix",
                &prefix,
                "--algorithm",
                algorithm,
                "--window",
                "1s",
                "user1",
            ],
            "",
        );
        let bare: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(bare["count"], v["count"]);
        assert!(bare.get("remaining").is_none(), "{bare}");
        // A key never seen.
        let out = ratelimit(
            &[
                "inspect",
                "--redis-url",
                &url,
                "--prefix",
                &prefix,
                "--algorithm",
                algorithm,
                "--window",
                "1s",
                "nobody",
            ],
            "",
        );
        let missing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(missing["exists"], false);
        assert_eq!(missing["count"], serde_json::Value::Null);
        assert_eq!(missing["ttl_ms"], serde_json::Value::Null);
    }
}
