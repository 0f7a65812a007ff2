//! The CI jobs, one function each; `all` runs them in order and stops at
//! the first failure.
//!
//! `--repeat N` runs the test job N times in a row (built once), stopping
//! at the first failing run: a flaky test shows before it lands. The tests
//! are deterministic by design (manual clocks, fixed hasher seeds); the
//! property tests' seed is fixed too ([`PROPTEST_SEED`]) unless
//! `PROPTEST_RNG_SEED` is set, so that a run can be reproduced exactly.

use std::time::Instant;

use crate::bench;
use crate::cmd::Step;
use crate::python;
use crate::tidy;

/// proptest's seed in CI runs, unless `PROPTEST_RNG_SEED` is set: property
/// tests explore the same cases every run, so that a failure is a
/// reproducible bug and never a matter of luck. Set `PROPTEST_RNG_SEED`
/// to explore other cases.
const PROPTEST_SEED: &str = "20260101";

/// The targets the core must build for without std: an FPU Cortex-M4, a
/// Cortex-M0 without 64-bit atomics, and WASM.
const NO_STD_TARGETS: [&str; 3] = [
    "thumbv7em-none-eabihf",
    "thumbv6m-none-eabi",
    "wasm32-unknown-unknown",
];

/// One CI job.
type Job = dyn Fn() -> Result<(), String>;

/// Every CI job, in order, with the tests run `repeat` times.
pub(crate) fn all(repeat: usize) -> Result<(), String> {
    let test_repeated = move || test_runs(repeat);
    let jobs: [(&str, &Job); 12] = [
        ("tidy", &tidy::run),
        ("fmt", &fmt),
        ("clippy", &clippy),
        ("test", &test_repeated),
        ("loom", &loom),
        ("no-std", &no_std),
        ("embedded", &|| crate::embedded::run(&[])),
        ("wasm", &|| crate::wasm::run(&[])),
        ("docs", &docs),
        ("python", &python::test),
        ("dashboard", &crate::dashboard::run),
        ("bench --quick", &|| bench::run(&["--quick".to_owned()])),
    ];
    let started = Instant::now();
    let mut timings = Vec::new();
    for (name, job) in jobs {
        eprintln!("\n==== xtask {name} ====");
        let t = Instant::now();
        job().map_err(|e| format!("job `{name}` failed: {e}"))?;
        timings.push((name, t.elapsed()));
    }
    eprintln!("\n==== CI passed in {:.0?} ====", started.elapsed());
    for (name, took) in timings {
        eprintln!("  {name:<14} {took:>8.1?}");
    }
    Ok(())
}

pub(crate) fn fmt() -> Result<(), String> {
    Step::cargo(&["fmt", "--all", "--", "--check"])
        .run()
        .map_err(|e| format!("{e}\n    (fix with: cargo fmt --all)"))
}

pub(crate) fn clippy() -> Result<(), String> {
    Step::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-tower",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-memory",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
    .run()
}

/// The test job `repeat` times (at least once), stopping at the first
/// failure.
pub(crate) fn test_runs(repeat: usize) -> Result<(), String> {
    let repeat = repeat.max(1);
    for run in 1..=repeat {
        if repeat > 1 {
            eprintln!("\n---- test run {run} of {repeat} ----");
        }
        let started = Instant::now();
        test().map_err(|e| format!("test run {run} of {repeat} failed: {e}"))?;
        if repeat > 1 {
            eprintln!(
                "---- test run {run} of {repeat} passed in {:.0?} ----",
                started.elapsed()
            );
        }
    }
    Ok(())
}

/// The environment of every test command: snapshots are reviewed by
/// people, so CI never writes or accepts them; proptest's seed is fixed.
fn test_step<'a>(args: &[&'a str]) -> Step<'a> {
    Step::cargo(args).env("INSTA_UPDATE", "no").env(
        "PROPTEST_RNG_SEED",
        std::env::var("PROPTEST_RNG_SEED").unwrap_or_else(|_| PROPTEST_SEED.to_owned()),
    )
}

pub(crate) fn test() -> Result<(), String> {
    require_redis_server()?;
    test_step(&["test", "--workspace", "--locked"]).run()?;
    // Features the workspace run leaves off: the layer's metrics and
    // tracing (and their tests).
    test_step(&[
        "test",
        "-p",
        "ratelimit-tower",
        "--all-features",
        "--locked",
    ])
    .run()?;
    // The memory limiters' async `acquire` (feature `tokio`) and its tests.
    Step::cargo(&[
        "test",
        "-p",
        "ratelimit-memory",
        "--all-features",
        "--locked",
    ])
    .run()?;
    // The core alone, without its std feature (`cargo build` leaves out the
    // dev-dependencies, so no feature unification can re-enable std).
    Step::cargo(&[
        "build",
        "-p",
        "ratelimit-core",
        "--no-default-features",
        "--locked",
    ])
    .run()
}

pub(crate) fn loom() -> Result<(), String> {
    Step::cargo(&[
        "test",
        "-p",
        "ratelimit-memory",
        "--release",
        "--locked",
        "--test",
        "loom",
        "--target-dir",
        "target/loom",
    ])
    .env("RUSTFLAGS", "--cfg ratelimit_loom")
    .env("LOOM_MAX_PREEMPTIONS", "3")
    .run()
}

pub(crate) fn no_std() -> Result<(), String> {
    let installed = Step::new("rustup", &["target", "list", "--installed"]).output()?;
    for target in NO_STD_TARGETS {
        if !installed.lines().any(|l| l.trim() == target) {
            Step::new("rustup", &["target", "add", target]).run()?;
        }
    }
    for target in NO_STD_TARGETS {
        Step::cargo(&[
            "build",
            "-p",
            "ratelimit-core",
            "--no-default-features",
            "--locked",
            "--target",
            target,
        ])
        .run()?;
    }
    Ok(())
}

pub(crate) fn docs() -> Result<(), String> {
    Step::cargo(&["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()
}

/// The Redis tests start their own servers: a machine without
/// `redis-server` fails CI instead of skipping them.
fn require_redis_server() -> Result<(), String> {
    Step::new("redis-server", &["--version"])
        .output()
        .map(|_| ())
        .map_err(|e| {
            format!("redis-server is required by the Redis tests: {e}\n    (install with: apt-get install -y redis-server)")
        })
}
