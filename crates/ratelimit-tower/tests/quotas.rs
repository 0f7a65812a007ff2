//! Quotas that change and combine, over real HTTP (axum servers on
//! 127.0.0.1, hyper's client), under a manual clock: several limits on one
//! route (`AllOf`), a quota per key from the account's plan
//! (`PerKeyQuota`), and a route's quota changed while the server runs
//! (`QuotaHandle`), each against docs/semantics.md.

use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ratelimit_core::{FixedWindow, ManualClock, Rate, Strategy, TokenBucket};
use ratelimit_memory::{Bucket, KeyedLimiter};
use ratelimit_tower::{
    AllOf, CostFn, HeaderKey, KeyFn, MissingKey, Named, PerKeyQuota, QuotaHandle, RateLimitLayer,
};

const S: u64 = 1_000_000_000;

type Keyed<A> = KeyedLimiter<String, A, Arc<ManualClock>>;

fn keyed<A: ratelimit_core::Algorithm<State: ratelimit_memory::Word>>(
    algorithm: A,
    clock: &Arc<ManualClock>,
) -> Keyed<A> {
    KeyedLimiter::builder(algorithm)
        .clock(Arc::clone(clock))
        .build()
}

fn bucket(capacity: u64, rate: Rate) -> TokenBucket {
    TokenBucket::with_rate(capacity, rate).unwrap()
}

struct Server {
    client: Client<HttpConnector, String>,
    base: String,
}

/// What a response said: status, the fields of interest, the body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    policy: String,
    ratelimit: String,
    retry_after: String,
    body: String,
}

fn field(headers: &HeaderMap, name: &str) -> String {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    values.join(", ")
}

impl Server {
    async fn serve(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
        }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(String::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            policy: field(&headers, "ratelimit-policy"),
            ratelimit: field(&headers, "ratelimit"),
            retry_after: field(&headers, "retry-after"),
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, key: &str) -> Answer {
        self.send("GET", "/api", &[("x-api-key", key)]).await
    }
}

/// A cost from the `x-cost` header, one unit without it.
fn cost_header(request: &Request<axum::body::Body>) -> u64 {
    request
        .headers()
        .get("x-cost")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1)
}

