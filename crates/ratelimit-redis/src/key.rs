//! [`RedisKey`]: the byte form of a caller's key, stable across processes,
//! versions and languages, since every process that shares a limit must
//! name its Redis key with the same bytes.
//!
//! The encoding (also in docs/redis.md, "Key encoding"):
//!
//! | key type | bytes |
//! | --- | --- |
//! | `str`, `String`, `[u8]`, `Vec<u8>`, `[u8; N]` | the bytes as they are |
//! | integers (`u8` … `u128`, `i8` … `i128`, `usize`, `isize`) | decimal ASCII, `-` for negatives: `42`, `-7` |
//! | `Ipv4Addr` | dotted decimal: `192.0.2.1` |
//! | `Ipv6Addr` | RFC 5952 text (lowercase, zeros compressed): `2001:db8::1`; an IPv4-mapped address (`::ffff:192.0.2.1`) is its IPv4 address: `192.0.2.1` |
//! | `IpAddr` | as the address it holds |
//! | `SocketAddr`, `SocketAddrV4`, `SocketAddrV6` | `ip:port`, with `[ip]:port` for IPv6 (flow info and scope id dropped): `192.0.2.1:443`, `[2001:db8::1]:443` |
//! | tuples of 2 to 4 keys | each element's bytes with `\` written `\\` and `:` written `\:`, joined by `:`: `("user:1", 42)` is `user\:1:42` |
//! | `&K`, `Box<K>`, `Rc<K>`, `Arc<K>`, `Cow<K>` | as `K` |
//!
//! So an integer key and its decimal text share a state (`42` and `"42"`),
//! as an IPv4 client does whether the socket reports it as IPv4 or
//! IPv4-mapped IPv6; the escaping keeps tuples apart (`("a:b", "c")` and
//! `("a", "b:c")` never meet).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::borrow::Cow;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::Arc;

/// A key a Redis limiter can store a state under: anything with a stable
/// byte form (strings, bytes, integers, IP and socket addresses, tuples of
/// these).
///
/// The bytes follow the documented encoding below (every implementation
/// here does, and it never changes within a major version), so another process, in Rust or in Python, computes the same
/// Redis key for the same key. Implement it for your own types by writing
/// the bytes of one of these forms (say, a user id's decimal text).
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
/// use ratelimit_redis::RedisKey;
///
/// assert_eq!("user456".key_bytes(), b"user456");
/// assert_eq!(42u64.key_bytes(), b"42");
/// assert_eq!(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)).key_bytes(), b"192.0.2.1");
/// let mapped = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped();
/// assert_eq!(IpAddr::V6(mapped).key_bytes(), b"192.0.2.1");
/// assert_eq!(Ipv6Addr::LOCALHOST.key_bytes(), b"::1");
/// assert_eq!(("tenant:7", 42u32).key_bytes(), b"tenant\\:7:42");
/// ```
///
/// # Encoding
///
/// `str`/`String`/`[u8]`/`Vec<u8>`/`[u8; N]`: the bytes. Integers: decimal
/// ASCII. `Ipv4Addr`: dotted decimal. `Ipv6Addr`: RFC 5952 text, an
/// IPv4-mapped address as its IPv4 address. `IpAddr`: as the address it
/// holds. `SocketAddr`: `ip:port`, `[ip]:port` for IPv6. Tuples: the
/// elements with `\` → `\\` and `:` → `\:`, joined by `:`. References and
/// smart pointers: as what they point to.
pub trait RedisKey {
    /// Appends this key's bytes to `out`.
    fn write_key(&self, out: &mut Vec<u8>);

    /// This key's bytes.
    fn key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_key(&mut out);
        out
    }
}

