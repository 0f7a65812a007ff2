//! The API gateway example served on 127.0.0.1 (an ephemeral port) and
//! called with a real HTTP client (hyper's, over TCP), with a manual clock
//! in the limiters so the header values are exact and no test sleeps; the
//! connection timeouts on tokio's paused clock.

#[allow(dead_code)]
#[path = "../examples/api_gateway.rs"]
mod gateway;

use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use gateway::{FREE, HEADER_READ_TIMEOUT, Keys, PRO, Plans};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ratelimit_core::{ManualClock, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Limiter = KeyedLimiter<String, TokenBucket, Arc<ManualClock>>;

const KEYS: &str = "
# api key        account  plan
key-alice        alice    free
key-bob          bob      free
key-carol        carol    pro
key-dan          dan      free
key-erin         erin     free
pro_mallory      mallory  free   # a key that says pro: the table says free
";

struct Server {
    addr: SocketAddr,
    base: String,
    clock: Arc<ManualClock>,
    free: Arc<Limiter>,
    client: Client<HttpConnector, String>,
}

impl Server {
    async fn start() -> Self {
        let clock = Arc::new(ManualClock::new(0));
        let bucket = |(capacity, rate): (u64, Rate)| -> Arc<Limiter> {
            Arc::new(
                KeyedLimiter::builder(TokenBucket::with_rate(capacity, rate).unwrap())
                    .clock(Arc::clone(&clock))
                    .build(),
            )
        };
        let free = bucket(FREE);
        let plans = Plans {
            free: Arc::clone(&free),
            pro: bucket(PRO),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let keys = Keys::parse(KEYS).unwrap();
        tokio::spawn(gateway::serve(listener, gateway::app(keys, plans)));
        // A pool of keep-alive connections: each is served with its own
        // clone of the router and so of the layer's service.
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            addr,
            base: format!("http://{addr}"),
            clock,
            free,
            client,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: String,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = self
            .client
            .request(request.body(body).unwrap())
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
        self.send(Method::GET, path, Some(key), String::new()).await
    }

    async fn post(&self, path: &str, key: &str) -> (StatusCode, HeaderMap, String) {
        self.send(Method::POST, path, Some(key), String::new())
            .await
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
        let (status, headers, body) = server.get("/api/search", "key-alice").await;
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
    let (status, headers, body) = server.get("/api/search", "key-alice").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, "rate limit exceeded (policy \"api\"): retry in 1 s\n");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=10;w=10")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=0;t=1"));
    // Other routes share the account's budget; other accounts have their own.
    assert_eq!(
        server.get("/api/users/7", "key-alice").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(server.get("/api/users/7", "key-bob").await.2, "user 7\n");

    // Wait out Retry-After on the limiters' clock: allowed again, once.
    let wait: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    server.clock.advance(Duration::from_secs(wait));
    let (status, headers, _) = server.get("/api/search", "key-alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=0;t=1"));
    assert_eq!(
        server.get("/api/search", "key-alice").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_come_from_the_key_table() {
    let server = Server::start().await;
    // The pro plan: 100 of burst, 10 per second.
    let (status, headers, _) = server.get("/api/search", "key-carol").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=100;w=10")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=99;t=1"));
    // A key whose text says "pro" gets the plan of its table entry.
    let (status, headers, _) = server.get("/api/search", "pro_mallory").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=10;w=10")
    );
    // Unknown keys (a fresh one per request would otherwise be a fresh
    // bucket each) and no key: 401, nothing counted, no bucket made.
    let buckets = server.free.len();
    for i in 0..20 {
        let (status, headers, body) = server.get("/api/search", &format!("pro_{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, "missing or unknown X-API-Key\n");
        assert_eq!(header(&headers, "ratelimit"), None);
    }
    let (status, _, _) = server
        .send(Method::GET, "/api/search", None, String::new())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.free.len(), buckets);
    // The limiter is keyed by account, never by the API key.
    assert_eq!(
        KeyedLimiter::check(&server.free, "mallory").remaining,
        8,
        "mallory's bucket holds the request above (and this check)"
    );
    // /health is not limited, needs no key and carries no rate-limit fields.
    for _ in 0..20 {
        let (status, headers, _) = server
            .send(Method::GET, "/health", None, String::new())
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "ratelimit"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_cost_their_size() {
    let server = Server::start().await;
    let (status, headers, body) = server.post("/api/batch?n=60", "key-carol").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "batch of 60 (0 bytes)\n")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=40;t=1"));
    // 41 do not fit in 40: the wait for one more token (0.1 s) is 1 s.
    let (status, headers, _) = server.post("/api/batch?n=41", "key-carol").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    // More than the free plan could ever allow: 413, saying why.
    let (status, headers, body) = server.post("/api/batch?n=11", "key-dan").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        "request cost 11 exceeds the capacity 10 of rate-limit policy \"api\": it can never be allowed\n"
    );
    assert_eq!(header(&headers, "retry-after"), None);
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"api\";q=10;w=10")
    );
}

