//! [`RedisPool`]: the r2d2 pool of connections a limiter runs its scripts
//! on, to one Redis or to a Redis Cluster, and its [`RedisPoolBuilder`].
//!
//! Speed: a check-out never does a network round trip. r2d2's usual
//! health check (a `PING` per check-out) doubles the latency of a check;
//! instead, a connection that fails is dropped when it is returned, and a
//! connection lost to a restart marks every idle connection of the pool
//! stale (a generation counter), so that one failure, not one per pooled
//! connection, tells the pool to reconnect.
//!
//! Outages: when no idle connection is at hand and Redis refused the last
//! connection attempt (nothing listens: the server is down or restarting),
//! a check-out does not wait out the connect timeout: one caller at a time
//! tries a connection itself (refused at once, or used for its call if
//! Redis is back) and the others fail at once; a caller already waiting
//! gives up as soon as an attempt made during its wait is refused. The
//! first attempt that succeeds (that probe, or the pool's own reconnection
//! in the background) ends the fast failures. A server that
//! does not answer at all (packets dropped) is still waited for, up to the
//! connect timeout: the circuit breaker is what shortens that case.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{ConnectionLike, ErrorKind, ServerErrorKind};

use crate::error::RedisLimitError;
use crate::invoke::{Path, ServerScripts};
use crate::script::Call;

/// The default connect timeout: how long a call waits for a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The default response timeout: how long a call waits for Redis's answer.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// The default largest number of connections a pool holds.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long a waiting check-out sleeps before it looks again at the last
/// connection attempt (r2d2 does not wake waiters when an attempt fails).
const WAIT_SLICE: Duration = Duration::from_millis(2);
/// The most connections a pool may be given: r2d2 allocates a slot for
/// each when the pool is built, so an unbounded number would exhaust memory
/// (and abort the process) instead of failing.
pub const MAX_CONNECTIONS_LIMIT: u32 = 65_536;

/// A pool of connections to one Redis or to a Redis Cluster, shared by
/// every limiter built on it (cloning is cheap).
///
/// Built by [`RedisPool::builder`] / [`RedisPool::cluster_builder`] with the
/// crate's defaults (timeouts, no per-check-out `PING`), or from a pool you
/// built yourself with `From`: `r2d2::Pool<redis::Client>` or
/// `r2d2::Pool<redis::cluster::ClusterClient>`. For those, build the pool
/// with `test_on_check_out(false)` and a `connection_timeout` you can wait
/// out on the hot path, set response timeouts on the client, and for a
/// cluster client `retries(0)`: its built-in retries resend requests whose
/// outcome is unknown. Such pools wait out their `connection_timeout` on
/// every check-out while Redis refuses connections; the crate's own pool
/// fails those check-outs at once.
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<Inner>,
}

enum Kind {
    /// Our pool, and a copy of its manager for the check-outs' own probes.
    Own(r2d2::Pool<Manager>, Box<Manager>),
    Client(r2d2::Pool<redis::Client>),
    Cluster(r2d2::Pool<ClusterClient>),
}

struct Inner {
    kind: Kind,
    response_timeout: Option<Duration>,
    /// How long a check-out waits for a connection (our own pools).
    connect_timeout: Duration,
    shared: Arc<Shared>,
    cluster: bool,
    /// `FCALL` or `EVALSHA` (see `invoke.rs`).
    path: Path,
}

/// What the manager and the callers share.
#[derive(Default)]
struct Shared {
    /// Bumped when a connection is lost: every connection of an older
    /// generation is dropped at its next check-out or return.
    generation: AtomicU64,
    /// The last connection attempt's error, when no attempt succeeded
    /// since: explains a check-out timeout, and lets a check-out fail fast
    /// while Redis refuses connections.
    last_error: Mutex<Option<Failed>>,
    /// Whether a check-out is trying a connection of its own (one at a
    /// time: the others fail fast meanwhile).
    probing: AtomicBool,
}

/// The one check-out trying a connection itself; the slot is freed on drop.
struct Probing<'a>(&'a Shared);

