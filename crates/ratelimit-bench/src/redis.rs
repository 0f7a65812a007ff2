//! The Redis backend's rows: a `redis-server` started by the bench itself
//! on a free local port (never the shared one on 6379), killed at the end.
//!
//! Every figure is per operation, timed one operation at a time (a round
//! trip is tens of microseconds, far above the cost of reading the clock):
//! mean and p99 in the columns, p50 in the note. Shapes:
//!
//! - `redis/floor_ping`, `redis/floor_incr`: `PING` and `INCR` on a held
//!   connection, the floors of any round trip;
//! - `redis/check_pool`: `check` through the pool (a checkout per call), 1
//!   and 2 threads;
//! - `redis/batch_100`: `check_batch` of 100 keys per round trip, figures
//!   per check;
//! - `redis/window_check`, `redis/window_batch_100`: the fixed and the
//!   sliding window, as `check_pool` (1 thread) and `batch_100`, with their
//!   ratio to the token bucket's row of the same run;
//! - `redis/async_check`: the async limiter, 1, 16 and 64 tasks sharing one
//!   connection (pipelined) on a one-thread tokio runtime, next to the
//!   sync pool's one-thread row of the same run;
//! - `redis/check_all_2_limits`, `redis/check_all_3_limits`: one request
//!   against 2 limits (10/s token bucket and a daily fixed window) and 3
//!   (plus a per-minute sliding window), all or nothing in one script run,
//!   with the p50's ratio to `redis/check_pool`'s (target: at most N x).
//!
//! Without `redis-server` on PATH the rows are skipped with that reason.

use core::time::Duration;
use std::time::Instant;

use ratelimit_core::{Quota, Rate, TokenBucket};
use ratelimit_redis::{RedisLimiter, RedisPool, TokenBucketRedis};
use ratelimit_testkit::RedisServer;

use crate::measure::{self, Settings, Worker};
use crate::report::{Row, Target};

/// Per-operation latencies of one case, all threads together.
struct Timing {
    latencies_ns: Vec<u64>,
    ops: u64,
    wall: Duration,
}

