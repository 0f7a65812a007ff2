//! `cargo xtask bench [--quick]`: builds the comparison of
//! `crates/ratelimit-bench` in release, runs it, and lets it print the
//! PERFORMANCE COMPARISON table and write `compare.json` and `compare.txt`
//! under `bench/` in the target directory (`target/bench/` by default).
//!
//! `--quick` is CI's smoke run: the same shapes with short samples, done in
//! seconds. It fails only if something crashes; timings never gate.

use std::time::Instant;

use crate::cmd::Step;

const USAGE: &str = "usage: cargo xtask bench [--quick]";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    // Build first, so the measurement below is timed on its own.
    Step::cargo(&[
        "build",
        "--release",
        "-p",
        "ratelimit-bench",
        "--bin",
        "compare",
    ])
    .run()?;
    // The outage rows run the api_gateway example's own binary.
    Step::cargo(&[
        "build",
        "--release",
        "-p",
        "ratelimit-tower",
        "--features",
        "axum redis",
        "--example",
        "api_gateway",
    ])
    .run()?;
    let mut compare = vec![
        "run",
        "--quiet",
        "--release",
        "-p",
        "ratelimit-bench",
        "--bin",
        "compare",
        "--",
    ];
    if quick {
        compare.push("--quick");
    }
    let started = Instant::now();
    Step::cargo(&compare).run()?;
    eprintln!(
        "xtask bench: {} run took {:.1?}",
        if quick { "quick" } else { "full" },
        started.elapsed()
    );
    Ok(())
}
