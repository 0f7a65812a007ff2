//! From the caller's redis-py client to our own connection pool to the same
//! server.
//!
//! A `redis.Redis` (or `redis.asyncio.Redis`; a `redis.cluster.RedisCluster`
//! through its nodes and its default node's client) keeps its settings in
//! `client.connection_pool.connection_kwargs` and its connection class
//! (`Connection`, `SSLConnection`, `UnixDomainSocketConnection`): host,
//! port, database, user and password (or a credential provider, asked once),
//! socket timeouts, TLS files. They become a URL and the options of a
//! [`RedisPool`]; the calls then run in Rust with the GIL released, on the
//! same Lua scripts and keys as a Rust service's.
//!
//! Pools are shared: limiters whose settings are equal use one pool. After
//! `os.fork()` (a pre-forking server), a child never touches its parent's
//! connections: the package's `after_in_child` hook bumps a generation, and
//! every pool and limiter made before it is set aside (leaked, not dropped:
//! its locks may be held by threads that do not exist in the child) and
//! made again on first use.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use ratelimit_redis::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, RedisPool};

use crate::errors;

/// Bumped in a child process after `os.fork()`.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current fork generation.
pub(crate) fn generation() -> u64 {
    // Relaxed: the hook runs in the forking thread before any other thread
    // of the child exists.
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// `os.register_at_fork(after_in_child=...)`: set every connection aside.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Where and how to connect: everything a pool is built from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// `redis://`, `rediss://` or `redis+unix://`, with credentials and db
    /// (a cluster: its first node).
    url: String,
    /// A Redis Cluster's nodes (seeds; the rest is discovered), each a URL
    /// with the same credentials; empty for one server.
    cluster: Vec<String>,
    /// PEM of the certificate authorities to trust (TLS).
    root_pem: Option<Vec<u8>>,
    /// PEM of the client certificate and key (TLS).
    client_pem: Option<(Vec<u8>, Vec<u8>)>,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_connections: u32,
}

impl core::fmt::Debug for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The URL may carry a password: show where, not how.
        f.debug_struct("Target")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The server's address without credentials, for `repr()` and errors.
    pub(crate) fn address(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("redis", &self.url));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
        let rest = rest.split_once('#').map_or(rest, |(path, _)| path);
        match self.cluster.len() {
            0 | 1 => format!("{scheme}://{rest}"),
            n => format!("{scheme}://{rest} and {} more cluster nodes", n - 1),
        }
    }
}

/// Options the caller may give beside (or instead of) the client.
pub(crate) struct Options {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) max_connections: Option<u32>,
}

/// The pools made so far in this process (fork generation, settings). Its
/// lock is only ever taken with the GIL held and never across a wait, so
/// no thread holds it when Python forks.
static POOLS: Mutex<Option<(u64, HashMap<Target, RedisPool>)>> = Mutex::new(None);

/// The pool of this fork generation for `target`, if made already.
fn cached(target: &Target, now: u64) -> Option<RedisPool> {
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if pools.as_ref().is_some_and(|(g, _)| *g != now) {
        // Made by the parent: never used, never dropped here.
        if let Some(old) = pools.take() {
            core::mem::forget(old);
        }
    }
    pools.as_ref().and_then(|(_, map)| map.get(target).cloned())
}

/// The pool for `target`, shared with every limiter of the same settings.
pub(crate) fn pool(py: Python<'_>, target: &Target) -> PyResult<RedisPool> {
    let now = generation();
    if let Some(pool) = cached(target, now) {
        return Ok(pool);
    }
    let builder = if target.cluster.is_empty() {
        RedisPool::builder(&target.url)
    } else {
        RedisPool::cluster_builder(&target.cluster)
    };
    let builder = builder
        .connect_timeout(target.connect_timeout)
        .response_timeout(target.response_timeout)
        .max_connections(target.max_connections);
    #[cfg(feature = "tls")]
    let builder = {
        let mut builder = builder;
        if let Some(pem) = &target.root_pem {
            builder = builder.tls_root_certificate(pem.clone());
        }
        if let Some((cert, key)) = &target.client_pem {
            builder = builder.tls_client_certificate(cert.clone(), key.clone());
        }
        builder
    };
    // The build probes the server (a PING): without the GIL, and without
    // holding the lock (another thread may need it meanwhile).
    let built = py.detach(|| builder.build()).map_err(errors::redis)?;
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    let (_, map) = pools.get_or_insert_with(|| (now, HashMap::new()));
    // Another thread may have made one meanwhile: share the first.
    Ok(map.entry(target.clone()).or_insert(built).clone())
}

/// A `RedisConfigurationError`: client settings this package cannot honour.
fn unsupported(message: impl Into<String>) -> PyErr {
    errors::configuration(message.into())
}

/// Percent-encodes a URL's user or password.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A keyword of the client's connection settings, if present and not None.
fn kwarg<'py>(kwargs: &Bound<'py, PyDict>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(kwargs.get_item(name)?.filter(|v| !v.is_none()))
}

