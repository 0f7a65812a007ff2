//! Which bucket a request goes to: [`KeyExtractor`] and the built-in
//! extractors [`HeaderKey`], [`RouteKey`] and [`KeyFn`] ([`ClientIp`] has
//! a module of its own), why a request may have no usable key
//! ([`NoKey`]), the bound on key bytes ([`DEFAULT_MAX_KEY_LEN`],
//! [`KeyLen`]), and what the layer does with a request without a key
//! ([`MissingKey`]).
//!
//! [`ClientIp`]: crate::ClientIp

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderName, Request, StatusCode};

/// The longest key, in bytes, that the built-in extractors accept unless
/// told otherwise: 256.
///
/// A limiter keeps every live key, so the bytes of a key are memory held
/// for as long as its bucket lives: with at most `max_keys` keys of at
/// most 256 bytes, a memory limiter's keys take at most `max_keys × 256`
/// bytes (256 MiB at the default 2^20 keys), whatever clients send. A
/// longer key is refused before the limiter sees it
/// ([`RefusalKind::KeyTooLong`](crate::RefusalKind::KeyTooLong)).
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// Extracts the rate-limit key of a request.
///
/// Implemented by the built-in extractors for every body type, and by
/// [`KeyFn`] for a closure. An implementation MUST bound the bytes of the
/// keys it returns (the built-in ones refuse keys longer than
/// [`DEFAULT_MAX_KEY_LEN`] by default with [`NoKey::TooLong`]): a limiter
/// keeps every key it has seen while its bucket lives.
pub trait KeyExtractor<B>: Send + Sync + 'static {
    /// The key handed to the limiter.
    type Key: Send + 'static;

    /// The key of `request`, or why it has none.
    ///
    /// # Errors
    /// [`NoKey`]: [`NoKey::Missing`] goes to the layer's
    /// [`MissingKey`] policy; the others are refused.
    fn extract(&self, request: &Request<B>) -> Result<Self::Key, NoKey>;
}

/// Where an extractor looks for the key, to say so in a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A request header ([`HeaderKey`]).
    Header(HeaderName),
    /// The client's IP address ([`ClientIp`](crate::ClientIp)).
    ClientIp,
    /// The matched route ([`RouteKey`]).
    Route,
    /// A closure ([`KeyFn`]) or another extractor.
    Custom,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "header {name}"),
            Self::ClientIp => f.write_str("client address"),
            Self::Route => f.write_str("matched route"),
            Self::Custom => f.write_str("key"),
        }
    }
}

/// Why a request has no usable key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoKey {
    /// The request carries no key (an absent or empty header, no matched
    /// route, a closure's `None`). The layer applies its [`MissingKey`]
    /// policy: reject (default), a shared bucket, or through unlimited.
    Missing(KeySource),
    /// The key is there but cannot be one (a header value that is not
    /// visible ASCII). Always refused (`400`): treating it as missing
    /// would let a client who sends one odd byte choose the
    /// [`MissingKey`] policy.
    Invalid(KeySource),
    /// The key is longer than the extractor's maximum. Always refused
    /// (`431` for a header, `400` otherwise), before the limiter sees it.
    TooLong {
        /// Where the key was.
        source: KeySource,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The server did not give the layer the connection's address (axum:
    /// served without `into_make_service_with_connect_info`). A server
    /// misconfiguration: always refused (`500`) and logged once.
    NoClientAddress,
}

/// The length in bytes of a key as a limiter stores it: of its text or
/// bytes, or the size of a number or an address.
///
/// [`KeyFn`] needs it to refuse long keys; implemented for strings, byte
/// strings, integers, IP addresses, and tuples of those. Implement it for
/// a key type of your own by summing its parts.
pub trait KeyLen {
    /// The length in bytes.
    fn key_len(&self) -> usize;
}

impl<T: KeyLen + ?Sized> KeyLen for &T {
    fn key_len(&self) -> usize {
        (**self).key_len()
    }
}

impl<T: KeyLen + ?Sized> KeyLen for Box<T> {
    fn key_len(&self) -> usize {
        (**self).key_len()
    }
}

impl<T: KeyLen + ?Sized> KeyLen for Arc<T> {
    fn key_len(&self) -> usize {
        (**self).key_len()
    }
}

impl KeyLen for str {
    fn key_len(&self) -> usize {
        self.len()
    }
}

impl KeyLen for String {
    fn key_len(&self) -> usize {
        self.len()
    }
}

impl KeyLen for Cow<'_, str> {
    fn key_len(&self) -> usize {
        self.len()
    }
}

impl KeyLen for [u8] {
    fn key_len(&self) -> usize {
        self.len()
    }
}

impl KeyLen for Vec<u8> {
    fn key_len(&self) -> usize {
        self.len()
    }
}

