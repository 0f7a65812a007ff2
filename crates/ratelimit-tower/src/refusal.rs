//! The answers the layer sends itself: a [`Refusal`] says which kind
//! ([`RefusalKind`]), the status and header fields the layer would send,
//! and why; an [`OnRefusal`] hook turns it into a response. The default,
//! [`PlainText`], sends a one-line `text/plain` body; [`EmptyBody`] sends
//! none (for body types without `From<String>`, such as tonic's).

use core::fmt::{self, Write as _};
use core::time::Duration;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use ratelimit_core::{Decision, InsufficientCapacity};

use crate::headers::ceil_secs;
use crate::key::{KeySource, NoKey};
use crate::limiter::LimitError;

/// Why the layer answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The request has no key and the layer's
    /// [`MissingKey`](crate::MissingKey) policy is `Reject(status)`
    /// (default `400 Bad Request`).
    MissingKey,
    /// The key is not a valid key (a header value that is not visible
    /// ASCII): `400 Bad Request`.
    InvalidKey,
    /// The key is longer than the extractor accepts: `431 Request Header
    /// Fields Too Large` for a header, `400 Bad Request` otherwise.
    KeyTooLong,
    /// The key is the client address but the server gave the layer none
    /// (axum: served without `into_make_service_with_connect_info`):
    /// `500 Internal Server Error`, a bug of the server's setup.
    NoClientAddress,
    /// The request costs more than the capacity and can never be
    /// allowed: `413 Content Too Large`, with `RateLimit-Policy` and
    /// without `Retry-After`.
    CostAboveCapacity,
    /// The limiter denied the request: `429 Too Many Requests`, with
    /// `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    Denied,
    /// The limiter failed (after its own failure policy): `503 Service
    /// Unavailable`.
    BackendFailed,
}

