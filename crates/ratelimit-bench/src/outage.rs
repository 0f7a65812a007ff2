//! The outage rows (`redis/outage`): the `api_gateway` example's own
//! binary (ratelimit-tower, built by `cargo xtask bench` next to `compare`)
//! on a private `redis-server`, under a steady closed-loop load; the server
//! is killed mid-run and restarted, once with `--failure-policy fallback`
//! and once with `fail-closed`.
//!
//! Four phases of equal length: normal, outage (server killed), restart
//! (until the new, empty server holds the pro account's key again: Redis
//! decides again), after. The row's mean and p99 are the outage phase's;
//! the note gives every phase's p99, the 5xx count and the time back on
//! Redis. Targets: no 5xx, and the outage's p99 at most 2 x the normal
//! p99 (no stacking of connect timeouts).

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ratelimit_testkit::RedisServer;

use crate::measure::Settings;
use crate::report::{Row, Target};

/// The shape's id.
pub const SHAPE: &str = "redis/outage";
/// Client connections, each sending its requests one after another.
const CONNECTIONS: usize = 4;
/// The key table the gateway is started with: one pro and one free account.
const KEYS: &str = "key-carol carol pro\nkey-alice alice free\n";
/// A liveness bound for the return to Redis (the run fails, never hangs).
const LIVENESS: Duration = Duration::from_secs(60);

/// The gateway process, killed on drop.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `api_gateway` binary beside this one (`target/release/examples/`).
fn gateway_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let path = exe
        .parent()
        .map(|dir| dir.join("examples").join("api_gateway"))
        .ok_or("compare has no directory")?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not built (cargo build --release -p ratelimit-tower --features axum,redis --example api_gateway; cargo xtask bench does it)",
            path.display()
        ))
    }
}

fn start_gateway(
    binary: &PathBuf,
    keys: &PathBuf,
    url: &str,
    policy: &str,
) -> Result<Gateway, String> {
    let mut child = Command::new(binary)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--redis",
            url,
            "--failure-policy",
            policy,
        ])
        .arg("--keys")
        .arg(keys)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    // "api_gateway: listening on http://127.0.0.1:PORT (redis backend)"
    let addr = lines.next().and_then(Result::ok).and_then(|line| {
        let rest = line.split("http://").nth(1)?;
        rest.split(' ').next()?.parse::<SocketAddr>().ok()
    });
    // Keep draining its stderr so that the gateway never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    match addr {
        Some(addr) => Ok(Gateway { child, addr }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the gateway did not say where it listens".to_owned())
        }
    }
}

/// What the load saw in one phase.
#[derive(Default)]
struct Phase {
    latencies_ns: Vec<u64>,
    server_errors: usize,
    rate_limited: usize,
    wall: Duration,
}

impl Phase {
    fn p99_us(&self) -> f64 {
        let mut v = self.latencies_ns.clone();
        v.sort_unstable();
        v.get((v.len().max(1) - 1) * 99 / 100)
            .map_or(f64::NAN, |&ns| ns as f64 / 1000.0)
    }

    fn absorb(&mut self, other: Self) {
        self.latencies_ns.extend(other.latencies_ns);
        self.server_errors += other.server_errors;
        self.rate_limited += other.rate_limited;
        self.wall = self.wall.max(other.wall);
    }
}

/// One keep-alive connection sending requests in turn, alternating the
/// pro and the free account, until `until`. A lost connection is
/// re-established (and counted as a server error: the client saw none of
/// its answer).
async fn client(addr: SocketAddr, until: Instant, first: usize) -> Phase {
    let started = Instant::now();
    let mut phase = Phase::default();
    let mut i = first;
    'connect: while Instant::now() < until {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            phase.server_errors += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            phase.server_errors += 1;
            continue;
        };
        tokio::spawn(connection);
        while Instant::now() < until {
            let key = if i % 2 == 0 { "key-carol" } else { "key-alice" };
            i += 1;
            let Ok(request) = http::Request::get("/api/search")
                .header(http::header::HOST, "127.0.0.1")
                .header("x-api-key", key)
                .body(Empty::<Bytes>::new())
            else {
                phase.server_errors += 1;
                continue;
            };
            let t = Instant::now();
            let answered = match sender.ready().await {
                Ok(()) => sender.send_request(request).await.ok(),
                Err(_) => None,
            };
            let Some(response) = answered else {
                phase.server_errors += 1;
                continue 'connect;
            };
            let status = response.status();
            let _ = response.into_body().collect().await;
            phase
                .latencies_ns
                .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if status.is_server_error() {
                phase.server_errors += 1;
            } else if status == http::StatusCode::TOO_MANY_REQUESTS {
                phase.rate_limited += 1;
            }
        }
    }
    phase.wall = started.elapsed();
    phase
}

