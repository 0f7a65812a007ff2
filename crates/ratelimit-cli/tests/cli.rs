//! The `ratelimit` binary, run as a user runs it.

mod common;

use common::{ratelimit, text};
use ratelimit_replay::load_scenarios;

#[test]
fn replay_passes_every_conformance_scenario() {
    let mut checked = 0;
    for file in ["scenarios-ns.jsonl.gz", "scenarios-us.jsonl.gz"] {
        for s in load_scenarios(file).unwrap() {
            let input: String = s
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let rate = s.rate.as_ref().expect("a bucket scenario").to_string();
            let capacity = s.capacity.to_string();
            let out = ratelimit(
                &[
                    "replay",
                    "--algorithm",
                    &s.algorithm,
                    "--capacity",
                    &capacity,
                    "--rate",
                    &rate,
                ],
                &input,
            );
            assert!(
                out.status.success(),
                "scenario {}: {}",
                s.id,
                text(&out.stderr)
            );
            let lines: Vec<serde_json::Value> = text(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines, s.expected, "{file} scenario {}", s.id);
            checked += 1;
        }
    }
    assert_eq!(checked, 180);
}

#[test]
fn output_has_the_documented_field_order() {
    let input = concat!(
        r#"{"t_ns": 1000000000, "key": "user1", "op": "check", "cost": 1}"#,
        "\n",
        r#"{"t_ns": 1000000500, "key": "user1", "op": "reserve", "cost": 2, "max_wait_ns": 5000000}"#,
        "\n",
        r#"{"t_ns": 1000000500, "key": "user1", "op": "check", "cost": 11}"#,
        "\n",
    );
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "10",
            "--rate",
            "2",
        ],
        input,
    );
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout), @r#"
    {"allowed": true, "remaining": 9, "retry_after_ns": null, "reset_after_ns": 500000000}
    {"allowed": true, "wait_ns": 0}
    {"allowed": false, "remaining": 7, "retry_after_ns": null, "reset_after_ns": 1499999500}
    "#);
}

#[test]
fn malformed_line_names_its_number_and_fails() {
    let input = concat!(
        r#"{"t_ns": 1, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 2, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 3, "key": "a", "op": "chek"}"#,
        "\n",
        r#"{"t_ns": 4, "key": "a", "op": "check"}"#,
        "\n",
    );
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "leaky-bucket",
            "--capacity",
            "5",
            "--rate",
            "1",
        ],
        input,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "the lines before the error are answered"
    );
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: line 3: malformed event: unknown variant `chek`"),
        "{err}"
    );
}

#[test]
fn time_going_backwards_is_an_input_error() {
    let input = "{\"t_ns\": 9, \"key\": \"a\", \"op\": \"check\"}\n{\"t_ns\": 8, \"key\": \"a\", \"op\": \"check\"}\n";
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "5",
            "--rate",
            "1",
        ],
        input,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line 2: t_ns 8 is before the previous event's 9"));
}

#[test]
fn bad_options_get_clear_errors() {
    let cases: [(&[&str], &str); 9] = [
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "0",
                "--rate",
                "1",
            ],
            "invalid limit: capacity must be at least 1",
        ),
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "-3",
                "--rate",
                "1",
            ],
            "--capacity must be a whole number",
        ),
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "3",
                "--rate",
                "0",
            ],
            "rate must be a finite number greater than zero",
        ),
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "3",
                "--rate",
                "NaN",
            ],
            "--rate \"NaN\": rate must be a decimal number",
        ),
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "3",
                "--rate",
                "2e9",
            ],
            "rate is above one unit per nanosecond",
        ),
        (
            &["--algorithm", "gcra", "--capacity", "3", "--rate", "1"],
            "--algorithm must be token-bucket or leaky-bucket",
        ),
        (
            &["--capacity", "3", "--rate", "1"],
            "--algorithm is required",
        ),
        (
            &["--algorithm", "token-bucket", "--capacity", "3", "--rate"],
            "--rate needs a value",
        ),
        (
            &[
                "--algorithm",
                "token-bucket",
                "--capacity",
                "3",
                "--rate",
                "1",
                "--backend",
                "redis",
            ],
            "--backend redis needs --redis-url",
        ),
    ];
    for (args, message) in cases {
        let mut argv = vec!["replay"];
        argv.extend_from_slice(args);
        let out = ratelimit(&argv, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn summary_counts_per_key() {
    // alice: 20 checks 100 ms apart against 3 tokens refilled every 500 ms:
    // the burst of 3, then one at 0.5 s, 1.0 s and 1.5 s. bob: 5 checks 400 ms apart.
    let mut input = String::new();
    for i in 0..20u64 {
        for key in ["alice", "bob"] {
            if key == "bob" && i % 4 != 0 {
                continue;
            }
            input += &format!(
                "{{\"t_ns\": {}, \"key\": \"{key}\", \"op\": \"check\"}}\n",
                i * 100_000_000
            );
        }
    }
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "2",
            "--summary",
        ],
        &input,
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 25);
    // The histogram spans 0 to 1.9 s: 10 buckets of 200 ms. alice is
    // denied at 0.3, 0.4, then every 100 ms but 1.0 and 1.5 s (and 0.5 s,
    // allowed); bob never.
    insta::assert_snapshot!(text(&out.stderr), @r"
    key       allowed      denied   denied%
    alice           6          14     70.0%
    bob             5           0      0.0%
    total          11          14     56.0%

    denials over time (200 ms buckets from the first event; # = 1 denial)
       +0 ms  0
     +200 ms  1  #
     +400 ms  1  #
     +600 ms  2  ##
     +800 ms  2  ##
    +1000 ms  1  #
    +1200 ms  2  ##
    +1400 ms  1  #
    +1600 ms  2  ##
    +1800 ms  2  ##
    ");
}