/// Three limits on one route: 2 per second per key (a token bucket of 2
/// refilled at 2 per second), 3 per minute per key (a fixed window), 100
/// per second for everyone (one bucket). Each is listed by name in both
/// fields; a request is charged to all or to none; the refusal names the
/// limit that denied it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_limits_on_one_route_are_charged_all_or_nothing_and_each_reported() {
    // On a minute boundary: the fixed window's end is 60 s away.
    let clock = Arc::new(ManualClock::new(600 * S));
    let per_second = Arc::new(keyed(bucket(2, Rate::per_second(2)), &clock));
    let per_minute = Arc::new(keyed(FixedWindow::per_minute(3).unwrap(), &clock));
    let global = Arc::new(Bucket::with_clock(
        bucket(100, Rate::per_second(100)),
        Arc::clone(&clock),
    ));
    let limits = AllOf::new((
        Named::new("per-second", Arc::clone(&per_second)),
        Named::new("per-minute", Arc::clone(&per_minute)),
        Named::new("global", Arc::clone(&global)),
    ))
    .unwrap();
    let layer = RateLimitLayer::builder(limits, HeaderKey::api_key())
        .name("api")
        .cost(CostFn(cost_header))
        .build()
        .unwrap();
    let server = Server::serve(
        Router::new()
            .route("/api", get(|| async { "ok\n" }))
            .layer(layer),
    )
    .await;
    let policy = r#""per-second";q=2;w=1, "per-minute";q=3;w=60, "global";q=100;w=1"#;

    // 1: every limit charged one unit. t: the next unit of a bucket in
    // 0.5 s and 10 ms (rounded up to 1 s), the window's end in 60 s.
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.policy, policy);
    assert_eq!(
        a.ratelimit,
        r#""per-second";r=1;t=1, "per-minute";r=2;t=60, "global";r=99;t=1"#
    );
    // 2: the per-second bucket is empty now.
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.ratelimit,
        r#""per-second";r=0;t=1, "per-minute";r=1;t=60, "global";r=98;t=1"#
    );
    // 3, at the same instant: denied by the per-second limit alone; the
    // other two report what they have left, uncharged.
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after, "1");
    assert_eq!(a.policy, policy);
    assert_eq!(
        a.ratelimit,
        r#""per-second";r=0;t=1, "per-minute";r=1;t=60, "global";r=98;t=1"#
    );
    assert_eq!(
        a.body,
        "rate limit exceeded (policy \"api\", limit \"per-second\"): retry in 1 s\n"
    );
    assert_eq!(per_minute.check_n("alice", 0).unwrap().remaining, 1);
    assert_eq!(global.peek().remaining, 98);

    // One second later both buckets are full again; the window takes its
    // third and last unit.
    clock.advance(Duration::from_secs(1));
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.ratelimit,
        r#""per-second";r=1;t=1, "per-minute";r=0;t=59, "global";r=99;t=1"#
    );
    // At the same instant, denied by the window alone: the per-second
    // bucket (1 left) and the global one are not charged (all or
    // nothing), and the wait is the window's.
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.retry_after, "59");
    assert_eq!(
        a.ratelimit,
        r#""per-second";r=1;t=1, "per-minute";r=0;t=59, "global";r=99;t=1"#
    );
    assert_eq!(
        a.body,
        "rate limit exceeded (policy \"api\", limit \"per-minute\"): retry in 59 s\n"
    );
    assert_eq!(per_second.check_n("alice", 0).unwrap().remaining, 1);
    assert_eq!(global.peek().remaining, 99);
    // Another key has budgets of its own, but shares the global one.
    let b = server.get("bob").await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(
        b.ratelimit,
        r#""per-second";r=1;t=1, "per-minute";r=2;t=59, "global";r=98;t=1"#
    );

    // A cost above one limit's capacity can never be allowed: 413,
    // naming that limit, every policy listed, nothing charged.
    let a = server
        .send("GET", "/api", &[("x-api-key", "carol"), ("x-cost", "3")])
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.policy, policy);
    assert_eq!(a.ratelimit, "");
    assert_eq!(
        a.body,
        "request cost 3 exceeds the capacity 2 of rate-limit policy \"api\" (limit \"per-second\"): it can never be allowed\n"
    );
    assert_eq!(per_minute.check_n("carol", 0).unwrap().remaining, 3);
    assert_eq!(global.peek().remaining, 98);
}

/// Per user, per tenant (a key derived from the request's), global: the
/// tenant's budget is shared by its users, and when the tenant denies, no
/// user limit is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_keyed_by_tenant_is_shared_by_its_users() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let per_user = Arc::new(keyed(bucket(2, Rate::per_minute(2)), &clock));
    let per_tenant = Arc::new(keyed(bucket(3, Rate::per_minute(3)), &clock));
    let limits = AllOf::new((
        Named::new("per-user", Arc::clone(&per_user)),
        Named::new("per-tenant", Arc::clone(&per_tenant)).key_by(|user: &String| {
            user.split_once('@')
                .map_or_else(String::new, |(_, tenant)| tenant.to_owned())
        }),
    ))
    .unwrap();
    let server = Server::serve(
        Router::new()
            .route("/api", get(|| async { "ok\n" }))
            .layer(RateLimitLayer::new(limits, HeaderKey::api_key())),
    )
    .await;
    let statuses = [
        server.get("ann@acme").await.status.as_u16(),
        server.get("ann@acme").await.status.as_u16(),
        server.get("bo@acme").await.status.as_u16(),
        server.get("cy@acme").await.status.as_u16(),
        server.get("cy@initech").await.status.as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 200, 429, 200]);
    // The tenant denied cy@acme: cy's own bucket was not charged.
    assert_eq!(per_user.check_n("cy@acme", 0).unwrap().remaining, 2);
    assert_eq!(per_tenant.check_n("acme", 0).unwrap().remaining, 0);
    let a = server.get("cy@acme").await;
    assert_eq!(
        a.body,
        "rate limit exceeded (policy \"default\", limit \"per-tenant\"): retry in 20 s\n"
    );
}

