//! Which bucket a request goes to: [`KeyExtractor`] and the built-in
//! extractors ([`HeaderKey`], [`ClientIp`], [`RouteKey`], [`KeyFn`]), and
//! what happens to a request without a key ([`MissingKey`]).

use core::fmt;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

use http::{HeaderMap, HeaderName, Request, StatusCode};

/// Extracts the rate-limit key of a request, or `None` when it has none
/// (the layer then applies its [`MissingKey`] policy).
///
/// Implemented by the built-in extractors for every body type, and by
/// [`KeyFn`] for a closure.
pub trait KeyExtractor<B>: Send + Sync + 'static {
    /// The key handed to the limiter.
    type Key: Send + 'static;

    /// The key of `request`, if it has one.
    fn extract(&self, request: &Request<B>) -> Option<Self::Key>;
}

/// A closure as a [`KeyExtractor`]: `KeyFn(|req: &Request<Body>| ...)`.
///
/// ```
/// use http::Request;
/// use ratelimit_tower::{KeyExtractor, KeyFn};
///
/// // One bucket per (tenant, method).
/// let key = KeyFn(|req: &Request<()>| {
///     let tenant = req.headers().get("x-tenant")?.to_str().ok()?;
///     Some(format!("{tenant}:{}", req.method()))
/// });
/// let req = Request::post("/").header("x-tenant", "acme").body(()).unwrap();
/// assert_eq!(key.extract(&req).as_deref(), Some("acme:POST"));
/// ```
#[derive(Clone, Copy)]
pub struct KeyFn<F>(pub F);

impl<F> fmt::Debug for KeyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFn(..)")
    }
}

impl<B, K, F> KeyExtractor<B> for KeyFn<F>
where
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    K: Send + 'static,
{
    type Key = K;

    #[inline]
    fn extract(&self, request: &Request<B>) -> Option<K> {
        (self.0)(request)
    }
}

/// The value of a request header, e.g. `X-API-Key`, as a `String`.
///
/// A missing header, an empty value, or a value that is not visible ASCII
/// counts as no key. If the header appears several times, the first one
/// is the key.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys by the header `name`.
    #[must_use]
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }

    /// Keys by `X-API-Key`.
    #[must_use]
    pub fn api_key() -> Self {
        Self::new(HeaderName::from_static("x-api-key"))
    }
}

impl<B> KeyExtractor<B> for HeaderKey {
    type Key = String;

    #[inline]
    fn extract(&self, request: &Request<B>) -> Option<String> {
        let value = request.headers().get(&self.name)?.to_str().ok()?;
        (!value.is_empty()).then(|| value.to_owned())
    }
}

/// The route: method and matched path template (`GET /users/{id}`), from
/// axum's `MatchedPath` (feature `axum`) or a [`RoutePattern`] extension.
///
/// The raw URI path is never used: every distinct path would be a new
/// bucket, for a client to multiply at will. Without a matched path the
/// request has no key. With axum, add the layer with `Router::route_layer`
/// (or on a route), where the path has been matched; `Router::layer` runs
/// before routing and sees none.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKey;

/// A route template to key by, put in the request extensions by a router
/// other than axum's (for [`RouteKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern(pub String);

impl<B> KeyExtractor<B> for RouteKey {
    type Key = String;

    fn extract(&self, request: &Request<B>) -> Option<String> {
        let ext = request.extensions();
        #[cfg(feature = "axum")]
        if let Some(path) = ext.get::<axum::extract::MatchedPath>() {
            return Some(format!("{} {}", request.method(), path.as_str()));
        }
        let path = ext.get::<RoutePattern>()?;
        Some(format!("{} {}", request.method(), path.0))
    }
}

/// Which forwarding header a trusted proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239), `for` parameters only.
    Forwarded,
}

/// An IP network: an address and a prefix length, parsed from
/// `10.0.0.0/8`, `2001:db8::/32` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with `prefix` leading bits (at most 32 for
    /// IPv4, 128 for IPv6), or `None` for a longer prefix.
    #[must_use]
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) matches as its IPv4 address.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(net.to_bits()), self.prefix, 32)
                    == masked(u128::from(ip.to_bits()), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.to_bits(), self.prefix, 128) == masked(ip.to_bits(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An [`IpNet`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetParseError(String);

impl fmt::Display for IpNetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid IP network {:?}: expected an address or ADDRESS/PREFIX",
            self.0
        )
    }
}

