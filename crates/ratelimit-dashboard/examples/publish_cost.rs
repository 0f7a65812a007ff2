//! The Redis CPU the fleet view costs: a Redis of its own (the testkit's),
//! measured by its `INFO cpu` (user + system seconds) over a fixed wall
//! time, idle, then with 10 publishers (10 connections, each a process's
//! recorder full: 64 denied keys, 300 s of history) at the default 5 s
//! interval and at 1 s, then with the fleet reader added over 10 000
//! limiter keys (MGET every second, a SCAN pass every 5 s).
//!
//! ```text
//! cargo run --release -p ratelimit-dashboard --features redis --example publish_cost [SECONDS]
//! ```

use core::time::Duration;

use ratelimit_core::{Decision, Reason};
use ratelimit_dashboard::{Fleet, Publisher, Recorder};
use ratelimit_testkit::RedisServer;

/// Redis's CPU seconds so far (user + system, its own threads).
fn cpu(server: &RedisServer) -> f64 {
    let info = server.cli(&["INFO", "cpu"]);
    info.lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user").then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Redis's CPU in milliseconds per second of wall time, over `secs`.
fn measure(server: &RedisServer, secs: u64) -> f64 {
    let before = cpu(server);
    std::thread::sleep(Duration::from_secs(secs));
    (cpu(server) - before) * 1000.0 / secs as f64
}

/// A recorder as full as it gets: 64 denied keys, 300 s of history.
fn busy_recorder(process: usize) -> Recorder {
    let r = Recorder::new();
    let denied = Decision {
        allowed: false,
        remaining: 0,
        retry_after: Some(Duration::from_millis(100)),
        reset_after: Duration::from_secs(10),
        limit: 100,
        reason: Reason::Quota,
    };
    let start = 1_764_000_000;
    for t in 0..300 {
        for k in 0..64 {
            r.record(format!("process-{process}-tenant-{k:04}").as_str(), &denied);
        }
        r.tick_at(start + t);
    }
    r
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let server = RedisServer::start();
    let client = || redis::Client::open(server.url()).expect("a Redis URL");
    let recorders: Vec<Recorder> = (0..10).map(busy_recorder).collect();
    let published = recorders[0].snapshot().to_json().len();

    let idle = measure(&server, secs);
    println!("idle                                    {idle:7.3} ms CPU per s");
    for every in [5, 1] {
        let publishers: Vec<Publisher> = recorders
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Publisher::start(
                    r,
                    client(),
                    "api",
                    &format!("p{i}"),
                    Duration::from_secs(every),
                )
                .expect("a publisher")
            })
            .collect();
        let load = measure(&server, secs);
        println!(
            "10 publishers every {every} s                {load:7.3} ms CPU per s (+{:.3} over idle)",
            load - idle
        );
        drop(publishers);
        std::thread::sleep(Duration::from_secs(every + 1));
    }

    // 10 000 limiter keys for the SCAN pass, then the fleet reader.
    let mut c = client().get_connection().expect("a connection");
    for chunk in (0..10_000).collect::<Vec<u32>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("api|tenant-{i}"))
                .arg(1_000_000_000_000u64 + u64::from(*i))
                .ignore();
        }
        pipe.query::<()>(&mut c).expect("SET");
    }
    let _publishers: Vec<Publisher> = recorders
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Publisher::start(r, client(), "api", &format!("p{i}"), Duration::from_secs(5))
                .expect("a publisher")
        })
        .collect();
    let fleet = Fleet::start(client(), "api").expect("the fleet view");
    let load = measure(&server, secs);
    println!(
        "10 publishers (5 s) + the fleet view    {load:7.3} ms CPU per s (+{:.3} over idle; 10 000 keys scanned every 5 s)",
        load - idle
    );
    fleet.stop();
    println!("one publication: {published} bytes of JSON; wall time per measure: {secs} s");
}
