//! Where a caller's key lives in Redis: `<prefix>|<key bytes>`, or with
//! [hashed keys](crate::RedisLimiterBuilder::hash_keys)
//! `<prefix>|<32 hex digits>` (HMAC-SHA-256 of the key bytes), and the
//! Redis Cluster slot of such a key.
//!
//! The prefix is validated text without `|`, `{`, `}` or control
//! characters, so the first `|` of a Redis key always ends its prefix: a
//! caller's key, whatever its bytes (empty, binary, with `:`, `{`, `}` or
//! newlines), can only name a key inside its own limiter's namespace, and
//! two limiters with different prefixes never share a key. The caller's
//! bytes are kept as they are (Redis keys are binary-safe), so a `{tag}` in
//! a caller's key is a Redis Cluster hash tag: keys with the same tag share
//! a slot and a node. Hashed keys keep that: a key with a tag is stored as
//! `{<16 hex digits of the tag's HMAC>}<32 hex digits of the key's HMAC>`.
//!
//! Key bytes are bounded ([`DEFAULT_MAX_KEY_LEN`]): a longer key is refused
//! before anything is sent, unless keys are hashed (then every stored key
//! has the same length, whatever the caller's).

use core::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::RedisLimitError;
use crate::key::RedisKey;

/// The byte that ends the prefix in every Redis key.
const SEPARATOR: u8 = b'|';

/// The longest prefix accepted, in bytes.
const MAX_PREFIX_LEN: usize = 256;

/// The prefix used when none is given.
pub(crate) const DEFAULT_PREFIX: &str = "ratelimit";

/// The longest key accepted by default, in bytes (its encoded form, without
/// the prefix), when keys are not hashed.
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// The shortest secret accepted for hashed keys, in bytes.
pub(crate) const MIN_SECRET_LEN: usize = 16;

/// A validated key prefix (namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prefix(String);

impl Prefix {
    /// Checks `prefix`: 1 to 256 bytes, no `|`, `{`, `}` or control
    /// characters.
    fn new(prefix: &str) -> Result<Self, RedisLimitError> {
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
        Ok(Self(prefix.to_owned()))
    }
}

/// A secret that never shows in `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) Vec<u8>);

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// How caller keys become Redis keys: the prefix, and either a bound on
/// the key's length or a keyed hash.
#[derive(Clone)]
pub(crate) struct KeySpace {
    prefix: Prefix,
    max_key_len: usize,
    /// HMAC-SHA-256 keyed with the secret, ready to clone per key.
    hash: Option<Hmac<Sha256>>,
}

impl core::fmt::Debug for KeySpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeySpace")
            .field("prefix", &self.prefix.0)
            .field("max_key_len", &self.max_key_len)
            .field("hashed", &self.hash.is_some())
            .finish()
    }
}

impl KeySpace {
    /// Checks the prefix and the secret (at least 16 bytes).
    pub(crate) fn new(
        prefix: &str,
        max_key_len: usize,
        secret: Option<&Secret>,
    ) -> Result<Self, RedisLimitError> {
        let hash = match secret {
            Some(Secret(s)) if s.len() < MIN_SECRET_LEN => {
                return Err(RedisLimitError::InvalidOption(format!(
                    "the secret of hashed keys is {} bytes; it needs at least {MIN_SECRET_LEN} (32 random bytes are best)",
                    s.len()
                )));
            }
            Some(Secret(s)) => Some(
                Hmac::<Sha256>::new_from_slice(s)
                    .map_err(|e| RedisLimitError::InvalidOption(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            prefix: Prefix::new(prefix)?,
            max_key_len,
            hash,
        })
    }

    /// The prefix text.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix.0
    }

    /// The longest key accepted when keys are not hashed.
    pub(crate) fn max_key_len(&self) -> usize {
        self.max_key_len
    }

    /// Whether keys are stored hashed.
    pub(crate) fn hashed(&self) -> bool {
        self.hash.is_some()
    }

    /// The Redis key for a caller's `key`: `<prefix>|<key bytes>`, or the
    /// hashed form; a key longer than the bound (not hashed) is refused.
    pub(crate) fn redis_key<K: RedisKey + ?Sized>(
        &self,
        key: &K,
    ) -> Result<Vec<u8>, RedisLimitError> {
        let mut out = Vec::with_capacity(self.prefix.0.len() + 1 + 48);
        out.extend_from_slice(self.prefix.0.as_bytes());
        out.push(SEPARATOR);
        let start = out.len();
        key.write_key(&mut out);
        match &self.hash {
            None => {
                let len = out.len() - start;
                if len > self.max_key_len {
                    return Err(RedisLimitError::KeyTooLong {
                        len,
                        max: self.max_key_len,
                    });
                }
            }
            Some(mac) => {
                let raw = out.split_off(start);
                let mut text = String::with_capacity(50);
                if let Some(tag) = hash_tag(&raw) {
                    text.push('{');
                    hex(&digest(mac, tag)[..8], &mut text);
                    text.push('}');
                }
                hex(&digest(mac, &raw)[..16], &mut text);
                out.extend_from_slice(text.as_bytes());
            }
        }
        Ok(out)
    }
}

fn digest(mac: &Hmac<Sha256>, bytes: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
}

/// The hash tag of `bytes`: what lies between the first `{` and the next
/// `}`, when that is not empty (Redis Cluster's rule).
fn hash_tag(bytes: &[u8]) -> Option<&[u8]> {
    let open = bytes.iter().position(|&b| b == b'{')?;
    let len = bytes[open + 1..].iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &bytes[open + 1..open + 1 + len])
}

