//! The window algorithms of docs/semantics.md: [`FixedWindow`] ("at most
//! `L` per window, resetting at the window's end") and [`SlidingWindow`]
//! (the sliding window counter: "about `L` in any window-long span",
//! without the fixed window's burst of `2L` across a boundary), as pure
//! functions of `(state, now, cost)`. Policing only: a window cannot shape,
//! so neither implements [`Shaping`](crate::Shaping).
//!
//! Windows are aligned to the clock's epoch: window `k` is
//! `[k × W, (k + 1) × W)`. A key's state is one `u128` ([`WindowState`]
//! packed): the window index `k` in the high 64 bits, then the counts. All
//! arithmetic is exact, in integers; products reach `L × W` and are done in
//! `u128`; times past `u64::MAX` ns saturate there.

use core::time::Duration;

use crate::algorithm::{Algorithm, AlgorithmKind, Verdict};
use crate::any::AnyAlgorithm;
use crate::divisor::Divisor;
use crate::error::{ConfigError, InsufficientCapacity};
use crate::reconfigure::Strategy;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A window algorithm's state, unpacked from its `u128` word: the window
/// `k` of the last admission, its count, and (sliding window only) the
/// count of window `k − 1`.
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::{Algorithm, SlidingWindow, WindowState};
///
/// let window = SlidingWindow::new(10, Duration::from_secs(1))?;
/// let step = window.check(0, 2_500_000_000, 3)?;
/// let state = WindowState::sliding(step.next.unwrap());
/// assert_eq!(state, WindowState { window: 2, count: 3, previous: 0 });
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WindowState {
    /// The window index `k`: the window is `[k × W, (k + 1) × W)`.
    pub window: u64,
    /// Units admitted in window `k`.
    pub count: u64,
    /// Units admitted in window `k − 1` (sliding window; 0 for a fixed
    /// window).
    pub previous: u64,
}

impl WindowState {
    /// A fixed window's state word: `k` in the high 64 bits, the count in
    /// the low 64.
    #[must_use]
    pub const fn fixed(bits: u128) -> Self {
        Self {
            window: (bits >> 64) as u64,
            count: bits as u64,
            previous: 0,
        }
    }

    /// A sliding window's state word: `k` in the high 64 bits, the current
    /// count in bits 32 to 63, the previous window's in bits 0 to 31.
    #[must_use]
    pub const fn sliding(bits: u128) -> Self {
        Self {
            window: (bits >> 64) as u64,
            count: (bits >> 32) as u32 as u64,
            previous: bits as u32 as u64,
        }
    }

    /// The fixed window's word of this state.
    #[must_use]
    pub const fn to_fixed(self) -> u128 {
        ((self.window as u128) << 64) | self.count as u128
    }

    /// The sliding window's word of this state (counts below 2^32).
    #[must_use]
    pub const fn to_sliding(self) -> u128 {
        ((self.window as u128) << 64) | ((self.count as u128) << 32) | self.previous as u128
    }
}

/// What both windows share: the limit `L` and the window `W`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Window {
    limit: u64,
    width: Divisor,
}

impl Window {
    const fn new(limit: u64, width_ns: u128, max_limit: u64) -> Result<Self, ConfigError> {
        if limit == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        if limit > max_limit {
            return Err(ConfigError::LimitTooLarge);
        }
        if width_ns == 0 {
            return Err(ConfigError::ZeroWindow);
        }
        if width_ns > u64::MAX as u128 {
            return Err(ConfigError::WindowTooLong);
        }
        Ok(Self {
            limit,
            width: Divisor::new(width_ns as u64),
        })
    }

    #[inline]
    const fn w(&self) -> u64 {
        self.width.get()
    }

    /// `k × W` as a time, saturating at `u64::MAX`.
    #[inline]
    const fn start(&self, k: u128) -> u128 {
        k * self.w() as u128
    }

