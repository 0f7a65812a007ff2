//! Python arguments to the limiters' Rust values, each refused with a
//! `TypeError` (wrong type) or a `ValueError` (wrong value) that names the
//! argument: capacities and costs, rates, durations in seconds, keys.
//!
//! Durations cross the boundary as seconds (`int`, `float` or
//! `datetime.timedelta`) and become whole nanoseconds: an `int` exactly, a
//! `timedelta` exactly (it counts microseconds), a `float` through its
//! shortest decimal form (`0.1` is 100 000 000 ns, not the binary float's
//! 100 000 000.000 000 005 5 ns), rounded to the nearest nanosecond.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The name of `value`'s type, for error messages.
pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |name| name.to_string())
}

/// A whole number at least `min`: `int` (or anything with `__index__`),
/// never `bool` or `float`.
pub(crate) fn whole(name: &str, value: &Bound<'_, PyAny>, min: u64) -> PyResult<u64> {
    if value.is_instance_of::<PyBool>() || value.is_instance_of::<PyFloat>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(value)
        )));
    }
    let Ok(n) = value.extract::<i128>() else {
        if value.is_instance_of::<PyInt>() {
            // An int beyond 128 bits.
            let sign = if value.lt(0i32)? { "at least" } else { "below" };
            let bound = if sign == "below" {
                "2**64".to_owned()
            } else {
                min.to_string()
            };
            return Err(PyValueError::new_err(format!(
                "{name} must be {sign} {bound}, got {}",
                value.repr()?
            )));
        }
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(value)
        )));
    };
    if n < i128::from(min) {
        return Err(PyValueError::new_err(format!(
            "{name} must be at least {min}, got {n}"
        )));
    }
    u64::try_from(n)
        .map_err(|_| PyValueError::new_err(format!("{name} must be below 2**64, got {n}")))
}

/// A capacity or a limit: a whole number, at least 1.
pub(crate) fn capacity(name: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    whole(name, value, 1)
}

/// A cost: a whole number, at least 0. The common case, a small `int`,
/// takes the short path.
#[inline]
pub(crate) fn cost(value: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match value {
        None => Ok(1),
        Some(v) => {
            if v.is_exact_instance_of::<PyInt>() {
                if let Ok(n) = v.extract::<u64>() {
                    return Ok(n);
                }
            }
            whole("cost", v, 0)
        }
    }
}

/// A rate in units per second: an `int` or a `float` (not `bool`). Its
/// range is checked where the quota is built.
pub(crate) fn rate(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>() || value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number (units per second), not {}",
            type_name(value)
        )));
    }
    value.extract::<f64>().map_err(|_| {
        if value.is_instance_of::<PyInt>() {
            PyValueError::new_err(format!("{name} is too large for a float"))
        } else {
            PyTypeError::new_err(format!(
                "{name} must be a number (units per second), not {}",
                type_name(value)
            ))
        }
    })
}

/// A duration in seconds (`int`, `float` or `datetime.timedelta`) as whole
/// nanoseconds; `None` for an infinite `float` when `infinite_ok`.
pub(crate) fn seconds_ns(
    name: &str,
    value: &Bound<'_, PyAny>,
    infinite_ok: bool,
) -> PyResult<Option<u64>> {
    let type_error = || {
        PyTypeError::new_err(format!(
            "{name} must be a number of seconds or a datetime.timedelta, not {}",
            type_name(value)
        ))
    };
    let negative = || PyValueError::new_err(format!("{name} must not be negative"));
    let too_long = || {
        PyValueError::new_err(format!(
            "{name} is longer than 2**64 nanoseconds (about 584 years)"
        ))
    };
    if value.is_instance_of::<PyBool>() {
        return Err(type_error());
    }
    if value.is_instance_of::<PyInt>() {
        let secs: i128 = value.extract().map_err(|_| too_long())?;
        if secs < 0 {
            return Err(negative());
        }
        let ns = (secs as u128)
            .checked_mul(NANOS_PER_SECOND)
            .ok_or_else(too_long)?;
        return u64::try_from(ns).map(Some).map_err(|_| too_long());
    }
    if value.is_instance_of::<PyFloat>() {
        let secs: f64 = value.extract()?;
        if secs.is_nan() {
            return Err(PyValueError::new_err(format!("{name} must not be NaN")));
        }
        if secs < 0.0 {
            return Err(negative());
        }
        if secs.is_infinite() {
            return if infinite_ok {
                Ok(None)
            } else {
                Err(too_long())
            };
        }
        return float_seconds_ns(secs).map(Some).ok_or_else(too_long);
    }
    if is_timedelta(value)? {
        let days: i64 = value.getattr("days")?.extract()?;
        let secs: i64 = value.getattr("seconds")?.extract()?;
        let micros: i64 = value.getattr("microseconds")?.extract()?;
        let total_us =
            i128::from(days) * 86_400_000_000 + i128::from(secs) * 1_000_000 + i128::from(micros);
        if total_us < 0 {
            return Err(negative());
        }
        let ns = total_us * 1_000;
        return u64::try_from(ns).map(Some).map_err(|_| too_long());
    }
    Err(type_error())
}

/// Whether `value` is a `datetime.timedelta`.
fn is_timedelta(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = value.py();
    static TIMEDELTA: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let timedelta = TIMEDELTA.get_or_try_init(py, || {
        py.import("datetime")
            .and_then(|m| m.getattr("timedelta"))
            .map(Bound::unbind)
    })?;
    value.is_instance(timedelta.bind(py))
}

/// A finite, non-negative `float` of seconds as nanoseconds, read through
/// its shortest decimal form and rounded half up; `None` past `u64::MAX`.
pub(crate) fn float_seconds_ns(secs: f64) -> Option<u64> {
    // Rust prints a float's shortest round-trip decimal, without exponent.
    let text = format!("{secs}");
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    let mut ns: u128 = 0;
    for digit in int_part.bytes() {
        ns = ns
            .checked_mul(10)?
            .checked_add(u128::from(digit.checked_sub(b'0')?))?;
    }
    ns = ns.checked_mul(NANOS_PER_SECOND)?;
    let mut scale = NANOS_PER_SECOND / 10;
    let mut round_up = false;
    for (i, digit) in frac_part.bytes().enumerate() {
        let d = u128::from(digit.checked_sub(b'0')?);
        if i < 9 {
            ns += d * scale;
            scale /= 10;
        } else {
            // The first digit past the nanosecond decides the rounding.
            round_up = d >= 5;
            break;
        }
    }
    if round_up {
        ns += 1;
    }
    u64::try_from(ns).ok()
}

/// A key's bytes: a `str` as UTF-8 (so `"user1"` and `b"user1"` are one
/// key, as they are in Redis), `bytes` as they are.
#[inline]
pub(crate) fn key<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(match s.to_cow()? {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        });
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "key must be str or bytes, not {}",
        type_name(value)
    )))
}