impl<'a> Probing<'a> {
    fn start(shared: &'a Shared) -> Option<Self> {
        // Acquire/Release: the flag guards no data, but pairing them keeps
        // one probe's end ordered before the next one's start.
        shared
            .probing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Self(shared))
    }
}

impl Drop for Probing<'_> {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

/// A failed connection attempt.
struct Failed {
    at: Instant,
    error: redis::RedisError,
}

impl Shared {
    fn record(&self, outcome: Result<(), &redis::RedisError>) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = outcome.err().map(|e| Failed {
            at: Instant::now(),
            error: e.clone(),
        });
    }

    /// The error to fail a check-out with at once, if the last connection
    /// attempt was made at or after `since` and failed in a way that
    /// waiting will not fix soon: refused or unreachable (nothing listens),
    /// or refused credentials or database (a misconfiguration, reported as
    /// such).
    fn fail_fast(&self, since: Instant) -> Option<RedisLimitError> {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let failed = last.as_ref().filter(|f| f.at >= since)?;
        let err = RedisLimitError::from_connect(failed.error.clone());
        if err.is_misconfiguration() {
            return Some(err);
        }
        refused(&failed.error).then(|| RedisLimitError::Connect {
            message: format!(
                "Redis refused the last connection attempt and no connection is idle (not waiting): {}",
                failed.error
            ),
            source: Some(failed.error.clone()),
        })
    }

    /// The error of a check-out that timed out.
    fn timed_out(&self, e: &r2d2::Error) -> RedisLimitError {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|f| f.error.clone());
        match last {
            Some(last) => match RedisLimitError::from_connect(last) {
                RedisLimitError::Connect { source, .. } => RedisLimitError::Connect {
                    message: e.to_string(),
                    source,
                },
                other => other,
            },
            None => RedisLimitError::Connect {
                message: e.to_string(),
                source: None,
            },
        }
    }
}

/// Whether a connection attempt failed because nothing listens at the
/// address or the address cannot be reached: the attempt fails at once,
/// and so will the next ones until the server is back.
fn refused(e: &redis::RedisError) -> bool {
    use std::io::ErrorKind as Io;
    e.is_connection_refusal()
        || matches!(
            io_kind(e),
            Some(Io::HostUnreachable | Io::NetworkUnreachable | Io::AddrNotAvailable)
        )
}

/// The kind of the I/O error behind `e`, if there is one (redis-rs keeps
/// it behind `source`, possibly in an `Arc`).
fn io_kind(e: &redis::RedisError) -> Option<std::io::ErrorKind> {
    use core::error::Error;
    let source = e.source()?;
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return Some(io.kind());
    }
    source
        .downcast_ref::<Arc<dyn Error + Send + Sync>>()?
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

impl core::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self.inner.kind {
            Kind::Own(..) => "own",
            Kind::Client(_) => "r2d2::Pool<redis::Client>",
            Kind::Cluster(_) => "r2d2::Pool<ClusterClient>",
        };
        f.debug_struct("RedisPool")
            .field("kind", &kind)
            .field("cluster", &self.inner.cluster)
            .field("response_timeout", &self.inner.response_timeout)
            .finish()
    }
}

impl RedisPool {
    /// A pool to the Redis at `url` (`redis://[user:password@]host:port[/db]`)
    /// with the default options.
    pub fn open(url: &str) -> Result<Self, RedisLimitError> {
        Self::builder(url).build()
    }

    /// Options for a pool to the Redis at `url`.
    #[must_use]
    pub fn builder(url: &str) -> RedisPoolBuilder {
        RedisPoolBuilder::new(vec![url.to_owned()], false)
    }

    /// Options for a pool to the Redis Cluster reachable through any of
    /// `urls` (seed nodes; the rest of the cluster is discovered).
    #[must_use]
    pub fn cluster_builder<S: AsRef<str>>(urls: &[S]) -> RedisPoolBuilder {
        RedisPoolBuilder::new(urls.iter().map(|u| u.as_ref().to_owned()).collect(), true)
    }

