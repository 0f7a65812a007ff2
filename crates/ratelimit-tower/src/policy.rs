//! The layer's policy: its name (validated once, in the forms the headers
//! and the metrics need) and the header values that describe a limiter's
//! quota and a decision: `RateLimit-Policy` and `RateLimit`.
//!
//! This is the one module that reads a limiter's algorithm and quota (what
//! [`Limiter::algorithm`](crate::Limiter::algorithm) reports): a change in
//! how limiters describe their quota changes this file and the trait,
//! nothing else.
//!
//! - `RateLimit-Policy: "<name>";q=<L>;w=<s>`: the quota (a bucket's
//!   capacity `C`, a window's limit `L`) and the window `w` it applies to:
//!   for a bucket `⌈C × T⌉` seconds, the time in which a full quota
//!   refills; for a fixed or sliding window its length `W`, rounded up.
//! - `RateLimit: "<name>";r=<remaining>;t=<s>`: the available quota now
//!   and the effective window: the seconds until more quota accrues, so
//!   that no more than `r` units can be used within `t`. Buckets: until one
//!   more unit accrues, left out when the bucket is full. Fixed window: the
//!   time to the window's end (nothing comes back before), left out when
//!   nothing was counted in it. Sliding window: when denied, the exact
//!   `retry_after`; when allowed, left out, because when the next unit
//!   accrues depends on the previous window's count, which a decision does
//!   not carry.

use core::fmt;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue};
use ratelimit_core::{Algorithm, AnyAlgorithm, Decision, Quota, Reason};

use crate::headers::{self, RATELIMIT, RATELIMIT_POLICY, ceil_secs};

/// The default policy name, in `RateLimit-Policy` and `RateLimit`.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// A policy name that cannot be a Structured Fields String: only printable
/// ASCII (0x20 to 0x7E) is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidName(pub(crate) String);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rate-limit policy name {:?}: only printable ASCII (0x20 to 0x7E) is allowed",
            self.0
        )
    }
}

/// A layer's policy: its name in three forms and the `RateLimit-Policy`
/// value of the quota it saw first.
#[derive(Debug)]
pub struct Policy {
    /// As given.
    name: Arc<str>,
    /// As a Structured Fields String, quoted.
    sf: Box<str>,
    /// As a metrics label value.
    #[cfg(feature = "metrics")]
    label: metrics::SharedString,
    /// The `RateLimit-Policy` value of the first quota seen: a limiter
    /// with one quota builds it once; another quota is formatted per
    /// response.
    first: OnceLock<(AnyAlgorithm, HeaderValue)>,
}

impl Default for Policy {
    /// The policy named [`DEFAULT_POLICY_NAME`], which is valid: built
    /// without a check that could fail.
    fn default() -> Self {
        Self {
            name: Arc::from(DEFAULT_POLICY_NAME),
            sf: Box::from("\"default\""),
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::from(DEFAULT_POLICY_NAME),
            first: OnceLock::new(),
        }
    }
}

impl Policy {
    /// The policy named `name`.
    pub(crate) fn new(name: &str) -> Result<Self, InvalidName> {
        let sf = headers::sf_string(name).ok_or_else(|| InvalidName(name.to_owned()))?;
        Ok(Self {
            name: Arc::from(name),
            sf: sf.into_boxed_str(),
            #[cfg(feature = "metrics")]
            label: metrics::SharedString::from(name.to_owned()),
            first: OnceLock::new(),
        })
    }

    /// The name, as given.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The name as a metrics label value.
    #[cfg(feature = "metrics")]
    pub(crate) fn label(&self) -> &metrics::SharedString {
        &self.label
    }

    /// The `RateLimit-Policy` item of `quota`.
    pub(crate) fn policy_value(&self, quota: &AnyAlgorithm) -> HeaderValue {
        let (first, value) = self
            .first
            .get_or_init(|| (*quota, policy_value(&self.sf, quota)));
        if first == quota {
            value.clone()
        } else {
            policy_value(&self.sf, quota)
        }
    }

    /// Adds `RateLimit-Policy` and `RateLimit` (appended, so that the
    /// items of nested layers with other names add up to one list each).
    pub(crate) fn annotate(
        &self,
        headers: &mut HeaderMap,
        decision: &Decision,
        quota: &AnyAlgorithm,
    ) {
        headers.reserve(2);
        headers.append(&RATELIMIT_POLICY, self.policy_value(quota));
        if let Some(value) = ratelimit_value(&self.sf, decision, quota) {
            headers.append(&RATELIMIT, value);
        }
    }
}

