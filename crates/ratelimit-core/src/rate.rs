//! [`Rate`]: how many units per period, turned exactly into the emission
//! interval `T` in whole nanoseconds, rounded up.

use core::str::FromStr;
use core::time::Duration;

use crate::error::ConfigError;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A refill (token bucket) or drain (leaky bucket) rate.
///
/// A rate is stored as its emission interval `T`, the time one unit takes,
/// computed exactly from the input and rounded **up** to a whole nanosecond:
/// rounding up can only make a limiter stricter. Building a `Rate` never
/// fails; an unusable rate (zero, negative, NaN, above one unit per
/// nanosecond, ...) is reported by [`Quota::new`](crate::Quota::new) and so
/// by every limiter constructor.
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::Rate;
///
/// assert_eq!(Rate::per_second(3).interval_ns(), Ok(333_333_334));
/// assert_eq!(Rate::per_minute(1).interval(), Ok(Duration::from_secs(60)));
/// assert_eq!(Rate::new(5, Duration::from_millis(10)).interval_ns(), Ok(2_000_000));
/// assert_eq!("2.5e6".parse::<Rate>().unwrap().interval_ns(), Ok(400));
/// assert_eq!(Rate::from_per_second_f64(0.5).interval_ns(), Ok(2_000_000_000));
/// assert!(Rate::from_per_second_f64(f64::NAN).interval_ns().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    interval: Result<u64, ConfigError>,
}

impl Rate {
    /// `amount` units per second.
    #[must_use]
    pub const fn per_second(amount: u64) -> Self {
        Self::ratio(NANOS_PER_SECOND, amount as u128)
    }

    /// `amount` units per minute.
    #[must_use]
    pub const fn per_minute(amount: u64) -> Self {
        Self::ratio(60 * NANOS_PER_SECOND, amount as u128)
    }

    /// `amount` units per hour.
    #[must_use]
    pub const fn per_hour(amount: u64) -> Self {
        Self::ratio(3600 * NANOS_PER_SECOND, amount as u128)
    }

    /// `amount` units per `period`.
    #[must_use]
    pub const fn new(amount: u64, period: Duration) -> Self {
        Self::ratio(period.as_nanos(), amount as u128)
    }

    /// One unit every `interval`: `T` itself.
    #[must_use]
    pub const fn from_interval(interval: Duration) -> Self {
        Self::ratio(interval.as_nanos(), 1)
    }

    /// `per_second` units per second, as a float (`2.0`, `0.5`).
    ///
    /// The conversion is exact for the float's value: `T` is the ceiling of
    /// `1e9 / per_second` computed in integers, not in floating point.
    #[must_use]
    pub fn from_per_second_f64(per_second: f64) -> Self {
        if !per_second.is_finite() || per_second <= 0.0 {
            return Self::error(ConfigError::InvalidRate);
        }
        // per_second = mantissa × 2^exponent, exactly.
        let bits = per_second.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1 << 52) - 1);
        let (mantissa, exponent) = if biased == 0 {
            (fraction, -1074)
        } else {
            (fraction | (1 << 52), biased - 1075)
        };
        let mantissa = u128::from(mantissa);
        if exponent >= 0 {
            // The denominator is at least 2^exponent: past 2^100 the
            // interval is far below a nanosecond.
            if exponent > 100 {
                return Self::error(ConfigError::RateTooHigh);
            }
            Self::ratio(NANOS_PER_SECOND, mantissa << exponent)
        } else {
            // The numerator is 1e9 × 2^-exponent; past 2^97 it no longer
            // fits in u128, and the interval is then at least
            // 2^127 / 2^53 ns, far beyond u64.
            let shift = -exponent;
            if shift > 97 {
                return Self::error(ConfigError::RateTooLow);
            }
            Self::ratio(NANOS_PER_SECOND << shift, mantissa)
        }
    }

    /// The emission interval `T` in nanoseconds, or why there is none.
    pub const fn interval_ns(&self) -> Result<u64, ConfigError> {
        self.interval
    }

    /// The emission interval `T`, or why there is none.
    pub const fn interval(&self) -> Result<Duration, ConfigError> {
        match self.interval {
            Ok(ns) => Ok(Duration::from_nanos(ns)),
            Err(e) => Err(e),
        }
    }

    const fn error(error: ConfigError) -> Self {
        Self {
            interval: Err(error),
        }
    }

    /// `T = ceil(period_ns / amount)`, refusing `T < 1` and `T ≥ 2^64`.
    const fn ratio(period_ns: u128, amount: u128) -> Self {
        if amount == 0 {
            return Self::error(ConfigError::InvalidRate);
        }
        if period_ns < amount {
            return Self::error(ConfigError::RateTooHigh);
        }
        let interval = (period_ns - 1) / amount + 1;
        if interval > u64::MAX as u128 {
            return Self::error(ConfigError::RateTooLow);
        }
        Self {
            interval: Ok(interval as u64),
        }
    }
}