async fn load(addr: SocketAddr, length: Duration) -> Result<Phase, String> {
    let until = Instant::now() + length;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| tokio::spawn(client(addr, until, c)))
        .collect();
    let mut phase = Phase::default();
    for task in tasks {
        phase.absorb(task.await.map_err(|e| e.to_string())?);
    }
    Ok(phase)
}

/// One policy's run: its row.
async fn run(
    binary: &PathBuf,
    keys: &PathBuf,
    policy: &str,
    length: Duration,
) -> Result<Row, String> {
    let mut server = RedisServer::try_start()?;
    let gateway = start_gateway(binary, keys, &server.url(), policy)?;
    let _ = load(gateway.addr, length / 5).await?; // warm-up
    let normal = load(gateway.addr, length).await?;
    if server.cli(&["exists", "gateway:pro|carol"]).trim() != "1" {
        return Err(
            "Redis holds no state before the outage: the gateway is not on Redis".to_owned(),
        );
    }
    server.kill();
    let outage = load(gateway.addr, length).await?;
    server.restart();
    let restarted = Instant::now();
    let mut recovery = Phase::default();
    loop {
        recovery.absorb(load(gateway.addr, Duration::from_millis(50)).await?);
        if server.cli(&["exists", "gateway:pro|carol"]).trim() == "1" {
            break;
        }
        if restarted.elapsed() > LIVENESS {
            return Err(format!(
                "{policy}: never returned to Redis after the restart"
            ));
        }
    }
    let back = restarted.elapsed();
    let after = load(gateway.addr, length).await?;
    let server_errors =
        normal.server_errors + outage.server_errors + recovery.server_errors + after.server_errors;
    let requests = normal.latencies_ns.len()
        + outage.latencies_ns.len()
        + recovery.latencies_ns.len()
        + after.latencies_ns.len();
    let n = outage.latencies_ns.len().max(1) as f64;
    Ok(Row {
        shape: SHAPE.to_owned(),
        implementation: format!("api_gateway ({policy})"),
        threads: CONNECTIONS,
        keys: 2,
        mean_ns: outage.latencies_ns.iter().map(|&l| l as f64).sum::<f64>() / n,
        p99_ns: outage.p99_us() * 1000.0,
        ops_per_s: outage.latencies_ns.len() as f64 / outage.wall.as_secs_f64(),
        batch: 1,
        vs_governor: None,
        note: Some(format!(
            "p99 normal {:.0} us, outage {:.0} us = {:.2} x normal, restart {:.0} us, after {:.0} us; 5xx {server_errors} of {requests}; 429 during the outage {} of {}; back on Redis {:.0} ms after the restart",
            normal.p99_us(),
            outage.p99_us(),
            outage.p99_us() / normal.p99_us(),
            recovery.p99_us(),
            after.p99_us(),
            outage.rate_limited,
            outage.latencies_ns.len(),
            back.as_secs_f64() * 1000.0,
        )),
    })
}

/// The rows of `redis/outage`, Fallback then FailClosed (none when `only`
/// names another shape).
///
/// # Errors
/// Why the rows are skipped: no `redis-server`, the gateway not built, a
/// run that never returned to Redis.
pub fn rows(settings: &Settings, only: Option<&str>) -> Result<Vec<Row>, String> {
    if only.is_some_and(|only| !SHAPE.contains(only)) {
        return Ok(Vec::new());
    }
    let binary = gateway_binary()?;
    let dir = std::env::temp_dir().join(format!("ratelimit-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, KEYS).map_err(|e| format!("{}: {e}", keys.display()))?;
    let length = if settings.sample < Duration::from_millis(100) {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(3)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        for policy in ["fallback", "fail-closed"] {
            rows.push(run(&binary, &keys, policy, length).await?);
        }
        Ok::<_, String>(rows)
    });
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

/// Per policy: no 5xx, and the outage's p99 at most 2 x the normal one.
#[must_use]
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut targets = Vec::new();
    for policy in ["fallback", "fail-closed"] {
        let note = rows
            .iter()
            .find(|r| r.shape == SHAPE && r.implementation == format!("api_gateway ({policy})"))
            .and_then(|r| r.note.clone());
        if note.is_none() && !rows.iter().any(|r| r.shape.starts_with("redis/")) {
            continue;
        }
        let ratio = note.as_deref().and_then(|n| {
            n.split(" x normal")
                .next()?
                .rsplit("= ")
                .next()?
                .parse::<f64>()
                .ok()
        });
        let errors = note.as_deref().and_then(|n| {
            n.split("5xx ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<f64>()
                .ok()
        });
        targets.push(Target {
            name: format!("outage ({policy}): p99 during the outage / normal p99"),
            value: ratio,
            bound: "<= 2.00".to_owned(),
            met: ratio.map(|v| v <= 2.0),
        });
        targets.push(Target {
            name: format!("outage ({policy}): 5xx answers over the whole run"),
            value: errors,
            bound: "= 0".to_owned(),
            met: errors.map(|v| v == 0.0),
        });
    }
    targets
}
