//! Fuzz-style property tests of the replay parser and loop, on stable Rust:
//! no input, however broken or hostile, makes a replay panic; every input
//! error names a line and the lines before it are answered; the reference
//! model and the in-memory limiter answer every valid stream alike, with
//! quota changes too (the model converting eagerly, the limiter lazily,
//! while it reclaims keys); and the summary table has exactly one row per
//! key whatever the keys contain.
//!
//! Runs are reproducible: `cargo xtask test` fixes proptest's seed
//! (`PROPTEST_RNG_SEED`); set another to explore.

use core::time::Duration;

use proptest::prelude::*;
use std::sync::Arc;

use ratelimit_core::{AnyBucket, LeakyBucket, ManualClock, Quota, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_replay::{
    Backend, MAX_LINE_BYTES, Memory, Model, ReplayError, Summary, parse_event, replay,
};

/// A quota from the smallest to the most extreme the core accepts.
fn quota() -> impl Strategy<Value = Quota> {
    prop_oneof![
        (1u64..=5, 1u64..=1_000_000_000),
        Just((1, 1)),
        Just((u64::MAX, 1)),
        Just((1, u64::MAX)),
        Just((3, u64::MAX / 3)),
    ]
    .prop_map(|(c, t)| Quota::new(c, Rate::from_interval(Duration::from_nanos(t))).unwrap())
}

/// Numbers a field might hold: ordinary, extreme, negative, fractional,
/// too large for any integer, or not a number at all.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("1e400".to_owned()),
        Just("0".to_owned()),
        Just("null".to_owned()),
        Just("\"7\"".to_owned()),
        Just("true".to_owned()),
    ]
}

/// A JSON string literal of a key with any characters, escaped or not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,4}".prop_map(|k| format!("\"{k}\"")),
        any::<String>().prop_map(|k| serde_json::to_string(&k).unwrap()),
        Just("\"\\u001b[2J\\n\\r\"".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("5".to_owned()),
    ]
}

/// One line that looks like an event: the fields of the format (and a
/// stranger), each present or not, with plausible or hostile values.
fn event_line() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("\"check\""),
        Just("\"reserve\""),
        Just("\"reconfigure\""),
        Just("\"CHECK\""),
        Just("null"),
    ];
    let strategy = prop_oneof![
        Just("\"reset\""),
        Just("\"keep-consumed\""),
        Just("\"keep\"")
    ];
    (
        prop::option::weighted(0.95, number()),
        prop::option::weighted(0.9, key()),
        prop::option::weighted(0.95, op),
        prop::option::of(number()),
        prop::option::of(number()),
        prop::option::weighted(0.1, number()),
        prop::option::weighted(0.1, number()),
        prop::option::weighted(0.05, strategy),
        prop::option::weighted(0.02, Just("\"extra\": 1")),
    )
        .prop_map(
            |(t, key, op, cost, wait, capacity, rate, strategy, extra)| {
                let mut fields = Vec::new();
                let mut add = |name: &str, value: Option<String>| {
                    if let Some(v) = value {
                        fields.push(format!("\"{name}\": {v}"));
                    }
                };
                add("t_ns", t);
                add("key", key);
                add("op", op.map(str::to_owned));
                add("cost", cost);
                add("max_wait_ns", wait);
                add("capacity", capacity);
                add("rate", rate);
                add("strategy", strategy.map(str::to_owned));
                fields.extend(extra.map(str::to_owned));
                format!("{{{}}}", fields.join(", "))
            },
        )
}

/// Valid request lines: time moving forward in small steps (or staying),
/// a few keys, costs around the capacity, every kind of wait.
fn valid_stream() -> impl Strategy<Value = String> {
    let event = (
        0u64..3_000_000_000,
        0u8..4,
        any::<bool>(),
        0u64..8,
        prop::option::of(0u64..2_000_000_000),
    );
    (any::<u64>(), prop::collection::vec(event, 0..80)).prop_map(|(start, events)| {
        let mut t = start % (1 << 62);
        let mut input = String::new();
        for (step, key, reserve, cost, wait) in events {
            t = t.saturating_add(step);
            let op = if reserve { "reserve" } else { "check" };
            let wait = wait.map_or_else(|| "null".to_owned(), |w| w.to_string());
            input += &format!(
                "{{\"t_ns\": {t}, \"key\": \"k{key}\", \"op\": \"{op}\", \"cost\": {cost}, \"max_wait_ns\": {wait}}}\n"
            );
        }
        input
    })
}

