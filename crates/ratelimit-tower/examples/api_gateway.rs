//! An API gateway rate limited per account, in axum: the Python system's
//! gateway example, secure by default.
//!
//! ```text
//! cargo run -p ratelimit-tower --all-features --example api_gateway -- --keys keys.txt [--addr 127.0.0.1:3000] [--redis redis://HOST:PORT/ [--failure-policy fallback|fail-closed|fail-open]]
//! curl -i -H 'X-API-Key: <a key from keys.txt>' http://127.0.0.1:3000/api/search
//! ```
//!
//! `keys.txt` has one account per line, `<api key> <account> <plan>`
//! (plan `free` or `pro`; `#` starts a comment). A request whose
//! `X-API-Key` is not in the table gets `401 Unauthorized`; the plan comes
//! from the table, never from the key's text; the limiter is keyed by the
//! account name, so API keys never become limiter (or Redis) keys.
//!
//! Free accounts get 10 requests of burst refilled at 1 per second, pro
//! accounts 100 at 10 per second. `POST /api/batch?n=N` costs `N` units
//! (every other route one, whatever its query says); `GET /health` is not
//! limited. The server closes a connection whose request headers take more
//! than 10 s to arrive, and refuses header sections above 16 KiB and
//! bodies above 64 KiB. State is in memory, or in Redis with `--redis`
//! (shared by every gateway process, falling back to a local limiter while
//! Redis is unreachable; `--failure-policy fail-closed` answers 429 instead,
//! `fail-open` admits).

use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{Request, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use ratelimit_core::{AnyAlgorithm, Rate, TokenBucket};
use ratelimit_memory::KeyedLimiter;
use ratelimit_redis::{FailurePolicy, RedisLimiter, RedisPool};
use ratelimit_tower::{CostFn, KeyFn, KeyLen, Limiter, MissingKey, RateLimitLayer};
use tower::ServiceExt;

/// The burst and refill rate of the free plan.
pub(crate) const FREE: (u64, Rate) = (10, Rate::per_second(1));
/// The burst and refill rate of the pro plan.
pub(crate) const PRO: (u64, Rate) = (100, Rate::per_second(10));
/// How long a client may take to send a request's headers (and how long an
/// idle keep-alive connection stays open).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request line and header section, in bytes.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest request body, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// A plan: which quota an account gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Free,
    Pro,
}

/// An authenticated account: the rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) plan: Plan,
}

impl KeyLen for Account {
    fn key_len(&self) -> usize {
        self.name.len()
    }
}

/// The API keys, each with its account.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys(Arc<HashMap<String, Account>>);

impl Keys {
    /// Parses `<api key> <account> <plan>` lines; `#` starts a comment.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [key, name, plan] = fields[..] else {
                return Err(format!(
                    "line {}: expected `<api key> <account> <plan>`",
                    n + 1
                ));
            };
            let plan = match plan {
                "free" => Plan::Free,
                "pro" => Plan::Pro,
                other => return Err(format!("line {}: unknown plan {other:?}", n + 1)),
            };
            if key.len() > 256 || name.len() > 64 {
                return Err(format!(
                    "line {}: keys are at most 256 bytes, accounts 64",
                    n + 1
                ));
            }
            let account = Account {
                name: name.to_owned(),
                plan,
            };
            if keys.insert(key.to_owned(), account).is_some() {
                return Err(format!("line {}: this API key is already listed", n + 1));
            }
        }
        Ok(Self(Arc::new(keys)))
    }

    fn account(&self, key: &[u8]) -> Option<&Account> {
        self.0.get(core::str::from_utf8(key).ok()?)
    }
}

/// Authentication: the `X-API-Key` must be in the table; its account goes
/// into the request extensions for the rate limit and the handlers.
async fn authenticate(
    State(keys): State<Keys>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let account = request
        .headers()
        .get("x-api-key")
        .and_then(|key| keys.account(key.as_bytes()));
    match account {
        Some(account) => {
            let account = account.clone();
            request.extensions_mut().insert(account);
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "missing or unknown X-API-Key\n").into_response(),
    }
}

/// Per-account limits: one limiter per plan.
pub(crate) struct Plans<L> {
    pub(crate) free: L,
    pub(crate) pro: L,
}

impl<L> Plans<L> {
    fn plan(&self, plan: Plan) -> &L {
        match plan {
            Plan::Free => &self.free,
            Plan::Pro => &self.pro,
        }
    }
}

impl<L: Limiter<String>> Limiter<Account> for Plans<L> {
    type Future = L::Future;

