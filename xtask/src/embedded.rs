//! `cargo xtask embedded [--plant-mismatch]`: the conformance scenarios on
//! emulated microcontrollers, and the code size of one token-bucket check.
//!
//! 1. `examples/firmware` built for `thumbv7em-none-eabihf` (profile
//!    `embedded`: `opt-level = "s"`, LTO) with every bucket and window
//!    scenario compiled in, run on QEMU's `mps2-an386` (Cortex-M4F).
//! 2. The same for `thumbv6m-none-eabi` (no 64-bit atomics) on QEMU's
//!    `microbit` (Cortex-M0, 256 KiB of flash): the scenarios do not fit in
//!    one image, so they run in [`M0_PARTS`] images of a part each.
//! 3. The size of the probes of `examples/firmware/src/probe.rs` in both
//!    images, with the functions they call, from `nm` and `objdump`
//!    (Debian's `binutils-arm-none-eabi`); a token-bucket check over
//!    [`CHECK_BUDGET`] on thumbv7em fails.
//!
//! Each image reports over semihosting and exits non-zero on any mismatch;
//! a run that does not finish within [`QEMU_TIMEOUT`] fails too.
//! `--plant-mismatch` builds the images with one expected answer corrupted
//! (`RATELIMIT_PLANT_MISMATCH=1`) and succeeds only if every run fails.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use crate::cmd::{Step, root};

const USAGE: &str = "usage: cargo xtask embedded [--plant-mismatch]";

/// A microcontroller target, the QEMU machine that runs it, and in how many
/// images the scenarios are split to fit its flash.
struct Machine {
    target: &'static str,
    machine: &'static str,
    cpu: &'static str,
    parts: u8,
}

/// The 640 KB of scenarios and ~38 KB of code in 256 KiB of flash: four
/// parts of ~160 KB each.
const M0_PARTS: u8 = 4;

const MACHINES: [Machine; 2] = [
    Machine {
        target: "thumbv7em-none-eabihf",
        machine: "mps2-an386",
        cpu: "cortex-m4",
        parts: 1,
    },
    Machine {
        target: "thumbv6m-none-eabi",
        machine: "microbit",
        cpu: "cortex-m0",
        parts: M0_PARTS,
    },
];

/// Far above a run's ~0.5 s: only a hang reaches it.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

/// The goal of issue 14 for one check, with everything it calls; enforced
/// on thumbv7em.
const CHECK_BUDGET: u64 = 1024;

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
    require(
        "qemu-system-arm",
        &["--version"],
        "apt-get install -y qemu-system-arm",
    )?;
    require(
        "arm-none-eabi-nm",
        &["--version"],
        "apt-get install -y binutils-arm-none-eabi",
    )?;
    ensure_targets(&MACHINES.map(|m| m.target))?;
    // The bare-metal code (entry point, panic handler) only exists on a
    // thumb target, where the workspace's clippy run does not look.
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-firmware",
        "-p",
        "ratelimit-embedded",
        "--locked",
        "--profile",
        "embedded",
        "--target",
        MACHINES[1].target,
        "--",
        "-D",
        "warnings",
    ])
    .run()?;

    let mut failures = Vec::new();
    let mut images = Vec::new();
    for m in &MACHINES {
        for part in 1..=m.parts {
            let elf = build(m, part, plant)?;
            let outcome = qemu(m, &elf);
            let label = format!("{} on {} part {part}/{}", m.target, m.machine, m.parts);
            match (outcome, plant) {
                (Ok(()), false) | (Err(_), true) => {}
                (Ok(()), true) => {
                    failures.push(format!("{label}: passed despite the planted mismatch"));
                }
                (Err(e), false) => failures.push(format!("{label}: {e}")),
            }
        }
        // The last part's image stays on disk: the probes are in every part.
        images.push((m.target, build_path(m)));
    }
    if !failures.is_empty() {
        return Err(format!(
            "embedded runs failed:\n  {}",
            failures.join("\n  ")
        ));
    }
    if plant {
        eprintln!("xtask embedded: every run failed on the planted mismatch, as it must");
        return Ok(());
    }
    let mut over = Vec::new();
    for (target, elf) in images {
        over.extend(size_report(target, &elf)?);
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "over the {CHECK_BUDGET} B budget of one check on {}: {}",
            MACHINES[0].target,
            over.join(", ")
        ))
    }
}

