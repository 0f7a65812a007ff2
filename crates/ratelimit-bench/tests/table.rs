//! The table's layout, snapshotted for review: a person reads it, so a
//! change to it must be seen. The figures are made up; no timing is taken.

use core::time::Duration;

use ratelimit_bench::machine::Machine;
use ratelimit_bench::measure::Settings;
use ratelimit_bench::report::{MemoryRow, Report, Row, Target};

fn row(shape: &str, implementation: &str, threads: usize, mean_ns: f64, vs: Option<f64>) -> Row {
    Row {
        shape: shape.to_owned(),
        implementation: implementation.to_owned(),
        threads,
        keys: 1,
        mean_ns,
        p99_ns: mean_ns * 2.0,
        ops_per_s: threads as f64 * 1e9 / mean_ns,
        batch: 2048,
        vs_governor: vs,
        note: None,
    }
}

fn report() -> Report {
    let mut missing = row("memory/reserve_one_key", "governor", 1, f64::NAN, None);
    missing.note = Some("governor has no synchronous reserve (until_ready is async)".to_owned());
    Report {
        machine: Machine {
            cpu: "AMD EPYC".to_owned(),
            cores: 2,
            date: "2026-01-01 00:00 UTC".to_owned(),
        },
        settings: Settings {
            rounds: 7,
            sample: Duration::from_millis(300),
            warmup: Duration::from_millis(30),
            batch: Duration::from_micros(20),
        },
        quick: false,
        rows: vec![
            row("memory/check_one_key", "ratelimit", 1, 9.8, Some(0.75)),
            row("memory/check_one_key", "governor", 1, 13.07, None),
            row(
                "memory/check_one_key",
                "naive Mutex<HashMap>",
                1,
                104.2,
                Some(7.97),
            ),
            row("memory/one_key_2_threads", "ratelimit", 2, 40.0, Some(0.8)),
            row("memory/one_key_2_threads", "governor", 2, 50.0, None),
            row("memory/reserve_one_key", "ratelimit", 1, 11.0, None),
            missing,
            row("floor/clock_read", "Instant::now", 1, 32.9, None),
        ],
        memory: vec![
            MemoryRow {
                implementation: "ratelimit".to_owned(),
                keys: 1_000_000,
                bytes_per_key: Ok(31.5),
                detail: Some("1835008 table slots in 64 shards".to_owned()),
            },
            MemoryRow {
                implementation: "governor".to_owned(),
                keys: 1_000_000,
                bytes_per_key: Err("no /proc".to_owned()),
                detail: None,
            },
        ],
        memory_method: "bytes per key at 1000000 u64 keys: RSS growth".to_owned(),
        targets: vec![
            Target {
                name: "single key, allowed (memory/check_one_key), time vs governor".to_owned(),
                value: Some(0.75),
                bound: "<= 1.00".to_owned(),
                met: Some(true),
            },
            Target {
                name: "bytes per key at 1 000 000 u64 keys".to_owned(),
                value: None,
                bound: "<= 32".to_owned(),
                met: None,
            },
        ],
        shapes: vec![(
            "memory/check_one_key".to_owned(),
            "one key, allowed path".to_owned(),
        )],
        skipped: vec![(
            "redis rows".to_owned(),
            "redis-server not on PATH".to_owned(),
        )],
        seconds: 70.4,
    }
}

#[test]
fn table_layout() {
    insta::assert_snapshot!(report().table());
}

#[test]
fn json_has_the_table_figures() {
    let json = report().json();
    assert_eq!(json["machine"]["cores"], 2);
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["shape"], "memory/check_one_key");
    assert_eq!(rows[0]["vs_governor"], 0.75);
    // A missing figure is null, never NaN (which JSON cannot carry).
    assert!(rows[6]["mean_ns"].is_null());
    assert_eq!(json["memory"]["rows"][0]["bytes_per_key"], 31.5);
    assert!(json["memory"]["rows"][1]["bytes_per_key"].is_null());
    assert_eq!(json["skipped"][0]["reason"], "redis-server not on PATH");
}