/// The Redis Cluster hash slot of a full Redis key: CRC16 (XMODEM) of the
/// hash tag, or of the whole key, modulo 16384.
pub(crate) fn slot(redis_key: &[u8]) -> u16 {
    crc16(hash_tag(redis_key).unwrap_or(redis_key)) % 16384
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

    fn plain(prefix: &str) -> KeySpace {
        KeySpace::new(prefix, DEFAULT_MAX_KEY_LEN, None).unwrap()
    }

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
        let p = plain("app:rl");
        assert_eq!(p.redis_key("").unwrap(), b"app:rl|");
        assert_eq!(p.redis_key(b"a|b\n{c}").unwrap(), b"app:rl|a|b\n{c}");
        // "app" + key "rl|x" can never equal "app:rl" + "x": the first '|'
        // of every Redis key ends the prefix.
        let q = plain("app");
        assert_ne!(q.redis_key(":rl|x").unwrap(), p.redis_key("x").unwrap());
    }

    #[test]
    fn long_keys_are_refused_unless_hashed() {
        let p = KeySpace::new("p", 4, None).unwrap();
        assert!(p.redis_key("abcd").is_ok());
        let e = p.redis_key("abcde").unwrap_err();
        assert!(
            matches!(e, RedisLimitError::KeyTooLong { len: 5, max: 4 }),
            "{e}"
        );
        assert!(e.to_string().contains("hash_keys"), "{e}");
        let secret = Secret(b"0123456789abcdef".to_vec());
        let h = KeySpace::new("p", 4, Some(&secret)).unwrap();
        assert_eq!(h.redis_key(&vec![b'x'; 1 << 20]).unwrap().len(), 2 + 32);
    }

    /// HMAC-SHA-256 as every language computes it: the Redis key of
    /// `user456` under the secret `0123456789abcdef`, from Python's
    /// `hmac.new(b"0123456789abcdef", b"user456", "sha256").hexdigest()[:32]`
    /// (and the tag's `[:16]`).
    #[test]
    fn hashed_keys_are_hmac_sha256() {
        let secret = Secret(b"0123456789abcdef".to_vec());
        let h = KeySpace::new("api", DEFAULT_MAX_KEY_LEN, Some(&secret)).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(b"user456");
        let mut want = String::from("api|");
        hex(&mac.finalize().into_bytes()[..16], &mut want);
        assert_eq!(h.redis_key("user456").unwrap(), want.as_bytes());
        assert_eq!(
            String::from_utf8(h.redis_key("user456").unwrap()).unwrap(),
            "api|133b123fe9c28f45d158775f0f14c5ea"
        );
        // A hash tag keeps related keys in one slot, hashed too.
        let a = h.redis_key("{tenant9}:login").unwrap();
        let b = h.redis_key("{tenant9}:upload").unwrap();
        assert_ne!(a, b);
        assert_eq!(slot(&a), slot(&b));
        assert!(a.starts_with(b"api|{23b201fd68541ca8}"));
        assert_eq!(a.len(), "api|{".len() + 16 + 1 + 32);
        assert!(!String::from_utf8_lossy(&a).contains("tenant9"));
        // Too short a secret is refused.
        assert!(KeySpace::new("p", 1, Some(&Secret(vec![0; 15]))).is_err());
        assert!(!format!("{secret:?}").contains("0123"));
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
