//! `ratelimit-core` as a WebAssembly module with a small C ABI, for
//! JavaScript (browsers, Node.js, edge workers) without wasm-bindgen: the
//! pure decision functions, with the state kept by the caller (a `Map`, a
//! KV store, a Durable Object: one integer per key).
//!
//! Every function takes the algorithm as three numbers, `kind` (0 token
//! bucket, 1 leaky bucket, 2 fixed window, 3 sliding window), `limit` (the
//! capacity `C` or the window's `L`) and `period_ns` (a bucket's emission
//! interval `T`, from [`rl_rate`], or a window's `W`), and returns an
//! `i32`: non-negative on success, negative on error, with the message in
//! the I/O block. Results are written to the I/O block at [`rl_io`]:
//!
//! | bytes    | content |
//! | -------- | ------- |
//! | 0..8     | the state after the step, low 64 bits |
//! | 8..16    | the state after the step, high 64 bits (windows only) |
//! | 16..24   | `remaining` (check) |
//! | 24..32   | `retry_after_ns` (when [`RETRY_AFTER`] is set) |
//! | 32..40   | `reset_after_ns` |
//! | 40..48   | `wait_ns` (reserve, admitted) |
//! | 48..56   | `expires_at_ns`: from then on the key may be forgotten |
//! | 56..64   | [`rl_rate`]'s `T`; an error message's length |
//! | 64..320  | text: [`rl_rate`]'s input, an error's message (UTF-8) |
//!
//! All integers are little-endian `u64`; JavaScript passes and reads them as
//! `BigInt`. `js/ratelimit.mjs` wraps all of this in two classes.
//!
//! The block is a static array of atomics, so the crate needs no `unsafe`
//! beyond the `#[unsafe(no_mangle)]` that exports each function. The
//! algorithm is rebuilt from its three numbers on every call (a division
//! for the reciprocal of `T` or `W`), which keeps the module stateless.

#![cfg_attr(target_arch = "wasm32", no_std)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use ratelimit_core::{
    Algorithm, AlgorithmKind, AnyAlgorithm, ConfigError, InsufficientCapacity, Rate, Reservation,
    Shaping,
};

/// The size of the I/O block, in bytes.
const IO_BYTES: usize = 320;
/// Where the text area starts.
const TEXT: usize = 64;

/// The I/O block shared with JavaScript. Atomics with `Relaxed` ordering:
/// plain loads and stores on a single-threaded module, and `Sync` without
/// `unsafe`; JavaScript reads and writes it between calls.
static IO: [AtomicU8; IO_BYTES] = [const { AtomicU8::new(0) }; IO_BYTES];

/// Output word offsets in bytes.
mod word {
    pub(crate) const STATE_LO: usize = 0;
    pub(crate) const STATE_HI: usize = 8;
    pub(crate) const REMAINING: usize = 16;
    pub(crate) const RETRY_AFTER: usize = 24;
    pub(crate) const RESET_AFTER: usize = 32;
    pub(crate) const WAIT: usize = 40;
    pub(crate) const EXPIRES_AT: usize = 48;
    pub(crate) const AUX: usize = 56;
}

/// Result flag: the request is allowed (check) or admitted (reserve).
pub const ALLOWED: i32 = 1;
/// Result flag: the state changed and must be stored (else it need not be).
pub const STORE: i32 = 2;
/// Result flag: `retry_after_ns` is present (else null: admitted, or never).
pub const RETRY_AFTER: i32 = 4;

/// Error: the algorithm's parameters are not usable (message in the block).
pub const ERR_CONFIG: i32 = -1;
/// Error: the cost exceeds the limit; the request can never succeed.
pub const ERR_CAPACITY: i32 = -2;
/// Error: `reserve` on a window algorithm, which cannot shape.
pub const ERR_CANNOT_SHAPE: i32 = -3;
/// Error: `kind` is not 0 to 3.
pub const ERR_KIND: i32 = -4;
/// Error: the rate text is not UTF-8 or longer than the text area.
pub const ERR_TEXT: i32 = -5;

