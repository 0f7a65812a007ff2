//! Decision traces as text tables, snapshotted for a person to review, and
//! the error messages users see.

use core::fmt::Write;
use core::time::Duration;

use ratelimit_core::{
    AlgorithmKind, AnyAlgorithm, ConfigError, FixedWindow, InsufficientCapacity, LeakyBucket,
    Quota, Rate, Shaping, SlidingWindow, Strategy, TokenBucket,
};

enum Op {
    Check(u64),
    Reserve(u64, Option<u64>),
}

/// Runs `ops` at the given milliseconds and renders one row per decision.
fn trace(a: &impl Shaping, ops: &[(u64, Op)]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{:>7}  {:<14}  {:<7}  {:>9}  {:>11}  {:>11}  {:>9}",
        "t_ms", "op", "allowed", "remaining", "wait_ms", "retry_ms", "reset_ms"
    )
    .unwrap();
    let ms = |d: Duration| format!("{:.3}", d.as_nanos() as f64 / 1e6);
    let mut tat = 0;
    for (t_ms, op) in ops {
        let now = t_ms * 1_000_000;
        let row = match *op {
            Op::Check(cost) => match a.check(tat, now, cost) {
                Ok(s) => {
                    tat = s.next.unwrap_or(tat);
                    let d = s.decision;
                    (
                        format!("check {cost}"),
                        d.allowed.to_string(),
                        d.remaining.to_string(),
                        "-".into(),
                        d.retry_after.map_or("-".into(), ms),
                        ms(d.reset_after),
                    )
                }
                Err(e) => (
                    format!("check {cost}"),
                    format!("error: {e}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            },
            Op::Reserve(cost, max_wait_ms) => {
                let s = a
                    .reserve(tat, now, cost, max_wait_ms.map(|w| w * 1_000_000))
                    .unwrap();
                tat = s.next.unwrap_or(tat);
                let r = s.decision;
                let label = match max_wait_ms {
                    Some(w) => format!("reserve {cost} ≤{w}"),
                    None => format!("reserve {cost}"),
                };
                (
                    label,
                    r.is_admitted().to_string(),
                    "-".into(),
                    r.wait().map_or("-".into(), ms),
                    r.retry_after().map_or("-".into(), ms),
                    ms(r.reset_after()),
                )
            }
        };
        let line = format!(
            "{t_ms:>7}  {:<14}  {:<7}  {:>9}  {:>11}  {:>11}  {:>9}",
            row.0, row.1, row.2, row.3, row.4, row.5
        );
        writeln!(out, "{}", line.trim_end()).unwrap();
    }
    out
}

fn quota() -> Quota {
    // 3 units, 4 per second: T = 250 ms, τ = 750 ms.
    Quota::new(3, Rate::per_second(4)).unwrap()
}

fn traffic() -> Vec<(u64, Op)> {
    use Op::{Check, Reserve};
    vec![
        (1000, Check(1)),
        (1000, Check(2)),
        (1000, Check(1)),
        (1100, Check(0)),
        (1250, Check(1)),
        (1250, Check(4)),
        (2000, Check(3)),
        (3000, Reserve(1, None)),
        (3000, Reserve(1, None)),
        (3000, Reserve(1, None)),
        (3000, Reserve(1, None)),
        (3000, Reserve(1, Some(100))),
        (3000, Check(0)),
        (3600, Reserve(2, Some(500))),
    ]
}

#[test]
fn token_bucket_trace() {
    insta::assert_snapshot!(trace(&TokenBucket::new(quota()), &traffic()));
}

#[test]
fn leaky_bucket_trace() {
    insta::assert_snapshot!(trace(&LeakyBucket::new(quota()), &traffic()));
}

#[test]
fn error_messages() {
    let mut out = String::new();
    let rates: [(&str, Rate); 7] = [
        ("per_second(0)", Rate::per_second(0)),
        ("f64 NaN", Rate::from_per_second_f64(f64::NAN)),
        ("f64 -1", Rate::from_per_second_f64(-1.0)),
        ("f64 inf", Rate::from_per_second_f64(f64::INFINITY)),
        ("2e9 per second", Rate::per_second(2_000_000_000)),
        (
            "one per 1000 years",
            Rate::new(1, Duration::from_secs(1000 * 366 * 86_400)),
        ),
        ("\"fast\"", "fast".parse().unwrap_or(Rate::per_second(0))),
    ];
    for (label, rate) in rates {
        writeln!(out, "{label}: {}", Quota::new(1, rate).unwrap_err()).unwrap();
    }
    writeln!(
        out,
        "\"fast\" parsed: {}",
        "fast".parse::<Rate>().unwrap_err()
    )
    .unwrap();
    writeln!(
        out,
        "capacity 0: {}",
        Quota::new(0, Rate::per_second(1)).unwrap_err()
    )
    .unwrap();
    writeln!(
        out,
        "capacity 2^63, 1/s: {}",
        Quota::new(1 << 63, Rate::per_second(1)).unwrap_err()
    )
    .unwrap();
    writeln!(
        out,
        "{}",
        InsufficientCapacity {
            cost: 11,
            capacity: 10
        }
    )
    .unwrap();
    let windows: [(&str, ConfigError); 5] = [
        (
            "fixed window, limit 0",
            FixedWindow::per_minute(0).unwrap_err(),
        ),
        (
            "fixed window, 0 s",
            FixedWindow::new(5, Duration::ZERO).unwrap_err(),
        ),
        (
            "sliding window, 1000 years",
            SlidingWindow::new(5, Duration::from_secs(1000 * 366 * 86_400)).unwrap_err(),
        ),
        (
            "sliding window, 2^32 per minute",
            SlidingWindow::per_minute(1 << 32).unwrap_err(),
        ),
        (
            "token bucket with a window",
            AnyAlgorithm::with_window(AlgorithmKind::TokenBucket, 5, Duration::from_secs(1))
                .unwrap_err(),
        ),
    ];
    for (label, error) in windows {
        writeln!(out, "{label}: {error}").unwrap();
    }
    writeln!(
        out,
        "fixed window with a rate: {}",
        AnyAlgorithm::with_rate(AlgorithmKind::FixedWindow, 5, Rate::per_second(1)).unwrap_err()
    )
    .unwrap();
    writeln!(
        out,
        "\"token_bucket\": {}",
        "token_bucket".parse::<AlgorithmKind>().unwrap_err()
    )
    .unwrap();
    writeln!(out, "\"keep\": {}", "keep".parse::<Strategy>().unwrap_err()).unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn every_config_error_is_reachable() {
    let cases = [
        (
            Quota::new(0, Rate::per_second(1)),
            ConfigError::ZeroCapacity,
        ),
        (
            Quota::new(1, Rate::from_per_second_f64(0.0)),
            ConfigError::InvalidRate,
        ),
        (
            Quota::new(1, Rate::per_second(1_000_000_001)),
            ConfigError::RateTooHigh,
        ),
        (
            Quota::new(1, Rate::from_per_second_f64(1e-12)),
            ConfigError::RateTooLow,
        ),
        (
            Quota::new(u64::MAX / 2, Rate::per_second(1)),
            ConfigError::ToleranceOverflow,
        ),
        (
            Quota::new(1, "1/s".parse().unwrap_or(Rate::from_per_second_f64(-0.0))),
            ConfigError::InvalidRate,
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(want));
    }
    assert_eq!("1/s".parse::<Rate>(), Err(ConfigError::RateSyntax));
}