/// Fails with an install hint when `program` cannot be run.
fn require(program: &str, args: &[&str], install: &str) -> Result<(), String> {
    Step::new(program, args)
        .output()
        .map(|_| ())
        .map_err(|e| format!("{program} is required: {e}\n    (install with: {install})"))
}

/// Adds the rustup targets that are missing.
pub(crate) fn ensure_targets(targets: &[&str]) -> Result<(), String> {
    let installed = Step::new("rustup", &["target", "list", "--installed"]).output()?;
    for target in targets {
        if !installed.lines().any(|l| l.trim() == *target) {
            Step::new("rustup", &["target", "add", target]).run()?;
        }
    }
    Ok(())
}

/// Builds one image and returns its path.
fn build(m: &Machine, part: u8, plant: bool) -> Result<String, String> {
    let mut step = Step::cargo(&[
        "build",
        "-p",
        "ratelimit-firmware",
        "--locked",
        "--profile",
        "embedded",
        "--target",
        m.target,
    ])
    .env("RATELIMIT_FIRMWARE_PART", format!("{part}/{}", m.parts));
    if plant {
        step = step.env("RATELIMIT_PLANT_MISMATCH", "1");
    }
    step.run()?;
    Ok(build_path(m))
}

/// The target directory: `$CARGO_TARGET_DIR` (relative to the workspace
/// root, where the builds run), or `target/`.
pub(crate) fn target_dir() -> PathBuf {
    root().join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()))
}

/// Where [`build`] puts the image.
fn build_path(m: &Machine) -> String {
    target_dir()
        .join(m.target)
        .join("embedded")
        .join("ratelimit-firmware")
        .display()
        .to_string()
}