fn put(offset: usize, value: u64) {
    for (cell, byte) in IO[offset..offset + 8].iter().zip(value.to_le_bytes()) {
        cell.store(byte, Ordering::Relaxed);
    }
}

/// Reads the word at `offset` (for the tests).
#[cfg(test)]
fn get(offset: usize) -> u64 {
    let mut bytes = [0; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = IO[offset + i].load(Ordering::Relaxed);
    }
    u64::from_le_bytes(bytes)
}

/// Writes text into the text area, truncated to fit.
struct Text(usize);

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // `get`, not indexing: no bounds-check panic, whose message
            // formatting would pull integer printing into the module.
            let Some(cell) = IO.get(TEXT + self.0) else {
                return Err(fmt::Error);
            };
            cell.store(b, Ordering::Relaxed);
            self.0 += 1;
        }
        Ok(())
    }
}

/// Writes `message` as the error text and returns `code`.
fn fail(code: i32, message: &str) -> i32 {
    let mut text = Text(0);
    // A message longer than the area is cut: still a message.
    let _ = text.write_str(message);
    put(word::AUX, text.0 as u64);
    code
}

/// [`fail`] with the core's message for a configuration error.
fn config(e: ConfigError) -> i32 {
    let mut text = Text(0);
    let _ = write!(text, "{e}");
    put(word::AUX, text.0 as u64);
    ERR_CONFIG
}

fn kind(kind: i32) -> Option<AlgorithmKind> {
    AlgorithmKind::ALL.get(usize::try_from(kind).ok()?).copied()
}

/// The algorithm from its three numbers.
fn algorithm(code: i32, limit: u64, period_ns: u64) -> Result<AnyAlgorithm, i32> {
    let Some(kind) = kind(code) else {
        return Err(fail(ERR_KIND, "unknown algorithm kind: expected 0 to 3"));
    };
    let built = if kind.is_bucket() {
        AnyAlgorithm::with_rate(
            kind,
            limit,
            Rate::from_interval(Duration::from_nanos(period_ns)),
        )
    } else {
        AnyAlgorithm::with_window(kind, limit, Duration::from_nanos(period_ns))
    };
    built.map_err(config)
}

/// The cost exceeds the limit: the message is JavaScript's to write (it
/// knows both numbers), which keeps integer formatting out of the module.
fn capacity(_: InsufficientCapacity) -> i32 {
    fail(ERR_CAPACITY, "")
}

/// The address of the I/O block in the module's memory.
#[expect(unsafe_code, reason = "exported to JavaScript")]
#[unsafe(no_mangle)]
pub extern "C" fn rl_io() -> usize {
    IO.as_ptr() as usize
}

/// Parses the rate (units per second, decimal text such as `2`, `0.5` or
/// `2.5e6`, exactly as the CLI's `--rate`) written as `len` UTF-8 bytes at
/// the text area, and writes its emission interval `T` in nanoseconds to
/// the AUX word. Returns 0, or [`ERR_CONFIG`] / [`ERR_TEXT`].
#[expect(unsafe_code, reason = "exported to JavaScript")]
#[unsafe(no_mangle)]
pub extern "C" fn rl_rate(len: u32) -> i32 {
    let len = len as usize;
    if len > IO_BYTES - TEXT {
        return fail(ERR_TEXT, "the rate's text is longer than 256 bytes");
    }
    let mut bytes = [0u8; IO_BYTES - TEXT];
    for (i, byte) in bytes.iter_mut().take(len).enumerate() {
        *byte = IO[TEXT + i].load(Ordering::Relaxed);
    }
    let Ok(text) = core::str::from_utf8(&bytes[..len]) else {
        return fail(ERR_TEXT, "the rate's text is not UTF-8");
    };
    match text.parse::<Rate>().and_then(|rate| rate.interval_ns()) {
        Ok(interval) => {
            put(word::AUX, interval);
            0
        }
        Err(e) => config(e),
    }
}

/// Checks that the algorithm's parameters are usable: 0, or a negative
/// error with its message.
#[expect(unsafe_code, reason = "exported to JavaScript")]
#[unsafe(no_mangle)]
pub extern "C" fn rl_validate(kind: i32, limit: u64, period_ns: u64) -> i32 {
    match algorithm(kind, limit, period_ns) {
        Ok(_) => 0,
        Err(code) => code,
    }
}

