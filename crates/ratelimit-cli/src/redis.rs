//! The Redis side of the command: `replay --backend redis` (client time
//! from the events) and `inspect`, an operator's view of one key.

use core::time::Duration;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use ratelimit_core::{
    AlgorithmKind, Decision, InsufficientCapacity, LeakyBucket, Quota, Rate, Reservation, Shaping,
    TokenBucket,
};
use ratelimit_redis::{RedisLimitError, RedisLimiter, RedisPool, TimeSource};
use ratelimit_replay::Backend;

use crate::args::ReplayArgs;

/// Added to every key's TTL during a replay: virtual time may stand still
/// while real time passes, and a replay must not lose state early. A replay
/// that runs for more than this much real time could.
const REPLAY_TTL_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// A Redis limiter driven with the events' times.
struct Redis<A: Shaping>(RedisLimiter<A>);

fn split<T>(
    r: Result<T, RedisLimitError>,
) -> Result<Result<T, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

impl<A: Shaping> Backend for Redis<A> {
    type Error = RedisLimitError;

    fn check(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
    ) -> Result<Result<Decision, InsufficientCapacity>, RedisLimitError> {
        split(self.0.check_at(key, cost, now_ns))
    }

    fn reserve(
        &mut self,
        key: &str,
        now_ns: u64,
        cost: u64,
        max_wait_ns: Option<u64>,
    ) -> Result<Result<Reservation, InsufficientCapacity>, RedisLimitError> {
        split(self.0.reserve_at(key, cost, max_wait_ns, now_ns))
    }
}

/// A fresh namespace per replay unless one is given, so that the same
/// input gives the same output as the memory backend, run after run.
fn replay_prefix(given: Option<&str>) -> String {
    given.map_or_else(
        || {
            let ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("ratelimit-replay:{}-{ns}", std::process::id())
        },
        str::to_owned,
    )
}

fn limiter<A: Shaping>(algorithm: A, url: &str, prefix: &str) -> Result<RedisLimiter<A>, String> {
    let pool = RedisPool::open(url).map_err(|e| e.to_string())?;
    RedisLimiter::builder(algorithm)
        .prefix(prefix)
        .time_source(TimeSource::Client {
            ttl_margin: REPLAY_TTL_MARGIN,
        })
        .build(pool)
        .map_err(|e| e.to_string())
}

/// `replay --backend redis`: the events through Redis, with their times.
pub(crate) fn replay(args: &ReplayArgs) -> Result<(), String> {
    let url = args
        .redis_url
        .as_deref()
        .ok_or("--backend redis needs --redis-url")?;
    let prefix = replay_prefix(args.prefix.as_deref());
    match args.algorithm {
        AlgorithmKind::TokenBucket => crate::replay::drive(
            &mut Redis(limiter(TokenBucket::new(args.quota), url, &prefix)?),
            args.summary,
        ),
        AlgorithmKind::LeakyBucket => crate::replay::drive(
            &mut Redis(limiter(LeakyBucket::new(args.quota), url, &prefix)?),
            args.summary,
        ),
        kind => Err(format!("{kind} is not available in the CLI yet")),
    }
}

const INSPECT_USAGE: &str = "\
  ratelimit inspect --redis-url URL [--prefix P]
                    [--algorithm token-bucket|leaky-bucket --capacity C --rate R] KEY

  Prints one key's state as one JSON line: the stored tat, the server's
  time, the TTL, the time until reset and, given the limit, the tokens
  (token bucket) or level (leaky bucket) now, on the server's clock.
";

/// `ratelimit inspect ...`.
pub(crate) fn inspect(argv: &[String]) -> ExitCode {
    match inspect_text(argv) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}\n\nusage:\n{INSPECT_USAGE}");
            ExitCode::from(2)
        }
    }
}

fn inspect_text(argv: &[String]) -> Result<String, String> {
    let (mut url, mut prefix, mut algorithm, mut capacity, mut rate, mut key) =
        (None, None, None, None, None, None);
    let mut rest = argv.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--redis-url" => url = Some(value()?),
            "--prefix" => prefix = Some(value()?),
            "--algorithm" => algorithm = Some(value()?),
            "--capacity" => {
                let text = value()?;
                capacity = Some(
                    text.parse::<u64>()
                        .map_err(|_| format!("--capacity must be a whole number, not {text:?}"))?,
                );
            }
            "--rate" => {
                let text = value()?;
                rate = Some(
                    text.parse::<Rate>()
                        .map_err(|e| format!("--rate {text:?}: {e}"))?,
                );
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag:?}")),
            other if key.is_none() => key = Some(other.to_owned()),
            other => return Err(format!("one KEY only; also got {other:?}")),
        }
    }
    let url = url.ok_or("--redis-url is required")?;
    let key = key.ok_or("KEY is required")?;
    let prefix = prefix.unwrap_or_else(|| "ratelimit".to_owned());
    let limit = match (capacity, rate) {
        (Some(c), Some(r)) => Some(Quota::new(c, r).map_err(|e| format!("invalid limit: {e}"))?),
        (None, None) => None,
        _ => return Err("--capacity and --rate go together".to_owned()),
    };
    let leaky = match algorithm.as_deref() {
        None | Some("token-bucket") => false,
        Some("leaky-bucket") => true,
        Some(other) => {
            return Err(format!(
                "--algorithm must be token-bucket or leaky-bucket, not {other:?}"
            ));
        }
    };
    // Without a limit, any quota reads tat, TTL and reset alike.
    let quota = limit
        .map_or_else(|| Quota::new(1, Rate::per_second(1)), Ok)
        .map_err(|e| e.to_string())?;
    let pool = RedisPool::open(&url).map_err(|e| e.to_string())?;
    let limiter = RedisLimiter::builder(TokenBucket::new(quota))
        .prefix(prefix)
        .build(pool)
        .map_err(|e| e.to_string())?;
    let state = limiter.inspect(&key).map_err(|e| e.to_string())?;
    let redis_key = limiter.redis_key(&key).map_err(|e| e.to_string())?;
    let mut line = format!(
        r#"{{"key": {}, "redis_key": {}, "exists": {}, "tat_ns": {}, "server_now_ns": {}, "ttl_ms": {}, "reset_after_ns": {}"#,
        json_string(&key),
        json_string(&String::from_utf8_lossy(&redis_key)),
        state.tat_ns.is_some(),
        state
            .tat_ns
            .map_or_else(|| "null".to_owned(), |t| t.to_string()),
        state.server_now_ns,
        state
            .ttl
            .map_or_else(|| "null".to_owned(), |t| t.as_millis().to_string()),
        state.reset_after.as_nanos(),
    );
    if let Some(q) = limit {
        if leaky {
            line += &format!(r#", "level": {}"#, q.capacity() - state.remaining);
        } else {
            line += &format!(r#", "tokens": {}"#, state.remaining);
        }
    }
    line.push('}');
    Ok(line)
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
