//! Round-trip latency of a check against a `PING` on the same Redis, and
//! the server-side cost of the script (`INFO commandstats`):
//! `cargo run --release -p ratelimit-redis --example latency -- redis://127.0.0.1:PORT/`

#![allow(clippy::std_instead_of_core)]

use std::time::{Duration, Instant};

use ratelimit_redis::{Quota, Rate, RedisLimiter, RedisPool, TokenBucket};

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn time(n: usize, mut f: impl FnMut()) -> Duration {
    p50((0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: latency REDIS_URL")?;
    let n = 20_000;
    let mut raw = redis::Client::open(url.as_str())?.get_connection()?;
    let limiter = RedisLimiter::builder(TokenBucket::new(Quota::new(
        1 << 20,
        Rate::per_second(1_000_000),
    )?))
    .prefix("latency")
    .build(RedisPool::open(&url)?)?;
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut raw)?;
    let ping = time(n, || {
        let _: String = redis::cmd("PING").query(&mut raw).unwrap();
    });
    let pooled = time(n, || {
        let _ = limiter.check("k").unwrap();
    });
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut raw)?;
    println!("p50: PING {ping:?}, check (pool) {pooled:?}");
    for line in stats
        .lines()
        .filter(|l| l.contains("fcall") || l.contains("evalsha") || l.contains("ping"))
    {
        println!("{line}");
    }
    Ok(())
}
