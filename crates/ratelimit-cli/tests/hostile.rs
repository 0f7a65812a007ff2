//! Hostile and broken input against `ratelimit replay` (issue 15): each
//! test reproduces an attack or a bad day that once crashed the command,
//! forged its output or lost the line number, and pins the fixed
//! behaviour.

mod common;

use common::{ratelimit, ratelimit_bytes, replay_args, text};

const OK: &str = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";

fn summary_args() -> Vec<&'static str> {
    let mut args = replay_args("token-bucket", "2", "1");
    args.push("--summary");
    args
}

/// A key of 65 536 bytes made `--summary` panic ("Formatting argument out
/// of range", exit 101): the key column is now capped and the key printed
/// whole.
#[test]
fn summary_with_a_64_kib_key() {
    let key = "k".repeat(65_536);
    let input = format!("{{\"t_ns\": 1, \"key\": \"{key}\", \"op\": \"check\"}}\n{OK}");
    let out = ratelimit(&summary_args(), &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stderr);
    let row = summary.lines().find(|l| l.starts_with("kk")).unwrap();
    assert_eq!(row, format!("{key}           1           0      0.0%"));
    // The other rows keep a column of at most 48 characters.
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with(&format!("a{}1", " ".repeat(58))))
    );
}

/// Keys with newlines, carriage returns, terminal escapes and
/// bidirectional overrides were printed raw: a key could forge rows or
/// rewrite the terminal. Every key is one row, escaped.
#[test]
fn summary_keys_are_escaped() {
    let keys = [
        r"a\nforged        100           0      0.0%",
        r"\u001b[2J\u001b[Hclear",
        r"cr\rover",
        r"abc\u202efed",
        r"c1 \u009b31m",
        "total",
    ];
    let input: String = keys
        .iter()
        .map(|k| format!("{{\"t_ns\": 1, \"key\": \"{k}\", \"op\": \"check\"}}\n"))
        .collect();
    let out = ratelimit(&summary_args(), &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stderr);
    assert!(!summary.chars().any(|c| c.is_control() && c != '\n'));
    let table = summary.split("\n\n").next().unwrap();
    insta::assert_snapshot!(table, @r"
    key                                            allowed      denied   denied%
    \u{1b}[2J\u{1b}[Hclear                               1           0      0.0%
    a\nforged        100           0      0.0%           1           0      0.0%
    abc\u{202e}fed                                       1           0      0.0%
    c1 \u{9b}31m                                         1           0      0.0%
    cr\rover                                             1           0      0.0%
    total                                                1           0      0.0%
    ----------------------------------------------------------------------------
    total                                                6           0      0.0%
    ");
}

/// Invalid UTF-8 was reported as an I/O error without a line number.
#[test]
fn invalid_utf8_names_its_line() {
    let input = [
        OK.as_bytes(),
        b"{\"t_ns\": 2, \"key\": \"\xc3\x28\", \"op\": \"check\"}\n",
    ]
    .concat();
    let out = ratelimit_bytes(&replay_args("token-bucket", "2", "1"), &input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    assert_eq!(
        text(&out.stderr),
        "error: line 2: malformed event: not valid UTF-8 (byte 21 of the line)\n"
    );
}

/// A blank line was reported with two contradictory line numbers (the
/// input's, and serde's "line 1 column 0").
#[test]
fn blank_line_has_one_line_number() {
    let out = ratelimit(
        &replay_args("token-bucket", "2", "1"),
        &format!("{OK}\n{OK}"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: line 2: malformed event: empty line; every line must be one JSON event\n"
    );
}

/// A line of any length was read whole (a 1 GB line took 980 MB): lines
/// are capped at 1 MiB, and the error names the line.
#[test]
fn overlong_line_is_refused() {
    let long = format!(
        "{{\"t_ns\": 2, \"key\": \"{}\", \"op\": \"check\"}}\n",
        "x".repeat(2 << 20)
    );
    let out = ratelimit(
        &replay_args("token-bucket", "2", "1"),
        &format!("{OK}{long}{OK}"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    assert_eq!(
        text(&out.stderr),
        "error: line 2: longer than the limit of 1048576 bytes (is the input JSON Lines?)\n"
    );
}

/// Input echoed in an error message (here an unknown `op`) cannot drive
/// the terminal.
#[test]
fn echoed_input_is_escaped() {
    let out = ratelimit(
        &replay_args("token-bucket", "2", "1"),
        "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"\\u001b]0;pwned\\u0007\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(!err.trim_end().chars().any(char::is_control), "{err:?}");
    assert!(
        err.contains(r"unknown variant `\u{1b}]0;pwned\u{7}`"),
        "{err}"
    );
}
