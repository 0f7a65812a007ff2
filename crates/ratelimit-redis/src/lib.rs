#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
mod async_connection;
#[cfg(feature = "tokio")]
mod async_limiter;
mod breaker;
#[cfg(feature = "tokio")]
mod coalesce;
mod config;
mod denied;
mod error;
mod fallback;
mod invoke;
mod key;
mod keyspace;
mod limiter;
mod multi;
mod observe;
mod op;
mod pool;
mod receipt;
mod reply;
mod script;
mod walk;

#[cfg(feature = "tokio")]
pub use crate::async_connection::{AsyncRedisConnection, AsyncRedisConnectionBuilder};
#[cfg(feature = "tokio")]
pub use crate::async_limiter::{
    AsyncFixedWindowRedis, AsyncLeakyBucketRedis, AsyncRedisLimiter, AsyncSlidingWindowRedis,
    AsyncTokenBucketRedis,
};
pub use crate::config::{CircuitBreaker, DEFAULT_CLIENT_TTL_MARGIN, FailurePolicy, TimeSource};
pub use crate::error::RedisLimitError;
pub use crate::invoke::ServerScripts;
pub use crate::key::RedisKey;
pub use crate::keyspace::DEFAULT_MAX_KEY_LEN;
pub use crate::limiter::{
    FixedWindowRedis, LeakyBucketRedis, RedisLimiter, RedisLimiterBuilder, SlidingWindowRedis,
    TokenBucketRedis, Transport,
};
pub use crate::multi::RedisLimit;
pub use crate::observe::{Health, Stats};
pub use crate::pool::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_RESPONSE_TIMEOUT,
    MAX_CONNECTIONS_LIMIT, RedisPool, RedisPoolBuilder,
};
pub use crate::receipt::RedisReceipt;
pub use crate::reply::KeyState;
pub use ratelimit_core::{
    AllowResult, Decision, FixedWindow, InsufficientCapacity, LeakyBucket, Quota, Rate, Reason,
    Reservation, SlidingWindow, TokenBucket, WindowState,
};
pub use ratelimit_memory::MultiDecision;
