//! The exceptions raised into Python. They are defined in Python
//! (`rate_limiter/_errors.py`, so that they can inherit from both our base
//! class and the standard or redis-py exception a caller already catches)
//! and raised from here.

use pyo3::prelude::*;
use ratelimit_core::InsufficientCapacity as CoreInsufficientCapacity;

pyo3::import_exception!(rate_limiter._errors, InsufficientCapacity);

/// `InsufficientCapacity(cost, capacity)`: a `ValueError` for a cost that
/// can never be admitted.
pub(crate) fn insufficient(e: CoreInsufficientCapacity) -> PyErr {
    InsufficientCapacity::new_err((e.cost, e.capacity))
}
