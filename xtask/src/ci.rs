//! The CI jobs, one function each; `all` runs them in order and stops at
//! the first failure.

use std::time::Instant;

use crate::bench;
use crate::cmd::Step;

/// The targets the core must build for without std: an FPU Cortex-M4, a
/// Cortex-M0 without 64-bit atomics, and WASM.
const NO_STD_TARGETS: [&str; 3] = [
    "thumbv7em-none-eabihf",
    "thumbv6m-none-eabi",
    "wasm32-unknown-unknown",
];

/// One CI job.
type Job = fn() -> Result<(), String>;

/// Every CI job, in order.
pub(crate) fn all() -> Result<(), String> {
    let jobs: [(&str, Job); 7] = [
        ("fmt", fmt),
        ("clippy", clippy),
        ("test", test),
        ("loom", loom),
        ("no-std", no_std),
        ("docs", docs),
        ("bench --quick", || bench::run(&["--quick".to_owned()])),
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

pub(crate) fn test() -> Result<(), String> {
    require_redis_server()?;
    // Snapshots are reviewed by people: CI never writes or accepts them.
    Step::cargo(&["test", "--workspace", "--locked"])
        .env("INSTA_UPDATE", "no")
        .run()?;
    // Features the workspace run leaves off: the layer's metrics and
    // tracing (and their tests).
    Step::cargo(&[
        "test",
        "-p",
        "ratelimit-tower",
        "--all-features",
        "--locked",
    ])
    .env("INSTA_UPDATE", "no")
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
