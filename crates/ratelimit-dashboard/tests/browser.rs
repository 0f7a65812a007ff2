//! The page in a real browser: Debian's headless Chromium, driven through
//! chromedriver over WebDriver (plain HTTP and JSON, a client of a few
//! lines below), loads the dashboard of the example app while its traffic
//! runs, and checks what a person would see: the chart has points (and
//! pixels), the most denied key is listed, the hostile key names are shown
//! as text and ran no script, and the page follows a change of traffic.
//! Screenshots are saved as `target/dashboard.png` (steady traffic;
//! `RATELIMIT_DOCS_SCREENSHOT=1` also writes it to `docs/dashboard.png`)
//! and `target/dashboard-after-surge.png`.
//!
//! Every wait polls the page for a state, with a deadline. Without
//! `chromium` and `chromedriver` on the PATH the test says so and passes,
//! unless `RATELIMIT_BROWSER_REQUIRED` is set (as `cargo xtask dashboard`
//! does): then it fails.

#[path = "../examples/dashboard.rs"]
#[allow(unreachable_pub)]
mod example;

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use ratelimit_dashboard::Recorder;
use serde_json::{Value, json};

/// How long any one state may take to appear.
const DEADLINE: Duration = Duration::from_secs(30);

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// One WebDriver request: HTTP/1.1 with `Connection: close`, the JSON
/// answer's `value`, or the WebDriver error as text.
fn webdriver(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("send: {e}"))?;
    // chromedriver may keep the connection open: read the header, then
    // exactly Content-Length bytes (or chunks up to the last one).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (split, head) = loop {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the header's end".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                split,
                String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
            );
        }
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[split + 4..];
        let complete = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let mut payload = raw[split + 4..].to_vec();
    if let Some(len) = length {
        payload.truncate(len);
    } else if chunked {
        payload = dechunk(&payload);
    }
    let reply: Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&payload)))?;
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(format!(
            "{error}: {}",
            value.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    Ok(value)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
    out
}

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(chromedriver: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        poll("chromedriver ready", || {
            webdriver(driver.addr, "GET", "/status", None)
                .ok()
                .filter(|v| v["ready"] == true)
        });
        driver
    }
}

/// A browser session, closed on drop.
struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = webdriver(
            self.driver.addr,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
    }
}

impl<'d> Session<'d> {
    fn new(driver: &'d Driver, chromium: &Path) -> Self {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,1300", "--no-first-run", "--no-default-browser-check"]
            }
        }}});
        let value =
            webdriver(driver.addr, "POST", "/session", Some(&caps)).expect("a Chromium session");
        let id = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Self { driver, id }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        webdriver(
            self.driver.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({"url": url})))
            .expect("navigation");
    }

    fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
        .expect("the script runs")
    }

    /// The text of an open alert, if one is open.
    fn alert(&self) -> Option<String> {
        self.call("GET", "/alert/text", None)
            .ok()
            .map(|v| v.to_string())
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call("GET", "/screenshot", None).expect("a screenshot");
        base64_decode(b64.as_str().expect("base64 text"))
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// Polls `probe` until it returns something, or panics at the deadline
/// with `what`.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the page shows, as a person would read it.
const READ_PAGE: &str = r#"
    const rows = Array.from(document.querySelectorAll('#top tbody tr'));
    const canvas = document.getElementById('chart');
    const ctx = canvas.getContext('2d');
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0, green = 0;
    for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] > 0 && px[i] > 150 && px[i + 1] < 90 && px[i + 2] < 90) red++;
        if (px[i + 3] > 0 && px[i + 1] > 100 && px[i] < 90 && px[i + 2] < 90) green++;
    }
    return {
        points: Number(canvas.dataset.points || 0),
        red: red,
        green: green,
        top: rows.map(r => r.cells[0].textContent),
        images: document.querySelectorAll('img').length,
        pwned: typeof window.__pwned,
        updates: window.__dashboard ? window.__dashboard.updates : 0,
        denied_total: document.getElementById('total-denied').textContent,
        problem: document.getElementById('problem').hidden ? null : document.getElementById('problem').textContent,
    };
"#;

#[test]
fn the_page_shows_the_traffic_as_a_person_would_see_it() {
    let required = std::env::var_os("RATELIMIT_BROWSER_REQUIRED").is_some();
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        assert!(
            !required,
            "chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: chromium or chromedriver is not on the PATH");
        return;
    };

    // The example app, its traffic, on a port of its own.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let recorder = Recorder::start();
    let app = example::app(&recorder);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(example::serve(listener, app.clone()));
    let traffic = runtime.spawn(example::traffic(app.clone()));

    let driver = Driver::start(&chromedriver);
    let session = Session::new(&driver, &chromium);
    session.go(&format!("http://{addr}/ratelimit/"));

    // The chart has points and the heaviest tenant leads the table.
    let first = poll("the chart and the top denied key", || {
        let page = session.run(READ_PAGE);
        // Six seconds of history on each of the four lines.
        let ok = page["points"].as_u64() >= Some(24)
            && page["red"].as_u64() > Some(0)
            && page["top"][0] == "tenant-1"
            && example::HOSTILE_KEYS
                .iter()
                .all(|k| page["top"].as_array().unwrap().iter().any(|t| t == k));
        ok.then_some(page)
    });
    assert_eq!(first["problem"], Value::Null, "{first}");
    assert!(
        first["green"].as_u64() > Some(0),
        "allowed decisions are drawn: {first}"
    );

    // The hostile keys are text: no element was made of them, no handler
    // ran, no alert is open.
    assert_eq!(first["images"], 0, "{first}");
    assert_eq!(first["pwned"], "undefined", "{first}");
    assert_eq!(session.alert(), None);

    // The test's artifact, and the docs' picture on demand.
    let shot = |name: &str, docs: bool| {
        let png = session.screenshot();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join(name), &png).unwrap();
        if docs && std::env::var_os("RATELIMIT_DOCS_SCREENSHOT").is_some() {
            std::fs::write(root.join("docs/dashboard.png"), &png).unwrap();
        }
        eprintln!("screenshot: {}", target.join(name).display());
    };
    shot("dashboard.png", true);

    // The traffic changes: a surge of one new key overtakes tenant-1, and
    // the page follows.
    traffic.abort();
    runtime.block_on(async {
        for _ in 0..10_000 {
            example::hit(&app, "surge-key").await;
        }
    });
    let after = poll("the surge on the page", || {
        let page = session.run(READ_PAGE);
        (page["top"][0] == "surge-key").then_some(page)
    });
    assert!(
        after["updates"].as_u64() > first["updates"].as_u64(),
        "{after}"
    );
    assert_ne!(after["denied_total"], first["denied_total"]);
    assert_eq!(after["pwned"], "undefined");
    assert_eq!(session.alert(), None);

    shot("dashboard-after-surge.png", false);
}
