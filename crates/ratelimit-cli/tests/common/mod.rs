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
