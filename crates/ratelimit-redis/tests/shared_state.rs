//! One state shared by many threads and processes: server time, exactness
//! under concurrency, expiry, odd keys, the batch call.

#![allow(clippy::std_instead_of_core)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratelimit_core::{Quota, Rate, Reason};
use ratelimit_redis::{
    LeakyBucketRedis, RedisLimiter, RedisPool, TimeSource, TokenBucket, TokenBucketRedis,
};
use ratelimit_testkit::RedisServer;
use redis::Commands;

const S: u64 = 1_000_000_000;

/// Runs this test binary again as a second OS process, executing only
/// `child_process` with `mode` and `args` in its environment; returns its
/// `RESULT` line.
fn run_child(mode: &str, url: &str, args: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RL_CHILD_MODE", mode)
        .env("RL_CHILD_URL", url)
        .env("RL_CHILD_ARGS", args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.trim()))
        .unwrap_or_else(|| panic!("child printed no RESULT: {stdout}"))
        .to_owned()
}

/// The second process of the tests below; does nothing when run normally.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("RL_CHILD_MODE") else {
        return;
    };
    let url = std::env::var("RL_CHILD_URL").unwrap();
    let args = std::env::var("RL_CHILD_ARGS").unwrap();
    let pool = RedisPool::open(&url).unwrap();
    match mode.as_str() {
        // Same key, server time: what does this process see?
        "server-time" => {
            let limiter = TokenBucketRedis::new(5, 0.001, pool).unwrap();
            let d = limiter.check("shared").unwrap();
            println!(
                "RESULT {} {}",
                d.allowed,
                d.retry_after.map_or(0, |r| r.as_millis())
            );
        }
        // Same key, client time, this process's clock `args` seconds ahead.
        "skewed-client-time" => {
            let limiter = RedisLimiter::builder(TokenBucket::new(
                Quota::new(5, Rate::from_per_second_f64(0.1)).unwrap(),
            ))
            .prefix("skew")
            .time_source(TimeSource::client())
            .build(pool)
            .unwrap();
            let skew: u64 = args.parse().unwrap();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            let d = limiter.check_at("shared", 1, now + skew * S).unwrap();
            println!("RESULT {}", d.allowed);
        }
        // Hammer one key at a frozen client time; print how many got through.
        "hammer" => {
            let (n, threads, now): (usize, usize, u64) = {
                let v: Vec<u64> = args.split(',').map(|x| x.parse().unwrap()).collect();
                (v[0] as usize, v[1] as usize, v[2])
            };
            let limiter = hammer_limiter(pool);
            println!("RESULT {}", hammer(&limiter, n, threads, now));
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// More than one process's 1600 tries and less than both processes' 3200:
/// whichever process runs first, the other still finds tokens, so both
/// take part in every run, whatever the scheduling.
const HAMMER_CAPACITY: u64 = 2000;

fn hammer_limiter(pool: RedisPool) -> TokenBucketRedis {
    RedisLimiter::builder(TokenBucket::new(
        Quota::new(HAMMER_CAPACITY, Rate::per_hour(1)).unwrap(),
    ))
    .prefix("hammer")
    .build(pool)
    .unwrap()
}

fn hammer(limiter: &TokenBucketRedis, per_thread: usize, threads: usize, now: u64) -> usize {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    (0..per_thread)
                        .filter(|_| limiter.check_at("one-key", 1, now).unwrap().allowed)
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn server_time_makes_skewed_clocks_agree() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    // 5 tokens, one every 1000 s: drain them here...
    let limiter = TokenBucketRedis::new(5, 0.001, pool.clone()).unwrap();
    for _ in 0..5 {
        assert!(limiter.check("shared").unwrap().allowed);
    }
    // ...and another process, whatever its clock, sees them gone: server
    // time does not read the caller's clock at all.
    let child = run_child("server-time", &server.url(), "");
    let mut parts = child.split(' ');
    assert_eq!(parts.next(), Some("false"));
    let retry_ms: u128 = parts.next().unwrap().parse().unwrap();
    // One interval less the time the child took to start: seconds of
    // slack on a loaded machine, where 10 s intervals left one.
    assert!(
        (990_000..=1_000_000).contains(&retry_ms),
        "retry after {retry_ms} ms"
    );

    // The contrast: with client time, a process whose clock runs 60 s ahead
    // sees a refilled bucket.
    let skewed = RedisLimiter::builder(TokenBucket::new(
        Quota::new(5, Rate::from_per_second_f64(0.1)).unwrap(),
    ))
    .prefix("skew")
    .time_source(TimeSource::client())
    .build(pool)
    .unwrap();
    for _ in 0..5 {
        assert!(skewed.check("shared").unwrap().allowed);
    }
    assert!(!skewed.check("shared").unwrap().allowed);
    assert_eq!(run_child("skewed-client-time", &server.url(), "60"), "true");
}

#[test]
fn threads_and_a_second_process_admit_exactly_the_capacity() {
    let server = RedisServer::start();
    let pool = RedisPool::builder(&server.url())
        .max_connections(8)
        .build()
        .unwrap();
    let limiter = hammer_limiter(pool);
    let now = 1_700_000_000 * S;
    let url = server.url();
    // 2 processes × 4 threads × 400 checks = 3200 tries for 2000 tokens,
    // all at the same frozen client time.
    let child = std::thread::spawn(move || run_child("hammer", &url, &format!("400,4,{now}")));
    let here = hammer(&limiter, 400, 4, now);
    let there: usize = child.join().unwrap().parse().unwrap();
    assert!(
        here > 0 && there > 0,
        "both processes took part: {here} + {there}"
    );
    assert_eq!((here + there) as u64, HAMMER_CAPACITY);
    assert!(!limiter.check_at("one-key", 1, now).unwrap().allowed);
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn keys_expire_exactly_at_reset() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut con = raw(&server);
    // Server time: T = 100 ms, two checks put tat 200 ms ahead.
    let limiter = TokenBucketRedis::new(2, 10.0, pool.clone()).unwrap();
    let _ = limiter.check("k").unwrap();
    let d = limiter.check("k").unwrap();
    let key = limiter.redis_key("k").unwrap();
    let tat: u64 = con.get(&key).unwrap();
    let expire_at_ms: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut con).unwrap();
    assert_eq!(
        expire_at_ms as u64,
        tat.div_ceil(1_000_000),
        "expires at tat, rounded up to a ms"
    );
    // At least one interval (this check's own), at most two (if the
    // first one's has not run out yet): true however long the calls took.
    assert!(
        d.reset_after <= Duration::from_millis(200) && d.reset_after >= Duration::from_millis(100)
    );
    std::thread::sleep(Duration::from_millis(250));
    assert!(
        !con.exists::<_, bool>(&key).unwrap(),
        "no garbage left behind"
    );
    // A denied check and a cost of 0 write nothing.
    let state = limiter.check_n("other", 0).unwrap();
    assert!(state.allowed);
    assert!(
        !con.exists::<_, bool>(limiter.redis_key("other").unwrap())
            .unwrap()
    );

    // Client time: TTL = reset_after rounded up to a ms + the margin.
    let client = RedisLimiter::builder(TokenBucket::new(
        Quota::new(2, Rate::per_second(10)).unwrap(),
    ))
    .prefix("client")
    .time_source(TimeSource::Client {
        ttl_margin: Duration::from_secs(5),
    })
    .build(pool)
    .unwrap();
    let _ = client.check_at("k", 2, 1_000 * S + 1).unwrap();
    let pttl: i64 = con.pttl(client.redis_key("k").unwrap()).unwrap();
    assert!((4_000..=5_200).contains(&pttl), "pttl {pttl}");
}

#[test]
fn odd_keys_stay_under_the_prefix_and_apart() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let mut con = raw(&server);
    let limiter =
        RedisLimiter::builder(TokenBucket::new(Quota::new(1, Rate::per_hour(1)).unwrap()))
            .prefix("odd")
            // A 1 MiB key, above the default bound of 256 bytes.
            .max_key_len(1 << 20)
            .build(pool)
            .unwrap();
    let binary: Vec<u8> = (0..=255u8).collect();
    let long = vec![b'x'; 1 << 20];
    let keys: Vec<&[u8]> = vec![
        b"",
        &long,
        &binary,
        b"{user1}:a",
        b"}{:",
        b"a\nb\r\n",
        b"|",
        b"odd|",
        b"x",
        b"x\n",
    ];
    for k in &keys {
        assert!(
            limiter.check(k).unwrap().allowed,
            "first check of {:?}",
            &k[..k.len().min(16)]
        );
    }
    for k in &keys {
        assert!(!limiter.check(k).unwrap().allowed, "keys are apart");
        let stored: Vec<u8> = limiter.redis_key(k).unwrap();
        assert!(stored.starts_with(b"odd|"));
        assert!(con.exists::<_, bool>(&stored).unwrap());
    }
    // Exactly one Redis key per caller key, none outside the namespace.
    let all: Vec<Vec<u8>> = con
        .scan::<Vec<u8>>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), keys.len());
    assert!(all.iter().all(|k| k.starts_with(b"odd|")));
    // Another prefix cannot reach these keys, whatever its key.
    let other = TokenBucketRedis::new(1, 0.001, RedisPool::open(&server.url()).unwrap()).unwrap();
    assert!(other.check("odd|x").unwrap().allowed);
}