/// A text setting (str or bytes) of the client's.
fn text(kwargs: &Bound<'_, PyDict>, name: &str) -> PyResult<Option<String>> {
    match kwarg(kwargs, name)? {
        None => Ok(None),
        Some(v) => {
            if let Ok(b) = v.cast::<pyo3::types::PyBytes>() {
                return Ok(Some(String::from_utf8_lossy(b.as_bytes()).into_owned()));
            }
            Ok(Some(v.str()?.to_string()))
        }
    }
}

/// A timeout setting of the client's, in seconds.
fn timeout(kwargs: &Bound<'_, PyDict>, name: &str) -> PyResult<Option<Duration>> {
    match kwarg(kwargs, name)? {
        None => Ok(None),
        Some(v) => {
            let secs: f64 = v.extract()?;
            // Not positive, NaN or beyond a Duration: as if unset.
            Ok(Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero()))
        }
    }
}

/// Whether `class` or one of its bases is named `name`.
fn is_a(class: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    let Ok(class) = class.cast::<PyType>() else {
        return Ok(false);
    };
    for base in class.getattr("__mro__")?.try_iter()? {
        if base?.getattr("__name__")?.extract::<String>()? == name {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads a file named by a TLS setting.
fn read_file(name: &str, path: &str) -> PyResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| unsupported(format!("cannot read {name} {path:?}: {e}")))
}

/// The target of the caller's redis-py client.
pub(crate) fn from_client(client: &Bound<'_, PyAny>, options: &Options) -> PyResult<Target> {
    let type_name = crate::convert::type_name(client);
    if !client.hasattr("connection_pool")? {
        if client.hasattr("get_nodes")? && client.hasattr("get_default_node")? {
            return from_cluster_client(client, options);
        }
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "redis_client must be a redis.Redis (or redis.asyncio.Redis), not {type_name}"
        )));
    }
    let pool = client.getattr("connection_pool")?;
    if is_a(&pool.get_type().into_any(), "SentinelConnectionPool")? {
        return Err(unsupported(
            "Sentinel-managed clients are not supported: the server behind a Sentinel changes \
             on failover, and this limiter would keep talking to the old one",
        ));
    }
    let kwargs = pool.getattr("connection_kwargs")?;
    let kwargs = kwargs.cast::<PyDict>()?;
    let class = pool.getattr("connection_class")?;
    let tls = is_a(&class, "SSLConnection")?;
    let unix = is_a(&class, "UnixDomainSocketConnection")?;

    let mut username = text(kwargs, "username")?;
    let mut password = text(kwargs, "password")?;
    if let Some(provider) = kwarg(kwargs, "credential_provider")? {
        // Asked once: a provider whose credentials rotate needs a new limiter.
        let creds = provider.call_method0("get_credentials")?;
        let creds: Vec<String> = creds.extract()?;
        match creds.as_slice() {
            [p] => password = Some(p.clone()),
            [u, p] => {
                username = Some(u.clone());
                password = Some(p.clone());
            }
            _ => return Err(unsupported("the credential provider gave no credentials")),
        }
    }
    let db: i64 = kwarg(kwargs, "db")?.map_or(Ok(0), |v| v.extract())?;

    let url = if unix {
        let path = text(kwargs, "path")?
            .ok_or_else(|| unsupported("the Unix-socket client has no path"))?;
        let mut url = format!("redis+unix://{path}?db={db}");
        if let Some(u) = &username {
            url.push_str(&format!("&user={}", encode(u)));
        }
        if let Some(p) = &password {
            url.push_str(&format!("&pass={}", encode(p)));
        }
        url
    } else {
        let host = text(kwargs, "host")?.unwrap_or_else(|| "localhost".to_owned());
        let port: u16 = kwarg(kwargs, "port")?.map_or(Ok(6379), |v| v.extract())?;
        tcp_url(
            tls,
            username.as_deref(),
            password.as_deref(),
            &host,
            port,
            db,
        )
    };

    let mut target = Target {
        url,
        cluster: Vec::new(),
        root_pem: None,
        client_pem: None,
        connect_timeout: options
            .connect_timeout
            .or(timeout(kwargs, "socket_connect_timeout")?)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        response_timeout: options
            .response_timeout
            .or(timeout(kwargs, "socket_timeout")?)
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        max_connections: options
            .max_connections
            .unwrap_or(ratelimit_redis::DEFAULT_MAX_CONNECTIONS),
    };
    if tls {
        tls_settings(kwargs, &mut target)?;
    }
    Ok(target)
}

