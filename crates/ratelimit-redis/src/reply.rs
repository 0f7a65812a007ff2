//! The one place where script replies are decoded into the core's
//! [`Decision`] and [`Reservation`].
//!
//! Every GCRA script answers five integers per decision (see the headers in
//! `lua/`): `allowed` (0 or 1), `remaining` (check) or `wait_ns`
//! (reserve), `retry_after_ns` (-1 for none), `reset_after_ns`, and
//! `repaired` (0 or 1: the key held a corrupt state, rewritten as fully
//! consumed). Whatever Redis sends, decoding never panics: anything else is
//! `UnexpectedReply` (a property test feeds it arbitrary replies).

use core::time::Duration;

use ratelimit_core::{Algorithm, AnyAlgorithm, Decision, Reason, Reservation, WindowState};

use crate::error::RedisLimitError;
use crate::script::{Admitted, MAX_TOLERANCE_NS};

/// A decoded answer and whether the script repaired a corrupt state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer<T> {
    pub(crate) value: T,
    pub(crate) repaired: bool,
}

/// The integers of one reply: an array of integers, nothing else.
fn integers(value: redis::Value) -> Result<Vec<i64>, RedisLimitError> {
    let redis::Value::Array(items) = value else {
        return Err(unexpected(&value, "an array of integers"));
    };
    items
        .into_iter()
        .map(|item| match item {
            redis::Value::Int(i) => Ok(i),
            other => Err(unexpected(&other, "an integer")),
        })
        .collect()
}

fn unexpected(value: &redis::Value, wanted: &str) -> RedisLimitError {
    let mut shown = format!("{value:?}");
    if shown.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    RedisLimitError::UnexpectedReply(format!("wanted {wanted}, got {shown}"))
}

fn flag(i: i64, what: &str) -> Result<bool, RedisLimitError> {
    match i {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(RedisLimitError::UnexpectedReply(format!(
            "wanted 0 or 1 for `{what}`, got {i}"
        ))),
    }
}

fn count(i: i64, what: &str) -> Result<u64, RedisLimitError> {
    u64::try_from(i).map_err(|_| {
        RedisLimitError::UnexpectedReply(format!("wanted a non-negative {what}, got {i}"))
    })
}

fn nanos(i: i64, what: &str) -> Result<Duration, RedisLimitError> {
    count(i, what).map(Duration::from_nanos)
}

fn optional_nanos(i: i64, what: &str) -> Result<Option<Duration>, RedisLimitError> {
    if i == -1 {
        Ok(None)
    } else {
        nanos(i, what).map(Some)
    }
}

/// Decodes the 5 integers of a `check` decision.
fn decision(slots: &[i64], limit: u64) -> Result<Answer<Decision>, RedisLimitError> {
    let [allowed, remaining, retry, reset, repaired] = five(slots)?;
    Ok(Answer {
        value: Decision {
            allowed: flag(allowed, "allowed")?,
            remaining: count(remaining, "remaining")?,
            retry_after: optional_nanos(retry, "retry_after_ns")?,
            reset_after: nanos(reset, "reset_after_ns")?,
            limit,
            reason: Reason::Quota,
        },
        repaired: flag(repaired, "repaired")?,
    })
}

/// Decodes the reply of `check.lua`.
pub(crate) fn check(value: redis::Value, limit: u64) -> Result<Answer<Decision>, RedisLimitError> {
    decision(&integers(value)?, limit)
}