#[test]
fn batch_answers_in_order_like_single_checks() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    let limiter = LeakyBucketRedis::new(3, 1.0, pool).unwrap();
    let now = 50 * S;
    let requests = [("a", 1), ("b", 3), ("a", 2), ("a", 1), ("c", 4), ("b", 0)];
    let got = limiter.check_batch_at(&requests, now).unwrap();
    let allowed: Vec<Option<bool>> = got
        .iter()
        .map(|r| r.as_ref().ok().map(|d| d.allowed))
        .collect();
    assert_eq!(
        allowed,
        [
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            None,
            Some(true)
        ]
    );
    assert_eq!(
        got[3].as_ref().unwrap().retry_after,
        Some(Duration::from_secs(1))
    );
    assert_eq!(got[5].as_ref().unwrap().remaining, 0);
    assert!(got.iter().flatten().all(|d| d.reason == Reason::Quota));
    // 100 keys in one call, server time.
    let many: Vec<(String, u64)> = (0..100).map(|i| (format!("k{i}"), 1)).collect();
    let got = limiter.check_batch(&many).unwrap();
    assert!(got.iter().all(|r| r.as_ref().unwrap().allowed));
    let again = limiter.check_batch(&many).unwrap();
    assert!(again.iter().all(|r| r.as_ref().unwrap().allowed));
    assert!(limiter.check("k0").unwrap().allowed);
}

