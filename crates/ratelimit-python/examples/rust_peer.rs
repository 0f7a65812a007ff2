//! A Rust service's side of a limit shared with Python: `n` checks of `key`
//! on a `TokenBucketRedis` (server time, the default) at `url` under
//! `prefix`, one line per decision (`allowed <remaining>` or `denied`).
//! The Python tests run it beside a `rate_limiter.TokenBucketRedis` on the
//! same server and prefix, and count that both draw from one bucket.
//!
//! With `fixed-window` or `sliding-window` and a time, it checks on that
//! window algorithm instead (`<rate>` is then the window in whole seconds)
//! at the caller's time `<now_ns>` (client time, as a Python limiter with
//! a `ManualClock` runs).
//!
//! Usage: `rust_peer <url> <prefix> <capacity> <rate> <key> <n>
//! [fixed-window|sliding-window <now_ns>]`

use std::process::ExitCode;

use core::time::Duration;

use ratelimit_core::{Algorithm, FixedWindow, SlidingWindow};
use ratelimit_redis::{Rate, RedisLimiter, RedisPool, TimeSource, TokenBucket};

const USAGE: &str = "usage: rust_peer <url> <prefix> <capacity> <rate> <key> <n> \
                     [fixed-window|sliding-window <now_ns>]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [url, prefix, capacity, rate, key, n] => run(url, prefix, capacity, rate, key, n),
        [url, prefix, limit, window, key, n, algorithm, now_ns] => {
            let quota = || -> Result<(u64, Duration), Box<dyn core::error::Error>> {
                Ok((limit.parse()?, Duration::from_secs(window.parse()?)))
            };
            match algorithm.as_str() {
                "fixed-window" => quota().and_then(|(l, w)| {
                    run_window(url, prefix, FixedWindow::new(l, w)?, key, n, now_ns)
                }),
                "sliding-window" => quota().and_then(|(l, w)| {
                    run_window(url, prefix, SlidingWindow::new(l, w)?, key, n, now_ns)
                }),
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match result {
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

/// `n` checks of `key` on the window algorithm `algorithm`, at the
/// caller's time `now_ns` (client time).
fn run_window<A: Algorithm>(
    url: &str,
    prefix: &str,
    algorithm: A,
    key: &str,
    n: &str,
    now_ns: &str,
) -> Result<(), Box<dyn core::error::Error>> {
    let now_ns: u64 = now_ns.parse()?;
    let limiter = RedisLimiter::builder(algorithm)
        .prefix(prefix)
        .time_source(TimeSource::client())
        .build(RedisPool::open(url)?)?;
    for _ in 0..n.parse::<u32>()? {
        let d = limiter.check_at(key, 1, now_ns)?;
        if d.allowed {
            println!("allowed {}", d.remaining);
        } else {
            println!("denied");
        }
    }
    Ok(())
}
