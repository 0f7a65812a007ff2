#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cost;
mod headers;
mod key;
mod layer;
mod limiter;
mod observe;

pub use crate::cost::{CostExtractor, CostFn, UnitCost};
pub use crate::key::{
    ClientIp, ForwardedHeader, HeaderKey, IpNet, IpNetParseError, KeyExtractor, KeyFn, MissingKey,
    RouteKey, RoutePattern, TrustedProxies,
};
pub use crate::layer::{
    DEFAULT_POLICY_NAME, InvalidPolicyName, RateLimit, RateLimitLayer, ResponseFuture,
};
pub use crate::limiter::{BoxFuture, LimitError, Limiter};
pub use ratelimit_core::{Decision, Quota, Rate, Reason};
