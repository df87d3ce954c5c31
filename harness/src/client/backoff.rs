//! When the client may try to connect again: capped exponential backoff with "equal jitter".
//!
//! After the n-th consecutive failed attempt the next one waits `ceiling(n) * u`, where
//! `ceiling(n) = min(initial * 2^(n-1), max)` and `u` is uniform in [0.5, 1.0]. Half the delay is
//! guaranteed, so a dead broker is not hammered, and the other half is random, so clients that
//! failed together do not retry together. The randomness comes from the client's own seeded
//! ChaCha8 generator, so a seed fixes every delay.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::{Duration, Instant};

/// The longest delay ever waited. Any sane configuration stays far below it; it exists so that
/// adding a delay to a clock reading can never overflow, whatever the settings say.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The backoff state of one client.
#[derive(Debug)]
pub(super) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    rng: ChaCha8Rng,
    /// Failed attempts since the last successful handshake.
    failures: u32,
    /// No attempt before this instant; `None` when the last attempt succeeded or none was made.
    not_before: Option<Instant>,
    /// Why the last attempt failed, so that calls refused during the window can say why.
    last_error: String,
}

impl Backoff {
    pub(super) fn new(initial_ms: u64, max_ms: u64, rng: ChaCha8Rng) -> Self {
        Backoff {
            initial_ms,
            max_ms,
            rng,
            failures: 0,
            not_before: None,
            last_error: String::new(),
        }
    }

    /// `Err` with the reason while an attempt at `now` would come too early.
    pub(super) fn check(&self, now: Instant) -> Result<(), String> {
        match self.not_before {
            Some(at) if now < at => Err(format!(
                "reconnecting in {} ms (backoff after {} failed attempts); last attempt: {}",
                (at - now).as_millis(),
                self.failures,
                self.last_error
            )),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt that ended at `now` and opens the next backoff window.
    pub(super) fn failed(&mut self, now: Instant, error: String) {
        self.failures = self.failures.saturating_add(1);
        let ceiling_us =
            ceiling_ms(self.initial_ms, self.max_ms, self.failures).saturating_mul(1000);
        // Microseconds rather than milliseconds so that different seeds spread clients apart
        // even when the ceiling is only a few milliseconds.
        let delay_us = self.rng.random_range(ceiling_us / 2..=ceiling_us);
        let delay = Duration::from_micros(delay_us).min(LONGEST);
        self.not_before = Some(now + delay);
        self.last_error = error;
    }

    /// Records a successful handshake: the next failure starts from the initial backoff again.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
        self.last_error.clear();
    }
}

/// `min(initial * 2^(n-1), max)` for the n-th consecutive failure (n >= 1), saturating instead
/// of overflowing for large n.
pub(super) fn ceiling_ms(initial_ms: u64, max_ms: u64, n: u32) -> u64 {
    let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
    initial_ms.saturating_mul(factor).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_ceiling_doubles_then_stays_at_the_cap() {
        let ceilings: Vec<u64> = (1..=9).map(|n| ceiling_ms(10, 1000, n)).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(ceiling_ms(10, 1000, 200), 1000, "huge exponents saturate");
        assert_eq!(ceiling_ms(u64::MAX, 5, 3), 5, "huge products saturate");
        assert_eq!(ceiling_ms(0, 1000, 7), 0);
    }

    #[test]
    fn windows_are_jittered_within_half_to_full_ceiling_and_reset_on_success() {
        let mut b = Backoff::new(10, 1000, ChaCha8Rng::seed_from_u64(7));
        let start = Instant::now();
        assert!(b.check(start).is_ok(), "no window before the first failure");
        for n in 1..=12 {
            b.failed(start, format!("failure {n}"));
            let window = b.not_before.unwrap() - start;
            let ceiling = Duration::from_millis(ceiling_ms(10, 1000, n));
            assert!(
                window >= ceiling / 2 && window <= ceiling,
                "n={n}: {window:?}"
            );
            assert!(
                b.check(start)
                    .unwrap_err()
                    .contains(&format!("failure {n}"))
            );
            assert!(b.check(start + window).is_ok());
        }
        b.succeeded();
        assert!(b.check(start).is_ok());
        b.failed(start, "again".into());
        assert!(b.not_before.unwrap() - start <= Duration::from_millis(10));
    }

    #[test]
    fn a_huge_cap_does_not_overflow_the_clock() {
        let mut b = Backoff::new(u64::MAX, u64::MAX, ChaCha8Rng::seed_from_u64(1));
        let start = Instant::now();
        b.failed(start, "x".into());
        assert_eq!(b.not_before.unwrap() - start, LONGEST);
    }
}