/// Appends one `RateLimit-Policy` field and (unless `policy_only`) one
/// `RateLimit` field that list an item per limit of `limits`, each under
/// its own policy's name, in order: the fields of several limits on one
/// request (draft-ietf-httpapi-ratelimit-headers-11 makes both fields
/// Lists for this). A limit without a decision, or whose decision counted
/// nothing, has no `RateLimit` item.
pub(crate) fn annotate_all<'a>(
    headers: &mut HeaderMap,
    limits: impl Iterator<Item = (&'a Policy, Option<&'a Decision>, &'a AnyAlgorithm)>,
    policy_only: bool,
) {
    let mut policies = String::with_capacity(64);
    let mut ratelimits = Vec::with_capacity(64);
    for (policy, decision, quota) in limits {
        if !policies.is_empty() {
            policies.push_str(", ");
        }
        // Our own value (an SF String and integers, ASCII), cached for the
        // policy's first quota.
        policies.push_str(policy.policy_value(quota).to_str().unwrap_or_default());
        if policy_only {
            continue;
        }
        if let Some(decision) = decision {
            let mark = ratelimits.len();
            if mark > 0 {
                ratelimits.extend_from_slice(b", ");
            }
            if !write_ratelimit(&mut ratelimits, &policy.sf, decision, quota) {
                ratelimits.truncate(mark);
            }
        }
    }
    headers.reserve(2);
    for (name, list) in [
        (&RATELIMIT_POLICY, policies.into_bytes()),
        (&RATELIMIT, ratelimits),
    ] {
        if !list.is_empty() {
            let value = HeaderValue::try_from(list)
                .expect("SF Strings and integers are a valid header value");
            headers.append(name, value);
        }
    }
}

fn ceil_secs_ns(ns: u128) -> u128 {
    ns.div_ceil(1_000_000_000)
}

/// The `RateLimit-Policy` value of `quota` under the policy `name` (an
/// SF String as made by [`headers::sf_string`]).
fn policy_value(name: &str, quota: &AnyAlgorithm) -> HeaderValue {
    let window = ceil_secs_ns(u128::from(quota.period_ns())).max(1);
    let text = format!("{name};q={};w={window}", quota.limit());
    HeaderValue::try_from(text).expect("an SF String and integers are a valid header value")
}

/// The seconds of the effective window `t` after `decision`, or `None`
/// when it is not defined (a full bucket, an empty window, an allowed
/// sliding window: see the module's doc).
fn effective_window(decision: &Decision, algorithm: &AnyAlgorithm) -> Option<u64> {
    match decision.reason {
        Reason::Quota | Reason::Fallback => match algorithm {
            AnyAlgorithm::TokenBucket(b) => bucket_window(decision, b.quota()),
            AnyAlgorithm::LeakyBucket(b) => bucket_window(decision, b.quota()),
            // Nothing comes back before the window's end, which
            // reset_after is whenever the window counted something.
            AnyAlgorithm::FixedWindow(_) => {
                (!decision.reset_after.is_zero()).then(|| ceil_secs(decision.reset_after))
            }
            AnyAlgorithm::SlidingWindow(_) => decision.retry_after.map(ceil_secs),
        },
        // A full key table or a backend failing closed: nothing until the
        // retry.
        _ => decision.retry_after.map(ceil_secs),
    }
}

