//! The answers, as Python sees them: [`RateLimitResult`] (the original
//! `@dataclass` of `allow_request`, field for field), [`Decision`]
//! (`check`) and [`Reservation`] (`reserve`). Times are seconds as `float`,
//! with the exact nanoseconds beside them (`retry_after_ns`, ...).

use pyo3::IntoPyObjectExt;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyTuple};
use ratelimit_core::{Decision as CoreDecision, Reason, Reservation as CoreReservation};

/// Nanoseconds as seconds: the `float` nearest to `ns / 1e9` (exact below
/// 2^53 ns, about 104 days, and correctly rounded above).
#[inline]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A duration in nanoseconds from a [`core::time::Duration`], saturating.
#[inline]
pub(crate) fn ns(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The Python name of a [`Reason`].
pub(crate) fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Quota => "quota",
        Reason::KeyTableFull => "key_table_full",
        Reason::FailOpen => "fail_open",
        Reason::FailClosed => "fail_closed",
        Reason::Fallback => "fallback",
        Reason::CircuitOpen => "circuit_open",
        _ => "other",
    }
}

/// `repr()` of an optional float, as Python writes it (`None`, `0.5`, `1e-05`).
fn float_repr(py: Python<'_>, value: Option<f64>) -> PyResult<String> {
    match value {
        None => Ok("None".to_owned()),
        Some(v) => Ok(PyFloat::new(py, v).repr()?.to_string()),
    }
}

/// The result of `allow_request(key)`: the original `@dataclass`
/// (`allowed`, `tokens_remaining`, `retry_after` in seconds or `None`).
///
/// It behaves as that dataclass did: built with the same arguments
/// (positional or keyword), its attributes can be set, `==` compares the
/// three fields of two results, `repr()` is the dataclass's, it is not
/// hashable (a dataclass with `eq` and without `frozen`), and `dataclasses`
/// (`fields`, `asdict`, `astuple`, `replace`), `copy` and `pickle` work on it.
#[pyclass(module = "rate_limiter", name = "RateLimitResult")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateLimitResult {
    /// Whether the request may proceed now.
    #[pyo3(get, set)]
    allowed: bool,
    /// Whole units still available: tokens for a token bucket, free queue
    /// slots for a leaky bucket, room left in the window.
    #[pyo3(get)]
    tokens_remaining: u64,
    /// `None` when allowed; when denied, the seconds until a retry would be
    /// allowed.
    #[pyo3(get, set)]
    retry_after: Option<f64>,
}

impl RateLimitResult {
    /// The result of a [`CoreDecision`].
    #[inline]
    pub(crate) fn from_decision(d: &CoreDecision) -> Self {
        Self {
            allowed: d.allowed,
            tokens_remaining: d.remaining,
            retry_after: d.retry_after.map(|r| secs(ns(r))),
        }
    }
}

#[pymethods]
impl RateLimitResult {
    #[new]
    #[pyo3(signature = (allowed, tokens_remaining, retry_after = None))]
    fn new(
        allowed: bool,
        tokens_remaining: &Bound<'_, PyAny>,
        retry_after: Option<f64>,
    ) -> PyResult<Self> {
        Ok(Self {
            allowed,
            tokens_remaining: crate::convert::whole("tokens_remaining", tokens_remaining, 0)?,
            retry_after,
        })
    }

    #[setter]
    fn set_tokens_remaining(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.tokens_remaining = crate::convert::whole("tokens_remaining", value, 0)?;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "RateLimitResult(allowed={}, tokens_remaining={}, retry_after={})",
            if self.allowed { "True" } else { "False" },
            self.tokens_remaining,
            float_repr(py, self.retry_after)?
        ))
    }

    /// A dataclass's `__eq__`: the fields of two results of this class,
    /// `NotImplemented` for anything else.
    fn __richcmp__(
        &self,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
        py: Python<'_>,
    ) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<Self>() else {
            return Ok(py.NotImplemented());
        };
        let equal = *self == *other.borrow();
        match op {
            CompareOp::Eq => equal.into_py_any(py),
            CompareOp::Ne => (!equal).into_py_any(py),
            _ => Ok(py.NotImplemented()),
        }
    }

    /// Not hashable, as a dataclass with `eq=True` and `frozen=False`.
    #[classattr]
    const __hash__: Option<Py<PyAny>> = None;

    /// The dataclass's `__match_args__`: `case RateLimitResult(allowed, n, wait)`.
    #[classattr]
    fn __match_args__(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, ["allowed", "tokens_remaining", "retry_after"])?.unbind())
    }

    /// The fields of the original dataclass, so that `dataclasses.fields`,
    /// `asdict`, `astuple`, `replace` and `is_dataclass` work.
    #[classattr]
    fn __dataclass_fields__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        spec(py)?.getattr("__dataclass_fields__").map(Bound::unbind)
    }

    /// The original dataclass's parameters (`eq=True`, `frozen=False`).
    #[classattr]
    fn __dataclass_params__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        spec(py)?.getattr("__dataclass_params__").map(Bound::unbind)
    }

    /// The original dataclass's annotations.
    #[classattr]
    fn __annotations__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        spec(py)?.getattr("__annotations__").map(Bound::unbind)
    }

    /// `copy` and `pickle`: rebuilt from the three fields.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let this = slf.borrow();
        let args = (this.allowed, this.tokens_remaining, this.retry_after).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}

