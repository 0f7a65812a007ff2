//! The fleet view against a Redis of the test's own: two "processes"
//! (two recorders fed straight from a Redis limiter's decisions) publish,
//! the fleet merges them, samples the limiters' keys with SCAN, and
//! serves the hostile key name as JSON text; a publisher's key carries a
//! TTL, so a dead process disappears.

use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;

use http::Request;
use http_body_util::BodyExt;
use ratelimit_core::{AnyAlgorithm, Quota, Rate, TokenBucket};
use ratelimit_dashboard::{Dashboard, Fleet, Publisher, Recorder, Snapshot, publish, read};
use ratelimit_redis::{RedisLimiter, RedisPool};
use ratelimit_testkit::RedisServer;

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn limiter(url: &str) -> RedisLimiter<TokenBucket> {
    let quota = Quota::new(3, Rate::per_hour(1)).unwrap();
    RedisLimiter::builder(TokenBucket::new(quota))
        .prefix("api")
        .build(RedisPool::open(url).unwrap())
        .unwrap()
}

/// `n` checks of `key`, recorded.
fn checks(limiter: &RedisLimiter<TokenBucket>, recorder: &Recorder, key: &str, n: usize) {
    for _ in 0..n {
        let decision = limiter.check_n(key, 1).unwrap();
        recorder.record(key, &decision);
    }
}

#[tokio::test]
async fn two_processes_merge_and_the_keys_are_sampled() {
    let server = RedisServer::start();
    let limiter = limiter(&server.url());
    let quota = AnyAlgorithm::TokenBucket(*limiter.algorithm());
    let (a, b) = (Recorder::new(), Recorder::new());
    for r in [&a, &b] {
        r.add_quota("api", &quota);
        r.tick_at(1_000);
    }
    checks(&limiter, &a, "alice", 6); // 3 allowed, 3 denied
    checks(&limiter, &b, "alice", 2); // 2 denied
    checks(&limiter, &b, HOSTILE, 4); // 3 allowed, 1 denied
    checks(&limiter, &a, "carol", 1); // 1 allowed
    for r in [&a, &b] {
        r.tick_at(1_001);
    }

    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    publish(&mut c, &a, "api#dashboard#a", Duration::from_secs(15)).unwrap();
    publish(&mut c, &b, "api#dashboard#b", Duration::from_secs(15)).unwrap();
    let pttl: i64 = server
        .cli(&["PTTL", "api#dashboard#a"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        (1..=15_000).contains(&pttl),
        "a dead process's numbers expire: {pttl}"
    );

    let fleet = read(&mut c, "api", None).unwrap();
    assert_eq!((fleet.source.as_str(), fleet.processes), ("fleet", 2));
    assert_eq!(fleet.totals.allowed, 7);
    assert_eq!(fleet.totals.denied, 6);
    let last = fleet.series.last().unwrap();
    assert_eq!((last.t, last.counts.denied), (1_001, 6));
    let top: Vec<(&str, u64)> = fleet
        .top_denied
        .iter()
        .map(|k| (k.key.as_str(), k.count))
        .collect();
    assert_eq!(top, [("alice", 5), (HOSTILE, 1)]);
    assert_eq!(fleet.quotas.len(), 1);

    // What Redis knows: three limiter keys (the published ones are not
    // among them); alice and the hostile key are empty, carol has 2 left.
    let view = fleet.redis.as_ref().unwrap();
    assert_eq!(
        (view.prefix.as_str(), view.keys, view.complete),
        ("api", 3, true)
    );
    let closest: Vec<(&str, Option<u64>)> = view
        .closest_to_empty
        .iter()
        .map(|k| (k.key.as_str(), k.remaining))
        .collect();
    assert_eq!(closest.len(), 3);
    assert_eq!(closest[2], ("carol", Some(2)));
    assert!(closest[..2].contains(&("alice", Some(0))), "{closest:?}");
    assert!(closest[..2].contains(&(HOSTILE, Some(0))), "{closest:?}");

    // The fleet's page: the hostile key is JSON text.
    let fleet_view = Fleet::start(client.clone(), "api").unwrap();
    let dashboard = Dashboard::new(fleet_view.clone());
    let mut request = Request::get("/ratelimit/api.json").body(()).unwrap();
    request
        .extensions_mut()
        .insert("127.0.0.1:9".parse::<SocketAddr>().unwrap());
    let body = dashboard
        .respond(&request)
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let served: Snapshot = serde_json::from_slice(&body).unwrap();
    assert_eq!(served.top_denied[1].key, HOSTILE);
    assert!(String::from_utf8_lossy(&body).contains(r#""key":"<img src=x onerror=alert(1)>""#));
    fleet_view.stop();
}

#[test]
fn a_publisher_writes_with_a_ttl_until_dropped() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let recorder = Recorder::new();
    let publisher =
        Publisher::start(&recorder, client, "api", "host-1", Duration::from_secs(1)).unwrap();
    assert_eq!(publisher.key(), "api#dashboard#host-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pttl: i64 = server
            .cli(&["PTTL", "api#dashboard#host-1"])
            .trim()
            .parse()
            .unwrap();
        if pttl > 0 {
            assert!(pttl <= 3_000, "three intervals: {pttl}");
            break;
        }
        assert!(Instant::now() < deadline, "the publisher never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        Publisher::start(
            &Recorder::new(),
            redis::Client::open(server.url()).unwrap(),
            "a|b",
            "p",
            Duration::from_secs(1)
        )
        .is_err()
    );
}