/// A bucket's effective window: until one more unit accrues.
fn bucket_window(decision: &Decision, quota: &Quota) -> Option<u64> {
    {
        {
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
    }
}

/// The `RateLimit` value after `decision`, or `None` when the decision
/// counted nothing (a backend failing open). Written into a buffer of
/// exactly its length, so that the header value takes it over without a
/// second allocation (`Bytes` keeps a `Vec` whose length is its capacity
/// as it is).
fn ratelimit_value(name: &str, decision: &Decision, quota: &AnyAlgorithm) -> Option<HeaderValue> {
    let item = RateLimitItem::new(decision, quota)?;
    let mut text = Vec::with_capacity(item.len(name));
    item.write(&mut text, name);
    Some(HeaderValue::try_from(text).expect("an SF String and integers are a valid header value"))
}

/// Writes the `RateLimit` item after `decision` to `out`, unless the
/// decision counted nothing (a backend failing open): whether it wrote.
fn write_ratelimit(
    out: &mut Vec<u8>,
    name: &str,
    decision: &Decision,
    quota: &AnyAlgorithm,
) -> bool {
    RateLimitItem::new(decision, quota).is_some_and(|item| {
        item.write(out, name);
        true
    })
}

/// The numbers of one `RateLimit` item: `<name>;r=<remaining>[;t=<t>]`.
struct RateLimitItem {
    remaining: u64,
    t: Option<u64>,
}

impl RateLimitItem {
    /// `None` when the decision counted nothing (a backend failing open).
    fn new(decision: &Decision, quota: &AnyAlgorithm) -> Option<Self> {
        (decision.reason != Reason::FailOpen).then(|| Self {
            remaining: decision.remaining,
            t: effective_window(decision, quota),
        })
    }

    /// The item's length in bytes under the (already quoted) `name`.
    fn len(&self, name: &str) -> usize {
        name.len() + 3 + decimal_len(self.remaining) + self.t.map_or(0, |t| 3 + decimal_len(t))
    }

    fn write(&self, out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b";r=");
        push_decimal(out, self.remaining);
        if let Some(t) = self.t {
            out.extend_from_slice(b";t=");
            push_decimal(out, t);
        }
    }
}

