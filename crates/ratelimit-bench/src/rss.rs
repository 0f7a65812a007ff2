//! Bytes per key: the resident-set growth of a fresh process while one
//! limiter takes in `n` distinct `u64` keys.
//!
//! The parent runs its own executable again with
//! `--rss-child <implementation> <keys>`; the child reads `VmRSS` from
//! `/proc/self/status`, builds the limiter, inserts the keys (each kept
//! live so nothing can be reclaimed), reads `VmRSS` again and prints
//! `<bytes> <keys held>`. A fresh process keeps the figure free of the
//! parent's heap; the delta includes the map's load-factor slack and the
//! allocator's overhead, which a user pays too.

use std::path::Path;
use std::process::Command;

use ratelimit_core::{Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;

use crate::contenders::Implementation;
use crate::keys::{key, string_key};
use crate::naive::NaiveTokenBucket;
use crate::shapes::{HUGE_CAPACITY, HUGE_RATE_PER_S, PREFILL_COST};

/// How the figure is measured, for the report.
pub const METHOD: &str = "VmRSS growth of a fresh child process while the limiter takes in the keys (each kept live), divided by the keys held; includes map slack and allocator overhead";

/// The implementations measured, in report order.
pub const MEASURED: [Implementation; 3] = [
    Implementation::Ratelimit,
    Implementation::Governor,
    Implementation::Naive,
];

/// The children measuring `String` keys (12 bytes of text each), and the
/// names of their rows.
pub const STRING_CHILDREN: [&str; 2] = ["ratelimit-string", "governor-string"];
/// The rows of [`STRING_CHILDREN`].
pub const STRING_NAMES: [&str; 2] = ["ratelimit (String keys)", "governor (String keys)"];

/// One bytes-per-key figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// RSS growth divided by the keys held.
    pub bytes_per_key: f64,
    /// Keys held at the end.
    pub keys: usize,
    /// What else the child reported (ours: table slots and shards).
    pub detail: Option<String>,
}

/// Bytes per key and keys held, measured in a child process running
/// `exe --rss-child <child> <keys>` (`child` from [`child_name`] or
/// [`STRING_CHILDREN`], `Err` passed through); `name` names it in errors.
///
/// # Errors
/// When the child cannot start, fails, or prints something unexpected.
pub fn measure(
    exe: &Path,
    child: Result<&str, String>,
    name: &str,
    keys: usize,
) -> Result<Measured, String> {
    let which = name;
    let out = Command::new(exe)
        .args(["--rss-child", child?, &keys.to_string()])
        .output()
        .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the rss child for {} failed ({}): {}",
            which,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut fields = stdout.split_whitespace();
    let (Some(bytes), Some(held)) = (fields.next(), fields.next()) else {
        return Err(format!("unexpected rss child output {stdout:?}"));
    };
    let bytes: f64 = bytes.parse().map_err(|e| format!("rss child: {e}"))?;
    let held: usize = held.parse().map_err(|e| format!("rss child: {e}"))?;
    if held == 0 {
        return Err("the rss child held no key".to_owned());
    }
    let detail = match (fields.next(), fields.next()) {
        (Some(slots), Some(shards)) => Some(format!("{slots} table slots in {shards} shards")),
        _ => None,
    };
    Ok(Measured {
        bytes_per_key: bytes / held as f64,
        keys: held,
        detail,
    })
}

/// The `--rss-child` name of an implementation's `u64` measurement.
///
/// # Errors
/// For an implementation without one.
pub fn child_name(which: Implementation) -> Result<&'static str, String> {
    match which {
        Implementation::Ratelimit => Ok("ratelimit"),
        Implementation::Governor => Ok("governor"),
        Implementation::Naive => Ok("naive"),
        other => Err(format!("no memory figure for {}", other.name())),
    }
}

/// The child's side: builds `name`'s limiter, inserts `keys` keys and
/// returns the line to print, `<rss growth in bytes> <keys held>`.
///
/// # Errors
/// An unknown implementation name, or no readable `/proc/self/status`.
pub fn child(name: &str, keys: usize) -> Result<String, String> {
    match name {
        "ratelimit" => {
            let algorithm =
                TokenBucket::with_rate(HUGE_CAPACITY, Rate::per_second(HUGE_RATE_PER_S))
                    .map_err(|e| e.to_string())?;
            // Room for twice the keys, as in the keyed shapes: the bound
            // splits over shards, and no shard may fill up by chance.
            let limiter = KeyedLimiter::builder(algorithm).max_keys(keys * 2).build();
            let line = grow(|| {
                for i in 0..keys as u64 {
                    let _ = limiter.check_n(&key(i), PREFILL_COST);
                }
                limiter.len()
            })?;
            // The table slots behind the figure, for the report.
            Ok(format!(
                "{line} {} {}",
                limiter.capacity(),
                limiter.shards()
            ))
        }
        "governor" => {
            let quota = governor::Quota::with_period(core::time::Duration::from_nanos(1))
                .ok_or("1 ns period")?
                .allow_burst(core::num::NonZeroU32::MAX);
            let limiter = governor::RateLimiter::keyed(quota);
            grow(|| {
                for i in 0..keys as u64 {
                    let _ = limiter.check_key(&key(i));
                }
                limiter.len()
            })
        }
        "ratelimit-string" => {
            let algorithm =
                TokenBucket::with_rate(HUGE_CAPACITY, Rate::per_second(HUGE_RATE_PER_S))
                    .map_err(|e| e.to_string())?;
            let limiter = KeyedLimiter::<String, _>::builder(algorithm)
                .max_keys(keys * 2)
                .build();
            let line = grow(|| {
                for i in 0..keys as u64 {
                    let _ = limiter.check_n(string_key(i).as_str(), PREFILL_COST);
                }
                limiter.len()
            })?;
            Ok(format!(
                "{line} {} {}",
                limiter.capacity(),
                limiter.shards()
            ))
        }
        "governor-string" => {
            let quota = governor::Quota::with_period(core::time::Duration::from_nanos(1))
                .ok_or("1 ns period")?
                .allow_burst(core::num::NonZeroU32::MAX);
            let limiter = governor::DefaultKeyedRateLimiter::<String>::keyed(quota);
            grow(|| {
                for i in 0..keys as u64 {
                    let _ = limiter.check_key(&string_key(i));
                }
                limiter.len()
            })
        }
        "naive" => {
            let limiter =
                NaiveTokenBucket::<u64>::new(HUGE_CAPACITY as f64, HUGE_RATE_PER_S as f64);
            grow(|| {
                for i in 0..keys as u64 {
                    let _ = limiter.allow_request(&key(i));
                }
                limiter.len()
            })
        }
        other => Err(format!("unknown implementation {other:?}")),
    }
}

fn grow(insert: impl FnOnce() -> usize) -> Result<String, String> {
    let before = rss_bytes()?;
    let held = insert();
    let after = rss_bytes()?;
    Ok(format!("{} {held}", after.saturating_sub(before)))
}

/// This process's resident set in bytes, from `VmRSS` in
/// `/proc/self/status`.
fn rss_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}