    /// Whether this pool talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// Checks out a connection.
    fn get(&self) -> Result<Pooled, RedisLimitError> {
        let result = match &self.inner.kind {
            Kind::Own(p, manager) => return self.get_own(p, manager),
            Kind::Client(p) => p.get().map(Pooled::Client),
            Kind::Cluster(p) => p.get().map(|c| Pooled::Cluster(Box::new(c))),
        };
        result.map_err(|e| self.inner.shared.timed_out(&e))
    }

    /// Checks out a connection of our own pool: an idle one if there is
    /// one (the usual case: no clock read, no wait). Else, while Redis
    /// refuses connections, does not wait: one caller at a time tries a
    /// connection itself (a refusal comes back at once) and uses it if it
    /// is made, the others fail at once. Else waits up to the connect
    /// timeout, in short slices, and gives up as soon as an attempt made
    /// during the wait is refused.
    fn get_own(
        &self,
        pool: &r2d2::Pool<Manager>,
        manager: &Manager,
    ) -> Result<Pooled, RedisLimitError> {
        if let Some(conn) = pool.try_get() {
            return Ok(Pooled::Own(conn));
        }
        let shared = &self.inner.shared;
        let timeout = self.inner.connect_timeout;
        let start = Instant::now();
        // r2d2 retries a failed connection in the background at least
        // every half connect timeout: a refusal within the last timeout is
        // the server's current state, unless it just came back, which
        // the probe below finds out.
        if let Some(err) = shared.fail_fast(start.checked_sub(timeout).unwrap_or(start)) {
            let Some(_probing) = Probing::start(shared) else {
                return Err(err);
            };
            return match r2d2::ManageConnection::connect(manager) {
                // Used for this call and dropped: r2d2 cannot adopt it, and
                // the pool's own attempts now succeed too.
                Ok(conn) => Ok(Pooled::Direct(Box::new(conn))),
                Err(e) => Err(shared
                    .fail_fast(start)
                    .unwrap_or_else(|| RedisLimitError::from_connect(e))),
            };
        }
        let deadline = start + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match pool.get_timeout(left.min(WAIT_SLICE)) {
                Ok(conn) => return Ok(Pooled::Own(conn)),
                Err(e) => {
                    if let Some(err) = shared.fail_fast(start) {
                        return Err(err);
                    }
                    if Instant::now() >= deadline {
                        return Err(shared.timed_out(&e));
                    }
                }
            }
        }
    }

    /// Whether calls go as `FCALL` (else `EVALSHA`) at this point: the
    /// builder's [`ServerScripts`], and under `Auto` what the server showed.
    #[must_use]
    pub fn uses_functions(&self) -> bool {
        self.inner.path.uses_functions()
    }

    /// Sends one script call on a pooled connection. A cluster redirect
    /// (`MOVED`/`ASK`: the script did not run) is followed once on a fresh
    /// connection, which reads the new slot map; nothing else is retried
    /// but a missing library or script (`Function not found`, `NOSCRIPT`:
    /// loaded and sent again, see `invoke.rs`: it had not run).
    pub(crate) fn run(&self, call: &Call) -> Result<redis::Value, RedisLimitError> {
        let mut conn = self.get()?;
        match self.inner.path.run(conn.con(), call) {
            Ok(value) => Ok(value),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
                ) =>
            {
                conn.mark_broken();
                drop(conn);
                let mut again = self.get()?;
                self.inner
                    .path
                    .run(again.con(), call)
                    .map_err(|e| self.call_failed(&mut again, e))
            }
            Err(e) => Err(self.call_failed(&mut conn, e)),
        }
    }

    /// Sends one command to the cluster node(s) `routing` names (the
    /// expiry walk of a change of quota: `crate::walk`). Not a cluster:
    /// an error.
    pub(crate) fn route(
        &self,
        cmd: &redis::Cmd,
        routing: redis::cluster_routing::RoutingInfo,
    ) -> Result<redis::Value, RedisLimitError> {
        let mut conn = self.get()?;
        let Some(cluster) = conn.cluster() else {
            return Err(RedisLimitError::InvalidOption(
                "routing to a node needs a cluster".to_owned(),
            ));
        };
        let result = cluster.route_command(cmd, routing);
        result.map_err(|e| self.call_failed(&mut conn, e))
    }

    /// Classifies a call's error and, when the connection was lost, marks
    /// every idle connection stale (a lost connection usually means the
    /// server restarted or failed over).
    fn call_failed(&self, conn: &mut Pooled, e: redis::RedisError) -> RedisLimitError {
        let err = RedisLimitError::from_call(e, self.inner.response_timeout);
        if err.outcome_unknown() || matches!(err, RedisLimitError::Connect { .. }) {
            conn.mark_broken();
            if !self.inner.cluster {
                // Pairs with the Relaxed loads in `Manager`: staleness is a
                // hint, a connection that misses it fails once more at most.
                self.inner.shared.generation.fetch_add(1, Ordering::Relaxed);
            }
        }
        err
    }
}

