//! The PERFORMANCE COMPARISON: `cargo xtask bench` builds and runs this.
//!
//! ```text
//! compare [--quick] [--out DIR]      measure, print the table, write DIR/compare.{json,txt}
//! compare --only TEXT [--no-memory]  only the shapes whose id contains TEXT (profiling)
//! compare --rss-child IMPL KEYS      (internal) one bytes-per-key measurement
//! ```
//!
//! `DIR` defaults to `bench/` in the target directory holding this binary.

use std::path::PathBuf;
use std::process::ExitCode;

use ratelimit_bench::{Config, rss};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, name, keys] = args.as_slice()
        && flag == "--rss-child"
    {
        let keys = keys.parse().map_err(|e| format!("--rss-child KEYS: {e}"))?;
        println!("{}", rss::child(name, keys)?);
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut quick = false;
    let mut only = None;
    let mut memory = true;
    let mut out: Option<PathBuf> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(rest.next().ok_or("--only needs a shape id")?.clone()),
            "--no-memory" => memory = false,
            "--out" => out = Some(rest.next().ok_or("--out needs a directory")?.into()),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (usage: compare [--quick] [--only TEXT] [--no-memory] [--out DIR])"
                ));
            }
        }
    }
    // target/<profile>/compare -> target/bench
    let out = match out {
        Some(dir) => dir,
        None => exe
            .parent()
            .and_then(|profile| profile.parent())
            .ok_or("cannot place the output: pass --out DIR")?
            .join("bench"),
    };
    let mut config = Config::new(quick);
    config.only = only;
    if !memory {
        config.memory_keys = 0;
    }
    let report = ratelimit_bench::run(&config, &exe, |line| eprintln!("compare: {line}"));
    let table = report.table();
    print!("{table}");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
    for (name, text) in [("compare.json", json + "\n"), ("compare.txt", table)] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("compare: wrote {}", path.display());
    }
    Ok(())
}