/// Runs `op` on `threads` threads for `duration` after a short warm-up,
/// timing every call; `op(thread, i)` does `per_call` checks.
fn time_case(
    threads: usize,
    duration: Duration,
    per_call: u64,
    op: &(dyn Fn(usize, u64) + Sync),
) -> Timing {
    let start = Instant::now();
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let warm = Instant::now();
                    let mut i = 0;
                    while warm.elapsed() < duration / 10 {
                        op(t, i);
                        i += 1;
                    }
                    let mut lat = Vec::new();
                    let begin = Instant::now();
                    while begin.elapsed() < duration {
                        let t0 = Instant::now();
                        op(t, i);
                        lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().saturating_sub(duration / 10);
    let latencies_ns: Vec<u64> = per_thread.into_iter().flatten().collect();
    let ops = latencies_ns.len() as u64 * per_call;
    Timing {
        latencies_ns,
        ops,
        wall,
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64
}

/// One row from a timing; figures per check (a call of a batch counts as
/// `per_call` checks).
fn row(
    shape: &str,
    implementation: &str,
    threads: usize,
    per_call: u64,
    mut t: Timing,
) -> (Row, f64) {
    t.latencies_ns.sort_unstable();
    let per = per_call as f64;
    let calls = t.latencies_ns.len().max(1) as f64;
    let mean = t.latencies_ns.iter().map(|&x| x as f64).sum::<f64>() / calls / per;
    let p50 = percentile(&t.latencies_ns, 0.50) / per;
    let p99 = percentile(&t.latencies_ns, 0.99) / per;
    let row = Row {
        shape: shape.to_owned(),
        implementation: implementation.to_owned(),
        threads,
        keys: if per_call > 1 {
            per_call as usize
        } else {
            threads
        },
        mean_ns: mean,
        p99_ns: p99,
        ops_per_s: t.ops as f64 / t.wall.as_secs_f64(),
        batch: per_call,
        vs_governor: None,
        note: Some(format!("p50 {:.1} us", p50 / 1000.0)),
    };
    (row, p50)
}

/// The Redis rows of the comparison, or why there are none.
///
/// # Errors
/// The reason the Redis rows are skipped (printed under SKIPPED).
pub fn rows(settings: &Settings) -> Result<Vec<Row>, String> {
    if !on_path("redis-server") {
        return Err("redis-server not on PATH (install: apt-get install redis-server)".to_owned());
    }
    let server = RedisServer::try_start()?;
    let url = server.url();
    // As long as the comparison spends on a shape, at least 100 ms.
    let duration = (settings.sample * u32::try_from(settings.rounds).unwrap_or(1))
        .max(Duration::from_millis(100));
    let failed = |what: &str, e: &dyn core::fmt::Display| format!("{what}: {e}");
    let pool = RedisPool::builder(&url)
        .max_connections(4)
        .build()
        .map_err(|e| failed("pool", &e))?;
    // Never empty during the run, so every check does the same work.
    let quota =
        Quota::new(1 << 20, Rate::per_second(1_000_000)).map_err(|e| failed("quota", &e))?;
    let limiter: TokenBucketRedis = RedisLimiter::builder(TokenBucket::new(quota))
        .prefix("bench")
        .build(pool.clone())
        .map_err(|e| failed("limiter", &e))?;
    let keys: Vec<String> = (0..100).map(|i| format!("user{i}")).collect();
    let _ = limiter
        .check("warm")
        .map_err(|e| failed("first check", &e))?;

    let raw = redis::Client::open(url.as_str()).map_err(|e| failed("client", &e))?;
    let conns: Vec<std::sync::Mutex<redis::Connection>> = (0..2)
        .map(|_| raw.get_connection().map(std::sync::Mutex::new))
        .collect::<Result<_, _>>()
        .map_err(|e| failed("connection", &e))?;

    let mut out = Vec::new();
    let floor = "redis (floor)";
    let ours = "ratelimit-redis";
    let (ping, ping_p50) = row(
        "redis/floor_ping",
        floor,
        1,
        1,
        time_case(1, duration, 1, &|t, _| {
            let _: Result<String, _> = redis::cmd("PING").query(&mut *lock(&conns[t]));
        }),
    );
    out.push(ping);
    out.push(
        row(
            "redis/floor_incr",
            floor,
            1,
            1,
            time_case(1, duration, 1, &|t, _| {
                let _: Result<i64, _> = redis::cmd("INCR")
                    .arg("bench-counter")
                    .query(&mut *lock(&conns[t]));
            }),
        )
        .0,
    );
    for threads in [1, 2] {
        let (mut r, p50) = row(
            "redis/check_pool",
            ours,
            threads,
            1,
            time_case(threads, duration, 1, &|t, i| {
                let _ = limiter.check(&keys[(t * 50 + i as usize) % 100]);
            }),
        );
        if threads == 1 {
            r.note = Some(format!(
                "p50 {:.1} us = {:.2} x PING p50",
                p50 / 1000.0,
                p50 / ping_p50
            ));
        }
        out.push(r);
    }
    let batch: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let (mut r, p50) = row(
        "redis/batch_100",
        ours,
        1,
        100,
        time_case(1, duration, 100, &|_, _| {
            let _ = limiter.check_batch(&batch);
        }),
    );
    r.note = Some(format!(
        "per check; p50 {:.0} ns, 100 checks per round trip",
        p50
    ));
    out.push(r);
    out.extend(window_rows(&url, duration, &keys, &out)?);
    out.extend(multi_rows(&pool, &limiter, duration, &keys, &out)?);
    out.extend(async_rows(&url, duration, &keys, &out)?);
    drop(server);
    Ok(out)
}

/// `redis/async_check`: `tasks` tasks checking in a loop on one
/// `AsyncRedisConnection`, on a current-thread runtime (one thread, as the
/// sync one-thread row), every call timed.
fn async_rows(
    url: &str,
    duration: Duration,
    keys: &[String],
    sync_rows: &[Row],
) -> Result<Vec<Row>, String> {
    use ratelimit_redis::{AsyncRedisConnection, AsyncRedisLimiter};
    use std::sync::Arc;

    let failed = |what: &str, e: &dyn core::fmt::Display| format!("{what}: {e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("tokio runtime", &e))?;
    let quota =
        Quota::new(1 << 20, Rate::per_second(1_000_000)).map_err(|e| failed("quota", &e))?;
    let limiter = rt.block_on(async {
        let conn = AsyncRedisConnection::open(url)
            .await
            .map_err(|e| failed("async connection", &e))?;
        let limiter = AsyncRedisLimiter::builder(TokenBucket::new(quota))
            .prefix("bench-async")
            .build(conn)
            .map_err(|e| failed("async limiter", &e))?;
        let _ = limiter
            .check("warm")
            .await
            .map_err(|e| failed("first async check", &e))?;
        Ok::<_, String>(limiter)
    })?;
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let sync_ops = sync_rows
        .iter()
        .find(|r| r.shape == "redis/check_pool" && r.threads == 1)
        .map(|r| r.ops_per_s);
    let mut out = Vec::new();
    for tasks in [1usize, 16, 64] {
        let timing = rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let limiter = limiter.clone();
                    let keys = Arc::clone(&keys);
                    tokio::spawn(async move {
                        let mut i = t;
                        let warm = Instant::now();
                        while warm.elapsed() < duration / 10 {
                            let _ = limiter.check(&keys[i % 100]).await;
                            i += 1;
                        }
                        let mut lat = Vec::new();
                        let begin = Instant::now();
                        while begin.elapsed() < duration {
                            let t0 = Instant::now();
                            let _ = limiter.check(&keys[i % 100]).await;
                            lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
                            i += 1;
                        }
                        lat
                    })
                })
                .collect();
            let mut latencies_ns = Vec::new();
            for h in handles {
                latencies_ns.extend(h.await.unwrap_or_default());
            }
            let wall = start.elapsed().saturating_sub(duration / 10);
            Timing {
                ops: latencies_ns.len() as u64,
                latencies_ns,
                wall,
            }
        });
        let (mut r, p50) = row(
            "redis/async_check",
            "ratelimit-redis (async)",
            tasks,
            1,
            timing,
        );
        r.keys = 100.min(tasks.max(1));
        let ratio = sync_ops.map_or(String::new(), |s| {
            format!("; {:.2} x sync pool 1 thread", r.ops_per_s / s)
        });
        r.note = Some(format!(
            "{tasks} task(s), 1 connection, 1 thread; p50 {:.1} us{ratio}",
            p50 / 1000.0
        ));
        out.push(r);
    }
    Ok(out)
}

