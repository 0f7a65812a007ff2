//! [`AsyncRedisConnection`]: the one connection an async limiter sends its
//! scripts on (feature `tokio`), and its [`AsyncRedisConnectionBuilder`].
//!
//! To one Redis it is the `redis` crate's `ConnectionManager`: a
//! multiplexed connection (every concurrent call is written to one socket
//! as it comes and the replies are matched in order, so many tasks pipeline
//! on it) that reconnects by itself after the connection is lost. To a
//! Redis Cluster it is the crate's async `ClusterConnection`: one such
//! multiplexed connection per node, each call routed by its key's hash
//! slot. Cloning shares the connection.

use core::time::Duration;
use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, ServerErrorKind};

use crate::error::RedisLimitError;
use crate::invoke::{Path, ServerScripts};
use crate::pool::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, resolves};
use crate::script::Call;

/// One multiplexed, self-reconnecting connection to a Redis, shared by
/// every async limiter and task that uses it (cloning is cheap).
///
/// Concurrent calls are pipelined on it: a call never waits for another
/// call's reply before being sent, so one connection serves many tasks.
/// A call never blocks the thread that polls it.
#[derive(Clone)]
pub struct AsyncRedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    response_timeout: Option<Duration>,
    /// `FCALL` or `EVALSHA` (see `invoke.rs`).
    path: Path,
}

/// One Redis, or a Redis Cluster.
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl core::fmt::Debug for AsyncRedisConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncRedisConnection")
            .field("response_timeout", &self.inner.response_timeout)
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

impl AsyncRedisConnection {
    /// A connection to the Redis at `url`
    /// (`redis://[user:password@]host:port[/db]`) with the default options.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn open(url: &str) -> Result<Self, RedisLimitError> {
        Self::builder(url).build().await
    }

    /// Options for a connection to the Redis at `url`.
    pub fn builder(url: &str) -> AsyncRedisConnectionBuilder {
        AsyncRedisConnectionBuilder {
            urls: vec![url.to_owned()],
            cluster: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            scripts: ServerScripts::Auto,
        }
    }

    /// A connection to the Redis Cluster reachable through any of `urls`
    /// (seed nodes; the rest of the cluster is discovered), with the
    /// default options.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn open_cluster<S: AsRef<str>>(urls: &[S]) -> Result<Self, RedisLimitError> {
        Self::cluster_builder(urls).build().await
    }

    /// Options for a connection to the Redis Cluster reachable through any
    /// of `urls`. Calls are routed by hash slot; a batch is split into one
    /// call per slot (as on a [`RedisPool`](crate::RedisPool) to a
    /// cluster).
    pub fn cluster_builder<S: AsRef<str>>(urls: &[S]) -> AsyncRedisConnectionBuilder {
        AsyncRedisConnectionBuilder {
            urls: urls.iter().map(|u| u.as_ref().to_owned()).collect(),
            cluster: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            scripts: ServerScripts::Auto,
        }
    }

    /// Whether this connection talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.link, Link::Cluster(_))
    }

    /// Whether calls go as `FCALL` (else `EVALSHA`) at this point: the
    /// builder's [`ServerScripts`], and under `Auto` what the server showed.
    #[must_use]
    pub fn uses_functions(&self) -> bool {
        self.inner.path.uses_functions()
    }

    /// Sends one script call. Nothing is retried but a missing library or
    /// script (`Function not found`, `NOSCRIPT`: the call did not run; it
    /// is loaded and sent again, see `invoke.rs`) and, on a cluster, a few `MOVED`/`ASK`
    /// redirects (the script did not run either; the slot map is read
    /// again meanwhile); a lost connection is remade in the background for the next
    /// call.
    pub(crate) async fn run(&self, call: &Call) -> Result<redis::Value, RedisLimitError> {
        let result = match &self.inner.link {
            Link::Single(manager) => {
                let mut con = manager.clone();
                self.inner.path.run_async(&mut con, call).await
            }
            Link::Cluster(cluster) => {
                let mut con = cluster.clone();
                let mut redirects = 0;
                loop {
                    match self.inner.path.run_async(&mut con, call).await {
                        // A redirect makes the connection read the slot
                        // map again, in the background: give it a moment.
                        Err(e) if redirected(&e) && redirects < MAX_REDIRECTS => {
                            redirects += 1;
                            tokio::time::sleep(REDIRECT_PAUSE * redirects).await;
                        }
                        // Still sent elsewhere after every redirect: the
                        // node that serves the slot cannot be reached (the
                        // client falls back to another node, which points
                        // back at it). The script ran nowhere.
                        Err(e) if redirected(&e) => {
                            return Err(RedisLimitError::Connect {
                                message: format!(
                                    "the cluster node that serves the key is unreachable \
                                     (still redirected after {MAX_REDIRECTS} redirects): {e}"
                                ),
                                source: Some(e),
                            });
                        }
                        other => break other,
                    }
                }
            }
        };
        result.map_err(|e| RedisLimitError::from_call(e, self.inner.response_timeout))
    }

    /// Sends one command to the cluster node(s) `routing` names (the
    /// expiry walk of a change of quota: `crate::walk`). Not a cluster:
    /// an error.
    pub(crate) async fn route(
        &self,
        cmd: redis::Cmd,
        routing: redis::cluster_routing::RoutingInfo,
    ) -> Result<redis::Value, RedisLimitError> {
        let Link::Cluster(cluster) = &self.inner.link else {
            return Err(RedisLimitError::InvalidOption(
                "routing to a node needs a cluster".to_owned(),
            ));
        };
        let mut con = cluster.clone();
        con.route_command(cmd, routing)
            .await
            .map_err(|e| RedisLimitError::from_call(e, self.inner.response_timeout))
    }
}

