//! The forwarding headers of trusted proxies: which proxies are believed
//! ([`TrustedProxies`]), which header they write ([`ForwardedHeader`]),
//! and the parser that finds the client address in `X-Forwarded-For` or
//! `Forwarded` (RFC 7239).
//!
//! The parser reads bytes, not text, and reads right to left, hop by hop:
//! the right end of the list was written by the proxies we trust, the left
//! by whoever sent the request. A hop is parsed only when every hop to its
//! right was a trusted proxy, so nothing the client wrote (non-ASCII bytes,
//! an unbalanced quote, garbage) can hide what the trusted proxies
//! appended. Quotes are not honoured when splitting (an address never
//! holds a comma), for the same reason: a client's unbalanced `"` cannot
//! swallow the proxies' part.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::{IpNet, Ipv4Net};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which forwarding header a trusted proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239), `for` parameters only.
    Forwarded,
}

/// A trusted network that could not be parsed (by
/// [`TrustedProxies::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNetwork(String);

impl fmt::Display for InvalidNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid trusted proxy network {:?}: expected an address (10.0.0.1) or a network (10.0.0.0/8)",
            self.0
        )
    }
}

impl core::error::Error for InvalidNetwork {}

/// The proxies whose forwarding header is believed, and which header
/// they write.
///
/// Fail closed: with no trusted proxies (the default) the forwarding
/// headers are never read, because any client can send them.
///
/// Networks are [`ipnet::IpNet`] (re-exported as [`IpNet`](crate::IpNet));
/// an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is its IPv4
/// network, and IPv4-mapped addresses are matched as IPv4.
///
/// ```
/// use ratelimit_tower::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::parse(ForwardedHeader::XForwardedFor, ["10.0.0.0/8", "127.0.0.1"])?;
/// assert!(proxies.is_trusted("10.1.2.3".parse()?));
/// assert!(proxies.is_trusted("::ffff:127.0.0.1".parse()?));
/// assert!(!proxies.is_trusted("192.0.2.1".parse()?));
/// assert!(TrustedProxies::parse(ForwardedHeader::Forwarded, ["10.0.0.0/33"]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

    /// Trusts `networks` (networks or single addresses), which write
    /// `header`.
    #[must_use]
    pub fn new(
        header: ForwardedHeader,
        networks: impl IntoIterator<Item = impl Into<IpNet>>,
    ) -> Self {
        Self {
            networks: networks
                .into_iter()
                .map(|n| canonical_net(n.into()))
                .collect(),
            header: Some(header),
        }
    }

    /// Trusts the networks written as `10.0.0.0/8`, `2001:db8::/32` or a
    /// single address (`127.0.0.1`, `::1`).
    ///
    /// # Errors
    /// [`InvalidNetwork`] naming the first text that is neither.
    pub fn parse(
        header: ForwardedHeader,
        networks: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, InvalidNetwork> {
        let networks = networks
            .into_iter()
            .map(|text| {
                let text = text.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidNetwork(text.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(header, networks))
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request that came from `peer` with
    /// `headers`: `peer` itself unless it is trusted; otherwise the
    /// right-most address of the forwarding header that is not a trusted
    /// proxy (or the left-most, if all are). `None` when the hop to use is
    /// not an IP address (`unknown`, an obfuscated identifier, garbage);
    /// hops left of it are never looked at.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let Some(header) = self.header else {
            return Some(peer);
        };
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let mut next = |hop: &[u8]| -> Option<bool> {
            let ip = parse_hop(hop)?;
            client = ip;
            Some(self.is_trusted(ip))
        };
        match header {
            ForwardedHeader::XForwardedFor => {
                for hop in right_to_left(headers, &X_FORWARDED_FOR) {
                    if !next(hop)? {
                        break;
                    }
                }
            }
            ForwardedHeader::Forwarded => {
                for element in right_to_left(headers, &FORWARDED) {
                    if !next(for_parameter(element))? {
                        break;
                    }
                }
            }
        }
        Some(client)
    }
}

/// The comma-separated items of every line of `name`, right to left.
fn right_to_left<'a>(
    headers: &'a HeaderMap,
    name: &'static HeaderName,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(name)
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&b| b == b','))
}