    fn check(&self, account: Account, cost: u64) -> Self::Future {
        self.plan(account.plan).check(account.name, cost)
    }

    fn algorithm(&self, account: &Account) -> AnyAlgorithm {
        self.plan(account.plan).algorithm(&account.name)
    }
}

/// The cost of a request: the batch size `?n=` of `POST /api/batch`, one
/// unit for everything else (a query parameter elsewhere means nothing).
fn cost<B>(request: &Request<B>) -> u64 {
    if request.method() == http::Method::POST && request.uri().path() == "/api/batch" {
        batch_size(request.uri())
    } else {
        1
    }
}

fn batch_size(uri: &Uri) -> u64 {
    uri.query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The gateway's routes: authenticated by `keys`, limited per account
/// with `plans`.
pub(crate) fn app<L: Limiter<String>>(keys: Keys, plans: Plans<L>) -> Router {
    let limit = RateLimitLayer::builder(
        plans,
        KeyFn::new(|request: &Request<Body>| request.extensions().get::<Account>().cloned()),
    )
    .name("api")
    .missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
    .cost(CostFn(cost::<Body>))
    .build()
    .expect("\"api\" is a valid policy name");
    Router::new()
        .route("/api/search", get(|| async { "results\n" }))
        .route(
            "/api/users/{id}",
            get(|Path(id): Path<u64>| async move { format!("user {id}\n") }),
        )
        .route(
            "/api/batch",
            post(|uri: Uri, body: Bytes| async move {
                format!("batch of {} ({} bytes)\n", batch_size(&uri), body.len())
            }),
        )
        // Only the routes above are limited; authentication (added last)
        // runs first, so unknown keys never reach the limiter.
        .route_layer(limit)
        .route_layer(middleware::from_fn_with_state(keys, authenticate))
        .route("/health", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
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

pub(crate) fn redis_plans(
    url: &str,
    policy: FailurePolicy,
) -> Result<Plans<RedisLimiter<TokenBucket>>, Box<dyn core::error::Error>> {
    let pool = RedisPool::open(url)?;
    let bucket = |(capacity, rate): (u64, Rate), prefix: &str| {
        RedisLimiter::builder(TokenBucket::with_rate(capacity, rate)?)
            .prefix(prefix)
            .failure_policy(policy)
            .build(pool.clone())
    };
    Ok(Plans {
        free: bucket(FREE, "gateway:free")?,
        pro: bucket(PRO, "gateway:pro")?,
    })
}

/// Serves `app` on `listener` until the process ends, over HTTP/1.1 with
/// the header-read timeout and size bounds above. Each request carries its
/// connection's address as axum's `ConnectInfo<SocketAddr>` (for
/// `ClientIp`, if you add a per-IP limit).
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(64);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait, then go on.
                eprintln!("api_gateway: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request: Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request)
            });
            // A closed or timed-out connection is not the server's error.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api_gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn core::error::Error>> {
    const USAGE: &str = "usage: api_gateway --keys FILE [--addr HOST:PORT] [--redis URL [--failure-policy fallback|fail-closed|fail-open]]\n\
        FILE: one `<api key> <account> <plan>` per line, plan `free` or `pro`";
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut redis = None;
    let mut policy = None;
    let mut keys = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--addr" => addr = value()?,
            "--redis" => redis = Some(value()?),
            "--keys" => keys = Some(value()?),
            "--failure-policy" => {
                policy = Some(match value()?.as_str() {
                    "fallback" => FailurePolicy::Fallback,
                    "fail-closed" => FailurePolicy::FailClosed,
                    "fail-open" => FailurePolicy::FailOpen,
                    other => {
                        return Err(format!(
                            "--failure-policy: {other:?} is not fallback, fail-closed or fail-open\n{USAGE}"
                        )
                        .into());
                    }
                });
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let keys = keys.ok_or(format!(
        "no key table: a gateway without one would let anyone in\n{USAGE}"
    ))?;
    let keys = std::fs::read_to_string(&keys)
        .map_err(|e| format!("{keys}: {e}"))
        .and_then(|text| Keys::parse(&text).map_err(|e| format!("{keys}: {e}")))?;
    let app = match (&redis, policy) {
        (Some(url), policy) => app(
            keys,
            redis_plans(url, policy.unwrap_or(FailurePolicy::Fallback))?,
        ),
        (None, None) => app(keys, memory_plans()),
        (None, Some(_)) => {
            return Err(format!("--failure-policy applies to --redis only\n{USAGE}").into());
        }
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
        serve(listener, app).await;
        Ok::<_, std::io::Error>(())
    })?;
    Ok(())
}