impl From<r2d2::Pool<redis::Client>> for RedisPool {
    fn from(pool: r2d2::Pool<redis::Client>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind: Kind::Client(pool),
                response_timeout: None,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                shared: Arc::default(),
                cluster: false,
                path: Path::default(),
            }),
        }
    }
}

impl From<r2d2::Pool<ClusterClient>> for RedisPool {
    fn from(pool: r2d2::Pool<ClusterClient>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind: Kind::Cluster(pool),
                response_timeout: None,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                shared: Arc::default(),
                cluster: true,
                path: Path::default(),
            }),
        }
    }
}

/// Options of a [`RedisPool`]: timeouts, size and (feature `tls`) TLS
/// certificates.
#[derive(Clone)]
pub struct RedisPoolBuilder {
    urls: Vec<String>,
    cluster: bool,
    connect_timeout: Duration,
    response_timeout: Duration,
    max_connections: u32,
    scripts: ServerScripts,
    #[cfg(feature = "tls")]
    tls: Option<redis::TlsCertificates>,
}

impl core::fmt::Debug for RedisPoolBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("RedisPoolBuilder");
        d.field("urls", &self.urls)
            .field("cluster", &self.cluster)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_connections", &self.max_connections)
            .field("scripts", &self.scripts);
        // Certificates and keys stay out of logs.
        #[cfg(feature = "tls")]
        d.field("tls_certificates", &self.tls.is_some());
        d.finish()
    }
}

impl RedisPoolBuilder {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            scripts: ServerScripts::Auto,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Trusts the certificate authority `pem` (PEM text: one or more
    /// certificates) for a `rediss://` URL, instead of the system's roots:
    /// a server with a private CA. Single-node pools only.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .root_cert = Some(pem.into());
        self
    }

