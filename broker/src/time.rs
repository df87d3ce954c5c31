//! Simulated time as the broker sees it.
//!
//! The broker has no clock: every command carries the caller's notion of "now". Time is a count
//! of nanoseconds since the start of the run, so the same value means the same instant in the
//! simulator, in a history file and in a replay.

use serde::{Deserialize, Serialize};

/// An instant, in nanoseconds since the start of the run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Time(pub u64);

const NANOS_PER_MS: u64 = 1_000_000;

impl Time {
    /// The start of the run.
    pub const ZERO: Time = Time(0);
    /// The largest representable instant; used as "never".
    pub const MAX: Time = Time(u64::MAX);

    /// An instant `ms` milliseconds after the start of the run.
    pub const fn from_ms(ms: u64) -> Time {
        Time(ms.saturating_mul(NANOS_PER_MS))
    }

    /// Nanoseconds since the start of the run.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the start of the run.
    pub const fn as_ms(self) -> u64 {
        self.0 / NANOS_PER_MS
    }

    /// This instant plus `ms` milliseconds, saturating at [`Time::MAX`].
    pub const fn plus_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms.saturating_mul(NANOS_PER_MS)))
    }

    /// Whole milliseconds from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn ms_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0) / NANOS_PER_MS
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{:06}ms",
            self.0 / NANOS_PER_MS,
            self.0 % NANOS_PER_MS
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_saturate() {
        assert_eq!(Time::from_ms(3).as_nanos(), 3_000_000);
        assert_eq!(Time::from_ms(3).as_ms(), 3);
        assert_eq!(Time::from_ms(5).ms_since(Time::from_ms(2)), 3);
        assert_eq!(Time::from_ms(2).ms_since(Time::from_ms(5)), 0);
        assert_eq!(Time::MAX.plus_ms(1), Time::MAX);
        assert_eq!(Time(1_500_000).to_string(), "1.500000ms");
    }
}
