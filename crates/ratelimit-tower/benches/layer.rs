//! The layer's cost per request, in process (no network): an axum
//! hello-world router called directly, without and with the layer
//! (memory backend, every request allowed), on a current-thread runtime.
//!
//! ```text
//! cargo bench -p ratelimit-tower --bench layer --features axum                  # observability off
//! cargo bench -p ratelimit-tower --bench layer --features axum,metrics,tracing
//! ```
//!
//! Prints the mean time per request of each (median of rounds, the two
//! interleaved) and the difference: the layer's own cost, with the
//! observability features on or off. No metrics recorder or tracing
//! subscriber is installed, which is the cost of a feature compiled in
//! but unused; a real recorder adds its own.

use core::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use ratelimit_core::{Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_tower::{HeaderKey, RateLimitLayer};
use tower::{Service, ServiceExt};

const KEYS: usize = 16;

fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

fn layered() -> Router {
    let limiter = KeyedLimiter::<String, _>::with_algorithm(
        TokenBucket::with_rate(1_000_000_000_000, Rate::per_second(1_000_000_000)).unwrap(),
    );
    hello().layer(RateLimitLayer::new(limiter, HeaderKey::api_key()))
}

async fn run(router: &mut Router, keys: &[String], n: usize) -> Result<(), Infallible> {
    for i in 0..n {
        let request = Request::get("/")
            .header("x-api-key", &keys[i % KEYS])
            .body(Body::empty())
            .unwrap();
        let response = ServiceExt::<Request<Body>>::ready(router)
            .await?
            .call(request)
            .await?;
        assert!(response.status().is_success());
    }
    Ok(())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, n) = if quick { (3, 20_000) } else { (9, 200_000) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("client-{i}")).collect();
    let mut routers = [("without layer", hello()), ("with layer", layered())];
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    runtime.block_on(async {
        for (_, router) in &mut routers {
            run(router, &keys, n / 10).await.unwrap();
        }
        for round in 0..rounds {
            for k in 0..2 {
                let which = (round + k) % 2;
                let started = Instant::now();
                run(&mut routers[which].1, &keys, n).await.unwrap();
                times[which].push(started.elapsed().as_nanos() as f64 / n as f64);
            }
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let without = median(&mut times[0]);
    let with = median(&mut times[1]);
    let features: Vec<&str> = [
        cfg!(feature = "metrics").then_some("metrics"),
        cfg!(feature = "tracing").then_some("tracing"),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!(
        "layer/in_process (features: {}): without layer {without:.0} ns/request, with layer {with:.0} ns/request, layer cost {:.0} ns",
        if features.is_empty() {
            "none".to_owned()
        } else {
            features.join(",")
        },
        with - without
    );
}