    /// Presents the client certificate `cert_pem` with its private key
    /// `key_pem` (PEM text) to a `rediss://` server that asks for one
    /// (`tls-auth-clients yes`). Single-node pools only.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls
            .get_or_insert(redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            })
            .client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// How long a call waits for a connection (to be made, or to be free in
    /// the pool) before failing with `Connect`. Default 500 ms. While Redis
    /// refuses connections (down or restarting), a call fails at once
    /// instead of waiting it out.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for Redis's answer before failing with
    /// `Timeout` (the request may have counted; it is not retried).
    /// Default 500 ms.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The largest number of connections; calls beyond it wait for a free
    /// one (up to the connect timeout). Default 16, at most
    /// [`MAX_CONNECTIONS_LIMIT`] (r2d2 reserves room for all of them up
    /// front).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// How the scripts run on the server: Redis 7 functions (`FCALL`) or
    /// `EVALSHA`. Default [`ServerScripts::Auto`]: functions where the
    /// server runs them, found out at the first call.
    #[must_use]
    pub fn server_scripts(mut self, scripts: ServerScripts) -> Self {
        self.scripts = scripts;
        self
    }

    /// Builds the pool, after a probe of the configuration: a URL that
    /// cannot be parsed, a host name that does not resolve, credentials the
    /// server refuses and a database index it does not have are errors
    /// (`InvalidOption`, `Misconfigured`, `Authentication`). A Redis that is
    /// down at start-up is not (connections are made on demand; calls fail
    /// until it is up).
    pub fn build(self) -> Result<RedisPool, RedisLimitError> {
        let invalid = |e: redis::RedisError| RedisLimitError::InvalidOption(e.to_string());
        if self.max_connections == 0
            || self.connect_timeout.is_zero()
            || self.response_timeout.is_zero()
        {
            return Err(RedisLimitError::InvalidOption(
                "max_connections and the timeouts must be greater than zero".to_owned(),
            ));
        }
        if self.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(RedisLimitError::InvalidOption(format!(
                "max_connections is {}, above the limit of {MAX_CONNECTIONS_LIMIT}",
                self.max_connections
            )));
        }
        #[cfg(feature = "tls")]
        if self.cluster && self.tls.is_some() {
            return Err(RedisLimitError::InvalidOption(
                "TLS certificates are supported for single-node pools only".to_owned(),
            ));
        }
        let target = if self.cluster {
            Target::Cluster(
                ClusterClient::builder(self.urls.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    // The client's own retries resend requests whose outcome
                    // is unknown; redirects are followed by the limiter.
                    .retries(0)
                    .build()
                    .map_err(invalid)?,
            )
        } else {
            let [url] = self.urls.as_slice() else {
                return Err(RedisLimitError::InvalidOption(
                    "a single-node pool takes exactly one URL".to_owned(),
                ));
            };
            #[cfg(feature = "tls")]
            let client = match self.tls.clone() {
                Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                None => redis::Client::open(url.as_str()),
            };
            #[cfg(not(feature = "tls"))]
            let client = redis::Client::open(url.as_str());
            Target::Single(client.map_err(invalid)?)
        };
        match &target {
            Target::Single(client) => resolves(client.get_connection_info())?,
            Target::Cluster(_) => {
                for url in &self.urls {
                    resolves(
                        &redis::IntoConnectionInfo::into_connection_info(url.as_str())
                            .map_err(invalid)?,
                    )?;
                }
            }
        }
        let shared = Arc::new(Shared::default());
        let manager = Manager {
            target,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            shared: Arc::clone(&shared),
        };
        // Wrong credentials or database are configuration errors: find out
        // now (a PING: without a password, the connection is made and only
        // the first command is refused).
        if let Err(e) = manager
            .open()
            .and_then(|mut link| redis::cmd("PING").query::<()>(link.con()))
        {
            let err = RedisLimitError::from_connect(e);
            if err.is_misconfiguration() {
                return Err(err);
            }
        }
        let probe = manager.clone();
        let pool = r2d2::Pool::builder()
            .max_size(self.max_connections)
            .min_idle(Some(0))
            .connection_timeout(self.connect_timeout)
            // `Manager::is_valid` is a flag check, not a round trip.
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(RedisPool {
            inner: Arc::new(Inner {
                kind: Kind::Own(pool, Box::new(probe)),
                response_timeout: Some(self.response_timeout),
                connect_timeout: self.connect_timeout,
                shared,
                cluster: self.cluster,
                path: Path::new(self.scripts),
            }),
        })
    }
}

/// Whether the host of `info` resolves: a name that does not is a
/// configuration error (a typo), not an outage to wait out.
pub(crate) fn resolves(info: &redis::ConnectionInfo) -> Result<(), RedisLimitError> {
    use std::net::ToSocketAddrs;
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host, *port),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host, *port),
        _ => return Ok(()),
    };
    match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => Ok(()),
        Ok(_) => Err(unresolved(host, "no address")),
        Err(e) => Err(unresolved(host, &e.to_string())),
    }
}

