//! Redis key layout: `<prefix>|<key bytes>`.
//!
//! The prefix is validated text without `|`, `{`, `}` or control
//! characters, so the first `|` of a Redis key always ends its prefix: a
//! caller's key, whatever its bytes (empty, binary, 1 MiB, with `:`, `{`,
//! `}` or newlines), can only name a key inside its own limiter's namespace,
//! and two limiters with different prefixes never share a key. The caller's
//! bytes are kept as they are (Redis keys are binary-safe), so a `{tag}` in
//! a caller's key is a Redis Cluster hash tag: keys with the same tag share
//! a slot and a node.

use crate::error::RedisLimitError;

/// The byte that ends the prefix in every Redis key.
pub(crate) const SEPARATOR: u8 = b'|';

/// The longest prefix accepted, in bytes.
pub(crate) const MAX_PREFIX_LEN: usize = 256;

/// The prefix used when none is given.
pub(crate) const DEFAULT_PREFIX: &str = "ratelimit";

/// A validated key prefix (namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix(Vec<u8>);

impl Prefix {
    /// Checks `prefix`: 1 to 256 bytes, no `|`, `{`, `}` or control
    /// characters.
    pub(crate) fn new(prefix: &str) -> Result<Self, RedisLimitError> {
        let bad = |why: &str| {
            Err(RedisLimitError::InvalidOption(format!(
                "prefix {prefix:?}: {why}"
            )))
        };
        if prefix.is_empty() {
            return bad("must not be empty");
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return bad("must be at most 256 bytes");
        }
        if let Some(c) = prefix
            .chars()
            .find(|&c| c == '|' || c == '{' || c == '}' || c.is_control())
        {
            return bad(&format!(
                "must not contain {c:?} ('|' ends the prefix, '{{' '}}' are hash tags that belong in keys, control characters are unreadable to operators)"
            ));
        }
        Ok(Self(prefix.as_bytes().to_vec()))
    }

    /// The prefix text.
    pub(crate) fn as_str(&self) -> &str {
        // Built from a `&str`.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The Redis key for a caller's `key`: `<prefix>|<key>`.
    pub(crate) fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 1 + key.len());
        out.extend_from_slice(&self.0);
        out.push(SEPARATOR);
        out.extend_from_slice(key);
        out
    }
}

/// The Redis Cluster hash slot of a full Redis key: CRC16 (XMODEM) of the
/// hash tag (the bytes between the first `{` and the next `}`, when not
/// empty) or of the whole key, modulo 16384.
pub(crate) fn slot(redis_key: &[u8]) -> u16 {
    let hashed = match redis_key.iter().position(|&b| b == b'{') {
        Some(open) => match redis_key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &redis_key[open + 1..open + 1 + len],
            _ => redis_key,
        },
        None => redis_key,
    };
    crc16(hashed) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        for good in ["ratelimit", "app:api", "a", "rl v2", &"x".repeat(256)] {
            assert!(Prefix::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a|b", "a{b", "a}", "a\nb", "\0", &"x".repeat(257)] {
            assert!(Prefix::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_stay_under_their_prefix() {
        let p = Prefix::new("app:rl").unwrap();
        assert_eq!(p.redis_key(b""), b"app:rl|");
        assert_eq!(p.redis_key(b"a|b\n{c}"), b"app:rl|a|b\n{c}");
        // "app" + key "rl|x" can never equal "app:rl" + "x": the first '|'
        // of every Redis key ends the prefix.
        let q = Prefix::new("app").unwrap();
        assert_ne!(q.redis_key(b":rl|x"), p.redis_key(b"x"));
    }

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"rl|{user1}:a"), slot(b"user1"));
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % 16384);
    }
}
