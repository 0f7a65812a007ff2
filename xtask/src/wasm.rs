//! `cargo xtask wasm [--plant-mismatch]`: `ratelimit-wasm` built for
//! `wasm32-unknown-unknown` (profile `wasm`: `opt-level = "s"`, LTO,
//! stripped), then under `node`:
//!
//! 1. `js/conformance.mjs`: every bucket and window conformance scenario
//!    through the module and its JavaScript wrapper, each answer compared
//!    with the expected one; a mismatch fails. It runs a second time with
//!    one expected answer corrupted, and must fail then.
//! 2. `js/test/`: the wrapper's errors and key table, and the edge-worker
//!    example, under node's test runner.
//! 3. The module's size, against the [`BUDGET`] of issue 14.
//!
//! `--plant-mismatch` corrupts one expected answer
//! (`RATELIMIT_PLANT_MISMATCH=1`) and succeeds only if the run fails.

use crate::cmd::{Step, root};
use crate::embedded::{ensure_targets, target_dir};

const USAGE: &str = "usage: cargo xtask wasm [--plant-mismatch]";

const TARGET: &str = "wasm32-unknown-unknown";

/// The conformance scenarios (read-only reference data), from the
/// workspace root; `examples/firmware/build.rs` names the same folder.
const CONFORMANCE_DIR: &str = "crates/ratelimit-replay/conformance";

/// The module's size goal, enforced: 20 KiB.
const BUDGET: u64 = 20 * 1024;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut plant = false;
    for arg in args {
        match arg.as_str() {
            "--plant-mismatch" => plant = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Step::new("node", &["--version"]).output().map_err(|e| {
        format!("node is required: {e}\n    (install with: apt-get install -y nodejs)")
    })?;
    ensure_targets(&[TARGET])?;
    // The wasm32-only code (the panic handler) is linted on its target.
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-wasm",
        "--locked",
        "--profile",
        "wasm",
        "--target",
        TARGET,
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    Step::cargo(&[
        "build",
        "-p",
        "ratelimit-wasm",
        "--locked",
        "--profile",
        "wasm",
        "--target",
        TARGET,
    ])
    .run()?;
    let module = target_dir()
        .join(TARGET)
        .join("wasm")
        .join("ratelimit_wasm.wasm");
    let module = module.display().to_string();
    let dir = root().join(CONFORMANCE_DIR).display().to_string();

    let mut conformance = Step::new(
        "node",
        &["crates/ratelimit-wasm/js/conformance.mjs", &module, &dir],
    );
    if plant {
        conformance = conformance.env("RATELIMIT_PLANT_MISMATCH", "1");
    }
    match (conformance.run(), plant) {
        (Ok(()), false) => {}
        (Err(e), false) => return Err(e),
        (Err(_), true) => {
            eprintln!("xtask wasm: the run failed on the planted mismatch, as it must");
            return Ok(());
        }
        (Ok(()), true) => return Err("the WASM run passed despite the planted mismatch".to_owned()),
    }
    // The runner must be able to fail: with one expected answer corrupted
    // it has to exit non-zero (quietly: its output is the planted report).
    if conformance
        .env("RATELIMIT_PLANT_MISMATCH", "1")
        .output()
        .is_ok()
    {
        return Err("the WASM run passed despite a planted mismatch".to_owned());
    }
    Step::new("node", &["--test", "crates/ratelimit-wasm/js/test/"])
        .env("RATELIMIT_WASM", module.clone())
        .run()?;

    let size = std::fs::metadata(&module)
        .map_err(|e| format!("{module}: {e}"))?
        .len();
    println!(
        "\nWASM module: {size} B ({:.1} KiB), budget {} KiB: {module}",
        size as f64 / 1024.0,
        BUDGET / 1024
    );
    if size > BUDGET {
        return Err(format!(
            "the WASM module is {size} B, over the {BUDGET} B budget"
        ));
    }
    Ok(())
}
