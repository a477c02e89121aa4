//! Time as plain data: the engine never reads a clock.
//!
//! [`Instant`] is a point on a caller-chosen monotonic timeline, counted in
//! microseconds from an arbitrary origin (a simulation's start, or the TSC
//! converted by the run loop). [`Duration`] is a span on the same scale.
//! Microsecond resolution is what RFC 6298 RTO estimation at datacenter RTTs
//! needs; `u64` microseconds cover more than 500,000 years.

use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    micros: u64,
}

impl Duration {
    /// The empty span.
    pub const ZERO: Duration = Duration { micros: 0 };
    /// The largest representable span; used as "never".
    pub const MAX: Duration = Duration { micros: u64::MAX };

    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration { micros }
    }

    /// A span of `millis` milliseconds, saturating at [`Duration::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Duration { micros: millis.saturating_mul(1_000) }
    }

    /// A span of `secs` seconds, saturating at [`Duration::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Duration { micros: secs.saturating_mul(1_000_000) }
    }

    /// The span in whole microseconds.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// The span in whole milliseconds (truncated).
    pub const fn total_millis(self) -> u64 {
        self.micros / 1_000
    }

    /// `self * factor`, saturating at [`Duration::MAX`] (used for RTO backoff).
    pub const fn saturating_mul(self, factor: u64) -> Self {
        Duration { micros: self.micros.saturating_mul(factor) }
    }

    /// `self - rhs`, or zero when `rhs` is larger.
    pub const fn saturating_sub(self, rhs: Duration) -> Self {
        Duration { micros: self.micros.saturating_sub(rhs.micros) }
    }
}

impl Add for Duration {
    type Output = Duration;
    /// Saturating: adding to [`Duration::MAX`] stays at `MAX`.
    fn add(self, rhs: Duration) -> Duration {
        Duration { micros: self.micros.saturating_add(rhs.micros) }
    }
}

impl AddAssign for Duration {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl From<core::time::Duration> for Duration {
    /// Truncates to whole microseconds and saturates at [`Duration::MAX`].
    fn from(d: core::time::Duration) -> Self {
        Duration { micros: u64::try_from(d.as_micros()).unwrap_or(u64::MAX) }
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_micros(d.micros)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.micros / 1_000_000, self.micros % 1_000_000)
    }
}

/// A point in time, in microseconds since an origin chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The origin of the timeline.
    pub const ZERO: Instant = Instant { micros: 0 };

    /// The instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    /// The instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant { micros: millis.saturating_mul(1_000) }
    }

    /// The instant `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Instant { micros: secs.saturating_mul(1_000_000) }
    }

    /// Microseconds since the origin.
    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration { micros: self.micros.saturating_sub(earlier.micros) }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: an instant plus [`Duration::MAX`] is the end of time.
    fn add(self, rhs: Duration) -> Instant {
        Instant { micros: self.micros.saturating_add(rhs.micros) }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturating at the origin.
    fn sub(self, rhs: Duration) -> Instant {
        Instant { micros: self.micros.saturating_sub(rhs.micros) }
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

impl Sub for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero, never a panic.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", Duration::from_micros(self.micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Instant::from_millis(5);
        assert_eq!(t + Duration::from_micros(250), Instant::from_micros(5_250));
        assert_eq!(t - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::from_millis(2), Duration::from_millis(3));
        assert_eq!(Duration::MAX + Duration::from_secs(1), Duration::MAX);
        assert_eq!(Duration::from_millis(200).saturating_mul(1 << 20).total_micros(), 200_000u64 << 20);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
    }

    #[test]
    fn conversions_and_display() {
        let d: Duration = core::time::Duration::from_nanos(1_234_567).into();
        assert_eq!(d, Duration::from_micros(1_234));
        assert_eq!(core::time::Duration::from(d), core::time::Duration::from_micros(1_234));
        assert_eq!(Duration::from_micros(2_000_001).to_string(), "2.000001s");
        assert_eq!(Instant::from_millis(1_500).to_string(), "@1.500000s");
        assert_eq!(Duration::from_millis(1_999).total_millis(), 1_999);
    }
}
