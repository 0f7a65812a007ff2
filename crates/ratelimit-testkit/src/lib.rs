//! Test support shared by the workspace's tests and benchmarks: real
//! `redis-server` processes they own (free ports never 6379, temporary
//! directories, no persistence, killed on drop; they can be killed, paused,
//! resumed and restarted) and a three-master Redis Cluster. Never a Redis
//! that already runs on the machine.

#![allow(clippy::std_instead_of_core)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A `redis-server` started by a test, killed and its directory removed on
/// drop.
pub struct RedisServer {
    child: Option<Child>,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    password: Option<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How many ports a start tries before it gives up.
pub const START_ATTEMPTS: u32 = 8;

/// Why one start attempt failed.
enum Start {
    /// The port was taken between its choice and the bind: try another.
    PortTaken(String),
    /// Anything else: give up.
    Failed(String),
}

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
    ///
    /// # Panics
    /// When `redis-server` is missing or does not start: a test that needs
    /// Redis fails rather than skips.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (`["--maxmemory", "1mb"]`).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::try_start_with(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A plain server, or why none could be started (for callers that
    /// report a skip, like the benchmarks).
    pub fn try_start() -> Result<Self, String> {
        Self::try_start_with(&[])
    }

    /// [`start_with`](Self::start_with), or why no server could be started.
    ///
    /// The free port is chosen before `redis-server` binds it, so another
    /// process can take it in between: then this server exits (it cannot
    /// bind), or the port answers with someone else's server (its
    /// `process_id` is not ours). Either way the start is tried again on
    /// another port, up to [`START_ATTEMPTS`] times.
    pub fn try_start_with(extra: &[&str]) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start_once(extra) {
                Ok(server) => return Ok(server),
                Err(Start::PortTaken(why)) => last = why,
                Err(Start::Failed(why)) => return Err(why),
            }
        }
        Err(format!(
            "redis-server found no free port in {START_ATTEMPTS} attempts: {last}"
        ))
    }

    fn try_start_once(extra: &[&str]) -> Result<Self, Start> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "ratelimit-redis-test-{}-{}-{port}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Start::Failed(format!("{}: {e}", dir.display())))?;
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
        // On an error the half-started server is dropped: killed, its
        // directory removed.
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), Start> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Start::Failed(format!(
                    "cannot start redis-server (apt-get install redis-server): {e}"
                ))
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the port answers with this server's own `process_id`,
    /// or the server has exited (it could not bind: the port was taken).
    fn wait_ready(&mut self) -> Result<(), Start> {
        let pid = self.child.as_ref().map_or(0, Child::id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(Start::PortTaken(format!(
                        "redis-server on {} exited at start ({status})",
                        self.port
                    )));
                }
            }
            // Another process's server may answer: then ours exits soon.
            if self.answering_pid() == Some(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Start::Failed(format!(
                    "redis-server on {} did not start within 10 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `process_id` of the server answering on the port, if one does.
    fn answering_pid(&self) -> Option<u32> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let mut request = Vec::new();
        if let Some(p) = &self.password {
            request.extend_from_slice(
                format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()).as_bytes(),
            );
        }
        request.extend_from_slice(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
        s.write_all(&request).ok()?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if text.contains("-ERR") || text.contains("-WRONGPASS") || text.contains("-NOAUTH") {
                return None;
            }
            if let Some(at) = text.find("process_id:") {
                let rest = &text[at + "process_id:".len()..];
                if let Some(end) = rest.find("\r\n") {
                    return rest[..end].trim().parse().ok();
                }
            }
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
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(Start::PortTaken(why) | Start::Failed(why)) = self.spawn() {
            panic!("restart on the same port: {why}");
        }
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
    /// The three masters.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and joins them with `redis-cli --cluster create`.
    ///
    /// # Panics
    /// When a node or the cluster does not come up.
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

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node that serves `redis_key`, by `CLUSTER KEYSLOT` and `CLUSTER NODES`.
    ///
    /// # Panics
    /// When the cluster's answers cannot be read.
    pub fn node_of(&self, redis_key: &str) -> usize {
        self.node_of_offline(redis_key, usize::MAX)
    }

    /// `node_of`, asking a node other than `dead`.
    ///
    /// # Panics
    /// As [`node_of`](Self::node_of).
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
