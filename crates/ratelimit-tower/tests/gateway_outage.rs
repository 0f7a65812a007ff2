//! The API gateway example on the Redis backend through an outage: steady
//! load, `redis-server` killed mid-run and restarted. With `Fallback` (the
//! example's own plans) no request gets a 5xx and the limiter goes back to
//! Redis after the restart (its health is `Up` again and the account's
//! state is in the new server); with `FailClosed` the outage answers 429s,
//! never a 5xx, and Redis decides again afterwards. The p99 latencies of
//! each phase (normal, outage, restart, after) are printed, not asserted:
//! speed goals live in the benchmarks, and a timed assertion would be
//! flaky on a loaded machine. To read them:
//! `cargo test -p ratelimit-tower --features axum,redis --test gateway_outage -- --nocapture`
//! (the numbers are in `docs/redis.md`, "At scale").

#[allow(dead_code)]
#[path = "../examples/api_gateway.rs"]
mod gateway;

use core::time::Duration;
use std::time::Instant;

use gateway::Keys;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ratelimit_redis::{FailurePolicy, Health};
use ratelimit_testkit::RedisServer;

const KEYS: &str = "key-carol carol pro\nkey-alice alice free\n";

/// A liveness bound for the return to Redis: the test fails instead of
/// hanging; never a speed goal.
const LIVENESS: Duration = Duration::from_secs(60);

struct Load {
    client: Client<HttpConnector, String>,
    base: String,
    /// Every status seen, and every latency in microseconds.
    statuses: Vec<StatusCode>,
    latencies_us: Vec<u64>,
}

impl Load {
    async fn one(&mut self, key: &str) -> StatusCode {
        let request = Request::get(format!("{}/api/search", self.base))
            .header("x-api-key", key)
            .body(String::new())
            .unwrap();
        let t = Instant::now();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let _ = response.into_body().collect().await.unwrap();
        self.latencies_us
            .push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
        self.statuses.push(status);
        status
    }

    /// `n` requests alternating the two accounts; the p99 of their latencies.
    async fn run(&mut self, n: usize) -> u64 {
        let from = self.latencies_us.len();
        for i in 0..n {
            let status = self
                .one(if i % 2 == 0 { "key-carol" } else { "key-alice" })
                .await;
            assert!(!status.is_server_error(), "a 5xx: {status}");
        }
        self.p99_since(from)
    }

    /// The p99 of the latencies recorded since the `from`th request.
    fn p99_since(&self, from: usize) -> u64 {
        let mut window = self.latencies_us[from..].to_vec();
        window.sort_unstable();
        window[(window.len() - 1) * 99 / 100]
    }
}

async fn outage(policy: FailurePolicy) {
    let mut server = RedisServer::start();
    let plans = gateway::redis_plans(&server.url(), policy).unwrap();
    let pro = plans.pro.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve(
        listener,
        gateway::app(Keys::parse(KEYS).unwrap(), plans),
    ));
    let mut load = Load {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
        statuses: Vec::new(),
        latencies_us: Vec::new(),
    };

    let normal = load.run(200).await;
    assert_eq!(pro.health(), Health::Up);
    assert_eq!(server.cli(&["exists", "gateway:pro|carol"]).trim(), "1");

    server.kill();
    let from = load.statuses.len();
    let during = load.run(200).await;
    let outage_statuses = &load.statuses[from..];
    if policy == FailurePolicy::FailClosed {
        assert!(
            outage_statuses
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
            "FailClosed answers 429 while Redis is down"
        );
    } else {
        // The local fallback admits the free account's burst again.
        assert!(outage_statuses.contains(&StatusCode::OK));
    }
    assert!(pro.stats().policy_decisions > 0);

    // Restarted (empty): the limiter returns to Redis by itself.
    server.restart();
    let recovery_from = load.statuses.len();
    let t = Instant::now();
    loop {
        load.run(10).await;
        if pro.health() == Health::Up && server.cli(&["exists", "gateway:pro|carol"]).trim() == "1"
        {
            break;
        }
        assert!(
            t.elapsed() < LIVENESS,
            "never returned to Redis: {:?}",
            pro.health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovery = load.p99_since(recovery_from);
    let decided_by_policy = pro.stats().policy_decisions;
    let after = load.run(100).await;
    assert_eq!(
        pro.stats().policy_decisions,
        decided_by_policy,
        "Redis decides again"
    );
    eprintln!(
        "{policy:?}: p99 {normal} us normal, {during} us during the outage ({:.2} x), {recovery} us while it restarts ({:.2} x), {after} us after; back on Redis in {:?}; {} requests, none 5xx",
        during as f64 / normal as f64,
        recovery as f64 / normal as f64,
        t.elapsed(),
        load.statuses.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_outage_no_5xx_and_back_to_redis() {
    outage(FailurePolicy::Fallback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_outage_429s_and_back_to_redis() {
    outage(FailurePolicy::FailClosed).await;
}