    /// `max(0, t − now)` for a time `t` in `u128`, saturating at `u64::MAX`.
    #[inline]
    const fn until(t: u128, now: u64) -> u64 {
        let now = now as u128;
        if t <= now {
            0
        } else if t - now > u64::MAX as u128 {
            u64::MAX
        } else {
            (t - now) as u64
        }
    }

    /// A time in `u128` as `u64`, saturating.
    #[inline]
    const fn clamp(t: u128) -> u64 {
        if t > u64::MAX as u128 {
            u64::MAX
        } else {
            t as u64
        }
    }
}

macro_rules! window_constructors {
    ($name:ident, $max:expr) => {
        impl $name {
            /// At most `limit` units per `window`.
            ///
            /// # Errors
            /// [`ConfigError::ZeroCapacity`] for a zero limit,
            /// [`ConfigError::ZeroWindow`] for a zero window,
            /// [`ConfigError::WindowTooLong`] for a window beyond 2^64 ns.
            pub const fn new(limit: u64, window: Duration) -> Result<Self, ConfigError> {
                match Window::new(limit, window.as_nanos(), $max) {
                    Ok(window) => Ok(Self { window }),
                    Err(e) => Err(e),
                }
            }

            /// At most `limit` units per window of `window_ns` nanoseconds.
            ///
            /// # Errors
            /// As for [`new`](Self::new).
            pub const fn with_window_ns(limit: u64, window_ns: u64) -> Result<Self, ConfigError> {
                match Window::new(limit, window_ns as u128, $max) {
                    Ok(window) => Ok(Self { window }),
                    Err(e) => Err(e),
                }
            }

            /// At most `limit` units per second.
            ///
            /// # Errors
            /// As for [`new`](Self::new).
            pub const fn per_second(limit: u64) -> Result<Self, ConfigError> {
                Self::with_window_ns(limit, NANOS_PER_SECOND)
            }

            /// At most `limit` units per minute.
            ///
            /// # Errors
            /// As for [`new`](Self::new).
            pub const fn per_minute(limit: u64) -> Result<Self, ConfigError> {
                Self::with_window_ns(limit, 60 * NANOS_PER_SECOND)
            }

            /// At most `limit` units per hour.
            ///
            /// # Errors
            /// As for [`new`](Self::new).
            pub const fn per_hour(limit: u64) -> Result<Self, ConfigError> {
                Self::with_window_ns(limit, 3600 * NANOS_PER_SECOND)
            }

            /// The limit `L`.
            #[must_use]
            pub const fn limit(&self) -> u64 {
                self.window.limit
            }

            /// The window `W`.
            #[must_use]
            pub const fn window(&self) -> Duration {
                Duration::from_nanos(self.window.w())
            }

            /// The window `W` in nanoseconds.
            #[must_use]
            pub const fn window_ns(&self) -> u64 {
                self.window.w()
            }
        }
    };
}

/// At most `L` units per window of length `W`, the windows aligned to the
/// clock's epoch (with the Unix epoch, a one-minute window resets at the
/// top of every minute). Up to `2L` can pass across a boundary: `L` at the
/// end of one window and `L` at the start of the next.
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::{Algorithm, FixedWindow};
///
/// let minute = FixedWindow::new(100, Duration::from_secs(60))?;
/// let now = 90_000_000_000; // 1 min 30 s: window 1, [60 s, 120 s)
/// let step = minute.check(0, now, 100)?;
/// assert!(step.decision.allowed);
/// let denied = minute.check(step.next.unwrap(), now, 1)?.decision;
/// assert!(!denied.allowed);
/// assert_eq!(denied.retry_after, Some(Duration::from_secs(30))); // the next window
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedWindow {
    window: Window,
}

window_constructors!(FixedWindow, u64::MAX);

