//! `cargo xtask python` and `cargo xtask python-bench`: the Python package
//! (`crates/ratelimit-python`) built and installed the way a user installs
//! it (`pip install ./crates/ratelimit-python`), into a virtual environment
//! of its own under `target/python-venv`, then its pytest suite or its
//! benchmark.
//!
//! A machine without `python3` fails the job (it is not skipped); the
//! tools installed into the environment are pinned here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cmd::{Step, root};

/// The tools of the environment, pinned: the build backend, the test
/// runner, and redis-py (the client the Redis classes take).
const TOOLS: [&str; 3] = ["maturin==1.16.0", "pytest==9.2.0", "redis==8.1.0"];

/// The virtual environment, relative to the workspace root.
const VENV: &str = "target/python-venv";

const BENCH_USAGE: &str = "usage: cargo xtask python-bench [--quick]";

/// The environment's interpreter (made, with the tools, if missing).
fn venv() -> Result<PathBuf, String> {
    let python = root().join(VENV).join("bin").join("python");
    if !python.exists() {
        Step::new("python3", &["-m", "venv", VENV])
            .run()
            .map_err(|e| {
                format!(
                    "{e}\n    Python 3.9 or later with its venv module is required \
                 (install with: apt-get install -y python3 python3-venv)"
                )
            })?;
    }
    let python_s = path_str(&python)?;
    // Quick when they are installed already; pins win over what is there.
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend(TOOLS);
    Step::new(&python_s, &args).run()?;
    Ok(python)
}

fn path_str(path: &Path) -> Result<String, String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}

/// `pip install ./crates/ratelimit-python`: a release build of the wheel
/// by maturin, installed in the environment.
fn install(python: &Path) -> Result<(), String> {
    let python_s = path_str(python)?;
    let bin = python.parent().ok_or("the venv has no bin directory")?;
    let path = match std::env::var_os("PATH") {
        Some(p) => format!("{}:{}", bin.display(), p.to_string_lossy()),
        None => bin.display().to_string(),
    };
    let started = Instant::now();
    // No build isolation: the pinned maturin of the environment builds it
    // (pip would otherwise fetch the newest one for each build).
    Step::new(
        &python_s,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--force-reinstall",
            "--no-deps",
            "./crates/ratelimit-python",
        ],
    )
    .env("PATH", path)
    .run()?;
    eprintln!(
        "xtask python: wheel built and installed in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

/// The CI job: lint the crate with its `tls` feature (the workspace lint
/// leaves it off), build the Rust peer of the shared-limit test, install
/// the package, run pytest.
pub(crate) fn test() -> Result<(), String> {
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-python",
        "--all-targets",
        "--features",
        "tls",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    Step::cargo(&[
        "build",
        "-p",
        "ratelimit-python",
        "--example",
        "rust_peer",
        "--locked",
    ])
    .run()?;
    let python = venv()?;
    install(&python)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let peer = root().join(target).join("debug/examples/rust_peer");
    Step::new(
        &path_str(&python)?,
        &[
            "-m",
            "pytest",
            "crates/ratelimit-python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
    )
    .env("RATE_LIMITER_RUST_PEER", path_str(&peer)?)
    .run()?;
    // The benchmark script must keep running; its timings never gate.
    Step::new(
        &path_str(&python)?,
        &["crates/ratelimit-python/bench/bench.py", "--quick"],
    )
    .run()
}

/// `cargo xtask python-bench [--quick]`: `allow_request` per second from
/// Python, ours against a pure-Python token bucket and redis-py running an
/// equivalent Lua script, in one process.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("{BENCH_USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{BENCH_USAGE}")),
        }
    }
    let python = venv()?;
    install(&python)?;
    let mut bench_args = vec!["crates/ratelimit-python/bench/bench.py"];
    if quick {
        bench_args.push("--quick");
    }
    Step::new(&path_str(&python)?, &bench_args).run()
}
