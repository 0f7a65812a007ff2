//! `ratelimit dashboard`: refuses a non-loopback address without a token,
//! and serves the fleet's JSON from a Redis of the test's own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use ratelimit_testkit::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_ratelimit");

#[test]
fn a_public_address_needs_a_token() {
    let out = Command::new(BIN)
        .args([
            "dashboard",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--listen",
            "0.0.0.0:0",
        ])
        .env_remove("RATELIMIT_DASHBOARD_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a bearer token"), "{stderr}");
}

#[test]
fn an_unreachable_redis_fails_with_status_1() {
    let out = Command::new(BIN)
        .args([
            "dashboard",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the server on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_fleet_json_is_served() {
    let redis = RedisServer::start();
    redis.cli(&["SET", "api|tenant-1", "18000000000000000000"]);
    let mut child = Killed(
        Command::new(BIN)
            .args([
                "dashboard",
                "--redis-url",
                &redis.url(),
                "--prefix",
                "api",
                "--listen",
                "127.0.0.1:0",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /api.json HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["source"], "fleet");
    assert_eq!(json["processes"], 0);
    assert_eq!(json["redis"]["keys"], 1);
    assert_eq!(json["redis"]["closest_to_empty"][0]["key"], "tenant-1");
}