impl FromStr for Rate {
    type Err = ConfigError;

    /// Parses a decimal number of units per second (`2`, `0.5`, `2.5e6`)
    /// exactly: no floating point is involved, so `"0.3"` means three tenths.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (digits, exponent) = parse_decimal(text).ok_or(ConfigError::RateSyntax)?;
        if digits == 0 {
            return Err(ConfigError::InvalidRate);
        }
        // rate = digits × 10^exponent, so T = 10^(9 − exponent) / digits.
        let power = 9 - exponent;
        let rate = if power >= 0 {
            match pow10(power) {
                Some(numerator) => Self::ratio(numerator, digits as u128),
                // digits < 10^19 and numerator ≥ 10^39: T > 10^20 > 2^64.
                None => Self::error(ConfigError::RateTooLow),
            }
        } else {
            match pow10(-power).and_then(|p| p.checked_mul(digits as u128)) {
                Some(denominator) => Self::ratio(1, denominator),
                None => Self::error(ConfigError::RateTooHigh),
            }
        };
        rate.interval.map(|_| rate)
    }
}

fn pow10(exponent: i64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(exponent).ok()?)
}

/// `text` as `digits × 10^exponent`, with at most 19 significant digits.
fn parse_decimal(text: &str) -> Option<(u64, i64)> {
    let text = text.trim();
    // split_once rather than slicing at `find`'s index: the same split,
    // without the char-boundary panic path and its formatting code (5 KB
    // of the WASM module).
    let (number, exp_text) = match text.split_once(['e', 'E']) {
        Some((number, exponent)) => (number, Some(exponent)),
        None => (text, None),
    };
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    let mut exponent: i64 = match exp_text {
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || unsigned.len() > 6 || !all_digits(unsigned) {
                return None;
            }
            e.parse().ok()?
        }
        None => 0,
    };
    exponent -= frac_part.len() as i64;
    let mut digits: u64 = 0;
    let mut significant = 0;
    let mut pending_zeros: i64 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        let d = u64::from(b - b'0');
        if digits == 0 && d == 0 {
            continue; // leading zero
        }
        if d == 0 {
            pending_zeros += 1; // maybe a trailing zero: fold into the exponent
            continue;
        }
        for _ in 0..pending_zeros {
            digits = digits.checked_mul(10)?;
            significant += 1;
        }
        pending_zeros = 0;
        digits = digits.checked_mul(10)?.checked_add(d)?;
        significant += 1;
        if significant > 19 {
            return None;
        }
    }
    Some((digits, exponent + pending_zeros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing_is_exact() {
        assert_eq!(parse_decimal("2.5e6"), Some((25, 5)));
        assert_eq!(parse_decimal("0.50"), Some((5, -1)));
        assert_eq!(parse_decimal("1000"), Some((1, 3)));
        assert_eq!(parse_decimal("007"), Some((7, 0)));
        assert_eq!(parse_decimal("1.05"), Some((105, -2)));
        assert_eq!(parse_decimal(".5"), Some((5, -1)));
        assert_eq!(parse_decimal("5."), Some((5, 0)));
        assert_eq!(parse_decimal("0"), Some((0, 0)));
        for bad in [
            "",
            ".",
            "e5",
            "1e",
            "1e+",
            "-1",
            "1.2.3",
            "abc",
            "1e9999999",
            "nan",
            "inf",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_decimal("12345678901234567890"),
            Some((1234567890123456789, 1))
        );
        assert_eq!(parse_decimal("12345678901234567891"), None);
    }

    #[test]
    fn intervals_round_up() {
        assert_eq!(Rate::per_second(1).interval_ns(), Ok(1_000_000_000));
        assert_eq!(Rate::per_second(3).interval_ns(), Ok(333_333_334));
        assert_eq!(Rate::per_second(1_000_000_000).interval_ns(), Ok(1));
        assert_eq!(
            Rate::per_second(1_000_000_001).interval_ns(),
            Err(ConfigError::RateTooHigh)
        );
        assert_eq!(
            Rate::per_second(0).interval_ns(),
            Err(ConfigError::InvalidRate)
        );
        assert_eq!(Rate::per_hour(7).interval_ns(), Ok(514_285_714_286));
        assert_eq!(
            Rate::from_interval(Duration::ZERO).interval_ns(),
            Err(ConfigError::RateTooHigh)
        );
        assert_eq!(
            Rate::from_interval(Duration::MAX).interval_ns(),
            Err(ConfigError::RateTooLow)
        );
    }

    #[test]
    fn float_rates_are_exact() {
        assert_eq!(
            Rate::from_per_second_f64(2.0).interval_ns(),
            Ok(500_000_000)
        );
        assert_eq!(Rate::from_per_second_f64(3333.0).interval_ns(), Ok(300_031));
        assert_eq!(Rate::from_per_second_f64(1e9).interval_ns(), Ok(1));
        assert_eq!(
            Rate::from_per_second_f64(1e9 + 1.0).interval_ns(),
            Err(ConfigError::RateTooHigh)
        );
        // 0.1 as a double is a little above one tenth: T is just below 1e10, rounded up to it.
        assert_eq!(
            Rate::from_per_second_f64(0.1).interval_ns(),
            Ok(10_000_000_000)
        );
        // 0.3 as a double is a little below three tenths.
        assert_eq!(
            Rate::from_per_second_f64(0.3).interval_ns(),
            Ok(3_333_333_334)
        );
        assert_eq!(
            Rate::from_per_second_f64(f64::MIN_POSITIVE).interval_ns(),
            Err(ConfigError::RateTooLow)
        );
        assert_eq!(
            Rate::from_per_second_f64(5e-324).interval_ns(),
            Err(ConfigError::RateTooLow)
        );
        assert_eq!(
            Rate::from_per_second_f64(f64::MAX).interval_ns(),
            Err(ConfigError::RateTooHigh)
        );
        for bad in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                Rate::from_per_second_f64(bad).interval_ns(),
                Err(ConfigError::InvalidRate)
            );
        }
        // The slowest representable rate: T = u64::MAX ns.
        let slowest = 1e9 / u64::MAX as f64;
        assert!(
            Rate::from_per_second_f64(slowest * 1.000_001)
                .interval_ns()
                .is_ok()
        );
        assert_eq!(
            Rate::from_per_second_f64(slowest / 2.0).interval_ns(),
            Err(ConfigError::RateTooLow)
        );
    }

    #[test]
    fn decimal_rates_agree_with_integer_rates() {
        for n in [1u64, 2, 3, 7, 250, 3333, 1_000_000, 999_999_999] {
            let mut buf = [0u8; 24];
            let text = fmt_u64(n, &mut buf);
            assert_eq!(
                text.parse::<Rate>().map(|r| r.interval_ns()),
                Ok(Rate::per_second(n).interval_ns())
            );
        }
        assert_eq!(
            "0.3".parse::<Rate>().unwrap().interval_ns(),
            Ok(3_333_333_334)
        );
        assert_eq!("2500000.0".parse::<Rate>().unwrap().interval_ns(), Ok(400));
        assert_eq!("1e9".parse::<Rate>().unwrap().interval_ns(), Ok(1));
        assert_eq!(
            "1.000000001e9".parse::<Rate>(),
            Err(ConfigError::RateTooHigh)
        );
        assert_eq!("1e-30".parse::<Rate>(), Err(ConfigError::RateTooLow));
        assert_eq!("1e30".parse::<Rate>(), Err(ConfigError::RateTooHigh));
        assert_eq!("0.000".parse::<Rate>(), Err(ConfigError::InvalidRate));
        assert_eq!("two".parse::<Rate>(), Err(ConfigError::RateSyntax));
    }

    fn fmt_u64(mut n: u64, buf: &mut [u8; 24]) -> &str {
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        core::str::from_utf8(&buf[at..]).unwrap()
    }
}