impl RefusalKind {
    /// The kind in snake case (`"missing_key"`, `"key_too_long"`, ...), as
    /// in the `outcome` label of the metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::KeyTooLong => "key_too_long",
            Self::NoClientAddress => "no_client_address",
            Self::CostAboveCapacity => "cost_above_capacity",
            Self::Denied => "denied",
            Self::BackendFailed => "backend_failed",
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the layer answers itself, with what the layer would send:
/// [`status`](Self::status), [`headers`](Self::headers) (`Retry-After`,
/// `RateLimit-Policy`, `RateLimit` where they apply) and a
/// [`message`](Self::message) saying why.
///
/// An [`OnRefusal`] hook receives it. The message never contains the key
/// (an API key is a secret, and echoing client bytes invites injection):
/// it names where the key was looked for and its length.
#[derive(Debug)]
pub struct Refusal {
    kind: RefusalKind,
    status: StatusCode,
    headers: HeaderMap,
    policy: Arc<str>,
    /// The limits of an [`AllOf`](crate::AllOf) that refused.
    limits: Vec<Arc<str>>,
    detail: Detail,
}

/// What a kind of refusal knows.
#[derive(Debug)]
enum Detail {
    Key(NoKey),
    Capacity(InsufficientCapacity),
    Decision(Decision),
    Error(LimitError),
}

impl Refusal {
    /// A refusal for a request without a usable key; `missing` is the
    /// status of the [`MissingKey`](crate::MissingKey) policy.
    pub(crate) fn for_no_key(policy: &Arc<str>, no_key: NoKey, missing: StatusCode) -> Self {
        let (kind, status) = match &no_key {
            NoKey::Missing(_) => (RefusalKind::MissingKey, missing),
            NoKey::Invalid(_) => (RefusalKind::InvalidKey, StatusCode::BAD_REQUEST),
            NoKey::TooLong {
                source: KeySource::Header(_),
                ..
            } => (
                RefusalKind::KeyTooLong,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ),
            NoKey::TooLong { .. } => (RefusalKind::KeyTooLong, StatusCode::BAD_REQUEST),
            NoKey::NoClientAddress => (
                RefusalKind::NoClientAddress,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        };
        Self::new(kind, status, HeaderMap::new(), policy, Detail::Key(no_key))
    }

    /// A denial, with its header fields.
    pub(crate) fn for_denial(policy: &Arc<str>, decision: Decision, headers: HeaderMap) -> Self {
        Self::new(
            RefusalKind::Denied,
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            policy,
            Detail::Decision(decision),
        )
    }

    /// A limiter error: a cost above the capacity (with `headers`, the
    /// `RateLimit-Policy` field) or a backend failure.
    pub(crate) fn for_error(policy: &Arc<str>, error: LimitError, headers: HeaderMap) -> Self {
        match error {
            LimitError::InsufficientCapacity(e) => Self::new(
                RefusalKind::CostAboveCapacity,
                StatusCode::PAYLOAD_TOO_LARGE,
                headers,
                policy,
                Detail::Capacity(e),
            ),
            error => Self::new(
                RefusalKind::BackendFailed,
                StatusCode::SERVICE_UNAVAILABLE,
                HeaderMap::new(),
                policy,
                Detail::Error(error),
            ),
        }
    }

    fn new(
        kind: RefusalKind,
        status: StatusCode,
        headers: HeaderMap,
        policy: &Arc<str>,
        detail: Detail,
    ) -> Self {
        Self {
            kind,
            status,
            headers,
            policy: Arc::clone(policy),
            limits: Vec::new(),
            detail,
        }
    }

    /// The refusal, naming the limits (of several) that refused.
    pub(crate) fn with_limits(mut self, limits: Vec<Arc<str>>) -> Self {
        self.limits = limits;
        self
    }

    /// Which kind of refusal.
    #[must_use]
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// The status the layer sends by default (see [`RefusalKind`]).
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields the layer sends by default: `Retry-After`,
    /// `RateLimit-Policy` and `RateLimit` for a denial,
    /// `RateLimit-Policy` for a cost above the capacity, none otherwise.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The layer's policy name.
    #[must_use]
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// For a layer over several limits ([`AllOf`](crate::AllOf)), the
    /// names of those that refused the request: the limits that denied it
    /// (for a denial) or the one whose capacity the cost exceeds. Empty
    /// for a layer over one limit, which [`policy`](Self::policy) names.
    pub fn refused_by(&self) -> impl Iterator<Item = &str> + '_ {
        self.limits.iter().map(|l| &**l)
    }

    /// The limiter's decision, for a denial.
    #[must_use]
    pub fn decision(&self) -> Option<&Decision> {
        match &self.detail {
            Detail::Decision(d) => Some(d),
            _ => None,
        }
    }

    /// How long until the same request could be allowed, for a denial
    /// that says so.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.decision().and_then(|d| d.retry_after)
    }