/// A plan per account, looked up from the API key: the key names an
/// account, the account's plan gives its quota. The fields describe the
/// account's own quota; an upgrade or a downgrade keeps what was consumed
/// (docs/semantics.md: a key's own quota converts with keep-consumed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_per_account_from_its_plan() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let free = bucket(2, Rate::per_minute(2)); // T = 30 s
    let pro = bucket(5, Rate::per_minute(5)); // T = 12 s
    // API key -> account; account -> plan (absent: the free plan).
    let accounts: HashMap<&'static str, &'static str> =
        [("key-1", "alice"), ("key-2", "bob")].into();
    let plans: Arc<RwLock<HashMap<String, TokenBucket>>> = Arc::default();
    plans.write().unwrap().insert("bob".to_owned(), pro);

    let table = Arc::clone(&plans);
    let limiter = PerKeyQuota::new(keyed(free, &clock), move |account: &String| {
        table.read().unwrap().get(account).copied()
    });
    let key = KeyFn::new(move |request: &Request<axum::body::Body>| {
        let key = request.headers().get("x-api-key")?.to_str().ok()?;
        accounts.get(key).map(|account| (*account).to_owned())
    });
    let layer = RateLimitLayer::builder(limiter, key)
        .name("plan")
        .missing_key(MissingKey::Reject(StatusCode::UNAUTHORIZED))
        .build()
        .unwrap();
    let server = Server::serve(
        Router::new()
            .route("/api", get(|| async { "ok\n" }))
            .layer(layer),
    )
    .await;

    let a = server.get("key-2").await;
    assert_eq!(
        (a.status, a.policy.as_str()),
        (StatusCode::OK, r#""plan";q=5;w=60"#)
    );
    assert_eq!(a.ratelimit, r#""plan";r=4;t=12"#);
    let a = server.get("key-1").await;
    assert_eq!(
        (a.status, a.policy.as_str()),
        (StatusCode::OK, r#""plan";q=2;w=60"#)
    );
    assert_eq!(a.ratelimit, r#""plan";r=1;t=30"#);
    assert_eq!(server.get("key-1").await.status, StatusCode::OK);
    assert_eq!(
        server.get("key-1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(server.get("key-9").await.status, StatusCode::UNAUTHORIZED);

    // Alice upgrades: her 2 units stay used, now of 5; 3 more pass.
    plans.write().unwrap().insert("alice".to_owned(), pro);
    let a = server.get("key-1").await;
    assert_eq!(
        (a.status, a.policy.as_str()),
        (StatusCode::OK, r#""plan";q=5;w=60"#)
    );
    assert_eq!(a.ratelimit, r#""plan";r=2;t=12"#);
    assert_eq!(server.get("key-1").await.status, StatusCode::OK);
    assert_eq!(server.get("key-1").await.status, StatusCode::OK);
    let a = server.get("key-1").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (a.retry_after.as_str(), a.ratelimit.as_str()),
        ("12", r#""plan";r=0;t=12"#)
    );

    // And back to free: keep-consumed converts the 60 s in use (5 units
    // of 12 s) to 150 s of the free plan's 30 s units, 2.5 buckets: the
    // next unit is 150 + 30 - 60 = 120 s away.
    plans.write().unwrap().remove("alice");
    let a = server.get("key-1").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.policy, r#""plan";q=2;w=60"#);
    assert_eq!(a.retry_after, "120");
}

/// A route's quota changed while the server runs, through a handle taken
/// from the layer before the router was built: an admin endpoint of the
/// same router sets it. The next request is decided under the new quota
/// and the fields describe it; what keys consumed converts by the strategy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_changed_at_run_time_without_rebuilding_the_router() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let layer = RateLimitLayer::builder(
        keyed(bucket(10, Rate::per_minute(10)), &clock),
        HeaderKey::api_key(),
    )
    .name("api")
    .build()
    .unwrap();
    let handle: QuotaHandle<TokenBucket> = layer.quota_handle();
    let admin = handle.clone();
    let app = Router::new()
        .route("/api", get(|| async { "ok\n" }))
        .route_layer(layer)
        .route(
            "/admin/quota/{capacity}/{strategy}",
            post(
                move |axum::extract::Path((capacity, strategy)): axum::extract::Path<(
                    u64,
                    String,
                )>| async move {
                    let strategy = match strategy.as_str() {
                        "keep-consumed" => Strategy::KeepConsumed,
                        "keep-available" => Strategy::KeepAvailable,
                        "proportional" => Strategy::Proportional,
                        _ => Strategy::Reset,
                    };
                    admin.set(bucket(capacity, Rate::per_minute(capacity)), strategy);
                    "changed\n"
                },
            ),
        );
    let server = Server::serve(app).await;
    let set = |path: &'static str| server.send("POST", path, &[]);

    for _ in 0..4 {
        assert_eq!(server.get("alice").await.status, StatusCode::OK);
    }
    assert_eq!(server.get("alice").await.ratelimit, r#""api";r=5;t=6"#);
    // An incident: everyone down to 5 per minute. Alice's 5 used stay
    // used (keep-consumed): nothing left for her; a new key gets 5.
    assert_eq!(set("/admin/quota/5/keep-consumed").await.body, "changed\n");
    assert_eq!(handle.get().quota().capacity(), 5);
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.policy, r#""api";q=5;w=60"#);
    assert_eq!(a.ratelimit, r#""api";r=0;t=12"#);
    let b = server.get("bob").await;
    assert_eq!(
        (b.status, b.ratelimit.as_str()),
        (StatusCode::OK, r#""api";r=4;t=12"#)
    );
    // Up to 20, keeping what is available: alice had nothing available
    // and still has nothing (the capacity gained counts as used); bob had
    // 4 and has 4.
    set("/admin/quota/20/keep-available").await;
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.policy, r#""api";q=20;w=60"#);
    assert_eq!(
        (a.retry_after.as_str(), a.ratelimit.as_str()),
        ("3", r#""api";r=0;t=3"#)
    );
    let b = server.get("bob").await;
    assert_eq!(
        (b.status, b.ratelimit.as_str()),
        (StatusCode::OK, r#""api";r=3;t=3"#)
    );
    // Reset: a fresh bucket for every key.
    set("/admin/quota/3/reset").await;
    for key in ["alice", "bob"] {
        let a = server.get(key).await;
        assert_eq!(
            (a.status, a.ratelimit.as_str()),
            (StatusCode::OK, r#""api";r=2;t=20"#)
        );
    }
}

/// The same through several limits: one limit of an `AllOf` changed while
/// it runs decides the very next all-or-nothing check under its new quota
/// (memory's `check_all` catches the key's shard up with the change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_limit_of_several_changed_at_run_time() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let per_key = Arc::new(keyed(bucket(10, Rate::per_minute(10)), &clock));
    let global = Arc::new(Bucket::with_clock(
        bucket(1000, Rate::per_second(1000)),
        Arc::clone(&clock),
    ));
    let handle = QuotaHandle::new(Arc::clone(&per_key));
    let limits = AllOf::new((
        Named::new("per-key", per_key),
        Named::new("global", Arc::clone(&global)),
    ))
    .unwrap();
    let server = Server::serve(
        Router::new()
            .route("/api", get(|| async { "ok\n" }))
            .layer(RateLimitLayer::new(limits, HeaderKey::api_key())),
    )
    .await;
    for _ in 0..4 {
        assert_eq!(server.get("alice").await.status, StatusCode::OK);
    }
    handle.set(bucket(5, Rate::per_minute(5)), Strategy::KeepConsumed);
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.policy, r#""per-key";q=5;w=60, "global";q=1000;w=1"#);
    assert_eq!(a.ratelimit, r#""per-key";r=0;t=12, "global";r=995;t=1"#);
    let a = server.get("alice").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        global.peek().remaining,
        995,
        "the global limit kept nothing"
    );
}

/// Requests racing a change of quota over real HTTP, 60 at once on many
/// connections, for one key under two limits, the clock standing still:
/// from 10 to 5 per minute (keep-consumed) while they run. Whatever the
/// interleaving, the key admits at most 10 (all under the old quota) and
/// at least 5 (all under the new), each request is decided under one quota
/// or the other, and the global limit was charged exactly once per
/// admitted request and never for a denied one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_a_change_of_quota_are_all_or_nothing() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let per_key = Arc::new(keyed(bucket(10, Rate::per_minute(10)), &clock));
    let global = Arc::new(Bucket::with_clock(
        bucket(1000, Rate::per_minute(1000)),
        Arc::clone(&clock),
    ));
    let handle = QuotaHandle::new(Arc::clone(&per_key));
    let limits = AllOf::new((
        Named::new("per-key", per_key),
        Named::new("global", Arc::clone(&global)),
    ))
    .unwrap();
    let server = Arc::new(
        Server::serve(
            Router::new()
                .route("/api", get(|| async { "ok\n" }))
                .layer(RateLimitLayer::new(limits, HeaderKey::api_key())),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..60 {
        let server = Arc::clone(&server);
        let handle = handle.clone();
        tasks.push(tokio::spawn(async move {
            if i == 20 {
                handle.set(bucket(5, Rate::per_minute(5)), Strategy::KeepConsumed);
            }
            let a = server.get("alice").await;
            (a.status, a.policy)
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        let (status, policy) = task.await.unwrap();
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            policy.starts_with(r#""per-key";q=10;w=60, "#)
                || policy.starts_with(r#""per-key";q=5;w=60, "#),
            "{policy}"
        );
    }
    assert!((5..=10).contains(&admitted), "admitted {admitted}");
    assert_eq!(global.peek().remaining, 1000 - admitted);
    // Under the new quota now, whatever came first: nothing left.
    assert_eq!(
        server.get("alice").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Names must tell the items apart, and be Structured Fields Strings.
#[test]
fn limit_names_are_checked() {
    let clock = Arc::new(ManualClock::new(S));
    let a = || keyed(bucket(1, Rate::per_second(1)), &clock);
    let err = AllOf::new((Named::new("x", a()), Named::new("x", a()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "two rate limits are named \"x\": each limit of a route needs a name of its own"
    );
    let err = AllOf::new((Named::new("x", a()), Named::new("caf\u{e9}", a()))).unwrap_err();
    assert!(err.to_string().contains("printable ASCII"), "{err}");
}

/// A plan per account as one limit of several: the plan's item reports the
/// account's own quota beside the global one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_per_account_beside_a_global_limit() {
    let clock = Arc::new(ManualClock::new(600 * S));
    let pro = bucket(5, Rate::per_minute(5));
    let per_plan = PerKeyQuota::new(
        keyed(bucket(2, Rate::per_minute(2)), &clock),
        move |account: &String| (account == "bob").then_some(pro),
    );
    let global = Bucket::with_clock(bucket(100, Rate::per_minute(100)), Arc::clone(&clock));
    let limits = AllOf::new((Named::new("plan", per_plan), Named::new("global", global))).unwrap();
    let server = Server::serve(
        Router::new()
            .route("/api", get(|| async { "ok\n" }))
            .layer(RateLimitLayer::new(limits, HeaderKey::api_key())),
    )
    .await;
    let b = server.get("bob").await;
    assert_eq!(b.policy, r#""plan";q=5;w=60, "global";q=100;w=60"#);
    assert_eq!(b.ratelimit, r#""plan";r=4;t=12, "global";r=99;t=1"#);
    let a = server.get("alice").await;
    assert_eq!(a.policy, r#""plan";q=2;w=60, "global";q=100;w=60"#);
    assert_eq!(a.ratelimit, r#""plan";r=1;t=30, "global";r=98;t=1"#);
}