/// Decodes the reply of a refundable check: the decision and what the
/// admission stored (`None` when it stored nothing): a bucket's sixth slot
/// is the state text, a window's the window index (-1: none).
pub(crate) fn check_receipt(
    value: redis::Value,
    limit: u64,
    window: bool,
) -> Result<Answer<(Decision, Option<Admitted>)>, RedisLimitError> {
    let redis::Value::Array(mut items) = value else {
        return Err(unexpected(&value, "an array"));
    };
    if items.len() != 6 {
        return Err(unexpected(&redis::Value::Array(items), "6 items"));
    }
    let admitted = match (items.pop(), window) {
        (Some(redis::Value::Int(-1)), true) => None,
        (Some(redis::Value::Int(k)), true) => Some(Admitted::Window(count(k, "window")?)),
        (Some(redis::Value::BulkString(b)), false) if b.is_empty() => None,
        (Some(redis::Value::BulkString(b)), false) => {
            Some(Admitted::Tat(decimal(&b).ok_or_else(|| {
                RedisLimitError::UnexpectedReply(format!(
                    "wanted a decimal state, got {:?}",
                    String::from_utf8_lossy(&b)
                ))
            })?))
        }
        (Some(other), _) => return Err(unexpected(&other, "a receipt")),
        (None, _) => return Err(RedisLimitError::UnexpectedReply("an empty reply".into())),
    };
    let d = decision(&integers(redis::Value::Array(items))?, limit)?;
    Ok(Answer {
        value: (d.value, admitted),
        repaired: d.repaired,
    })
}

/// Decodes a batch reply: `n` decisions of 5 integers each.
pub(crate) fn batch(
    value: redis::Value,
    n: usize,
    limit: u64,
) -> Result<Vec<Answer<Decision>>, RedisLimitError> {
    let ints = integers(value)?;
    if Some(ints.len()) != n.checked_mul(5) {
        return Err(RedisLimitError::UnexpectedReply(format!(
            "wanted 5 integers for each of {n} keys, got {}",
            ints.len()
        )));
    }
    ints.chunks_exact(5).map(|c| decision(c, limit)).collect()
}

/// Decodes the reply of `reserve.lua`: the reservation and the state it
/// stored (`None` when it stored nothing), which `cancel.lua` takes to undo
/// exactly this reservation.
pub(crate) fn reserve(
    value: redis::Value,
    limit: u64,
) -> Result<Answer<(Reservation, Option<u64>)>, RedisLimitError> {
    let redis::Value::Array(mut items) = value else {
        return Err(unexpected(&value, "an array"));
    };
    if items.len() != 6 {
        return Err(unexpected(&redis::Value::Array(items), "6 items"));
    }
    let stored = match items.pop() {
        Some(redis::Value::BulkString(b)) if b.is_empty() => None,
        Some(redis::Value::BulkString(b)) => Some(decimal(&b).ok_or_else(|| {
            RedisLimitError::UnexpectedReply(format!(
                "wanted a decimal state, got {:?}",
                String::from_utf8_lossy(&b)
            ))
        })?),
        Some(other) => return Err(unexpected(&other, "a state text")),
        None => return Err(RedisLimitError::UnexpectedReply("an empty reply".into())),
    };
    let [allowed, wait, retry, reset, repaired] = five(&integers(redis::Value::Array(items))?)?;
    Ok(Answer {
        value: (
            if flag(allowed, "allowed")? {
                Reservation::Admitted {
                    wait: nanos(wait, "wait_ns")?,
                    reset_after: nanos(reset, "reset_after_ns")?,
                    limit,
                    reason: Reason::Quota,
                }
            } else {
                Reservation::Rejected {
                    retry_after: optional_nanos(retry, "retry_after_ns")?,
                    reset_after: nanos(reset, "reset_after_ns")?,
                    limit,
                    reason: Reason::Quota,
                }
            },
            stored,
        ),
        repaired: flag(repaired, "repaired")?,
    })
}

/// Decodes the reply of `cancel.lua`: whether the reservation was undone.
pub(crate) fn cancel(value: redis::Value) -> Result<bool, RedisLimitError> {
    match value {
        redis::Value::Int(0) => Ok(false),
        redis::Value::Int(1) => Ok(true),
        other => Err(unexpected(&other, "0 or 1 from cancel")),
    }
}

fn five(slots: &[i64]) -> Result<[i64; 5], RedisLimitError> {
    <[i64; 5]>::try_from(slots)
        .map_err(|_| RedisLimitError::UnexpectedReply(format!("wanted 5 integers, got {slots:?}")))
}

fn decimal(bytes: &[u8]) -> Option<u64> {
    // A state stored under a changed quota carries its tag, `tat:tag`.
    let bytes = bytes
        .iter()
        .position(|&b| b == b':')
        .map_or(bytes, |i| &bytes[..i]);
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(bytes).ok()?.parse().ok()
}