/// The sliding window counter: the count of the current window plus the
/// previous window's count weighted by the part of it still inside a
/// window-long span ending now, computed exactly in integers:
/// `used × W = prev × (W − e) + cur × W`, with `e` the time elapsed in the
/// current window. No burst at the window edge; the estimate assumes the
/// previous window's admissions were spread evenly. The limit is below
/// 2^32 (both counts fit in one 128-bit word).
///
/// ```
/// use core::time::Duration;
/// use ratelimit_core::{Algorithm, SlidingWindow};
///
/// let minute = SlidingWindow::per_minute(100)?;
/// // 100 admitted late in window 0 ...
/// let state = minute.check(0, 59_000_000_000, 100)?.next.unwrap();
/// // ... still weigh 3/4 of 100 a quarter into window 1: 25 left.
/// let decision = minute.check(state, 75_000_000_000, 0)?.decision;
/// assert_eq!(decision.remaining, 25);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlidingWindow {
    window: Window,
}

window_constructors!(SlidingWindow, u32::MAX as u64);

/// A fixed window's state as seen at `now`: `(k, count)`.
#[inline]
fn fixed_view(w: &Window, bits: u128, now: u64) -> (u64, u64) {
    let state = WindowState::fixed(bits);
    let k_now = w.width.divide(now);
    if state.window >= k_now {
        // The current window, or a later one (time went backwards): it stands.
        (state.window, state.count)
    } else {
        (k_now, 0)
    }
}

impl Algorithm for FixedWindow {
    type State = u128;

    #[inline]
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::FixedWindow
    }

    #[inline]
    fn limit(&self) -> u64 {
        self.window.limit
    }

    #[inline]
    fn period_ns(&self) -> u64 {
        self.window.w()
    }

    #[inline]
    fn check_verdict(
        &self,
        state: u128,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Self>, InsufficientCapacity> {
        let w = &self.window;
        if cost > w.limit {
            return Err(InsufficientCapacity {
                cost,
                capacity: w.limit,
            });
        }
        let (k, count) = fixed_view(w, state, now);
        // count ≤ L and cost ≤ L, but L may be u64::MAX: add without wrapping.
        if let Some(total) = count.checked_add(cost).filter(|&c| c <= w.limit) {
            let next = WindowState {
                window: k,
                count: total,
                previous: 0,
            };
            Ok(Verdict::admit(*self, now, next.to_fixed(), cost > 0, 0))
        } else {
            let end = w.start(k as u128 + 1);
            Ok(Verdict::refuse(
                *self,
                now,
                state,
                Some(Window::until(end, now)),
            ))
        }
    }

    #[inline]
    fn remaining(&self, state: u128, now: u64) -> u64 {
        let (_, count) = fixed_view(&self.window, state, now);
        self.window.limit.saturating_sub(count)
    }

    #[inline]
    fn reset_after_ns(&self, state: u128, now: u64) -> u64 {
        match fixed_view(&self.window, state, now) {
            (_, 0) => 0,
            (k, _) => Window::until(self.window.start(k as u128 + 1), now),
        }
    }

    fn expires_at(&self, state: u128) -> u64 {
        let s = WindowState::fixed(state);
        if s.count == 0 {
            0
        } else {
            Window::clamp(self.window.start(s.window as u128 + 1))
        }
    }

    /// A window keeps its counts when only `L` changes; a new `W` starts
    /// every key afresh. The strategy is a bucket's notion and is ignored.
    fn convert(&self, state: u128, _at: u64, to: &Self, _strategy: Strategy) -> u128 {
        if to.window.w() == self.window.w() {
            state
        } else {
            0
        }
    }

    fn to_any(&self) -> AnyAlgorithm {
        AnyAlgorithm::FixedWindow(*self)
    }

    /// The cost comes off the count while the admission's window is the
    /// stored one and has not ended at `now` (counts add up, so this is
    /// exact whatever was admitted since).
    fn refund_admission(&self, state: u128, now: u64, cost: u64, admitted: u128) -> Option<u128> {
        let s = WindowState::fixed(state);
        let a = WindowState::fixed(admitted);
        let over = s.window < self.window.width.divide(now);
        if cost == 0 || s.window != a.window || s.count < cost || over {
            return None;
        }
        Some(
            WindowState {
                count: s.count - cost,
                ..s
            }
            .to_fixed(),
        )
    }

    fn roll_back(&self, state: u128, now: u64, cost: u64, _: u128, admitted: u128) -> Option<u128> {
        self.refund_admission(state, now, cost, admitted)
    }
}

