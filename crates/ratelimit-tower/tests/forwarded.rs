//! Property tests of the forwarding-header parser (issue 15, point 8):
//! no input panics, and whatever a client writes before the hops that
//! trusted proxies append, the client address is the one they appended.
//! The seed is fixed, so every run tries the same 2 048 cases per property
//! (a run never depends on luck); change it to explore further.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, HeaderValue, Request};
use proptest::prelude::*;
use ratelimit_tower::{ClientIp, ForwardedHeader, KeyExtractor, NoKey, TrustedProxies};

fn proxies(header: ForwardedHeader) -> TrustedProxies {
    TrustedProxies::parse(header, ["10.0.0.0/8", "2001:db8::/32"]).unwrap()
}

/// Bytes a client can put in a header value: anything but CR, LF, NUL and
/// the other controls (tab is allowed), with the separators and the
/// characters of addresses over-represented.
fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => 0x20_u8..0x7f,
        2 => 0x80_u8..=0xff,
        1 => Just(b'\t'),
        2 => prop::sample::select(b",;=\"[]:.for_".to_vec()),
        2 => prop::sample::select(b"0123456789abcdef".to_vec()),
    ];
    prop::collection::vec(byte, 0..48)
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        // IPv4-mapped IPv6.
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
    ]
}

fn trusted_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|b| IpAddr::V4(Ipv4Addr::new(10, b[0], b[1], b[2]))),
        any::<[u16; 6]>().prop_map(|s| {
            IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, s[0], s[1], s[2], s[3], s[4], s[5],
            ))
        }),
    ]
}

/// How a proxy writes an address: bare or with a port, quoted for
/// `Forwarded` where RFC 7239 needs it (IPv6, ports).
fn written(ip: IpAddr, port: Option<u16>, header: ForwardedHeader) -> String {
    let text = match (ip, port) {
        (ip, Some(port)) => SocketAddr::new(ip, port).to_string(),
        (IpAddr::V6(v6), None) if header == ForwardedHeader::Forwarded => format!("[{v6}]"),
        (ip, None) => ip.to_string(),
    };
    match header {
        ForwardedHeader::XForwardedFor => text,
        _ if text.contains(':') => format!("for=\"{text}\""),
        _ => format!("for={text}"),
    }
}

fn header_name(header: ForwardedHeader) -> &'static str {
    match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        _ => "forwarded",
    }
}

fn kind() -> impl Strategy<Value = ForwardedHeader> {
    prop_oneof![
        Just(ForwardedHeader::XForwardedFor),
        Just(ForwardedHeader::Forwarded)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7261_7465_6c69_6d69),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_input_panics(
        header in kind(),
        peer in any_ip(),
        lines in prop::collection::vec(client_bytes(), 0..4),
        prefix in 0_u8..=128,
    ) {
        let proxies = proxies(header);
        let mut headers = HeaderMap::new();
        for line in &lines {
            headers.append(header_name(header), HeaderValue::from_bytes(line).unwrap());
        }
        let client = proxies.client(peer, &headers);
        if !proxies.is_trusted(peer) {
            // An untrusted peer's header is never read.
            prop_assert_eq!(client, Some(peer));
        }
        let mut request = Request::get("/").body(()).unwrap();
        *request.headers_mut() = headers;
        request.extensions_mut().insert(SocketAddr::new(peer, 443));
        let key = ClientIp::new().trusted_proxies(proxies).ipv6_prefix(prefix).extract(&request);
        prop_assert!(matches!(key, Ok(_) | Err(NoKey::Missing(_))), "{key:?}");
    }

    #[test]
    fn the_trusted_hops_are_always_honoured(
        header in kind(),
        client_part in prop::option::of(client_bytes()),
        own_line in any::<bool>(),
        client in any_ip(),
        client_port in prop::option::of(any::<u16>()),
        hops in prop::collection::vec((trusted_ip(), prop::option::of(any::<u16>())), 0..4),
        peer in trusted_ip(),
    ) {
        let proxies = proxies(header);
        prop_assume!(!proxies.is_trusted(client));
        // The first trusted proxy appends the client's address to what the
        // client sent; each next one appends the previous proxy's.
        let mut appended = vec![written(client, client_port, header)];
        appended.extend(hops.iter().map(|&(ip, port)| written(ip, port, header)));
        let appended = appended.join(", ");
        let mut headers = HeaderMap::new();
        let name = header_name(header);
        match client_part {
            Some(part) if own_line => {
                headers.append(name, HeaderValue::from_bytes(&part).unwrap());
                headers.append(name, HeaderValue::from_str(&appended).unwrap());
            }
            Some(mut part) => {
                part.extend_from_slice(b", ");
                part.extend_from_slice(appended.as_bytes());
                headers.append(name, HeaderValue::from_bytes(&part).unwrap());
            }
            None => {
                headers.append(name, HeaderValue::from_str(&appended).unwrap());
            }
        }
        prop_assert_eq!(proxies.client(peer, &headers), Some(client), "{:?}", headers);
    }
}

#[test]
fn one_byte_that_is_not_ascii_no_longer_discards_the_header() {
    // The attack of issue 15: behind a trusted proxy, one non-ASCII byte in
    // the client-written part made the request keyless.
    let proxies = proxies(ForwardedHeader::XForwardedFor);
    let mut headers = HeaderMap::new();
    headers.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xe9vil, 198.51.100.7, 10.0.0.1").unwrap(),
    );
    assert_eq!(
        proxies.client("10.0.0.2".parse().unwrap(), &headers),
        Some("198.51.100.7".parse().unwrap())
    );
}