impl core::error::Error for IpNetParseError {}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || IpNetParseError(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (
                addr.parse::<IpAddr>().map_err(|_| err())?,
                Some(prefix.parse::<u8>().map_err(|_| err())?),
            ),
            None => (text.parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Self::new(addr, prefix).ok_or_else(err)
    }
}

/// The proxies whose forwarding header is believed, and which header
/// they write.
///
/// Fail closed: with no trusted proxies (the default) the forwarding
/// headers are never read, because any client can send them.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: Option<ForwardedHeader>,
}

impl TrustedProxies {
    /// Trusts no proxy: the client is the socket peer.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts `networks`, which write `header`.
    #[must_use]
    pub fn new(header: ForwardedHeader, networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            networks: networks.into_iter().collect(),
            header: Some(header),
        }
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client address of a request that came from `peer` with
    /// `headers`: `peer` itself unless it is trusted; otherwise the
    /// right-most address of the forwarding header that is not a trusted
    /// proxy (or the left-most, if all are). `None` when the hop to use is
    /// not an IP address (`unknown`, an obfuscated identifier, garbage).
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let Some(header) = self.header else {
            return Some(peer);
        };
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        match header {
            ForwardedHeader::XForwardedFor => {
                for value in headers.get_all("x-forwarded-for") {
                    let value = value.to_str().ok()?;
                    hops.extend(value.split(',').map(str::trim));
                }
            }
            ForwardedHeader::Forwarded => {
                for value in headers.get_all(http::header::FORWARDED) {
                    let value = value.to_str().ok()?;
                    for element in value.split(',') {
                        let for_ = element.split(';').find_map(|pair| {
                            let (name, value) = pair.trim().split_once('=')?;
                            name.trim()
                                .eq_ignore_ascii_case("for")
                                .then_some(value.trim())
                        });
                        // An element without `for` is a hop we cannot place.
                        hops.push(for_.unwrap_or(""));
                    }
                }
            }
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            let ip = parse_hop(hop)?;
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// An address of a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]:80`, `"[::1]:80"`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// The client's IP address: the socket peer, or with [`TrustedProxies`]
/// the address the trusted proxies report.
///
/// The peer comes from the request extensions: axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`; serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a plain
/// `SocketAddr` inserted by the server. A request without either has no
/// key (fail closed).
///
/// IPv6 clients are keyed by their `/64` network by default
/// ([`ipv6_prefix`](Self::ipv6_prefix)): one host usually holds a whole
/// `/64` and could otherwise rotate addresses to get fresh buckets.
#[derive(Debug, Clone)]
pub struct ClientIp {
    proxies: TrustedProxies,
    ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIp {
    /// The socket peer's address; forwarding headers are ignored.
    #[must_use]
    pub fn new() -> Self {
        Self {
            proxies: TrustedProxies::none(),
            ipv6_prefix: 64,
        }
    }

    /// Believes the forwarding header of `proxies`.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Keys IPv6 clients by their network of `prefix` bits (default 64;
    /// 128 keys each address alone). Values above 128 count as 128.
    #[must_use]
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// The socket peer of `request`, from its extensions.
    #[must_use]
    pub fn peer<B>(request: &Request<B>) -> Option<SocketAddr> {
        let ext = request.extensions();
        #[cfg(feature = "axum")]
        if let Some(info) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
            return Some(info.0);
        }
        ext.get::<SocketAddr>().copied()
    }
}

impl<B> KeyExtractor<B> for ClientIp {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = canonical(Self::peer(request)?.ip());
        let ip = canonical(self.proxies.client(peer, request.headers())?);
        Some(match ip {
            IpAddr::V6(v6) if self.ipv6_prefix < 128 => {
                let bits = masked(v6.to_bits(), self.ipv6_prefix, 128);
                let bits = bits
                    .checked_shl(u32::from(128 - self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from_bits(bits))
            }
            _ => ip,
        })
    }
}

/// What the layer does with a request that has no key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey<K> {
    /// Answer with this status (default `400 Bad Request`) without
    /// calling the service.
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

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        assert!(net("10.0.0.0/8").contains("10.1.2.3".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("11.1.2.3".parse().unwrap()));
        assert!(net("10.0.0.0/8").contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(net("2001:db8::/32").contains("2001:db8:1::1".parse().unwrap()));
        assert!(!net("2001:db8::/32").contains("10.0.0.1".parse().unwrap()));
        assert!(net("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(!net("127.0.0.1").contains("127.0.0.2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", "/8"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hops() {
        assert_eq!(parse_hop("1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_hop(" 1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_hop("\"[::1]:80\""), Some("::1".parse().unwrap()));
        assert_eq!(parse_hop("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);
    }
}