/// Rates as an event writes them.
const RATES: [&str; 7] = ["0.5", "1", "2", "3", "7.5", "1000", "2.5e6"];

/// Valid streams with quota changes: requests (some carrying their key's
/// own quota) and `reconfigure` events of every strategy, time moving
/// forward in small steps.
fn quota_change_stream() -> impl Strategy<Value = String> {
    let event = (
        0u64..2_000_000_000,
        0u8..4,
        0u8..10,
        0u64..7,
        (1u64..=6, 0..RATES.len()),
        0u8..4,
        prop::option::of(0u64..2_000_000_000),
    );
    (any::<u32>(), prop::collection::vec(event, 0..60)).prop_map(|(start, events)| {
        let mut t = u64::from(start);
        let mut input = String::new();
        for (step, key, kind, cost, (capacity, rate), strategy, wait) in events {
            t += step;
            let rate = RATES[rate];
            let strategy = ["keep-consumed", "keep-available", "proportional", "reset"]
                [usize::from(strategy)];
            let wait = wait.map_or_else(|| "null".to_owned(), |w| w.to_string());
            input += &match kind {
                0 => format!(
                    "{{\"t_ns\": {t}, \"op\": \"reconfigure\", \"capacity\": {capacity}, \"rate\": {rate}, \"strategy\": \"{strategy}\"}}\n"
                ),
                1 => format!(
                    "{{\"t_ns\": {t}, \"key\": \"k{key}\", \"op\": \"check\", \"cost\": {cost}, \"capacity\": {capacity}, \"rate\": {rate}}}\n"
                ),
                2 => format!(
                    "{{\"t_ns\": {t}, \"key\": \"k{key}\", \"op\": \"reserve\", \"cost\": {cost}, \"max_wait_ns\": {wait}, \"capacity\": {capacity}, \"rate\": {rate}}}\n"
                ),
                3..=5 => format!(
                    "{{\"t_ns\": {t}, \"key\": \"k{key}\", \"op\": \"reserve\", \"cost\": {cost}, \"max_wait_ns\": {wait}}}\n"
                ),
                _ => format!(
                    "{{\"t_ns\": {t}, \"key\": \"k{key}\", \"op\": \"check\", \"cost\": {cost}}}\n"
                ),
            };
        }
        input
    })
}

/// The keyed limiter on one shard of at most 4 keys (the streams' keys
/// number 4): it sweeps, and so converts lagging keys, all the time.
fn reclaiming(bucket: AnyBucket) -> Memory<AnyBucket> {
    let clock = Arc::new(ManualClock::new(0));
    let limiter = KeyedLimiter::builder(bucket)
        .clock(Arc::clone(&clock))
        .max_keys(4)
        .shards(1)
        .build();
    Memory::from_parts(clock, limiter)
}

