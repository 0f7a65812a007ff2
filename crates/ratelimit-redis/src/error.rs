//! [`RedisLimitError`]: everything that can go wrong between a limiter and
//! Redis, typed so that a caller can tell what to fix from what to wait out.

use core::time::Duration;

use ratelimit_core::{ConfigError, InsufficientCapacity};

/// Why a Redis-backed limiter could not answer.
///
/// A denial is not an error (it is a `Decision` with `allowed: false`).
/// Errors are what the caller must fix (configuration, a cost above the
/// capacity, a key too long) or cannot control (Redis unreachable, slow or
/// failing). With a [`FailurePolicy`](crate::FailurePolicy) other than
/// `ReturnError`, the Redis failures that can heal by themselves
/// ([`is_policy_failure`](Self::is_policy_failure)) become decisions
/// instead; a misconfiguration
/// ([`is_misconfiguration`](Self::is_misconfiguration)) is returned on
/// every call whatever the policy.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// The key's bytes are longer than the limiter's bound (see
    /// [`max_key_len`](crate::RedisLimiterBuilder::max_key_len)). Redis is
    /// not contacted.
    #[error(
        "the key is {len} bytes, more than this limiter's maximum of {max}: use shorter keys, raise max_key_len, or store keys hashed (hash_keys)"
    )]
    KeyTooLong {
        /// The key's length in bytes (its encoded form).
        len: usize,
        /// The limiter's bound.
        max: usize,
    },

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
    /// the URL). Nothing was sent: the call did not count. A
    /// misconfiguration: returned whatever the failure policy.
    #[error("Redis refused the credentials: check the user and password in the URL ({0})")]
    Authentication(#[source] redis::RedisError),

    /// Redis, or the way to it, refuses the limiter's configuration in a
    /// way that cannot heal by itself: an unknown database index, a host
    /// name that does not resolve, an ACL that forbids the scripts. A
    /// misconfiguration: returned whatever the failure policy.
    #[error("Redis refuses this configuration: {message}")]
    Misconfigured {
        /// What is wrong and what to check.
        message: String,
        /// The error Redis or the connection reported, when there was one.
        #[source]
        source: Option<redis::RedisError>,
    },

    /// The circuit breaker is open: Redis failed too many times in a row,
    /// and calls are not sent until the cool-down is over (`retry_in`).
    /// Nothing was sent: the call did not count.
    #[error(
        "Redis is failing: the circuit breaker is open and calls are not sent for another {retry_in:?}"
    )]
    CircuitOpen {
        /// The time left until the breaker lets a probe through.
        retry_in: Duration,
    },

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
    /// unexpected reply, open circuit, misconfiguration), as opposed to an
    /// error of the caller's (configuration of the limiter, a cost above
    /// the capacity, a key too long).
    #[must_use]
    pub fn is_redis_failure(&self) -> bool {
        !matches!(
            self,
            Self::Config(_)
                | Self::InvalidOption(_)
                | Self::InsufficientCapacity(_)
                | Self::KeyTooLong { .. }
        )
    }

    /// Whether this cannot heal by itself (refused credentials, an unknown
    /// database, a host that does not resolve, missing permissions):
    /// someone must change the configuration. The failure policy never
    /// absorbs these.
    #[must_use]
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, Self::Authentication(_) | Self::Misconfigured { .. })
    }

    /// Whether the failure policy answers in place of this error: a Redis
    /// failure that is not a misconfiguration.
    #[must_use]
    pub fn is_policy_failure(&self) -> bool {
        self.is_redis_failure() && !self.is_misconfiguration()
    }

    /// Whether Redis could not be reached or did not answer (connect,
    /// timeout, lost connection): what the circuit breaker counts. Errors
    /// Redis answered (out of memory, script errors) show it is up.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Timeout { .. } | Self::ConnectionLost(_)
        )
    }

    /// A short name of the variant, for logs and metric labels.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::InvalidOption(_) => "invalid_option",
            Self::InsufficientCapacity(_) => "insufficient_capacity",
            Self::KeyTooLong { .. } => "key_too_long",
            Self::Connect { .. } => "connect",
            Self::Authentication(_) => "authentication",
            Self::Misconfigured { .. } => "misconfigured",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Timeout { .. } => "timeout",
            Self::ConnectionLost(_) => "connection_lost",
            Self::OutOfMemory(_) => "out_of_memory",
            Self::Script(_) => "script",
            Self::UnexpectedReply(_) => "unexpected_reply",
        }
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
        if e.to_string().contains("unauthenticated") {
            // Redis refuses long commands from a client that has not
            // authenticated ("Protocol error: unauthenticated multibulk
            // length") before it would say NOAUTH.
            return Self::Authentication(e);
        }
        if e.to_string().contains("refused to switch database") {
            // A reconnection's handshake, within the call.
            return Self::from_connect(e);
        }
        match e.code() {
            Some("OOM") => Self::OutOfMemory(e),
            Some("NOAUTH" | "WRONGPASS") => Self::Authentication(e),
            Some("NOPERM") => Self::Misconfigured {
                message: format!(
                    "the user may not run the rate-limit scripts (EVALSHA, SCRIPT LOAD and the keys under the prefix must be allowed by its ACL): {e}"
                ),
                source: Some(e),
            },
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
    /// What the server answers during the handshake (credentials, `SELECT`
    /// of the database) is a misconfiguration; what keeps the connection
    /// from being made (refused, timed out) is not.
    pub(crate) fn from_connect(e: redis::RedisError) -> Self {
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        {
            return Self::Authentication(e);
        }
        if matches!(e.kind(), redis::ErrorKind::Server(_)) {
            return Self::Misconfigured {
                message: format!(
                    "the server refused the connection's setup (is the database index in the URL below the server's `databases`?): {e}"
                ),
                source: Some(e),
            };
        }
        Self::Connect {
            message: e.to_string(),
            source: Some(e),
        }
    }
}
