//! The layer as a service, without a network: shared budget across clones,
//! the header values under a manual clock, keys, costs and errors.

use core::convert::Infallible;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use ratelimit_core::{
    AnyAlgorithm, Decision, FixedWindow, ManualClock, Rate, Reason, SlidingWindow, TokenBucket,
};
use ratelimit_memory::KeyedLimiter;
use ratelimit_tower::{
    BuildError, ClientIp, CostFn, EmptyBody, ForwardedHeader, HeaderKey, KeyFn, LimitError,
    Limiter, MissingKey, RateLimitLayer, Refusal, RouteKey, RoutePattern, TrustedProxies,
};
use tower::{Layer, Service, ServiceExt};

type Req = Request<()>;

/// The inner service: answers 200 "ok".
#[derive(Clone)]
struct Ok200;

impl Service<Req> for Ok200 {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = core::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Result<(), Infallible>> {
        core::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Req) -> Self::Future {
        core::future::ready(Ok(Response::new("ok".to_owned())))
    }
}

fn ok_service() -> Ok200 {
    Ok200
}

fn limiter(
    capacity: u64,
    rate: Rate,
    clock: &Arc<ManualClock>,
) -> KeyedLimiter<String, TokenBucket, Arc<ManualClock>> {
    KeyedLimiter::builder(TokenBucket::with_rate(capacity, rate).unwrap())
        .clock(Arc::clone(clock))
        .build()
}

fn keyed(key: &str) -> Req {
    Request::get("/").header("x-api-key", key).body(()).unwrap()
}

fn header<'a>(response: &'a Response<String>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn call<S>(service: &mut S, request: Req) -> Response<String>
where
    S: Service<Req, Response = Response<String>, Error = Infallible>,
{
    service.ready().await.unwrap().call(request).await.unwrap()
}

