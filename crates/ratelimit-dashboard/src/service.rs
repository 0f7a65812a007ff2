//! [`Dashboard`]: the tower service that serves the page and its JSON
//! (feature `tower`), the [`Source`] of its numbers and who may read them
//! ([`Access`]).
//!
//! Routes, relative to where the service is mounted: `…/` (and
//! `…/index.html`) the page, `…/api.json` the [`Snapshot`]; `GET` and
//! `HEAD` only (the dashboard writes nothing). The page is one document
//! with its style and script inline, allowed by a Content-Security-Policy
//! that names their SHA-256 digests and nothing else: no other script can
//! run on it, and it loads nothing from anywhere.

use core::convert::Infallible;
use core::future::{Ready, ready};
use core::net::SocketAddr;
use core::task::{Context, Poll};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tower_service::Service;

use crate::recorder::Recorder;
use crate::snapshot::Snapshot;

/// Where a dashboard's numbers come from.
pub trait Source: Send + Sync + 'static {
    /// The numbers now. Called once per page refresh (every second per open
    /// page): it must not block for long.
    fn snapshot(&self) -> Snapshot;
}

impl Source for Recorder {
    fn snapshot(&self) -> Snapshot {
        Recorder::snapshot(self)
    }
}

impl<S: Source + ?Sized> Source for Arc<S> {
    fn snapshot(&self) -> Snapshot {
        (**self).snapshot()
    }
}

/// Who may read the dashboard.
///
/// By default only loopback peers (`127.0.0.0/8`, `::1`, and IPv4-mapped
/// loopback), known from the request's `SocketAddr` extension (what
/// `serve` and hyper servers insert) or axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`). A request whose peer is
/// unknown is refused: serve with the peer address, or set a token.
///
/// With a [bearer token](Self::bearer_token), a request carrying
/// `Authorization: Bearer <token>` is allowed from anywhere, and the page
/// itself (static, with no data in it) is served to anyone; open it as
/// `…/ratelimit/#token=<token>`: the token stays in the fragment, which
/// the browser never sends, and the page's script sends it as the header.
#[derive(Clone, Default)]
pub struct Access {
    token: Option<Arc<[u8]>>,
    any_peer: bool,
}

impl core::fmt::Debug for Access {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("any_peer", &self.any_peer)
            .finish()
    }
}

impl Access {
    /// Loopback peers only (the default).
    #[must_use]
    pub fn loopback() -> Self {
        Self::default()
    }

    /// Also allows any peer that presents `Authorization: Bearer <token>`.
    /// An empty token is ignored.
    #[must_use]
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        let token = token.as_ref().as_bytes();
        self.token = (!token.is_empty()).then(|| Arc::from(token));
        self
    }

    /// Allows every request, whatever its peer: only for an app that
    /// authenticates the dashboard's routes itself, in front of it.
    #[must_use]
    pub fn any_peer(mut self) -> Self {
        self.any_peer = true;
        self
    }

    fn peer_is_loopback<B>(request: &Request<B>) -> bool {
        let peer = request.extensions().get::<SocketAddr>().copied();
        #[cfg(feature = "axum")]
        let peer = peer.or_else(|| {
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
        peer.is_some_and(|p| match p.ip() {
            core::net::IpAddr::V4(v4) => v4.is_loopback(),
            core::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
    }

    fn token_matches<B>(&self, request: &Request<B>) -> bool {
        let Some(expected) = &self.token else {
            return false;
        };
        let Some(given) = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        // Compared in time independent of where the bytes differ.
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether `request` may read the numbers.
    fn allows_data<B>(&self, request: &Request<B>) -> bool {
        self.any_peer || Self::peer_is_loopback(request) || self.token_matches(request)
    }

    /// Whether `request` may load the page (which holds no data).
    fn allows_page<B>(&self, request: &Request<B>) -> bool {
        self.token.is_some() || self.allows_data(request)
    }
}

/// The page with its inline style and script, and the
/// Content-Security-Policy that allows exactly those.
struct Page {
    html: Bytes,
    csp: HeaderValue,
}

const HTML: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/style.css");
const SCRIPT: &str = include_str!("page/app.js");

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let html = HTML
            .replacen("/*STYLE*/", STYLE, 1)
            .replacen("/*SCRIPT*/", SCRIPT, 1);
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            base64(&Sha256::digest(SCRIPT.as_bytes())),
            base64(&Sha256::digest(STYLE.as_bytes())),
        );
        Page {
            html: Bytes::from(html),
            // Base64 and ASCII: always a valid header value.
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The dashboard as a tower [`Service`]: mount it where the app wants it,
/// e.g. with axum, `Router::new().nest_service("/ratelimit", dashboard)`.
///
/// ```
/// use ratelimit_dashboard::{Access, Dashboard, Recorder};
///
/// let recorder = Recorder::start();
/// let dashboard = Dashboard::new(recorder.clone()).access(Access::loopback().bearer_token("s3cret"));
/// # let _ = dashboard;
/// ```
pub struct Dashboard<S = Recorder> {
    source: Arc<S>,
    access: Access,
}

impl<S> Clone for Dashboard<S> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            access: self.access.clone(),
        }
    }
}

impl<S> core::fmt::Debug for Dashboard<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dashboard")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl<S: Source> Dashboard<S> {
    /// A dashboard of `source`'s numbers, for loopback peers only.
    pub fn new(source: S) -> Self {
        Self {
            source: Arc::new(source),
            access: Access::default(),
        }
    }

    /// Who may read it.
    #[must_use]
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The response to `request` (what the service answers).
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let mut response = self.answer(request);
        harden(&mut response);
        response
    }

    fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            let mut r = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "the dashboard is read-only\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let path = request.uri().path();
        let last = path.rsplit('/').next().unwrap_or("");
        let mut response = match last {
            "" | "index.html" => {
                if !self.access.allows_page(request) {
                    return forbidden();
                }
                let page = page();
                let mut r = Response::new(Full::new(page.html.clone()));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                h.insert(header::CONTENT_SECURITY_POLICY, page.csp.clone());
                r
            }
            "api.json" => {
                if !self.access.allows_data(request) {
                    return forbidden();
                }
                let json = self.source.snapshot().to_json();
                let mut r = Response::new(Full::new(Bytes::from(json)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r
            }
            _ => plain(
                StatusCode::NOT_FOUND,
                "not found: the dashboard serves `./` and `./api.json`\n",
            ),
        };
        if method == Method::HEAD {
            *response.body_mut() = Full::new(Bytes::new());
        }
        response
    }
}

fn forbidden() -> Response<Full<Bytes>> {
    plain(
        StatusCode::FORBIDDEN,
        "the rate-limit dashboard answers loopback peers, or a bearer token when one is configured\n",
    )
}

/// A plain-text answer, with the headers of every answer.
fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The headers every answer carries: never cached, never sniffed, never
/// framed, no referrer.
fn harden(response: &mut Response<Full<Bytes>>) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

impl<S: Source, B> Service<Request<B>> for Dashboard<S> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_script_never_writes_markup() {
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(banned), "app.js uses {banned}");
        }
        assert!(!SCRIPT.contains("</script"));
        assert!(!STYLE.contains("</style"));
        assert!(
            !HTML.contains("http://") && !HTML.contains("https://"),
            "no external asset"
        );
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
    }
}
