#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod all_of;
mod answer;
mod client_ip;
mod config;
mod cost;
mod forwarded;
mod future;
mod headers;
mod key;
mod layer;
mod limiter;
mod observe;
mod per_key;
mod policy;
mod refusal;
mod service;

pub use crate::all_of::{
    AllOf, KeyBy, KeyMap, Limits, Member, MemoryLimiter, Named, SameKey, Verdicts,
};
pub use crate::answer::{Answer, Checked};
pub use crate::client_ip::ClientIp;
pub use crate::cost::{CostExtractor, CostFn, UnitCost};
pub use crate::forwarded::{ForwardedHeader, InvalidNetwork, TrustedProxies};
pub use crate::future::ResponseFuture;
pub use crate::key::{
    DEFAULT_MAX_KEY_LEN, HeaderKey, KeyExtractor, KeyFn, KeyLen, KeySource, MissingKey, NoKey,
    RouteKey, RoutePattern,
};
pub use crate::layer::{BuildError, RateLimitLayer, RateLimitLayerBuilder};
pub use crate::limiter::{BoxFuture, LimitError, Limiter};
#[cfg(feature = "metrics")]
pub use crate::observe::describe_metrics;
pub use crate::per_key::{PerKeyQuota, QuotaHandle, Reconfigure};
pub use crate::policy::DEFAULT_POLICY_NAME;
pub use crate::refusal::{EmptyBody, OnRefusal, PlainText, Refusal, RefusalKind};
pub use crate::service::RateLimit;
pub use ipnet::IpNet;
pub use ratelimit_core::{
    AnyAlgorithm, Decision, FixedWindow, Quota, Rate, Reason, SlidingWindow, Strategy, TokenBucket,
};
