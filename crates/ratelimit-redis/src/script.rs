//! The Lua scripts of `lua/` (each prefixed with `lua/common.lua`, then
//! `lua/gcra.lua` for the buckets or `lua/window_lib.lua` for the windows), run
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

use ratelimit_core::{Algorithm, AlgorithmKind, AnyAlgorithm, Quota, Shaping};

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
    pub(crate) window: redis::Script,
    pub(crate) check_all: redis::Script,
    pub(crate) time: redis::Script,
    pub(crate) quota: redis::Script,
    /// `extend.lua`: one step of raising a prefix's expiries.
    pub(crate) extend: redis::Script,
}

const COMMON: &str = include_str!("../lua/common.lua");
const GCRA: &str = include_str!("../lua/gcra.lua");
const WINDOW_LIB: &str = include_str!("../lua/window_lib.lua");

/// The scripts, built once per process.
pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let with_common = |body: &str| redis::Script::new(&format!("{COMMON}\n{GCRA}\n{body}"));
        let windowed = |body: &str| redis::Script::new(&format!("{COMMON}\n{WINDOW_LIB}\n{body}"));
        Scripts {
            check: with_common(include_str!("../lua/check.lua")),
            check_batch: with_common(include_str!("../lua/check_batch.lua")),
            reserve: with_common(include_str!("../lua/reserve.lua")),
            cancel: with_common(include_str!("../lua/cancel.lua")),
            inspect: redis::Script::new(include_str!("../lua/inspect.lua")),
            window: windowed(include_str!("../lua/window.lua")),
            check_all: with_common(&format!(
                "{WINDOW_LIB}\n{}",
                include_str!("../lua/check_all.lua")
            )),
            time: redis::Script::new(include_str!("../lua/time.lua")),
            quota: redis::Script::new(include_str!("../lua/quota.lua")),
            extend: redis::Script::new(include_str!("../lua/extend.lua")),
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

/// The first two ARGV of every script: now and the TTL margin (ms).
fn time_args(inv: &mut redis::ScriptInvocation<'_>, now: Now) {
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
}

/// The common ARGV of every GCRA script: now, TTL margin (ms), T, τ.
fn common_args(inv: &mut redis::ScriptInvocation<'_>, now: Now, quota: &Quota) {
    time_args(inv, now);
    inv.arg(quota.interval_ns()).arg(quota.tolerance_ns());
}

/// The smallest `gcd(W, 1 s)` accepted for a window under server time:
/// the window arithmetic counts in units of that gcd, and `now / gcd` must
/// stay below 2^53 (with 512 ns, until 2^62 ns after the epoch: the year
/// 2116).
pub(crate) const MIN_WINDOW_UNIT_NS: u64 = 512;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What a call of the check scripts does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `check`.
    Check,
    /// A refundable `check`: the reply carries the admission's receipt.
    Receipt,
    /// Gives an admission back (`cancel.lua` for the buckets).
    Refund,
}

/// What a refundable admission stored, to give it back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// A bucket's `tat` after the admission (`cancel.lua` undoes it while
    /// the key still holds it).
    Tat(u64),
    /// The window index the admission counted in.
    Window(u64),
}

