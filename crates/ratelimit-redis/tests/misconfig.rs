//! Misconfiguration fails loudly (issue: with no password against a Redis
//! that needs one, a bad database index or an unresolvable host, every
//! call failed and the fallback decided, silently, forever). Caught when
//! the pool or connection is built; and when Redis was down at build time,
//! returned as an error on every call whatever the failure policy, counted
//! and reported by `health()`.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::time::Duration;

use ratelimit_core::{Quota, Rate};
use ratelimit_redis::{
    AsyncRedisConnection, FailurePolicy, Health, RedisLimitError, RedisLimiter, RedisPool,
    TokenBucket,
};
use ratelimit_testkit::RedisServer;

fn fallback_limiter(pool: RedisPool) -> RedisLimiter<TokenBucket> {
    RedisLimiter::builder(TokenBucket::new(Quota::new(5, Rate::per_hour(1)).unwrap()))
        .failure_policy(FailurePolicy::Fallback)
        .build(pool)
        .unwrap()
}

fn quick(url: &str) -> Result<RedisPool, RedisLimitError> {
    RedisPool::builder(url)
        .connect_timeout(Duration::from_millis(200))
        .build()
}

#[test]
fn a_bad_database_index_fails_the_build() {
    let server = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/99999", server.port);
    let e = quick(&url).unwrap_err();
    eprintln!("bad database: {e}");
    assert!(matches!(e, RedisLimitError::Misconfigured { .. }), "{e}");
    assert!(e.is_misconfiguration() && !e.is_policy_failure());
    assert!(e.to_string().contains("database"), "{e}");
    let rt = support::runtime();
    let e = rt.block_on(AsyncRedisConnection::open(&url)).unwrap_err();
    assert!(matches!(e, RedisLimitError::Misconfigured { .. }), "{e}");
}

#[test]
fn an_unresolvable_host_fails_the_build() {
    let url = "redis://no-such-host.invalid:6379/";
    let e = quick(url).unwrap_err();
    eprintln!("unresolvable host: {e}");
    assert!(matches!(e, RedisLimitError::Misconfigured { .. }), "{e}");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    let e = RedisPool::cluster_builder(&[url]).build().unwrap_err();
    assert!(e.is_misconfiguration(), "{e}");
    let rt = support::runtime();
    let e = rt.block_on(AsyncRedisConnection::open(url)).unwrap_err();
    assert!(e.is_misconfiguration(), "{e}");
}

#[test]
fn a_missing_password_fails_the_build() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let e = quick(&format!("redis://127.0.0.1:{}/", server.port)).unwrap_err();
    assert!(matches!(e, RedisLimitError::Authentication(_)), "{e}");
}

/// Redis down when the pool was built, up later with a password the URL
/// lacks: every call returns the error, the fallback never answers.
#[test]
fn a_missing_password_is_an_error_on_every_call_whatever_the_policy() {
    let mut server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    server.kill();
    let limiter = fallback_limiter(quick(&format!("redis://127.0.0.1:{}/", server.port)).unwrap());
    // Down: the policy answers, as for any outage.
    assert!(limiter.check("k").is_ok());
    server.restart();
    for _ in 0..5 {
        let e = limiter.check("k").unwrap_err();
        assert!(matches!(e, RedisLimitError::Authentication(_)), "{e}");
        assert!(e.to_string().contains("credentials"), "{e}");
    }
    assert_eq!(limiter.health(), Health::Misconfigured);
    assert!(!limiter.health().redis_in_use());
    let stats = limiter.stats();
    assert_eq!(stats.misconfigurations, 5);
    assert_eq!(stats.policy_decisions, 1, "only the outage was absorbed");
    // The batch and reserve calls too.
    assert!(
        limiter
            .check_batch(&[("a", 1)])
            .unwrap_err()
            .is_misconfiguration()
    );
    assert!(
        limiter
            .reserve("k", 1, None)
            .unwrap_err()
            .is_misconfiguration()
    );
}

#[test]
fn a_bad_database_index_is_an_error_on_every_call_whatever_the_policy() {
    let mut server = RedisServer::start();
    server.kill();
    let limiter =
        fallback_limiter(quick(&format!("redis://127.0.0.1:{}/99999", server.port)).unwrap());
    server.restart();
    for _ in 0..3 {
        let e = limiter.check("k").unwrap_err();
        assert!(matches!(e, RedisLimitError::Misconfigured { .. }), "{e}");
    }
    assert_eq!(limiter.health(), Health::Misconfigured);
    assert_eq!(limiter.stats().policy_decisions, 0);
}