/// A sliding window's state as seen at `now`: the window `k` it counts in,
/// its counts `(cur, prev)` and the time `e` elapsed in window `k`.
#[derive(Debug, Clone, Copy)]
struct SlidingView {
    k: u64,
    cur: u64,
    prev: u64,
    e: u64,
}

impl SlidingView {
    #[inline]
    fn at(w: &Window, bits: u128, now: u64) -> Self {
        let s = WindowState::sliding(bits);
        let k_now = w.width.divide(now);
        let e = now - k_now * w.w();
        if s.window > k_now {
            // Time went backwards: the later window stands, with e = 0.
            Self {
                k: s.window,
                cur: s.count,
                prev: s.previous,
                e: 0,
            }
        } else if s.window == k_now {
            Self {
                k: k_now,
                cur: s.count,
                prev: s.previous,
                e,
            }
        } else if s.window + 1 == k_now {
            Self {
                k: k_now,
                cur: 0,
                prev: s.count,
                e,
            }
        } else {
            Self {
                k: k_now,
                cur: 0,
                prev: 0,
                e,
            }
        }
    }

    /// The previous window's weight in the span: `prev × (W − e)`.
    #[inline]
    fn carried(&self, w: &Window) -> u128 {
        self.prev as u128 * (w.w() - self.e) as u128
    }

    /// `max(0, ⌊(L × W − used) / W⌋)` with `used = prev × (W − e) + cur × W`,
    /// i.e. `L − cur − ⌈prev × (W − e) / W⌉`, floored at 0.
    #[inline]
    fn remaining(&self, w: &Window) -> u64 {
        let Some(room) = w.limit.checked_sub(self.cur) else {
            return 0;
        };
        let carried = self.carried(w);
        let weight = if carried <= u64::MAX as u128 {
            let c = carried as u64;
            let q = w.width.divide(c);
            q + u64::from(q * w.w() != c)
        } else {
            // prev < 2^32 and W − e ≤ W: the quotient is below 2^32.
            carried.div_ceil(w.w() as u128) as u64
        };
        room.saturating_sub(weight)
    }

    #[inline]
    fn reset_after_ns(&self, w: &Window, now: u64) -> u64 {
        if self.cur > 0 {
            Window::until(w.start(self.k as u128 + 2), now)
        } else if self.prev > 0 {
            Window::until(w.start(self.k as u128 + 1), now)
        } else {
            0
        }
    }

    /// The earliest wait after which `cost` would be allowed if nothing else
    /// consumes (the view denies it now).
    fn retry_after(&self, w: &Window, now: u64, cost: u64) -> u64 {
        let wide = w.w() as u128;
        // Within this window: the previous window's weight fades as e grows.
        if self.prev > 0 {
            if let Some(room) = w.limit.checked_sub(self.cur + cost) {
                let e1 = wide - room as u128 * wide / self.prev as u128;
                if e1 < wide {
                    return Window::until(w.start(self.k as u128) + e1, now);
                }
            }
        }
        // In the next window, where this window's count becomes the previous.
        let e2 = if self.cur == 0 {
            0
        } else {
            wide.saturating_sub((w.limit - cost) as u128 * wide / self.cur as u128)
        };
        Window::until(w.start(self.k as u128 + 1) + e2, now)
    }
}

impl Algorithm for SlidingWindow {
    type State = u128;

