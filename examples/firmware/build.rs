//! Turns the conformance scenarios (`.jsonl.gz`) into the compact binary
//! form of `src/format.rs`, written to `$OUT_DIR/scenarios.bin` and
//! compiled into the image; on a thumb target, also picks the machine's
//! memory layout and links with cortex-m-rt's `link.x`.
//!
//! Environment (each one reruns this script when it changes):
//! - `RATELIMIT_FIRMWARE_PART=i/n`: only the `i`-th of `n` parts of the
//!   scenarios, split in order and balanced by size (default `1/1`: all).
//!   A Cortex-M0 with 256 KiB of flash runs them in several images.
//! - `RATELIMIT_PLANT_MISMATCH` (non-empty): the first expected answer of
//!   the part is corrupted, to show that a mismatch fails the run.

use std::env;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "src/layout.rs"]
#[allow(
    dead_code,
    reason = "the decoder's constants, shared with the firmware"
)]
mod layout;

use layout::{ADVANCE, ALLOWED, END, KEY_SHIFT, MAGIC, MAX_KEYS, MAX_WAIT, RESERVE, RETRY_AFTER};

/// The conformance scenarios: the repository's byte-identical copies of
/// the reference files, relative to this crate. `xtask/src/wasm.rs` names
/// the same folder for the WASM run.
const CONFORMANCE_DIR: &str = "../../crates/ratelimit-replay/conformance";

/// The files run: the buckets (`check` and `reserve`) and the windows
/// (`check`). The quota-change files (`policies-*`) need reconfiguration,
/// which the core leaves to the backends, and are not run here.
const FILES: [&str; 4] = [
    "scenarios-ns.jsonl.gz",
    "scenarios-us.jsonl.gz",
    "windows-ns.jsonl.gz",
    "windows-us.jsonl.gz",
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/layout.rs");
    println!("cargo:rerun-if-env-changed=RATELIMIT_FIRMWARE_PART");
    println!("cargo:rerun-if-env-changed=RATELIMIT_PLANT_MISMATCH");

    link(&manifest, &out);

    let (part, parts) = part();
    let plant = env::var_os("RATELIMIT_PLANT_MISMATCH").is_some_and(|v| !v.is_empty());
    let dir = manifest.join(CONFORMANCE_DIR);
    let mut flat: Vec<(u8, Value)> = Vec::new();
    for (index, file) in FILES.iter().enumerate() {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let index = u8::try_from(index).expect("fewer than 256 files");
        flat.extend(read(&path).into_iter().map(|scenario| (index, scenario)));
    }
    let scenarios: Vec<Vec<u8>> = flat
        .iter()
        .map(|(file, scenario)| {
            let at = format!("{} scenario {}", FILES[usize::from(*file)], scenario["id"]);
            encode(*file, scenario, false, &at)
        })
        .collect();

    // Contiguous parts, balanced by size: a scenario belongs to the part
    // its first byte falls in.
    let total: usize = scenarios.iter().map(Vec::len).sum();
    let mut offset = 0;
    let mut chosen = Vec::new();
    for (i, bytes) in scenarios.iter().enumerate() {
        if offset * usize::from(parts) / total == usize::from(part - 1) {
            chosen.push(i);
        }
        offset += bytes.len();
    }

    let mut blob = Vec::with_capacity(total / usize::from(parts) + 256);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&[part, parts, u8::from(plant), FILES.len() as u8]);
    for file in FILES {
        blob.push(u8::try_from(file.len()).expect("a short file name"));
        blob.extend_from_slice(file.as_bytes());
    }
    for (n, &i) in chosen.iter().enumerate() {
        if plant && n == 0 {
            let (index, scenario) = &flat[i];
            blob.extend(encode(*index, scenario, true, "planted"));
        } else {
            blob.extend_from_slice(&scenarios[i]);
        }
    }
    blob.push(END);
    fs::write(out.join("scenarios.bin"), &blob).expect("write scenarios.bin");
}

/// `RATELIMIT_FIRMWARE_PART` as `(i, n)`.
fn part() -> (u8, u8) {
    let Ok(text) = env::var("RATELIMIT_FIRMWARE_PART") else {
        return (1, 1);
    };
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<u8>().ok()?, n.parse::<u8>().ok()?)));
    match parsed {
        Some((i, n)) if 1 <= i && i <= n => (i, n),
        _ => panic!("RATELIMIT_FIRMWARE_PART={text:?}: expected i/n with 1 <= i <= n <= 255"),
    }
}

