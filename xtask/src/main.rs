//! The project's CI definition and benchmark driver, in plain Rust.
//!
//! `cargo xtask ci` runs every check a submission must pass;
//! `cargo xtask bench` runs the benchmarks and prints the comparison table.
//! Each subcommand maps to one CI job; every failing step prints the
//! command that reproduces it.

mod bench;
mod ci;
mod cmd;
mod embedded;
mod wasm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  ci              every check, in order: fmt, clippy, test, loom, no-std, embedded, wasm, docs,
                  bench --quick
  fmt             cargo fmt --check
  clippy          clippy on all targets, warnings denied
  test            the workspace tests and doctests, and the core without std
  loom            the loom model-checking tests (release, own target dir)
  no-std          the core built for thumbv7em, thumbv6m and wasm32 without std
  docs            cargo doc with warnings denied
  embedded [--plant-mismatch]
                  the conformance scenarios on QEMU (Cortex-M4, Cortex-M0) and one check's code size
  wasm [--plant-mismatch]
                  the core as a WASM module under node: every scenario, the example, the module's size
  bench [--quick] the benchmarks and the PERFORMANCE COMPARISON table
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
        "embedded" => embedded::run(rest),
        "wasm" => wasm::run(rest),
        "bench" => bench::run(rest),
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
