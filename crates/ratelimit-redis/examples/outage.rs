//! Per-call latency while Redis is down, with and without the circuit
//! breaker, on a `redis-server` of its own (killed, or frozen with
//! SIGSTOP), with the `Fallback` policy and the default timeouts (500 ms):
//! `cargo run --release -p ratelimit-redis --example outage`

#![allow(clippy::std_instead_of_core)]

use std::time::{Duration, Instant};

use ratelimit_redis::{
    AsyncRedisConnection, CircuitBreaker, FailurePolicy, Quota, Rate, Reason, RedisLimiter,
    RedisPool, TokenBucket,
};
use ratelimit_testkit::RedisServer;

fn summary(name: &str, mut v: Vec<Duration>, fallback: usize) {
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    let total: Duration = v.iter().sum();
    println!(
        "{name:<44} {:>5} calls  p50 {:>10.1?}  p99 {:>10.1?}  max {:>10.1?}  mean {:>10.1?}  ({fallback} by the fallback)",
        v.len(),
        pct(0.5),
        pct(0.99),
        v[v.len() - 1],
        total / u32::try_from(v.len()).unwrap_or(1),
    );
}

fn builder<C: ratelimit_redis::Transport>(
    breaker: Option<CircuitBreaker>,
) -> ratelimit_redis::RedisLimiterBuilder<TokenBucket, C> {
    RedisLimiter::builder(TokenBucket::new(
        Quota::new(1000, Rate::per_second(100)).expect("a quota"),
    ))
    .failure_policy(FailurePolicy::Fallback)
    .circuit_breaker(breaker)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for outage in ["killed", "frozen (SIGSTOP)"] {
        for (label, breaker, calls) in [
            ("no breaker", None, 10),
            (
                "breaker (5 failures, 1 s)",
                Some(CircuitBreaker::default()),
                3000,
            ),
        ] {
            for transport in ["pool", "async"] {
                let mut server = RedisServer::start();
                let url = server.url();
                let mut times = Vec::with_capacity(calls);
                let mut fallback = 0;
                let mut time = |decide: &mut dyn FnMut() -> Reason| {
                    let t = Instant::now();
                    let reason = decide();
                    times.push(t.elapsed());
                    fallback += usize::from(reason == Reason::Fallback);
                };
                if transport == "pool" {
                    let l = builder(breaker).build(RedisPool::open(&url)?)?;
                    let _ = l.check("k")?;
                    if outage == "killed" {
                        server.kill()
                    } else {
                        server.pause()
                    }
                    for _ in 0..calls {
                        time(&mut || l.check("k").map_or(Reason::Quota, |d| d.reason));
                    }
                } else {
                    let conn = rt.block_on(AsyncRedisConnection::open(&url))?;
                    let l = builder(breaker).build(conn)?;
                    let _ = rt.block_on(l.check("k"))?;
                    if outage == "killed" {
                        server.kill()
                    } else {
                        server.pause()
                    }
                    for _ in 0..calls {
                        time(&mut || {
                            rt.block_on(l.check("k"))
                                .map_or(Reason::Quota, |d| d.reason)
                        });
                    }
                }
                if outage != "killed" {
                    server.resume();
                }
                summary(&format!("{outage}, {transport}, {label}"), times, fallback);
            }
        }
    }
    Ok(())
}
