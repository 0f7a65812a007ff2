//! [`KeyBytes`]: how many bytes a key owns beyond its own size, so that a
//! keyed limiter can bound its memory in bytes and not only in keys.
//!
//! `max_keys` alone does not bound memory when keys come from the
//! outside: a header value of 390 KB stored as a `String` key costs 390
//! KB. A [`KeyedLimiter`](crate::KeyedLimiter) refuses a key whose
//! [`heap_bytes`](KeyBytes::heap_bytes) exceed its `max_key_len` (default
//! [`DEFAULT_MAX_KEY_LEN`], 256 bytes) with
//! [`Reason::KeyTooLong`](ratelimit_core::Reason::KeyTooLong), before
//! hashing or storing anything.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// The longest key a keyed limiter stores by default, in bytes owned by
/// the key (the text of a `String`, the bytes of a `Vec<u8>`): 256.
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// The bytes a key owns outside its own `size_of` (on the heap): the
/// length of a string or byte buffer, 0 for integers, IP addresses and
/// other keys of fixed size, the sum over a tuple's elements.
///
/// A keyed limiter refuses a key whose `heap_bytes` exceed its
/// `max_key_len`, so that its memory is bounded in bytes (see the crate
/// README, "Memory"). Implement it for a key type of your own by summing
/// its fields' `heap_bytes` (or returning 0 for a fixed-size key):
///
/// ```
/// use ratelimit_memory::KeyBytes;
///
/// #[derive(Hash, PartialEq, Eq)]
/// struct Route {
///     tenant: u32,
///     path: String,
/// }
///
/// impl KeyBytes for Route {
///     fn heap_bytes(&self) -> usize {
///         self.tenant.heap_bytes() + self.path.heap_bytes()
///     }
/// }
///
/// assert_eq!(Route { tenant: 7, path: "/search".into() }.heap_bytes(), 7);
/// assert_eq!("x".repeat(400_000).heap_bytes(), 400_000);
/// assert_eq!(42u64.heap_bytes(), 0);
/// ```
pub trait KeyBytes {
    /// Bytes this key owns beyond its own size, once stored.
    fn heap_bytes(&self) -> usize;
}

macro_rules! fixed_size {
    ($($t:ty),* $(,)?) => {$(
        impl KeyBytes for $t {
            #[inline]
            fn heap_bytes(&self) -> usize {
                0
            }
        }
    )*};
}

fixed_size!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    IpAddr,
    Ipv4Addr,
    Ipv6Addr,
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
);

impl<const N: usize> KeyBytes for [u8; N] {
    /// Held inline, in the entry: 0.
    #[inline]
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl KeyBytes for str {
    /// The text's length: what a `String` made from it owns.
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl KeyBytes for String {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl KeyBytes for [u8] {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl KeyBytes for Vec<u8> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl<K: KeyBytes + ?Sized> KeyBytes for &K {
    #[inline]
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

impl<K: KeyBytes + ?Sized> KeyBytes for Box<K> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

impl<K: KeyBytes + ?Sized> KeyBytes for Rc<K> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

impl<K: KeyBytes + ?Sized> KeyBytes for Arc<K> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

impl<K: KeyBytes + ToOwned + ?Sized> KeyBytes for Cow<'_, K> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

impl<K: KeyBytes> KeyBytes for Option<K> {
    #[inline]
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, KeyBytes::heap_bytes)
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: KeyBytes),+> KeyBytes for ($($name,)+) {
            #[inline]
            #[allow(non_snake_case)]
            fn heap_bytes(&self) -> usize {
                let ($($name,)+) = self;
                0 $(+ $name.heap_bytes())+
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
