//! [`RedisLimitError`]: everything that can go wrong between a limiter and
//! Redis, typed so that a caller can tell what to fix from what to wait out.

use core::time::Duration;

use ratelimit_core::{ConfigError, InsufficientCapacity};

/// Why a Redis-backed limiter could not answer.
///
/// A denial is not an error (it is a `Decision` with `allowed: false`).
/// Errors are what the caller must fix (configuration, a cost above the
/// capacity) or cannot control (Redis unreachable, slow or failing). With a
/// [`FailurePolicy`](crate::FailurePolicy) other than `ReturnError`, the
/// Redis failures ([`is_redis_failure`](Self::is_redis_failure)) become
/// decisions instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisLimitError {
    /// The quota cannot be built (capacity 0, rate not positive, ...).
    #[error("bad rate-limit configuration: {0}")]
    Config(#[from] ConfigError),

    /// A limiter or pool option is unusable; the message says which and why.
    #[error("bad Redis limiter configuration: {0}")]
    InvalidOption(String),

    /// The cost exceeds the capacity: the request can never succeed. Redis
    /// is not contacted and no state changes.
    #[error(transparent)]
    InsufficientCapacity(#[from] InsufficientCapacity),

    /// No connection could be made within the connect timeout (server down,
    /// wrong address, pool exhausted). Nothing was sent: the call did not
    /// count.
    #[error("cannot connect to Redis: {message}")]
    Connect {
        /// What the pool or the last connection attempt reported.
        message: String,
        /// The last connection error, when there was one.
        #[source]
        source: Option<redis::RedisError>,
    },

    /// Redis refused the credentials (wrong or missing password or user in
    /// the URL). Nothing was sent: the call did not count.
    #[error("Redis refused the credentials: check the user and password in the URL ({0})")]
    Authentication(#[source] redis::RedisError),

    /// Redis did not answer within the response timeout. The request may
    /// have reached Redis and counted: it is not retried.
    #[error(
        "Redis did not answer within the response timeout; the request may or may not have counted and is not retried"
    )]
    Timeout {
        /// The response timeout in force, when the pool knows it.
        timeout: Option<Duration>,
        /// The I/O error.
        #[source]
        source: redis::RedisError,
    },

    /// The connection broke while the request was in flight (server killed
    /// or restarted, network cut). The request may have counted: it is not
    /// retried; the next call uses a new connection.
    #[error("the connection to Redis broke during the request (it is not retried): {0}")]
    ConnectionLost(#[source] redis::RedisError),

    /// Redis is out of memory (`maxmemory` reached with the `noeviction`
    /// policy) and refuses writes: the state could not be stored.
    #[error(
        "Redis is out of memory (maxmemory reached with a noeviction policy) and refused to store the rate-limit state: {0}"
    )]
    OutOfMemory(#[source] redis::RedisError),

    /// Redis answered the script with an error (a key of another type under
    /// the prefix, missing permissions, a cluster slot with no node, ...).
    #[error("Redis failed the rate-limit script: {0}")]
    Script(#[source] redis::RedisError),

    /// Redis answered something the scripts never return.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
}

impl RedisLimitError {
    /// Whether this is a failure of Redis or the way to it (connect,
    /// credentials, timeout, lost connection, out of memory, script error,
    /// unexpected reply), as opposed to a configuration error or a cost
    /// above the capacity. The failure policy applies to exactly these.
    #[must_use]
    pub fn is_redis_failure(&self) -> bool {
        !matches!(
            self,
            Self::Config(_) | Self::InvalidOption(_) | Self::InsufficientCapacity(_)
        )
    }

    /// Whether the request may have been counted by Redis although no answer
    /// came back (a timeout or a connection lost in flight).
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ConnectionLost(_))
    }

    /// Classifies an error from a call whose request was (or may have been)
    /// sent.
    pub(crate) fn from_call(e: redis::RedisError, timeout: Option<Duration>) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        if e.kind() == ErrorKind::AuthenticationFailed {
            return Self::Authentication(e);
        }
        if e.is_timeout() {
            return Self::Timeout { timeout, source: e };
        }
        if e.is_connection_refusal() {
            return Self::Connect {
                message: e.to_string(),
                source: Some(e),
            };
        }
        if e.is_io_error() || e.is_connection_dropped() {
            return Self::ConnectionLost(e);
        }
        match e.code() {
            Some("OOM") => Self::OutOfMemory(e),
            Some("NOAUTH" | "WRONGPASS") => Self::Authentication(e),
            _ if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
                || matches!(e.kind(), ErrorKind::Server(_)) =>
            {
                Self::Script(e)
            }
            _ if e.kind() == ErrorKind::UnexpectedReturnType || e.kind() == ErrorKind::Parse => {
                Self::UnexpectedReply(e.to_string())
            }
            _ => Self::Script(e),
        }
    }

    /// Classifies an error met while making a connection: nothing was sent.
    pub(crate) fn from_connect(e: redis::RedisError) -> Self {
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        {
            return Self::Authentication(e);
        }
        Self::Connect {
            message: e.to_string(),
            source: Some(e),
        }
    }
}
