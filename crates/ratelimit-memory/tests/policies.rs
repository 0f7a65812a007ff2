//! The quota-change conformance scenarios (`policies-*.jsonl.gz`: a
//! `reconfigure` event changes the limiter's quota for every key without
//! one of its own; a `check` or `reserve` event carrying `capacity` and
//! `rate` gives its key a quota of its own) pass field for field on the
//! keyed limiter: reconfigured lazily, per-key quotas converted with
//! keep-consumed, with the default bound and with a bound so tight that it
//! sweeps (and so converts every lagging key) all the time.
//!
//! The scenarios are read from the repository's copy
//! (`crates/ratelimit-replay/conformance/`). This harness parses the events
//! itself: the replay crate's `Event` does not carry `reconfigure` and
//! per-event quotas yet.

use core::time::Duration;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use ratelimit_memory::{
    AlgorithmKind, AnyBucket, KeyedLimiter, ManualClock, Quota, Rate, Reservation, Strategy,
};
use ratelimit_replay::{render_check, render_reserve};
use serde_json::Value;

/// The folder of the repository's copy of the conformance files.
fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ratelimit-replay/conformance")
}

fn load(file: &str) -> Vec<Value> {
    let path = conformance_dir().join(file);
    let gz = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(flate2::read::GzDecoder::new(gz))
        .lines()
        .map(|line| serde_json::from_str(&line.expect("readable")).expect("a scenario per line"))
        .collect()
}

/// A bucket of `kind` with the capacity and rate of a scenario or event.
fn bucket(kind: AlgorithmKind, capacity: &Value, rate: &Value) -> AnyBucket {
    let rate: Rate = rate.to_string().parse().expect("a rate");
    let quota = Quota::new(capacity.as_u64().expect("a capacity"), rate).expect("a quota");
    match kind {
        AlgorithmKind::TokenBucket => {
            AnyBucket::TokenBucket(ratelimit_memory::TokenBucket::new(quota))
        }
        AlgorithmKind::LeakyBucket => {
            AnyBucket::LeakyBucket(ratelimit_memory::LeakyBucket::new(quota))
        }
        other => panic!("policies scenarios are buckets, not {other}"),
    }
}

type Limiter = KeyedLimiter<String, AnyBucket, Arc<ManualClock>>;

/// Runs one scenario; `Err` names the first event whose answer differs.
fn run(scenario: &Value, max_keys: usize, shards: usize) -> Result<(), String> {
    let kind: AlgorithmKind = scenario["algorithm"].as_str().unwrap().parse().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let limiter: Limiter =
        KeyedLimiter::builder(bucket(kind, &scenario["capacity"], &scenario["rate"]))
            .clock(Arc::clone(&clock))
            .max_keys(max_keys)
            .shards(shards)
            .build();
    // The keys that have a quota of their own, and that quota.
    let mut own: HashMap<String, AnyBucket> = HashMap::new();
    let events = scenario["events"].as_array().unwrap();
    let expected = scenario["expected"].as_array().unwrap();
    for (i, (event, expected)) in events.iter().zip(expected).enumerate() {
        clock.set_ns(event["t_ns"].as_u64().unwrap());
        let got = answer(&limiter, &mut own, kind, event);
        let got: Value = serde_json::from_str(&got).unwrap();
        if &got != expected {
            return Err(format!(
                "scenario {} event {i}: {event}\n  expected {expected}\n  got      {got}",
                scenario["id"]
            ));
        }
    }
    Ok(())
}

fn answer(
    limiter: &Limiter,
    own: &mut HashMap<String, AnyBucket>,
    kind: AlgorithmKind,
    event: &Value,
) -> String {
    if event["op"] == "reconfigure" {
        let strategy: Strategy = event
            .get("strategy")
            .and_then(Value::as_str)
            .unwrap_or("keep-consumed")
            .parse()
            .unwrap();
        limiter.reconfigure(bucket(kind, &event["capacity"], &event["rate"]), strategy);
        return r#"{"reconfigured": true}"#.to_owned();
    }
    let key = event["key"].as_str().unwrap();
    let cost = event.get("cost").and_then(Value::as_u64).unwrap_or(1);
    if event.get("capacity").is_some() {
        own.insert(
            key.to_owned(),
            bucket(kind, &event["capacity"], &event["rate"]),
        );
    }
    let quota = own.get(key);
    match event["op"].as_str().unwrap() {
        "check" => {
            let decision = match quota {
                Some(q) => limiter.check_with_quota(key, cost, q),
                None => limiter.check_n(key, cost),
            };
            match decision {
                Ok(d) => render_check(&d),
                // Above the capacity: never, with the unchanged state.
                Err(_) => {
                    let now = match quota {
                        Some(q) => limiter.check_with_quota(key, 0, q),
                        None => limiter.check_n(key, 0),
                    }
                    .unwrap();
                    render_check(&ratelimit_memory::Decision {
                        allowed: false,
                        retry_after: None,
                        ..now
                    })
                }
            }
        }
        "reserve" => {
            let max_wait = event
                .get("max_wait_ns")
                .and_then(Value::as_u64)
                .map(Duration::from_nanos);
            let r = match quota {
                Some(q) => limiter.reserve_with_quota(key, cost, max_wait, q),
                None => limiter.reserve(key, cost, max_wait),
            };
            render_reserve(&r.unwrap_or(Reservation::Rejected {
                retry_after: None,
                reset_after: Duration::ZERO,
                limit: 0,
                reason: ratelimit_memory::Reason::Quota,
            }))
        }
        other => panic!("unknown op {other}"),
    }
}

fn run_all(max_keys: usize, shards: usize) {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in ["policies-ns.jsonl.gz", "policies-us.jsonl.gz"] {
        for scenario in load(file) {
            count += 1;
            if let Err(e) = run(&scenario, max_keys, shards) {
                failures.push(format!("{file}: {e}"));
            }
        }
    }
    assert_eq!(count, 120, "both files, 60 scenarios each");
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_policies_scenario_passes() {
    run_all(ratelimit_memory::DEFAULT_MAX_KEYS, 64);
}

/// One shard bounded at 5 keys, the most a scenario uses: it sweeps (and
/// so converts every lagging key first) whenever it holds 5, and whenever
/// its table would grow past 3; no answer may change.
#[test]
fn every_policies_scenario_passes_while_sweeping() {
    run_all(5, 1);
}
