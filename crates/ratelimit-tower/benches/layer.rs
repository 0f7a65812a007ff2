//! The layer's cost per request, in process (no network): an axum
//! hello-world router called directly, without and with the layer
//! (memory backend, every request allowed), on a current-thread runtime;
//! and with the layer over two and three limits (`AllOf`, all or nothing)
//! and over a quota per key (`PerKeyQuota`, half the keys on a plan of
//! their own).
//!
//! ```text
//! cargo bench -p ratelimit-tower --bench layer --features axum                  # observability off
//! cargo bench -p ratelimit-tower --bench layer --features axum,metrics,tracing
//! ```
//!
//! Prints the mean time per request of each (median of rounds, all
//! interleaved) and the difference from the router without the layer: the
//! layer's own cost, with the observability features on or off. No metrics recorder or tracing
//! subscriber is installed, which is the cost of a feature compiled in
//! but unused; a real recorder adds its own.

use core::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use ratelimit_core::{FixedWindow, Rate, TokenBucket};
use ratelimit_memory::{Bucket, KeyedLimiter};
use ratelimit_tower::{AllOf, HeaderKey, Named, PerKeyQuota, RateLimitLayer};
use tower::{Service, ServiceExt};

const KEYS: usize = 16;

fn hello() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

/// A bucket no run of the bench empties.
fn huge() -> TokenBucket {
    TokenBucket::with_rate(1_000_000_000_000, Rate::per_second(1_000_000_000)).unwrap()
}

fn keyed() -> KeyedLimiter<String, TokenBucket> {
    KeyedLimiter::with_algorithm(huge())
}

fn layered() -> Router {
    hello().layer(RateLimitLayer::new(keyed(), HeaderKey::api_key()))
}

fn two_limits() -> Router {
    let limits = AllOf::new((
        Named::new("per-key", keyed()),
        Named::new("global", Bucket::new(huge())),
    ))
    .unwrap();
    hello().layer(RateLimitLayer::new(limits, HeaderKey::api_key()))
}

fn three_limits() -> Router {
    let window =
        KeyedLimiter::<String, _>::with_algorithm(FixedWindow::per_hour(u64::MAX / 4).unwrap());
    let limits = AllOf::new((
        Named::new("per-key", keyed()),
        Named::new("per-hour", window),
        Named::new("global", Bucket::new(huge())),
    ))
    .unwrap();
    hello().layer(RateLimitLayer::new(limits, HeaderKey::api_key()))
}

fn per_key_quota() -> Router {
    let plan = TokenBucket::with_rate(2_000_000_000_000, Rate::per_second(1_000_000_000)).unwrap();
    let limiter = PerKeyQuota::new(keyed(), move |key: &String| {
        key.ends_with(['0', '2', '4', '6', '8']).then_some(plan)
    });
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
    let mut routers = [
        ("without layer", hello()),
        ("with layer", layered()),
        ("with 2 limits", two_limits()),
        ("with 3 limits", three_limits()),
        ("with per-key quota", per_key_quota()),
    ];
    let count = routers.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); count];
    runtime.block_on(async {
        for (_, router) in &mut routers {
            run(router, &keys, n / 10).await.unwrap();
        }
        for round in 0..rounds {
            for k in 0..count {
                let which = (round + k) % count;
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
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    let features: Vec<&str> = [
        cfg!(feature = "metrics").then_some("metrics"),
        cfg!(feature = "tracing").then_some("tracing"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(",")
    };
    let without = medians[0];
    println!("layer/in_process (features: {features}): without layer {without:.0} ns/request");
    for ((name, _), time) in routers.iter().zip(&medians).skip(1) {
        println!(
            "layer/in_process (features: {features}): {name} {time:.0} ns/request, layer cost {:.0} ns",
            time - without
        );
    }
}