/// Replays `input`; checks what every outcome must satisfy and returns the
/// output and the outcome.
fn replay_checked<B: Backend>(backend: &mut B, input: &[u8]) -> (Vec<u8>, Result<(), ReplayError>) {
    let mut out = Vec::new();
    let mut summary = Summary::default();
    let result = replay(backend, input, &mut out, Some(&mut summary));
    let answered = out.iter().filter(|&&b| b == b'\n').count();
    match &result {
        Ok(()) => {}
        Err(
            ReplayError::Malformed { line, .. }
            | ReplayError::LineTooLong { line, .. }
            | ReplayError::TimeWentBackwards { line, .. }
            | ReplayError::Unsupported { line, .. },
        ) => assert_eq!(
            answered,
            line - 1,
            "the lines before the error are answered"
        ),
        Err(other) => panic!("no backend or I/O error can happen here: {other}"),
    }
    if let Err(e) = &result {
        let message = e.to_string();
        assert!(message.starts_with("line "), "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
    // Printing the summary never panics and never holds raw control bytes.
    let table = summary.to_string();
    assert!(!table.chars().any(|c| c.is_control() && c != '\n'));
    (out, result)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic(q in quota(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = replay_checked(&mut Model::new(TokenBucket::new(q)), &bytes);
        let _ = replay_checked(&mut Memory::new(LeakyBucket::new(q), 4), &bytes);
    }

    /// Lines that look like events, some valid, most subtly not.
    #[test]
    fn event_like_lines_never_panic(q in quota(), lines in prop::collection::vec(event_line(), 1..12)) {
        let input = lines.join("\n");
        for line in &lines {
            // A line that parses prints back to a line that parses alike.
            if let Ok(event) = parse_event(line) {
                let again = parse_event(&serde_json::to_string(&event).unwrap()).unwrap();
                prop_assert_eq!(again, event);
            }
        }
        let _ = replay_checked(&mut Model::new(TokenBucket::new(q)), input.as_bytes());
        let _ = replay_checked(&mut Memory::new(TokenBucket::new(q), usize::MAX), input.as_bytes());
    }

    /// Valid streams: the reference model and the keyed limiter (which
    /// reclaims keys as it goes) print the same lines.
    #[test]
    fn model_and_memory_answer_valid_streams_alike(q in quota(), input in valid_stream()) {
        let (model, result) = replay_checked(&mut Model::new(LeakyBucket::new(q)), input.as_bytes());
        prop_assert!(result.is_ok());
        let (memory, result) = replay_checked(&mut Memory::new(LeakyBucket::new(q), usize::MAX), input.as_bytes());
        prop_assert!(result.is_ok());
        prop_assert_eq!(String::from_utf8(model).unwrap(), String::from_utf8(memory).unwrap());
    }

    /// Streams that change quotas: the model (every key converted at the
    /// change) and the keyed limiter (converted lazily, sweeping all the
    /// while) print the same lines.
    #[test]
    fn model_and_memory_answer_quota_changes_alike(
        token in any::<bool>(),
        (capacity, rate) in (1u64..=6, 0..RATES.len()),
        input in quota_change_stream(),
    ) {
        let quota = Quota::new(capacity, RATES[rate].parse().unwrap()).unwrap();
        let bucket = if token {
            AnyBucket::TokenBucket(TokenBucket::new(quota))
        } else {
            AnyBucket::LeakyBucket(LeakyBucket::new(quota))
        };
        let (model, result) = replay_checked(&mut Model::new(bucket), input.as_bytes());
        prop_assert!(result.is_ok(), "{:?}", result);
        let (memory, result) = replay_checked(&mut reclaiming(bucket), input.as_bytes());
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert_eq!(String::from_utf8(model).unwrap(), String::from_utf8(memory).unwrap());
    }

    /// Keys with any characters make exactly one row each: no key can start
    /// a line of its own.
    #[test]
    fn one_summary_row_per_key(keys in prop::collection::btree_set(any::<String>(), 0..20)) {
        let mut summary = Summary::default();
        for (i, key) in keys.iter().enumerate() {
            summary.record(key, i % 2 == 0);
        }
        let table = summary.to_string();
        // A header, one row per key, a rule and the totals.
        prop_assert_eq!(table.lines().count(), keys.len() + 3, "{}", table);
        prop_assert_eq!(summary.key_count(), keys.len());
    }
}

/// A line one byte over the cap is refused, naming the line, and a line at
/// the cap is read.
#[test]
fn the_line_cap_is_exact() {
    let q = Quota::new(2, Rate::per_second(1)).unwrap();
    let head = "{\"t_ns\": 1, \"key\": \"";
    let tail = "\", \"op\": \"check\"}";
    let key = "k".repeat(MAX_LINE_BYTES - head.len() - tail.len());
    let at_cap = format!("{head}{key}{tail}\n");
    assert_eq!(at_cap.len(), MAX_LINE_BYTES + 1);
    let (out, result) = replay_checked(&mut Model::new(TokenBucket::new(q)), at_cap.as_bytes());
    result.unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    let over = format!("{head}k{key}{tail}\n");
    let (_, result) = replay_checked(&mut Model::new(TokenBucket::new(q)), over.as_bytes());
    assert!(matches!(
        result,
        Err(ReplayError::LineTooLong { line: 1, .. })
    ));
}
