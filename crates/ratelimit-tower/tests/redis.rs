//! The sync Redis limiter behind the layer, through `spawn_blocking`, and
//! the async one on the request's task, on a `redis-server` this test
//! starts on a free port (never 6379) and kills.

use core::convert::Infallible;
use core::net::SocketAddr;
use core::time::Duration;
use std::net::TcpListener;

use http::{Request, Response, StatusCode};
use ratelimit_core::{Quota, Rate};
use ratelimit_redis::{AsyncRedisConnection, FailurePolicy, RedisLimiter, RedisPool, TokenBucket};
use ratelimit_testkit::RedisServer;
use ratelimit_tower::{ClientIp, HeaderKey, RateLimitLayer};
use tower::{Layer, ServiceExt, service_fn};

fn limiter(url: &str, policy: FailurePolicy) -> RedisLimiter<TokenBucket> {
    let pool = RedisPool::builder(url)
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    RedisLimiter::builder(TokenBucket::new(
        Quota::new(3, Rate::per_minute(1)).unwrap(),
    ))
    .prefix("tower-test")
    .failure_policy(policy)
    .build(pool)
    .unwrap()
}

async fn status_and_limit<S>(service: S, key: &str) -> (StatusCode, Option<String>)
where
    S: tower::Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    let request = Request::get("/").header("x-api-key", key).body(()).unwrap();
    let response = service.oneshot(request).await.unwrap();
    let limit = response
        .headers()
        .get("ratelimit")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), limit)
}

fn ok()
-> impl tower::Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(|_: Request<()>| {
        core::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    })
}

// The default current-thread runtime: `spawn_blocking` works there
// (`block_in_place` would panic).
#[tokio::test]
async fn sync_redis_through_the_blocking_pool() {
    let redis = RedisServer::start();
    let layer = RateLimitLayer::new(
        limiter(&redis.url(), FailurePolicy::ReturnError),
        HeaderKey::api_key(),
    );
    let service = layer.layer(ok());
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(status_and_limit(service.clone(), "k").await);
    }
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let remaining: Vec<String> = seen
        .iter()
        .map(|(_, l)| l.as_deref().unwrap().split(';').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(remaining, ["r=2", "r=1", "r=0", "r=0"]);
}

#[tokio::test]
async fn async_redis_on_the_request_task() {
    let redis = RedisServer::start();
    let conn = AsyncRedisConnection::builder(&redis.url())
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let limiter = RedisLimiter::builder(TokenBucket::new(
        Quota::new(3, Rate::per_minute(1)).unwrap(),
    ))
    .prefix("tower-async-test")
    .build(conn)
    .unwrap();
    let service = RateLimitLayer::new(limiter, HeaderKey::api_key()).layer(ok());
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let (status, limit) = status_and_limit(service.clone(), "k").await;
        statuses.push(status.as_u16());
        remaining.push(limit.unwrap().split(';').nth(1).unwrap().to_owned());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(remaining, ["r=2", "r=1", "r=0", "r=0"]);
    // Another key has its own budget.
    assert_eq!(status_and_limit(service, "other").await.0, StatusCode::OK);
}

/// A window algorithm in Redis behind the layer (the Redis limiter runs
/// any algorithm): a fixed window of 3 per hour, on the sync and the async
/// limiter; the fields describe the window.
#[tokio::test]
async fn a_fixed_window_in_redis() {
    let redis = RedisServer::start();
    let window = ratelimit_core::FixedWindow::per_hour(3).unwrap();
    let pool = RedisPool::builder(&redis.url()).build().unwrap();
    let sync = RedisLimiter::builder(window)
        .prefix("tower-window")
        .build(pool)
        .unwrap();
    let conn = AsyncRedisConnection::builder(&redis.url())
        .build()
        .await
        .unwrap();
    let not_sync = RedisLimiter::builder(window)
        .prefix("tower-window-async")
        .build(conn)
        .unwrap();
    let services = [
        RateLimitLayer::new(sync, HeaderKey::api_key())
            .layer(ok())
            .boxed_clone(),
        RateLimitLayer::new(not_sync, HeaderKey::api_key())
            .layer(ok())
            .boxed_clone(),
    ];
    for service in services {
        let mut statuses = Vec::new();
        let mut remaining = Vec::new();
        for _ in 0..4 {
            let request = Request::get("/").header("x-api-key", "k").body(()).unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            statuses.push(response.status().as_u16());
            assert_eq!(
                response.headers()["ratelimit-policy"],
                "\"default\";q=3;w=3600"
            );
            let limit = response.headers()["ratelimit"].to_str().unwrap().to_owned();
            remaining.push(limit.split(';').nth(1).unwrap().to_owned());
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        assert_eq!(remaining, ["r=2", "r=1", "r=0", "r=0"]);
    }
}

#[tokio::test]
async fn redis_down_follows_the_failure_policy() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let service = RateLimitLayer::new(
        limiter(&url, FailurePolicy::ReturnError),
        HeaderKey::api_key(),
    )
    .layer(ok());
    assert_eq!(
        status_and_limit(service, "k").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let service = RateLimitLayer::new(limiter(&url, FailurePolicy::FailOpen), HeaderKey::api_key())
        .layer(ok());
    assert_eq!(status_and_limit(service, "k").await, (StatusCode::OK, None));
    let service = RateLimitLayer::new(
        limiter(&url, FailurePolicy::FailClosed),
        HeaderKey::api_key(),
    )
    .layer(ok());
    assert_eq!(
        status_and_limit(service, "k").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let service = RateLimitLayer::new(limiter(&url, FailurePolicy::Fallback), HeaderKey::api_key())
        .layer(ok());
    assert_eq!(
        status_and_limit(service, "k").await,
        (StatusCode::OK, Some("\"default\";r=2;t=60".to_owned()))
    );
}

/// Issue 16 (4): the client-IP key with a Redis limiter, through its text
/// form; the Redis key names the address, readable by an operator.
#[tokio::test]
async fn client_ip_keys_in_redis() {
    let redis = RedisServer::start();
    let service = RateLimitLayer::new(
        limiter(&redis.url(), FailurePolicy::ReturnError),
        ClientIp::new().as_text(),
    )
    .layer(ok());
    let from = |peer: &str| {
        let mut request = Request::get("/").body(()).unwrap();
        request
            .extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        request
    };
    let mut statuses = Vec::new();
    for peer in [
        "203.0.113.9:1000",
        "203.0.113.9:1001",
        "[::ffff:203.0.113.9]:1002",
        "203.0.113.9:1003",
        "198.51.100.1:1000",
        "[2001:db8:1:2::1]:1",
        "[2001:db8:1:2::2]:1",
    ] {
        let response = service.clone().oneshot(from(peer)).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    // Three for 203.0.113.9 (IPv4-mapped is the same client), then 429;
    // other clients have their own; IPv6 by /64.
    assert_eq!(statuses, [200, 200, 200, 429, 200, 200, 200]);
    assert_eq!(redis.cli(&["EXISTS", "tower-test|203.0.113.9"]).trim(), "1");
    assert_eq!(
        redis.cli(&["EXISTS", "tower-test|2001:db8:1:2::"]).trim(),
        "1"
    );
}