/// How the scripts decide an algorithm's `check`: its kind and parameters,
/// as they are sent (computed once, when the limiter is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Params {
    /// A bucket: `check.lua` and `check_batch.lua`, with `T` and `τ`.
    Bucket {
        /// The emission interval `T` in ns.
        interval_ns: u64,
        /// The tolerance `τ = C × T` in ns.
        tolerance_ns: u64,
    },
    /// A window algorithm: `window.lua`.
    Window {
        /// The sliding window counter (else the fixed window).
        sliding: bool,
        /// The limit `L`.
        limit: u64,
        /// The window `W` in ns.
        window_ns: u64,
        /// `g = gcd(W, 1 s)`, the unit of the window arithmetic.
        unit_ns: u64,
    },
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Params {
    /// The parameters of `algorithm`, or why the scripts cannot run it
    /// exactly (`server_time`: `now` is the server's `TIME`).
    pub(crate) fn of<A: Algorithm>(
        algorithm: &A,
        server_time: bool,
    ) -> Result<Self, RedisLimitError> {
        let any = algorithm.to_any();
        let bad = |m: String| Err(RedisLimitError::InvalidOption(m));
        match any {
            AnyAlgorithm::TokenBucket(_) | AnyAlgorithm::LeakyBucket(_) => {
                let Some(quota) = any.quota() else {
                    unreachable!("a bucket has a quota")
                };
                if quota.tolerance_ns() >= MAX_TOLERANCE_NS {
                    return bad(format!(
                        "capacity × interval is {} ns; the Redis scripts compute exactly in doubles and need it below 2^53 ns (about 104 days)",
                        quota.tolerance_ns()
                    ));
                }
                Ok(Self::Bucket {
                    interval_ns: quota.interval_ns(),
                    tolerance_ns: quota.tolerance_ns(),
                })
            }
            AnyAlgorithm::FixedWindow(_) | AnyAlgorithm::SlidingWindow(_) => {
                let sliding = matches!(any, AnyAlgorithm::SlidingWindow(_));
                let (limit, w) = (any.limit(), any.period_ns());
                if sliding {
                    if u128::from(limit + 1) * u128::from(w) >= u128::from(MAX_TOLERANCE_NS) {
                        return bad(format!(
                            "a sliding window of {limit} per {w} ns: the Redis scripts compute exactly in doubles and need (limit + 1) × window below 2^53 (e.g. up to 2 500 000 per second, 2 500 per hour)"
                        ));
                    }
                } else if limit >= MAX_TOLERANCE_NS || w >= MAX_TOLERANCE_NS / 2 {
                    return bad(format!(
                        "a fixed window of {limit} per {w} ns: the Redis scripts compute exactly in doubles and need the limit below 2^53 and the window below 2^52 ns (about 52 days)"
                    ));
                }
                let unit_ns = gcd(w, NANOS_PER_SECOND);
                if server_time && unit_ns < MIN_WINDOW_UNIT_NS {
                    return bad(format!(
                        "a window of {w} ns under the server's time: the Redis scripts count time in units of gcd(window, 1 s) = {unit_ns} ns and need at least {MIN_WINDOW_UNIT_NS} ns to stay exact (any whole number of microseconds works)"
                    ));
                }
                Ok(Self::Window {
                    sliding,
                    limit,
                    window_ns: w,
                    unit_ns,
                })
            }
        }
    }

    /// Whether the scripts can decide at `now` exactly; an error before
    /// anything is sent when they cannot (a caller's time too far from the
    /// epoch for a window whose unit is small).
    pub(crate) fn check_now(&self, now: Now) -> Result<(), RedisLimitError> {
        if let (
            Self::Window {
                window_ns, unit_ns, ..
            },
            Now::Client { now_ns, .. },
        ) = (*self, now)
        {
            let n = now_ns / unit_ns + 2 * (window_ns / unit_ns);
            if n >= MAX_TOLERANCE_NS {
                return Err(RedisLimitError::InvalidOption(format!(
                    "time {now_ns} ns with a window of {window_ns} ns: the Redis scripts count time in units of gcd(window, 1 s) = {unit_ns} ns and need time / unit below 2^53 to stay exact"
                )));
            }
        }
        Ok(())
    }

    /// A check of the keys `keys` (one: `check`, more: a batch), before
    /// the costs: the script and its arguments.
    fn invocation<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        one: bool,
        mode: Mode,
        now: Now,
    ) -> Call {
        let s = scripts();
        let mut inv = match (*self, one, mode) {
            (Self::Bucket { .. }, _, Mode::Refund) => s.cancel.prepare_invoke(),
            (Self::Bucket { .. }, true, _) => s.check.prepare_invoke(),
            (Self::Bucket { .. }, false, _) => s.check_batch.prepare_invoke(),
            (Self::Window { .. }, _, _) => s.window.prepare_invoke(),
        };
        for key in keys {
            inv.key(key);
        }
        time_args(&mut inv, now);
        match *self {
            Self::Bucket {
                interval_ns,
                tolerance_ns,
            } => {
                inv.arg(interval_ns).arg(tolerance_ns);
            }
            Self::Window {
                sliding,
                limit,
                window_ns,
                unit_ns,
            } => {
                let kind = if sliding { "sliding" } else { "fixed" };
                let kind = match mode {
                    Mode::Check => kind.to_owned(),
                    Mode::Receipt => format!("{kind} receipt"),
                    Mode::Refund => format!("{kind} refund"),
                };
                inv.arg(kind)
                    .arg(limit)
                    .arg(window_ns)
                    .arg(unit_ns)
                    .arg(NANOS_PER_SECOND / unit_ns)
                    .arg(window_ns / unit_ns);
            }
        }
        inv
    }
}