#[test]
fn reserve_and_allow_request_with_server_time() {
    let server = RedisServer::start();
    let pool = RedisPool::open(&server.url()).unwrap();
    // T = 100 s: the calls take far less than T however loaded the
    // machine (at 100 ms, a stall of one interval failed the test).
    let leaky = LeakyBucketRedis::new(3, 0.01, pool.clone()).unwrap();
    let waits: Vec<Duration> = (0..3)
        .map(|_| leaky.reserve("q", 1, None).unwrap().wait().unwrap())
        .collect();
    // Requests that arrive together leave T apart: the k-th waits k × T
    // less the time since the first arrived.
    assert_eq!(waits[0], Duration::ZERO);
    assert!(waits[1] > Duration::ZERO && waits[1] <= Duration::from_secs(100));
    assert!(waits[2] > waits[1] && waits[2] <= Duration::from_secs(200));
    assert!(!leaky.reserve("q", 1, None).unwrap().is_admitted());
    let token = TokenBucketRedis::new(2, 0.01, pool).unwrap();
    let r = token.allow_request("user456").unwrap();
    assert!(r.allowed);
    assert_eq!(r.tokens_remaining, 1);
    assert_eq!(r.limit, 2);
    assert!(matches!(
        token.check_n("user456", 3),
        Err(ratelimit_redis::RedisLimitError::InsufficientCapacity(_))
    ));
    let state = token.inspect("user456").unwrap();
    assert_eq!(state.remaining, 1);
    // PXAT rounds tat up to a ms, PTTL rounds the server clock down.
    assert!(state.ttl.unwrap() <= Duration::from_millis(100_001));
}
