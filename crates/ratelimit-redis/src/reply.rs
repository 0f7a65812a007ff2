//! The one place where script replies are decoded into the core's
//! [`Decision`] and [`Reservation`].
//!
//! Every GCRA script answers four integers per decision (see the headers in
//! `lua/`): `allowed` (0 or 1), `remaining` (check) or `wait_ns`
//! (reserve), `retry_after_ns` (-1 for none) and `reset_after_ns`.

use core::time::Duration;

use ratelimit_core::{Decision, Reason, Reservation};

use crate::error::RedisLimitError;

/// The integers of one reply: an array of integers, nothing else.
pub(crate) fn integers(value: redis::Value) -> Result<Vec<i64>, RedisLimitError> {
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
    RedisLimitError::UnexpectedReply(format!("wanted {wanted}, got {value:?}"))
}

fn flag(i: i64) -> Result<bool, RedisLimitError> {
    match i {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(RedisLimitError::UnexpectedReply(format!(
            "wanted 0 or 1 for `allowed`, got {i}"
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

/// Decodes the 4 integers of a `check` decision.
pub(crate) fn decision(slots: &[i64], limit: u64) -> Result<Decision, RedisLimitError> {
    let [allowed, remaining, retry, reset] = four(slots)?;
    Ok(Decision {
        allowed: flag(allowed)?,
        remaining: count(remaining, "remaining")?,
        retry_after: optional_nanos(retry, "retry_after_ns")?,
        reset_after: nanos(reset, "reset_after_ns")?,
        limit,
        reason: Reason::Quota,
    })
}

/// Decodes the 4 integers of a `reserve` answer.
pub(crate) fn reservation(slots: &[i64], limit: u64) -> Result<Reservation, RedisLimitError> {
    let [allowed, wait, retry, reset] = four(slots)?;
    let reset_after = nanos(reset, "reset_after_ns")?;
    Ok(if flag(allowed)? {
        Reservation::Admitted {
            wait: nanos(wait, "wait_ns")?,
            reset_after,
            limit,
            reason: Reason::Quota,
        }
    } else {
        Reservation::Rejected {
            retry_after: optional_nanos(retry, "retry_after_ns")?,
            reset_after,
            limit,
            reason: Reason::Quota,
        }
    })
}

/// Decodes the reply of `reserve.lua`: the 4 integers of the reservation
/// and the state it stored (`None` when it stored nothing), which
/// `cancel.lua` takes to undo exactly this reservation.
pub(crate) fn reservation_reply(
    value: redis::Value,
    limit: u64,
) -> Result<(Reservation, Option<u64>), RedisLimitError> {
    let redis::Value::Array(mut items) = value else {
        return Err(unexpected(&value, "an array"));
    };
    if items.len() != 5 {
        return Err(unexpected(&redis::Value::Array(items), "5 items"));
    }
    let stored = match items.pop() {
        Some(redis::Value::BulkString(b)) if b.is_empty() => None,
        Some(redis::Value::BulkString(b)) => Some(
            core::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    RedisLimitError::UnexpectedReply(format!(
                        "wanted a decimal state, got {:?}",
                        String::from_utf8_lossy(&b)
                    ))
                })?,
        ),
        Some(other) => return Err(unexpected(&other, "a state text")),
        None => unreachable!("5 items"),
    };
    let r = reservation(&integers(redis::Value::Array(items))?, limit)?;
    Ok((r, stored))
}

/// Decodes a batch reply: `n` decisions of 4 integers each.
pub(crate) fn decisions(
    value: redis::Value,
    n: usize,
    limit: u64,
) -> Result<Vec<Decision>, RedisLimitError> {
    let ints = integers(value)?;
    if ints.len() != 4 * n {
        return Err(RedisLimitError::UnexpectedReply(format!(
            "wanted {} integers for {n} keys, got {}",
            4 * n,
            ints.len()
        )));
    }
    ints.chunks_exact(4).map(|c| decision(c, limit)).collect()
}

fn four(slots: &[i64]) -> Result<[i64; 4], RedisLimitError> {
    <[i64; 4]>::try_from(slots)
        .map_err(|_| RedisLimitError::UnexpectedReply(format!("wanted 4 integers, got {slots:?}")))
}

/// A key's state as `inspect.lua` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawState {
    /// The stored `tat` in ns, `None` when the key is missing.
    pub(crate) tat_ns: Option<u64>,
    /// `PTTL`: -2 missing, -1 no expiry, else milliseconds.
    pub(crate) pttl_ms: i64,
    /// The server's `TIME` in ns.
    pub(crate) server_now_ns: u64,
}

/// Decodes the reply of `inspect.lua`.
pub(crate) fn raw_state(value: redis::Value) -> Result<RawState, RedisLimitError> {
    let redis::Value::Array(items) = value else {
        return Err(unexpected(&value, "an array"));
    };
    let text = |v: &redis::Value| -> Result<String, RedisLimitError> {
        match v {
            redis::Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            redis::Value::SimpleString(s) => Ok(s.clone()),
            other => Err(unexpected(other, "a string")),
        }
    };
    let number = |s: &str| -> Result<u64, RedisLimitError> {
        s.parse()
            .map_err(|_| RedisLimitError::UnexpectedReply(format!("wanted a number, got {s:?}")))
    };
    let [tat, pttl, secs, micros] = <[redis::Value; 4]>::try_from(items)
        .map_err(|items| unexpected(&redis::Value::Array(items), "4 items"))?;
    let tat = text(&tat)?;
    let pttl_ms = match pttl {
        redis::Value::Int(i) => i,
        other => return Err(unexpected(&other, "an integer")),
    };
    Ok(RawState {
        tat_ns: if tat.is_empty() {
            None
        } else {
            Some(number(&tat)?)
        },
        pttl_ms,
        server_now_ns: number(&text(&secs)?)?
            .saturating_mul(1_000_000_000)
            .saturating_add(number(&text(&micros)?)?.saturating_mul(1000)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects() {
        let d = decision(&[1, 9, -1, 500], 10).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 9);
        assert_eq!(d.retry_after, None);
        assert_eq!(d.reset_after, Duration::from_nanos(500));
        let r = reservation(&[0, 0, 250, 7], 3).unwrap();
        assert_eq!(r.retry_after(), Some(Duration::from_nanos(250)));
        assert!(decision(&[2, 0, -1, 0], 1).is_err());
        assert!(decision(&[1, -3, -1, 0], 1).is_err());
        assert!(decision(&[1, 0, -1], 1).is_err());
        assert!(integers(redis::Value::Nil).is_err());
        let reply = |last: &[u8]| {
            redis::Value::Array(vec![
                redis::Value::Int(1),
                redis::Value::Int(0),
                redis::Value::Int(-1),
                redis::Value::Int(9),
                redis::Value::BulkString(last.to_vec()),
            ])
        };
        let (r, stored) = reservation_reply(reply(b"1764280800123456000"), 3).unwrap();
        assert!(r.is_admitted());
        assert_eq!(stored, Some(1_764_280_800_123_456_000));
        assert_eq!(reservation_reply(reply(b""), 3).unwrap().1, None);
        assert!(reservation_reply(reply(b"12x"), 3).is_err());
        let batch = redis::Value::Array(vec![redis::Value::Int(0); 8]);
        assert_eq!(decisions(batch, 2, 5).unwrap().len(), 2);
    }
}
