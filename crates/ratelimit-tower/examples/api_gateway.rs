//! An API gateway rate limited by `X-API-Key`: the Python system's
//! gateway example, in axum.
//!
//! ```text
//! cargo run -p ratelimit-tower --example api_gateway -- [--addr 127.0.0.1:3000] [--redis redis://HOST:PORT/]
//! curl -i -H 'X-API-Key: free_alice' http://127.0.0.1:3000/api/search
//! ```
//!
//! Plans by key prefix: `pro_...` keys get 100 requests of burst refilled
//! at 10 per second, every other key 10 of burst at 1 per second.
//! `POST /api/batch?n=N` costs `N` units; `GET /health` is not limited; a
//! request without a key gets `401 Unauthorized`. State is in memory, or
//! in Redis with `--redis` (shared by every gateway process, falling back
//! to a local limiter while Redis is unreachable).

use core::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use http::{Request, StatusCode, Uri};
use ratelimit_core::{Quota, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_redis::{FailurePolicy, RedisLimiter, RedisPool};
use ratelimit_tower::{CostFn, HeaderKey, Limiter, MissingKey, RateLimitLayer};

/// The burst and refill rate of the free plan.
pub(crate) const FREE: (u64, Rate) = (10, Rate::per_second(1));
/// The burst and refill rate of the pro plan.
pub(crate) const PRO: (u64, Rate) = (100, Rate::per_second(10));

/// Per-key limits: one limiter per plan, chosen by the key's prefix.
pub(crate) struct Plans<L> {
    /// Keys without a known prefix.
    pub(crate) free: L,
    /// Keys starting with `pro_`.
    pub(crate) pro: L,
}

impl<L> Plans<L> {
    fn plan(&self, key: &str) -> &L {
        if key.starts_with("pro_") {
            &self.pro
        } else {
            &self.free
        }
    }
}

impl<L: Limiter<String>> Limiter<String> for Plans<L> {
    type Future = L::Future;

    fn check(&self, key: String, cost: u64) -> Self::Future {
        self.plan(&key).check(key, cost)
    }

    fn quota(&self, key: &String) -> Quota {
        self.plan(key).quota(key)
    }
}

/// The cost of a request: its `?n=` (the batch size of `/api/batch`),
/// otherwise one unit.
fn cost<B>(request: &Request<B>) -> u64 {
    batch_size(request.uri())
}

fn batch_size(uri: &Uri) -> u64 {
    uri.query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The gateway's routes, limited by `X-API-Key` with `plans`.
pub(crate) fn app<L: Limiter<String>>(plans: Plans<L>) -> Router {
    let limit = RateLimitLayer::new(plans, HeaderKey::api_key())
        .name("api")
        .expect("a valid policy name")
        .missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
        .cost(CostFn(cost::<axum::body::Body>));
    Router::new()
        .route("/api/search", get(|| async { "results\n" }))
        .route(
            "/api/users/{id}",
            get(|Path(id): Path<u64>| async move { format!("user {id}\n") }),
        )
        .route(
            "/api/batch",
            post(|uri: Uri| async move { format!("batch of {}\n", batch_size(&uri)) }),
        )
        // Only the routes above are limited.
        .route_layer(limit)
        .route("/health", get(|| async { "ok\n" }))
}

/// The memory plans, on the limiters' default clock.
pub(crate) fn memory_plans() -> Plans<KeyedLimiter<String, TokenBucket>> {
    let bucket = |(capacity, rate): (u64, Rate)| {
        KeyedLimiter::with_algorithm(TokenBucket::with_rate(capacity, rate).expect("valid quota"))
    };
    Plans {
        free: bucket(FREE),
        pro: bucket(PRO),
    }
}

fn redis_plans(url: &str) -> Result<Plans<RedisLimiter<TokenBucket>>, Box<dyn core::error::Error>> {
    let pool = RedisPool::open(url)?;
    let bucket = |(capacity, rate): (u64, Rate), prefix: &str| {
        RedisLimiter::builder(TokenBucket::with_rate(capacity, rate)?)
            .prefix(prefix)
            .failure_policy(FailurePolicy::Fallback)
            .build(pool.clone())
    };
    Ok(Plans {
        free: bucket(FREE, "gateway:free")?,
        pro: bucket(PRO, "gateway:pro")?,
    })
}

/// Serves `app` on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn core::error::Error>> {
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut redis = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--redis" => redis = Some(args.next().ok_or("--redis needs a URL")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (usage: api_gateway [--addr HOST:PORT] [--redis URL])"
                )
                .into());
            }
        }
    }
    let app = match &redis {
        Some(url) => app(redis_plans(url)?),
        None => app(memory_plans()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!(
            "api_gateway: listening on http://{} ({} backend)",
            listener.local_addr()?,
            if redis.is_some() { "redis" } else { "memory" }
        );
        serve(listener, app).await
    })?;
    Ok(())
}