/// Runs an image under QEMU with semihosting; its output goes to ours.
fn qemu(m: &Machine, elf: &str) -> Result<(), String> {
    let args = [
        "-machine",
        m.machine,
        "-cpu",
        m.cpu,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        elf,
    ];
    eprintln!("$ qemu-system-arm {}", args.join(" "));
    let started = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start qemu-system-arm: {e}"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            eprintln!("  ({:.1?}, {status})", started.elapsed());
            return if status.success() {
                Ok(())
            } else {
                Err(format!("the firmware reported a failure ({status})"))
            };
        }
        if started.elapsed() > QEMU_TIMEOUT {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit after {QEMU_TIMEOUT:?}: the firmware hung"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A function of the image: its size and the functions it branches to.
#[derive(Debug, Default)]
struct Function {
    name: String,
    size: u64,
    calls: BTreeSet<u64>,
}

/// The functions of `elf` by address (Thumb bit cleared), with their calls.
fn functions(elf: &str) -> Result<BTreeMap<u64, Function>, String> {
    let nm = Step::new("arm-none-eabi-nm", &["-S", "-C", "--defined-only", elf]).output()?;
    let mut functions = BTreeMap::new();
    for line in nm.lines() {
        // `address size type name`, the name possibly with spaces.
        let mut fields = line.splitn(4, ' ');
        let (Some(address), Some(size), Some(kind), Some(name)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !matches!(kind, "t" | "T") {
            continue;
        }
        let (Ok(address), Ok(size)) = (
            u64::from_str_radix(address, 16),
            u64::from_str_radix(size, 16),
        ) else {
            continue;
        };
        functions.insert(
            address & !1,
            Function {
                name: name.to_owned(),
                size,
                calls: BTreeSet::new(),
            },
        );
    }
    let disassembly =
        Step::new("arm-none-eabi-objdump", &["-d", "--no-show-raw-insn", elf]).output()?;
    let mut current = None;
    for line in disassembly.lines() {
        // A function starts: `00001d66 <_ZN...>:`.
        if let Some(head) = line.strip_suffix(">:") {
            current = head
                .split_once(" <")
                .and_then(|(a, _)| u64::from_str_radix(a, 16).ok());
            continue;
        }
        // A branch or call to another function: `bl 7620 <__aeabi_uldivmod>`.
        let Some(caller) = current else { continue };
        let Some(target) = branch_target(line) else {
            continue;
        };
        if target != caller && functions.contains_key(&target) {
            if let Some(f) = functions.get_mut(&caller) {
                f.calls.insert(target);
            }
        }
    }
    Ok(functions)
}

/// The target address of a branch instruction line of `objdump -d`.
fn branch_target(line: &str) -> Option<u64> {
    let mut words = line.split('\t').skip(1);
    let mnemonic = words.next()?.trim();
    // `b`, `bl`, `b.w`, `bne.n`, ..., `cbz`, `cbnz`; not `bic`, `bfi`,
    // `bkpt`, whose operands are never `address <symbol>`.
    let is_branch = (mnemonic.starts_with('b')
        && !["bic", "bfi", "bfc", "bkpt"]
            .iter()
            .any(|m| mnemonic.starts_with(m)))
        || mnemonic.starts_with("cb");
    if !is_branch {
        return None;
    }
    // `7620 <__aeabi_uldivmod>` or `r0, 1f32 <...>`.
    let operands = words.next()?;
    let address = operands.split(" <").next()?.rsplit(' ').next()?;
    u64::from_str_radix(address, 16).ok()
}

/// The function and everything it reaches, by address.
fn closure(functions: &BTreeMap<u64, Function>, start: u64) -> BTreeSet<u64> {
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(at) = stack.pop() {
        for &callee in functions.get(&at).map(|f| &f.calls).into_iter().flatten() {
            if seen.insert(callee) {
                stack.push(callee);
            }
        }
    }
    seen
}

/// Prints the probes' sizes in the image of `target`; returns the probes
/// over [`CHECK_BUDGET`] with what they call, on the first machine's
/// target (the goal of issue 14 is stated for thumbv7em).
fn size_report(target: &str, elf: &str) -> Result<Vec<String>, String> {
    let functions = functions(elf)?;
    let probes = [
        (
            "probe::token_bucket_check",
            "TokenBucket::check (the whole Decision)",
            true,
        ),
        (
            "probe::token_bucket_verdict",
            "TokenBucket::check_verdict (allowed + next state)",
            true,
        ),
        (
            "probe::limiter_check",
            "Limiter::check_at (critical section + Decision)",
            false,
        ),
    ];
    println!("\ncode size on {target}, profile embedded (opt-level \"s\", LTO):");
    println!(
        "  {:<52} {:>6} {:>13}  callees",
        "function", "own", "with callees"
    );
    let mut over = Vec::new();
    for (symbol, label, budgeted) in probes {
        let Some((&address, f)) = functions.iter().find(|(_, f)| f.name.contains(symbol)) else {
            return Err(format!("{symbol} not found in {elf}"));
        };
        let reached = closure(&functions, address);
        let total: u64 = reached.iter().map(|a| functions[a].size).sum();
        let callees: Vec<String> = reached
            .iter()
            .filter(|&&a| a != address)
            .map(|a| format!("{} ({} B)", short(&functions[a].name), functions[a].size))
            .collect();
        println!(
            "  {label:<52} {:>4} B {:>11} B  {}",
            f.size,
            total,
            if callees.is_empty() {
                "-".to_owned()
            } else {
                callees.join(", ")
            }
        );
        if budgeted && target == MACHINES[0].target && total > CHECK_BUDGET {
            over.push(format!("{label}: {total} B"));
        }
    }
    let text = Step::new("arm-none-eabi-size", &["-A", elf]).output()?;
    let section = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    println!(
        "  image: .text {} B, .rodata {} B (the scenarios and the report's strings)",
        section(".text"),
        section(".rodata")
    );
    Ok(over)
}

/// A demangled name without its path prefix noise, for the table.
fn short(name: &str) -> String {
    let name = name.split("::h").next().unwrap_or(name);
    if name.chars().count() > 48 {
        format!("{}…", name.chars().take(47).collect::<String>())
    } else {
        name.to_owned()
    }
}