macro_rules! fixed_len {
    ($($t:ty),*) => {$(
        impl KeyLen for $t {
            fn key_len(&self) -> usize {
                size_of::<$t>()
            }
        }
    )*};
}

fixed_len!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, Ipv4Addr, Ipv6Addr
);

impl KeyLen for IpAddr {
    fn key_len(&self) -> usize {
        match self {
            Self::V4(_) => 4,
            Self::V6(_) => 16,
        }
    }
}

impl<A: KeyLen, B: KeyLen> KeyLen for (A, B) {
    fn key_len(&self) -> usize {
        self.0.key_len().saturating_add(self.1.key_len())
    }
}

impl<A: KeyLen, B: KeyLen, C: KeyLen> KeyLen for (A, B, C) {
    fn key_len(&self) -> usize {
        self.0
            .key_len()
            .saturating_add(self.1.key_len())
            .saturating_add(self.2.key_len())
    }
}

/// A closure as a [`KeyExtractor`]: `KeyFn::new(|req: &Request<Body>| ...)`,
/// returning `None` for a request without a key. Keys longer than
/// [`max_len`](Self::max_len) bytes ([`KeyLen`], 256 by default) are
/// refused.
///
/// ```
/// use http::Request;
/// use ratelimit_tower::{KeyExtractor, KeyFn, NoKey};
///
/// // One bucket per (tenant, method).
/// let key = KeyFn::new(|req: &Request<()>| {
///     let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
///     Some(format!("{tenant}:{}", req.method()))
/// });
/// let req = Request::post("/").header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(key.extract(&req).as_deref(), Ok("acme:POST"));
///
/// let long = Request::post("/").header("x-tenant", "a".repeat(300)).body(()).unwrap();
/// assert!(matches!(key.extract(&long), Err(NoKey::TooLong { len: 305, max: 256, .. })));
/// ```
#[derive(Clone, Copy)]
pub struct KeyFn<F> {
    f: F,
    max_len: usize,
}

impl<F> KeyFn<F> {
    /// Keys by the closure `f`.
    #[must_use]
    pub fn new(f: F) -> Self {
        Self {
            f,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Refuses keys longer than `max` bytes (default
    /// [`DEFAULT_MAX_KEY_LEN`]).
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }
}

impl<F> fmt::Debug for KeyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn")
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl<B, K, F> KeyExtractor<B> for KeyFn<F>
where
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    K: KeyLen + Send + 'static,
{
    type Key = K;

    #[inline]
    fn extract(&self, request: &Request<B>) -> Result<K, NoKey> {
        let key = (self.f)(request).ok_or(NoKey::Missing(KeySource::Custom))?;
        let len = key.key_len();
        if len > self.max_len {
            return Err(NoKey::TooLong {
                source: KeySource::Custom,
                len,
                max: self.max_len,
            });
        }
        Ok(key)
    }
}

/// The value of a request header, e.g. `X-API-Key`, as a `String`.
///
/// A missing header or an empty value is no key ([`NoKey::Missing`]); a
/// value that is not visible ASCII is refused ([`NoKey::Invalid`]), and
/// so is a value longer than [`max_len`](Self::max_len) bytes (256 by
/// default; [`NoKey::TooLong`], answered `431 Request Header Fields Too
/// Large`) before anything is copied. If the header appears several
/// times, the first one is the key.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
    max_len: usize,
}

impl HeaderKey {
    /// Keys by the header `name`.
    #[must_use]
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Keys by `X-API-Key`.
    #[must_use]
    pub fn api_key() -> Self {
        Self::new(HeaderName::from_static("x-api-key"))
    }

    /// Refuses values longer than `max` bytes (default
    /// [`DEFAULT_MAX_KEY_LEN`]).
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    fn source(&self) -> KeySource {
        KeySource::Header(self.name.clone())
    }
}

impl<B> KeyExtractor<B> for HeaderKey {
    type Key = String;

    #[inline]
    fn extract(&self, request: &Request<B>) -> Result<String, NoKey> {
        let Some(value) = request.headers().get(&self.name) else {
            return Err(NoKey::Missing(self.source()));
        };
        let len = value.len();
        if len == 0 {
            return Err(NoKey::Missing(self.source()));
        }
        if len > self.max_len {
            return Err(NoKey::TooLong {
                source: self.source(),
                len,
                max: self.max_len,
            });
        }
        match value.to_str() {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(NoKey::Invalid(self.source())),
        }
    }
}

/// The route: method and matched path template (`GET /users/{id}`), from
/// axum's `MatchedPath` (feature `axum`) or a [`RoutePattern`] extension.
///
/// The raw URI path is never used: every distinct path would be a new
/// bucket, for a client to multiply at will. Without a matched path the
/// request has no key. With axum, add the layer with `Router::route_layer`
/// (or on a route), where the path has been matched; `Router::layer` runs
/// before routing and sees none. Keys longer than
/// [`max_len`](Self::max_len) (256 bytes by default; a client chooses the
/// method) are refused.
#[derive(Debug, Clone, Copy)]
pub struct RouteKey {
    max_len: usize,
}

impl Default for RouteKey {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteKey {
    /// Keys by method and matched route.
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Refuses keys longer than `max` bytes (default
    /// [`DEFAULT_MAX_KEY_LEN`]).
    #[must_use]
    pub fn max_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }
}

/// A route template to key by, put in the request extensions by a router
/// other than axum's (for [`RouteKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern(pub String);

impl<B> KeyExtractor<B> for RouteKey {
    type Key = String;

