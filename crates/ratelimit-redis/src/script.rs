//! The Lua scripts of `lua/` (each prefixed with `lua/common.lua`, then
//! `lua/gcra.lua` for the buckets or `lua/window_lib.lua` for the windows),
//! and the one Redis 7 function library generated from the same sources
//! (see [`library`]). A [`Call`] names its script and carries its KEYS and
//! ARGV; `invoke.rs` sends it as `FCALL` (the library) or `EVALSHA` (the
//! script), and answers `Function not found` / `NOSCRIPT` by loading and
//! sending again: both mean nothing ran, so no retry counts a request twice.
//!
//! The `*_call` functions build every script call the crate sends: the one
//! place where an algorithm meets the scripts (which script decides it,
//! which ARGV it takes), so that a new algorithm's script slots in here.

use core::time::Duration;
use std::sync::OnceLock;

use ratelimit_core::{Algorithm, AlgorithmKind, AnyAlgorithm, Quota, Shaping};
use redis::ToRedisArgs;

use crate::error::RedisLimitError;

/// One script of the crate: its text for `EVAL` (`redis::Script`: its
/// SHA-1 for `EVALSHA`) and the name of the same body in the function
/// library (`FCALL`).
pub(crate) struct Script {
    pub(crate) eval: redis::Script,
    /// The script's own name (`check` for `check.lua`).
    name: &'static str,
    /// Its body, without the helpers: what the library wraps.
    body: String,
    /// Its `EVAL` form: the helpers it needs, then its body.
    code: String,
    /// `<library>_<name>`: filled once the library's hash is known.
    function: OnceLock<String>,
}

/// Which helper files an `EVAL` script starts with.
#[derive(Clone, Copy)]
enum Helpers {
    None,
    Gcra,
    Window,
    Both,
}

impl Script {
    fn new(name: &'static str, helpers: Helpers, body: &str) -> Self {
        let code = match helpers {
            Helpers::None => body.to_owned(),
            Helpers::Gcra => format!("{COMMON}\n{GCRA}\n{body}"),
            Helpers::Window => format!("{COMMON}\n{WINDOW_LIB}\n{body}"),
            Helpers::Both => format!("{COMMON}\n{GCRA}\n{WINDOW_LIB}\n{body}"),
        };
        Self {
            eval: redis::Script::new(&code),
            name,
            body: body.to_owned(),
            code,
            function: OnceLock::new(),
        }
    }

    /// The function's name in the library.
    pub(crate) fn function(&self) -> &str {
        self.function.get_or_init(|| {
            let lib = library();
            format!("{}_{}", lib.name, self.name)
        })
    }

    /// A call of this script with no KEYS nor ARGV yet.
    pub(crate) fn prepare_invoke(&'static self) -> Call {
        Call {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A call of this script with its first key.
    pub(crate) fn key<T: ToRedisArgs>(&'static self, key: T) -> Call {
        let mut call = self.prepare_invoke();
        call.key(key);
        call
    }
}

/// A script call ready to send: which script, its KEYS and its ARGV.
pub(crate) struct Call {
    script: &'static Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    /// Appends an ARGV.
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// Appends a key.
    pub(crate) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    fn command(&self, name: &str, target: &[u8]) -> redis::Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(target)
            .arg(self.keys.len())
            .arg(&*self.keys)
            .arg(&*self.args);
        cmd
    }

    /// `FCALL <function> numkeys KEYS ARGV`.
    pub(crate) fn fcall_cmd(&self) -> redis::Cmd {
        self.command("FCALL", self.script.function().as_bytes())
    }

    /// `EVALSHA <sha1> numkeys KEYS ARGV`.
    pub(crate) fn evalsha_cmd(&self) -> redis::Cmd {
        self.command("EVALSHA", self.script.eval.get_hash().as_bytes())
    }

    /// `SCRIPT LOAD <text>`: after `NOSCRIPT`.
    pub(crate) fn script_load_cmd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(&self.script.code);
        cmd
    }
}