/// One key's state as Redis holds it, for operators (see
/// [`RedisLimiter::inspect`](crate::RedisLimiter::inspect)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyState {
    /// A bucket's stored `tat` in nanoseconds, `None` when the key does
    /// not exist (a full token bucket, an empty leaky bucket), is corrupt,
    /// or is a window's.
    pub tat_ns: Option<u64>,
    /// A window algorithm's stored state (its window index and counts as
    /// stored, not slid to the server's now), `None` when the key does not
    /// exist, is corrupt, or is a bucket's.
    pub window: Option<WindowState>,
    /// The server's `TIME` when the state was read, in nanoseconds.
    pub server_now_ns: u64,
    /// The key's remaining TTL; `None` when it has none or does not exist.
    pub ttl: Option<Duration>,
    /// The time until the key is equivalent to a missing one, on the
    /// server's clock: `max(0, tat − server now)` for a bucket (back to its
    /// initial state), the end of the window (fixed) or of the next window
    /// (sliding) that still counts.
    pub reset_after: Duration,
    /// Whole units available now, on the server's clock (tokens for a token
    /// bucket, free queue slots for a leaky bucket, what is left of a
    /// window's limit).
    pub remaining: u64,
    /// The key holds something that is not a rate-limit state (another
    /// type, text that is not a decimal state, a time beyond the horizon of
    /// 2^53 ns ahead): the next call rewrites it as fully consumed, which
    /// `reset_after` and `remaining` already show.
    pub corrupt: bool,
}

/// A window's state text, `k:count` (fixed) or `k:count:previous`
/// (sliding), as `window.lua` stores it.
fn window_state(text: &[u8], sliding: bool) -> Option<WindowState> {
    let text = core::str::from_utf8(text).ok()?;
    let mut parts = text.split(':').map(|p| decimal(p.as_bytes()));
    let window = parts.next()??;
    let count = parts.next()??;
    let previous = if sliding { parts.next()?? } else { 0 };
    if parts.next().is_some()
        || [window, count, previous]
            .iter()
            .any(|&n| n >= MAX_TOLERANCE_NS)
    {
        return None;
    }
    Some(WindowState {
        window,
        count,
        previous,
    })
}

/// Decodes the reply of `inspect.lua`, read under `algorithm`.
pub(crate) fn inspect(
    value: redis::Value,
    algorithm: &AnyAlgorithm,
) -> Result<KeyState, RedisLimitError> {
    let redis::Value::Array(items) = value else {
        return Err(unexpected(&value, "an array"));
    };
    let bytes = |v: &redis::Value| -> Result<Vec<u8>, RedisLimitError> {
        match v {
            redis::Value::BulkString(b) => Ok(b.clone()),
            redis::Value::SimpleString(s) => Ok(s.clone().into_bytes()),
            other => Err(unexpected(other, "a string")),
        }
    };
    let number = |v: &redis::Value| -> Result<u64, RedisLimitError> {
        let b = bytes(v)?;
        decimal(&b).ok_or_else(|| {
            RedisLimitError::UnexpectedReply(format!(
                "wanted a number, got {:?}",
                String::from_utf8_lossy(&b)
            ))
        })
    };
    let [tat, pttl, secs, micros, kind] = <[redis::Value; 5]>::try_from(items)
        .map_err(|items| unexpected(&redis::Value::Array(items), "5 items"))?;
    let text = bytes(&tat)?;
    let kind = bytes(&kind)?;
    let redis::Value::Int(pttl_ms) = pttl else {
        return Err(unexpected(&pttl, "an integer"));
    };
    let now = number(&secs)?
        .saturating_mul(1_000_000_000)
        .saturating_add(number(&micros)?.saturating_mul(1000));
    let ttl = u64::try_from(pttl_ms).ok().map(Duration::from_millis);
    let limit = algorithm.limit();
    let (tat_ns, window, corrupt, state) = match *algorithm {
        AnyAlgorithm::TokenBucket(_) | AnyAlgorithm::LeakyBucket(_) => {
            let (tat_ns, corrupt) = match kind.as_slice() {
                b"none" => (None, false),
                b"string" => match decimal(&text) {
                    Some(tat) if tat.saturating_sub(now) <= MAX_TOLERANCE_NS => (Some(tat), false),
                    _ => (None, true),
                },
                _ => (None, true),
            };
            // A corrupt state reads as what the next call makes of it:
            // fully consumed.
            let tat = match (tat_ns, corrupt) {
                (_, true) => now.saturating_add(algorithm.period_ns()),
                (tat, false) => tat.unwrap_or(0),
            };
            (tat_ns, None, corrupt, u128::from(tat))
        }
        AnyAlgorithm::FixedWindow(_) | AnyAlgorithm::SlidingWindow(_) => {
            let sliding = matches!(algorithm, AnyAlgorithm::SlidingWindow(_));
            let (window, corrupt) = match kind.as_slice() {
                b"none" => (None, false),
                b"string" => match window_state(&text, sliding) {
                    Some(w) => (Some(w), false),
                    None => (None, true),
                },
                _ => (None, true),
            };
            let state = match (window, corrupt) {
                // Fully consumed in the server's current window.
                (_, true) => WindowState {
                    window: now / algorithm.period_ns(),
                    count: limit,
                    previous: 0,
                },
                (w, false) => w.unwrap_or_default(),
            };
            let bits = if sliding {
                state.to_sliding()
            } else {
                state.to_fixed()
            };
            (None, window, corrupt, bits)
        }
    };
    Ok(KeyState {
        tat_ns,
        window,
        server_now_ns: now,
        ttl,
        reset_after: Duration::from_nanos(algorithm.reset_after_ns(state, now)),
        remaining: algorithm.remaining(state, now),
        corrupt,
    })
}