    #[inline]
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::SlidingWindow
    }

    #[inline]
    fn limit(&self) -> u64 {
        self.window.limit
    }

    #[inline]
    fn period_ns(&self) -> u64 {
        self.window.w()
    }

    #[inline]
    fn check_verdict(
        &self,
        state: u128,
        now: u64,
        cost: u64,
    ) -> Result<Verdict<Self>, InsufficientCapacity> {
        let w = &self.window;
        if cost > w.limit {
            return Err(InsufficientCapacity {
                cost,
                capacity: w.limit,
            });
        }
        let view = SlidingView::at(w, state, now);
        // used + cost × W ≤ L × W  ⇔  prev × (W − e) ≤ (L − cur − cost) × W.
        let fits = match w.limit.checked_sub(view.cur + cost) {
            Some(room) => view.carried(w) <= room as u128 * w.w() as u128,
            None => false,
        };
        if fits {
            let next = WindowState {
                window: view.k,
                count: view.cur + cost,
                previous: view.prev,
            };
            Ok(Verdict::admit(*self, now, next.to_sliding(), cost > 0, 0))
        } else {
            let retry = view.retry_after(w, now, cost);
            Ok(Verdict::refuse(*self, now, state, Some(retry)))
        }
    }

    #[inline]
    fn remaining(&self, state: u128, now: u64) -> u64 {
        SlidingView::at(&self.window, state, now).remaining(&self.window)
    }

    #[inline]
    fn reset_after_ns(&self, state: u128, now: u64) -> u64 {
        SlidingView::at(&self.window, state, now).reset_after_ns(&self.window, now)
    }

    fn expires_at(&self, state: u128) -> u64 {
        let s = WindowState::sliding(state);
        let k = s.window as u128;
        if s.count > 0 {
            Window::clamp(self.window.start(k + 2))
        } else if s.previous > 0 {
            Window::clamp(self.window.start(k + 1))
        } else {
            0
        }
    }

    /// A window keeps its counts when only `L` changes; a new `W` starts
    /// every key afresh. The strategy is a bucket's notion and is ignored.
    fn convert(&self, state: u128, _at: u64, to: &Self, _strategy: Strategy) -> u128 {
        if to.window.w() == self.window.w() {
            state
        } else {
            0
        }
    }

    fn to_any(&self) -> AnyAlgorithm {
        AnyAlgorithm::SlidingWindow(*self)
    }

    /// The cost comes off the count of the admission's window, whether the
    /// stored state still counts in it (`count`) or has moved on to the
    /// next one (`previous`), for as long as that window weighs at `now`
    /// (exact: counts add up).
    fn refund_admission(&self, state: u128, now: u64, cost: u64, admitted: u128) -> Option<u128> {
        let s = WindowState::sliding(state);
        let k = WindowState::sliding(admitted).window;
        let k_now = self.window.width.divide(now);
        if cost == 0 || k.saturating_add(1) < k_now {
            // Nothing to give, or the admission's window no longer weighs.
            return None;
        }
        let next = if s.window == k && s.count >= cost {
            WindowState {
                count: s.count - cost,
                ..s
            }
        } else if s.window == k.saturating_add(1) && s.window != k && s.previous >= cost {
            WindowState {
                previous: s.previous - cost,
                ..s
            }
        } else {
            return None;
        };
        Some(next.to_sliding())
    }

    fn roll_back(&self, state: u128, now: u64, cost: u64, _: u128, admitted: u128) -> Option<u128> {
        self.refund_admission(state, now, cost, admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Decision;

    /// One check: its decision and the state after it.
    fn decide<A: Algorithm<State = u128>>(
        a: &A,
        state: u128,
        now: u64,
        cost: u64,
    ) -> (Decision, u128) {
        let step = a.check(state, now, cost).unwrap();
        (step.decision, step.next.unwrap_or(state))
    }

    const S: u64 = NANOS_PER_SECOND;

    #[test]
    fn fixed_window_resets_at_the_boundary() {
        let fw = FixedWindow::new(3, Duration::from_secs(1)).unwrap();
        let mut state = 0;
        for left in [2, 1, 0] {
            let (d, next) = decide(&fw, state, 5 * S + S / 2, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
            assert_eq!(d.reset_after, Duration::from_millis(500));
            state = next;
        }
        let (d, _) = decide(&fw, state, 5 * S + S / 2, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(500)));
        // One nanosecond before the boundary: still denied; at it: allowed.
        assert!(!decide(&fw, state, 6 * S - 1, 1).0.allowed);
        let (d, _) = decide(&fw, state, 6 * S, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        assert_eq!(fw.expires_at(state), 6 * S);
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        let sw = SlidingWindow::new(10, Duration::from_secs(1)).unwrap();
        let (d, state) = decide(&sw, 0, S + S / 2, 10);
        assert!(d.allowed);
        assert_eq!(d.reset_after, Duration::from_millis(1500));
        // Window 2, e = 250 ms: 10 × 750/1000 = 7.5 used, 2 left.
        let (d, _) = decide(&sw, state, 2 * S + S / 4, 0);
        assert_eq!(d.remaining, 2);
        // Three more need 10 × (W − e)/W ≤ 7: e ≥ 300 ms.
        let (d, _) = decide(&sw, state, 2 * S + S / 4, 3);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(50)));
        assert!(!decide(&sw, state, 2 * S + 300_000_000 - 1, 3).0.allowed);
        assert!(decide(&sw, state, 2 * S + 300_000_000, 3).0.allowed);
        assert_eq!(sw.expires_at(state), 3 * S);
    }

    #[test]
    fn time_going_backwards_keeps_the_later_window() {
        let fw = FixedWindow::per_second(2).unwrap();
        let (_, state) = decide(&fw, 0, 10 * S, 2);
        // Back in window 9: window 10's count stands.
        let (d, _) = decide(&fw, state, 9 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(2)));
        let sw = SlidingWindow::per_second(2).unwrap();
        let (_, state) = decide(&sw, 0, 10 * S, 2);
        assert!(!decide(&sw, state, 9 * S, 1).0.allowed);
    }

    #[test]
    fn configuration_errors_are_distinct() {
        assert_eq!(FixedWindow::per_second(0), Err(ConfigError::ZeroCapacity));
        assert_eq!(
            FixedWindow::new(1, Duration::ZERO),
            Err(ConfigError::ZeroWindow)
        );
        assert_eq!(
            SlidingWindow::new(1, Duration::MAX),
            Err(ConfigError::WindowTooLong)
        );
        assert_eq!(
            SlidingWindow::per_second(1 << 32),
            Err(ConfigError::LimitTooLarge)
        );
        assert!(SlidingWindow::per_second(u32::MAX as u64).is_ok());
        assert!(FixedWindow::per_second(u64::MAX).is_ok());
    }

    #[test]
    fn the_end_of_time_saturates() {
        let fw = FixedWindow::per_hour(1).unwrap();
        let (d, state) = decide(&fw, 0, u64::MAX, 1);
        assert!(d.allowed);
        assert!(d.reset_after <= Duration::from_secs(3600));
        assert_eq!(fw.expires_at(state), u64::MAX);
        let sw = SlidingWindow::with_window_ns(5, u64::MAX).unwrap();
        let (d, state) = decide(&sw, 0, u64::MAX - 1, 5);
        assert!(d.allowed);
        let (d, _) = decide(&sw, state, u64::MAX, 1);
        assert!(!d.allowed);
        assert_eq!(sw.expires_at(state), u64::MAX);
    }

    #[test]
    fn the_widest_state_is_exact() {
        let sw = SlidingWindow::with_window_ns(u32::MAX as u64, u64::MAX).unwrap();
        let (d, state) = decide(&sw, 0, u64::MAX / 2, u32::MAX as u64);
        assert!(d.allowed);
        assert_eq!(WindowState::sliding(state).count, u32::MAX as u64);
        // Next window: the previous count weighs (W − e)/W of itself.
        let (d, _) = decide(&sw, state, u64::MAX, 0);
        assert_eq!(d.remaining, 0);
    }
}
