//! The project's CI definition and benchmark driver, in plain Rust.
//!
//! `cargo xtask ci` runs every check a submission must pass;
//! `cargo xtask bench` runs the benchmarks and prints the comparison table.
//! Each subcommand maps to one CI job; every failing step prints the
//! command that reproduces it.

mod bench;
mod ci;
mod cmd;
mod python;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  ci              every check, in order: fmt, clippy, test, loom, no-std, docs, python, bench --quick
  fmt             cargo fmt --check
  clippy          clippy on all targets, warnings denied
  test            the workspace tests and doctests, and the core without std
  loom            the loom model-checking tests (release, own target dir)
  no-std          the core built for thumbv7em, thumbv6m and wasm32 without std
  docs            cargo doc with warnings denied
  bench [--quick] the benchmarks and the PERFORMANCE COMPARISON table
  python          the Python package: pip install into target/python-venv, then pytest
  python-bench    allow_request/s from Python: ours, pure Python, redis-py's EVALSHA
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "ci" => ci::all(),
        "fmt" => ci::fmt(),
        "clippy" => ci::clippy(),
        "test" => ci::test(),
        "loom" => ci::loom(),
        "no-std" => ci::no_std(),
        "docs" => ci::docs(),
        "bench" => bench::run(rest),
        "python" => python::test(),
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
