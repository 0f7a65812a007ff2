//! Keys as the recorder keeps them: [`RecordKey`] (the bytes of a key,
//! without allocating), [`KeySnap`] (a fixed-size copy: the first
//! [`INLINE_KEY_BYTES`] bytes and a hash of all of them) and the hash.

use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::borrow::Cow;
use std::sync::Arc;

/// How many bytes of a key the recorder keeps: longer keys are shown
/// truncated and told apart by a 64-bit hash of all their bytes.
pub const INLINE_KEY_BYTES: usize = 64;

/// A key the recorder can name: its bytes, handed to a closure so that
/// keys that are not bytes already (addresses, integers) are formatted on
/// the stack, never allocated.
///
/// For text and byte keys the bytes are the key's; for the others they are
/// the text the Redis backend uses for them (`192.0.2.1`, `42`).
pub trait RecordKey {
    /// Calls `f` with the key's bytes.
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;
}

impl<T: RecordKey + ?Sized> RecordKey for &T {
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        (**self).with_bytes(f)
    }
}

macro_rules! as_bytes {
    ($($t:ty),* $(,)?) => {$(
        impl RecordKey for $t {
            #[inline]
            fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}

as_bytes!(str, String, [u8], Vec<u8>, Box<[u8]>, Arc<[u8]>);

macro_rules! str_bytes {
    ($($t:ty),* $(,)?) => {$(
        impl RecordKey for $t {
            #[inline]
            fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(self.as_bytes())
            }
        }
    )*};
}

str_bytes!(Box<str>, Arc<str>, Cow<'_, str>);

/// A `fmt::Write` into a fixed buffer that keeps what fits.
struct StackText {
    buf: [u8; INLINE_KEY_BYTES],
    len: usize,
}

impl core::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let take = s.len().min(INLINE_KEY_BYTES - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

macro_rules! as_text {
    ($($t:ty),* $(,)?) => {$(
        impl RecordKey for $t {
            fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                let mut text = StackText { buf: [0; INLINE_KEY_BYTES], len: 0 };
                // Every one of these fits in 64 bytes; `StackText` never fails.
                let _ = write!(text, "{self}");
                f(&text.buf[..text.len])
            }
        }
    )*};
}

as_text!(
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64,
    i128, isize
);

/// A 64-bit hash of `bytes`: a word at a time, multiply and rotate, then a
/// final mix. Not keyed: it only tells the sketch's keys apart (an
/// attacker who makes two long keys collide merges their two counts, which
/// the page shows under the first one's name).
#[inline]
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    // The finaliser of MurmurHash3: every input bit reaches every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

/// A key as the recorder keeps it: its first [`INLINE_KEY_BYTES`] bytes,
/// its full length and a hash of all its bytes. Fixed size, no heap.
#[derive(Clone, Copy)]
pub struct KeySnap {
    pub(crate) hash: u64,
    /// The key's full length in bytes (more than the bytes kept when the
    /// key is truncated).
    pub(crate) len: u32,
    pub(crate) bytes: [u8; INLINE_KEY_BYTES],
}

impl core::fmt::Debug for KeySnap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeySnap")
            .field("key", &self.text())
            .field("len", &self.len)
            .finish()
    }
}

impl KeySnap {
    /// The snapshot of `key`.
    #[inline]
    pub fn of<K: RecordKey + ?Sized>(key: &K) -> Self {
        key.with_bytes(Self::from_bytes)
    }

    /// The snapshot of a key's bytes.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let kept = bytes.len().min(INLINE_KEY_BYTES);
        let mut inline = [0u8; INLINE_KEY_BYTES];
        inline[..kept].copy_from_slice(&bytes[..kept]);
        Self {
            hash: hash(bytes),
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            bytes: inline,
        }
    }

    /// The bytes kept.
    pub(crate) fn kept(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(INLINE_KEY_BYTES)]
    }

    /// Whether the key was longer than the bytes kept.
    pub fn truncated(&self) -> bool {
        self.len as usize > INLINE_KEY_BYTES
    }

    /// Whether this is the same key as `other`: same hash, length and
    /// kept bytes (for keys longer than [`INLINE_KEY_BYTES`], the hash
    /// stands for the bytes not kept).
    #[inline]
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.hash == other.hash && self.len == other.len && self.kept() == other.kept()
    }

    /// The key as text, for people: invalid UTF-8 replaced (a truncated
    /// key may end inside a character), `…` appended when truncated.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(self.kept()).into_owned();
        if self.truncated() {
            text.push('…');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_every_kind_are_their_text() {
        assert_eq!(KeySnap::of("alice").text(), "alice");
        assert_eq!(KeySnap::of(&String::from("bob")).text(), "bob");
        assert_eq!(
            KeySnap::of(&IpAddr::from([192, 0, 2, 1])).text(),
            "192.0.2.1"
        );
        assert_eq!(KeySnap::of(&42u64).text(), "42");
        assert_eq!(KeySnap::of(&vec![b'x'; 3]).text(), "xxx");
    }

    #[test]
    fn long_keys_are_truncated_and_told_apart_by_hash() {
        let a = "a".repeat(100);
        let mut b = a.clone();
        b.push('b');
        let (sa, sb) = (KeySnap::of(a.as_str()), KeySnap::of(b.as_str()));
        assert!(sa.truncated());
        assert_eq!(sa.kept(), sb.kept());
        assert!(!sa.same(&sb));
        assert!(sa.same(&KeySnap::of(a.as_str())));
        assert_eq!(sa.text(), format!("{}…", "a".repeat(64)));
    }

    #[test]
    fn the_hash_sees_every_byte() {
        assert_ne!(hash(b""), hash(b"\0"));
        assert_ne!(hash(b"abcdefgh1"), hash(b"abcdefgh2"));
        assert_ne!(hash(b"abcdefgh"), hash(b"abcdefgi"));
    }
}