/// `max_wait` as the scripts take it: `''` for unbounded, and for any wait
/// of 2^53 ns or more, which no wait computed by the scripts reaches.
fn max_wait_arg(max_wait_ns: Option<u64>) -> String {
    match max_wait_ns {
        Some(ns) if ns < MAX_TOLERANCE_NS => ns.to_string(),
        _ => String::new(),
    }
}

/// `check(key, cost)` (the cost is in range): `check.lua` for both
/// buckets, `window.lua` for the windows.
pub(crate) fn check_call(params: &Params, redis_key: &[u8], cost: u64, now: Now) -> Call {
    let mut inv = params.invocation(core::iter::once(redis_key), true, Mode::Check, now);
    inv.arg(cost);
    inv
}

/// A refundable `check(key, cost)`: its reply carries what the admission
/// stored ([`Admitted`]).
pub(crate) fn check_receipt_call(params: &Params, redis_key: &[u8], cost: u64, now: Now) -> Call {
    let mut inv = params.invocation(core::iter::once(redis_key), true, Mode::Receipt, now);
    inv.arg(cost);
    if let Params::Bucket { .. } = params {
        inv.arg("1");
    }
    inv
}

/// Gives back an admission of `cost` that stored `admitted`: `cancel.lua`
/// for the buckets, `window.lua`'s refund for the windows. `now` sets a
/// restored bucket's expiry and which windows still count.
pub(crate) fn refund_call(
    params: &Params,
    redis_key: &[u8],
    admitted: Admitted,
    cost: u64,
    now: Now,
) -> Call {
    let mut inv = params.invocation(core::iter::once(redis_key), true, Mode::Refund, now);
    match admitted {
        Admitted::Tat(tat) => inv.arg(tat).arg(cost),
        Admitted::Window(k) => inv.arg(cost).arg(k),
    };
    inv
}

/// `check` of many keys of one slot in one call: `check_batch.lua` for
/// the buckets, `window.lua` for the windows.
pub(crate) fn batch_call<'k>(
    params: &Params,
    requests: impl Iterator<Item = (&'k [u8], u64)> + Clone,
    now: Now,
) -> Call {
    let mut inv = params.invocation(requests.clone().map(|(k, _)| k), false, Mode::Check, now);
    for (_, cost) in requests {
        inv.arg(cost);
    }
    inv
}

