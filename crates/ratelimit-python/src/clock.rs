//! Time for the Python limiters: the monotonic clock by default, or a
//! [`ManualClock`] that a test (or a simulation) sets and advances, the
//! Python face of the core's manual clock.

use std::sync::Arc;

use pyo3::prelude::*;
use ratelimit_core::Clock;
use ratelimit_memory::MonotonicClock;

use crate::convert;

/// A clock that moves only when told to: pass it as `clock=` to a limiter,
/// then `advance(seconds)` or `set_ns(ns)` it, for tests that need exact
/// times without sleeping. Its time is nanoseconds from an arbitrary origin
/// (0 unless given).
#[pyclass(module = "rate_limiter", name = "ManualClock", frozen)]
pub(crate) struct ManualClock {
    pub(crate) inner: Arc<ratelimit_core::ManualClock>,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (now_ns = None), text_signature = "(now_ns=0)")]
    fn new(now_ns: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let now = match now_ns {
            None => 0,
            Some(n) => convert::whole("now_ns", n, 0)?,
        };
        Ok(Self {
            inner: Arc::new(ratelimit_core::ManualClock::new(now)),
        })
    }

    /// The time, in nanoseconds.
    #[getter]
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }

    /// The time, in seconds.
    #[getter]
    fn now(&self) -> f64 {
        self.inner.now_ns() as f64 / 1e9
    }

    /// Sets the time, in nanoseconds (it may go backwards: limiters never
    /// admit more for it).
    fn set_ns(&self, now_ns: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set_ns(convert::whole("now_ns", now_ns, 0)?);
        Ok(())
    }

    /// Moves the time forward by `seconds` (`int`, `float` or
    /// `datetime.timedelta`), saturating at 2**64 - 1 ns.
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let by = convert::seconds_ns("seconds", seconds, false)?.unwrap_or(u64::MAX);
        self.inner.advance(core::time::Duration::from_nanos(by));
        Ok(())
    }

    /// Moves the time forward by `ns` nanoseconds, saturating.
    fn advance_ns(&self, ns: &Bound<'_, PyAny>) -> PyResult<()> {
        let by = convert::whole("ns", ns, 0)?;
        self.inner.advance(core::time::Duration::from_nanos(by));
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now_ns={})", self.inner.now_ns())
    }
}

/// The clock a limiter reads: monotonic, or a shared manual one.
#[derive(Debug, Clone)]
pub(crate) enum PyClock {
    /// The memory crate's monotonic clock (the CPU's time-stamp counter).
    Monotonic(MonotonicClock),
    /// A [`ManualClock`] the caller drives.
    Manual(Arc<ratelimit_core::ManualClock>),
}

impl PyClock {
    /// The clock for a limiter's `clock=` argument: `None` for the
    /// monotonic clock.
    pub(crate) fn from_arg(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        match clock {
            None => Ok(Self::Monotonic(MonotonicClock::new())),
            Some(c) => match c.cast::<ManualClock>() {
                Ok(manual) => Ok(Self::Manual(Arc::clone(&manual.get().inner))),
                Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "clock must be a rate_limiter.ManualClock or None, not {}",
                    convert::type_name(c)
                ))),
            },
        }
    }
}

impl Clock for PyClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        match self {
            Self::Monotonic(clock) => clock.now_ns(),
            Self::Manual(clock) => clock.now_ns(),
        }
    }
}
