//! Time as the protocol core sees it: an [`Instant`] is a plain count of
//! microseconds since an arbitrary epoch chosen by the driver.
//!
//! rig-proto never reads a clock. Drivers (tokio on the host, embassy on a
//! microcontroller, a simulated clock in tests) convert their own instants
//! into this type, typically as "microseconds since the driver started", and
//! pass it to every `handle_*` call. Durations are [`core::time::Duration`].

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time: microseconds since an epoch the driver chose.
///
/// Only differences between instants of the same driver are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant (used as "never").
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// The instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        let micros = u64::try_from(d.as_micros()).ok()?;
        self.0.checked_add(micros).map(Instant)
    }

    /// `self + d`, clamped to [`Instant::MAX`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant::MAX)
    }

    /// `self - d`, or `None` if that would be before the epoch.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        let micros = u64::try_from(d.as_micros()).ok()?;
        self.0.checked_sub(micros).map(Instant)
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// The time elapsed from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_micros)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating addition (never panics).
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating difference (zero if `rhs` is later).
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Divides `d` by `scale` (a time-scale divisor; 0 is treated as 1).
pub fn scale_down(d: Duration, scale: u32) -> Duration {
    d / scale.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_checks() {
        let t = Instant::from_micros(1_500_000);
        assert_eq!(
            t.checked_add(Duration::from_millis(500)),
            Some(Instant::from_micros(2_000_000))
        );
        assert_eq!(Instant::MAX.checked_add(Duration::from_micros(1)), None);
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            t.saturating_duration_since(Instant::from_micros(500_000)),
            Duration::from_secs(1)
        );
        assert_eq!(Instant::ZERO.saturating_duration_since(t), Duration::ZERO);
        assert_eq!(Instant::ZERO.checked_duration_since(t), None);
        assert_eq!(t.to_string(), "1.500000s");
        assert_eq!(
            scale_down(Duration::from_secs(10), 0),
            Duration::from_secs(10)
        );
        assert_eq!(
            scale_down(Duration::from_secs(10), 10),
            Duration::from_secs(1)
        );
    }
}
