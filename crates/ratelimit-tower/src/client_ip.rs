//! [`ClientIp`]: the client's IP address as the key, from the connection's
//! peer address or, behind [`TrustedProxies`], from their forwarding
//! header; IPv6 clients by network.

use core::fmt;
use core::marker::PhantomData;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::Request;

use crate::forwarded::{TrustedProxies, canonical};
use crate::key::{KeyExtractor, KeySource, NoKey};

/// The client's IP address: the socket peer, or with [`TrustedProxies`]
/// the address the trusted proxies report.
///
/// The peer comes from the request extensions: axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`; serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a plain
/// `SocketAddr` inserted by the server. A request without either is a
/// server misconfiguration: the layer refuses it with `500` and logs a
/// warning once (feature `tracing`), whatever its
/// [`MissingKey`](crate::MissingKey) policy ([`NoKey::NoClientAddress`]).
///
/// IPv6 clients are keyed by their `/64` network by default
/// ([`ipv6_prefix`](Self::ipv6_prefix)): one host usually holds a whole
/// `/64` and could otherwise rotate addresses to get fresh buckets.
///
/// The key is an [`IpAddr`] (for the memory limiter, `KeyedLimiter<IpAddr,
/// _>`), or its text with [`as_text`](Self::as_text) (`"203.0.113.9"`,
/// `"2001:db8:1:2::"`), for limiters that take byte keys such as the Redis
/// limiters. Either is at most 39 bytes: client addresses need no length
/// bound.
pub struct ClientIp<K = IpAddr> {
    proxies: TrustedProxies,
    ipv6_prefix: u8,
    key: PhantomData<fn() -> K>,
}

impl<K> Clone for ClientIp<K> {
    fn clone(&self) -> Self {
        Self {
            proxies: self.proxies.clone(),
            ipv6_prefix: self.ipv6_prefix,
            key: PhantomData,
        }
    }
}

impl<K> fmt::Debug for ClientIp<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIp")
            .field("proxies", &self.proxies)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .field("key", &core::any::type_name::<K>())
            .finish()
    }
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
            key: PhantomData,
        }
    }

    /// Keys by the address's text (a `String`: `"203.0.113.9"`,
    /// `"2001:db8:1:2::"`), for limiters whose keys are bytes, such as the
    /// Redis limiters.
    ///
    /// ```
    /// use core::net::SocketAddr;
    /// use http::Request;
    /// use ratelimit_tower::{ClientIp, KeyExtractor};
    ///
    /// let mut request = Request::get("/").body(()).unwrap();
    /// request.extensions_mut().insert("[2001:db8:1:2:3:4:5:6]:443".parse::<SocketAddr>().unwrap());
    /// assert_eq!(ClientIp::new().as_text().extract(&request).as_deref(), Ok("2001:db8:1:2::"));
    /// ```
    #[must_use]
    pub fn as_text(self) -> ClientIp<String> {
        ClientIp {
            proxies: self.proxies,
            ipv6_prefix: self.ipv6_prefix,
            key: PhantomData,
        }
    }

    /// The socket peer of `request`, from its extensions: axum's
    /// `ConnectInfo<SocketAddr>` (feature `axum`) or a `SocketAddr`.
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

impl<K> ClientIp<K> {
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

    /// The client address of `request`: canonical (IPv4-mapped as IPv4),
    /// IPv6 cut to its network.
    fn address<B>(&self, request: &Request<B>) -> Result<IpAddr, NoKey> {
        let peer = ClientIp::peer(request).ok_or(NoKey::NoClientAddress)?;
        let ip = self
            .proxies
            .client(canonical(peer.ip()), request.headers())
            .ok_or(NoKey::Missing(KeySource::ClientIp))?;
        Ok(match canonical(ip) {
            IpAddr::V6(v6) if self.ipv6_prefix < 128 => {
                let keep = u32::from(self.ipv6_prefix);
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
            }
            ip => ip,
        })
    }
}

impl<B> KeyExtractor<B> for ClientIp<IpAddr> {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Result<IpAddr, NoKey> {
        self.address(request)
    }
}

impl<B> KeyExtractor<B> for ClientIp<String> {
    type Key = String;

    fn extract(&self, request: &Request<B>) -> Result<String, NoKey> {
        self.address(request).map(|ip| ip.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(peer: &str) -> Request<()> {
        let mut request = Request::get("/").body(()).unwrap();
        request
            .extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        request
    }

    #[test]
    fn ipv6_networks() {
        let key = |prefix: u8, peer: &str| {
            ClientIp::new()
                .ipv6_prefix(prefix)
                .extract(&from(peer))
                .unwrap()
                .to_string()
        };
        assert_eq!(key(64, "[2001:db8:1:2:3:4:5:6]:1"), "2001:db8:1:2::");
        assert_eq!(key(128, "[2001:db8:1:2:3:4:5:6]:1"), "2001:db8:1:2:3:4:5:6");
        assert_eq!(key(200, "[2001:db8:1:2:3:4:5:6]:1"), "2001:db8:1:2:3:4:5:6");
        assert_eq!(key(0, "[2001:db8:1:2:3:4:5:6]:1"), "::");
        assert_eq!(key(1, "[ffff::1]:1"), "8000::");
        // IPv4-mapped peers are IPv4, never cut.
        assert_eq!(key(64, "[::ffff:192.0.2.1]:1"), "192.0.2.1");
    }

    #[test]
    fn no_peer_is_a_server_error() {
        let request = Request::get("/").body(()).unwrap();
        assert_eq!(
            ClientIp::new().extract(&request),
            Err(NoKey::NoClientAddress)
        );
        assert_eq!(
            ClientIp::new().as_text().extract(&request),
            Err(NoKey::NoClientAddress)
        );
    }
}