    fn extract(&self, request: &Request<B>) -> Result<String, NoKey> {
        let ext = request.extensions();
        #[cfg(feature = "axum")]
        let matched = ext
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        #[cfg(not(feature = "axum"))]
        let matched: Option<&str> = None;
        let path = matched
            .or_else(|| ext.get::<RoutePattern>().map(|p| p.0.as_str()))
            .ok_or(NoKey::Missing(KeySource::Route))?;
        let method = request.method().as_str();
        let len = method.len() + 1 + path.len();
        if len > self.max_len {
            return Err(NoKey::TooLong {
                source: KeySource::Route,
                len,
                max: self.max_len,
            });
        }
        Ok(format!("{method} {path}"))
    }
}

/// What the layer does with a request that has no key
/// ([`NoKey::Missing`]).
///
/// Invalid and too-long keys, and a missing client address, are refused
/// whatever this says: a client must not be able to opt out of its limit
/// by sending a malformed key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey<K> {
    /// Refuse it with this status (default `400 Bad Request`) without
    /// calling the service ([`RefusalKind::MissingKey`](crate::RefusalKind::MissingKey)).
    Reject(StatusCode),
    /// Count it in this one shared bucket (an "anonymous" key).
    Shared(K),
    /// Let it through unlimited, without rate-limit headers (e.g. a route
    /// key that is `None` for `/health`).
    Allow,
}

impl<K> Default for MissingKey<K> {
    fn default() -> Self {
        Self::Reject(StatusCode::BAD_REQUEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &[u8]) -> Request<()> {
        Request::get("/")
            .header("x-api-key", http::HeaderValue::from_bytes(value).unwrap())
            .body(())
            .unwrap()
    }

    #[test]
    fn header_keys() {
        let key = HeaderKey::api_key();
        let source = KeySource::Header(HeaderName::from_static("x-api-key"));
        assert_eq!(key.extract(&with_header(b"abc")), Ok("abc".to_owned()));
        assert_eq!(
            key.extract(&Request::get("/").body(()).unwrap()),
            Err(NoKey::Missing(source.clone()))
        );
        assert_eq!(
            key.extract(&with_header(b"")),
            Err(NoKey::Missing(source.clone()))
        );
        assert_eq!(
            key.extract(&with_header(b"caf\xc3\xa9")),
            Err(NoKey::Invalid(source.clone()))
        );
        assert_eq!(key.extract(&with_header(&[b'a'; 256])).unwrap().len(), 256);
        assert_eq!(
            key.extract(&with_header(&[b'a'; 257])),
            Err(NoKey::TooLong {
                source: source.clone(),
                len: 257,
                max: 256
            })
        );
        // Too long is checked first: a long invalid value is too long.
        assert!(matches!(
            key.clone()
                .max_len(2)
                .extract(&with_header(b"\xff\xff\xff")),
            Err(NoKey::TooLong { len: 3, max: 2, .. })
        ));
    }

    #[test]
    fn route_keys() {
        let mut request = Request::get("/users/7").body(()).unwrap();
        assert_eq!(
            RouteKey::new().extract(&request),
            Err(NoKey::Missing(KeySource::Route))
        );
        request
            .extensions_mut()
            .insert(RoutePattern("/users/{id}".to_owned()));
        assert_eq!(
            RouteKey::new().extract(&request).as_deref(),
            Ok("GET /users/{id}")
        );
        assert_eq!(
            RouteKey::new().max_len(14).extract(&request),
            Err(NoKey::TooLong {
                source: KeySource::Route,
                len: 15,
                max: 14
            })
        );
    }

    #[test]
    fn key_lengths() {
        assert_eq!("abc".key_len(), 3);
        assert_eq!(7u64.key_len(), 8);
        assert_eq!(IpAddr::from([1, 2, 3, 4]).key_len(), 4);
        assert_eq!(("ab".to_owned(), 1u32).key_len(), 6);
        assert_eq!((Arc::<str>::from("ab"), &b"xyz"[..], 1u8).key_len(), 6);
    }
}