/// Policing: allows or denies a request of `cost` units at `now_ns` for a
/// key whose state is `state_hi:state_lo` (0 for a key never seen).
/// Returns the flags [`ALLOWED`], [`STORE`], [`RETRY_AFTER`], and writes
/// the state after the step, `remaining`, `retry_after_ns`,
/// `reset_after_ns` and `expires_at_ns`; or a negative error
/// ([`ERR_CAPACITY`]: the cost exceeds the limit, nothing is written but
/// the message).
#[expect(unsafe_code, reason = "exported to JavaScript")]
#[unsafe(no_mangle)]
pub extern "C" fn rl_check(
    kind: i32,
    limit: u64,
    period_ns: u64,
    state_lo: u64,
    state_hi: u64,
    now_ns: u64,
    cost: u64,
) -> i32 {
    let algorithm = match algorithm(kind, limit, period_ns) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let state = (u128::from(state_hi) << 64) | u128::from(state_lo);
    let verdict = match algorithm.check_verdict(state, now_ns, cost) {
        Ok(v) => v,
        Err(e) => return capacity(e),
    };
    let after = verdict.state();
    put(word::STATE_LO, after as u64);
    put(word::STATE_HI, (after >> 64) as u64);
    put(word::REMAINING, algorithm.remaining(after, now_ns));
    put(word::RESET_AFTER, algorithm.reset_after_ns(after, now_ns));
    put(word::EXPIRES_AT, algorithm.expires_at(after));
    let mut flags = 0;
    if verdict.allowed() {
        flags |= ALLOWED;
    }
    if verdict.next().is_some() {
        flags |= STORE;
    }
    if let Some(retry) = verdict.retry_after_ns() {
        flags |= RETRY_AFTER;
        put(word::RETRY_AFTER, retry);
    }
    flags
}

/// Shaping (the buckets only): admits a request of `cost` units at
/// `now_ns` to proceed after `wait_ns`, if that is at most `max_wait_ns`
/// (any wait when `bounded` is 0), or rejects it. `tat` is the bucket's
/// state. Returns flags as [`rl_check`], and writes the state after the
/// step, `wait_ns` (admitted) or `retry_after_ns` (rejected),
/// `reset_after_ns` and `expires_at_ns`; or a negative error.
#[expect(unsafe_code, reason = "exported to JavaScript")]
#[unsafe(no_mangle)]
pub extern "C" fn rl_reserve(
    kind: i32,
    limit: u64,
    period_ns: u64,
    tat: u64,
    now_ns: u64,
    cost: u64,
    max_wait_ns: u64,
    bounded: u32,
) -> i32 {
    let algorithm = match algorithm(kind, limit, period_ns) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let Some(bucket) = algorithm.as_bucket() else {
        return fail(
            ERR_CANNOT_SHAPE,
            "a window algorithm cannot shape: reserve needs a bucket",
        );
    };
    let max_wait = (bounded != 0).then_some(max_wait_ns);
    let verdict = match bucket.reserve_verdict(tat, now_ns, cost, max_wait) {
        Ok(v) => v,
        Err(e) => return capacity(e),
    };
    let after = verdict.state();
    put(word::STATE_LO, after);
    put(word::STATE_HI, 0);
    put(word::RESET_AFTER, bucket.reset_after_ns(after, now_ns));
    put(word::EXPIRES_AT, bucket.expires_at(after));
    let mut flags = 0;
    if verdict.next().is_some() {
        flags |= STORE;
    }
    match verdict.decision() {
        Reservation::Admitted { wait, .. } => {
            flags |= ALLOWED;
            put(word::WAIT, duration_ns(wait));
        }
        Reservation::Rejected { retry_after, .. } => {
            if let Some(retry) = retry_after {
                flags |= RETRY_AFTER;
                put(word::RETRY_AFTER, duration_ns(retry));
            }
        }
    }
    flags
}