/// On a thumb target: the machine's memory layout as `memory.x`, and
/// cortex-m-rt's linker script.
fn link(manifest: &Path, out: &Path) {
    let target = env::var("TARGET").expect("set by cargo");
    let machine = if target.starts_with("thumbv7em-") {
        "mps2-an386"
    } else if target.starts_with("thumbv6m-") {
        "microbit"
    } else if target.starts_with("thumb") {
        panic!("no QEMU machine chosen for {target}: add its memory.x to examples/firmware/memory/")
    } else {
        return;
    };
    let memory = manifest.join("memory").join(format!("{machine}.x"));
    println!("cargo:rerun-if-changed={}", memory.display());
    fs::copy(&memory, out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}

/// Every scenario of a `.jsonl.gz` file.
fn read(path: &Path) -> Vec<Value> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn uint(v: &Value, field: &str, at: &str) -> u64 {
    v.get(field)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{at}: {field} is not an unsigned integer: {v}"))
}

/// `null` or an unsigned integer.
fn opt_uint(v: &Value, field: &str, at: &str) -> Option<u64> {
    match v.get(field) {
        None | Some(Value::Null) => None,
        Some(_) => Some(uint(v, field, at)),
    }
}

/// One scenario in the blob's form; `plant` corrupts its first answer.
fn encode(file: u8, s: &Value, plant: bool, at: &str) -> Vec<u8> {
    let mut out = vec![file];
    varint(&mut out, uint(s, "id", at));
    let algorithm = s["algorithm"].as_str().unwrap_or_default();
    let code = [
        "token-bucket",
        "leaky-bucket",
        "fixed-window",
        "sliding-window",
    ]
    .iter()
    .position(|a| *a == algorithm)
    .unwrap_or_else(|| panic!("{at}: unknown algorithm {algorithm:?}"));
    out.push(code as u8);
    varint(&mut out, uint(s, "capacity", at));
    if code < 2 {
        // The number's text as serde_json prints it, which is what the
        // replay tests parse (`2`, `0.5`, `2500000.0`).
        let rate = match &s["rate"] {
            Value::Number(n) => n.to_string(),
            other => panic!("{at}: a bucket needs a numeric rate, got {other}"),
        };
        out.push(u8::try_from(rate.len()).expect("a short rate"));
        out.extend_from_slice(rate.as_bytes());
    } else {
        varint(&mut out, uint(s, "window_ns", at));
    }
    let events = s["events"].as_array().expect("events");
    let expected = s["expected"].as_array().expect("expected");
    assert_eq!(events.len(), expected.len(), "{at}: one answer per event");
    varint(&mut out, events.len() as u64);

    let mut keys: Vec<&str> = Vec::new();
    let mut previous = 0;
    for (n, (e, x)) in events.iter().zip(expected).enumerate() {
        let at = &format!("{at} event {n}");
        let key = e["key"].as_str().unwrap_or_else(|| panic!("{at}: no key"));
        let key = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                keys.len() - 1
            }
        };
        assert!(key < MAX_KEYS, "{at}: more than {MAX_KEYS} keys");
        let t = uint(e, "t_ns", at);
        let dt = t
            .checked_sub(previous)
            .unwrap_or_else(|| panic!("{at}: time went backwards"));
        previous = t;
        let reserve = match e["op"].as_str() {
            Some("check") => false,
            Some("reserve") => true,
            other => panic!("{at}: unsupported op {other:?}"),
        };
        let cost = e.get("cost").map_or(1, |_| uint(e, "cost", at));
        let max_wait = opt_uint(e, "max_wait_ns", at);
        let allowed = x["allowed"]
            .as_bool()
            .unwrap_or_else(|| panic!("{at}: no allowed"));
        let mut retry_after = opt_uint(x, "retry_after_ns", at);
        let mut remaining = opt_uint(x, "remaining", at).unwrap_or(0);
        let mut wait = opt_uint(x, "wait_ns", at).unwrap_or(0);
        if plant && n == 0 {
            match (reserve, allowed) {
                (false, _) => remaining += 1,
                (true, true) => wait += 1,
                (true, false) => retry_after = Some(retry_after.map_or(1, |r| r + 1)),
            }
        }

        let mut flags = (key as u8) << KEY_SHIFT;
        for (set, flag) in [
            (reserve, RESERVE),
            (allowed, ALLOWED),
            (max_wait.is_some(), MAX_WAIT),
            (retry_after.is_some(), RETRY_AFTER),
            (dt != 0, ADVANCE),
        ] {
            if set {
                flags |= flag;
            }
        }
        out.push(flags);
        if dt != 0 {
            varint(&mut out, dt);
        }
        varint(&mut out, cost);
        if let Some(max_wait) = max_wait {
            varint(&mut out, max_wait);
        }
        if !reserve {
            varint(&mut out, remaining);
            if let Some(r) = retry_after {
                varint(&mut out, r);
            }
            varint(&mut out, uint(x, "reset_after_ns", at));
        } else if allowed {
            varint(&mut out, wait);
        } else if let Some(r) = retry_after {
            varint(&mut out, r);
        }
    }
    out
}
