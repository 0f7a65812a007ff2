//! The project's CI definition and benchmark driver, in plain Rust.
//!
//! `cargo xtask ci` runs every check a submission must pass;
//! `cargo xtask bench` runs the benchmarks and prints the comparison table.
//! Each subcommand maps to one CI job; every failing step prints the
//! command that reproduces it.

mod bench;
mod ci;
mod cmd;
mod dashboard;
mod embedded;
mod python;
mod tidy;
mod wasm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  ci [--repeat N]   every check, in order: tidy, fmt, clippy, test (N times), loom,
                    no-std, embedded, wasm, docs, python, dashboard, bench --quick
  tidy              house rules: a `//!` paragraph opening every .rs file, no pending
                    snapshots, Markdown links that resolve, every crate in the README's
                    layout, conformance copies identical to ../shared/conformance
  fmt               cargo fmt --check
  clippy            clippy on all targets, warnings denied
  test [--repeat N] the workspace tests and doctests, and the core without std
                    (N times in a row, stopping at the first failure: flakes show)
  loom              the loom model-checking tests (release, own target dir)
  no-std            the core built for thumbv7em, thumbv6m and wasm32 without std
  docs              cargo doc with warnings denied
  embedded [--plant-mismatch]
                    the conformance scenarios on QEMU (Cortex-M4, Cortex-M0) and one
                    check's code size
  wasm [--plant-mismatch]
                    the core as a WASM module under node: every scenario, the example,
                    the module's size
  dashboard         the dashboard crate (all features) and its browser test in headless
                    Chromium (chromium and chromedriver required)
  bench [--quick]   the benchmarks and the PERFORMANCE COMPARISON table
  python            the Python package: pip install into target/python-venv, then pytest
  python-bench [--quick]
                    allow_request/s from Python: ours, pure Python, redis-py's EVALSHA
";

/// `--repeat N` among `args` (default 1); any other argument is an error.
fn repeat(args: &[String]) -> Result<usize, String> {
    match args {
        [] => Ok(1),
        [flag, n] if flag == "--repeat" => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "--repeat needs a whole number of runs, at least 1, not {n:?}"
            )),
        },
        other => Err(format!("unexpected arguments {other:?}\n\n{USAGE}")),
    }
}

/// Rejects arguments for a command that takes none.
fn none(args: &[String]) -> Result<(), String> {
    match args {
        [] => Ok(()),
        other => Err(format!("unexpected arguments {other:?}\n\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "ci" => repeat(rest).and_then(ci::all),
        "tidy" => none(rest).and_then(|()| tidy::run()),
        "fmt" => none(rest).and_then(|()| ci::fmt()),
        "clippy" => none(rest).and_then(|()| ci::clippy()),
        "test" => repeat(rest).and_then(ci::test_runs),
        "loom" => none(rest).and_then(|()| ci::loom()),
        "no-std" => none(rest).and_then(|()| ci::no_std()),
        "docs" => none(rest).and_then(|()| ci::docs()),
        "embedded" => embedded::run(rest),
        "wasm" => wasm::run(rest),
        "bench" => bench::run(rest),
        "python" => none(rest).and_then(|()| python::test()),
        "dashboard" => none(rest).and_then(|()| dashboard::run()),
        "python-bench" => python::bench(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: {message}");
            ExitCode::FAILURE
        }
    }
}
