//! The syntax of the response header fields: the names of `RateLimit-Policy`
//! and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11), the
//! Structured Fields String of a policy name, and `Retry-After` (RFC 9110,
//! a delay in whole seconds). What the values mean is in `policy.rs`.

use core::time::Duration;

use http::HeaderValue;
use http::header::HeaderName;

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

/// The `Retry-After` value of a wait: whole seconds rounded up, so at
/// least 1 for any wait above zero.
pub(crate) fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(ceil_secs(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(sf_string("default").as_deref(), Some("\"default\""));
        assert_eq!(sf_string("a\"b\\c").as_deref(), Some("\"a\\\"b\\\\c\""));
        assert_eq!(sf_string("tab\there"), None);
        assert_eq!(sf_string("é"), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::from_nanos(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1_000)), "1");
        assert_eq!(retry_after(Duration::from_millis(1_001)), "2");
        assert_eq!(retry_after(Duration::ZERO), "0");
    }
}
