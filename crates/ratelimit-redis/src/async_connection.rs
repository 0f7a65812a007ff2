//! [`AsyncRedisConnection`]: the one connection an async limiter sends its
//! scripts on (feature `tokio`), and its [`AsyncRedisConnectionBuilder`].
//!
//! It is the `redis` crate's `ConnectionManager`: a multiplexed connection
//! (every concurrent call is written to one socket as it comes and the
//! replies are matched in order, so many tasks pipeline on it) that
//! reconnects by itself after the connection is lost. Cloning shares the
//! connection.

use core::time::Duration;
use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::RedisLimitError;
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
    manager: ConnectionManager,
    response_timeout: Option<Duration>,
}

impl core::fmt::Debug for AsyncRedisConnection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncRedisConnection")
            .field("response_timeout", &self.inner.response_timeout)
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
            url: url.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
        }
    }

    /// Sends one script call. Nothing is retried but `NOSCRIPT` (the
    /// script did not run: it is loaded and sent again, by
    /// `redis::ScriptInvocation`); a lost connection is remade in the
    /// background for the next call.
    pub(crate) async fn run(&self, call: &Call) -> Result<redis::Value, RedisLimitError> {
        let mut con = self.inner.manager.clone();
        call.invoke_async::<redis::Value>(&mut con)
            .await
            .map_err(|e| RedisLimitError::from_call(e, self.inner.response_timeout))
    }
}

/// Options of an [`AsyncRedisConnection`]: timeouts.
#[derive(Debug, Clone)]
#[must_use]
pub struct AsyncRedisConnectionBuilder {
    url: String,
    connect_timeout: Duration,
    response_timeout: Option<Duration>,
}

impl AsyncRedisConnectionBuilder {
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
        let client = redis::Client::open(self.url.as_str())
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
        // Wrong credentials or database are configuration errors: find out
        // now.
        let mut probe = manager.clone();
        let ping = probe.send_packed_command(&redis::cmd("PING")).await;
        if let Err(e) = ping {
            let err = RedisLimitError::from_connect(e);
            if err.is_misconfiguration() {
                return Err(err);
            }
        }
        Ok(AsyncRedisConnection {
            inner: Arc::new(Inner {
                manager,
                response_timeout: self.response_timeout,
            }),
        })
    }
}
