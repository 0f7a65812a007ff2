//! The response header fields: `RateLimit-Policy` and `RateLimit` of
//! draft-ietf-httpapi-ratelimit-headers-11 (Structured Fields lists), and
//! `Retry-After` (RFC 9110, delay in seconds).
//!
//! - `RateLimit-Policy: "<name>";q=<C>;w=<ceil(C × T) s>`: the quota
//!   (capacity) and the window in which a full quota refills.
//! - `RateLimit: "<name>";r=<remaining>;t=<s>`: the available quota now
//!   and the effective window, the whole seconds within which no more than
//!   `r` units can be used: the time until one more unit accrues, rounded
//!   up. `t` is left out when the bucket is full (nothing accrues).
//! - `Retry-After: <ceil(retry_after) s>` on a denial.

use core::fmt::Write as _;
use core::time::Duration;

use http::HeaderValue;
use http::header::HeaderName;
use ratelimit_core::{Decision, Quota, Reason};

/// `RateLimit-Policy`.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `name` as a Structured Fields String (`"..."`, with `"` and `\`
/// escaped), or `None` if it holds a character a String cannot (only
/// printable ASCII, 0x20 to 0x7E, is allowed).
pub(crate) fn sf_string(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if !(' '..='~').contains(&c) {
            return None;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn ceil_secs_ns(ns: u128) -> u128 {
    ns.div_ceil(1_000_000_000)
}

/// The `RateLimit-Policy` value of `quota` under the policy `name` (an
/// SF String as made by [`sf_string`]).
pub(crate) fn policy(name: &str, quota: &Quota) -> HeaderValue {
    let window = ceil_secs_ns(u128::from(quota.tolerance_ns())).max(1);
    let text = format!("{name};q={};w={window}", quota.capacity());
    HeaderValue::try_from(text).expect("an SF String and integers are a valid header value")
}

/// The seconds of the effective window `t` after `decision`, or `None`
/// when it is not defined (a full bucket).
pub(crate) fn effective_window(decision: &Decision, quota: &Quota) -> Option<u64> {
    match decision.reason {
        Reason::Quota | Reason::Fallback => {
            if decision.remaining >= decision.limit {
                return None;
            }
            // remaining = floor((τ − used) / T) with used = tat' − now =
            // reset_after: one more unit accrues when used drops to
            // τ − (remaining + 1) × T.
            let used = decision.reset_after.as_nanos();
            let next = (u128::from(decision.remaining) + 1) * u128::from(quota.interval_ns());
            let wait = (used + next).saturating_sub(u128::from(quota.tolerance_ns()));
            Some(u64::try_from(ceil_secs_ns(wait)).unwrap_or(u64::MAX))
        }
        // A full key table or a backend failing closed: nothing until the
        // retry.
        _ => decision.retry_after.map(ceil_secs),
    }
}

/// The `RateLimit` value after `decision`, or `None` when the decision
/// counted nothing (a backend failing open).
pub(crate) fn ratelimit(name: &str, decision: &Decision, quota: &Quota) -> Option<HeaderValue> {
    if decision.reason == Reason::FailOpen {
        return None;
    }
    let mut text = String::with_capacity(name.len() + 24);
    let _ = write!(text, "{name};r={}", decision.remaining);
    if let Some(t) = effective_window(decision, quota) {
        let _ = write!(text, ";t={t}");
    }
    Some(HeaderValue::try_from(text).expect("an SF String and integers are a valid header value"))
}

/// The `Retry-After` value of a wait: whole seconds rounded up, so at
/// least 1 for any wait above zero.
pub(crate) fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(ceil_secs(wait))
}

#[cfg(test)]
mod tests {
    use ratelimit_core::Rate;

    use super::*;

    fn decision(allowed: bool, remaining: u64, reset_ms: u64, retry_ms: Option<u64>) -> Decision {
        Decision {
            allowed,
            remaining,
            retry_after: retry_ms.map(Duration::from_millis),
            reset_after: Duration::from_millis(reset_ms),
            limit: 10,
            reason: Reason::Quota,
        }
    }

    #[test]
    fn strings() {
        assert_eq!(sf_string("default").as_deref(), Some("\"default\""));
        assert_eq!(sf_string("a\"b\\c").as_deref(), Some("\"a\\\"b\\\\c\""));
        assert_eq!(sf_string("tab\there"), None);
        assert_eq!(sf_string("é"), None);
    }

    #[test]
    fn values() {
        // 10 per 5 s: T = 0.5 s, τ = 5 s.
        let quota = Quota::new(10, Rate::per_second(2)).unwrap();
        assert_eq!(policy("\"api\"", &quota), "\"api\";q=10;w=5");
        let q3 = Quota::new(3, Rate::per_second(3)).unwrap(); // τ = 1.000000002 s
        assert_eq!(policy("\"x\"", &q3), "\"x\";q=3;w=2");
        // After one request: 9 left, full again in 0.5 s, the 10th unit in 0.5 s.
        let d = decision(true, 9, 500, None);
        assert_eq!(ratelimit("\"api\"", &d, &quota).unwrap(), "\"api\";r=9;t=1");
        // Empty: the next unit in 0.5 s (the denial's retry).
        let d = decision(false, 0, 5_000, Some(500));
        assert_eq!(ratelimit("\"api\"", &d, &quota).unwrap(), "\"api\";r=0;t=1");
        assert_eq!(effective_window(&d, &quota), Some(1));
        // 3.2 s of debt beyond empty (a reservation): 3.7 s until one unit.
        let d = decision(false, 0, 8_200, Some(3_700));
        assert_eq!(effective_window(&d, &quota), Some(4));
        // Full bucket: no window.
        let d = decision(true, 10, 0, None);
        assert_eq!(ratelimit("\"api\"", &d, &quota).unwrap(), "\"api\";r=10");
        // Fail open: nothing counted, no RateLimit field.
        let d = Decision {
            reason: Reason::FailOpen,
            ..decision(true, 0, 0, None)
        };
        assert_eq!(ratelimit("\"api\"", &d, &quota), None);
        // Key table full: nothing until the retry.
        let d = Decision {
            reason: Reason::KeyTableFull,
            ..decision(false, 0, 0, Some(2_500))
        };
        assert_eq!(ratelimit("\"api\"", &d, &quota).unwrap(), "\"api\";r=0;t=3");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::from_nanos(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1_000)), "1");
        assert_eq!(retry_after(Duration::from_millis(1_001)), "2");
        assert_eq!(retry_after(Duration::ZERO), "0");
    }
}
