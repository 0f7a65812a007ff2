//! The API gateway example served on 127.0.0.1 (an ephemeral port) and
//! called with a real HTTP client (hyper's, over TCP), with a manual clock
//! in the limiters so the header values are exact and no test sleeps.

#[allow(dead_code)]
#[path = "../examples/api_gateway.rs"]
mod gateway;

use core::time::Duration;
use std::sync::Arc;

use gateway::{FREE, PRO, Plans};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ratelimit_core::{ManualClock, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;

type Limiter = KeyedLimiter<String, TokenBucket, Arc<ManualClock>>;

struct Server {
    base: String,
    clock: Arc<ManualClock>,
    client: Client<HttpConnector, String>,
}

impl Server {
    async fn start() -> Self {
        let clock = Arc::new(ManualClock::new(0));
        let bucket = |(capacity, rate): (u64, Rate)| -> Limiter {
            KeyedLimiter::builder(TokenBucket::with_rate(capacity, rate).unwrap())
                .clock(Arc::clone(&clock))
                .build()
        };
        let plans = Plans {
            free: bucket(FREE),
            pro: bucket(PRO),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(gateway::serve(listener, gateway::app(plans)));
        // A pool of keep-alive connections: axum serves each with its own
        // clone of the router and so of the layer's service.
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            base,
            clock,
            client,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = self
            .client
            .request(request.body(String::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, HeaderMap, String) {
        self.send(Method::GET, path, Some(key)).await
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_then_429_then_retry_after_passes() {
    let server = Server::start().await;
    // The free plan: 10 of burst, 1 per second.
    for i in 0..10 {
        let (status, headers, body) = server.get("/api/search", "free_alice").await;
        assert_eq!(status, StatusCode::OK, "request {i}");
        assert_eq!(body, "results\n");
        assert_eq!(
            header(&headers, "ratelimit-policy"),
            Some("\"api\";q=10;w=10")
        );
        assert_eq!(
            header(&headers, "ratelimit"),
            Some(&*format!("\"api\";r={};t=1", 9 - i))
        );
    }
    let (status, headers, body) = server.get("/api/search", "free_alice").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, "");
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=10;w=10")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=0;t=1"));
    // Other routes share the key's budget; other keys have their own.
    assert_eq!(
        server.get("/api/users/7", "free_alice").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(server.get("/api/users/7", "free_bob").await.2, "user 7\n");

    // Wait out Retry-After on the limiters' clock: allowed again, once.
    let wait: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    server.clock.advance(Duration::from_secs(wait));
    let (status, headers, _) = server.get("/api/search", "free_alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=0;t=1"));
    assert_eq!(
        server.get("/api/search", "free_alice").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_costs_and_unlimited_routes() {
    let server = Server::start().await;
    // The pro plan: 100 of burst, 10 per second.
    let (status, headers, _) = server.get("/api/search", "pro_carol").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=100;w=10")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=99;t=1"));
    // A batch costs its size.
    let (status, headers, body) = server
        .send(Method::POST, "/api/batch?n=60", Some("pro_carol"))
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "batch of 60\n"));
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=39;t=1"));
    // 40 do not fit in 39: the wait for one more token (0.1 s) is 1 s.
    let (status, headers, _) = server
        .send(Method::POST, "/api/batch?n=40", Some("pro_carol"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    // More than the free plan could ever allow: 413.
    let (status, headers, _) = server
        .send(Method::POST, "/api/batch?n=11", Some("free_dan"))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header(&headers, "retry-after"), None);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=10;w=10")
    );
    // No key: 401, nothing counted.
    assert_eq!(
        server.send(Method::GET, "/api/search", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // /health is not limited and carries no rate-limit fields.
    for _ in 0..20 {
        let (status, headers, _) = server.send(Method::GET, "/health", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "ratelimit"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_share_one_budget() {
    let server = Arc::new(Server::start().await);
    // 30 concurrent requests over many connections (each served by its own
    // clone of the service): exactly the burst of 10 passes.
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { server.get("/api/search", "free_erin").await.0 })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
}
