//! Test support: real `redis-server` processes owned by the tests (free
//! ports, temporary directories, no persistence, killed on drop), a
//! three-master cluster, and the replay adapter for the conformance
//! scenarios. A missing `redis-server` fails the tests: CI installs it.

#![allow(dead_code, unreachable_pub, clippy::std_instead_of_core)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ratelimit_core::{Algorithm, Decision, InsufficientCapacity, Reservation};
use ratelimit_core::{AlgorithmKind, LeakyBucket, TokenBucket};
use ratelimit_redis::{
    AsyncRedisConnection, AsyncRedisLimiter, RedisLimitError, RedisLimiter, RedisLimiterBuilder,
    RedisPool, TimeSource,
};
use ratelimit_replay::{Mismatch, Scenario, run_scenario};

/// A `redis-server` started by a test, killed and its directory removed on
/// drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    password: Option<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A port that is free now, as is `port + 10000` (the cluster bus), and is
/// never 6379.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().unwrap().port();
        if port == 6379 || port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (`["--maxmemory", "1mb"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "ratelimit-redis-test-{}-{}-{port}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let password = extra
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_owned());
        let mut server = Self {
            child: None,
            port,
            dir,
            args: extra.iter().map(|s| (*s).to_owned()).collect(),
            password,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for the Redis tests (apt-get install redis-server)",
            );
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = s.read(&mut buf) {
                        let reply = String::from_utf8_lossy(&buf[..n]);
                        // NOAUTH: up, with a password.
                        if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
                            return;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/` (with the password, if any).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Kills the server (SIGKILL): no goodbye to clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Unfreezes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["--no-auth-warning", "-a", p]);
        }
        let out = cmd.args(args).output().expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters, no replicas, slots spread by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // A dead node must not take the other slots down.
                    "--cluster-require-full-coverage",
                    "no",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node that serves `redis_key`, by `CLUSTER KEYSLOT` and `CLUSTER NODES`.
    pub fn node_of(&self, redis_key: &str) -> usize {
        self.node_of_offline(redis_key, usize::MAX)
    }

    /// `node_of`, asking a node other than `dead`.
    pub fn node_of_offline(&self, redis_key: &str, dead: usize) -> usize {
        let ask = &self.nodes[if dead == 0 { 1 } else { 0 }];
        let slot: u16 = ask
            .cli(&["cluster", "keyslot", redis_key])
            .trim()
            .parse()
            .unwrap();
        let nodes = ask.cli(&["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            for range in fields.iter().skip(8).filter(|r| !r.starts_with('[')) {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if (lo.parse::<u16>().unwrap()..=hi.parse::<u16>().unwrap()).contains(&slot) {
                    return self.nodes.iter().position(|n| n.port == port).unwrap();
                }
            }
        }
        panic!("slot {slot} has no node");
    }
}

/// The calls the shared test bodies make, on either limiter: the sync one
/// directly, the async one through `Blocking` (each call `block_on` a
/// tokio runtime), so one body tests both.
pub trait Limit {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError>;
    fn check(&self, key: &str) -> Result<Decision, RedisLimitError> {
        self.check_n(key, 1)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError>;
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError>;
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError>;
    fn policy_failures(&self) -> u64;
}

impl<A: Algorithm> Limit for RedisLimiter<A> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        RedisLimiter::check_n(self, key, cost)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        RedisLimiter::check_at(self, key, cost, now_ns)
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        RedisLimiter::reserve_at(self, key, cost, max_wait_ns, now_ns)
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        RedisLimiter::check_batch_at(self, requests, now_ns)
    }
    fn policy_failures(&self) -> u64 {
        RedisLimiter::policy_failures(self)
    }
}

impl<L: Limit + ?Sized> Limit for Box<L> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        (**self).check_n(key, cost)
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        (**self).check_at(key, cost, now_ns)
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        (**self).reserve_at(key, cost, max_wait_ns, now_ns)
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        (**self).check_batch_at(requests, now_ns)
    }
    fn policy_failures(&self) -> u64 {
        (**self).policy_failures()
    }
}