/// How many `MOVED`/`ASK` redirects one call follows (each means the
/// script did not run, so sending it again cannot count it twice).
const MAX_REDIRECTS: u32 = 5;

/// The pause before following the `n`-th redirect is `n` times this.
const REDIRECT_PAUSE: Duration = Duration::from_millis(1);

/// A cluster redirect: the call did not run where it was sent.
fn redirected(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

/// Options of an [`AsyncRedisConnection`]: timeouts.
#[derive(Debug, Clone)]
#[must_use]
pub struct AsyncRedisConnectionBuilder {
    urls: Vec<String>,
    cluster: bool,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
    scripts: ServerScripts,
}

impl AsyncRedisConnectionBuilder {
    /// How the scripts run on the server: Redis 7 functions (`FCALL`) or
    /// `EVALSHA`. Default [`ServerScripts::Auto`]: functions where the
    /// server runs them, found out at the first call.
    pub fn server_scripts(mut self, scripts: ServerScripts) -> Self {
        self.scripts = scripts;
        self
    }

    /// How long a call waits for the connection to be made (after a loss)
    /// before failing with `Connect`. Default 500 ms. A lost connection is
    /// remade once per failing call, never in a retry loop, so a call
    /// waits at most this long for it.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a call waits for Redis's answer before failing with
    /// `Timeout` (the request may have counted; it is not retried).
    /// Default 500 ms.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = Some(timeout);
        self
    }

    /// No response timeout: a call waits for Redis's answer as long as the
    /// connection stays up. Meant for tests on tokio's paused clock (which
    /// jumps to the next timer whenever every task waits, and so would fire
    /// a response timeout at once while a reply is on its way); in
    /// production a response timeout bounds every call.
    pub fn no_response_timeout(mut self) -> Self {
        self.response_timeout = None;
        self
    }

    /// Makes the connection, after a probe of the configuration: a URL
    /// that cannot be parsed, a host name that does not resolve,
    /// credentials the server refuses and a database index it does not
    /// have are errors. A Redis that is down is not (calls fail with
    /// `Connect` until it is up: the connection is remade at each failing
    /// call).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn build(self) -> Result<AsyncRedisConnection, RedisLimitError> {
        if self.connect_timeout.is_zero() || self.response_timeout.is_some_and(|t| t.is_zero()) {
            return Err(RedisLimitError::InvalidOption(
                "the timeouts must be greater than zero".to_owned(),
            ));
        }
        let link = if self.cluster {
            self.cluster_link()?
        } else {
            self.single_link()?
        };
        // Wrong credentials or database are configuration errors: find out
        // now.
        let ping = match &link {
            Link::Single(manager) => {
                let mut probe = manager.clone();
                redis::cmd("PING")
                    .query_async::<redis::Value>(&mut probe)
                    .await
            }
            Link::Cluster(cluster) => {
                let mut probe = cluster.clone();
                redis::cmd("PING")
                    .query_async::<redis::Value>(&mut probe)
                    .await
            }
        };
        if let Err(e) = ping {
            let err = RedisLimitError::from_connect(e);
            if err.is_misconfiguration() {
                return Err(err);
            }
        }
        Ok(AsyncRedisConnection {
            inner: Arc::new(Inner {
                link,
                response_timeout: self.response_timeout,
                path: Path::new(self.scripts),
            }),
        })
    }

    fn single_link(&self) -> Result<Link, RedisLimitError> {
        let [url] = self.urls.as_slice() else {
            return Err(RedisLimitError::InvalidOption(
                "a single-node connection takes exactly one URL".to_owned(),
            ));
        };
        let client = redis::Client::open(url.as_str())
            .map_err(|e| RedisLimitError::InvalidOption(e.to_string()))?;
        resolves(client.get_connection_info())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(self.response_timeout)
            // One attempt per failing call: the manager's own retry loop
            // (exponential backoff) would make a call wait far beyond the
            // connect timeout while Redis is down.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(RedisLimitError::from_connect)?;
        Ok(Link::Single(manager))
    }

    fn cluster_link(&self) -> Result<Link, RedisLimitError> {
        if self.urls.is_empty() {
            return Err(RedisLimitError::InvalidOption(
                "a cluster connection needs at least one seed URL".to_owned(),
            ));
        }
        let invalid = |e: redis::RedisError| RedisLimitError::InvalidOption(e.to_string());
        for url in &self.urls {
            resolves(
                &redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(invalid)?,
            )?;
        }
        let mut builder = ClusterClient::builder(self.urls.iter().map(String::as_str))
            .connection_timeout(self.connect_timeout)
            // The client's own retries resend requests whose outcome is
            // unknown (a timeout, a lost connection): a request that had
            // counted would count twice. Redirects are followed by `run`.
            .retries(0);
        let mut config = ClusterConfig::new().set_connection_timeout(self.connect_timeout);
        if let Some(timeout) = self.response_timeout {
            builder = builder.response_timeout(timeout);
            config = config.set_response_timeout(timeout);
        }
        let client = builder.build().map_err(invalid)?;
        // Made in the background, like the single-node connection: a
        // cluster that is down is not a configuration error.
        Ok(Link::Cluster(
            client.get_pending_async_connection_with_config(config),
        ))
    }
}
