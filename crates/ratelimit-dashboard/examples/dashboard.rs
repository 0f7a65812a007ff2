//! An axum app with a rate-limited route, the dashboard mounted at
//! `/ratelimit/`, and traffic of its own (a few heavy tenants, many light
//! ones, and a key named `<img src=x onerror=alert(1)>`), so that the page
//! has something to show:
//!
//! ```text
//! cargo run -p ratelimit-dashboard --features axum --example dashboard -- 127.0.0.1:3000
//! # then open http://127.0.0.1:3000/ratelimit/
//! ```
//!
//! The browser test (`tests/browser.rs`) runs this same app.

use core::net::SocketAddr;
use core::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use ratelimit_dashboard::{Dashboard, Recorded, Recorder};
use ratelimit_memory::{KeyedLimiter, Rate, TokenBucket};
use ratelimit_tower::{HeaderKey, RateLimitLayer};
use tower::ServiceExt;

/// The key names an attacker might choose.
pub const HOSTILE_KEYS: [&str; 2] = [
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=\"window.__pwned=1\">",
];

/// The app: `GET /work` limited by `X-API-Key` (5 requests, then 1 per
/// second), and the dashboard at `/ratelimit/`.
pub fn app(recorder: &Recorder) -> Router {
    let limiter = KeyedLimiter::<String, _>::with_algorithm(
        TokenBucket::with_rate(5, Rate::per_second(1)).expect("a valid quota"),
    );
    let layer = RateLimitLayer::builder(
        Recorded::new(limiter, recorder).name("work"),
        HeaderKey::api_key(),
    )
    .name("work")
    .build()
    .expect("a valid policy name");
    Router::new()
        .route("/work", get(|| async { "done\n" }).layer(layer))
        .nest_service("/ratelimit", Dashboard::new(recorder.clone()))
}

/// Sends one request for `key` through `app`.
pub async fn hit(app: &Router, key: &str) {
    let request = Request::get("/work")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("a valid request");
    let _ = app.clone().oneshot(request).await;
}

/// Traffic forever, ten rounds a second: `tenant-1` 8 requests a round,
/// `tenant-2` 3, the hostile keys one each every other round, and 20
/// light tenants one request every 2 s each.
pub async fn traffic(app: Router) {
    let mut round: u64 = 0;
    loop {
        for _ in 0..8 {
            hit(&app, "tenant-1").await;
        }
        for _ in 0..3 {
            hit(&app, "tenant-2").await;
        }
        if round % 2 == 0 {
            for key in HOSTILE_KEYS {
                hit(&app, key).await;
            }
        }
        hit(&app, &format!("light-{}", round % 20)).await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves `app` on `listener`, with the peer address the dashboard's
/// loopback check reads.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let recorder = Recorder::start();
    let app = app(&recorder);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("open http://{}/ratelimit/", listener.local_addr()?);
    tokio::spawn(traffic(app.clone()));
    serve(listener, app).await
}