/// Issue 15 (1): `?n=0` made any request free. The cost is read only on
/// the batch route, and a cost of 0 counts as 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_in_the_query_is_not_free() {
    let server = Server::start().await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(server.get("/api/search?n=0", "key-dan").await.0.as_u16());
    }
    let mut expected = vec![200_u16; 10];
    expected.push(429);
    assert_eq!(statuses, expected);
    // An empty batch costs one unit too.
    let (status, headers, _) = server.post("/api/batch?n=0", "key-erin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "ratelimit"), Some("\"api\";r=9;t=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_share_one_budget() {
    let server = Arc::new(Server::start().await);
    // 30 concurrent requests over many connections (each served by its own
    // clone of the service): exactly the burst of 10 passes.
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { server.get("/api/search", "key-erin").await.0 })
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

/// Writes `bytes` on a new connection and reads until the server closes
/// it; returns what it sent back.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    // A reset after the server's answer counts as the end, too.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sizes_are_bounded() {
    let server = Server::start().await;
    // Headers above 16 KiB (here a 390 KB key): 431 from the server,
    // before the application sees the request.
    let key = "k".repeat(390 * 1024);
    let answer = exchange(
        server.addr,
        format!("GET /api/search HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 431 "),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(server.free.len(), 0);
    // A body above 64 KiB: 413 when the handler reads it.
    let (status, _, _) = server
        .send(
            Method::POST,
            "/api/batch?n=1",
            Some("key-alice"),
            "x".repeat(64 * 1024 + 1),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, body) = server
        .send(
            Method::POST,
            "/api/batch?n=1",
            Some("key-alice"),
            "x".repeat(64 * 1024),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "batch of 1 (65536 bytes)\n")
    );
}

/// Issue 15 (5): 1 000 half-sent requests were all still open after 40 s.
/// On tokio's paused clock, which moves only when every task waits.
#[tokio::test(start_paused = true)]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    let server = Server::start().await;
    let started = tokio::time::Instant::now();
    // A slow client that completes its headers in time is served.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(HEADER_READ_TIMEOUT - Duration::from_secs(1)).await;
    slow.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"));

    // Half-sent requests: every connection is closed at the timeout, with
    // nothing sent back.
    let half_sent = started.elapsed();
    let mut connections = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /api/search HTTP/1.1\r\nHost: x\r\nX-API-Key: key-al")
            .await
            .unwrap();
        connections.push(stream);
    }
    for mut stream in connections {
        let mut answer = Vec::new();
        // Bounded: a connection left open fails the test (at 60 s of the
        // paused clock) instead of hanging it.
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "the connection is still open");
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    let took = started.elapsed() - half_sent;
    assert!(
        took >= HEADER_READ_TIMEOUT && took < HEADER_READ_TIMEOUT + Duration::from_secs(1),
        "closed after {took:?}"
    );
}

#[test]
fn the_key_table_says_what_is_wrong_and_where() {
    let error = |text: &str| Keys::parse(text).unwrap_err();
    assert_eq!(
        error("k1 alice free\nk2 bob gold\n"),
        "line 2: unknown plan \"gold\""
    );
    assert_eq!(
        error("# accounts\nk1 alice\n"),
        "line 2: expected `<api key> <account> <plan>`"
    );
    assert_eq!(
        error("k1 alice free\nk1 bob pro\n"),
        "line 2: this API key is already listed"
    );
    assert!(Keys::parse("").is_ok());
}