/// One request against several limits, all or nothing: `check_all.lua`,
/// 7 ARGV per limit (its kind, 5 parameters, its cost).
pub(crate) fn check_all_call<'k>(
    limits: impl Iterator<Item = (&'k [u8], &'k Params, u64)> + Clone,
    now: Now,
) -> Call {
    let mut inv = scripts().check_all.prepare_invoke();
    for (key, _, _) in limits.clone() {
        inv.key(key);
    }
    time_args(&mut inv, now);
    for (_, params, cost) in limits {
        match *params {
            Params::Bucket {
                interval_ns,
                tolerance_ns,
            } => {
                inv.arg("bucket")
                    .arg(interval_ns)
                    .arg(tolerance_ns)
                    .arg("")
                    .arg("")
                    .arg("");
            }
            Params::Window {
                sliding,
                limit,
                window_ns,
                unit_ns,
            } => {
                inv.arg(if sliding { "sliding" } else { "fixed" })
                    .arg(limit)
                    .arg(window_ns)
                    .arg(unit_ns)
                    .arg(NANOS_PER_SECOND / unit_ns)
                    .arg(window_ns / unit_ns);
            }
        }
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

/// A bucket call under a quota version or a key's own quota (docs/redis.md,
/// "Changing quotas"): the quota it decides under, the tag of that quota,
/// and, after the script asked for a conversion, the stored text converted
/// and its conversion (written only while the key still holds the former).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tagged<'a> {
    pub(crate) quota: &'a Quota,
    pub(crate) tag: &'a str,
    pub(crate) swap: Option<(&'a str, &'a str)>,
}

impl Tagged<'_> {
    /// The tag and the swap, as the last ARGV of check.lua and reserve.lua.
    fn args(&self, inv: &mut redis::ScriptInvocation<'_>) {
        let (expected, converted) = self.swap.unwrap_or(("", ""));
        inv.arg(self.tag).arg(expected).arg(converted);
    }
}

/// `check` (`receipt`: refundable) of a bucket under a [`Tagged`] quota:
/// `check.lua`.
pub(crate) fn check_tagged_call(
    redis_key: &[u8],
    cost: u64,
    receipt: bool,
    now: Now,
    tagged: Tagged<'_>,
) -> Call {
    let mut inv = scripts().check.key(redis_key);
    common_args(&mut inv, now, tagged.quota);
    inv.arg(cost).arg(if receipt { "1" } else { "" });
    tagged.args(&mut inv);
    inv
}

/// `reserve` of a bucket under a [`Tagged`] quota: `reserve.lua`.
pub(crate) fn reserve_tagged_call(
    leaky: bool,
    redis_key: &[u8],
    cost: u64,
    max_wait_ns: Option<u64>,
    now: Now,
    tagged: Tagged<'_>,
) -> Call {
    let mut inv = scripts().reserve.key(redis_key);
    common_args(&mut inv, now, tagged.quota);
    inv.arg(if leaky { "leaky" } else { "token" })
        .arg(cost)
        .arg(max_wait_arg(max_wait_ns));
    tagged.args(&mut inv);
    inv
}

/// The server's time: `time.lua`.
pub(crate) fn time_call() -> Call {
    scripts().time.prepare_invoke()
}

/// Reads the quota record `record` from `version` on, appending `change`
/// when the record is at `version` (`''`: only read): `quota.lua`.
pub(crate) fn quota_call(record: &[u8], version: usize, change: &str) -> Call {
    let mut inv = scripts().quota.key(record);
    inv.arg(version).arg(change);
    inv
}

/// One step of the walk raising the expiry of the state keys matching
/// `pattern` to at least `least_ms`, from `cursor`: `extend.lua`.
pub(crate) fn extend_call(cursor: &str, pattern: &str, least_ms: u64, count: u32) -> Call {
    let mut inv = scripts().extend.prepare_invoke();
    inv.arg(cursor).arg(pattern).arg(least_ms).arg(count);
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
            s.window.get_hash(),
            s.check_all.get_hash(),
        ] {
            assert_eq!(hash.len(), 40);
        }
        for body in [
            include_str!("../lua/check.lua"),
            include_str!("../lua/check_batch.lua"),
            include_str!("../lua/reserve.lua"),
            include_str!("../lua/cancel.lua"),
            include_str!("../lua/inspect.lua"),
            include_str!("../lua/window.lua"),
            include_str!("../lua/check_all.lua"),
            include_str!("../lua/time.lua"),
            include_str!("../lua/quota.lua"),
            include_str!("../lua/extend.lua"),
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
