//! What a request costs: [`CostExtractor`], one unit by default
//! ([`UnitCost`]), or a closure ([`CostFn`]).

use core::fmt;

use http::Request;

/// The cost of a request in quota units.
pub trait CostExtractor<B>: Send + Sync + 'static {
    /// The cost of `request`. A cost of 0 is checked but consumes nothing;
    /// a cost above the capacity gets the layer's
    /// [`cost_above_capacity`](crate::RateLimitLayer::cost_above_capacity)
    /// status.
    fn cost(&self, request: &Request<B>) -> u64;
}

/// Every request costs one unit: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCost;

impl<B> CostExtractor<B> for UnitCost {
    #[inline]
    fn cost(&self, _request: &Request<B>) -> u64 {
        1
    }
}

/// A closure as a [`CostExtractor`]: `CostFn(|req: &Request<Body>| ...)`.
///
/// ```
/// use http::Request;
/// use ratelimit_tower::{CostExtractor, CostFn};
///
/// // A batch costs its number of items (`?n=`), at least one.
/// let cost = CostFn(|req: &Request<()>| {
///     req.uri().query()
///         .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
///         .and_then(|n| n.parse().ok())
///         .unwrap_or(1)
///         .max(1)
/// });
/// let req = Request::post("/batch?n=7").body(()).unwrap();
/// assert_eq!(cost.cost(&req), 7);
/// ```
#[derive(Clone, Copy)]
pub struct CostFn<F>(pub F);

impl<F> fmt::Debug for CostFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CostFn(..)")
    }
}

impl<B, F> CostExtractor<B> for CostFn<F>
where
    F: Fn(&Request<B>) -> u64 + Send + Sync + 'static,
{
    #[inline]
    fn cost(&self, request: &Request<B>) -> u64 {
        (self.0)(request)
    }
}