/// The value of the `for` parameter of a `Forwarded` element
/// (`for=192.0.2.60;proto=http`), or an empty slice (not an address) when
/// it has none.
fn for_parameter(element: &[u8]) -> &[u8] {
    element
        .split(|&b| b == b';')
        .find_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            name.trim_ascii()
                .eq_ignore_ascii_case(b"for")
                .then_some(value)
        })
        .unwrap_or_default()
}

/// The longest hop that can be an address: `"[` + an IPv6 address in its
/// longest text form (45 bytes, with an embedded IPv4) + `]:65535"`.
const MAX_HOP_LEN: usize = 2 + 45 + 7 + 1;

/// An address of a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]:80`, `"[::1]:80"`; `None` for anything else.
pub(crate) fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let mut hop = hop.trim_ascii();
    while let [b'"', rest @ ..] = hop {
        hop = rest;
    }
    while let [rest @ .., b'"'] = hop {
        hop = rest;
    }
    if hop.len() > MAX_HOP_LEN {
        return None;
    }
    let hop = core::str::from_utf8(hop).ok()?;
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = hop.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/p`, `p ≥ 96`) as its IPv4
/// network; others unchanged.
fn canonical_net(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else {
        return net;
    };
    match v6.addr().to_ipv4_mapped() {
        Some(v4) if v6.prefix_len() >= 96 => {
            Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4)
        }
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hops() {
        assert_eq!(parse_hop(b"1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop(b" 1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_hop(b"\"[::1]:80\""), Some(ip("::1")));
        assert_eq!(parse_hop(b"[::1]"), Some(ip("::1")));
        assert_eq!(
            parse_hop(b"[0000:0000:0000:0000:0000:ffff:255.255.255.255]:65535"),
            Some(ip("::ffff:255.255.255.255"))
        );
        assert_eq!(parse_hop(b"unknown"), None);
        assert_eq!(parse_hop(b"_hidden"), None);
        assert_eq!(parse_hop(b"1.2.3.\xff"), None);
        assert_eq!(parse_hop(b""), None);
        assert_eq!(parse_hop(b"\"\""), None);
    }

    #[test]
    fn networks() {
        let parse = |s: &str| TrustedProxies::parse(ForwardedHeader::XForwardedFor, [s]);
        let trusts = |net: &str, addr: &str| parse(net).unwrap().is_trusted(ip(addr));
        assert!(trusts("10.0.0.0/8", "10.1.2.3"));
        assert!(!trusts("10.0.0.0/8", "11.1.2.3"));
        assert!(trusts("10.0.0.0/8", "::ffff:10.9.9.9"));
        assert!(trusts("::ffff:10.0.0.0/104", "10.9.9.9"));
        assert!(trusts("0.0.0.0/0", "1.2.3.4"));
        assert!(trusts("2001:db8::/32", "2001:db8:1::1"));
        assert!(!trusts("2001:db8::/32", "10.0.0.1"));
        assert!(trusts("127.0.0.1", "127.0.0.1"));
        assert!(!trusts("127.0.0.1", "127.0.0.2"));
        assert!(trusts(" ::1 ", "::1"));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", "/8", ""] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{:?}", bad.trim())),
                "{err}"
            );
        }
    }

    #[test]
    fn forwarded_elements() {
        assert_eq!(for_parameter(b"for=1.2.3.4;proto=http"), b"1.2.3.4");
        assert_eq!(
            for_parameter(b" proto=http; For = \"[::1]\""),
            b" \"[::1]\""
        );
        assert_eq!(for_parameter(b"by=1.2.3.4"), b"");
        assert_eq!(for_parameter(b"\xff\xfe"), b"");
    }
}