/// A request to convert a key's state (`adopt` in `lua/gcra.lua`):
/// `{'convert', stored text, now}`, as (stored text, now in ns); `None`
/// for any other reply (a decision).
pub(crate) fn convert_ask(value: &redis::Value) -> Result<Option<(String, u64)>, RedisLimitError> {
    let redis::Value::Array(items) = value else {
        return Ok(None);
    };
    match items.as_slice() {
        [redis::Value::BulkString(word), stored, now] if word.as_slice() == b"convert" => {
            let (redis::Value::BulkString(stored), redis::Value::BulkString(now)) = (stored, now)
            else {
                return Err(unexpected(value, "a stored state and a time"));
            };
            let now = decimal(now).ok_or_else(|| unexpected(value, "a decimal time"))?;
            let stored = String::from_utf8(stored.clone())
                .map_err(|_| unexpected(value, "a stored state in ASCII"))?;
            Ok(Some((stored, now)))
        }
        _ => Ok(None),
    }
}

/// Decodes `TIME` (`{seconds, microseconds}`) as nanoseconds.
/// A SCAN cursor, as `extend.lua` answers it (`"0"` when the walk is
/// done).
pub(crate) fn cursor(value: redis::Value) -> Result<String, RedisLimitError> {
    match &value {
        redis::Value::BulkString(b) if decimal(b).is_some() => {
            Ok(String::from_utf8_lossy(b).into_owned())
        }
        redis::Value::Int(n) if *n >= 0 => Ok(n.to_string()),
        _ => Err(unexpected(&value, "a SCAN cursor")),
    }
}

pub(crate) fn time(value: redis::Value) -> Result<u64, RedisLimitError> {
    let redis::Value::Array(items) = &value else {
        return Err(unexpected(&value, "TIME"));
    };
    let part = |i: usize| match items.get(i) {
        Some(redis::Value::BulkString(b)) => decimal(b),
        Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    match (part(0), part(1)) {
        (Some(s), Some(us)) if items.len() == 2 => s
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(us.checked_mul(1000)?))
            .ok_or_else(|| unexpected(&value, "a time in u64 ns")),
        _ => Err(unexpected(&value, "TIME")),
    }
}