/// The TLS settings of an `SSLConnection` client.
fn tls_settings(kwargs: &Bound<'_, PyDict>, target: &mut Target) -> PyResult<()> {
    if !cfg!(feature = "tls") {
        return Err(unsupported(
            "this build of rate_limiter has no TLS support (the crate's `tls` feature, on in \
             the published wheel, was off when it was built)",
        ));
    }
    // ssl_cert_reqs: "required" (redis-py's default), "optional", "none",
    // or the ssl module's CERT_* numbers (0 none, 1 optional, 2 required).
    let verify = match kwarg(kwargs, "ssl_cert_reqs")? {
        None => true,
        Some(v) => {
            if let Ok(n) = v.extract::<i64>() {
                n != 0
            } else {
                !matches!(v.str()?.to_string().to_ascii_lowercase().as_str(), "none")
            }
        }
    };
    if !verify {
        // The redis crate's `#insecure`: no certificate or host name check.
        target.url.push_str("#insecure");
    }
    if kwarg(kwargs, "ssl_ca_path")?.is_some() {
        return Err(unsupported(
            "ssl_ca_path (a directory of CA certificates) is not supported: pass the CA file as \
             ssl_ca_certs or its text as ssl_ca_data",
        ));
    }
    let mut root = Vec::new();
    if let Some(path) = text(kwargs, "ssl_ca_certs")? {
        root.extend(read_file("ssl_ca_certs", &path)?);
        root.push(b'\n');
    }
    if let Some(data) = text(kwargs, "ssl_ca_data")? {
        root.extend(data.into_bytes());
    }
    if !root.is_empty() {
        target.root_pem = Some(root);
    }
    match (text(kwargs, "ssl_certfile")?, text(kwargs, "ssl_keyfile")?) {
        (Some(cert), Some(key)) => {
            target.client_pem = Some((
                read_file("ssl_certfile", &cert)?,
                read_file("ssl_keyfile", &key)?,
            ));
        }
        (Some(cert), None) => {
            // The key may be in the certificate file.
            let pem = read_file("ssl_certfile", &cert)?;
            target.client_pem = Some((pem.clone(), pem));
        }
        (None, Some(_)) => return Err(unsupported("ssl_keyfile without ssl_certfile")),
        (None, None) => {}
    }
    if kwarg(kwargs, "ssl_password")?.is_some() {
        return Err(unsupported(
            "an encrypted client key (ssl_password) is not supported: give an unencrypted key",
        ));
    }
    Ok(())
}

/// `redis[s]://user:password@host:port/db`, the parts percent-encoded.
fn tcp_url(
    tls: bool,
    username: Option<&str>,
    password: Option<&str>,
    host: &str,
    port: u16,
    db: i64,
) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let credentials = match (username, password) {
        (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
        (None, Some(p)) => format!(":{}@", encode(p)),
        (Some(u), None) => format!("{}@", encode(u)),
        (None, None) => String::new(),
    };
    let scheme = if tls { "rediss" } else { "redis" };
    format!("{scheme}://{credentials}{host}:{port}/{db}")
}

/// The target of a `redis.cluster.RedisCluster`: every node it knows, with
/// the settings of its default node's client (credentials, TLS, timeouts).
fn from_cluster_client(client: &Bound<'_, PyAny>, options: &Options) -> PyResult<Target> {
    let node = client.call_method0("get_default_node")?;
    let node_client = node.getattr("redis_connection")?;
    if node_client.is_none() {
        return Err(unsupported(
            "the cluster client has not connected to its default node yet",
        ));
    }
    let mut target = from_client(&node_client, options)?;
    if target.root_pem.is_some() || target.client_pem.is_some() {
        return Err(unsupported(
            "TLS certificates (ssl_ca_certs, ssl_certfile) are not supported with Redis \
             Cluster clients: use the system's roots",
        ));
    }
    // The node URL as made from the node client, with each node's address.
    let (scheme, rest) = target
        .url
        .split_once("://")
        .ok_or_else(|| unsupported("a cluster node must be reached over TCP"))?;
    let credentials = rest.rsplit_once('@').map_or("", |(c, _)| c);
    let fragment = rest.split_once('#').map_or("", |(_, f)| f);
    let mut urls = Vec::new();
    for node in client.call_method0("get_nodes")?.try_iter()? {
        let node = node?;
        let host: String = node.getattr("host")?.extract()?;
        let port: u16 = node.getattr("port")?.extract()?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let at = if credentials.is_empty() { "" } else { "@" };
        let mut url = format!("{scheme}://{credentials}{at}{host}:{port}/0");
        if !fragment.is_empty() {
            url.push('#');
            url.push_str(fragment);
        }
        urls.push(url);
    }
    if urls.is_empty() {
        return Err(unsupported("the cluster client knows no nodes"));
    }
    urls.sort();
    target.url = urls[0].clone();
    target.cluster = urls;
    Ok(target)
}

/// The target of a URL given as `url=`.
pub(crate) fn from_url(url: &str, options: &Options) -> Target {
    Target {
        url: url.to_owned(),
        cluster: Vec::new(),
        root_pem: None,
        client_pem: None,
        connect_timeout: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        response_timeout: options.response_timeout.unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        max_connections: options
            .max_connections
            .unwrap_or(ratelimit_redis::DEFAULT_MAX_CONNECTIONS),
    }
}