/// The original `@dataclass`, rebuilt once, whose fields and parameters
/// [`RateLimitResult`] carries.
fn spec(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static SPEC: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    SPEC.get_or_try_init(py, || {
        let code = c"
import dataclasses, typing
spec = dataclasses.make_dataclass(
    'RateLimitResult',
    [
        ('allowed', bool),
        ('tokens_remaining', int),
        ('retry_after', typing.Optional[float], dataclasses.field(default=None)),
    ],
)
";
        let globals = pyo3::types::PyDict::new(py);
        py.run(code, Some(&globals), None)?;
        globals
            .get_item("spec")?
            .map(Bound::unbind)
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no dataclass spec"))
    })
    .map(|spec| spec.bind(py).clone())
}

/// The answer to `check(key, cost)`: allowed or denied now, and what is
/// left. Truthy when allowed.
#[pyclass(module = "rate_limiter", name = "Decision", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Decision {
    /// Whether the request may proceed now.
    #[pyo3(get)]
    allowed: bool,
    /// Whole units still available after this decision.
    #[pyo3(get)]
    remaining: u64,
    /// The limit: a bucket's capacity, a window's limit.
    #[pyo3(get)]
    limit: u64,
    /// When denied, nanoseconds until the same request would pass.
    #[pyo3(get)]
    retry_after_ns: Option<u64>,
    /// Nanoseconds until the key is back to its initial state.
    #[pyo3(get)]
    reset_after_ns: u64,
    /// Which rule decided.
    #[pyo3(get)]
    reason: &'static str,
}

impl From<&CoreDecision> for Decision {
    #[inline]
    fn from(d: &CoreDecision) -> Self {
        Self {
            allowed: d.allowed,
            remaining: d.remaining,
            limit: d.limit,
            retry_after_ns: d.retry_after.map(ns),
            reset_after_ns: ns(d.reset_after),
            reason: reason_name(d.reason),
        }
    }
}

#[pymethods]
impl Decision {
    /// `None` when allowed; when denied, the seconds until the same request
    /// would be allowed if nothing else consumes.
    #[getter]
    fn retry_after(&self) -> Option<f64> {
        self.retry_after_ns.map(secs)
    }

    /// Seconds until the key is back to its initial state (a full token
    /// bucket, an empty leaky bucket, a window with nothing counted).
    #[getter]
    fn reset_after(&self) -> f64 {
        secs(self.reset_after_ns)
    }

    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(allowed={}, remaining={}, retry_after={}, reset_after={}, limit={}, reason='{}')",
            if self.allowed { "True" } else { "False" },
            self.remaining,
            float_repr(py, self.retry_after())?,
            float_repr(py, Some(self.reset_after()))?,
            self.limit,
            self.reason
        ))
    }
}

/// The answer to `reserve(key, cost, max_wait)`: admitted (the cost is
/// consumed; proceed after `wait` seconds) or rejected (nothing consumed;
/// `retry_after` says when it would be admitted). Truthy when admitted.
#[pyclass(module = "rate_limiter", name = "Reservation", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Reservation {
    /// Whether the reservation was admitted and its cost consumed.
    #[pyo3(get)]
    admitted: bool,
    /// When admitted, nanoseconds to wait before proceeding.
    #[pyo3(get)]
    wait_ns: Option<u64>,
    /// When rejected, nanoseconds until it would be admitted (`None`:
    /// never, or admitted).
    #[pyo3(get)]
    retry_after_ns: Option<u64>,
    /// Nanoseconds until the key is back to its initial state.
    #[pyo3(get)]
    reset_after_ns: u64,
    /// The bucket's capacity.
    #[pyo3(get)]
    limit: u64,
    /// Which rule decided.
    #[pyo3(get)]
    reason: &'static str,
}

impl From<&CoreReservation> for Reservation {
    fn from(r: &CoreReservation) -> Self {
        Self {
            admitted: r.is_admitted(),
            wait_ns: r.wait().map(ns),
            retry_after_ns: r.retry_after().map(ns),
            reset_after_ns: ns(r.reset_after()),
            limit: r.limit(),
            reason: reason_name(r.reason()),
        }
    }
}

#[pymethods]
impl Reservation {
    /// When admitted, the seconds to wait before proceeding (0.0: at once);
    /// `None` when rejected.
    #[getter]
    fn wait(&self) -> Option<f64> {
        self.wait_ns.map(secs)
    }

    /// When rejected, the seconds until the same reservation would be
    /// admitted if nothing else consumes; `None` when admitted.
    #[getter]
    fn retry_after(&self) -> Option<f64> {
        self.retry_after_ns.map(secs)
    }

    /// Seconds until the key is back to its initial state.
    #[getter]
    fn reset_after(&self) -> f64 {
        secs(self.reset_after_ns)
    }

    fn __bool__(&self) -> bool {
        self.admitted
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Reservation(admitted={}, wait={}, retry_after={}, reset_after={}, limit={}, reason='{}')",
            if self.admitted { "True" } else { "False" },
            float_repr(py, self.wait())?,
            float_repr(py, self.retry_after())?,
            float_repr(py, Some(self.reset_after()))?,
            self.limit,
            self.reason
        ))
    }
}
