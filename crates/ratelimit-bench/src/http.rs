//! The HTTP middleware's rows: an axum hello-world served on loopback
//! without and with `ratelimit-tower`'s layer (memory backend, a quota so
//! large that every request is allowed), under a load generator in the
//! same process.
//!
//! Shape `http/hello_axum`: [`CONNECTIONS`] keep-alive HTTP/1.1
//! connections (hyper's client), each sending its requests one after
//! another with its own `X-API-Key`, a fixed number of requests per
//! sample; server and clients share one tokio runtime of two workers. Both
//! servers run side by side and are sampled alternately (rotating order);
//! each figure is the median over rounds. Columns: mean and p99 of the
//! client-side latency per request; throughput is requests per second.
//! The target: requests/s with the layer at least 0.95 × without.

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ratelimit_core::{Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_tower::{HeaderKey, RateLimitLayer};

use crate::measure::{self, Settings};
use crate::report::{Row, Target};

/// The shape's id.
pub const SHAPE: &str = "http/hello_axum";
/// Concurrent client connections.
pub const CONNECTIONS: usize = 16;
/// The implementation name of the bare server.
pub const BARE: &str = "axum";
/// The implementation name of the server with the layer.
pub const LAYERED: &str = "axum+ratelimit-tower";

/// Requests per sample.
fn requests(settings: &Settings) -> usize {
    if settings.sample < Duration::from_millis(100) {
        2_000
    } else {
        20_000
    }
}

fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

/// The layer with a quota no benchmark can exhaust.
fn layered() -> Router {
    let limiter = KeyedLimiter::<String, _>::with_algorithm(
        TokenBucket::with_rate(1_000_000_000_000, Rate::per_second(1_000_000_000))
            .expect("a valid quota"),
    );
    hello().layer(RateLimitLayer::new(limiter, HeaderKey::api_key()))
}

async fn serve(app: Router) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// One connection sending `n` requests in turn: their latencies in ns.
async fn client(addr: SocketAddr, key: String, n: usize) -> Result<Vec<u64>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let request = http::Request::get("/")
            .header(http::header::HOST, "127.0.0.1")
            .header("x-api-key", &key)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("unexpected status {}", response.status()));
        }
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        latencies.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(latencies)
}

/// One sample against `addr`: (requests per second, mean ns, p99 ns).
async fn sample(addr: SocketAddr, total: usize) -> Result<(f64, f64, f64), String> {
    let per = total / CONNECTIONS;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|i| tokio::spawn(client(addr, format!("client-{i}"), per)))
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let mean = latencies.iter().map(|&l| l as f64).sum::<f64>() / latencies.len() as f64;
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)] as f64;
    Ok((latencies.len() as f64 / wall, mean, p99))
}

/// The two rows of `http/hello_axum` (none when `only`, the `--only`
/// filter, names another shape).
///
/// # Errors
/// Why the rows are skipped (no runtime, no loopback socket, a failed
/// request).
pub fn rows(settings: &Settings, only: Option<&str>) -> Result<Vec<Row>, String> {
    if only.is_some_and(|only| !SHAPE.contains(only)) {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let total = requests(settings);
    runtime.block_on(async {
        let servers = [(BARE, serve(hello()).await?), (LAYERED, serve(layered()).await?)];
        // Warm-up: connections, allocator, the limiter's keys.
        for (_, addr) in servers {
            sample(addr, total / 4).await?;
        }
        let mut figures: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for round in 0..settings.rounds {
            for k in 0..2 {
                let which = (round + k) % 2;
                figures[which].push(sample(servers[which].1, total).await?);
            }
        }
        Ok(servers
            .iter()
            .zip(figures)
            .map(|((name, _), samples)| {
                let pick = |f: fn(&(f64, f64, f64)) -> f64| {
                    let mut v: Vec<f64> = samples.iter().map(f).collect();
                    measure::median(&mut v)
                };
                Row {
                    shape: SHAPE.to_owned(),
                    implementation: (*name).to_owned(),
                    threads: 2,
                    keys: CONNECTIONS,
                    mean_ns: pick(|s| s.1),
                    p99_ns: pick(|s| s.2),
                    ops_per_s: pick(|s| s.0),
                    batch: total as u64,
                    vs_governor: None,
                    note: Some(format!(
                        "{CONNECTIONS} keep-alive connections, {total} requests per sample, 2 tokio workers shared by server and client"
                    )),
                }
            })
            .collect())
    })
}

/// The middleware target: requests/s with the layer over without.
#[must_use]
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let ops = |name: &str| {
        rows.iter()
            .find(|r| r.shape == SHAPE && r.implementation == name)
            .map(|r| r.ops_per_s)
    };
    let value = ops(LAYERED)
        .zip(ops(BARE))
        .map(|(with, without)| with / without);
    vec![Target {
        name: format!("HTTP layer ({SHAPE}), requests/s with / without"),
        value,
        bound: ">= 0.95".to_owned(),
        met: value.map(|v| v >= 0.95),
    }]
}
