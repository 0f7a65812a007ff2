//! Running the `ratelimit` binary as a user does, for the CLI's tests.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `ratelimit args...` with `stdin` as input.
pub fn ratelimit(args: &[&str], stdin: &str) -> Output {
    ratelimit_bytes(args, stdin.as_bytes())
}

/// Runs `ratelimit args...` with `stdin` as input bytes. The input is
/// written from another thread, so that a child that stops reading early
/// (an error on line 1 of a large input) cannot block the test, and a
/// closed pipe is not an error here.
pub fn ratelimit_bytes(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ratelimit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Bytes a child printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `replay` with the given limit, in memory.
pub fn replay_args<'a>(algorithm: &'a str, capacity: &'a str, rate: &'a str) -> Vec<&'a str> {
    vec![
        "replay",
        "--algorithm",
        algorithm,
        "--capacity",
        capacity,
        "--rate",
        rate,
    ]
}

/// `replay` of `scenario`'s algorithm, capacity and rate or window, in
/// memory, with `extra` arguments after them.
pub fn scenario_args(scenario: &ratelimit_replay::Scenario, extra: &[&str]) -> Vec<String> {
    let [limit_flag, limit] = scenario.limit_args();
    let mut args = vec![
        "replay".to_owned(),
        "--algorithm".to_owned(),
        scenario.algorithm.clone(),
        "--capacity".to_owned(),
        scenario.capacity.to_string(),
        limit_flag,
        limit,
    ];
    args.extend(extra.iter().map(|&a| a.to_owned()));
    args
}

/// Runs every scenario of `files` through the binary with `extra`
/// arguments (the memory backend when none), comparing each output line
/// with the expected answer field for field: panics with every mismatch,
/// or when the number of scenarios run is not `count`.
pub fn every_scenario_through_the_binary(files: &[&str], count: usize, extra: &[&str]) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for &file in files {
        for s in ratelimit_replay::load_scenarios(file).unwrap() {
            let args = scenario_args(&s, extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = ratelimit(&args, &s.input());
            checked += 1;
            if !out.status.success() {
                failures.push(format!("{file} scenario {}: {}", s.id, text(&out.stderr)));
                continue;
            }
            let lines: Vec<serde_json::Value> = text(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines != s.expected {
                let at = lines
                    .iter()
                    .zip(&s.expected)
                    .position(|(got, want)| got != want)
                    .unwrap_or(lines.len().min(s.expected.len()));
                failures.push(format!(
                    "{file} scenario {} event {at}: expected {:?}, got {:?}",
                    s.id,
                    s.expected.get(at),
                    lines.get(at)
                ));
            }
        }
    }
    assert_eq!(checked, count, "scenarios in {files:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