impl RedisKey for str {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for String {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl RedisKey for [u8] {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl RedisKey for Vec<u8> {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> RedisKey for [u8; N] {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<K: RedisKey + ?Sized> RedisKey for &K {
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<K: RedisKey + ?Sized> RedisKey for Box<K> {
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<K: RedisKey + ?Sized> RedisKey for Rc<K> {
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<K: RedisKey + ?Sized> RedisKey for Arc<K> {
    fn write_key(&self, out: &mut Vec<u8>) {
        (**self).write_key(out);
    }
}

impl<K: RedisKey + ToOwned + ?Sized> RedisKey for Cow<'_, K> {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.as_ref().write_key(out);
    }
}

macro_rules! decimal {
    ($($t:ty)*) => {$(
        impl RedisKey for $t {
            fn write_key(&self, out: &mut Vec<u8>) {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
decimal!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

impl RedisKey for Ipv4Addr {
    fn write_key(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

impl RedisKey for Ipv6Addr {
    fn write_key(&self, out: &mut Vec<u8>) {
        // std's Display is RFC 5952 for every address but the IPv4-mapped
        // ones, which are written as their IPv4 address here.
        match self.to_ipv4_mapped() {
            Some(v4) => v4.write_key(out),
            None => {
                let _ = write!(out, "{self}");
            }
        }
    }
}

impl RedisKey for IpAddr {
    fn write_key(&self, out: &mut Vec<u8>) {
        match self {
            Self::V4(ip) => ip.write_key(out),
            Self::V6(ip) => ip.write_key(out),
        }
    }
}

impl RedisKey for SocketAddrV4 {
    fn write_key(&self, out: &mut Vec<u8>) {
        self.ip().write_key(out);
        let _ = write!(out, ":{}", self.port());
    }
}

impl RedisKey for SocketAddrV6 {
    fn write_key(&self, out: &mut Vec<u8>) {
        match self.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddrV4::new(v4, self.port()).write_key(out),
            None => {
                out.push(b'[');
                self.ip().write_key(out);
                let _ = write!(out, "]:{}", self.port());
            }
        }
    }
}

impl RedisKey for SocketAddr {
    fn write_key(&self, out: &mut Vec<u8>) {
        match self {
            Self::V4(a) => a.write_key(out),
            Self::V6(a) => a.write_key(out),
        }
    }
}

/// Writes one tuple element, escaped so that the `:` between elements is
/// never taken for one inside an element.
fn element<K: RedisKey + ?Sized>(key: &K, out: &mut Vec<u8>) {
    let start = out.len();
    key.write_key(out);
    let special = out[start..]
        .iter()
        .filter(|&&b| b == b'\\' || b == b':')
        .count();
    if special == 0 {
        return;
    }
    let raw = out.split_off(start);
    out.reserve(raw.len() + special);
    for b in raw {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

macro_rules! tuple {
    ($first:ident $(, $rest:ident)+) => {
        impl<$first: RedisKey, $($rest: RedisKey),+> RedisKey for ($first, $($rest),+) {
            #[allow(non_snake_case)]
            fn write_key(&self, out: &mut Vec<u8>) {
                let ($first, $($rest),+) = self;
                element($first, out);
                $(
                    out.push(b':');
                    element($rest, out);
                )+
            }
        }
    };
}
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The documented encoding, value by value: a change here breaks every
    /// other process's keys.
    #[test]
    fn the_encoding_is_the_documented_one() {
        let v4 = Ipv4Addr::new(192, 0, 2, 1);
        let v6: Ipv6Addr = "2001:db8:0:0:1:0:0:1".parse().unwrap();
        let cases: Vec<(Vec<u8>, &[u8])> = vec![
            ("user456".key_bytes(), b"user456"),
            (String::from("é").key_bytes(), "é".as_bytes()),
            (b"\x00\xff".key_bytes(), b"\x00\xff"),
            (vec![1u8, 2].key_bytes(), b"\x01\x02"),
            (0u8.key_bytes(), b"0"),
            (u64::MAX.key_bytes(), b"18446744073709551615"),
            (i64::MIN.key_bytes(), b"-9223372036854775808"),
            ((-7i32).key_bytes(), b"-7"),
            (
                u128::MAX.key_bytes(),
                b"340282366920938463463374607431768211455",
            ),
            (v4.key_bytes(), b"192.0.2.1"),
            (IpAddr::V4(v4).key_bytes(), b"192.0.2.1"),
            (IpAddr::V6(v4.to_ipv6_mapped()).key_bytes(), b"192.0.2.1"),
            (v6.key_bytes(), b"2001:db8::1:0:0:1"),
            (Ipv6Addr::UNSPECIFIED.key_bytes(), b"::"),
            (
                "2001:DB8:0:1:1:1:1:1"
                    .parse::<Ipv6Addr>()
                    .unwrap()
                    .key_bytes(),
                b"2001:db8:0:1:1:1:1:1",
            ),
            (SocketAddr::from((v4, 443)).key_bytes(), b"192.0.2.1:443"),
            (
                SocketAddr::from((v6, 443)).key_bytes(),
                b"[2001:db8::1:0:0:1]:443",
            ),
            (
                SocketAddr::from((v4.to_ipv6_mapped(), 80)).key_bytes(),
                b"192.0.2.1:80",
            ),
            (
                SocketAddrV6::new(Ipv6Addr::LOCALHOST, 1, 7, 9).key_bytes(),
                b"[::1]:1",
            ),
            (("tenant", 7u8).key_bytes(), b"tenant:7"),
            (("a:b", "c").key_bytes(), b"a\\:b:c"),
            (("a", "b:c").key_bytes(), b"a:b\\:c"),
            (("a\\", "b").key_bytes(), b"a\\\\:b"),
            ((1u8, (2u8, 3u8), "x").key_bytes(), b"1:2\\:3:x"),
            ((1u8, 2u8, 3u8, 4u8).key_bytes(), b"1:2:3:4"),
            ((&"k", Box::new(5u16)).key_bytes(), b"k:5"),
            (Cow::Borrowed("c").key_bytes(), b"c"),
            (Arc::<str>::from("a").key_bytes(), b"a"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(want));
        }
    }

    proptest! {
        /// Tuples never collide: different elements, different bytes.
        #[test]
        fn tuples_are_injective(a in "[ab:\\\\]{0,4}", b in "[ab:\\\\]{0,4}", c in "[ab:\\\\]{0,4}", d in "[ab:\\\\]{0,4}") {
            let (x, y) = ((a.as_str(), b.as_str()), (c.as_str(), d.as_str()));
            prop_assert_eq!(x.key_bytes() == y.key_bytes(), x == y);
        }

        /// An integer's bytes are its decimal text, as in every language.
        #[test]
        fn integers_are_decimal(n in any::<i64>(), m in any::<u64>()) {
            prop_assert_eq!(n.key_bytes(), n.to_string().into_bytes());
            prop_assert_eq!(m.key_bytes(), m.to_string().into_bytes());
        }
    }
}
