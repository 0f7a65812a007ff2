//! The Redis-at-scale rows (issue "Redis at scale"), on a `redis-server`
//! of their own (a free local port, killed at the end):
//!
//! - `redis/server_cpu`: the server's CPU per check (`INFO cpu`,
//!   `used_cpu_user + used_cpu_sys`, before and after, divided by the
//!   checks), for our `check` through the pool on each way the scripts
//!   run (Redis 7 functions, `FCALL`; and `EVALSHA`) and for a plain float
//!   GCRA script (`TIME`, `GET`, `SET PX`, microseconds; written here, the
//!   yardstick of the issue) driven the same way in the same run: the same
//!   threads, keys and quota. The note gives the command's own time per
//!   call from `INFO commandstats`. Target: ours ≤ 1.00 × plain, on each
//!   path.
//! - `redis/server_cpu_batch`: the same for `check_batch` of 100 keys,
//!   per check, on each path. Target: ≥ 300 k checks/s per Redis core.
//! - `redis/denied_flood`: one hot key flooded at 50 k checks/s (paced)
//!   for the sample time, a quota of 100 per second: Redis script calls
//!   per check with the denied-key cache and without it (`INFO
//!   commandstats`), and the share of calls saved.
//!
//! - `redis/async_coalesce`: the async limiter on one connection and one
//!   thread, 1 task, 64 tasks, and 64 tasks with coalescing: checks/s and
//!   the server's CPU per check (targets: coalesced ≥ 5 × one task's
//!   checks/s, ≤ 0.5 × the plain script's CPU per check).
//!
//! Without `redis-server` on PATH the rows are skipped with that reason.

use core::time::Duration;
use std::sync::Mutex;
use std::time::Instant;

use ratelimit_core::{Quota, Rate, TokenBucket};
use ratelimit_redis::{RedisLimiter, RedisPool, ServerScripts, TokenBucketRedis};
use ratelimit_testkit::RedisServer;

use crate::measure::Settings;
use crate::report::{Row, Target};

/// The plain float GCRA the issue compares against: the state is the
/// theoretical arrival time in microseconds as a float string.
/// KEYS[1] the key; ARGV: interval (µs per unit), burst tolerance (µs),
/// cost. Returns {allowed, retry_after_us}.
const PLAIN_GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// Threads driving the server in the CPU rows (the machine has 2 cores,
/// one of them the server's).
const THREADS: usize = 2;

/// The implementation name of the coalesced row.
const COALESCED: &str = "ratelimit-redis (async, 64 tasks, coalesced)";

/// The implementation names of the CPU rows.
const FCALL: &str = "ratelimit-redis (FCALL)";
const EVALSHA: &str = "ratelimit-redis (EVALSHA)";
const PLAIN: &str = "plain float GCRA script";

/// The flood's pace and quota.
const FLOOD_PER_S: u64 = 50_000;
const FLOOD_QUOTA_PER_S: u64 = 100;

