//! What a request costs: [`CostExtractor`], one unit by default
//! ([`UnitCost`]), or a closure ([`CostFn`]). A cost of 0 counts as 1
//! unless the layer is told otherwise
//! ([`allow_zero_cost`](crate::RateLimitLayerBuilder::allow_zero_cost)).

use core::fmt;

use http::Request;

/// The cost of a request in quota units.
pub trait CostExtractor<B>: Send + Sync + 'static {
    /// The cost of `request`.
    ///
    /// A cost of 0 counts as 1: a zero from a parsed parameter (`?n=0`)
    /// or an empty batch must not make a request free, because a cost of 0
    /// is allowed even by an empty bucket. A layer built with
    /// [`allow_zero_cost`](crate::RateLimitLayerBuilder::allow_zero_cost)
    /// checks a cost of 0 as a peek instead: allowed unless the bucket is
    /// in debt, consuming nothing. A cost above the capacity can never be
    /// allowed: the layer refuses it with
    /// [`RefusalKind::CostAboveCapacity`](crate::RefusalKind::CostAboveCapacity)
    /// (`413`).
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
/// // A batch costs its number of items (`?n=`); other requests one unit.
/// let cost = CostFn(|req: &Request<()>| {
///     if req.uri().path() != "/batch" {
///         return 1;
///     }
///     req.uri().query()
///         .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
///         .and_then(|n| n.parse().ok())
///         .unwrap_or(1)
/// });
/// let req = Request::post("/batch?n=7").body(()).unwrap();
/// assert_eq!(cost.cost(&req), 7);
/// let req = Request::get("/search?n=0").body(()).unwrap();
/// assert_eq!(cost.cost(&req), 1);
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