    /// Why there is no usable key, for the key refusals.
    #[must_use]
    pub fn no_key(&self) -> Option<&NoKey> {
        match &self.detail {
            Detail::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The cost and the capacity it exceeds, for a cost above the
    /// capacity.
    #[must_use]
    pub fn insufficient_capacity(&self) -> Option<&InsufficientCapacity> {
        match &self.detail {
            Detail::Capacity(e) => Some(e),
            _ => None,
        }
    }

    /// The limiter's error, for a backend failure: for logs, never for
    /// the client (it may name hosts and internals).
    #[must_use]
    pub fn error(&self) -> Option<&LimitError> {
        match &self.detail {
            Detail::Error(e) => Some(e),
            _ => None,
        }
    }

    /// One line saying why, without the key: the body of [`PlainText`].
    #[must_use]
    pub fn message(&self) -> String {
        let mut out = String::new();
        let policy = &self.policy;
        // For limits of an AllOf: `limit "per-day"`, `limits "a", "b"`.
        let mut limits = String::new();
        for (i, limit) in self.limits.iter().enumerate() {
            let _ = match (i, self.limits.len()) {
                (0, 1) => write!(limits, "limit \"{limit}\""),
                (0, _) => write!(limits, "limits \"{limit}\""),
                _ => write!(limits, ", \"{limit}\""),
            };
        }
        let (denied, over) = if limits.is_empty() {
            (format!("\"{policy}\""), format!("\"{policy}\""))
        } else {
            (
                format!("\"{policy}\", {limits}"),
                format!("\"{policy}\" ({limits})"),
            )
        };
        let _ = match &self.detail {
            Detail::Key(NoKey::Missing(source)) => {
                write!(out, "no rate-limit key: the request has no {source}")
            }
            Detail::Key(NoKey::Invalid(source)) => {
                write!(out, "invalid rate-limit key: {source} is not visible ASCII")
            }
            Detail::Key(NoKey::TooLong { source, len, max }) => write!(
                out,
                "rate-limit key too long: {source} has {len} bytes, at most {max} are accepted"
            ),
            Detail::Key(_) => out.write_str(
                "rate limiting by client address, but the server does not provide it \
                 (axum: serve with into_make_service_with_connect_info::<SocketAddr>())",
            ),
            Detail::Capacity(e) => write!(
                out,
                "request cost {} exceeds the capacity {} of rate-limit policy {over}: it can never be allowed",
                e.cost, e.capacity
            ),
            Detail::Decision(d) => match d.retry_after {
                Some(wait) => write!(
                    out,
                    "rate limit exceeded (policy {denied}): retry in {} s",
                    ceil_secs(wait)
                ),
                None => write!(out, "rate limit exceeded (policy {denied})"),
            },
            Detail::Error(_) => write!(
                out,
                "rate limiter unavailable (policy \"{policy}\"): try again later"
            ),
        };
        out
    }

    /// The default response with `body`: [`status`](Self::status),
    /// [`headers`](Self::headers), and nothing else.
    #[must_use]
    pub fn into_response<B>(self, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// Turns a [`Refusal`] into the response sent: the layer's hook for every
/// answer it sends itself (set with
/// [`on_refusal`](crate::RateLimitLayerBuilder::on_refusal)).
///
/// Implemented by [`PlainText`] (the default), [`EmptyBody`], and any
/// `Fn(Refusal) -> Response<B>`:
///
/// ```
/// use axum::body::Body;
/// use http::{Response, header};
/// use ratelimit_tower::{Refusal, RefusalKind};
///
/// // JSON errors, with the layer's status and header fields.
/// let hook = |refusal: Refusal| -> Response<Body> {
///     let body = format!(
///         r#"{{"error":"{}","retry_after":{}}}"#,
///         refusal.kind(),
///         refusal.retry_after().map_or(0, |d| d.as_secs().max(1)),
///     );
///     let mut response = refusal.into_response(Body::from(body));
///     response.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
///     response
/// };
/// # let _ = hook;
/// ```
pub trait OnRefusal<B>: Send + Sync + 'static {
    /// The response to `refusal`.
    fn respond(&self, refusal: Refusal) -> Response<B>;
}

impl<B, F> OnRefusal<B> for F
where
    F: Fn(Refusal) -> Response<B> + Send + Sync + 'static,
{
    fn respond(&self, refusal: Refusal) -> Response<B> {
        self(refusal)
    }
}

/// The default hook: the [`message`](Refusal::message) and a newline as a
/// `text/plain; charset=utf-8` body, with the layer's status and header
/// fields. For any body type with `From<String>` (axum's, `Full<Bytes>`,
/// `String`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainText;

impl<B: From<String>> OnRefusal<B> for PlainText {
    fn respond(&self, refusal: Refusal) -> Response<B> {
        let mut message = refusal.message();
        message.push('\n');
        let mut response = refusal.into_response(B::from(message));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// A hook that sends the layer's status and header fields with an empty
/// body (`B::default()`), for body types without `From<String>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBody;

impl<B: Default> OnRefusal<B> for EmptyBody {
    fn respond(&self, refusal: Refusal) -> Response<B> {
        refusal.into_response(B::default())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn policy() -> Arc<str> {
        Arc::from("api")
    }

    #[test]
    fn statuses_and_messages_never_hold_the_key() {
        let header = KeySource::Header(HeaderName::from_static("x-api-key"));
        let cases = [
            (
                Refusal::for_no_key(
                    &policy(),
                    NoKey::Missing(header.clone()),
                    StatusCode::UNAUTHORIZED,
                ),
                401,
                "no rate-limit key: the request has no header x-api-key",
            ),
            (
                Refusal::for_no_key(
                    &policy(),
                    NoKey::Invalid(header.clone()),
                    StatusCode::BAD_REQUEST,
                ),
                400,
                "invalid rate-limit key: header x-api-key is not visible ASCII",
            ),
            (
                Refusal::for_no_key(
                    &policy(),
                    NoKey::TooLong {
                        source: header,
                        len: 399_360,
                        max: 256,
                    },
                    StatusCode::BAD_REQUEST,
                ),
                431,
                "rate-limit key too long: header x-api-key has 399360 bytes, at most 256 are accepted",
            ),
            (
                Refusal::for_no_key(
                    &policy(),
                    NoKey::TooLong {
                        source: KeySource::Custom,
                        len: 300,
                        max: 256,
                    },
                    StatusCode::BAD_REQUEST,
                ),
                400,
                "rate-limit key too long: key has 300 bytes, at most 256 are accepted",
            ),
            (
                Refusal::for_error(
                    &policy(),
                    LimitError::InsufficientCapacity(InsufficientCapacity {
                        cost: 60,
                        capacity: 10,
                    }),
                    HeaderMap::new(),
                ),
                413,
                "request cost 60 exceeds the capacity 10 of rate-limit policy \"api\": it can never be allowed",
            ),
            (
                Refusal::for_error(
                    &policy(),
                    LimitError::backend(std::io::Error::other("redis://secret-host:6379 refused")),
                    HeaderMap::new(),
                ),
                503,
                "rate limiter unavailable (policy \"api\"): try again later",
            ),
        ];
        for (refusal, status, message) in cases {
            assert_eq!(refusal.status().as_u16(), status);
            assert_eq!(refusal.message(), message);
        }
    }

    #[test]
    fn refusals_of_several_limits_name_them() {
        let denial = |retry_ms| Decision {
            allowed: false,
            remaining: 0,
            retry_after: Some(Duration::from_millis(retry_ms)),
            reset_after: Duration::from_secs(1),
            limit: 2,
            reason: ratelimit_core::Reason::Quota,
        };
        let one = Refusal::for_denial(&policy(), denial(400), HeaderMap::new())
            .with_limits(vec![Arc::from("per-second")]);
        assert_eq!(one.refused_by().collect::<Vec<_>>(), ["per-second"]);
        assert_eq!(
            one.message(),
            "rate limit exceeded (policy \"api\", limit \"per-second\"): retry in 1 s"
        );
        let two = Refusal::for_denial(&policy(), denial(2_500), HeaderMap::new())
            .with_limits(vec![Arc::from("per-second"), Arc::from("per-day")]);
        assert_eq!(
            two.message(),
            "rate limit exceeded (policy \"api\", limits \"per-second\", \"per-day\"): retry in 3 s"
        );
        let over = Refusal::for_error(
            &policy(),
            LimitError::InsufficientCapacity(InsufficientCapacity {
                cost: 5,
                capacity: 2,
            }),
            HeaderMap::new(),
        )
        .with_limits(vec![Arc::from("per-second")]);
        assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            over.message(),
            "request cost 5 exceeds the capacity 2 of rate-limit policy \"api\" (limit \"per-second\"): it can never be allowed"
        );
        // One limit: the layer's name says it all.
        let plain = Refusal::for_denial(&policy(), denial(400), HeaderMap::new());
        assert_eq!(plain.refused_by().count(), 0);
    }
}
