//! The Lua scripts of `lua/` (each prefixed with `lua/common.lua`), run
//! through `redis::Script`: EVALSHA, and a transparent `SCRIPT LOAD` and
//! retry when the server answers `NOSCRIPT` (restart, failover,
//! `SCRIPT FLUSH`). `NOSCRIPT` means the script did not run, so that retry
//! can never count a request twice.
//!
//! The `*_call` functions build every script call the crate sends: the one
//! place where an algorithm meets the scripts (which script decides it,
//! which ARGV it takes), so that a new algorithm's script slots in here.

use core::time::Duration;
use std::sync::OnceLock;

use ratelimit_core::{AlgorithmKind, Quota, Shaping};

use crate::error::RedisLimitError;

/// A script call ready to send: the scripts live for the whole process.
pub(crate) type Call = redis::ScriptInvocation<'static>;

/// The largest tolerance `τ = C × T` the scripts accept, exclusive: 2^53 ns
/// (about 104 days), below which doubles hold every integer exactly.
pub(crate) const MAX_TOLERANCE_NS: u64 = 1 << 53;

/// Every script of the crate.
pub(crate) struct Scripts {
    pub(crate) check: redis::Script,
    pub(crate) check_batch: redis::Script,
    pub(crate) reserve: redis::Script,
    pub(crate) cancel: redis::Script,
    pub(crate) inspect: redis::Script,
}

const COMMON: &str = include_str!("../lua/common.lua");

/// The scripts, built once per process.
pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let with_common = |body: &str| redis::Script::new(&format!("{COMMON}\n{body}"));
        Scripts {
            check: with_common(include_str!("../lua/check.lua")),
            check_batch: with_common(include_str!("../lua/check_batch.lua")),
            reserve: with_common(include_str!("../lua/reserve.lua")),
            cancel: with_common(include_str!("../lua/cancel.lua")),
            inspect: redis::Script::new(include_str!("../lua/inspect.lua")),
        }
    })
}

/// Where a call's `now` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Now {
    /// The server's `TIME`.
    Server,
    /// The caller's time in nanoseconds, with the TTL margin to add.
    Client {
        /// Nanoseconds on the caller's clock.
        now_ns: u64,
        /// Added to every TTL, since the server cannot know when the
        /// caller's clock passes `tat`.
        margin: Duration,
    },
}

/// The common ARGV of every GCRA script: now, TTL margin (ms), T, τ.
fn common_args(inv: &mut redis::ScriptInvocation<'_>, now: Now, quota: &Quota) {
    match now {
        Now::Server => {
            inv.arg("").arg(0u64);
        }
        Now::Client { now_ns, margin } => {
            let margin_ms = u64::try_from(margin.as_millis()).unwrap_or(u64::MAX);
            // The margin is added in Lua doubles: keep it exact.
            inv.arg(now_ns)
                .arg(margin_ms.min(MAX_TOLERANCE_NS / 1_000_000));
        }
    }
    inv.arg(quota.interval_ns()).arg(quota.tolerance_ns());
}

/// Checks that the scripts can run `quota` exactly.
pub(crate) fn check_quota(quota: &Quota) -> Result<(), RedisLimitError> {
    if quota.tolerance_ns() >= MAX_TOLERANCE_NS {
        return Err(RedisLimitError::InvalidOption(format!(
            "capacity × interval is {} ns; the Redis scripts compute exactly in doubles and need it below 2^53 ns (about 104 days)",
            quota.tolerance_ns()
        )));
    }
    Ok(())
}

/// `max_wait` as the scripts take it: `''` for unbounded, and for any wait
/// of 2^53 ns or more, which no wait computed by the scripts reaches.
fn max_wait_arg(max_wait_ns: Option<u64>) -> String {
    match max_wait_ns {
        Some(ns) if ns < MAX_TOLERANCE_NS => ns.to_string(),
        _ => String::new(),
    }
}

/// `check(key, cost)` (the cost is in range): `check.lua`, the same
/// policing for both buckets.
pub(crate) fn check_call<A: Shaping>(algorithm: &A, redis_key: &[u8], cost: u64, now: Now) -> Call {
    let mut inv = scripts().check.key(redis_key);
    common_args(&mut inv, now, algorithm.quota());
    inv.arg(cost);
    inv
}

/// `check` of many keys of one slot in one call: `check_batch.lua`.
pub(crate) fn batch_call<'k, A: Shaping>(
    algorithm: &A,
    requests: impl Iterator<Item = (&'k [u8], u64)> + Clone,
    now: Now,
) -> Call {
    let mut inv = scripts().check_batch.prepare_invoke();
    for (key, _) in requests.clone() {
        inv.key(key);
    }
    common_args(&mut inv, now, algorithm.quota());
    for (_, cost) in requests {
        inv.arg(cost);
    }
    inv
}

/// `reserve(key, cost, max_wait)` (the cost is in range): `reserve.lua`,
/// told which bucket shapes.
pub(crate) fn reserve_call<A: Shaping>(
    algorithm: &A,
    redis_key: &[u8],
    cost: u64,
    max_wait_ns: Option<u64>,
    now: Now,
) -> Call {
    // `Shaping`: the two buckets, and only they, reserve.
    let kind = if algorithm.kind() == AlgorithmKind::LeakyBucket {
        "leaky"
    } else {
        "token"
    };
    let mut inv = scripts().reserve.key(redis_key);
    common_args(&mut inv, now, algorithm.quota());
    inv.arg(kind).arg(cost).arg(max_wait_arg(max_wait_ns));
    inv
}

/// Undoes a reservation of `cost` that stored `stored`: `cancel.lua`. `now`
/// only sets the restored state's expiry: pass the reservation's time
/// source.
pub(crate) fn cancel_call<A: Shaping>(
    algorithm: &A,
    redis_key: &[u8],
    stored: u64,
    cost: u64,
    now: Now,
) -> Call {
    let mut inv = scripts().cancel.key(redis_key);
    common_args(&mut inv, now, algorithm.quota());
    inv.arg(stored).arg(cost);
    inv
}

/// Reads a key's state: `inspect.lua`.
pub(crate) fn inspect_call(redis_key: &[u8]) -> Call {
    scripts().inspect.key(redis_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_carry_the_common_prelude_and_a_header() {
        let s = scripts();
        for hash in [
            s.check.get_hash(),
            s.check_batch.get_hash(),
            s.reserve.get_hash(),
            s.cancel.get_hash(),
        ] {
            assert_eq!(hash.len(), 40);
        }
        for body in [
            include_str!("../lua/check.lua"),
            include_str!("../lua/check_batch.lua"),
            include_str!("../lua/reserve.lua"),
            include_str!("../lua/cancel.lua"),
            include_str!("../lua/inspect.lua"),
        ] {
            for word in ["KEYS", "ARGV", "Reply", "Time source"] {
                assert!(body.contains(word), "script header lacks {word}");
            }
        }
    }

    #[test]
    fn max_wait_beyond_exact_range_is_unbounded() {
        assert_eq!(max_wait_arg(None), "");
        assert_eq!(max_wait_arg(Some(5)), "5");
        assert_eq!(max_wait_arg(Some(u64::MAX)), "");
    }
}