#[tokio::test]
async fn clones_of_the_service_share_one_budget() {
    let clock = Arc::new(ManualClock::new(0));
    let layer = RateLimitLayer::new(
        limiter(4, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    );
    // What axum does per connection: clone the service. Also a second
    // service made by the same layer.
    let mut a = layer.layer(ok_service());
    let mut b = a.clone();
    let mut c = layer.layer(ok_service());
    let mut statuses = Vec::new();
    for i in 0..6 {
        let service = [&mut a, &mut b, &mut c][i % 3].clone();
        let mut service = service;
        statuses.push(call(&mut service, keyed("k")).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    // Another key has its own bucket.
    assert_eq!(call(&mut a, keyed("other")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn headers_follow_the_decision_and_the_clock() {
    // 10 of burst, 2 per second: T = 0.5 s, full refill in 5 s.
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let layer = RateLimitLayer::new(
        limiter(10, Rate::per_second(2), &clock),
        HeaderKey::api_key(),
    );
    let mut service = layer.layer(ok_service());

    let first = call(&mut service, keyed("k")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body(), "ok");
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some("\"default\";q=10;w=5")
    );
    assert_eq!(header(&first, "ratelimit"), Some("\"default\";r=9;t=1"));
    assert_eq!(header(&first, "retry-after"), None);
    for remaining in (0..9).rev() {
        let r = call(&mut service, keyed("k")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "ratelimit"),
            Some(&*format!("\"default\";r={remaining};t=1"))
        );
    }
    let denied = call(&mut service, keyed("k")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        denied.body(),
        "rate limit exceeded (policy \"default\"): retry in 1 s\n"
    );
    // 0.5 s until the next token: rounded up to 1 s.
    assert_eq!(header(&denied, "retry-after"), Some("1"));
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some("\"default\";q=10;w=5")
    );
    assert_eq!(header(&denied, "ratelimit"), Some("\"default\";r=0;t=1"));

    clock.advance(Duration::from_millis(499));
    assert_eq!(
        call(&mut service, keyed("k")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(Duration::from_millis(1));
    let again = call(&mut service, keyed("k")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(header(&again, "ratelimit"), Some("\"default\";r=0;t=1"));

    // Long idle: full again, 9 left after this one.
    clock.advance(Duration::from_secs(60));
    let idle = call(&mut service, keyed("k")).await;
    assert_eq!(header(&idle, "ratelimit"), Some("\"default\";r=9;t=1"));
}

#[tokio::test]
async fn retry_after_is_whole_seconds_rounded_up() {
    // One request per 90 s: the retry is 90 s, then 89.9 s -> 90.
    let clock = Arc::new(ManualClock::new(0));
    let layer = RateLimitLayer::builder(
        limiter(1, Rate::new(2, Duration::from_secs(180)), &clock),
        HeaderKey::api_key(),
    )
    .name("slow")
    .build()
    .unwrap();
    let mut service = layer.layer(ok_service());
    let first = call(&mut service, keyed("k")).await;
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some("\"slow\";q=1;w=90")
    );
    assert_eq!(header(&first, "ratelimit"), Some("\"slow\";r=0;t=90"));
    clock.advance(Duration::from_millis(100));
    let denied = call(&mut service, keyed("k")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&denied, "retry-after"), Some("90"));
    clock.advance(Duration::from_millis(89_899));
    assert_eq!(
        header(&call(&mut service, keyed("k")).await, "retry-after"),
        Some("1")
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        call(&mut service, keyed("k")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_without_a_key() {
    let clock = Arc::new(ManualClock::new(0));
    let make = || {
        RateLimitLayer::builder(
            limiter(2, Rate::per_minute(1), &clock),
            HeaderKey::api_key(),
        )
    };
    let anonymous = || Request::get("/").body(()).unwrap();

    // Default: 400, the service is not called, no rate-limit fields, a
    // body that says why.
    let mut service = make().build().unwrap().layer(ok_service());
    let r = call(&mut service, anonymous()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&r, "ratelimit"), None);
    assert_eq!(
        r.body(),
        "no rate-limit key: the request has no header x-api-key\n"
    );
    // An empty header value is no key either.
    let r = call(&mut service, keyed("")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A configured status.
    let mut service = make()
        .missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
        .build()
        .unwrap()
        .layer(ok_service());
    assert_eq!(
        call(&mut service, anonymous()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // One shared bucket for everyone without a key.
    let mut service = make()
        .missing_key(MissingKey::Shared("anonymous".to_owned()))
        .build()
        .unwrap()
        .layer(ok_service());
    let statuses: Vec<u16> = [
        call(&mut service, anonymous()).await.status().as_u16(),
        call(&mut service, anonymous()).await.status().as_u16(),
        call(&mut service, anonymous()).await.status().as_u16(),
        call(&mut service, keyed("anonymous"))
            .await
            .status()
            .as_u16(),
        call(&mut service, keyed("k")).await.status().as_u16(),
    ]
    .into();
    assert_eq!(statuses, [200, 200, 429, 429, 200]);

    // Unlimited, without headers.
    let mut service = make()
        .missing_key(MissingKey::Allow)
        .build()
        .unwrap()
        .layer(ok_service());
    for _ in 0..5 {
        let r = call(&mut service, anonymous()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit-policy"), None);
    }
    // ... but a key that is there and invalid, or too long, is refused
    // whatever the policy: one odd byte must not buy an unlimited pass.
    let odd = Request::get("/")
        .header(
            "x-api-key",
            http::HeaderValue::from_bytes(b"k\xff").unwrap(),
        )
        .body(())
        .unwrap();
    let r = call(&mut service, odd).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body(),
        "invalid rate-limit key: header x-api-key is not visible ASCII\n"
    );
    let r = call(&mut service, keyed(&"k".repeat(257))).await;
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn costs() {
    let clock = Arc::new(ManualClock::new(0));
    let cost = CostFn(|req: &Req| {
        req.headers()
            .get("x-cost")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1)
    });
    let layer = RateLimitLayer::builder(
        limiter(5, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .cost(cost)
    .build()
    .unwrap();
    let mut service = layer.layer(ok_service());
    let with_cost = |n: u64| {
        Request::get("/")
            .header("x-api-key", "k")
            .header("x-cost", n.to_string())
            .body(())
            .unwrap()
    };

    // Above the capacity: 413, never possible, nothing consumed.
    let r = call(&mut service, with_cost(6)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header(&r, "retry-after"), None);
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"default\";q=5;w=300")
    );
    let r = call(&mut service, with_cost(3)).await;
    assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=2;t=60"));
    // 3 more do not fit in 2: denied with the wait for one more token.
    let r = call(&mut service, with_cost(3)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), Some("60"));
    assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=2;t=60"));
    // A cost of zero counts as one: it cannot make a request free.
    let r = call(&mut service, with_cost(0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=1;t=60"));
    call(&mut service, with_cost(0)).await;
    assert_eq!(
        call(&mut service, with_cost(0)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn zero_cost_peeks_only_when_asked() {
    let clock = Arc::new(ManualClock::new(0));
    let layer = RateLimitLayer::builder(
        limiter(2, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .cost(CostFn(|req: &Req| u64::from(req.uri().path() != "/peek")))
    .allow_zero_cost()
    .build()
    .unwrap();
    let mut service = layer.layer(ok_service());
    let peek = || {
        Request::get("/peek")
            .header("x-api-key", "k")
            .body(())
            .unwrap()
    };
    // A peek consumes nothing...
    for _ in 0..5 {
        let r = call(&mut service, peek()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=2"));
    }
    call(&mut service, keyed("k")).await;
    call(&mut service, keyed("k")).await;
    // ... and on an empty bucket it is still allowed: why it is opt-in.
    let r = call(&mut service, peek()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=0;t=60"));
    assert_eq!(
        call(&mut service, keyed("k")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A backend that always fails, or decides by failure policy.
struct Failing(Option<Reason>);

impl Limiter<String> for Failing {
    type Future = core::future::Ready<Result<Decision, LimitError>>;

    fn check(&self, _key: String, _cost: u64) -> Self::Future {
        core::future::ready(match self.0 {
            None => Err(LimitError::backend(std::io::Error::other(
                "connection refused",
            ))),
            Some(reason) => Ok(Decision {
                allowed: reason == Reason::FailOpen,
                remaining: 0,
                retry_after: (reason == Reason::FailClosed).then_some(Duration::from_millis(100)),
                reset_after: Duration::ZERO,
                limit: 10,
                reason,
            }),
        })
    }

    fn algorithm(&self, _key: &String) -> AnyAlgorithm {
        AnyAlgorithm::TokenBucket(TokenBucket::with_rate(10, Rate::per_second(10)).unwrap())
    }
}

#[tokio::test]
async fn backend_failures() {
    let mut service = RateLimitLayer::new(Failing(None), HeaderKey::api_key()).layer(ok_service());
    let r = call(&mut service, keyed("k")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Fail closed: a denial, nothing available until the retry.
    let mut service = RateLimitLayer::new(Failing(Some(Reason::FailClosed)), HeaderKey::api_key())
        .layer(ok_service());
    let r = call(&mut service, keyed("k")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(header(&r, "ratelimit"), Some("\"default\";r=0;t=1"));

    // Fail open: through, uncounted, so no RateLimit field.
    let mut service = RateLimitLayer::new(Failing(Some(Reason::FailOpen)), HeaderKey::api_key())
        .layer(ok_service());
    let r = call(&mut service, keyed("k")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"default\";q=10;w=1"));
    assert_eq!(header(&r, "ratelimit"), None);
}

#[tokio::test]
async fn policy_names_and_nested_layers() {
    assert_eq!(
        RateLimitLayer::builder(Failing(None), HeaderKey::api_key())
            .name("caf\u{e9}")
            .build()
            .unwrap_err(),
        BuildError::InvalidPolicyName("caf\u{e9}".to_owned())
    );
    let clock = Arc::new(ManualClock::new(0));
    let per_key = RateLimitLayer::builder(
        limiter(5, Rate::per_second(1), &clock),
        HeaderKey::api_key(),
    )
    .name("per-key")
    .build()
    .unwrap();
    let global = RateLimitLayer::builder(
        limiter(100, Rate::per_second(10), &clock),
        KeyFn::new(|_: &Req| Some(String::new())),
    )
    .name("global \"all\"")
    .build()
    .unwrap();
    let mut service = global.layer(per_key.layer(ok_service()));
    let r = call(&mut service, keyed("k")).await;
    let policies: Vec<&str> = r
        .headers()
        .get_all("ratelimit-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        policies,
        ["\"per-key\";q=5;w=5", "\"global \\\"all\\\"\";q=100;w=10"]
    );
    let limits: Vec<&str> = r
        .headers()
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        limits,
        ["\"per-key\";r=4;t=1", "\"global \\\"all\\\"\";r=99;t=1"]
    );
}

fn ip_limiter(clock: &Arc<ManualClock>) -> KeyedLimiter<IpAddr, TokenBucket, Arc<ManualClock>> {
    KeyedLimiter::builder(TokenBucket::with_rate(1, Rate::per_minute(1)).unwrap())
        .clock(Arc::clone(clock))
        .build()
}

fn from_peer(peer: &str, forwarded: &[(&str, &str)]) -> Req {
    let mut request = Request::get("/");
    for (name, value) in forwarded {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).unwrap();
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    request
}

#[tokio::test]
async fn client_ip_fails_closed() {
    let clock = Arc::new(ManualClock::new(0));
    let mut service = RateLimitLayer::builder(ip_limiter(&clock), ClientIp::new())
        .missing_key(MissingKey::Allow)
        .build()
        .unwrap()
        .layer(ok_service());
    // No peer address in the extensions: the server's setup is wrong, so
    // 500 whatever the missing-key policy, saying how to fix it.
    let r = call(&mut service, Request::get("/").body(()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body()
            .contains("into_make_service_with_connect_info::<SocketAddr>()"),
        "{}",
        r.body()
    );
    // The peer decides; forwarding headers are ignored without trusted proxies.
    let xff = [("x-forwarded-for", "198.51.100.1")];
    assert_eq!(
        call(&mut service, from_peer("203.0.113.9:5000", &xff))
            .await
            .status(),
        StatusCode::OK
    );
    let spoofed = [("x-forwarded-for", "198.51.100.2")];
    assert_eq!(
        call(&mut service, from_peer("203.0.113.9:5001", &spoofed))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn client_ip_behind_trusted_proxies() {
    let proxies = TrustedProxies::parse(
        ForwardedHeader::XForwardedFor,
        ["10.0.0.0/8", "2001:db8::/32"],
    )
    .unwrap();
    let ip = ClientIp::new().trusted_proxies(proxies);
    let key = |peer: &str, xff: &[&str]| {
        let headers: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
        ratelimit_tower::KeyExtractor::<()>::extract(&ip, &from_peer(peer, &headers))
            .ok()
            .map(|ip| ip.to_string())
    };
    // Through two trusted proxies: the right-most untrusted address, not
    // the spoofable left-most one.
    assert_eq!(
        key("10.0.0.2:1", &["6.6.6.6, 198.51.100.7, 10.0.0.1"]).as_deref(),
        Some("198.51.100.7")
    );
    // Several header lines make one list.
    assert_eq!(
        key("10.0.0.2:1", &["6.6.6.6", "198.51.100.7:443, 10.0.0.1"]).as_deref(),
        Some("198.51.100.7")
    );
    // A peer that is not a trusted proxy: its header is not believed.
    assert_eq!(
        key("192.0.2.1:1", &["198.51.100.7"]).as_deref(),
        Some("192.0.2.1")
    );
    // Everything trusted: the left-most (an internal client).
    assert_eq!(
        key("10.0.0.2:1", &["10.0.0.9, 10.0.0.1"]).as_deref(),
        Some("10.0.0.9")
    );
    // No header: the proxy itself.
    assert_eq!(key("10.0.0.2:1", &[]).as_deref(), Some("10.0.0.2"));
    // Garbage where the client should be: no key (fail closed).
    assert_eq!(key("10.0.0.2:1", &["1.2.3.4, unknown, 10.0.0.1"]), None);
    // Garbage, or bytes that are not ASCII, in the client's part: what the
    // trusted proxies appended still counts (issue 15, point 8).
    assert_eq!(
        key("10.0.0.2:1", &["caf\u{e9}, \"x, 198.51.100.7, 10.0.0.1"]).as_deref(),
        Some("198.51.100.7")
    );
    // IPv6 clients by /64.
    assert_eq!(
        key("[2001:db8::1]:1", &["2a00:1:2:3:4:5:6:7"]).as_deref(),
        Some("2a00:1:2:3::")
    );

    let proxies = TrustedProxies::new(ForwardedHeader::Forwarded, [IpAddr::from([127, 0, 0, 1])]);
    let ip = ClientIp::new().trusted_proxies(proxies).ipv6_prefix(128);
    let key = |value: &str| {
        ratelimit_tower::KeyExtractor::<()>::extract(
            &ip,
            &from_peer("127.0.0.1:9", &[("forwarded", value)]),
        )
        .ok()
        .map(|ip| ip.to_string())
    };
    assert_eq!(
        key("for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=127.0.0.1").as_deref(),
        Some("2001:db8:cafe::17")
    );
    assert_eq!(
        key("For=192.0.2.60;proto=http;by=203.0.113.43").as_deref(),
        Some("192.0.2.60")
    );
    assert_eq!(key("for=_hidden").as_deref(), None);
}

#[tokio::test]
async fn route_key_needs_a_matched_route() {
    let clock = Arc::new(ManualClock::new(0));
    let mut service = RateLimitLayer::new(limiter(1, Rate::per_minute(1), &clock), RouteKey::new())
        .layer(ok_service());
    // A raw path is never a key.
    assert_eq!(
        call(&mut service, keyed("k")).await.status(),
        StatusCode::BAD_REQUEST
    );
    let routed = |method: &str, id: u32| {
        let mut r = Request::builder()
            .method(method)
            .uri(format!("/users/{id}"))
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(RoutePattern("/users/{id}".to_owned()));
        r
    };
    assert_eq!(
        call(&mut service, routed("GET", 1)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&mut service, routed("GET", 2)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&mut service, routed("DELETE", 2)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn oneshot_works_with_a_shared_limiter_handle() {
    // The caller keeps an Arc of the limiter to inspect it.
    let clock = Arc::new(ManualClock::new(0));
    let shared = Arc::new(limiter(3, Rate::per_second(1), &clock));
    let layer = RateLimitLayer::new(Arc::clone(&shared), HeaderKey::api_key());
    let r = layer.layer(ok_service()).oneshot(keyed("k")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(shared.len(), 1);
    assert_eq!(KeyedLimiter::check(&shared, "k").remaining, 1);
}

/// A JSON refusal hook, as a user would write one: the layer's status and
/// fields, a body of their own.
fn json(refusal: Refusal) -> Response<String> {
    let body = format!(
        "{{\"error\":\"{}\",\"status\":{}}}",
        refusal.kind(),
        refusal.status().as_u16()
    );
    let mut response = refusal.into_response(body);
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

#[tokio::test]
async fn every_refusal_goes_through_the_hook() {
    let clock = Arc::new(ManualClock::new(0));
    let cost = CostFn(|req: &Req| if req.uri().path() == "/big" { 9 } else { 1 });
    let layer = RateLimitLayer::builder(
        limiter(2, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .name("api")
    .cost(cost)
    .on_refusal(json)
    .build()
    .unwrap();
    let mut service = layer.layer(ok_service());
    let big = Request::get("/big")
        .header("x-api-key", "k")
        .body(())
        .unwrap();
    let cases = [
        (Request::get("/").body(()).unwrap(), 400, "missing_key"),
        (keyed(&"k".repeat(300)), 431, "key_too_long"),
        (big, 413, "cost_above_capacity"),
        (keyed("k"), 200, ""),
        (keyed("k"), 200, ""),
        (keyed("k"), 429, "denied"),
    ];
    for (request, status, kind) in cases {
        let r = call(&mut service, request).await;
        assert_eq!(r.status().as_u16(), status, "{kind}");
        if status != 200 {
            assert_eq!(
                r.body(),
                &format!("{{\"error\":\"{kind}\",\"status\":{status}}}")
            );
            assert_eq!(header(&r, "content-type"), Some("application/json"));
        }
        if kind == "denied" {
            // The layer's fields are kept.
            assert_eq!(header(&r, "retry-after"), Some("60"));
            assert_eq!(header(&r, "ratelimit"), Some("\"api\";r=0;t=60"));
        }
    }
    let mut failing = RateLimitLayer::builder(Failing(None), HeaderKey::api_key())
        .on_refusal(json)
        .build()
        .unwrap()
        .layer(ok_service());
    let r = call(&mut failing, keyed("k")).await;
    assert_eq!(r.body(), "{\"error\":\"backend_failed\",\"status\":503}");

    // A hook can change the status too, here 429 for a cost above the
    // capacity.
    let mut service = RateLimitLayer::builder(
        limiter(2, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .cost(CostFn(|_: &Req| 3))
    .on_refusal(|refusal: Refusal| {
        let mut response = refusal.into_response(String::new());
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        }
        response
    })
    .build()
    .unwrap()
    .layer(ok_service());
    let r = call(&mut service, keyed("k")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&r, "ratelimit-policy"),
        Some("\"default\";q=2;w=120")
    );
}

#[tokio::test]
async fn default_bodies_say_why_and_never_echo_the_key() {
    let clock = Arc::new(ManualClock::new(0));
    let mut service = RateLimitLayer::new(
        limiter(1, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .layer(ok_service());
    let secret = format!("sk_live_{}", "7".repeat(300));
    let r = call(&mut service, keyed(&secret)).await;
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        r.body(),
        "rate-limit key too long: header x-api-key has 308 bytes, at most 256 are accepted\n"
    );
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    call(&mut service, keyed("sk_live_1")).await;
    let r = call(&mut service, keyed("sk_live_1")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!r.body().contains("sk_live"), "{}", r.body());

    let mut failing = RateLimitLayer::new(Failing(None), HeaderKey::api_key()).layer(ok_service());
    let r = call(&mut failing, keyed("k")).await;
    assert_eq!(
        r.body(),
        "rate limiter unavailable (policy \"default\"): try again later\n"
    );

    // Bodies without `From<String>`: the status and fields, no body.
    let mut empty = RateLimitLayer::builder(
        limiter(1, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .on_refusal(EmptyBody)
    .build()
    .unwrap()
    .layer(tower::service_fn(|_: Req| {
        core::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let r = empty
        .ready()
        .await
        .unwrap()
        .call(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_built_layer_is_shared_as_it_is() {
    // Configuration is on the builder and ends at `build`: a built layer
    // has nothing left to configure, so cloning it before use (the panic
    // of issue 10) cannot happen. Clones share one budget.
    let clock = Arc::new(ManualClock::new(0));
    let layer = RateLimitLayer::builder(
        limiter(2, Rate::per_minute(1), &clock),
        HeaderKey::api_key(),
    )
    .name("api")
    .build()
    .unwrap();
    let copy = layer.clone();
    assert_eq!(copy.policy_name(), "api");
    let mut a = layer.layer(ok_service());
    let mut b = copy.layer(ok_service());
    assert_eq!(call(&mut a, keyed("k")).await.status(), StatusCode::OK);
    assert_eq!(call(&mut b, keyed("k")).await.status(), StatusCode::OK);
    assert_eq!(
        call(&mut a, keyed("k")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn window_algorithms_behind_the_layer() {
    // A fixed window of 3 per minute, on a clock at 1 min 45 s: the window
    // ends in 15 s.
    let clock = Arc::new(ManualClock::new(105_000_000_000));
    let fixed = KeyedLimiter::<String, _, _>::builder(FixedWindow::per_minute(3).unwrap())
        .clock(Arc::clone(&clock))
        .build();
    let mut service = RateLimitLayer::new(fixed, HeaderKey::api_key()).layer(ok_service());
    for left in [2, 1, 0] {
        let response = call(&mut service, keyed("k")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            Some("\"default\";q=3;w=60")
        );
        assert_eq!(
            header(&response, "ratelimit"),
            Some(format!("\"default\";r={left};t=15").as_str())
        );
    }
    let denied = call(&mut service, keyed("k")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&denied, "retry-after"), Some("15"));
    // The next window: a fresh count.
    clock.set_ns(120_000_000_000);
    let response = call(&mut service, keyed("k")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit"), Some("\"default\";r=2;t=60"));

    // A sliding window of 2 per 10 s: the previous window's count weighs
    // on the next one, and a denial's t is its exact retry.
    let clock = Arc::new(ManualClock::new(19_000_000_000));
    let sliding = KeyedLimiter::<String, _, _>::builder(
        SlidingWindow::new(2, Duration::from_secs(10)).unwrap(),
    )
    .clock(Arc::clone(&clock))
    .build();
    let mut service = RateLimitLayer::new(sliding, HeaderKey::api_key()).layer(ok_service());
    for _ in 0..2 {
        assert_eq!(
            call(&mut service, keyed("k")).await.status(),
            StatusCode::OK
        );
    }
    // 1 s into the next window: the previous 2 weigh 2 × 9/10 = 1.8.
    clock.set_ns(21_000_000_000);
    let denied = call(&mut service, keyed("k")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    // One more fits when 2 × (10 − e)/10 ≤ 1: e ≥ 5 s, 4 s from now.
    assert_eq!(header(&denied, "retry-after"), Some("4"));
    assert_eq!(header(&denied, "ratelimit"), Some("\"default\";r=0;t=4"));
    clock.set_ns(25_000_000_000);
    assert_eq!(
        call(&mut service, keyed("k")).await.status(),
        StatusCode::OK
    );
}