fn unresolved(host: &str, why: &str) -> RedisLimitError {
    RedisLimitError::Misconfigured {
        message: format!(
            "the host {host:?} in the Redis URL does not resolve ({why}): check its spelling"
        ),
        source: None,
    }
}

#[derive(Clone)]
enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// The crate's own r2d2 manager: timeouts on every connection, validity
/// without a round trip.
#[derive(Clone)]
pub(crate) struct Manager {
    target: Target,
    connect_timeout: Duration,
    response_timeout: Duration,
    shared: Arc<Shared>,
}

/// A connection made by [`Manager`].
pub(crate) struct Conn {
    link: Link,
    generation: u64,
    broken: bool,
}

enum Link {
    Single(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Manager {
    fn open(&self) -> redis::RedisResult<Link> {
        match &self.target {
            Target::Single(client) => {
                let con = client.get_connection_with_timeout(self.connect_timeout)?;
                con.set_read_timeout(Some(self.response_timeout))?;
                con.set_write_timeout(Some(self.response_timeout))?;
                Ok(Link::Single(con))
            }
            Target::Cluster(client) => client.get_connection().map(|c| Link::Cluster(Box::new(c))),
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Conn, redis::RedisError> {
        // Read before connecting: a bump during the connect makes this
        // connection stale, never a stale one current.
        let generation = self.shared.generation.load(Ordering::Relaxed);
        match self.open() {
            Ok(link) => {
                self.shared.record(Ok(()));
                Ok(Conn {
                    link,
                    generation,
                    broken: false,
                })
            }
            Err(e) => {
                self.shared.record(Err(&e));
                Err(e)
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        if self.has_broken(conn) {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "stale connection",
            )))
        } else {
            Ok(())
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        let open = match &conn.link {
            Link::Single(c) => c.is_open(),
            Link::Cluster(c) => c.is_open(),
        };
        conn.broken || !open || conn.generation != self.shared.generation.load(Ordering::Relaxed)
    }
}

impl Link {
    fn con(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Single(c) => c,
            Self::Cluster(c) => &mut **c,
        }
    }

    fn cluster(&mut self) -> Option<&mut ClusterConnection> {
        match self {
            Self::Single(_) => None,
            Self::Cluster(c) => Some(&mut **c),
        }
    }
}

/// A checked-out connection, whatever the pool.
pub(crate) enum Pooled {
    Own(r2d2::PooledConnection<Manager>),
    /// Made by a check-out itself while the pool had none (see
    /// `RedisPool::get_own`); closed after the call.
    Direct(Box<Conn>),
    Client(r2d2::PooledConnection<redis::Client>),
    Cluster(Box<r2d2::PooledConnection<ClusterClient>>),
}

impl Pooled {
    /// Drops this connection when it is returned (our own pools only; the
    /// others drop a connection once it reports itself closed).
    pub(crate) fn mark_broken(&mut self) {
        if let Self::Own(c) = self {
            c.broken = true;
        }
    }

    /// The cluster connection, if this is one (routing to given nodes).
    fn cluster(&mut self) -> Option<&mut ClusterConnection> {
        match self {
            Self::Own(c) => c.link.cluster(),
            Self::Direct(c) => c.link.cluster(),
            Self::Client(_) => None,
            Self::Cluster(c) => Some(&mut ***c),
        }
    }

    /// The connection to send commands on.
    pub(crate) fn con(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Own(c) => c.link.con(),
            Self::Direct(c) => c.link.con(),
            Self::Client(c) => &mut **c,
            Self::Cluster(c) => &mut ***c,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::refused;

    fn io_error(kind: io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(io::Error::new(kind, "test"))
    }

    #[test]
    fn refusals_and_unreachable_addresses_fail_fast_other_errors_wait() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkUnreachable,
            io::ErrorKind::AddrNotAvailable,
        ] {
            assert!(refused(&io_error(kind)), "{kind:?}");
        }
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::WouldBlock,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(!refused(&io_error(kind)), "{kind:?}");
        }
        let server = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(!refused(&server));
    }
}
