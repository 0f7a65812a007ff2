//! The layer in axum servers on 127.0.0.1 (ephemeral ports), served with
//! `axum::serve` as a user would, and called over real HTTP with hyper's
//! client: the flood of 390 KB keys of issue 15, and the client-IP key of a
//! server that forgot its connect info (issue 16).

use core::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ratelimit_core::{Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_tower::{ClientIp, HeaderKey, RateLimitLayer};

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

async fn fetch(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, String>,
    uri: &str,
    key: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = client
        .request(request.body(String::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Issue 15 (2): 2 000 requests with distinct 390 KB `X-API-Key` values
/// took the memory gateway from 5 MB to 680 MB, held by the limiter's key
/// table. Each is now refused before the limiter sees it (axum::serve
/// accepts header sections up to about 400 KB, so the requests reach the
/// layer). 200 of them here, to keep the suite quick: each request is
/// refused alike and the table stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_390_kb_keys_never_reaches_the_limiter() {
    let limiter = Arc::new(KeyedLimiter::<String, _>::with_algorithm(
        TokenBucket::with_rate(10, Rate::per_minute(1)).unwrap(),
    ));
    let app = Router::new()
        .route("/api/search", get(|| async { "results\n" }))
        .layer(RateLimitLayer::new(
            Arc::clone(&limiter),
            HeaderKey::api_key(),
        ));
    let (listener, base) = listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("{base}/api/search");

    let padding = "k".repeat(390 * 1024 - 8);
    for i in 0..200 {
        let key = format!("{i:08}{padding}");
        let (status, body) = fetch(&client, &uri, Some(&key)).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(
            body,
            "rate-limit key too long: header x-api-key has 399360 bytes, at most 256 are accepted\n"
        );
    }
    assert_eq!(limiter.len(), 0, "no key of the flood is kept");

    // The longest key accepted is a key like any other.
    let key = "k".repeat(256);
    assert_eq!(fetch(&client, &uri, Some(&key)).await.0, StatusCode::OK);
    assert_eq!(limiter.len(), 1);
}

/// Issue 16 (3): a per-IP limit on a server that forgot
/// `into_make_service_with_connect_info` answered a bare 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_connect_info_answers_500_saying_why() {
    let app = || {
        let limiter = KeyedLimiter::<core::net::IpAddr, _>::with_algorithm(
            TokenBucket::with_rate(2, Rate::per_minute(1)).unwrap(),
        );
        Router::new()
            .route("/", get(|| async { "hello\n" }))
            .layer(RateLimitLayer::new(limiter, ClientIp::new()))
    };
    let client = Client::builder(TokioExecutor::new()).build_http();

    // Forgotten: every request is refused, and the body says how to fix it.
    let (listener, base) = listen().await;
    let forgot = app();
    tokio::spawn(async move { axum::serve(listener, forgot).await });
    let (status, body) = fetch(&client, &base, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "rate limiting by client address, but the server does not provide it \
         (axum: serve with into_make_service_with_connect_info::<SocketAddr>())\n"
    );

    // Served as the body says: limited per client address.
    let (listener, base) = listen().await;
    let fixed = app().into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, fixed).await });
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(fetch(&client, &base, None).await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
}