/// A tokio runtime for the async limiter's tests driven from plain test
/// code (one worker thread runs the connection's tasks).
pub fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    )
}

/// The async limiter, each call run to completion on `rt`.
pub struct Blocking<A> {
    pub limiter: AsyncRedisLimiter<A>,
    pub rt: Arc<tokio::runtime::Runtime>,
}

impl<A: Algorithm> Limit for Blocking<A> {
    fn check_n(&self, key: &str, cost: u64) -> Result<Decision, RedisLimitError> {
        self.rt.block_on(self.limiter.check_n(key, cost))
    }
    fn check_at(&self, key: &str, cost: u64, now_ns: u64) -> Result<Decision, RedisLimitError> {
        self.rt.block_on(self.limiter.check_at(key, cost, now_ns))
    }
    fn reserve_at(
        &self,
        key: &str,
        cost: u64,
        max_wait_ns: Option<u64>,
        now_ns: u64,
    ) -> Result<Reservation, RedisLimitError> {
        self.rt
            .block_on(self.limiter.reserve_at(key, cost, max_wait_ns, now_ns))
    }
    fn check_batch_at(
        &self,
        requests: &[(&str, u64)],
        now_ns: u64,
    ) -> Result<Vec<Result<Decision, InsufficientCapacity>>, RedisLimitError> {
        self.rt
            .block_on(self.limiter.check_batch_at(requests, now_ns))
    }
    fn policy_failures(&self) -> u64 {
        self.limiter.policy_failures()
    }
}

/// A limiter driven with explicit (client) time, for the replay runner.
pub struct ReplayAdapter<L>(pub L);

fn split<T>(
    r: Result<T, RedisLimitError>,
) -> Result<Result<T, InsufficientCapacity>, RedisLimitError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(RedisLimitError::InsufficientCapacity(e)) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

impl<L: Limit> ratelimit_replay::Backend for ReplayAdapter<L> {
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

/// Builds the limiter a scenario runs on, from its options.
pub trait Factory {
    fn limit<A: Algorithm>(&self, builder: RedisLimiterBuilder<A>) -> Box<dyn Limit>;
}

impl Factory for RedisPool {
    fn limit<A: Algorithm>(&self, builder: RedisLimiterBuilder<A>) -> Box<dyn Limit> {
        Box::new(builder.build(self.clone()).unwrap())
    }
}

/// The async limiter on one shared connection.
pub struct AsyncFactory {
    pub conn: AsyncRedisConnection,
    pub rt: Arc<tokio::runtime::Runtime>,
}

impl AsyncFactory {
    pub fn open(url: &str) -> Self {
        let rt = runtime();
        let conn = rt.block_on(AsyncRedisConnection::open(url)).unwrap();
        Self { conn, rt }
    }
}

impl Factory for AsyncFactory {
    fn limit<A: Algorithm>(&self, builder: RedisLimiterBuilder<A>) -> Box<dyn Limit> {
        Box::new(Blocking {
            limiter: builder.build_async(self.conn.clone()).unwrap(),
            rt: Arc::clone(&self.rt),
        })
    }
}

/// Runs one conformance scenario of `file` on the limiters `factory`
/// builds, with client time and a prefix of its own.
pub fn run_one_on<F: Factory>(factory: &F, file: &str, s: &Scenario) -> Result<(), Box<Mismatch>> {
    // Replays keep state however long virtual time stands still.
    let time = TimeSource::Client {
        ttl_margin: Duration::from_secs(3600),
    };
    let quota = s.quota().expect("scenario quota is valid");
    let prefix = format!("parity:{file}:{}", s.id);
    let limiter = match s.kind() {
        AlgorithmKind::TokenBucket => factory.limit(
            RedisLimiter::builder(TokenBucket::new(quota))
                .prefix(prefix)
                .time_source(time),
        ),
        AlgorithmKind::LeakyBucket => factory.limit(
            RedisLimiter::builder(LeakyBucket::new(quota))
                .prefix(prefix)
                .time_source(time),
        ),
    };
    run_scenario(s, &mut ReplayAdapter(limiter))
}