/// The async target, read off the rows: 64 tasks on one connection make
/// at least 3 x the checks per second of the sync pool on one thread.
#[must_use]
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let ops = |shape: &str, threads: usize| {
        rows.iter()
            .find(|r| r.shape == shape && r.threads == threads)
            .map(|r| r.ops_per_s)
    };
    let value = ops("redis/async_check", 64)
        .zip(ops("redis/check_pool", 1))
        .map(|(a, s)| a / s);
    if value.is_none() && !rows.iter().any(|r| r.shape.starts_with("redis/")) {
        return Vec::new();
    }
    let mut targets = vec![Target {
        name: "async Redis, 64 tasks on one connection, checks/s vs sync pool 1 thread".to_owned(),
        value,
        bound: ">= 3.00".to_owned(),
        met: value.map(|v| v >= 3.0),
    }];
    let p50 = |shape: &str| {
        rows.iter()
            .find(|r| r.shape == shape && r.threads == 1)
            .and_then(|r| r.note.as_deref())
            .and_then(|n| n.strip_prefix("p50 "))
            .and_then(|n| n.split(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    for n in [2_u32, 3] {
        let shape = format!("redis/check_all_{n}_limits");
        let value = p50(&shape).zip(p50("redis/check_pool")).map(|(m, s)| m / s);
        let bound = f64::from(n);
        targets.push(Target {
            name: format!("Redis check_all, {n} limits ({shape} / redis/check_pool), p50"),
            value,
            bound: format!("<= {bound:.2}"),
            met: value.map(|v| v <= bound),
        });
    }
    targets
}

/// Measures named workers the way the comparison measures its own cases
/// (calibrated batches, `settings.rounds` samples, medians), for backends
/// benchmarked outside the main interleaved loop.
#[must_use]
pub fn measure_rows(
    settings: &Settings,
    cases: Vec<(String, String, Vec<Worker<'static>>)>,
) -> Vec<Row> {
    cases
        .into_iter()
        .map(|(shape, implementation, mut workers)| {
            let batch = measure::calibrate(&mut workers[0], settings.batch);
            let samples: Vec<measure::Sample> = (0..settings.rounds)
                .map(|_| measure::sample(&mut workers, batch, settings))
                .collect();
            let pick = |f: fn(&measure::Sample) -> f64| {
                let mut v: Vec<f64> = samples.iter().map(f).collect();
                measure::median(&mut v)
            };
            Row {
                shape,
                implementation,
                threads: workers.len(),
                keys: 1,
                mean_ns: pick(|s| s.mean_ns),
                p99_ns: pick(|s| s.p99_ns),
                ops_per_s: pick(|s| s.ops_per_s),
                batch,
                vs_governor: None,
                note: None,
            }
        })
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

// ---- the window algorithms (issue 7) ----

/// The window rows: `check` on one thread and `check_batch` of 100 keys,
/// for the fixed and the sliding window, each with its p50's ratio to the
/// token bucket's row of the same run (`bucket_rows`).
fn window_rows(
    url: &str,
    duration: Duration,
    keys: &[String],
    bucket_rows: &[Row],
) -> Result<Vec<Row>, String> {
    use ratelimit_core::{FixedWindow, SlidingWindow};

    let failed = |what: &str, e: &dyn core::fmt::Display| format!("{what}: {e}");
    let pool = RedisPool::builder(url)
        .max_connections(2)
        .build()
        .map_err(|e| failed("pool", &e))?;
    let p50_of = |shape: &str| {
        bucket_rows
            .iter()
            .find(|r| r.shape == shape && r.threads == 1)
            .and_then(|r| r.note.as_deref())
            .and_then(|n| n.strip_prefix("p50 "))
            .and_then(|n| n.split(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    // The token bucket's p50: us per check, ns per check of a batch.
    let check_us = p50_of("redis/check_pool");
    let batch_ns = {
        bucket_rows
            .iter()
            .find(|r| r.shape == "redis/batch_100")
            .and_then(|r| r.note.as_deref())
            .and_then(|n| n.split("p50 ").nth(1))
            .and_then(|n| n.split(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    // Never exhausted during the run, so every check does the same work.
    let fixed =
        RedisLimiter::builder(FixedWindow::per_second(1 << 40).map_err(|e| failed("window", &e))?)
            .prefix("bench-fw")
            .build(pool.clone())
            .map_err(|e| failed("limiter", &e))?;
    let sliding = RedisLimiter::builder(
        SlidingWindow::per_second(1 << 22).map_err(|e| failed("window", &e))?,
    )
    .prefix("bench-sw")
    .build(pool)
    .map_err(|e| failed("limiter", &e))?;
    let batch: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let mut out = Vec::new();
    let check = |name: &str, f: &(dyn Fn(&str) + Sync)| {
        let (mut r, p50) = row(
            "redis/window_check",
            name,
            1,
            1,
            time_case(1, duration, 1, &|_, i| f(&keys[i as usize % keys.len()])),
        );
        r.note = Some(match check_us {
            Some(b) => format!(
                "p50 {:.1} us = {:.2} x token bucket check p50",
                p50 / 1000.0,
                p50 / 1000.0 / b
            ),
            None => format!("p50 {:.1} us", p50 / 1000.0),
        });
        r
    };
    out.push(check("ratelimit-redis fixed-window", &|k| {
        let _ = fixed.check(k);
    }));
    out.push(check("ratelimit-redis sliding-window", &|k| {
        let _ = sliding.check(k);
    }));
    let batched = |name: &str, f: &(dyn Fn() + Sync)| {
        let (mut r, p50) = row(
            "redis/window_batch_100",
            name,
            1,
            100,
            time_case(1, duration, 100, &|_, _| f()),
        );
        r.note = Some(match batch_ns {
            Some(b) => format!(
                "per check; p50 {p50:.0} ns = {:.2} x token bucket batch p50",
                p50 / b
            ),
            None => format!("per check; p50 {p50:.0} ns"),
        });
        r
    };
    out.push(batched("ratelimit-redis fixed-window", &|| {
        let _ = fixed.check_batch(&batch);
    }));
    out.push(batched("ratelimit-redis sliding-window", &|| {
        let _ = sliding.check_batch(&batch);
    }));
    Ok(out)
}

// ---- several limits on one request (issue 8) ----

/// `check_all` over 2 and 3 limits of different algorithms on one request,
/// one thread, each limit on its own prefix; the note gives the p50's ratio
/// to the single token-bucket check of the same run (`single_rows`).
fn multi_rows(
    pool: &RedisPool,
    per_second: &TokenBucketRedis,
    duration: Duration,
    keys: &[String],
    single_rows: &[Row],
) -> Result<Vec<Row>, String> {
    use ratelimit_core::{FixedWindow, SlidingWindow};

    let failed = |what: &str, e: &dyn core::fmt::Display| format!("{what}: {e}");
    let single_us = single_rows
        .iter()
        .find(|r| r.shape == "redis/check_pool" && r.threads == 1)
        .and_then(|r| r.note.as_deref())
        .and_then(|n| n.strip_prefix("p50 "))
        .and_then(|n| n.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    // Never exhausted during the run, so every check is admitted and
    // charges every limit: the all-or-nothing path's full work.
    let daily = RedisLimiter::builder(
        FixedWindow::new(1 << 40, Duration::from_secs(86_400)).map_err(|e| failed("window", &e))?,
    )
    .prefix("bench-day")
    .build(pool.clone())
    .map_err(|e| failed("limiter", &e))?;
    let minute = RedisLimiter::builder(
        SlidingWindow::per_minute(100_000).map_err(|e| failed("window", &e))?,
    )
    .prefix("bench-min")
    .build(pool.clone())
    .map_err(|e| failed("limiter", &e))?;
    // One probe first: a call that fails would time an error, not a check.
    let probe = pool
        .check_all([
            per_second
                .limit("probe", 1)
                .map_err(|e| failed("limit", &e))?,
            daily.limit("probe", 1).map_err(|e| failed("limit", &e))?,
            minute.limit("probe", 1).map_err(|e| failed("limit", &e))?,
        ])
        .map_err(|e| failed("check_all", &e))?;
    if !probe.allowed() {
        return Err("check_all: the probe request was denied".to_owned());
    }
    let mut out = Vec::new();
    let mut case = |n: usize, f: &(dyn Fn(&str) + Sync)| {
        let (mut r, p50) = row(
            &format!("redis/check_all_{n}_limits"),
            "ratelimit-redis",
            1,
            1,
            time_case(1, duration, 1, &|_, i| f(&keys[i as usize % keys.len()])),
        );
        r.note = Some(match single_us {
            Some(s) => format!(
                "p50 {:.1} us = {:.2} x single check p50",
                p50 / 1000.0,
                p50 / 1000.0 / s
            ),
            None => format!("p50 {:.1} us", p50 / 1000.0),
        });
        out.push(r);
    };
    case(2, &|k| {
        if let (Ok(a), Ok(b)) = (per_second.limit(k, 1), daily.limit(k, 1)) {
            let _ = pool.check_all([a, b]);
        }
    });
    case(3, &|k| {
        if let (Ok(a), Ok(b), Ok(c)) = (
            per_second.limit(k, 1),
            daily.limit(k, 1),
            minute.limit(k, 1),
        ) {
            let _ = pool.check_all([a, b, c]);
        }
    });
    Ok(out)
}