/// The number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Appends `n` in decimal (what `write!` does, without the formatting
/// machinery: this runs for every response).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use ratelimit_core::{FixedWindow, Rate, SlidingWindow, TokenBucket};

    use super::*;

    #[test]
    fn decimals_as_write_gives_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ]
        .into_iter()
        .chain((0..64).map(|b| 1_u64 << b))
        .chain((1..20).map(|e| 10_u64.pow(e) - 1))
        {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
            assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn a_ratelimit_value_fills_its_buffer_exactly() {
        let quota =
            AnyAlgorithm::TokenBucket(TokenBucket::with_rate(10, Rate::per_second(1)).unwrap());
        for (remaining, t) in [(0, None), (7, Some(1)), (u64::MAX, Some(u64::MAX))] {
            let item = RateLimitItem { remaining, t };
            let mut out = Vec::new();
            item.write(&mut out, "\"default\"");
            assert_eq!(out.len(), item.len("\"default\""));
        }
        let d = decision(true, 3, 1500, None);
        let value = ratelimit_value("\"p\"", &d, &quota).unwrap();
        let mut expected = Vec::new();
        assert!(write_ratelimit(&mut expected, "\"p\"", &d, &quota));
        assert_eq!(value.as_bytes(), expected);
    }

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
    fn names() {
        assert!(Policy::new("api").is_ok());
        let default = Policy::default();
        let checked = Policy::new(DEFAULT_POLICY_NAME).unwrap();
        assert_eq!((default.name(), &default.sf), (checked.name(), &checked.sf));
        assert_eq!(
            Policy::new("caf\u{e9}").unwrap_err().to_string(),
            "invalid rate-limit policy name \"caf\u{e9}\": only printable ASCII (0x20 to 0x7E) is allowed"
        );
    }

    fn bucket(capacity: u64, per_second: u64) -> AnyAlgorithm {
        AnyAlgorithm::TokenBucket(
            TokenBucket::with_rate(capacity, Rate::per_second(per_second)).unwrap(),
        )
    }

    #[test]
    fn values() {
        // 10 per 5 s: T = 0.5 s, τ = 5 s.
        let quota = bucket(10, 2);
        assert_eq!(policy_value("\"api\"", &quota), "\"api\";q=10;w=5");
        let q3 = bucket(3, 3); // τ = 1.000000002 s
        assert_eq!(policy_value("\"x\"", &q3), "\"x\";q=3;w=2");
        // After one request: 9 left, full again in 0.5 s, the 10th unit in 0.5 s.
        let d = decision(true, 9, 500, None);
        assert_eq!(
            ratelimit_value("\"api\"", &d, &quota).unwrap(),
            "\"api\";r=9;t=1"
        );
        // Empty: the next unit in 0.5 s (the denial's retry).
        let d = decision(false, 0, 5_000, Some(500));
        assert_eq!(
            ratelimit_value("\"api\"", &d, &quota).unwrap(),
            "\"api\";r=0;t=1"
        );
        assert_eq!(effective_window(&d, &quota), Some(1));
        // 3.2 s of debt beyond empty (a reservation): 3.7 s until one unit.
        let d = decision(false, 0, 8_200, Some(3_700));
        assert_eq!(effective_window(&d, &quota), Some(4));
        // Full bucket: no window.
        let d = decision(true, 10, 0, None);
        assert_eq!(
            ratelimit_value("\"api\"", &d, &quota).unwrap(),
            "\"api\";r=10"
        );
        // Fail open: nothing counted, no RateLimit field.
        let d = Decision {
            reason: Reason::FailOpen,
            ..decision(true, 0, 0, None)
        };
        assert_eq!(ratelimit_value("\"api\"", &d, &quota), None);
        // Key table full: nothing until the retry.
        let d = Decision {
            reason: Reason::KeyTableFull,
            ..decision(false, 0, 0, Some(2_500))
        };
        assert_eq!(
            ratelimit_value("\"api\"", &d, &quota).unwrap(),
            "\"api\";r=0;t=3"
        );
    }

    #[test]
    fn window_values() {
        // 100 per minute, fixed: w is the window; t the time to its end.
        let fixed = AnyAlgorithm::FixedWindow(FixedWindow::per_minute(100).unwrap());
        assert_eq!(policy_value("\"api\"", &fixed), "\"api\";q=100;w=60");
        let d = Decision {
            limit: 100,
            ..decision(true, 60, 12_300, None)
        };
        assert_eq!(
            ratelimit_value("\"api\"", &d, &fixed).unwrap(),
            "\"api\";r=60;t=13"
        );
        // Nothing counted in this window: no t.
        let d = Decision {
            limit: 100,
            ..decision(true, 100, 0, None)
        };
        assert_eq!(
            ratelimit_value("\"api\"", &d, &fixed).unwrap(),
            "\"api\";r=100"
        );
        // Sliding: denied, t is the exact retry; allowed, t is left out.
        let sliding = AnyAlgorithm::SlidingWindow(
            SlidingWindow::new(5, Duration::from_millis(1500)).unwrap(),
        );
        assert_eq!(policy_value("\"s\"", &sliding), "\"s\";q=5;w=2");
        let d = Decision {
            limit: 5,
            ..decision(false, 0, 2_000, Some(250))
        };
        assert_eq!(
            ratelimit_value("\"s\"", &d, &sliding).unwrap(),
            "\"s\";r=0;t=1"
        );
        let d = Decision {
            limit: 5,
            ..decision(true, 3, 2_000, None)
        };
        assert_eq!(ratelimit_value("\"s\"", &d, &sliding).unwrap(), "\"s\";r=3");
    }

    #[test]
    fn several_limits_make_one_list_per_field() {
        let (a, b) = (Policy::new("a").unwrap(), Policy::new("b").unwrap());
        let (qa, qb) = (bucket(10, 2), bucket(100, 10));
        let da = decision(true, 9, 500, None);
        let db = Decision {
            reason: Reason::FailOpen,
            ..decision(true, 0, 0, None)
        };
        let mut headers = HeaderMap::new();
        annotate_all(
            &mut headers,
            [(&a, Some(&da), &qa), (&b, Some(&db), &qb)].into_iter(),
            false,
        );
        assert_eq!(
            headers[&RATELIMIT_POLICY],
            "\"a\";q=10;w=5, \"b\";q=100;w=10"
        );
        // A limit whose decision counted nothing has no RateLimit item.
        assert_eq!(headers[&RATELIMIT], "\"a\";r=9;t=1");
        let mut headers = HeaderMap::new();
        annotate_all(&mut headers, [(&a, Some(&da), &qa)].into_iter(), true);
        assert_eq!(headers[&RATELIMIT_POLICY], "\"a\";q=10;w=5");
        assert!(headers.get(&RATELIMIT).is_none());
    }

    #[test]
    fn the_first_quota_is_cached_and_others_are_formatted() {
        let policy = Policy::new("p").unwrap();
        let a = bucket(10, 2);
        let b = bucket(100, 10);
        assert_eq!(policy.policy_value(&a), "\"p\";q=10;w=5");
        assert_eq!(policy.policy_value(&b), "\"p\";q=100;w=10");
        assert_eq!(policy.policy_value(&a), "\"p\";q=10;w=5");
    }
}
