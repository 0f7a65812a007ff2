//! The dashboard over HTTP, in process: the layer feeds the recorder
//! through `Recorded`, the page and its JSON answer with the right
//! headers, the hostile key `<img src=x onerror=alert(1)>` travels only as
//! JSON text, and access is loopback or a bearer token.

use core::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use ratelimit_dashboard::{Access, Dashboard, Recorded, Recorder, Snapshot};
use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
use ratelimit_tower::{HeaderKey, RateLimitLayer};
use tower::ServiceExt;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn app(recorder: &Recorder, access: Access) -> Router {
    let limiter = KeyedLimiter::<String, _>::with_algorithm(
        TokenBucket::with_rate(2, Rate::per_hour(1)).unwrap(),
    );
    let layer = RateLimitLayer::builder(
        Recorded::new(limiter, recorder).name("api"),
        HeaderKey::api_key(),
    )
    .name("api")
    .build()
    .unwrap();
    Router::new()
        .route("/work", get(|| async { "done" }).layer(layer))
        .nest_service(
            "/ratelimit",
            Dashboard::new(recorder.clone()).access(access),
        )
}

fn from(peer: &str, uri: &str) -> Request<Body> {
    let mut r = Request::get(uri).body(Body::empty()).unwrap();
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    r
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

async fn traffic(app: &Router, key: &str, n: usize) {
    for _ in 0..n {
        let r = Request::get("/work")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        let _ = send(app, r).await;
    }
}

#[tokio::test]
async fn the_layer_feeds_the_json_and_the_hostile_key_is_only_text() {
    let recorder = Recorder::new();
    let app = app(&recorder, Access::loopback());
    recorder.tick_at(1_000);
    traffic(&app, "alice", 5).await; // 2 allowed, 3 denied
    traffic(&app, HOSTILE, 3).await; // 2 allowed, 1 denied
    traffic(&app, "bob", 1).await; // 1 allowed
    recorder.tick_at(1_001);

    let (status, headers, body) = send(&app, from("127.0.0.1:5000", "/ratelimit/api.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let snapshot: Snapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot.totals.allowed, 5);
    assert_eq!(snapshot.totals.denied, 4);
    let last = snapshot.series.last().unwrap();
    assert_eq!(
        (last.t, last.counts.allowed, last.counts.denied),
        (1_001, 5, 4)
    );
    let top: Vec<(&str, u64)> = snapshot
        .top_denied
        .iter()
        .map(|k| (k.key.as_str(), k.count))
        .collect();
    assert_eq!(top, [("alice", 3), (HOSTILE, 1)]);
    assert_eq!(
        (
            snapshot.top_denied[0].remaining,
            snapshot.top_denied[0].limit
        ),
        (0, 2)
    );
    assert_eq!(snapshot.quotas.len(), 1);
    assert_eq!(snapshot.quotas[0].name, "api");
    // The key reaches the page as a JSON string, nothing else: the raw
    // text is there only inside quotes.
    assert!(
        body.contains(r#""key":"<img src=x onerror=alert(1)>""#),
        "{body}"
    );

    let (status, headers, html) = send(&app, from("[::1]:5000", "/ratelimit/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    // The page is static: no key is ever in its markup.
    assert!(!html.contains("onerror=alert"));
    assert!(!html.contains("alice"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn only_loopback_or_the_token_reads_the_numbers() {
    let recorder = Recorder::new();
    let open = app(&recorder, Access::loopback());
    for peer in ["192.0.2.7:80", "[2001:db8::1]:80"] {
        for path in ["/ratelimit/", "/ratelimit/api.json"] {
            assert_eq!(
                send(&open, from(peer, path)).await.0,
                StatusCode::FORBIDDEN,
                "{peer} {path}"
            );
        }
    }
    // IPv4-mapped loopback is loopback.
    assert_eq!(
        send(&open, from("[::ffff:127.0.0.1]:80", "/ratelimit/api.json"))
            .await
            .0,
        StatusCode::OK
    );
    // No known peer: refused.
    let unknown = Request::get("/ratelimit/api.json")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&open, unknown).await.0, StatusCode::FORBIDDEN);

    let guarded = app(&recorder, Access::loopback().bearer_token("s3cret"));
    let outside = "192.0.2.7:80";
    // The page (no data in it) loads; the numbers need the token.
    assert_eq!(
        send(&guarded, from(outside, "/ratelimit/")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&guarded, from(outside, "/ratelimit/api.json")).await.0,
        StatusCode::FORBIDDEN
    );
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "bearer s3cret",
    ] {
        let mut r = from(outside, "/ratelimit/api.json");
        r.headers_mut()
            .insert(header::AUTHORIZATION, wrong.parse().unwrap());
        assert_eq!(send(&guarded, r).await.0, StatusCode::FORBIDDEN, "{wrong}");
    }
    let mut r = from(outside, "/ratelimit/api.json");
    r.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
    assert_eq!(send(&guarded, r).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_read_only() {
    let recorder = Recorder::new();
    let app = app(&recorder, Access::loopback());
    let mut post = Request::post("/ratelimit/api.json")
        .body(Body::empty())
        .unwrap();
    post.extensions_mut()
        .insert("127.0.0.1:1".parse::<SocketAddr>().unwrap());
    let (status, headers, _) = send(&app, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD");
    assert_eq!(
        send(&app, from("127.0.0.1:1", "/ratelimit/other")).await.0,
        StatusCode::NOT_FOUND
    );
    let mut head = Request::head("/ratelimit/api.json")
        .body(Body::empty())
        .unwrap();
    head.extensions_mut()
        .insert("127.0.0.1:1".parse::<SocketAddr>().unwrap());
    let (status, _, body) = send(&app, head).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
}