impl core::fmt::Debug for Call {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Call")
            .field("script", &self.script.name)
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

/// The largest tolerance `τ = C × T` the scripts accept, exclusive: 2^53 ns
/// (about 104 days), below which doubles hold every integer exactly.
pub(crate) const MAX_TOLERANCE_NS: u64 = 1 << 53;

/// Every script of the crate.
pub(crate) struct Scripts {
    pub(crate) check: Script,
    pub(crate) check_batch: Script,
    pub(crate) reserve: Script,
    pub(crate) cancel: Script,
    pub(crate) inspect: Script,
    pub(crate) window: Script,
    pub(crate) check_all: Script,
    pub(crate) time: Script,
    pub(crate) quota: Script,
    /// `extend.lua`: one step of raising a prefix's expiries.
    pub(crate) extend: Script,
}

impl Scripts {
    /// Every script, in a fixed order (the library's).
    fn all(&self) -> [&Script; 10] {
        [
            &self.check,
            &self.check_batch,
            &self.reserve,
            &self.cancel,
            &self.inspect,
            &self.window,
            &self.check_all,
            &self.time,
            &self.quota,
            &self.extend,
        ]
    }
}

const COMMON: &str = include_str!("../lua/common.lua");
const GCRA: &str = include_str!("../lua/gcra.lua");
const WINDOW_LIB: &str = include_str!("../lua/window_lib.lua");

/// The scripts, built once per process.
pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        use Helpers::{Both, Gcra, None, Window};
        Scripts {
            check: Script::new("check", Gcra, include_str!("../lua/check.lua")),
            check_batch: Script::new("check_batch", Gcra, include_str!("../lua/check_batch.lua")),
            reserve: Script::new("reserve", Gcra, include_str!("../lua/reserve.lua")),
            cancel: Script::new("cancel", Gcra, include_str!("../lua/cancel.lua")),
            inspect: Script::new("inspect", None, include_str!("../lua/inspect.lua")),
            window: Script::new("window", Window, include_str!("../lua/window.lua")),
            check_all: Script::new("check_all", Both, include_str!("../lua/check_all.lua")),
            time: Script::new("time", None, include_str!("../lua/time.lua")),
            quota: Script::new("quota", None, include_str!("../lua/quota.lua")),
            extend: Script::new("extend", None, include_str!("../lua/extend.lua")),
        }
    })
}

/// The Redis 7 function library of every script: its name and the text
/// `FUNCTION LOAD` sends.
pub(crate) struct Library {
    /// `ratelimit_<12 hex digits>`: the SHA-1 of the library's source, so
    /// that a client of another version (other scripts) loads its own
    /// library beside this one instead of replacing it.
    pub(crate) name: String,
    /// `#!lua name=<name>`, then the helpers once, then each script's body
    /// as a registered function.
    pub(crate) code: String,
}

/// The library, built once per process from the same sources as the
/// scripts (no second copy of any logic).
///
/// The helpers read `KEYS` and `ARGV` as globals in `EVAL`; in the library
/// they are two locals every function sets on entry (a function runs to
/// the end before any other starts), declared before the helpers so that
/// the helpers see them. `TAG` (gcra.lua) is reset on entry too: in `EVAL`
/// every call starts it afresh, in the library it outlives a call.
pub(crate) fn library() -> &'static Library {
    static LIBRARY: OnceLock<Library> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let template = |name: &str| {
            let mut code = format!(
                "#!lua name={name}\n\
                 -- generated by ratelimit-redis (script.rs) from lua/*.lua\n\
                 local KEYS, ARGV\n{COMMON}\n{GCRA}\n{WINDOW_LIB}\n"
            );
            for s in scripts().all() {
                code.push_str(&format!(
                    "redis.register_function('{name}_{}', function(keys, args)\n\
                     KEYS, ARGV, TAG = keys, args, ''\n{}\nend)\n",
                    s.name, s.body
                ));
            }
            code
        };
        let hash = redis::Script::new(&template("ratelimit")).get_hash()[..12].to_owned();
        let name = format!("ratelimit_{hash}");
        Library {
            code: template(&name),
            name,
        }
    })
}

/// `FUNCTION LOAD REPLACE <library>`: REPLACE only ever replaces a library
/// of this very name, which holds this very source.
pub(crate) fn function_load_cmd() -> redis::Cmd {
    let mut cmd = redis::cmd("FUNCTION");
    cmd.arg("LOAD").arg("REPLACE").arg(&library().code);
    cmd
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
fn time_args(inv: &mut Call, now: Now) {
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
fn common_args(inv: &mut Call, now: Now, quota: &Quota) {
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
    fn args(&self, inv: &mut Call) {
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
        for script in s.all() {
            assert_eq!(script.eval.get_hash().len(), 40);
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

    /// The helpers share one scope in the library (in `EVAL` a script
    /// starts with only some of them): a name declared twice at their top
    /// level would shadow the first one for every function after it.
    #[test]
    fn the_library_declares_each_helper_once() {
        let mut seen = std::collections::BTreeSet::new();
        for file in [COMMON, GCRA, WINDOW_LIB] {
            for line in file.lines() {
                let Some(rest) = line.strip_prefix("local ") else {
                    continue;
                };
                let rest = rest.strip_prefix("function ").unwrap_or(rest);
                let names = rest.split(['=', '(']).next().unwrap_or_default();
                for name in names.split(',') {
                    let name = name.trim();
                    assert!(seen.insert(name.to_owned()), "{name} declared twice");
                }
            }
        }
        assert!(seen.contains("police") && seen.contains("split"));
        assert!(!seen.contains("KEYS") && !seen.contains("ARGV"));
        let lib = library();
        assert!(lib.code.starts_with(&format!("#!lua name={}\n", lib.name)));
        assert_eq!(lib.name.len(), "ratelimit_".len() + 12);
        for script in scripts().all() {
            let register = format!("redis.register_function('{}',", script.function());
            assert!(lib.code.contains(&register), "{register}");
        }
    }

    #[test]
    fn max_wait_beyond_exact_range_is_unbounded() {
        assert_eq!(max_wait_arg(None), "");
        assert_eq!(max_wait_arg(Some(5)), "5");
        assert_eq!(max_wait_arg(Some(u64::MAX)), "");
    }
}