/// Decodes the reply of `quota.lua`: `None` when the change was
/// appended, else the entries the caller has not seen.
pub(crate) fn quota_record(value: redis::Value) -> Result<Option<Vec<String>>, RedisLimitError> {
    let redis::Value::Array(items) = value else {
        return Err(unexpected(&value, "the quota record"));
    };
    let mut items = items.into_iter();
    match items.next() {
        Some(redis::Value::Int(1)) => Ok(None),
        Some(redis::Value::Int(0)) => items
            .map(|e| match e {
                redis::Value::BulkString(b) => String::from_utf8(b)
                    .map_err(|_| RedisLimitError::UnexpectedReply("a change not in ASCII".into())),
                other => Err(unexpected(&other, "a change")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(RedisLimitError::UnexpectedReply(
            "wanted the quota record's reply".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ratelimit_core::Rate;

    fn ints(v: &[i64]) -> redis::Value {
        redis::Value::Array(v.iter().map(|&i| redis::Value::Int(i)).collect())
    }

    #[test]
    fn decodes_and_rejects() {
        let d = check(ints(&[1, 9, -1, 500, 0]), 10).unwrap();
        assert!(d.value.allowed && !d.repaired);
        assert_eq!(d.value.remaining, 9);
        assert_eq!(d.value.retry_after, None);
        assert_eq!(d.value.reset_after, Duration::from_nanos(500));
        assert!(check(ints(&[0, 0, 7, 500, 1]), 10).unwrap().repaired);
        for bad in [
            &[2, 0, -1, 0, 0][..],
            &[1, -3, -1, 0, 0],
            &[1, 0, -2, 0, 0],
            &[1, 0, -1, 0, 2],
            &[1, 0, -1, 0],
        ] {
            assert!(check(ints(bad), 1).is_err(), "{bad:?}");
        }
        assert!(check(redis::Value::Nil, 1).is_err());
        let reply = |last: &[u8]| {
            let mut v = vec![
                redis::Value::Int(1),
                redis::Value::Int(0),
                redis::Value::Int(-1),
                redis::Value::Int(9),
                redis::Value::Int(0),
            ];
            v.push(redis::Value::BulkString(last.to_vec()));
            redis::Value::Array(v)
        };
        let r = reserve(reply(b"1764280800123456000"), 3).unwrap();
        assert!(r.value.0.is_admitted());
        assert_eq!(r.value.1, Some(1_764_280_800_123_456_000));
        assert_eq!(reserve(reply(b""), 3).unwrap().value.1, None);
        assert!(reserve(reply(b"12x"), 3).is_err());
        assert!(reserve(reply(b"+12"), 3).is_err());
        assert_eq!(batch(ints(&[0; 10]), 2, 5).unwrap().len(), 2);
        assert!(batch(ints(&[0; 10]), 3, 5).is_err());
        assert!(batch(ints(&[]), usize::MAX, 5).is_err());
        assert!(cancel(redis::Value::Int(1)).unwrap());
        assert!(cancel(redis::Value::Int(2)).is_err());
    }

    #[test]
    fn inspect_reads_corrupt_states_as_fully_consumed() {
        let q = AnyAlgorithm::TokenBucket(ratelimit_core::TokenBucket::new(
            ratelimit_core::Quota::new(4, Rate::per_second(1)).unwrap(),
        ));
        let reply = |tat: &str, kind: &str| {
            redis::Value::Array(vec![
                redis::Value::BulkString(tat.as_bytes().to_vec()),
                redis::Value::Int(-1),
                redis::Value::BulkString(b"100".to_vec()),
                redis::Value::BulkString(b"0".to_vec()),
                redis::Value::SimpleString(kind.to_owned()),
            ])
        };
        let ok = inspect(reply("101000000000", "string"), &q).unwrap();
        assert_eq!(
            (ok.tat_ns, ok.corrupt, ok.remaining),
            (Some(101_000_000_000), false, 3)
        );
        let missing = inspect(reply("", "none"), &q).unwrap();
        assert_eq!(
            (missing.tat_ns, missing.corrupt, missing.remaining),
            (None, false, 4)
        );
        for (tat, kind) in [
            ("garbage", "string"),
            ("99999999999999999999", "string"),
            ("", "hash"),
        ] {
            let s = inspect(reply(tat, kind), &q).unwrap();
            assert!(s.corrupt, "{tat} {kind}");
            assert_eq!((s.tat_ns, s.remaining), (None, 0));
            assert_eq!(s.reset_after, Duration::from_secs(4));
        }
    }

    #[test]
    fn inspect_reads_window_counts() {
        let reply = |text: &str| {
            redis::Value::Array(vec![
                redis::Value::BulkString(text.as_bytes().to_vec()),
                redis::Value::Int(1500),
                redis::Value::BulkString(b"100".to_vec()),
                redis::Value::BulkString(b"500000".to_vec()),
                redis::Value::SimpleString("string".to_owned()),
            ])
        };
        // Server now 100.5 s; window 1 s.
        let sliding =
            AnyAlgorithm::SlidingWindow(ratelimit_core::SlidingWindow::per_second(10).unwrap());
        let s = inspect(reply("100:4:6"), &sliding).unwrap();
        let w = s.window.unwrap();
        assert_eq!((w.window, w.count, w.previous), (100, 4, 6));
        // 10 − 4 − ⌈6 × 0.5⌉ = 3; both counts slide out at 102 s.
        assert_eq!(s.remaining, 3);
        assert_eq!(s.reset_after, Duration::from_millis(1500));
        assert_eq!(s.tat_ns, None);
        let fixed = AnyAlgorithm::FixedWindow(ratelimit_core::FixedWindow::per_second(10).unwrap());
        let f = inspect(reply("100:4"), &fixed).unwrap();
        assert_eq!(
            (f.remaining, f.reset_after),
            (6, Duration::from_millis(500))
        );
        // An old window counts nothing.
        assert_eq!(inspect(reply("99:10"), &fixed).unwrap().remaining, 10);
        for bad in ["100:4:6", "x:1", "100", "100:99999999999999999"] {
            let c = inspect(reply(bad), &fixed).unwrap();
            assert!(c.corrupt, "{bad}");
            assert_eq!(c.remaining, 0);
        }
    }

    /// Any Redis value, nested a few levels.
    fn value() -> impl Strategy<Value = redis::Value> {
        let leaf = prop_oneof![
            Just(redis::Value::Nil),
            Just(redis::Value::Okay),
            any::<i64>().prop_map(redis::Value::Int),
            prop_oneof![Just(-1i64), Just(0), Just(1), 0..1_000_000i64].prop_map(redis::Value::Int),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(redis::Value::BulkString),
            "[0-9]{0,22}".prop_map(|s| redis::Value::BulkString(s.into_bytes())),
            ".{0,8}".prop_map(redis::Value::SimpleString),
            any::<f64>().prop_map(redis::Value::Double),
            any::<bool>().prop_map(redis::Value::Boolean),
        ];
        leaf.prop_recursive(3, 64, 12, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..12).prop_map(redis::Value::Array),
                proptest::collection::vec(inner, 0..4).prop_map(redis::Value::Set),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No reply panics a decoder: each answers a value or an
        /// `UnexpectedReply`.
        #[test]
        fn no_reply_panics_the_decoders(v in value(), n in 0usize..4, limit in any::<u64>()) {
            let q = AnyAlgorithm::SlidingWindow(ratelimit_core::SlidingWindow::per_second(3).unwrap());
            for r in [
                check(v.clone(), limit).err(),
                reserve(v.clone(), limit).err(),
                batch(v.clone(), n, limit).err(),
                cancel(v.clone()).err(),
                check_receipt(v.clone(), limit, n % 2 == 0).err(),
                inspect(v.clone(), &q).err(),
            ].into_iter().flatten() {
                prop_assert!(matches!(r, RedisLimitError::UnexpectedReply(_)), "{r}");
            }
        }

        /// Replies of the right shape decode exactly when every slot is in
        /// range.
        #[test]
        fn well_shaped_replies_decode_when_in_range(slots in proptest::array::uniform5(-2i64..3)) {
            let ok = check(ints(&slots), 1).is_ok();
            let in_range = (0..=1).contains(&slots[0]) && slots[1] >= 0 && slots[2] >= -1
                && slots[3] >= 0 && (0..=1).contains(&slots[4]);
            prop_assert_eq!(ok, in_range);
        }
    }
}