fn failed(what: &str, e: &dyn core::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// The server's CPU seconds so far (user + system).
fn server_cpu(server: &RedisServer) -> f64 {
    let info = server.cli(&["info", "cpu"]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    field("used_cpu_user:") + field("used_cpu_sys:")
}

/// `INFO commandstats` of one command: (calls, usec), both cumulative.
fn command_stats(server: &RedisServer, command: &str) -> (u64, u64) {
    let info = server.cli(&["info", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find_map(|l| l.strip_prefix(prefix.as_str())) else {
        return (0, 0);
    };
    let mut calls = 0;
    let mut usec = 0;
    for kv in line.trim().split(',') {
        match kv.split_once('=') {
            Some(("calls", v)) => calls = v.parse().unwrap_or(0),
            Some(("usec", v)) => usec = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    (calls, usec)
}

/// What one CPU case measured, summed over its rounds.
#[derive(Default)]
struct Cpu {
    checks: u64,
    wall: Duration,
    cpu_ns_per_check: f64,
    /// Server CPU seconds over every round.
    cpu_s: f64,
    /// The command's own time (`INFO commandstats`) and calls, over
    /// every round.
    command_usec: u64,
    command_calls: u64,
    /// `usec_per_call` of the command the case sends.
    command_us: f64,
}

/// One case of the CPU rows: the command it sends (`fcall`, `evalsha`),
/// the checks per call, and the call `op(thread, i)`.
struct Case<'a> {
    command: &'a str,
    per_call: u64,
    op: &'a (dyn Fn(usize, u64) + Sync),
}

/// How many interleaved rounds the CPU cases run: the machine's load
/// drifts (other processes), and interleaving spreads it over every case
/// alike instead of charging it to whichever case ran during it.
const CPU_ROUNDS: u32 = 5;

/// Runs each case for `duration` in all, in `CPU_ROUNDS` interleaved
/// rounds: each round runs each case's `op(thread, i)` on `THREADS`
/// threads for `duration / CPU_ROUNDS`, reading the server's CPU and the
/// command's stats before and after.
fn cpu_cases(server: &RedisServer, duration: Duration, cases: &[Case<'_>]) -> Vec<Cpu> {
    // Warm every thread's connection and the script cache or library.
    for case in cases {
        for t in 0..THREADS {
            (case.op)(t, 0);
        }
    }
    let slice = duration / CPU_ROUNDS;
    let mut out: Vec<Cpu> = cases.iter().map(|_| Cpu::default()).collect();
    for _ in 0..CPU_ROUNDS {
        for (case, sum) in cases.iter().zip(&mut out) {
            let (calls0, usec0) = command_stats(server, case.command);
            let before = server_cpu(server);
            let start = Instant::now();
            let op = case.op;
            let calls: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        s.spawn(move || {
                            let mut i = 0;
                            while start.elapsed() < slice {
                                op(t, i);
                                i += 1;
                            }
                            i
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            sum.wall += start.elapsed();
            sum.cpu_s += server_cpu(server) - before;
            let (calls1, usec1) = command_stats(server, case.command);
            sum.command_calls += calls1.saturating_sub(calls0);
            sum.command_usec += usec1.saturating_sub(usec0);
            sum.checks += calls * case.per_call;
        }
    }
    for c in &mut out {
        c.cpu_ns_per_check = c.cpu_s * 1e9 / c.checks.max(1) as f64;
        c.command_us = c.command_usec as f64 / c.command_calls.max(1) as f64;
    }
    out
}

fn cpu_row(shape: &str, implementation: &str, per_call: u64, c: &Cpu, note: String) -> Row {
    let client_ns = c.wall.as_nanos() as f64 * THREADS as f64 / c.checks.max(1) as f64;
    Row {
        shape: shape.to_owned(),
        implementation: implementation.to_owned(),
        threads: THREADS,
        keys: 100,
        mean_ns: client_ns,
        p99_ns: f64::NAN,
        ops_per_s: c.checks as f64 / c.wall.as_secs_f64(),
        batch: per_call,
        vs_governor: None,
        note: Some(note),
    }
}

/// The rows, or why there are none.
///
/// # Errors
/// The reason the rows are skipped (printed under SKIPPED).
pub fn rows(settings: &Settings) -> Result<Vec<Row>, String> {
    if !on_path("redis-server") {
        return Err("redis-server not on PATH (install: apt-get install redis-server)".to_owned());
    }
    let server = RedisServer::try_start()?;
    let url = server.url();
    let duration = (settings.sample * u32::try_from(settings.rounds).unwrap_or(1))
        .max(Duration::from_millis(300));
    let pool_of = |scripts| {
        RedisPool::builder(&url)
            .max_connections(THREADS as u32 * 2)
            .server_scripts(scripts)
            .build()
            .map_err(|e| failed("pool", &e))
    };
    let pool = pool_of(ServerScripts::Functions)?;
    let eval_pool = pool_of(ServerScripts::Eval)?;
    // Never empty during the run, so every check does the same work.
    let quota =
        Quota::new(1 << 20, Rate::per_second(1_000_000)).map_err(|e| failed("quota", &e))?;
    let limiter_on = |pool: &RedisPool, prefix: &str| -> Result<TokenBucketRedis, String> {
        RedisLimiter::builder(TokenBucket::new(quota))
            .prefix(prefix)
            .build(pool.clone())
            .map_err(|e| failed("limiter", &e))
    };
    let limiter = limiter_on(&pool, "scale")?;
    let eval_limiter = limiter_on(&eval_pool, "scale-eval")?;
    let keys: Vec<String> = (0..100).map(|i| format!("user{i}")).collect();
    let client = redis::Client::open(url.as_str()).map_err(|e| failed("client", &e))?;
    let conns: Vec<Mutex<redis::Connection>> = (0..THREADS)
        .map(|_| client.get_connection().map(Mutex::new))
        .collect::<Result<_, _>>()
        .map_err(|e| failed("connection", &e))?;
    let plain = redis::Script::new(PLAIN_GCRA);
    // The same quota in the plain script's units: 1 µs per unit, a burst
    // of 2^20 units.
    let (interval_us, tolerance_us) = (1.0_f64, f64::from(1u32 << 20));

    let mut out = Vec::new();
    let fcall_op = |t: usize, i: u64| {
        let _ = limiter.check(&keys[(t * 50 + i as usize) % 100]);
    };
    let eval_op = |t: usize, i: u64| {
        let _ = eval_limiter.check(&keys[(t * 50 + i as usize) % 100]);
    };
    let plain_op = |t: usize, i: u64| {
        let mut con = conns[t]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _: Result<redis::Value, _> = plain
            .key(format!("plain|{}", keys[(t * 50 + i as usize) % 100]))
            .arg(interval_us)
            .arg(tolerance_us)
            .arg(1)
            .invoke(&mut *con);
    };
    let batch: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let fcall_batch = |_: usize, _: u64| {
        let _ = limiter.check_batch(&batch);
    };
    let eval_batch = |_: usize, _: u64| {
        let _ = eval_limiter.check_batch(&batch);
    };
    let case = |command, per_call, op| Case {
        command,
        per_call,
        op,
    };
    let measured = cpu_cases(
        &server,
        duration,
        &[
            case("fcall", 1, &fcall_op),
            case("evalsha", 1, &eval_op),
            case("evalsha", 1, &plain_op),
            case("fcall", 100, &fcall_batch),
            case("evalsha", 100, &eval_batch),
        ],
    );
    let [ours, ours_eval, base, fcall_batched, eval_batched] = measured.as_slice() else {
        return Err("the CPU cases did not all run".to_owned());
    };
    for (implementation, command, c) in [(FCALL, "FCALL", ours), (EVALSHA, "EVALSHA", ours_eval)] {
        out.push(cpu_row(
            "redis/server_cpu",
            implementation,
            1,
            c,
            format!(
                "server CPU {:.2} us/check = {:.2} x plain; {command} {:.2} us/call",
                c.cpu_ns_per_check / 1000.0,
                c.cpu_ns_per_check / base.cpu_ns_per_check,
                c.command_us
            ),
        ));
    }
    out.push(cpu_row(
        "redis/server_cpu",
        PLAIN,
        1,
        base,
        format!(
            "server CPU {:.2} us/check; EVALSHA {:.2} us/call",
            base.cpu_ns_per_check / 1000.0,
            base.command_us
        ),
    ));
    for (implementation, c) in [(FCALL, fcall_batched), (EVALSHA, eval_batched)] {
        out.push(cpu_row(
            "redis/server_cpu_batch",
            implementation,
            100,
            c,
            format!(
                "server CPU {:.3} us/check = {:.0} k checks/s per Redis core; {:.2} x plain single",
                c.cpu_ns_per_check / 1000.0,
                1e6 / c.cpu_ns_per_check,
                c.cpu_ns_per_check / base.cpu_ns_per_check
            ),
        ));
    }
    for cache in [false, true] {
        out.push(flood(&server, &pool, duration, cache)?);
    }
    out.extend(coalesce_rows(
        &server,
        &url,
        duration,
        &keys,
        base.cpu_ns_per_check,
    )?);
    drop(server);
    Ok(out)
}

/// One hot key checked at `FLOOD_PER_S` (paced) for `duration`: Redis
/// script calls per check with or without the denied-key cache.
fn flood(
    server: &RedisServer,
    pool: &RedisPool,
    duration: Duration,
    cache: bool,
) -> Result<Row, String> {
    let quota = Quota::new(FLOOD_QUOTA_PER_S, Rate::per_second(FLOOD_QUOTA_PER_S))
        .map_err(|e| failed("quota", &e))?;
    let limiter: TokenBucketRedis = RedisLimiter::builder(TokenBucket::new(quota))
        .prefix(if cache { "flood-cache" } else { "flood" })
        .cache_denials(if cache { 1024 } else { 0 })
        .build(pool.clone())
        .map_err(|e| failed("limiter", &e))?;
    let _ = limiter.check("warm");
    let script_calls = || command_stats(server, "evalsha").0 + command_stats(server, "fcall").0;
    let calls_before = script_calls();
    let gap = Duration::from_nanos(1_000_000_000 / FLOOD_PER_S);
    let start = Instant::now();
    let (mut checks, mut allowed) = (0u64, 0u64);
    let mut next = start;
    while start.elapsed() < duration {
        while Instant::now() < next {
            core::hint::spin_loop();
        }
        next += gap;
        if limiter.check("hot").is_ok_and(|d| d.allowed) {
            allowed += 1;
        }
        checks += 1;
    }
    let wall = start.elapsed();
    let calls_after = script_calls();
    let calls = calls_after.saturating_sub(calls_before);
    let saved = 1.0 - calls as f64 / checks.max(1) as f64;
    Ok(Row {
        shape: "redis/denied_flood".to_owned(),
        implementation: if cache {
            "ratelimit-redis (denied-key cache)".to_owned()
        } else {
            "ratelimit-redis (no cache)".to_owned()
        },
        threads: 1,
        keys: 1,
        mean_ns: wall.as_nanos() as f64 / checks.max(1) as f64,
        p99_ns: f64::NAN,
        ops_per_s: checks as f64 / wall.as_secs_f64(),
        batch: 1,
        vs_governor: None,
        note: Some(format!(
            "{calls} Redis calls for {checks} checks ({allowed} allowed): {:.1}% saved; \
             paced at {} k/s, quota {FLOOD_QUOTA_PER_S}/s",
            saved * 100.0,
            FLOOD_PER_S / 1000
        )),
    })
}

/// `redis/async_coalesce`: 1 task, 64 tasks, and 64 tasks with
/// coalescing, on one `AsyncRedisConnection` and a current-thread runtime:
/// checks/s and the server's CPU per check.
fn coalesce_rows(
    server: &RedisServer,
    url: &str,
    duration: Duration,
    keys: &[String],
    plain_cpu_ns: f64,
) -> Result<Vec<Row>, String> {
    use ratelimit_redis::{AsyncRedisConnection, AsyncRedisLimiter};
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("tokio runtime", &e))?;
    let quota =
        Quota::new(1 << 20, Rate::per_second(1_000_000)).map_err(|e| failed("quota", &e))?;
    let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
    let mut out = Vec::new();
    let mut single = None;
    for (tasks, coalesce) in [(1usize, false), (64, false), (64, true)] {
        let (checks, wall, cpu_ns) = rt.block_on(async {
            let conn = AsyncRedisConnection::open(url)
                .await
                .map_err(|e| failed("async connection", &e))?;
            let limiter = AsyncRedisLimiter::builder(TokenBucket::new(quota))
                .prefix(format!("scale-async-{tasks}-{coalesce}"))
                .coalesce(coalesce)
                .build(conn)
                .map_err(|e| failed("async limiter", &e))?;
            let _ = limiter.check("warm").await;
            let before = server_cpu(server);
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let limiter = limiter.clone();
                    let keys = Arc::clone(&keys);
                    tokio::spawn(async move {
                        let mut i = t;
                        let mut n = 0u64;
                        while start.elapsed() < duration {
                            let _ = limiter.check(&keys[i % 100]).await;
                            i += 1;
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut checks = 0;
            for h in handles {
                checks += h.await.unwrap_or(0);
            }
            let wall = start.elapsed();
            let cpu_ns = (server_cpu(server) - before) * 1e9 / checks.max(1) as f64;
            Ok::<_, String>((checks, wall, cpu_ns))
        })?;
        let ops = checks as f64 / wall.as_secs_f64();
        let base = *single.get_or_insert(ops);
        out.push(Row {
            shape: "redis/async_coalesce".to_owned(),
            implementation: match (tasks, coalesce) {
                (_, true) => COALESCED.to_owned(),
                (1, false) => "ratelimit-redis (async, 1 task)".to_owned(),
                _ => format!("ratelimit-redis (async, {tasks} tasks)"),
            },
            threads: tasks,
            keys: 100,
            mean_ns: wall.as_nanos() as f64 / checks.max(1) as f64,
            p99_ns: f64::NAN,
            ops_per_s: ops,
            batch: 1,
            vs_governor: None,
            note: Some(format!(
                "server CPU {:.2} us/check = {:.2} x plain; {:.2} x 1 task; {tasks} task(s), 1 connection, 1 thread",
                cpu_ns / 1000.0,
                cpu_ns / plain_cpu_ns,
                ops / base
            )),
        });
    }
    Ok(out)
}

/// The issue's goals, read off the rows.
#[must_use]
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let find = |shape: &str, implementation: &str| {
        rows.iter()
            .find(|r| r.shape == shape && r.implementation == implementation)
    };
    if find("redis/server_cpu", FCALL).is_none() {
        return Vec::new();
    }
    let cpu = |r: &Row| {
        r.note
            .as_deref()
            .and_then(|n| n.strip_prefix("server CPU "))
            .and_then(|n| n.split_once(' '))
            .and_then(|(v, _)| v.parse::<f64>().ok())
    };
    let plain = find("redis/server_cpu", PLAIN).and_then(cpu);
    let vs_plain_of = |implementation: &str| {
        find("redis/server_cpu", implementation)
            .and_then(cpu)
            .zip(plain)
            .map(|(o, p)| o / p)
    };
    let batch_of = |implementation: &str| {
        find("redis/server_cpu_batch", implementation)
            .and_then(cpu)
            .map(|us| 1e6 / us)
    };
    let saved = |implementation: &str| {
        find("redis/denied_flood", implementation)
            .and_then(|r| r.note.as_deref())
            .and_then(|n| n.split_once("): "))
            .and_then(|(_, rest)| rest.split_once('%'))
            .and_then(|(v, _)| v.parse::<f64>().ok())
    };
    let coalesced = find("redis/async_coalesce", COALESCED);
    let ratio_after = |r: &Row, marker: &str| {
        r.note
            .as_deref()
            .and_then(|n| n.split(marker).next())
            .and_then(|n| n.rsplit(' ').find(|w| !w.is_empty()))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let speedup = coalesced.and_then(|r| ratio_after(r, " x 1 task"));
    let vs_plain = coalesced.and_then(|r| ratio_after(r, " x plain"));
    let mut targets = vec![
        Target {
            name: "coalesced, 64 tasks on one connection: checks/s vs 1 task".to_owned(),
            value: speedup,
            bound: ">= 5.00".to_owned(),
            met: speedup.map(|v| v >= 5.0),
        },
        Target {
            name: "coalesced, 64 tasks: server CPU per check vs plain script".to_owned(),
            value: vs_plain,
            bound: "<= 0.50".to_owned(),
            met: vs_plain.map(|v| v <= 0.5),
        },
    ];
    for (path, implementation) in [("FCALL", FCALL), ("EVALSHA", EVALSHA)] {
        let value = vs_plain_of(implementation);
        targets.push(Target {
            name: format!("Redis server CPU per check vs a plain float GCRA script ({path})"),
            value,
            bound: "<= 1.00".to_owned(),
            met: value.map(|v| v <= 1.0),
        });
        let batch = batch_of(implementation);
        targets.push(Target {
            name: format!("batch of 100: checks/s per Redis core, server CPU ({path})"),
            value: batch,
            bound: ">= 300000".to_owned(),
            met: batch.map(|v| v >= 300_000.0),
        });
    }
    targets.push(Target {
        name: "hot-key flood: % of Redis calls saved by the denied-key cache".to_owned(),
        value: saved("ratelimit-redis (denied-key cache)"),
        bound: "> 90".to_owned(),
        met: saved("ratelimit-redis (denied-key cache)").map(|v| v > 90.0),
    });
    targets
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
