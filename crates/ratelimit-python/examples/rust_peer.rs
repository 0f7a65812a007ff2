//! A Rust service's side of a limit shared with Python: `n` checks of `key`
//! on a `TokenBucketRedis` (server time, the default) at `url` under
//! `prefix`, one line per decision (`allowed <remaining>` or `denied`).
//! The Python tests run it beside a `rate_limiter.TokenBucketRedis` on the
//! same server and prefix, and count that both draw from one bucket.
//!
//! Usage: `rust_peer <url> <prefix> <capacity> <rate> <key> <n>`

use std::process::ExitCode;

use ratelimit_redis::{Rate, RedisLimiter, RedisPool, TokenBucket};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, capacity, rate, key, n] = args.as_slice() else {
        eprintln!("usage: rust_peer <url> <prefix> <capacity> <rate> <key> <n>");
        return ExitCode::FAILURE;
    };
    match run(url, prefix, capacity, rate, key, n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    url: &str,
    prefix: &str,
    capacity: &str,
    rate: &str,
    key: &str,
    n: &str,
) -> Result<(), Box<dyn core::error::Error>> {
    // The rate as Python's float (its repr), converted as the Python
    // package converts it: the same bits, so the same quota.
    let rate = Rate::from_per_second_f64(rate.parse::<f64>()?);
    let algorithm = TokenBucket::with_rate(capacity.parse()?, rate)?;
    let limiter = RedisLimiter::builder(algorithm)
        .prefix(prefix)
        .build(RedisPool::open(url)?)?;
    for _ in 0..n.parse::<u32>()? {
        let d = limiter.check(key)?;
        if d.allowed {
            println!("allowed {}", d.remaining);
        } else {
            println!("denied");
        }
    }
    Ok(())
}
