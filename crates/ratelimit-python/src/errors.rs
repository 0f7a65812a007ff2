//! The exceptions raised into Python. They are defined in Python
//! (`rate_limiter/_errors.py`, so that they can inherit both from our base
//! class and from the standard or redis-py exception a caller already
//! catches) and raised from here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use ratelimit_core::InsufficientCapacity as CoreInsufficientCapacity;
use ratelimit_redis::RedisLimitError;

pyo3::import_exception!(rate_limiter._errors, InsufficientCapacity);
pyo3::import_exception!(rate_limiter._errors, KeyTooLong);
pyo3::import_exception!(rate_limiter._errors, RedisConnectionError);
pyo3::import_exception!(rate_limiter._errors, RedisAuthenticationError);
pyo3::import_exception!(rate_limiter._errors, RedisConfigurationError);
pyo3::import_exception!(rate_limiter._errors, RedisTimeoutError);
pyo3::import_exception!(rate_limiter._errors, RedisResponseError);

/// `InsufficientCapacity(cost, capacity)`: a `ValueError` for a cost that
/// can never be admitted.
pub(crate) fn insufficient(e: CoreInsufficientCapacity) -> PyErr {
    InsufficientCapacity::new_err((e.cost, e.capacity))
}

/// A `RedisConfigurationError`: settings this package cannot honour.
pub(crate) fn configuration(message: String) -> PyErr {
    RedisConfigurationError::new_err((message, false))
}

/// A Redis limiter's error as the Python exception of its kind.
pub(crate) fn redis(e: RedisLimitError) -> PyErr {
    let message = e.to_string();
    let unknown = e.outcome_unknown();
    match e {
        RedisLimitError::Config(_) | RedisLimitError::InvalidOption(_) => {
            PyValueError::new_err(message)
        }
        RedisLimitError::InsufficientCapacity(c) => insufficient(c),
        RedisLimitError::KeyTooLong { .. } => KeyTooLong::new_err(message),
        RedisLimitError::Authentication(_) => RedisAuthenticationError::new_err((message, unknown)),
        RedisLimitError::Misconfigured { .. } => {
            RedisConfigurationError::new_err((message, unknown))
        }
        RedisLimitError::Timeout { .. } => RedisTimeoutError::new_err((message, unknown)),
        RedisLimitError::OutOfMemory(_)
        | RedisLimitError::Script(_)
        | RedisLimitError::UnexpectedReply(_) => RedisResponseError::new_err((message, unknown)),
        // Connect, ConnectionLost, CircuitOpen and anything added later.
        _ => RedisConnectionError::new_err((message, unknown)),
    }
}