/// A duration the core built from nanoseconds, back to them.
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A trap, the module's only reaction to a panic (none is reachable: the
/// core neither panics nor overflows on any input).
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The I/O block is one static: the tests take turns.
    static TURN: Mutex<()> = Mutex::new(());

    const S: u64 = 1_000_000_000;

    fn text(len: u64) -> String {
        let bytes: Vec<u8> = (0..len as usize)
            .map(|i| IO[TEXT + i].load(Ordering::Relaxed))
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn write_text(s: &str) -> u32 {
        for (i, b) in s.bytes().enumerate() {
            IO[TEXT + i].store(b, Ordering::Relaxed);
        }
        s.len() as u32
    }

    #[test]
    fn a_token_bucket_through_the_abi() {
        let _turn = TURN.lock().unwrap();
        let len = write_text("2");
        assert_eq!(rl_rate(len), 0);
        let t = get(word::AUX);
        assert_eq!(t, 500_000_000);
        let mut tat = 0;
        for left in [2, 1, 0] {
            let flags = rl_check(0, 3, t, tat, 0, S, 1);
            assert_eq!(flags, ALLOWED | STORE);
            assert_eq!(get(word::REMAINING), left);
            tat = get(word::STATE_LO);
        }
        let flags = rl_check(0, 3, t, tat, 0, S, 1);
        assert_eq!(flags, RETRY_AFTER);
        assert_eq!(get(word::RETRY_AFTER), 500_000_000);
        assert_eq!(get(word::RESET_AFTER), 1_500_000_000);
        assert_eq!(get(word::EXPIRES_AT), tat);
        assert_eq!(rl_check(0, 3, t, tat, 0, S, 4), ERR_CAPACITY);
        // JavaScript writes this message: it knows the cost and capacity.
        assert_eq!(get(word::AUX), 0);
    }

    #[test]
    fn reserve_on_a_leaky_bucket_and_refusals() {
        let _turn = TURN.lock().unwrap();
        let t = 100_000_000; // 10 per second
        assert_eq!(rl_reserve(1, 2, t, 0, S, 1, 0, 0), ALLOWED | STORE);
        assert_eq!(get(word::WAIT), 0);
        let tat = get(word::STATE_LO);
        assert_eq!(rl_reserve(1, 2, t, tat, S, 1, 0, 0), ALLOWED | STORE);
        assert_eq!(get(word::WAIT), 100_000_000);
        // Bounded at 50 ms: the queue ahead drains in 100 ms.
        assert_eq!(rl_reserve(1, 2, t, tat, S, 1, 50_000_000, 1), RETRY_AFTER);
        assert_eq!(get(word::RETRY_AFTER), 50_000_000);
        assert_eq!(rl_reserve(2, 2, t, 0, S, 1, 0, 0), ERR_CANNOT_SHAPE);
        assert_eq!(
            text(get(word::AUX)),
            "a window algorithm cannot shape: reserve needs a bucket"
        );
        assert_eq!(rl_validate(7, 1, 1), ERR_KIND);
        assert_eq!(rl_validate(0, 0, 1), ERR_CONFIG);
        assert_eq!(text(get(word::AUX)), "capacity must be at least 1");
        assert_eq!(rl_validate(3, 1 << 32, S), ERR_CONFIG);
        let len = write_text("fast");
        assert_eq!(rl_rate(len), ERR_CONFIG);
        assert!(text(get(word::AUX)).starts_with("rate must be a decimal number"));
        assert_eq!(rl_rate(10_000), ERR_TEXT);
    }

    #[test]
    fn a_sliding_window_keeps_both_words() {
        let _turn = TURN.lock().unwrap();
        // 10 per second, all of them late in window 1.
        assert_eq!(rl_check(3, 10, S, 0, 0, S + S / 2, 10), ALLOWED | STORE);
        let (lo, hi) = (get(word::STATE_LO), get(word::STATE_HI));
        assert_eq!(hi, 1, "the window index is in the high word");
        // Half of window 1 still weighs at 2.5 s: 5 left.
        assert_eq!(rl_check(3, 10, S, lo, hi, 2 * S + S / 2, 0), ALLOWED);
        assert_eq!(get(word::REMAINING), 5);
    }
}
